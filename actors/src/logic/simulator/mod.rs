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

mod trace;

use trace::times;

pub use trace::{
    csv_line, generate, generate_iter, parse_line, parse_trace, to_csv, Job, TraceReader, HEADER, MAX_CORES,
    MAX_INSTANCES, MAX_LINE, MAX_MEMORY_MIB, MAX_SECONDS,
};

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use crate::logic::placement::{place, Node};
use crate::logic::resources::Resources;
use crate::logic::scheduler::{grow, pick, Policy};

/// How often, in executions submitted, a simulation reports its progress.
pub const PROGRESS_EVERY: usize = 1 << 14;

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
mod tests;
