//! `zoe checkpoint list | show | diff | verify | revert`: tools for the checkpoint directory,
//! for people debugging a deployment. `revert` needs the master stopped; the others only read.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use zoe_checkpoints::{ExecutionStatus, Store};

/// Where the checkpoints are.
#[derive(Args, Clone, Debug)]
pub struct StateDir {
    /// The master's state directory.
    #[arg(long, env = "ZOE_STATE_DIR", default_value = "./zoe-state", global = true)]
    pub state_dir: PathBuf,
}

/// The checkpoint subcommands.
#[derive(Subcommand, Clone, Debug)]
pub enum CheckpointCmd {
    /// List the checkpoints, oldest first, with what each holds.
    List,
    /// Print checkpoint N (default: the newest).
    Show { number: Option<u64> },
    /// Show what changed from checkpoint A to checkpoint B (default: the newest).
    Diff { a: u64, b: Option<u64> },
    /// Load and validate checkpoints (all of them, or N); fails if any is damaged.
    Verify { number: Option<u64> },
    /// Make checkpoint N the newest again, by writing a copy of it as a new checkpoint; history
    /// is kept. The master must be stopped.
    Revert { number: u64 },
}

/// Runs a checkpoint subcommand; the error is printed by `main`.
pub fn run(cmd: CheckpointCmd, dir: &StateDir) -> Result<(), String> {
    if !dir.state_dir.exists() {
        return Err(format!("state directory {} does not exist", dir.state_dir.display()));
    }
    let store = Store::open(&dir.state_dir).map_err(|e| format!("cannot open {}: {e}", dir.state_dir.display()))?;
    let files = store.list().map_err(|e| format!("cannot list {}: {e}", store.dir().display()))?;
    let newest = files.last().map(|f| f.number);
    let pick =
        |n: Option<u64>| n.or(newest).ok_or_else(|| format!("there are no checkpoints in {}", store.dir().display()));
    let read = |n: u64| store.read(n).map_err(|e| format!("cannot read {}: {e}", store.path(n).display()));
    match cmd {
        CheckpointCmd::List => {
            println!(
                "{:>10}  {:>10}  {:>5}  {:>10}  {:>6}  status",
                "number", "bytes", "users", "executions", "active"
            );
            for f in &files {
                match store.load(f.number) {
                    Ok(s) => {
                        let active = s.executions.values().filter(|e| e.status.is_active()).count();
                        println!(
                            "{:>10}  {:>10}  {:>5}  {:>10}  {:>6}  ok",
                            f.number,
                            f.size,
                            s.users.len(),
                            s.executions.len(),
                            active
                        );
                    }
                    Err(e) => println!(
                        "{:>10}  {:>10}  {:>5}  {:>10}  {:>6}  DAMAGED: {}",
                        f.number, f.size, "-", "-", "-", e
                    ),
                }
            }
            Ok(())
        }
        CheckpointCmd::Show { number } => {
            print!("{}", read(pick(number)?)?);
            Ok(())
        }
        CheckpointCmd::Diff { a, b } => {
            let b = pick(b)?;
            let (ta, tb) = (read(a)?, read(b)?);
            let diff = similar::TextDiff::from_lines(&ta, &tb);
            print!(
                "{}",
                diff.unified_diff().context_radius(3).header(&format!("checkpoint {a}"), &format!("checkpoint {b}"))
            );
            Ok(())
        }
        CheckpointCmd::Verify { number } => {
            let numbers: Vec<u64> = match number {
                Some(n) => vec![n],
                None => files.iter().map(|f| f.number).collect(),
            };
            if numbers.is_empty() {
                return Err(format!("there are no checkpoints in {}", store.dir().display()));
            }
            let mut bad = 0;
            for n in numbers {
                match store.load(n) {
                    Ok(s) => println!(
                        "checkpoint {n}: ok ({} users, {} executions, {} scheduled)",
                        s.users.len(),
                        s.executions.len(),
                        s.executions.values().filter(|e| e.status == ExecutionStatus::Scheduled).count()
                    ),
                    Err(e) => {
                        bad += 1;
                        println!("checkpoint {n}: DAMAGED: {e}");
                    }
                }
            }
            if bad > 0 {
                return Err(format!("{bad} damaged checkpoint(s)"));
            }
            Ok(())
        }
        CheckpointCmd::Revert { number } => {
            let _lock = Store::try_lock(&dir.state_dir)
                .map_err(|e| format!("cannot lock {}: {e}", dir.state_dir.display()))?
                .ok_or_else(|| "a master is running on this state directory; stop it before reverting".to_string())?;
            store.load(number).map_err(|e| format!("checkpoint {number} cannot be reverted to: {e}"))?;
            let text = read(number)?;
            let next = newest.unwrap_or(0) + 1;
            store.write(next, &text).map_err(|e| format!("cannot write {}: {e}", store.path(next).display()))?;
            println!("checkpoint {number} copied to {next}, now the newest; start the master to use it");
            Ok(())
        }
    }
}
