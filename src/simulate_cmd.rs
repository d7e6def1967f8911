//! `zoe simulate`: replays a workload trace through the scheduler's own functions with a
//! simulated clock, or generates a synthetic trace. See `zoe_actors::simulator` for the format.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use zoe_actors::scheduler::{Policy, Resources};
use zoe_actors::simulator::{generate, parse_trace, simulate, table, to_csv};

use crate::config::parse_bytes;

/// Options of `zoe simulate`.
#[derive(Args, Clone, Debug)]
pub struct SimulateArgs {
    /// The trace to replay (CSV: submit_s,memory_mib,cores,duration_s,priority).
    #[arg(long, required_unless_present = "generate")]
    pub trace: Option<PathBuf>,

    /// Policies to compare (repeat or comma-separate); default: all three.
    #[arg(long, value_delimiter = ',', value_parser = crate::config::policy_arg())]
    pub policy: Vec<Policy>,

    /// Simulated platform memory (bytes, or 64GiB...).
    #[arg(long, default_value = "64GiB", value_parser = parse_bytes)]
    pub memory: u64,

    /// Simulated platform cores.
    #[arg(long, default_value_t = 32.0)]
    pub cores: f64,

    /// Seconds of waiting after which an execution outranks any new one (as `--aging-seconds`).
    #[arg(long, default_value_t = 3600)]
    pub aging_seconds: u64,

    /// Instead of simulating, print a synthetic trace of this many executions.
    #[arg(long, conflicts_with = "trace")]
    pub generate: Option<usize>,

    /// Seed of the generated trace.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Offered load of the generated trace, as a share of the platform (0.9: 90% busy).
    #[arg(long, default_value_t = 0.9)]
    pub load: f64,
}

/// Runs the command; the error is printed by `main`.
pub fn run(args: &SimulateArgs) -> Result<(), String> {
    let capacity = Resources { memory: args.memory, cores: args.cores };
    if let Some(n) = args.generate {
        print!("{}", to_csv(&generate(n, args.seed, capacity, args.load)));
        return Ok(());
    }
    let path = args.trace.as_ref().ok_or("give --trace FILE or --generate N")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let jobs = parse_trace(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let policies: Vec<Policy> =
        if args.policy.is_empty() { vec![Policy::Fifo, Policy::Priority, Policy::Size] } else { args.policy.clone() };
    let aging = Duration::from_secs(args.aging_seconds.max(1));
    let started = std::time::Instant::now();
    let reports: Vec<_> = policies.into_iter().map(|p| simulate(&jobs, capacity, p, aging)).collect();
    println!(
        "{} executions on {:.0} GiB and {} cores, aging {} s\n",
        jobs.len(),
        args.memory as f64 / (1u64 << 30) as f64,
        args.cores,
        args.aging_seconds
    );
    print!("{}", table(&reports));
    eprintln!("\nsimulated in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}
