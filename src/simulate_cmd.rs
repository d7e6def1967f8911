//! `zoe simulate`: replays a workload trace through the scheduler's own functions with a
//! simulated clock, or generates a synthetic trace. See `zoe_actors::simulator` for the format.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use zoe_actors::placement::Node;
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

    /// Simulated platform memory (bytes, or 64GiB...), as one node.
    #[arg(long, default_value = "64GiB", value_parser = parse_bytes)]
    pub memory: u64,

    /// Simulated platform cores, as one node.
    #[arg(long, default_value_t = 32.0)]
    pub cores: f64,

    /// Simulated nodes instead of one: `COUNTxMEMORY:CORES`, comma-separated, e.g.
    /// `4x64GiB:16` or `2x128GiB:32,1x32GiB:8`; each container is placed on a node.
    #[arg(long, value_parser = parse_nodes, conflicts_with_all = ["memory", "cores"])]
    pub nodes: Option<NodeList>,

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
    let nodes = args.nodes.clone().map(|n| n.0).unwrap_or_else(|| {
        vec![Node { name: "node-1".into(), capacity: Resources { memory: args.memory, cores: args.cores } }]
    });
    let capacity = nodes.iter().fold(Resources::default(), |acc, n| acc.plus(n.capacity));
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
    let reports: Vec<_> = policies.into_iter().map(|p| simulate(&jobs, &nodes, p, aging)).collect();
    println!(
        "{} executions on {} node(s), {:.0} GiB and {} cores in all, aging {} s\n",
        jobs.len(),
        nodes.len(),
        capacity.memory as f64 / (1u64 << 30) as f64,
        capacity.cores,
        args.aging_seconds
    );
    print!("{}", table(&reports));
    eprintln!("\nsimulated in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The nodes of `--nodes`.
#[derive(Clone, Debug)]
pub struct NodeList(pub Vec<Node>);

/// `4x64GiB:16,1x32GiB:8` as nodes (`node-1`, `node-2`...).
fn parse_nodes(spec: &str) -> Result<NodeList, String> {
    let mut nodes = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("{part:?} is not COUNTxMEMORY:CORES, e.g. 4x64GiB:16");
        let (count, rest) = part.split_once('x').ok_or_else(bad)?;
        let (memory, cores) = rest.split_once(':').ok_or_else(bad)?;
        let count: usize = count.parse().ok().filter(|n| (1..=10_000).contains(n)).ok_or_else(bad)?;
        let memory = parse_bytes(memory).map_err(|e| format!("{part:?}: {e}"))?;
        let cores: f64 = cores.parse().ok().filter(|c: &f64| c.is_finite() && *c > 0.0).ok_or_else(bad)?;
        for _ in 0..count {
            nodes.push(Node { name: format!("node-{}", nodes.len() + 1), capacity: Resources { memory, cores } });
        }
    }
    if nodes.is_empty() {
        return Err("give at least one node, e.g. 4x64GiB:16".into());
    }
    Ok(NodeList(nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_lists_parse_and_bad_ones_say_what_to_write() {
        let n = parse_nodes("2x128GiB:32, 1x32GiB:8").unwrap().0;
        assert_eq!(n.len(), 3);
        assert_eq!((n[0].capacity.memory, n[2].capacity.cores, n[2].name.as_str()), (128 << 30, 8.0, "node-3"));
        for bad in ["", "4x64GiB", "x64GiB:1", "0x1GiB:1", "2x1GiB:0", "2xlots:4"] {
            assert!(parse_nodes(bad).is_err(), "{bad}");
        }
    }
}
