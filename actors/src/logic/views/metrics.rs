//! The figures of `/metrics` and `/readyz`.

use zoe_checkpoints::archive::usage::DAY;
use zoe_checkpoints::{ExecutionStatus, Timestamp};

use super::usage::{usage_report, UsageBy, UsageQuery};
use crate::logic::access::Caller;
use crate::logic::placement;
use crate::logic::reader::{Counters, Published};
use crate::logic::scheduler::SchedulerConfig;

/// Figures for `/metrics` and `/readyz`; no names.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    pub executions_by_status: Vec<(ExecutionStatus, usize)>,
    pub queue_length: usize,
    pub memory_reserved: u64,
    pub memory_total: Option<u64>,
    pub cores_reserved: f64,
    pub cores_total: Option<f64>,
    pub docker_reachable: bool,
    pub counters: Counters,
}

/// The figures of `/metrics`.
pub fn metrics(p: &Published, sched: &SchedulerConfig) -> Metrics {
    let by_status: Vec<(ExecutionStatus, usize)> = ExecutionStatus::ALL
        .iter()
        .map(|st| (*st, p.state.executions.values().filter(|e| e.status == *st).count() + p.archive.count(*st)))
        .collect();
    // An execution both in the checkpoint and in the archive (after a crash or a revert) counts
    // once, as the checkpoint's.
    let mut by_status = by_status;
    for e in p.state.executions.values().filter(|e| e.status.is_final()) {
        if let Some(a) = p.archive.get(e.id) {
            if let Some((_, n)) = by_status.iter_mut().find(|(st, _)| *st == a.entry().status) {
                *n = n.saturating_sub(1);
            }
        }
    }
    let used = placement::reserved(&p.state, sched.elastic);
    let capacity = sched.capacity(p.platform.nodes());
    Metrics {
        queue_length: by_status.first().map(|(_, n)| *n).unwrap_or(0),
        executions_by_status: by_status,
        memory_reserved: used.memory,
        memory_total: capacity.map(|c| c.memory),
        cores_reserved: used.cores,
        cores_total: capacity.map(|c| c.cores),
        docker_reachable: p.platform.reachable,
        counters: p.counters.clone(),
    }
}

/// What one running execution used so far and reserves now, for `/metrics`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionUsageFigures {
    pub owner: String,
    pub id: u64,
    /// CPU time its containers used since it started, in seconds.
    pub cpu_seconds: f64,
    /// Memory in use at the last sample, in bytes.
    pub memory_bytes: u64,
    pub cores_reserved: f64,
    pub memory_reserved: u64,
}

/// The usage series of `/metrics` a caller may see.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsageFigures {
    /// Running executions only (an ended one's series goes), by id.
    pub executions: Vec<ExecutionUsageFigures>,
    /// Each user's CPU time over every execution, ended ones included, in seconds (it never
    /// goes back when an execution ends), by name.
    pub users: Vec<(String, f64)>,
}

/// The usage figures `caller` may see: an administrator everyone's, a user their own; nobody
/// signed in, none (they carry names). Running executions with their newest measured usage.
pub fn usage_figures(p: &Published, sched: &SchedulerConfig, caller: Option<&Caller>, now: Timestamp) -> UsageFigures {
    let Some(caller) = caller else { return UsageFigures::default() };
    let executions = p
        .state
        .executions
        .values()
        .filter(|e| e.status == ExecutionStatus::Running && caller.can_see(e.owner_id))
        .map(|e| {
            let held = placement::held_now(e, sched.elastic);
            let e = p.metered(e);
            ExecutionUsageFigures {
                owner: e.owner.clone(),
                id: e.id,
                cpu_seconds: e.usage.cpu_seconds,
                memory_bytes: e.usage_series.memory_bytes,
                cores_reserved: held.cores,
                memory_reserved: held.memory,
            }
        })
        .collect();
    // Every day up to the end of today: each execution's whole usage, ended ones' included.
    let all_time = UsageQuery { from: 0, to: (now.unix_timestamp().div_euclid(DAY) + 1) * DAY, by: UsageBy::User };
    let users = usage_report(p, caller, &all_time, now)
        .map(|rows| rows.into_iter().map(|r| (r.user, r.cpu_core_hours * 3600.0)).collect())
        .unwrap_or_default();
    UsageFigures { executions, users }
}
