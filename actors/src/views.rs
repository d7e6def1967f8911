//! The API forms of users, executions and services: the JSON shapes of Zoe 0.9.7 (reference
//! section 1.3), plus a few fields 0.9.7 clients ignore. Passwords and hashes never appear here.

use serde::Serialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use zoe_checkpoints::{Execution, ExecutionStatus, Service, State, Timestamp, User};

use crate::error::{Code, ZoeError};
use crate::scheduler::{reserved, Resources};
use crate::transitions::Caller;

fn time(t: &Timestamp) -> Value {
    t.format(&Rfc3339).map(Value::String).unwrap_or(Value::Null)
}

fn opt_time(t: &Option<Timestamp>) -> Value {
    t.as_ref().map(time).unwrap_or(Value::Null)
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// `{"id", "name", "role", "gateway_urls", "owner"}`, plus the uid the user's containers run as
/// and when the user was created.
pub fn user(u: &User) -> Value {
    json!({
        "id": u.id,
        "name": u.name,
        "role": u.role.as_str(),
        "uid": u.uid,
        "gateway_urls": [],
        "owner": u.name,
        "created_at": time(&u.created_at),
    })
}

/// Where scheduled executions stand in the queue (from 1), in the scheduler's order.
pub type Positions = std::collections::HashMap<u64, usize>;

/// The execution in 0.9.7 form; `services` lists the ids of its live containers.
pub fn execution(positions: &Positions, e: &Execution) -> Value {
    execution_at(e, positions.get(&e.id).copied())
}

/// The executions the caller may see, in id order, in API form.
pub fn executions(
    state: &State,
    positions: &Positions,
    caller: &Caller,
    status: Option<ExecutionStatus>,
) -> Vec<Value> {
    state
        .executions
        .values()
        .filter(|e| caller.can_see(e.owner_id) && status.is_none_or(|s| e.status == s))
        .map(|e| execution_at(e, positions.get(&e.id).copied()))
        .collect()
}

fn execution_at(e: &Execution, queue_position: Option<usize>) -> Value {
    let live: Vec<u64> = if e.status.is_final() { Vec::new() } else { e.services.iter().map(|s| s.id).collect() };
    json!({
        "id": e.id,
        "name": e.name,
        "owner": e.owner,
        "status": e.status.as_str(),
        "error": e.error,
        "time_scheduled": time(&e.time_scheduled),
        "time_started": opt_time(&e.time_started),
        "time_finished": opt_time(&e.time_finished),
        "application": to_value(&e.application),
        "services": live,
        "queue_position": queue_position,
    })
}

/// The service (one container) in 0.9.7 form.
pub fn service(e: &Execution, s: &Service) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "service_name": s.service_name,
        "docker_id": s.docker_id,
        "ip_address": s.ip_address,
        "is_monitor": s.is_monitor,
        "ports": to_value(&s.ports),
        "owner": e.owner,
        "execution_id": e.id,
        "status": s.status.as_str(),
        "exit_code": s.exit_code,
        "oom_killed": s.oom_killed,
    })
}

/// Platform figures reported by the container back end.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Platform {
    pub name: String,
    pub server_version: String,
    pub memory_total: u64,
    pub cpus: u32,
    pub containers: u64,
    pub containers_running: u64,
    pub images: u64,
    /// Whether the back end answered at its last contact.
    pub reachable: bool,
}

/// What the scheduler shows: its policy, the capacity and the queue order.
pub struct SchedulerView<'a> {
    pub policy: &'static str,
    pub capacity: Option<Resources>,
    pub positions: &'a Positions,
}

/// `POST /query`: `what` is `user`, `execution`, `service`, `stats_scheduler` or `stats_swarm`.
/// Filters are exact matches on the API form's attributes, all of which must match. A non-admin
/// only ever sees their own objects.
pub fn query(
    state: &State,
    platform: &Platform,
    sched: &SchedulerView,
    caller: &Caller,
    what: &str,
    filters: &serde_json::Map<String, Value>,
    now: Timestamp,
) -> Result<Value, ZoeError> {
    let keep = |v: &Value| filters.iter().all(|(k, want)| v.get(k) == Some(want));
    let list: Vec<Value> = match what {
        "user" => state.users.values().filter(|u| caller.can_see(u.id)).map(|u| user(u)).filter(keep).collect(),
        "execution" => executions(state, sched.positions, caller, None).into_iter().filter(keep).collect(),
        "service" => state
            .executions
            .values()
            .filter(|e| caller.can_see(e.owner_id) && !e.status.is_final())
            .flat_map(|e| e.services.iter().map(move |s| service(e, s)))
            .filter(keep)
            .collect(),
        "stats_scheduler" => return Ok(stats_scheduler(state, sched, caller, now)),
        "stats_swarm" => return Ok(stats_platform(state, platform, sched, caller, now)),
        other => {
            return Err(ZoeError::new(
                Code::UnknownQuery,
                format!("unknown query {other:?}; use one of user, execution, service, stats_scheduler, stats_swarm"),
            ))
        }
    };
    Ok(Value::Array(list))
}

fn epoch_seconds(now: Timestamp) -> f64 {
    now.unix_timestamp_nanos() as f64 / 1e9
}

/// `{"stats": {"timestamp", "count_waiting", "waiting_list", ...}}`: the queue in the
/// scheduler's order, what runs, and reserved against total resources. The waiting list names
/// only the caller's own executions, unless the caller is an administrator; the counts are of
/// everyone's.
pub fn stats_scheduler(state: &State, sched: &SchedulerView, caller: &Caller, now: Timestamp) -> Value {
    let mut queued: Vec<(usize, &Execution)> =
        state.executions.values().filter_map(|e| sched.positions.get(&e.id).map(|p| (*p, e.as_ref()))).collect();
    queued.sort_by_key(|(p, _)| *p);
    let count_waiting = queued.len();
    let waiting: Vec<&str> =
        queued.into_iter().filter(|(_, e)| caller.can_see(e.owner_id)).map(|(_, e)| e.name.as_str()).collect();
    let count = |st: ExecutionStatus| state.executions.values().filter(|e| e.status == st).count();
    let used = reserved(state);
    json!({"stats": {
        "timestamp": epoch_seconds(now),
        "policy": sched.policy,
        "count_waiting": count_waiting,
        "waiting_list": waiting,
        "count_starting": count(ExecutionStatus::Starting),
        "count_running": count(ExecutionStatus::Running),
        "count_cleaning_up": count(ExecutionStatus::CleaningUp),
        "memory_reserved": used.memory,
        "memory_total": sched.capacity.map(|c| c.memory),
        "cores_reserved": used.cores,
        "cores_total": sched.capacity.map(|c| c.cores),
    }})
}

/// The platform's figures, in the shape 0.9.7 meant for `stats_swarm`, with one node. Only
/// administrators see the nodes (host names, engine versions); others see the totals.
pub fn stats_platform(
    state: &State,
    platform: &Platform,
    sched: &SchedulerView,
    caller: &Caller,
    now: Timestamp,
) -> Value {
    let used = reserved(state);
    let (mem, cores) = (used.memory, used.cores);
    if !caller.is_admin() {
        return json!({"stats": {
            "container_count": platform.containers,
            "memory_total": platform.memory_total,
            "cores_total": platform.cpus,
            "memory_capacity": sched.capacity.map(|c| c.memory),
            "cores_capacity": sched.capacity.map(|c| c.cores),
            "memory_reserved": mem,
            "cores_reserved": cores,
            "nodes": [],
        }});
    }
    json!({"stats": {
        "container_count": platform.containers,
        "image_count": platform.images,
        "memory_total": platform.memory_total,
        "cores_total": platform.cpus,
        "placement_strategy": "single engine",
        "memory_capacity": sched.capacity.map(|c| c.memory),
        "cores_capacity": sched.capacity.map(|c| c.cores),
        "active_filters": [],
        "nodes": [{
            "name": platform.name,
            "docker_endpoint": "local",
            "container_count": platform.containers_running,
            "cores_total": platform.cpus,
            "cores_reserved": cores,
            "memory_total": platform.memory_total,
            "memory_reserved": mem,
            "labels": {},
            "timestamp": epoch_seconds(now),
            "status": if platform.reachable { "healthy" } else { "unreachable" },
            "error": Value::Null,
            "last_update": time(&now),
            "server_version": platform.server_version,
        }],
    }})
}
