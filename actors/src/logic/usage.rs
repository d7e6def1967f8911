//! Usage accounting: what a round of container samples adds to each running execution's
//! [`Usage`] and [`UsageSeries`].
//!
//! A sample of a container tells the CPU time it used since it started (a counter) and the
//! memory it uses now. Each round adds, per execution:
//! - CPU: what each container's counter grew by since the last round (its value then is kept in
//!   the service's `cpu_ns`, in the checkpoints; a counter that went down belongs to a new
//!   container, counted from 0). A restarted master therefore loses no CPU time of a container
//!   that kept running: its next sample counts from the counter last written;
//! - memory: the memory in use now times the time since the last round (the end of the series'
//!   last point; the execution's start the first time), and the peak;
//! - reserved: the cores and memory reserved by each running container times that same time
//!   (also when the back end cannot sample, as on a Swarm).
//!
//! The series gets one point per round (joined with the last while it covers less than the
//! series' `step`); when it holds more than [`SERIES_POINTS`], neighbours merge and `step`
//! doubles, so it covers the whole run with at most that many points.

use std::collections::HashMap;
use std::sync::Arc;

use zoe_checkpoints::{
    Execution, ExecutionStatus, ServiceStatus, State, Timestamp, UsagePoint, UsageSeries, SERIES_POINTS,
};

use crate::protocol::Stats;

/// One round of samples of an execution's containers, by service id (`None`: not known).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecutionSample {
    pub execution_id: u64,
    pub services: Vec<(u64, Option<Stats>)>,
}

/// Adds a round of samples taken at `now` to the executions still running or cleaning up;
/// `step` is the sampling interval in seconds (the series' first step). Returns the ids of the
/// executions whose usage changed.
pub fn record(state: &mut State, samples: &[ExecutionSample], now: Timestamp, step: u32) -> Vec<u64> {
    let mut changed = Vec::new();
    for sample in samples {
        let Some(e) = state.executions.get_mut(&sample.execution_id) else { continue };
        if !matches!(e.status, ExecutionStatus::Running | ExecutionStatus::CleaningUp) {
            continue;
        }
        if record_one(Arc::make_mut(e), sample, now, step) {
            changed.push(sample.execution_id);
        }
    }
    changed
}

/// Adds one execution's round; whether anything was added.
fn record_one(e: &mut Execution, sample: &ExecutionSample, now: Timestamp, step: u32) -> bool {
    let now_s = now.unix_timestamp();
    let Some(since) = e.usage_series.last_at().or(e.time_started.map(|t| t.unix_timestamp())) else { return false };
    let dt = now_s - since;
    if dt <= 0 {
        return false;
    }
    let seconds = dt as f64;
    let stats: HashMap<u64, Option<Stats>> = sample.services.iter().copied().collect();
    let mut cpu_ns: u64 = 0;
    let mut memory: Option<u64> = None;
    let (mut cores, mut reserved_memory) = (0.0, 0.0);
    let reserved: Vec<(f64, f64)> = e
        .services
        .iter()
        .filter(|s| s.status == ServiceStatus::Running)
        .map(|s| {
            let r = e.description_of(s).map(|d| &d.required_resources);
            (r.and_then(|r| r.cores).unwrap_or(0.0), r.map(|r| r.memory as f64).unwrap_or(0.0))
        })
        .collect();
    for (c, m) in reserved {
        cores += c;
        reserved_memory += m;
    }
    for s in e.services.iter_mut().filter(|s| s.status == ServiceStatus::Running) {
        let Some(Some(st)) = stats.get(&s.id) else { continue };
        // A counter below the last one is a new container's (an elastic instance started again).
        let grown = if st.cpu_ns >= s.cpu_ns { st.cpu_ns - s.cpu_ns } else { st.cpu_ns };
        s.cpu_ns = st.cpu_ns;
        cpu_ns = cpu_ns.saturating_add(grown);
        if let Some(m) = st.memory {
            memory = Some(memory.unwrap_or(0).saturating_add(m));
        }
    }
    let used = cpu_ns as f64 / 1e9;
    let u = &mut e.usage;
    u.cpu_seconds += used;
    u.reserved_core_seconds += cores * seconds;
    u.reserved_memory_byte_seconds += reserved_memory * seconds;
    if let Some(m) = memory {
        u.memory_byte_seconds += m as f64 * seconds;
        u.memory_peak_bytes = u.memory_peak_bytes.max(m);
    }
    let point = UsagePoint(now_s, u32::try_from(dt).unwrap_or(u32::MAX), used / seconds, memory.unwrap_or(0));
    add_point(&mut e.usage_series, point, memory.unwrap_or(0), step);
    true
}

/// Adds a point to a series: joined with the last while that covers less than `step`; when the
/// series is over [`SERIES_POINTS`], neighbours merge and the step doubles.
pub fn add_point(series: &mut UsageSeries, p: UsagePoint, memory_now: u64, first_step: u32) {
    if series.step == 0 {
        series.step = first_step.max(1);
    }
    series.memory_bytes = memory_now;
    match series.points.last_mut() {
        Some(last) if last.seconds() < series.step => *last = merge(*last, p),
        _ => series.points.push(p),
    }
    if series.points.len() > SERIES_POINTS {
        series.points = series.points.chunks(2).map(|c| c.iter().copied().reduce(merge).unwrap_or_default()).collect();
        series.step = series.step.saturating_mul(2);
    }
}

/// Two neighbouring points as one: the later end, the sum of their spans, the means weighted by
/// their spans.
fn merge(a: UsagePoint, b: UsagePoint) -> UsagePoint {
    let (wa, wb) = (f64::from(a.seconds()), f64::from(b.seconds()));
    let total = wa + wb;
    if total <= 0.0 {
        return b;
    }
    UsagePoint(
        a.end().max(b.end()),
        a.seconds().saturating_add(b.seconds()),
        (a.cores() * wa + b.cores() * wb) / total,
        ((a.memory() as f64 * wa + b.memory() as f64 * wb) / total) as u64,
    )
}

#[cfg(test)]
mod tests;
