//! `zoe simulate`: replays a workload trace through the scheduler's own functions with a
//! simulated clock, rigid and elastic, or generates a synthetic trace. See
//! `zoe_actors::logic::simulator` for the format.
//!
//! Nothing on the command line or in a trace makes it panic: flags are checked (capacities and
//! loads are finite and positive), a trace is read as a stream of bounded lines and a bad line
//! is named, and a generated trace is written as it is made.

use std::cell::Cell;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Args;
use zoe_actors::logic::placement::Node;
use zoe_actors::logic::resources::Resources;
use zoe_actors::logic::scheduler::Policy;
use zoe_actors::logic::simulator::{csv_line, generate_iter, simulate_stream, table, Report, TraceReader, HEADER};

use crate::config::parse_bytes;

/// The most executions `--generate` makes (a trace of about 3 GB).
pub const MAX_GENERATE: usize = 100_000_000;
/// The most nodes `--nodes` may describe.
pub const MAX_NODES: usize = 10_000;
/// The largest offered load `--load` may ask for.
pub const MAX_LOAD: f64 = 1000.0;

/// Options of `zoe simulate`.
#[derive(Args, Clone, Debug)]
pub struct SimulateArgs {
    /// The trace to replay: CSV with the header
    /// submit_s,memory_mib,cores,duration_s,priority,essential_instances,elastic_instances
    /// (memory and cores of each instance; duration with all instances running), one line per
    /// execution in submission order. The last two columns may be one, `instances` (all
    /// essential), or left out (one instance). Read as a stream, once per policy and mode.
    #[arg(long, required_unless_present = "generate")]
    pub trace: Option<PathBuf>,

    /// Policies to compare (repeat or comma-separate); default: all three.
    #[arg(long, value_delimiter = ',', value_parser = crate::config::policy_arg())]
    pub policy: Vec<Policy>,

    /// Simulated platform memory (bytes, or 64GiB...), as one node; more than 0.
    #[arg(long, default_value = "64GiB", value_parser = positive_bytes)]
    pub memory: u64,

    /// Simulated platform cores, as one node; more than 0.
    #[arg(long, default_value_t = 32.0, value_parser = positive_cores)]
    pub cores: f64,

    /// Simulated nodes instead of one: `COUNTxMEMORY:CORES`, comma-separated, e.g.
    /// `4x64GiB:16` or `2x128GiB:32,1x32GiB:8`; each container is placed on a node.
    #[arg(long, value_parser = parse_nodes, conflicts_with_all = ["memory", "cores"])]
    pub nodes: Option<NodeList>,

    /// Seconds of waiting after which an execution outranks any new one (as `--aging-seconds`).
    #[arg(long, default_value_t = 3600)]
    pub aging_seconds: u64,

    /// Instead of simulating, print a synthetic trace of this many executions (at most
    /// 100000000), line by line as they are made.
    #[arg(long, conflicts_with = "trace", value_parser = generate_count)]
    pub generate: Option<usize>,

    /// Seed of the generated trace.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Offered load of the generated trace, as a share of the platform (0.9: 90% busy; more
    /// than 1 overloads it); more than 0.
    #[arg(long, default_value_t = 0.9, value_parser = positive_load)]
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

/// A number from `s` that is finite and more than 0 (and at most `max`).
fn positive(s: &str, max: f64) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !v.is_finite() || v <= 0.0 || v > max {
        return Err(format!("{s:?} must be a number more than 0 and at most {max}"));
    }
    Ok(v)
}

fn positive_cores(s: &str) -> Result<f64, String> {
    positive(s, zoe_actors::logic::simulator::MAX_CORES)
}

fn positive_load(s: &str) -> Result<f64, String> {
    positive(s, MAX_LOAD)
}

fn positive_bytes(s: &str) -> Result<u64, String> {
    match parse_bytes(s)? {
        0 => Err(format!("{s:?}: a platform needs some memory (more than 0)")),
        n => Ok(n),
    }
}

fn generate_count(s: &str) -> Result<usize, String> {
    s.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n <= MAX_GENERATE)
        .ok_or_else(|| format!("{s:?} is not a whole number from 0 to {MAX_GENERATE}"))
}

/// Runs the command; the error is printed by `main`.
pub fn run(args: &SimulateArgs) -> Result<(), String> {
    let started = Instant::now();
    if let Some(n) = args.generate {
        return write_generated(args, n, &mut std::io::stdout().lock());
    }
    let text = output(args)?;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(format!("cannot write the results: {e}")),
        _ => {}
    }
    eprintln!("\nsimulated in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The nodes of the simulated platform: `--nodes`, or one of `--memory` and `--cores`.
fn nodes_of(args: &SimulateArgs) -> Vec<Node> {
    args.nodes.clone().map(|n| n.0).unwrap_or_else(|| {
        vec![Node { name: "node-1".into(), capacity: Resources { memory: args.memory, cores: args.cores } }]
    })
}

fn capacity_of(nodes: &[Node]) -> Resources {
    nodes.iter().fold(Resources::default(), |acc, n| acc.plus(n.capacity))
}

/// `--generate N`: the header, then each execution as it is made. A closed output (`| head`)
/// ends it quietly.
fn write_generated(args: &SimulateArgs, n: usize, out: &mut dyn Write) -> Result<(), String> {
    let capacity = capacity_of(&nodes_of(args));
    let mut out = std::io::BufWriter::new(out);
    let mut write = || -> std::io::Result<()> {
        writeln!(out, "{HEADER}")?;
        for job in generate_iter(n, args.seed, capacity, args.load) {
            writeln!(out, "{}", csv_line(&job))?;
        }
        out.flush()
    };
    match write() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("cannot write the trace: {e}")),
        _ => Ok(()),
    }
}

/// What the command prints after a simulation: the table (or JSON) of the simulations.
fn output(args: &SimulateArgs) -> Result<String, String> {
    let nodes = nodes_of(args);
    let capacity = capacity_of(&nodes);
    let path = args.trace.as_ref().ok_or("give --trace FILE or --generate N")?;
    let reports = reports(path, &nodes, args)?;
    if args.json {
        return Ok(format!("{}\n", to_json(&reports)?));
    }
    let executions = reports.first().map_or(0, |r| r.executions);
    Ok(format!(
        "{} executions on {} node(s), {:.0} GiB and {} cores in all, aging {} s\n\n{}",
        executions,
        nodes.len(),
        capacity.memory as f64 / (1u64 << 30) as f64,
        capacity.cores,
        args.aging_seconds,
        table(&reports)
    ))
}

/// A reader that counts the bytes read through it, for the progress line.
struct Counting<R> {
    inner: R,
    read: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

/// The progress line on stderr while a long simulation runs, when stderr is a terminal: shown
/// after a second (`ZOE_SIMULATE_PROGRESS_AFTER_MS` milliseconds when set, so that a test need
/// not depend on how fast the machine is), redrawn a few times a second, erased at the end.
struct Progress {
    on: bool,
    started: Instant,
    after: Duration,
    last: Option<Instant>,
}

impl Progress {
    fn new() -> Progress {
        let after = std::env::var("ZOE_SIMULATE_PROGRESS_AFTER_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(1), Duration::from_millis);
        Progress { on: std::io::stderr().is_terminal(), started: Instant::now(), after, last: None }
    }

    fn show(&mut self, what: &str, submitted: usize, read: u64, size: u64) {
        let now = Instant::now();
        let due = self.last.map_or(now - self.started >= self.after, |l| now - l >= Duration::from_millis(250));
        if !self.on || !due {
            return;
        }
        self.last = Some(now);
        let share =
            if size > 0 { format!(", {:.0}% of the trace", 100.0 * read as f64 / size as f64) } else { String::new() };
        eprint!("\r\x1b[Kzoe simulate: {what}: {submitted} executions submitted{share}");
    }

    fn done(&mut self) {
        if self.last.take().is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

/// Opens the trace for one pass, as a stream of executions.
fn open(path: &Path, read: &Rc<Cell<u64>>) -> Result<TraceReader<impl BufRead>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    read.set(0);
    Ok(TraceReader::new(BufReader::with_capacity(1 << 16, Counting { inner: file, read: read.clone() })))
}

/// Each policy asked for (all three by default) in each mode asked for, each a pass over the
/// trace.
fn reports(path: &Path, nodes: &[Node], args: &SimulateArgs) -> Result<Vec<Report>, String> {
    let policies: &[Policy] = if args.policy.is_empty() { &Policy::ALL } else { &args.policy };
    let aging = Duration::from_secs(args.aging_seconds.max(1));
    let runs: Vec<(Policy, bool)> =
        policies.iter().flat_map(|p| args.mode.runs().iter().map(move |elastic| (*p, *elastic))).collect();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() && runs.len() > 1 {
        return Err(format!(
            "{} is not a regular file, so it can be read only once: give one --policy and --mode rigid or elastic, \
             or save the trace to a file",
            path.display()
        ));
    }
    let read = Rc::new(Cell::new(0));
    let mut progress = Progress::new();
    let mut reports = Vec::with_capacity(runs.len());
    for (k, (policy, elastic)) in runs.iter().enumerate() {
        let what = format!(
            "{} {} (run {} of {})",
            policy.as_str(),
            if *elastic { "elastic" } else { "rigid" },
            k + 1,
            runs.len()
        );
        let trace = open(path, &read)?;
        let report = simulate_stream(trace, nodes, *policy, aging, *elastic, |submitted| {
            progress.show(&what, submitted, read.get(), meta.len())
        });
        progress.done();
        reports.push(report.map_err(|e| format!("{}: {e}", path.display()))?);
    }
    Ok(reports)
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
        let count: usize = count.parse().ok().filter(|n| (1..=MAX_NODES).contains(n)).ok_or_else(bad)?;
        if nodes.len() + count > MAX_NODES {
            return Err(format!("more than {MAX_NODES} nodes in all"));
        }
        let memory = positive_bytes(memory).map_err(|e| format!("{part:?}: {e}"))?;
        let cores = positive_cores(cores).map_err(|e| format!("{part:?}: cores {e}"))?;
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
        try_parse(args).unwrap()
    }

    fn try_parse(args: &[&str]) -> Result<SimulateArgs, String> {
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
        let cli = Cli::try_parse_from([&["zoe", "simulate"], args].concat()).map_err(|e| e.to_string())?;
        let Command::Simulate(a) = cli.command;
        Ok(a)
    }

    #[test]
    fn capacities_loads_and_counts_must_make_sense() {
        for (args, says) in [
            (&["--cores", "NaN"][..], "more than 0"),
            (&["--cores", "inf"], "more than 0"),
            (&["--cores", "0"], "more than 0"),
            (&["--cores=-4"], "more than 0"),
            (&["--memory", "0"], "needs some memory"),
            (&["--memory", "0GiB"], "needs some memory"),
            (&["--load", "0"], "more than 0"),
            (&["--load", "NaN"], "more than 0"),
            (&["--load=-1"], "more than 0"),
            (&["--load", "1e9"], "at most 1000"),
            (&["--nodes", "2x0GiB:4"], "needs some memory"),
            (&["--nodes", "2x1GiB:NaN"], "more than 0"),
            (&["--nodes", "6000x1GiB:1,6000x1GiB:1"], "more than 10000 nodes"),
            (&["--generate", "100000000000"], "from 0 to 100000000"),
        ] {
            let all = [&["--trace", "t.csv"][..], args].concat();
            let all = if args[0] == "--generate" { args.to_vec() } else { all };
            let e = try_parse(&all).err().unwrap_or_else(|| panic!("{args:?} accepted"));
            assert!(e.contains(says), "{args:?}: {e}");
        }
        assert_eq!(parse(&["--generate", "100000000"]).generate, Some(MAX_GENERATE));
        assert_eq!(parse(&["--trace", "t.csv", "--load", "2.5", "--cores", "0.5"]).cores, 0.5);
    }

    #[test]
    fn a_generated_trace_is_written_as_it_is_made_and_a_closed_output_ends_it() {
        let args = parse(&["--generate", "2000", "--seed", "1"]);
        let mut out = Vec::new();
        write_generated(&args, 2000, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), include_str!("../tests/fixtures/traces/elastic-2000.csv"));
        /// Takes 100 bytes, then says the pipe is closed, as `| head -c 100` would.
        struct Head(Vec<u8>);
        impl Write for Head {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.0.len() >= 100 {
                    return Err(std::io::ErrorKind::BrokenPipe.into());
                }
                let n = buf.len().min(100 - self.0.len());
                self.0.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut head = Head(Vec::new());
        write_generated(&parse(&["--generate", "1000000"]), 1_000_000, &mut head).unwrap();
        assert!(head.0.starts_with(HEADER.as_bytes()), "{:?}", String::from_utf8_lossy(&head.0));
    }

    #[test]
    fn a_trace_that_is_not_a_file_is_read_once() {
        let e = output(&parse(&["--trace", "/dev/zero"])).unwrap_err();
        assert!(e.contains("not a regular file") && e.contains("--policy"), "{e}");
        // Read once, it is refused at its first line, not read whole.
        let e = output(&parse(&["--trace", "/dev/zero", "--policy", "fifo", "--mode", "rigid"])).unwrap_err();
        assert_eq!(
            e,
            "/dev/zero: line 1 is longer than 1024 bytes: a trace has one execution of 5 to 7 numbers per line"
        );
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
