//! The figures of `/metrics` and `/readyz`.

use zoe_checkpoints::ExecutionStatus;

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
