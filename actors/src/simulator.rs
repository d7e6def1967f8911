//! The scheduling simulator behind `zoe simulate`: replays a workload through the same pure
//! ordering, picking and placement functions as the master ([`crate::scheduler::order`],
//! [`crate::scheduler::pick`], [`crate::placement::place`]), with a simulated clock and a list of
//! nodes, and reports queue times, turnaround times and utilisation.
//!
//! A trace is CSV, one execution per line, after a header line:
//!
//! ```text
//! submit_s,memory_mib,cores,duration_s,priority,instances
//! 0,512,1,300,100,1
//! 12.5,4096,2,1800,900,4
//! ```
//!
//! `submit_s` is when it is submitted (seconds from the start), `memory_mib` and `cores` what
//! each of its `instances` containers reserves (each placed on a node), `duration_s` how long it
//! runs once started, `priority` 0 to 1024 (higher first with the `priority` policy). The
//! `instances` column may be left out (1).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use time::OffsetDateTime;

use crate::placement::{place, Node};
use crate::scheduler::{order, pick, Policy, Resources, Waiting};

/// One execution of a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub submit: f64,
    /// What each instance reserves.
    pub need: Resources,
    pub duration: f64,
    pub priority: u32,
    /// Containers, each placed on a node.
    pub instances: u32,
}

impl Job {
    /// What all its instances reserve together.
    pub fn total(&self) -> Resources {
        Resources {
            memory: self.need.memory.saturating_mul(u64::from(self.instances)),
            cores: self.need.cores * f64::from(self.instances),
        }
    }

    fn each(&self) -> Vec<Resources> {
        vec![self.need; self.instances as usize]
    }
}

/// The header line of a trace.
pub const HEADER: &str = "submit_s,memory_mib,cores,duration_s,priority,instances";

/// Parses a trace; the error names the line.
pub fn parse_trace(text: &str) -> Result<Vec<Job>, String> {
    let mut jobs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || (i == 0 && line.starts_with("submit")) {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let bad = |what: &str| format!("line {}: {what} (expected {HEADER})", i + 1);
        if f.len() != 5 && f.len() != 6 {
            return Err(bad(&format!("{} fields", f.len())));
        }
        let instances = match f.get(5) {
            None => 1,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| bad("instances must be 1 to 1000"))?,
        };
        let num = |k: usize, name: &str| {
            f[k].parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| bad(&format!("{name} {:?} is not a number >= 0", f[k])))
        };
        let memory = num(1, "memory_mib")?;
        let priority =
            f[4].parse::<u32>().ok().filter(|p| *p <= 1024).ok_or_else(|| bad("priority must be 0 to 1024"))?;
        jobs.push(Job {
            submit: num(0, "submit_s")?,
            need: Resources { memory: (memory * 1024.0 * 1024.0) as u64, cores: num(2, "cores")? },
            duration: num(3, "duration_s")?,
            priority,
            instances,
        });
    }
    jobs.sort_by(|a, b| a.submit.total_cmp(&b.submit));
    Ok(jobs)
}

/// A reproducible synthetic workload of `n` executions for a platform of `capacity`: mostly
/// small interactive ones, some medium, a few large batch ones, arriving at random (Poisson)
/// at a rate that keeps the platform about `load` busy (0.9: 90%).
pub fn generate(n: usize, seed: u64, capacity: Resources, load: f64) -> Vec<Job> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut jobs = Vec::with_capacity(n);
    let mut work = 0.0;
    for _ in 0..n {
        let kind = rnd();
        let (mem_mib, cores, dur) = if kind < 0.7 {
            (256.0 + 768.0 * rnd(), 0.5 + 0.5 * rnd(), 60.0 + 540.0 * rnd())
        } else if kind < 0.95 {
            (2048.0 + 2048.0 * rnd(), 1.0 + rnd(), 600.0 + 3000.0 * rnd())
        } else {
            (8192.0 + 8192.0 * rnd(), 4.0, 3600.0 + 7200.0 * rnd())
        };
        let need = Resources { memory: (mem_mib * 1024.0 * 1024.0) as u64, cores: (cores * 10.0_f64).round() / 10.0 };
        let share = (need.memory as f64 / capacity.memory as f64).max(need.cores / capacity.cores);
        work += share * dur;
        jobs.push(Job { submit: 0.0, need, duration: dur.round(), priority: (rnd() * 1024.0) as u32, instances: 1 });
    }
    // Spread the submissions so that the offered load is `load`.
    let span = work / load.max(0.01);
    let mean_gap = span / n.max(1) as f64;
    let mut t = 0.0;
    for j in &mut jobs {
        j.submit = (t * 10.0_f64).round() / 10.0;
        t += -mean_gap * (1.0 - rnd()).ln();
    }
    jobs
}

/// Writes a trace.
pub fn to_csv(jobs: &[Job]) -> String {
    let mut out = String::from(HEADER);
    out.push('\n');
    for j in jobs {
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            j.submit,
            j.need.memory / (1024 * 1024),
            j.need.cores,
            j.duration,
            j.priority,
            j.instances
        ));
    }
    out
}

/// What a simulation measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub policy: Policy,
    pub executions: usize,
    /// Executions larger than the whole capacity, refused at submit.
    pub refused: usize,
    pub mean_queue_s: f64,
    pub median_queue_s: f64,
    pub p95_queue_s: f64,
    pub mean_turnaround_s: f64,
    pub median_turnaround_s: f64,
    /// Reserved memory over time, as a share of the capacity, until the last one ends.
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

/// Replays `jobs` through the scheduler on a platform of these `nodes`.
pub fn simulate(jobs: &[Job], nodes: &[Node], policy: Policy, aging: Duration) -> Report {
    let epoch = OffsetDateTime::UNIX_EPOCH;
    let at = |s: f64| epoch + time::Duration::seconds_f64(s);
    let capacity = nodes.iter().fold(Resources::default(), |acc, n| acc.plus(n.capacity));
    let empty: Vec<Resources> = nodes.iter().map(|n| n.capacity).collect();
    let mut waiting: Vec<Waiting> = Vec::new();
    // (end time in ms, job index), soonest first.
    let mut running: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut free = capacity;
    let mut free_nodes = empty.clone();
    // The node of each instance of each running job.
    let mut placed: Vec<Vec<usize>> = vec![Vec::new(); jobs.len()];
    let mut started = vec![f64::NAN; jobs.len()];
    let mut refused = 0;
    let (mut mem_area, mut core_area) = (0.0, 0.0);
    let mut now = 0.0f64;
    let mut next = 0usize;
    loop {
        let next_submit = jobs.get(next).map(|j| j.submit);
        let next_end = running.peek().map(|Reverse((t, _))| *t as f64 / 1000.0);
        let t = match (next_submit, next_end) {
            (None, None) => break,
            (Some(s), None) => s,
            (None, Some(e)) => e,
            (Some(s), Some(e)) => s.min(e),
        };
        let used = capacity.minus(free);
        mem_area += used.memory as f64 * (t - now);
        core_area += used.cores * (t - now);
        now = t;
        while let Some(Reverse((end, i))) = running.peek().copied() {
            if end as f64 / 1000.0 > now {
                break;
            }
            running.pop();
            free = free.plus(jobs[i].total());
            for n in std::mem::take(&mut placed[i]) {
                free_nodes[n] = free_nodes[n].plus(jobs[i].need);
            }
        }
        while let Some(j) = jobs.get(next).filter(|j| j.submit <= now) {
            if place(&mut empty.clone(), &j.each()).is_some() {
                waiting.push(Waiting {
                    id: next as u64,
                    submitted: at(j.submit),
                    priority: j.priority,
                    need: j.total(),
                    instances: j.each(),
                    essential: j.each(),
                });
            } else {
                refused += 1;
            }
            next += 1;
        }
        order(&mut waiting, policy, Some(capacity), aging, at(now));
        let chosen = pick(&waiting, &mut free.clone(), Some(&mut free_nodes.clone()), false);
        if !chosen.is_empty() {
            for id in &chosen {
                let i = *id as usize;
                started[i] = now;
                free = free.minus(jobs[i].total());
                // The same placement `pick` found, in the same order.
                placed[i] = place(&mut free_nodes, &jobs[i].each()).unwrap_or_default();
                running.push(Reverse((((now + jobs[i].duration) * 1000.0).round() as u64, i)));
            }
            let n = chosen.len();
            // `pick` takes a prefix of the ordered queue.
            waiting.drain(..n);
        }
    }
    let mut queue = Vec::new();
    let mut turnaround = Vec::new();
    for (j, s) in jobs.iter().zip(&started) {
        if s.is_finite() {
            queue.push(s - j.submit);
            turnaround.push(s - j.submit + j.duration);
        }
    }
    let (mean_q, median_q, p95_q) = stats(queue);
    let (mean_t, median_t, _) = stats(turnaround);
    let span = now.max(1e-9);
    Report {
        policy,
        executions: jobs.len(),
        refused,
        mean_queue_s: mean_q,
        median_queue_s: median_q,
        p95_queue_s: p95_q,
        mean_turnaround_s: mean_t,
        median_turnaround_s: median_t,
        utilisation_memory: mem_area / (capacity.memory as f64 * span),
        utilisation_cores: if capacity.cores > 0.0 { core_area / (capacity.cores * span) } else { 0.0 },
        makespan_s: now,
    }
}

/// The reports as a Markdown table.
pub fn table(reports: &[Report]) -> String {
    let mut out = String::from(
        "| policy | executions | mean queue | median queue | p95 queue | mean turnaround | median turnaround | memory used | cores used | makespan |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        out.push_str(&format!(
            "| {} | {} | {:.0} s | {:.0} s | {:.0} s | {:.0} s | {:.0} s | {:.1}% | {:.1}% | {:.0} s |\n",
            r.policy.as_str(),
            r.executions - r.refused,
            r.mean_queue_s,
            r.median_queue_s,
            r.p95_queue_s,
            r.mean_turnaround_s,
            r.median_turnaround_s,
            100.0 * r.utilisation_memory,
            100.0 * r.utilisation_cores,
            r.makespan_s
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn a_tiny_trace_is_replayed_exactly() {
        let trace = "submit_s,memory_mib,cores,duration_s,priority\n0,1024,1,100,1\n1,1024,1,10,1\n2,512,1,10,1\n";
        let jobs = parse_trace(trace).unwrap();
        let cap = [Node { name: "one".into(), capacity: Resources { memory: GIB, cores: 4.0 } }];
        // fifo: A runs 0-100; B waits until 100; C waits behind B (strict order) until 110.
        let r = simulate(&jobs, &cap, Policy::Fifo, Duration::from_secs(600));
        assert_eq!((r.mean_queue_s, r.makespan_s), ((0.0 + 99.0 + 108.0) / 3.0, 120.0));
        // size: C (smaller) passes B: C at 100-110, then B 110-120.
        let r = simulate(&jobs, &cap, Policy::Size, Duration::from_secs(600));
        assert_eq!((r.mean_queue_s, r.makespan_s), ((0.0 + 109.0 + 98.0) / 3.0, 120.0));
        assert!((r.utilisation_memory - (100.0 + 10.0 * 0.5 + 10.0) / 120.0).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn containers_are_placed_on_nodes() {
        // Two jobs of two 400 MiB containers each, at once, 100 s each.
        let trace = "submit_s,memory_mib,cores,duration_s,priority,instances\n0,400,1,100,1,2\n0,400,1,100,1,2\n";
        let jobs = parse_trace(trace).unwrap();
        let node = |mib: u64| Node { name: format!("n{mib}"), capacity: Resources { memory: mib << 20, cores: 4.0 } };
        // One node of 1600 MiB: both at once. Two of 800, or four of 400: each node takes its
        // share of the four containers, so both jobs run at once too.
        for nodes in [vec![node(1600)], vec![node(800), node(800)], vec![node(400); 4]] {
            let r = simulate(&jobs, &nodes, Policy::Fifo, Duration::from_secs(600));
            assert_eq!((r.refused, r.mean_queue_s, r.makespan_s), (0, 0.0, 100.0), "{nodes:?}");
        }
        // Two nodes of 600 MiB: 1200 MiB in all, but one 400 MiB container per node: one job at
        // a time, although 1200 - 800 = 400 MiB are free in the sum while the first runs.
        let r = simulate(&jobs, &[node(600), node(600)], Policy::Fifo, Duration::from_secs(600));
        assert_eq!((r.refused, r.mean_queue_s, r.makespan_s), (0, 50.0, 200.0));
        // A container larger than every node is refused, even if the sum would hold it.
        let big = parse_trace("0,700,1,10,1,1\n").unwrap();
        assert_eq!(simulate(&big, &[node(600), node(600)], Policy::Fifo, Duration::from_secs(600)).refused, 1);
        assert!(parse_trace("0,1,1,1,1,0\n").unwrap_err().contains("instances"));
    }

    #[test]
    fn bad_traces_name_the_line() {
        assert!(parse_trace("submit_s,memory_mib,cores,duration_s,priority\n1,2,3\n").unwrap_err().contains("line 2"));
        assert!(parse_trace("0,x,1,1,1\n").unwrap_err().contains("memory_mib"));
        assert!(parse_trace("0,1,1,1,2000\n").unwrap_err().contains("priority"));
    }

    #[test]
    fn generated_traces_round_trip_and_ten_thousand_simulate_quickly() {
        let cap = Resources { memory: 64 * GIB, cores: 32.0 };
        let jobs = generate(10_000, 7, cap, 0.9);
        assert_eq!(generate(10_000, 7, cap, 0.9), jobs, "reproducible");
        let again = parse_trace(&to_csv(&jobs)).unwrap();
        assert_eq!(again.len(), jobs.len());
        for p in [Policy::Fifo, Policy::Priority, Policy::Size] {
            let t = std::time::Instant::now();
            let r = simulate(&again, &[Node { name: "one".into(), capacity: cap }], p, Duration::from_secs(3600));
            assert_eq!(r.executions, 10_000);
            assert!(r.utilisation_memory > 0.3 && r.utilisation_memory <= 1.0, "{r:?}");
            eprintln!("{} in {:?}: {r:?}", p.as_str(), t.elapsed());
        }
    }
}
