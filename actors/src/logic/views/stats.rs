//! The two statistics (the scheduler's, the platform's) and the platform page's overview.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zoe_checkpoints::{Execution, ExecutionStatus, Timestamp};

use super::{instances, list_executions, positions, ExecutionView, Instances};
use crate::error::ZoeError;
use crate::logic::access::{self, Caller};
use crate::logic::history::ListFilter;
use crate::logic::placement;
use crate::logic::reader::Published;
use crate::logic::scheduler::{Policy, SchedulerConfig};

/// `{"stats": ...}`, the envelope of both statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Stats<T> {
    pub stats: T,
}

/// `stats_scheduler`: the queue in the scheduler's order, what runs, and reserved against total
/// resources. The waiting list names only the caller's own executions unless the caller is an
/// administrator; the counts are everyone's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SchedulerStats {
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
    pub policy: Policy,
    pub count_waiting: usize,
    pub waiting_list: Vec<String>,
    pub count_starting: usize,
    pub count_running: usize,
    pub count_cleaning_up: usize,
    pub memory_reserved: u64,
    pub memory_total: Option<u64>,
    pub cores_reserved: f64,
    pub cores_total: Option<f64>,
    /// Whether the scheduler is elastic (essential instances admit an execution, elastic ones
    /// start as room allows) or rigid.
    #[serde(default)]
    pub elastic: bool,
    /// The instances of every active execution together.
    #[serde(default)]
    pub instances: Instances,
}

/// `stats_swarm`: the platform's figures, in the shape 0.9.7 meant. Only administrators see the
/// nodes and the engine's details; others see the totals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlatformStats {
    pub container_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_count: Option<u64>,
    pub memory_total: u64,
    pub cores_total: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_strategy: Option<String>,
    /// What the scheduler hands out: the engine's figures capped by configuration.
    pub memory_capacity: Option<u64>,
    pub cores_capacity: Option<f64>,
    pub memory_reserved: u64,
    pub cores_reserved: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_filters: Option<Vec<String>>,
    pub nodes: Vec<NodeView>,
}

/// One node of the platform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    pub name: String,
    pub docker_endpoint: String,
    pub container_count: u64,
    pub cores_total: u32,
    pub cores_reserved: f64,
    pub memory_total: u64,
    pub memory_reserved: u64,
    pub labels: BTreeMap<String, String>,
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
    /// `healthy` or `unreachable`.
    pub status: String,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_update: Timestamp,
    pub server_version: String,
}

fn epoch_seconds(now: Timestamp) -> f64 {
    now.unix_timestamp_nanos() as f64 / 1e9
}

/// The scheduler's figures for a caller.
pub fn stats_scheduler(p: &Published, sched: &SchedulerConfig, caller: &Caller, now: Timestamp) -> SchedulerStats {
    let state = &p.state;
    let pos = positions(p, sched, now);
    let mut queued: Vec<(usize, &Execution)> =
        state.executions.values().filter_map(|e| pos.get(&e.id).map(|n| (*n, e.as_ref()))).collect();
    queued.sort_by_key(|(n, _)| *n);
    let count = |st: ExecutionStatus| state.executions.values().filter(|e| e.status == st).count();
    let used = placement::reserved(state, sched.elastic);
    let capacity = sched.capacity(p.platform.nodes());
    SchedulerStats {
        timestamp: epoch_seconds(now),
        policy: sched.policy,
        count_waiting: queued.len(),
        waiting_list: queued
            .into_iter()
            .filter(|(_, e)| caller.can_see(e.owner_id))
            .map(|(_, e)| e.name.clone())
            .collect(),
        count_starting: count(ExecutionStatus::Starting),
        count_running: count(ExecutionStatus::Running),
        count_cleaning_up: count(ExecutionStatus::CleaningUp),
        memory_reserved: used.memory,
        memory_total: capacity.map(|c| c.memory),
        cores_reserved: used.cores,
        cores_total: capacity.map(|c| c.cores),
        elastic: sched.elastic,
        instances: state.executions.values().fold(Instances::default(), |acc, e| acc.plus(instances(e))),
    }
}

/// The platform's figures for a caller: with its one node for administrators.
pub fn stats_platform(p: &Published, sched: &SchedulerConfig, caller: &Caller, now: Timestamp) -> PlatformStats {
    let platform = &p.platform;
    let used = placement::reserved(&p.state, sched.elastic);
    let capacity = sched.capacity(platform.nodes());
    let admin = caller.is_admin();
    let known: Vec<placement::Node> = platform
        .nodes
        .iter()
        .map(|n| placement::Node {
            name: n.name.clone(),
            capacity: crate::logic::resources::Resources { memory: n.memory, cores: f64::from(n.cpus) },
        })
        .collect();
    let per_node = placement::reserved_per_node(&known, &p.state, sched.elastic);
    PlatformStats {
        container_count: platform.containers,
        image_count: admin.then_some(platform.images),
        memory_total: platform.memory_total,
        cores_total: platform.cpus,
        placement_strategy: admin.then(|| {
            if platform.nodes.len() > 1 || platform.nodes.iter().any(|n| n.role != "engine") {
                "swarm: first-fit decreasing admission, Swarm spread placement".to_string()
            } else {
                "single engine".to_string()
            }
        }),
        memory_capacity: capacity.map(|c| c.memory),
        cores_capacity: capacity.map(|c| c.cores),
        memory_reserved: used.memory,
        cores_reserved: used.cores,
        active_filters: admin.then(Vec::new),
        nodes: if admin && platform.nodes.is_empty() {
            // Nothing reported yet (the back end was never reached, or there is none): the
            // engine as one node, as 0.9.7 showed it, so that its state is seen.
            vec![NodeView {
                name: platform.name.clone(),
                docker_endpoint: "local".to_string(),
                container_count: platform.containers,
                cores_total: platform.cpus,
                cores_reserved: used.cores,
                memory_total: platform.memory_total,
                memory_reserved: used.memory,
                labels: BTreeMap::new(),
                timestamp: epoch_seconds(now),
                status: if platform.reachable { "healthy" } else { "unreachable" }.to_string(),
                error: (!platform.reachable).then(|| "the container back end has not been reached".to_string()),
                last_update: now,
                server_version: platform.server_version.clone(),
            }]
        } else if admin {
            platform
                .nodes
                .iter()
                .zip(&per_node)
                .map(|(n, reserved)| NodeView {
                    name: n.name.clone(),
                    docker_endpoint: n.address.clone(),
                    container_count: n.containers,
                    cores_total: n.cpus,
                    cores_reserved: reserved.cores,
                    memory_total: n.memory,
                    memory_reserved: reserved.memory,
                    labels: n.labels.clone(),
                    timestamp: epoch_seconds(now),
                    status: match (platform.reachable, n.ready) {
                        (false, _) => "unreachable".to_string(),
                        (true, true) => "healthy".to_string(),
                        (true, false) => n.status.clone(),
                    },
                    error: (!n.ready).then(|| format!("node {} is {}: nothing is placed on it", n.name, n.status)),
                    last_update: now,
                    server_version: platform.server_version.clone(),
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// What the platform page shows an administrator: the platform, the scheduler and the queue in
/// its order.
#[derive(Clone, Debug, PartialEq)]
pub struct PlatformOverview {
    pub platform: PlatformStats,
    pub scheduler: SchedulerStats,
    pub queue: Vec<ExecutionView>,
}

/// The platform page, for an administrator.
pub fn platform_overview(
    p: &Published,
    sched: &SchedulerConfig,
    caller: &Caller,
    now: Timestamp,
) -> Result<PlatformOverview, ZoeError> {
    access::admin_only(&p.state, caller, "see the platform")?;
    let queued = ListFilter { statuses: vec![ExecutionStatus::Scheduled], ..ListFilter::default() };
    let mut queue = list_executions(p, sched, caller, &queued, now)?.views(p)?;
    queue.sort_by_key(|e| e.queue_position);
    Ok(PlatformOverview {
        platform: stats_platform(p, sched, caller, now),
        scheduler: stats_scheduler(p, sched, caller, now),
        queue,
    })
}
