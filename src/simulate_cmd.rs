//! `zoe simulate`: replays a workload trace through the scheduler's own functions with a
//! simulated clock, rigid and elastic, or generates a synthetic trace. See
//! `zoe_actors::simulator` for the format.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use zoe_actors::placement::Node;
use zoe_actors::scheduler::{Policy, Resources};
use zoe_actors::simulator::{generate, parse_trace, simulate, table, to_csv, Job, Report};

use crate::config::parse_bytes;

/// Options of `zoe simulate`.
#[derive(Args, Clone, Debug)]
pub struct SimulateArgs {
    /// The trace to replay: CSV with the header
    /// submit_s,memory_mib,cores,duration_s,priority,essential_instances,elastic_instances
    /// (memory and cores of each instance; duration with all instances running). The last two
    /// columns may be one, `instances` (all essential), or left out (one instance).
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

    /// Scheduling to simulate: `rigid` (every instance reserved at the start), `elastic`
    /// (admitted when its essential instances fit, elastic ones started as room allows), or
    /// `both`, rigid then elastic for each policy.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    pub mode: Mode,

    /// Print the results as JSON, an array of one object per policy and mode, instead of a
    /// table.
    #[arg(long)]
    pub json: bool,
}

/// The scheduling modes `zoe simulate` compares.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Rigid,
    Elastic,
    Both,
}

impl Mode {
    /// The `elastic` argument of each simulation, in order.
    fn runs(self) -> &'static [bool] {
        match self {
            Mode::Rigid => &[false],
            Mode::Elastic => &[true],
            Mode::Both => &[false, true],
        }
    }
}

/// Runs the command; the error is printed by `main`.
pub fn run(args: &SimulateArgs) -> Result<(), String> {
    let started = std::time::Instant::now();
    print!("{}", output(args)?);
    if args.generate.is_none() {
        eprintln!("\nsimulated in {:.2} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// What the command prints: the generated trace, or the table (or JSON) of the simulations.
fn output(args: &SimulateArgs) -> Result<String, String> {
    let nodes = args.nodes.clone().map(|n| n.0).unwrap_or_else(|| {
        vec![Node { name: "node-1".into(), capacity: Resources { memory: args.memory, cores: args.cores } }]
    });
    let capacity = nodes.iter().fold(Resources::default(), |acc, n| acc.plus(n.capacity));
    if let Some(n) = args.generate {
        return Ok(to_csv(&generate(n, args.seed, capacity, args.load)));
    }
    let path = args.trace.as_ref().ok_or("give --trace FILE or --generate N")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let jobs = parse_trace(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let reports = reports(&jobs, &nodes, args);
    if args.json {
        return Ok(format!("{}\n", to_json(&reports)?));
    }
    Ok(format!(
        "{} executions on {} node(s), {:.0} GiB and {} cores in all, aging {} s\n\n{}",
        jobs.len(),
        nodes.len(),
        capacity.memory as f64 / (1u64 << 30) as f64,
        capacity.cores,
        args.aging_seconds,
        table(&reports)
    ))
}

/// Each policy asked for (all three by default) in each mode asked for.
fn reports(jobs: &[Job], nodes: &[Node], args: &SimulateArgs) -> Vec<Report> {
    let policies: &[Policy] = if args.policy.is_empty() { &Policy::ALL } else { &args.policy };
    let aging = Duration::from_secs(args.aging_seconds.max(1));
    policies
        .iter()
        .flat_map(|p| args.mode.runs().iter().map(move |elastic| (*p, *elastic)))
        .map(|(p, elastic)| simulate(jobs, nodes, p, aging, elastic))
        .collect()
}

/// One report in the JSON output, its fields in this order. `executions` counts the trace's,
/// `refused` those that could never start; times are in seconds, utilisations are shares (0 to
/// 1).
#[derive(serde::Serialize)]
struct JsonReport {
    policy: &'static str,
    elastic: bool,
    executions: usize,
    refused: usize,
    mean_queue_s: f64,
    median_queue_s: f64,
    p95_queue_s: f64,
    mean_turnaround_s: f64,
    median_turnaround_s: f64,
    utilisation_memory: f64,
    utilisation_cores: f64,
    makespan_s: f64,
}

/// The reports as a JSON array (pretty), one object per policy and mode.
pub fn to_json(reports: &[Report]) -> Result<String, String> {
    let list: Vec<JsonReport> = reports
        .iter()
        .map(|r| JsonReport {
            policy: r.policy.as_str(),
            elastic: r.elastic,
            executions: r.executions,
            refused: r.refused,
            mean_queue_s: r.mean_queue_s,
            median_queue_s: r.median_queue_s,
            p95_queue_s: r.p95_queue_s,
            mean_turnaround_s: r.mean_turnaround_s,
            median_turnaround_s: r.median_turnaround_s,
            utilisation_memory: r.utilisation_memory,
            utilisation_cores: r.utilisation_cores,
            makespan_s: r.makespan_s,
        })
        .collect();
    serde_json::to_string_pretty(&list).map_err(|e| e.to_string())
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

    /// `zoe simulate ARGS` parsed as `main` does: under the client's options, whose `--json`
    /// is global.
    fn parse(args: &[&str]) -> SimulateArgs {
        use clap::{CommandFactory, Parser};
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            _client: crate::cli::Options,
            #[command(subcommand)]
            command: Command,
        }
        #[derive(clap::Subcommand)]
        enum Command {
            Simulate(SimulateArgs),
        }
        Cli::command().debug_assert();
        let Command::Simulate(a) = Cli::try_parse_from([&["zoe", "simulate"], args].concat()).unwrap().command;
        a
    }

    fn trace_file(name: &str, text: &str) -> String {
        let path = std::env::temp_dir().join(format!("zoe-simulate-{}-{name}.csv", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    const TRACE: &str = "\
submit_s,memory_mib,cores,duration_s,priority,essential_instances,elastic_instances
0,512,1,100,1,1,0
1,256,0.25,100,1,1,3
2,512,1,50,1,1,0
";

    #[test]
    fn simulate_compares_rigid_and_elastic_for_each_policy() {
        let trace = trace_file("table", TRACE);
        let text = output(&parse(&["--trace", &trace, "--memory", "1GiB", "--cores", "4"])).unwrap();
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| policy")).collect();
        let modes: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| {
                let cells: Vec<&str> = r.split('|').map(str::trim).collect();
                (cells[1], cells[3])
            })
            .collect();
        assert_eq!(
            modes,
            [
                ("fifo", "rigid"),
                ("fifo", "elastic"),
                ("priority", "rigid"),
                ("priority", "elastic"),
                ("size", "rigid"),
                ("size", "elastic")
            ],
            "{text}"
        );
        // The rows of the simulator's own test (`an_elastic_execution_starts_with_what_fits`).
        assert!(rows[0].starts_with("| fifo | 3 | rigid | 99 s | 99 s | 198 s | 182 s | 199 s | 70.0% |"), "{text}");
        assert!(rows[1].starts_with("| fifo | 3 | elastic | 33 s | 0 s | 98 s | 141 s | 148 s | 99.7% |"), "{text}");
        let text = output(&parse(&["--trace", &trace, "--mode", "elastic", "--policy", "size"])).unwrap();
        assert_eq!(text.lines().filter(|l| l.starts_with("| size |")).count(), 1, "{text}");
        assert!(text.contains("| size | 3 | elastic |"), "{text}");
        std::fs::remove_file(trace).unwrap();
    }

    #[test]
    fn simulate_json_has_one_object_per_policy_and_mode() {
        let trace = trace_file("json", TRACE);
        let args = parse(&["--trace", &trace, "--memory", "1GiB", "--cores", "4", "--json"]);
        assert!(args.json);
        let v: serde_json::Value = serde_json::from_str(&output(&args).unwrap()).unwrap();
        let list = v.as_array().unwrap();
        assert_eq!(list.len(), 6);
        for policy in ["fifo", "priority", "size"] {
            let of: Vec<_> = list.iter().filter(|o| o["policy"] == policy).collect();
            assert_eq!(of.iter().map(|o| o["elastic"].as_bool().unwrap()).collect::<Vec<_>>(), [false, true]);
        }
        let keys = [
            "policy",
            "elastic",
            "executions",
            "refused",
            "mean_queue_s",
            "median_queue_s",
            "p95_queue_s",
            "mean_turnaround_s",
            "median_turnaround_s",
            "utilisation_memory",
            "utilisation_cores",
            "makespan_s",
        ];
        for o in list {
            let mut have: Vec<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
            have.sort();
            let mut want = keys.to_vec();
            want.sort();
            assert_eq!(have, want);
        }
        // Printed in that order.
        let text = output(&args).unwrap();
        let at = |k: &str| text.find(&format!("\"{k}\":")).unwrap();
        assert!(keys.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
        // fifo, elastic: the numbers computed by hand in the simulator's test.
        assert_eq!(list[1]["makespan_s"], 175.5);
        assert_eq!(list[1]["median_turnaround_s"], 148.0);
        assert_eq!((list[1]["executions"].as_u64(), list[1]["refused"].as_u64()), (Some(3), Some(0)));
        let one = parse(&["--trace", &trace, "--json", "--mode", "rigid", "--policy", "fifo,size"]);
        let v: serde_json::Value = serde_json::from_str(&output(&one).unwrap()).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        assert!(parse(&["--trace", &trace, "--mode", "both"]).mode == Mode::Both);
        std::fs::remove_file(trace).unwrap();
    }
}
