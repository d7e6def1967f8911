//! The scheduling simulator behind `zoe simulate`: replays a workload through the same pure
//! picking, growing and placement functions as the master ([`crate::logic::scheduler::pick`],
//! [`crate::logic::scheduler::grow`], [`crate::logic::placement::place`]) and the order of
//! [`crate::logic::scheduler::order`], with a simulated clock and a list of nodes, rigid or
//! elastic, and reports queue times, turnaround times and utilisation.
//!
//! A trace is CSV, one execution per line, after a header line:
//!
//! ```text
//! submit_s,memory_mib,cores,duration_s,priority,essential_instances,elastic_instances
//! 0,512,1,300,100,1,0
//! 12.5,4096,2,1800,900,1,3
//! ```
//!
//! `submit_s` is when it is submitted (seconds from the start; lines in submission order),
//! `memory_mib` and `cores` what each of its instances (containers, each placed on a node)
//! reserves, `priority` 0 to 1024 (higher first with the `priority` policy). It has
//! `essential_instances` (1 or more), which admit it, and `elastic_instances` (0 or more), which
//! only make it faster; 1000 instances at most in all. `duration_s` is how long it runs with all
//! its instances; with only part of its elastic instances running it progresses at the rate
//! (essential + elastic running) / (essential + elastic): 1 essential and 3 elastic instances, 2
//! of them running, do 3/4 of a second's work each second.
//!
//! Older traces still read: with 6 columns the last is `instances` (all essential), with 5
//! columns an execution is one instance. Lines that are empty or start with `#` are skipped.
//!
//! Rigid (`elastic: false` in [`simulate`]), an execution starts when all its instances fit and
//! runs `duration_s`. Elastic, it is admitted when its essential instances fit, as the master
//! does (`scheduler::round`): the queue in the policy's order, stopping at the first execution
//! whose essential instances do not fit; only when the whole queue was admitted, the executions
//! just admitted and the running ones missing elastic instances, in the policy's order, start
//! elastic instances while they fit. This happens at every submission and end. Elastic instances
//! run until their execution ends (none dies in the simulation).
//!
//! A trace is read as a stream ([`TraceReader`], lines of at most [`MAX_LINE`] bytes) and the
//! simulation keeps only the executions that wait or run, so a trace of millions of lines costs
//! the memory of its queue, not of its text. The queue is a heap ordered by a key that does not
//! change while executions wait (see [`QueueKey`]): each event costs a logarithm of the queue's
//! length, not a sort of it.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::io::BufRead;
use std::time::Duration;

use time::OffsetDateTime;

use crate::logic::placement::{place, Node};
use crate::logic::resources::Resources;
use crate::logic::scheduler::{grow, pick, Policy, Waiting};

/// Instances of one execution at most.
pub const MAX_INSTANCES: u32 = 1000;
/// Longest line of a trace, in bytes (a line of seven numbers takes well under 200).
pub const MAX_LINE: usize = 1024;
/// Largest `submit_s` and `duration_s`: about 317 years, room for Unix times as well.
pub const MAX_SECONDS: f64 = 1e10;
/// Largest `memory_mib` of an instance (1 EiB).
pub const MAX_MEMORY_MIB: f64 = 1_099_511_627_776.0;
/// Largest `cores` of an instance.
pub const MAX_CORES: f64 = 1e6;
/// How often, in executions submitted, a simulation reports its progress.
pub const PROGRESS_EVERY: usize = 1 << 14;

/// One execution of a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub submit: f64,
    /// What each instance reserves.
    pub need: Resources,
    /// Running time with all its instances.
    pub duration: f64,
    pub priority: u32,
    /// Instances that admit it (at least 1).
    pub essential: u32,
    /// Instances that only make it faster, started as room allows when elastic.
    pub elastic: u32,
}

/// `n` instances of `need`.
fn times(need: Resources, n: u32) -> Resources {
    Resources { memory: need.memory.saturating_mul(u64::from(n)), cores: need.cores * f64::from(n) }
}

impl Job {
    /// All its instances, essential and elastic.
    pub fn instances(&self) -> u32 {
        self.essential + self.elastic
    }

    /// What all its instances reserve together.
    pub fn total(&self) -> Resources {
        times(self.need, self.instances())
    }

    /// Its rate of progress with `running` instances: 1 with all of them.
    fn rate(&self, running: u32) -> f64 {
        f64::from(running) / f64::from(self.instances().max(1))
    }

    /// What admits it: all its instances (rigid) or its essential ones (elastic).
    fn admitted(&self, elastic: bool) -> u32 {
        if elastic {
            self.essential
        } else {
            self.instances()
        }
    }

    /// As the scheduler's `pick` sees it in the queue. (`pick` does not read the submission
    /// time: the simulator keeps the queue in order itself, see [`QueueKey`].)
    fn waiting(&self, id: usize) -> Waiting {
        Waiting {
            id: id as u64,
            submitted: OffsetDateTime::UNIX_EPOCH,
            priority: self.priority,
            need: self.total(),
            instances: vec![self.need; self.instances() as usize],
            essential: vec![self.need; self.essential as usize],
        }
    }
}

/// The header line of a trace, as [`to_csv`] writes it.
pub const HEADER: &str = "submit_s,memory_mib,cores,duration_s,priority,essential_instances,elastic_instances";

/// Parses one line of a trace (`number` counts from 1); `None` for a line to skip (empty, a
/// comment, the header). The error names the line and the column.
pub fn parse_line(line: &str, number: usize) -> Result<Option<Job>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || (number == 1 && line.starts_with("submit")) {
        return Ok(None);
    }
    let f: Vec<&str> = line.split(',').map(str::trim).collect();
    let bad = |what: &str| format!("line {number}: {what}");
    if !(5..=7).contains(&f.len()) {
        return Err(bad(&format!(
            "{} fields, expected 5 to 7: submit_s,memory_mib,cores,duration_s,priority and either instances \
             or essential_instances,elastic_instances",
            f.len()
        )));
    }
    let count = |k: usize, name: &str, min: u32| {
        f[k].parse::<u32>()
            .ok()
            .filter(|n| (min..=MAX_INSTANCES).contains(n))
            .ok_or_else(|| bad(&format!("{name} {:?} is not a whole number from {min} to {MAX_INSTANCES}", f[k])))
    };
    let (essential, elastic) = match f.len() {
        5 => (1, 0),
        6 => (count(5, "instances", 1)?, 0),
        _ => (count(5, "essential_instances", 1)?, count(6, "elastic_instances", 0)?),
    };
    if essential + elastic > MAX_INSTANCES {
        return Err(bad(&format!(
            "essential_instances + elastic_instances is {}, more than {MAX_INSTANCES}",
            essential + elastic
        )));
    }
    let num = |k: usize, name: &str, max: f64| {
        f[k].parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && (0.0..=max).contains(v))
            .ok_or_else(|| bad(&format!("{name} {:?} is not a number from 0 to {max}", f[k])))
    };
    let memory = num(1, "memory_mib", MAX_MEMORY_MIB)?;
    let priority = f[4]
        .parse::<u32>()
        .ok()
        .filter(|p| *p <= 1024)
        .ok_or_else(|| bad(&format!("priority {:?} is not a whole number from 0 to 1024", f[4])))?;
    Ok(Some(Job {
        submit: num(0, "submit_s", MAX_SECONDS)?,
        need: Resources { memory: (memory * 1024.0 * 1024.0) as u64, cores: num(2, "cores", MAX_CORES)? },
        duration: num(3, "duration_s", MAX_SECONDS)?,
        priority,
        essential,
        elastic,
    }))
}

/// A trace read line by line from `input`: each line at most [`MAX_LINE`] bytes, in submission
/// order. Yields each execution, or the first error (naming the line), then stops.
pub struct TraceReader<R> {
    input: R,
    /// Lines read so far.
    line: usize,
    /// The submission time of the latest execution.
    last_submit: f64,
    buf: Vec<u8>,
    done: bool,
}

impl<R: BufRead> TraceReader<R> {
    pub fn new(input: R) -> Self {
        TraceReader { input, line: 0, last_submit: 0.0, buf: Vec::with_capacity(128), done: false }
    }

    /// The next line's execution, `Ok(None)` at the end.
    fn next_job(&mut self) -> Result<Option<Job>, String> {
        loop {
            self.buf.clear();
            let limit = MAX_LINE as u64 + 1;
            let n = std::io::Read::take(&mut self.input, limit)
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| format!("line {}: cannot read the trace: {e}", self.line + 1))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let number = self.line;
            if self.buf.len() > MAX_LINE {
                return Err(format!(
                    "line {number} is longer than {MAX_LINE} bytes: a trace has one execution of 5 to 7 numbers per line"
                ));
            }
            let text = std::str::from_utf8(&self.buf)
                .map_err(|_| format!("line {number} is not text (UTF-8): a trace is CSV"))?;
            let Some(job) = parse_line(text, number)? else { continue };
            if job.submit < self.last_submit {
                return Err(format!(
                    "line {number}: submit_s {} is earlier than the line before ({}): a trace lists executions in \
                     submission order (sort it by its first column)",
                    job.submit, self.last_submit
                ));
            }
            self.last_submit = job.submit;
            return Ok(Some(job));
        }
    }
}

impl<R: BufRead> Iterator for TraceReader<R> {
    type Item = Result<Job, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_job().transpose();
        self.done = !matches!(next, Some(Ok(_)));
        next
    }
}

/// Parses a whole trace held in memory; the error names the line and the column.
pub fn parse_trace(text: &str) -> Result<Vec<Job>, String> {
    TraceReader::new(text.as_bytes()).collect()
}

/// The xorshift generator of [`generate`].
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) | 1)
    }

    /// A number in [0, 1).
    fn next(&mut self) -> f64 {
        let x = &mut self.0;
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One execution of [`generate`], without its submission time, and its work: its share of
/// `capacity` times its running time.
fn draw(rnd: &mut Rng, capacity: Resources) -> (Job, f64) {
    let kind = rnd.next();
    // The whole execution's memory (MiB), cores and running time, and its elastic instances.
    let (mem_mib, cores, dur, elastic) = if kind < 0.7 {
        (256.0 + 768.0 * rnd.next(), 0.5 + 0.5 * rnd.next(), 60.0 + 540.0 * rnd.next(), 0)
    } else if kind < 0.95 {
        (2048.0 + 2048.0 * rnd.next(), 1.0 + rnd.next(), 600.0 + 3000.0 * rnd.next(), 2 + (3.0 * rnd.next()) as u32)
    } else {
        (8192.0 + 8192.0 * rnd.next(), 4.0, 3600.0 + 7200.0 * rnd.next(), 4 + (5.0 * rnd.next()) as u32)
    };
    let count = f64::from(1 + elastic);
    let need = Resources {
        memory: ((mem_mib / count).round() as u64) << 20,
        cores: ((cores / count * 10.0_f64).round() / 10.0).max(0.1),
    };
    let job = Job { submit: 0.0, need, duration: dur.round(), priority: 0, essential: 1, elastic };
    let total = job.total();
    let share = (total.memory as f64 / capacity.memory as f64).max(total.cores / capacity.cores);
    let work = share * job.duration;
    (Job { priority: (rnd.next() * 1024.0) as u32, ..job }, work)
}

/// A reproducible synthetic workload of `n` executions for a platform of `capacity`: mostly
/// small interactive ones (one instance), some medium (one essential instance and 2 to 4
/// elastic), a few large batch ones (one essential and 4 to 8 elastic), each instance an equal
/// share of its execution's size, arriving at random (Poisson) at a rate that keeps the platform
/// about `load` busy (0.9: 90%) when every instance runs.
///
/// Made in two passes over the same random numbers, so that nothing is held: the first sums the
/// work (which sets the arrival rate), the second yields each execution as it is made.
pub fn generate_iter(n: usize, seed: u64, capacity: Resources, load: f64) -> impl Iterator<Item = Job> {
    let mut sizes = Rng::new(seed);
    let mut work = 0.0;
    for _ in 0..n {
        work += draw(&mut sizes, capacity).1;
    }
    // The arrivals use the numbers that follow all the sizes.
    let mut arrivals = sizes;
    let mut sizes = Rng::new(seed);
    // Spread the submissions so that the offered load is `load`.
    let span = work / load.max(0.01);
    let mean_gap = span / n.max(1) as f64;
    let mut t = 0.0;
    (0..n).map(move |_| {
        let (job, _) = draw(&mut sizes, capacity);
        let submit = (t * 10.0_f64).round() / 10.0;
        t += -mean_gap * (1.0 - arrivals.next()).ln();
        Job { submit, ..job }
    })
}

/// [`generate_iter`], collected.
pub fn generate(n: usize, seed: u64, capacity: Resources, load: f64) -> Vec<Job> {
    generate_iter(n, seed, capacity, load).collect()
}

/// One line of a trace (without its newline), with the [`HEADER`] columns.
pub fn csv_line(j: &Job) -> String {
    format!(
        "{},{},{},{},{},{},{}",
        j.submit,
        j.need.memory / (1024 * 1024),
        j.need.cores,
        j.duration,
        j.priority,
        j.essential,
        j.elastic
    )
}

/// Writes a trace, with the [`HEADER`] columns.
pub fn to_csv(jobs: &[Job]) -> String {
    let mut out = String::from(HEADER);
    out.push('\n');
    for j in jobs {
        out.push_str(&csv_line(j));
        out.push('\n');
    }
    out
}

/// What a simulation measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub policy: Policy,
    /// Elastic scheduling (else rigid).
    pub elastic: bool,
    pub executions: usize,
    /// Executions that could never start, refused at submit: rigid, one whose instances do not
    /// fit on the empty platform; elastic, one whose essential instances do not.
    pub refused: usize,
    /// From submission to the start of its (essential) instances.
    pub mean_queue_s: f64,
    pub median_queue_s: f64,
    pub p95_queue_s: f64,
    /// From submission to the end.
    pub mean_turnaround_s: f64,
    pub median_turnaround_s: f64,
    /// Memory reserved by running instances over time, as a share of the capacity, until the
    /// last one ends.
    pub utilisation_memory: f64,
    pub utilisation_cores: f64,
    pub makespan_s: f64,
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (mean, at(0.5), at(0.95))
}

/// A started execution's progress.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    /// Its instances running.
    instances: u32,
    /// Its work left (seconds with all its instances) at `since`, when `instances` last changed.
    left: f64,
    since: f64,
    /// Its running time, from its start to its end at the current rate.
    ran: f64,
    /// Bumped at each change of rate: end events of an older generation are stale.
    generation: u32,
}

impl Run {
    /// From `now`, `add` more instances run; returns the end event (ms, generation).
    fn speed_up(&mut self, job: &Job, started: f64, now: f64, add: u32) -> (u64, u32) {
        if self.instances > 0 {
            self.left = (self.left - job.rate(self.instances) * (now - self.since)).max(0.0);
        }
        self.since = now;
        self.instances += add;
        let rest = self.left / job.rate(self.instances);
        self.ran = (now - started) + rest;
        self.generation += 1;
        (((now + rest) * 1000.0).round() as u64, self.generation)
    }
}

/// An execution that started and has not ended.
struct Active {
    job: Job,
    started: f64,
    run: Run,
    /// The node of each of its running instances.
    placed: Vec<usize>,
}

/// Where an execution stands in the queue: smaller first. [`crate::logic::scheduler::order`] sorts
/// by a score that moves with the clock (aging), but it moves at the same pace for every waiting
/// execution, so the order it gives at any moment after their submissions is the order of
/// this key, which is fixed at submission:
///
/// - `fifo`: submission order (the trace's order);
/// - `priority`: highest `priority + 1024 * waited / aging` first, that is the smallest
///   `1024 * submitted - priority * aging` (in nanoseconds, exact);
/// - `size`: smallest `share - waited / aging` first, that is the smallest
///   `share + submitted / aging`;
///
/// then submission order among equals.
#[derive(Clone, Copy, Debug, PartialEq)]
enum QueueKey {
    Fifo,
    Priority(i128),
    Size(f64),
}

impl QueueKey {
    fn of(job: &Job, policy: Policy, capacity: Resources, aging: Duration) -> QueueKey {
        match policy {
            Policy::Fifo => QueueKey::Fifo,
            Policy::Priority => {
                let aging_ns = (aging.as_nanos() as i128).max(1_000_000);
                let submitted_ns = (job.submit * 1e9) as i128;
                QueueKey::Priority(1024 * submitted_ns - i128::from(job.priority) * aging_ns)
            }
            Policy::Size => {
                let need = job.total();
                let m = need.memory as f64 / (capacity.memory.max(1) as f64);
                let c = if capacity.cores > 0.0 { need.cores / capacity.cores } else { 0.0 };
                QueueKey::Size(m.max(c) + job.submit / aging.as_secs_f64().max(1e-3))
            }
        }
    }

    fn cmp(&self, other: &QueueKey) -> Ordering {
        match (self, other) {
            (QueueKey::Priority(a), QueueKey::Priority(b)) => a.cmp(b),
            (QueueKey::Size(a), QueueKey::Size(b)) => a.total_cmp(b),
            _ => Ordering::Equal,
        }
    }
}

/// A waiting execution: its place in the queue, its index in the trace, itself.
struct Queued {
    key: QueueKey,
    index: usize,
    job: Job,
}

impl Queued {
    fn cmp_key(&self, other: &Queued) -> Ordering {
        self.key.cmp(&other.key).then(self.index.cmp(&other.index))
    }
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp_key(other) == Ordering::Equal
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        self.cmp_key(other)
    }
}

/// Replays `jobs` through the scheduler on a platform of these `nodes`, rigid or `elastic`.
pub fn simulate(jobs: &[Job], nodes: &[Node], policy: Policy, aging: Duration, elastic: bool) -> Report {
    let jobs = jobs.iter().cloned().map(Ok::<Job, std::convert::Infallible>);
    match simulate_stream(jobs, nodes, policy, aging, elastic, |_| {}) {
        Ok(report) => report,
        Err(never) => match never {},
    }
}

/// Replays the executions of a stream (in submission order) through the scheduler on a platform
/// of these `nodes`, rigid or `elastic`, reading each one when the clock reaches it. Every
/// [`PROGRESS_EVERY`] executions submitted, `progress` is told how many were. The first error of
/// the stream stops the simulation.
pub fn simulate_stream<E>(
    jobs: impl IntoIterator<Item = Result<Job, E>>,
    nodes: &[Node],
    policy: Policy,
    aging: Duration,
    elastic: bool,
    mut progress: impl FnMut(usize),
) -> Result<Report, E> {
    let mut jobs = jobs.into_iter().peekable();
    let capacity = nodes.iter().fold(Resources::default(), |acc, n| acc.plus(n.capacity));
    let empty: Vec<Resources> = nodes.iter().map(|n| n.capacity).collect();
    let key = |j: &Job| QueueKey::of(j, policy, capacity, aging);
    let mut waiting: BinaryHeap<Reverse<Queued>> = BinaryHeap::new();
    // Elastic: started executions still missing elastic instances, by index.
    let mut hungry: Vec<usize> = Vec::new();
    // (end time in ms, job index, generation), soonest first.
    let mut ends: BinaryHeap<Reverse<(u64, usize, u32)>> = BinaryHeap::new();
    let mut active: HashMap<usize, Active> = HashMap::new();
    let mut free = capacity;
    let mut free_nodes = empty.clone();
    let (mut queue, mut turnaround) = (Vec::new(), Vec::new());
    let mut refused = 0;
    let (mut mem_area, mut core_area) = (0.0, 0.0);
    let mut now = 0.0f64;
    let mut next = 0usize;
    let current =
        |active: &HashMap<usize, Active>, i: usize, g: u32| active.get(&i).is_some_and(|a| a.run.generation == g);
    loop {
        // Drop the end events of executions whose rate changed since.
        while let Some(Reverse((_, i, g))) = ends.peek().copied() {
            if current(&active, i, g) {
                break;
            }
            ends.pop();
        }
        let next_submit = match jobs.peek() {
            None => None,
            Some(Ok(j)) => Some(j.submit),
            Some(Err(_)) => match jobs.next() {
                Some(Err(e)) => return Err(e),
                _ => None,
            },
        };
        let next_end = ends.peek().map(|Reverse((t, _, _))| *t as f64 / 1000.0);
        let t = match (next_submit, next_end) {
            (None, None) => break,
            (Some(s), None) => s,
            (None, Some(e)) => e,
            (Some(s), Some(e)) => s.min(e),
        }
        .max(now);
        let used = capacity.minus(free);
        mem_area += used.memory as f64 * (t - now);
        core_area += used.cores * (t - now);
        now = t;
        while let Some(Reverse((end, i, g))) = ends.peek().copied() {
            if current(&active, i, g) && end as f64 / 1000.0 > now {
                break;
            }
            ends.pop();
            if !current(&active, i, g) {
                continue;
            }
            let Some(a) = active.remove(&i) else { continue };
            free = free.plus(times(a.job.need, a.run.instances));
            for n in a.placed {
                free_nodes[n] = free_nodes[n].plus(a.job.need);
            }
            queue.push(a.started - a.job.submit);
            turnaround.push(a.started - a.job.submit + a.run.ran);
        }
        hungry.retain(|i| active.contains_key(i));
        while let Some(Ok(j)) = jobs.next_if(|j| j.as_ref().is_ok_and(|j| j.submit <= now)) {
            let admitting = vec![j.need; j.admitted(elastic) as usize];
            if place(&mut empty.clone(), &admitting).is_some() {
                waiting.push(Reverse(Queued { key: key(&j), index: next, job: j }));
            } else {
                refused += 1;
            }
            next += 1;
            if next.is_multiple_of(PROGRESS_EVERY) {
                progress(next);
            }
        }
        // The head of the queue in turn, through the scheduler's `pick`, while it fits (what
        // `pick` takes from copies of what is free, as it would over the whole queue).
        let (mut pick_free, mut pick_nodes) = (free, free_nodes.clone());
        // Executions whose running instances change now.
        let mut changed: Vec<(usize, u32)> = Vec::new();
        while let Some(Reverse(head)) = waiting.peek() {
            let w = head.job.waiting(head.index);
            if pick(std::slice::from_ref(&w), &mut pick_free, Some(&mut pick_nodes), elastic).is_empty() {
                break;
            }
            let Some(Reverse(Queued { index: i, job: j, .. })) = waiting.pop() else { break };
            let admitted = j.admitted(elastic);
            free = free.minus(times(j.need, admitted));
            // The same placement `pick` found, in the same order.
            let placed = place(&mut free_nodes, &vec![j.need; admitted as usize]).unwrap_or_default();
            let run = Run { left: j.duration, since: now, ..Run::default() };
            if elastic && j.elastic > 0 {
                hungry.push(i);
            }
            active.insert(i, Active { job: j, started: now, run, placed });
            changed.push((i, admitted));
        }
        let drained = waiting.is_empty();
        // Elastic instances start only when nothing waits for room.
        if elastic && drained && !hungry.is_empty() {
            hungry.sort_by(|a, b| match (active.get(a), active.get(b)) {
                (Some(x), Some(y)) => key(&x.job).cmp(&key(&y.job)).then(a.cmp(b)),
                _ => a.cmp(b),
            });
            let missing: Vec<(u64, Vec<Resources>)> = hungry
                .iter()
                .filter_map(|i| active.get(i).map(|a| (i, a)))
                .map(|(i, a)| {
                    let has = a.run.instances + changed.iter().find(|(c, _)| c == i).map_or(0, |(_, n)| *n);
                    (*i as u64, vec![a.job.need; a.job.instances().saturating_sub(has) as usize])
                })
                .collect();
            for (id, n) in grow(&missing, &mut free.clone(), Some(&mut free_nodes.clone()), |_, _| true) {
                let i = id as usize;
                let Some(a) = active.get_mut(&i) else { continue };
                let need = a.job.need;
                free = free.minus(times(need, n as u32));
                // The same placement `grow` found: instance after instance, in the same order.
                for _ in 0..n {
                    a.placed.extend(place(&mut free_nodes, std::slice::from_ref(&need)).unwrap_or_default());
                }
                match changed.iter_mut().find(|(c, _)| *c == i) {
                    Some((_, add)) => *add += n as u32,
                    None => changed.push((i, n as u32)),
                }
            }
        }
        for (i, add) in changed {
            if let Some(a) = active.get_mut(&i) {
                let (end, generation) = a.run.speed_up(&a.job, a.started, now, add);
                ends.push(Reverse((end, i, generation)));
            }
        }
        hungry.retain(|i| active.get(i).is_some_and(|a| a.run.instances < a.job.instances()));
    }
    let (mean_q, median_q, p95_q) = stats(queue);
    let (mean_t, median_t, _) = stats(turnaround);
    let span = now.max(1e-9);
    Ok(Report {
        policy,
        elastic,
        executions: next,
        refused,
        mean_queue_s: mean_q,
        median_queue_s: median_q,
        p95_queue_s: p95_q,
        mean_turnaround_s: mean_t,
        median_turnaround_s: median_t,
        utilisation_memory: mem_area / (capacity.memory as f64 * span),
        utilisation_cores: if capacity.cores > 0.0 { core_area / (capacity.cores * span) } else { 0.0 },
        makespan_s: now,
    })
}

/// The reports as a Markdown table; `refused` counts the executions that could never start
/// (larger than the platform, or than every node), which the other columns leave out.
pub fn table(reports: &[Report]) -> String {
    let mut out = String::from(
        "| policy | executions | mode | mean queue | median queue | p95 queue | mean turnaround | median turnaround | memory used | cores used | makespan | refused |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} s | {:.0} s | {:.0} s | {:.0} s | {:.0} s | {:.1}% | {:.1}% | {:.0} s | {} |\n",
            r.policy.as_str(),
            r.executions - r.refused,
            if r.elastic { "elastic" } else { "rigid" },
            r.mean_queue_s,
            r.median_queue_s,
            r.p95_queue_s,
            r.mean_turnaround_s,
            r.median_turnaround_s,
            100.0 * r.utilisation_memory,
            100.0 * r.utilisation_cores,
            r.makespan_s,
            r.refused
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const AGING: Duration = Duration::from_secs(600);

    fn one_node(memory: u64, cores: f64) -> [Node; 1] {
        [Node { name: "one".into(), capacity: Resources { memory, cores } }]
    }

    #[test]
    fn a_tiny_trace_is_replayed_exactly() {
        let trace = "submit_s,memory_mib,cores,duration_s,priority\n0,1024,1,100,1\n1,1024,1,10,1\n2,512,1,10,1\n";
        let jobs = parse_trace(trace).unwrap();
        let cap = one_node(GIB, 4.0);
        // fifo: A runs 0-100; B waits until 100; C waits behind B (strict order) until 110.
        let r = simulate(&jobs, &cap, Policy::Fifo, AGING, false);
        assert_eq!((r.mean_queue_s, r.makespan_s), ((0.0 + 99.0 + 108.0) / 3.0, 120.0));
        // size: C (smaller) passes B: C at 100-110, then B 110-120.
        let r = simulate(&jobs, &cap, Policy::Size, AGING, false);
        assert_eq!((r.mean_queue_s, r.makespan_s), ((0.0 + 109.0 + 98.0) / 3.0, 120.0));
        assert!((r.utilisation_memory - (100.0 + 10.0 * 0.5 + 10.0) / 120.0).abs() < 1e-9, "{r:?}");
        // One instance each: elastic is the same.
        for p in Policy::ALL {
            let (rigid, elastic) = (simulate(&jobs, &cap, p, AGING, false), simulate(&jobs, &cap, p, AGING, true));
            assert!(!rigid.elastic && elastic.elastic);
            assert_eq!(Report { elastic: false, ..elastic }, rigid);
        }
    }

    /// One node of 1 GiB. A (512 MiB, 100 s) runs from 0. B, submitted at 1, has 1 essential
    /// and 3 elastic instances of 256 MiB and runs 100 s with all four. C (512 MiB, 50 s) comes
    /// at 2.
    const ELASTIC_TRACE: &str = "\
submit_s,memory_mib,cores,duration_s,priority,essential_instances,elastic_instances
0,512,1,100,1
1,256,0.25,100,1,1,3
2,512,1,50,1,1,0
";

    #[test]
    fn an_elastic_execution_starts_with_what_fits_and_speeds_up() {
        let jobs = parse_trace(ELASTIC_TRACE).unwrap();
        assert_eq!((jobs[1].essential, jobs[1].elastic, jobs[1].total().memory), (1, 3, GIB));
        let cap = one_node(GIB, 4.0);
        // Rigid: B needs the whole node, so it waits for A (100-200) and C behind it (200-250).
        let r = simulate(&jobs, &cap, Policy::Fifo, AGING, false);
        assert_eq!(
            (r.mean_queue_s, r.mean_turnaround_s, r.median_turnaround_s, r.makespan_s),
            ((0.0 + 99.0 + 198.0) / 3.0, (100.0 + 199.0 + 248.0) / 3.0, 199.0, 250.0)
        );
        assert!((r.utilisation_memory - (100.0 * 0.5 + 100.0 + 50.0 * 0.5) / 250.0).abs() < 1e-9, "{r:?}");
        // Elastic: at 1, B starts its essential instance and, the queue being empty, one
        // elastic instance in the 256 MiB left: 2 of 4 running, rate 1/2. At 2, C waits (the
        // node is full). At 100 A ends: C starts in its 512 MiB; nothing is left to grow B.
        // At 150 C ends and B grows to 4 of 4: it has done (150 - 1) / 2 = 74.5 s of work, so
        // 25.5 s are left at full rate: it ends at 175.5.
        let r = simulate(&jobs, &cap, Policy::Fifo, AGING, true);
        assert!(r.elastic);
        assert_eq!(
            (r.refused, r.mean_queue_s, r.mean_turnaround_s, r.median_turnaround_s, r.makespan_s),
            (0, (0.0 + 0.0 + 98.0) / 3.0, (100.0 + 148.0 + 174.5) / 3.0, 148.0, 175.5)
        );
        // The node is full from 1 to 175.5, half full from 0 to 1.
        assert!((r.utilisation_memory - (0.5 + 174.5) / 175.5).abs() < 1e-9, "{r:?}");
        // Cores: 1 (A) + 0.5 (B) from 1 to 100, 1 (C) + 0.5 from 100 to 150, 4 x 0.25 after.
        let cores = 1.0 + 1.5 * 99.0 + 1.5 * 50.0 + 1.0 * 25.5;
        assert!((r.utilisation_cores - cores / (4.0 * 175.5)).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn while_an_execution_waits_for_room_nothing_grows() {
        // A (512 MiB, 50 s) and B (1 essential + 3 elastic of 256 MiB, 100 s) at 0, C (768 MiB,
        // 10 s) at 10, on 1 GiB.
        let trace = "0,512,1,50,1\n0,256,0.25,100,1,1,3\n10,768,1,10,1\n";
        let jobs = parse_trace(trace).unwrap();
        let cap = one_node(GIB, 4.0);
        // Elastic: at 0 A and B's essential instance start, and B grows by one (2 of 4, rate
        // 1/2, to end at 200). At 50 A ends, leaving 512 MiB free, but C (768 MiB) waits for
        // room, so B does not grow into it: B runs at 1/2 until 200, C runs 200-210.
        let r = simulate(&jobs, &cap, Policy::Fifo, AGING, true);
        assert_eq!(
            (r.mean_queue_s, r.mean_turnaround_s, r.makespan_s),
            ((0.0 + 0.0 + 190.0) / 3.0, (50.0 + 200.0 + 200.0) / 3.0, 210.0)
        );
        assert!((r.utilisation_memory - (50.0 + 150.0 * 0.5 + 10.0 * 0.75) / 210.0).abs() < 1e-9, "{r:?}");
        // Rigid: B waits for A (50-150), C for B (150-160). The same mean queue time here, and
        // a shorter turnaround: elastic is not always better.
        let r = simulate(&jobs, &cap, Policy::Fifo, AGING, false);
        assert_eq!(
            (r.mean_queue_s, r.mean_turnaround_s, r.makespan_s),
            ((0.0 + 50.0 + 140.0) / 3.0, (50.0 + 150.0 + 150.0) / 3.0, 160.0)
        );
    }

    #[test]
    fn elastic_instances_need_room_on_one_node() {
        // 1 essential + 3 elastic of 300 MiB, 100 s, on two nodes of 512 MiB: one instance per
        // node, although 424 MiB are left in all. Rigid, the 1200 MiB never fit: refused.
        let jobs = parse_trace("0,300,1,100,1,1,3\n").unwrap();
        let node = |name: &str| Node { name: name.into(), capacity: Resources { memory: 512 << 20, cores: 4.0 } };
        let nodes = [node("n1"), node("n2")];
        let r = simulate(&jobs, &nodes, Policy::Fifo, AGING, false);
        assert_eq!((r.refused, r.makespan_s), (1, 0.0));
        // Elastic: 2 of 4 running, rate 1/2: 200 s.
        let r = simulate(&jobs, &nodes, Policy::Fifo, AGING, true);
        assert_eq!((r.refused, r.mean_queue_s, r.mean_turnaround_s, r.makespan_s), (0, 0.0, 200.0, 200.0));
        assert!((r.utilisation_memory - 600.0 / 1024.0).abs() < 1e-9, "{r:?}");
        // A second one at 10 (essential 300 MiB) waits for the first to end, then does the
        // same: the first's instances were released from their nodes.
        let jobs = parse_trace("0,300,1,100,1,1,3\n10,300,1,100,1,1,3\n").unwrap();
        let r = simulate(&jobs, &nodes, Policy::Fifo, AGING, true);
        assert_eq!((r.mean_queue_s, r.makespan_s), ((0.0 + 190.0) / 2.0, 400.0));
    }

    #[test]
    fn containers_are_placed_on_nodes() {
        // Two jobs of two 400 MiB containers each, at once, 100 s each.
        let trace = "submit_s,memory_mib,cores,duration_s,priority,instances\n0,400,1,100,1,2\n0,400,1,100,1,2\n";
        let jobs = parse_trace(trace).unwrap();
        assert_eq!((jobs[0].essential, jobs[0].elastic), (2, 0));
        let node = |mib: u64| Node { name: format!("n{mib}"), capacity: Resources { memory: mib << 20, cores: 4.0 } };
        // One node of 1600 MiB: both at once. Two of 800, or four of 400: each node takes its
        // share of the four containers, so both jobs run at once too.
        for nodes in [vec![node(1600)], vec![node(800), node(800)], vec![node(400); 4]] {
            let r = simulate(&jobs, &nodes, Policy::Fifo, AGING, false);
            assert_eq!((r.refused, r.mean_queue_s, r.makespan_s), (0, 0.0, 100.0), "{nodes:?}");
        }
        // Two nodes of 600 MiB: 1200 MiB in all, but one 400 MiB container per node: one job at
        // a time, although 1200 - 800 = 400 MiB are free in the sum while the first runs.
        let r = simulate(&jobs, &[node(600), node(600)], Policy::Fifo, AGING, false);
        assert_eq!((r.refused, r.mean_queue_s, r.makespan_s), (0, 50.0, 200.0));
        // A container larger than every node is refused, even if the sum would hold it.
        let big = parse_trace("0,700,1,10,1,1\n").unwrap();
        assert_eq!(simulate(&big, &[node(600), node(600)], Policy::Fifo, AGING, false).refused, 1);
        assert_eq!(simulate(&big, &[node(600), node(600)], Policy::Fifo, AGING, true).refused, 1);
        assert!(parse_trace("0,1,1,1,1,0\n").unwrap_err().contains("instances"));
    }

    #[test]
    fn bad_traces_name_the_line_and_the_column() {
        assert!(parse_trace("submit_s,memory_mib,cores,duration_s,priority\n1,2,3\n").unwrap_err().contains("line 2"));
        assert!(parse_trace("0,x,1,1,1\n").unwrap_err().contains("memory_mib"));
        assert!(parse_trace("0,1,1,1,2000\n").unwrap_err().contains("priority"));
        let err = |line: &str| parse_trace(&format!("{HEADER}\n0,1,1,1,1,1,0\n{line}\n")).unwrap_err();
        for (line, want) in [
            ("5,1,1,1,1,0,2", "line 3: essential_instances \"0\" is not a whole number from 1 to 1000"),
            ("5,1,1,1,1,-1,2", "line 3: essential_instances \"-1\""),
            ("5,1,1,1,1,1,x", "line 3: elastic_instances \"x\" is not a whole number from 0 to 1000"),
            ("5,1,1,1,1,1,2.5", "line 3: elastic_instances \"2.5\""),
            ("5,1,1,1,1,1,", "line 3: elastic_instances \"\""),
            ("5,1,1,1,1,600,401", "line 3: essential_instances + elastic_instances is 1001, more than 1000"),
            ("5,1,1,1,1,1,2,3", "line 3: 8 fields, expected 5 to 7"),
        ] {
            assert!(err(line).starts_with(want), "{line}: {}", err(line));
        }
        // The largest and the old forms read.
        let jobs = parse_trace(&format!("{HEADER}\n0,1,1,1,1,1,999\n1,1,1,1,1,7\n2,1,1,1,1\n")).unwrap();
        let counts: Vec<(u32, u32)> = jobs.iter().map(|j| (j.essential, j.elastic)).collect();
        assert_eq!(counts, [(1, 999), (7, 0), (1, 0)]);
        assert_eq!(parse_trace(&to_csv(&jobs)).unwrap(), jobs);
    }

    #[test]
    fn generated_traces_have_elastic_jobs_and_the_offered_load() {
        let cap = Resources { memory: 64 * GIB, cores: 32.0 };
        let jobs = generate(2000, 3, cap, 0.9);
        assert_eq!(generate(2000, 3, cap, 0.9), jobs, "reproducible");
        assert_ne!(generate(2000, 4, cap, 0.9), jobs);
        let mut kinds = [0; 3];
        let mut work = 0.0;
        for j in &jobs {
            assert_eq!(j.essential, 1);
            let t = j.total();
            assert!(t.fits(cap), "{j:?}");
            // Small ones have no elastic instance, medium ones (up to 4 GiB) 2 to 4, large ones 4 to 8.
            let kind = match j.elastic {
                0 => 0,
                _ if t.memory <= 6000 << 20 => 1,
                _ => 2,
            };
            assert!([0..=0, 2..=4, 4..=8][kind].contains(&j.elastic), "{j:?}");
            kinds[kind] += 1;
            work += (t.memory as f64 / cap.memory as f64).max(t.cores / cap.cores) * j.duration;
        }
        // About 70%, 25% and 5%.
        assert!(kinds[0] > 1300 && kinds[1] > 400 && kinds[2] > 60, "{kinds:?}");
        let load = work / jobs.last().unwrap().submit;
        assert!((0.8..1.0).contains(&load), "offered load {load}");
    }

    #[test]
    fn generated_traces_round_trip_and_ten_thousand_simulate_quickly() {
        let cap = Resources { memory: 64 * GIB, cores: 32.0 };
        let jobs = generate(10_000, 7, cap, 0.9);
        assert_eq!(generate(10_000, 7, cap, 0.9), jobs, "reproducible");
        let again = parse_trace(&to_csv(&jobs)).unwrap();
        assert_eq!(again, jobs);
        let nodes = [Node { name: "one".into(), capacity: cap }];
        for p in Policy::ALL {
            let mut mean_queue = Vec::new();
            for elastic in [false, true] {
                let t = std::time::Instant::now();
                let r = simulate(&again, &nodes, p, Duration::from_secs(3600), elastic);
                assert_eq!((r.executions, r.refused, r.elastic), (10_000, 0, elastic));
                assert!(r.utilisation_memory > 0.3 && r.utilisation_memory <= 1.0, "{r:?}");
                eprintln!("{} elastic={elastic} in {:?}: {r:?}", p.as_str(), t.elapsed());
                mean_queue.push(r.mean_queue_s);
            }
            // Admitting on essential instances shortens the queue.
            assert!(mean_queue[1] <= mean_queue[0], "{}: rigid, elastic {mean_queue:?}", p.as_str());
        }
    }

    #[test]
    fn hostile_lines_are_refused_with_their_number_and_never_panic() {
        let err = |trace: &str| parse_trace(trace).unwrap_err();
        // Times that once overflowed the clock (about 2.6e11 s and more), and other numbers out
        // of range.
        for (line, want) in [
            ("3e11,1,1,1,1", "line 2: submit_s \"3e11\" is not a number from 0 to 10000000000"),
            ("0,1,1,2.6e11,1", "line 2: duration_s \"2.6e11\""),
            ("0,1,1,1e308,1", "line 2: duration_s"),
            ("NaN,1,1,1,1", "line 2: submit_s \"NaN\""),
            ("0,inf,1,1,1", "line 2: memory_mib \"inf\""),
            ("0,1,-1,1,1", "line 2: cores \"-1\""),
            ("0,1,1e9,1,1", "line 2: cores \"1e9\""),
        ] {
            assert!(err(&format!("{HEADER}\n{line}\n")).starts_with(want), "{line}: {}", err(line));
        }
        // Lines out of submission order, a line without end, bytes that are not text.
        assert!(err("5,1,1,1,1\n4,1,1,1,1\n").starts_with("line 2: submit_s 4 is earlier than the line before (5)"));
        assert!(err(&"0".repeat(100_000)).starts_with("line 1 is longer than 1024 bytes"));
        let long = format!("{HEADER}\n0,1,1,1,1{}\n", " ".repeat(2000));
        assert!(err(&long).starts_with("line 2 is longer than 1024 bytes"));
        let bytes: &[u8] = b"0,1,1,1,1\n\xff\xfe,1,1,1,1\n";
        let got: Result<Vec<Job>, String> = TraceReader::new(bytes).collect();
        assert!(got.unwrap_err().starts_with("line 2 is not text (UTF-8)"));
        // The largest values read and simulate without trouble.
        let jobs = parse_trace("1e10,1099511627776,1000000,1e10,1024,1,999\n").unwrap();
        let r = simulate(&jobs, &one_node(u64::MAX, 1e9), Policy::Priority, AGING, true);
        assert_eq!(r.executions, 1);
    }

    #[test]
    fn a_stream_stops_at_its_first_error_and_keeps_only_what_waits_or_runs() {
        let trace = format!("{HEADER}\n0,1,1,10,1\n1,1,1,10,1\n2,x,1,1,1\n3,1,1,1,1\n");
        let e = simulate_stream(
            TraceReader::new(trace.as_bytes()),
            &one_node(GIB, 1.0),
            Policy::Fifo,
            AGING,
            false,
            |_| {},
        );
        assert_eq!(e.unwrap_err(), "line 4: memory_mib \"x\" is not a number from 0 to 1099511627776");
        // A long trace made on the fly (never held whole), overloaded: progress is told every
        // PROGRESS_EVERY submissions and every execution is counted.
        let cap = Resources { memory: 64 * GIB, cores: 32.0 };
        let n = 3 * PROGRESS_EVERY + 5;
        let jobs = generate_iter(n, 11, cap, 3.0).map(Ok::<Job, String>);
        let mut told = Vec::new();
        let nodes = [Node { name: "one".into(), capacity: cap }];
        let r = simulate_stream(jobs, &nodes, Policy::Size, AGING, true, |k| told.push(k)).unwrap();
        assert_eq!(told, [PROGRESS_EVERY, 2 * PROGRESS_EVERY, 3 * PROGRESS_EVERY]);
        assert_eq!((r.executions, r.refused), (n, 0));
        assert!(r.utilisation_memory > 0.9, "overloaded: {r:?}");
    }

    #[test]
    fn refused_executions_are_counted_and_shown() {
        // One of 2 GiB on a node of 1 GiB: refused, the other runs.
        let jobs = parse_trace("0,2048,1,10,1\n0,512,1,10,1\n").unwrap();
        let r = simulate(&jobs, &one_node(GIB, 4.0), Policy::Fifo, AGING, false);
        assert_eq!((r.executions, r.refused, r.makespan_s), (2, 1, 10.0));
        let t = table(&[r]);
        let row = t.lines().nth(2).unwrap();
        assert!(row.starts_with("| fifo | 1 | rigid |") && row.ends_with("| 10 s | 1 |"), "{t}");
        assert!(t.lines().next().unwrap().ends_with("| makespan | refused |"), "{t}");
    }

    #[test]
    fn the_queue_key_orders_as_the_scheduler_does_at_any_moment() {
        use crate::logic::scheduler::order;
        // Executions of distinct sizes and priorities at irregular times: no two have the same
        // score, so the scheduler's order at any moment after the last submission is a fact.
        let cap = Resources { memory: 64 * GIB, cores: 32.0 };
        let mut x = 7u64;
        let mut rnd = move || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let jobs: Vec<Job> = (0..400)
            .map(|i| Job {
                submit: f64::from(i) * 37.3 + rnd(),
                need: Resources { memory: (rnd() * 8e9) as u64 + 1, cores: 0.01 },
                duration: 10.0,
                priority: (rnd() * 1024.0) as u32,
                essential: 1,
                elastic: (rnd() * 4.0) as u32,
            })
            .collect();
        let epoch = OffsetDateTime::UNIX_EPOCH;
        for policy in Policy::ALL {
            for aging in [Duration::from_secs(60), Duration::from_secs(3600)] {
                let mut keyed: Vec<usize> = (0..jobs.len()).collect();
                let key = |i: &usize| QueueKey::of(&jobs[*i], policy, cap, aging);
                keyed.sort_by(|a, b| key(a).cmp(&key(b)).then(a.cmp(b)));
                for now in [15_000.0, 1e5, 3e6] {
                    let mut queue: Vec<Waiting> = jobs
                        .iter()
                        .enumerate()
                        .map(|(i, j)| Waiting {
                            submitted: epoch + time::Duration::seconds_f64(j.submit),
                            ..j.waiting(i)
                        })
                        .collect();
                    order(&mut queue, policy, Some(cap), aging, epoch + time::Duration::seconds_f64(now));
                    let ordered: Vec<usize> = queue.iter().map(|w| w.id as usize).collect();
                    assert_eq!(ordered, keyed, "{} aging {aging:?} at {now}", policy.as_str());
                }
            }
        }
    }

    #[test]
    fn the_generator_streams_the_same_trace_as_before() {
        // The shipped trace was made by `zoe simulate --generate 2000 --seed 1` (64 GiB, 32 cores,
        // load 0.9) when the generator held every execution; made line by line, it is the same.
        let cap = Resources { memory: 64 * GIB, cores: 32.0 };
        let shipped = include_str!("../../../tests/fixtures/traces/elastic-2000.csv");
        assert_eq!(to_csv(&generate(2000, 1, cap, 0.9)), shipped);
        let lines: Vec<String> = generate_iter(2000, 1, cap, 0.9).map(|j| csv_line(&j)).collect();
        assert_eq!(lines.join("\n") + "\n", shipped.split_once('\n').unwrap().1);
    }
}
