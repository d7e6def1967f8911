//! `zoe checkpoint list | show | diff | verify | revert`: tools for the checkpoint directory
//! and the archive, for people debugging a deployment. `revert` needs the master stopped; the
//! others only read.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};
use zoe_checkpoints::archive::{check_numbers, LayoutError};
use zoe_checkpoints::codec::quoted;
use zoe_checkpoints::{encode, is_dns_label, Action, Archive, Change, ExecutionStatus, State, StateLock, Store};

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
    /// List the checkpoints, oldest first, with what each holds and who changed what, then the
    /// archive's segments.
    List,
    /// Print checkpoint N (default: the newest), or archive segment N with --segment.
    Show {
        number: Option<u64>,
        /// Print archive segment N instead.
        #[arg(long, value_name = "N", conflicts_with = "number")]
        segment: Option<u64>,
    },
    /// Show what changed from checkpoint A to checkpoint B (default: the newest).
    Diff { a: u64, b: Option<u64> },
    /// Load and validate checkpoints (all of them and every archive segment, or checkpoint N and
    /// the segments it needs); fails if any is damaged or missing.
    Verify { number: Option<u64> },
    /// Make checkpoint N the newest again, by writing a copy of it as a new checkpoint; history
    /// is kept. The archive is never rewritten: executions archived after checkpoint N stay
    /// readable. The master must be stopped.
    Revert { number: u64 },
}

/// Why a checkpoint command stopped.
#[derive(Debug)]
pub enum CmdError {
    /// What went wrong, for `main` to print.
    Failed(String),
    /// Whoever read the output went away (`| head -1`): not an error, nothing more to print.
    Closed,
}

impl From<String> for CmdError {
    fn from(e: String) -> Self {
        CmdError::Failed(e)
    }
}

impl From<std::io::Error> for CmdError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CmdError::Closed
        } else {
            CmdError::Failed(format!("cannot write the output: {e}"))
        }
    }
}

/// Runs a checkpoint subcommand, printing to stdout; the error is printed by `main`.
pub fn run(cmd: CheckpointCmd, dir: &StateDir) -> Result<(), CmdError> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    run_to(cmd, dir, &mut out)?;
    out.flush()?;
    Ok(())
}

/// Runs a checkpoint subcommand, writing to `out`.
pub fn run_to(cmd: CheckpointCmd, dir: &StateDir, out: &mut dyn Write) -> Result<(), CmdError> {
    if !dir.state_dir.exists() {
        return Err(format!("state directory {} does not exist", dir.state_dir.display()).into());
    }
    let store = Store::open(&dir.state_dir).map_err(|e| format!("cannot open {}: {e}", dir.state_dir.display()))?;
    let files = store.list().map_err(|e| format!("cannot list {}: {e}", store.dir().display()))?;
    let newest = files.last().map(|f| f.number);
    let pick =
        |n: Option<u64>| n.or(newest).ok_or_else(|| format!("there are no checkpoints in {}", store.dir().display()));
    let read = |n: u64| store.read(n).map_err(|e| format!("cannot read {}: {e}", store.path(n).display()));
    let archive = Archive::open(&dir.state_dir).map_err(|e| format!("cannot open the archive: {e}"))?;
    let segments = archive.list().map_err(|e| format!("cannot list {}: {e}", archive.dir().display()))?;
    // Checkpoints name their deployment; segments are checked against it.
    let deployment = || -> Result<String, String> {
        let n = pick(None)?;
        store.load(n).map(|s| s.deployment_name).map_err(|e| format!("checkpoint {n}: {e}"))
    };
    match cmd {
        CheckpointCmd::List => {
            writeln!(
                out,
                "{:>10}  {:>10}  {:>5}  {:>10}  {:>6}  {:>8}  changes",
                "checkpoint", "bytes", "users", "executions", "active", "segments"
            )?;
            for f in &files {
                match store.load(f.number) {
                    Ok(s) => {
                        let active = s.executions.values().filter(|e| e.status.is_active()).count();
                        writeln!(
                            out,
                            "{:>10}  {:>10}  {:>5}  {:>10}  {:>6}  {:>8}  {}",
                            f.number,
                            f.size,
                            s.users.len(),
                            s.executions.len(),
                            active,
                            s.archived_segments,
                            describe_changes(&s)
                        )?;
                    }
                    Err(e) => writeln!(
                        out,
                        "{:>10}  {:>10}  {:>5}  {:>10}  {:>6}  {:>8}  DAMAGED: {}",
                        f.number, f.size, "-", "-", "-", "-", e
                    )?,
                }
            }
            if !segments.is_empty() {
                writeln!(out, "\n{:>10}  {:>10}  {:>10}  ids", "segment", "bytes", "executions")?;
                let deployment = deployment()?;
                for f in &segments {
                    match archive.load(f.number, &deployment) {
                        Ok(seg) => writeln!(
                            out,
                            "{:>10}  {:>10}  {:>10}  {}..={}",
                            f.number,
                            f.size,
                            seg.executions.len(),
                            seg.executions.first().map(|e| e.id).unwrap_or(0),
                            seg.executions.last().map(|e| e.id).unwrap_or(0)
                        )?,
                        Err(e) => writeln!(out, "{:>10}  {:>10}  {:>10}  DAMAGED: {e}", f.number, f.size, "-")?,
                    }
                }
            }
            Ok(())
        }
        CheckpointCmd::Show { segment: Some(n), .. } => {
            let text = archive.read(n).map_err(|e| format!("cannot read {}: {e}", archive.path(n).display()))?;
            out.write_all(text.as_bytes())?;
            Ok(())
        }
        CheckpointCmd::Show { number, segment: None } => {
            out.write_all(read(pick(number)?)?.as_bytes())?;
            Ok(())
        }
        CheckpointCmd::Diff { a, b } => {
            let b = pick(b)?;
            let (ta, tb) = (read(a)?, read(b)?);
            crate::checkpoint_diff::unified(&ta, &tb, &format!("checkpoint {a}"), &format!("checkpoint {b}"), out)?;
            Ok(())
        }
        CheckpointCmd::Verify { number } => {
            let started = Instant::now();
            let numbers: Vec<u64> = match number {
                Some(n) => vec![n],
                None => files.iter().map(|f| f.number).collect(),
            };
            if numbers.is_empty() {
                return Err(format!("there are no checkpoints in {}", store.dir().display()).into());
            }
            let mut bad = 0;
            let mut needed = 0;
            let mut found = None;
            // The state a master would start from, when all are checked: segments past those it
            // needs must be ones written just before a crash.
            let mut newest_state = None;
            let mut damaged_newest = false;
            for n in &numbers {
                match store.load(*n) {
                    Ok(s) => {
                        writeln!(
                            out,
                            "checkpoint {n}: ok ({} users, {} executions, {} scheduled, needs archive segments 1 to {})",
                            s.users.len(),
                            s.executions.len(),
                            s.executions.values().filter(|e| e.status == ExecutionStatus::Scheduled).count(),
                            s.archived_segments
                        )?;
                        needed = needed.max(s.archived_segments);
                        found = Some(s.deployment_name.clone());
                        if number.is_none() && Some(*n) == newest {
                            newest_state = Some(s);
                        }
                    }
                    Err(e) => {
                        bad += 1;
                        damaged_newest |= Some(*n) == newest;
                        writeln!(out, "checkpoint {n}: DAMAGED: {e}")?;
                    }
                }
            }
            // Every segment when all checkpoints are checked; those it needs for one.
            let deployment = match found {
                Some(d) => d,
                None => deployment()?,
            };
            let present: Vec<u64> = segments.iter().map(|f| f.number).collect();
            for n in (1..=needed).filter(|n| !present.contains(n)) {
                bad += 1;
                writeln!(out, "segment {n}: MISSING from {}", archive.dir().display())?;
            }
            let strays = match check_numbers(&present, needed) {
                Err(LayoutError::Stray { missing, strays }) if number.is_none() => {
                    for n in &strays {
                        bad += 1;
                        writeln!(
                            out,
                            "segment {n}: STRAY: segment {missing} is missing before it, and no checkpoint needs it; it \
                             is not this state's (move it out of {})",
                            archive.dir().display()
                        )?;
                    }
                    strays
                }
                _ => Vec::new(),
            };
            let (mut checked, mut executions, mut bytes) = (0, 0, 0);
            for f in segments.iter().filter(|f| (number.is_none() || f.number <= needed) && !strays.contains(&f.number))
            {
                checked += 1;
                bytes += f.size;
                match archive.load(f.number, &deployment) {
                    Ok(seg) => {
                        executions += seg.executions.len();
                        // Past what the newest checkpoint needs: written just before a crash, or not
                        // this state's.
                        let foreign = newest_state.as_ref().filter(|s| f.number > s.archived_segments).and_then(|s| {
                            seg.executions.iter().find(|e| e.id < s.next_id && !s.executions.contains_key(&e.id))
                        });
                        match (foreign, &newest_state) {
                            (Some(e), _) => {
                                bad += 1;
                                writeln!(
                                    out,
                                    "segment {}: STRAY: it holds execution {}, which the newest checkpoint neither \
                                     holds nor was about to create; it is not this state's (move it out of {})",
                                    f.number,
                                    e.id,
                                    archive.dir().display()
                                )?;
                            }
                            (None, Some(s)) if f.number > s.archived_segments => writeln!(
                                out,
                                "segment {}: ok ({} executions; written just before a crash, the next start keeps it)",
                                f.number,
                                seg.executions.len()
                            )?,
                            _ => writeln!(out, "segment {}: ok ({} executions)", f.number, seg.executions.len())?,
                        }
                    }
                    Err(e) => {
                        bad += 1;
                        writeln!(out, "segment {}: DAMAGED: {e}", f.number)?;
                    }
                }
            }
            writeln!(
                out,
                "checked {} checkpoint(s) and {checked} archive segment(s) whole ({executions} archived executions, \
                 {:.1} MB) in {:.1} s",
                numbers.len(),
                bytes as f64 / 1e6,
                started.elapsed().as_secs_f64()
            )?;
            if damaged_newest {
                let hint = match newest.and_then(|n| store.newest_loadable(n)) {
                    Some(k) => format!(
                        "hint: the newest checkpoint is damaged; fix it by hand, or go back to checkpoint {k}, the \
                         newest that loads, with `zoe checkpoint revert {k}` (master stopped)"
                    ),
                    None => "hint: the newest checkpoint is damaged and no older one loads; fix it by hand".to_string(),
                };
                writeln!(out, "{hint}")?;
            }
            if bad > 0 {
                return Err(format!("{bad} damaged, missing or stray file(s)").into());
            }
            Ok(())
        }
        CheckpointCmd::Revert { number } => {
            let _lock = StateLock::try_take(&dir.state_dir)
                .map_err(|e| format!("cannot lock {}: {e}", dir.state_dir.display()))?
                .ok_or_else(|| "a master is running on this state directory; stop it before reverting".to_string())?;
            store.remove_temp_files().map_err(|e| format!("cannot clean {}: {e}", store.dir().display()))?;
            // Listed again under the lock: the newest may have changed since.
            let newest = store.newest().map_err(|e| format!("cannot list {}: {e}", store.dir().display()))?;
            let mut state =
                store.load(number).map_err(|e| format!("checkpoint {number} cannot be reverted to: {e}"))?;
            state.changes = vec![Change::new(Change::ZOE, Action::Revert, vec![number])];
            // The archive is never rewritten: the copy needs every segment written since, too.
            let needed_before = state.archived_segments;
            let contiguous = segments.iter().zip(1..).take_while(|(f, n)| f.number == *n).count() as u64;
            state.archived_segments = needed_before.max(contiguous);
            let text = encode(&state).map_err(|e| format!("cannot encode checkpoint {number}: {e}"))?;
            let next = newest.unwrap_or(0) + 1;
            store.write(next, &text).map_err(|e| format!("cannot write {}: {e}", store.path(next).display()))?;
            writeln!(out, "checkpoint {number} copied to {next}, now the newest; start the master to use it")?;
            if state.archived_segments > needed_before {
                writeln!(
                    out,
                    "note: archive segments {} to {} were written after checkpoint {number}; they are kept and \
                     what they hold stays readable (the archive is never rewritten)",
                    needed_before + 1,
                    state.archived_segments
                )?;
            }
            Ok(())
        }
    }
}

/// Who changed what, on one line: `alice submit 12 14; zoe start 12`. Names that are not plain
/// are quoted and shortened.
fn describe_changes(s: &State) -> String {
    const MAX_IDS: usize = 8;
    const MAX_CHANGES: usize = 16;
    if s.changes.is_empty() {
        return "-".into();
    }
    let mut parts: Vec<String> = s
        .changes
        .iter()
        .take(MAX_CHANGES)
        .map(|c| {
            let mut ids: Vec<String> = c.ids.iter().take(MAX_IDS).map(u64::to_string).collect();
            if c.ids.len() > MAX_IDS {
                ids.push(format!("(+{} more)", c.ids.len() - MAX_IDS));
            }
            let what = match c.action {
                Action::Archive => "archive segment",
                Action::Revert => "revert to checkpoint",
                a => a.as_str(),
            };
            let by = if is_dns_label(&c.by) { c.by.clone() } else { quoted(&c.by) };
            format!("{by} {what} {}", ids.join(" ")).trim_end().to_string()
        })
        .collect();
    if s.changes.len() > MAX_CHANGES {
        parts.push(format!("(+{} more)", s.changes.len() - MAX_CHANGES));
    }
    parts.join("; ")
}
