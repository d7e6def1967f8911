//! What the container back end reports, applied to the state (pure, `now` passed in): a start
//! that worked or failed, containers removed, a container that exited, and the periodic
//! inventory that catches whatever events were missed. Each function says what must be asked of
//! the back end next.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use zoe_checkpoints::{Execution, ExecutionStatus, Service, ServiceStatus, State, Timestamp};

use crate::logic::plan::remove_plan;
use crate::logic::transitions::{begin_cleanup, set_status};
use crate::protocol::{ContainerInfo, ExposedPort, RemoveExecution, StartedContainer, Transport};

/// What the back end must do after an outcome.
#[derive(Clone, Debug, Default)]
pub struct FollowUp {
    /// Executions whose containers must be stopped and removed.
    pub remove: Vec<RemoveExecution>,
    /// Containers that belong to nothing Zoe knows (by id or name).
    pub orphans: Vec<String>,
    /// Whether the state changed (and needs a checkpoint).
    pub changed: bool,
}

fn exec_mut(state: &mut State, id: u64) -> Option<&mut Execution> {
    state.executions.get_mut(&id).map(Arc::make_mut)
}

/// Why a monitor's end ends its execution, in plain words (empty for a clean exit).
fn monitor_reason(name: &str, exit_code: i64, oom: bool, memory: Option<u64>) -> String {
    if oom {
        format!(
            "monitor service {name} was killed for using more than its memory limit{}",
            memory.map(|m| format!(" ({m} bytes)")).unwrap_or_default()
        )
    } else if exit_code != 0 {
        format!("monitor service {name} exited with code {exit_code}")
    } else {
        String::new()
    }
}

/// If a monitor service of a running execution has exited, starts the clean-up that ends it as
/// `finished`.
fn end_if_monitor_exited(state: &mut State, id: u64, now: Timestamp, f: &mut FollowUp) {
    let Some(e) = state.executions.get(&id) else { return };
    if e.status != ExecutionStatus::Running {
        return;
    }
    let Some(s) = e.services.iter().find(|s| s.is_monitor && s.status == ServiceStatus::Exited) else {
        return;
    };
    let memory = e.description_of(s).map(|d| d.required_resources.memory);
    let reason = monitor_reason(&s.name, s.exit_code.unwrap_or(0), s.oom_killed, memory);
    if begin_cleanup(state, id, ExecutionStatus::Finished, &reason, now).is_ok() {
        if let Some(e) = state.executions.get(&id) {
            f.remove.push(remove_plan(e));
        }
        f.changed = true;
    }
}

/// Records where a container started (its id, addresses, node, published ports).
fn record_start(s: &mut Service, c: &StartedContainer) {
    s.docker_id = Some(c.docker_id.clone());
    s.ip_address = c.ip_address.clone();
    s.node = c.node.clone();
    for p in &mut s.ports {
        let key = ExposedPort { port: p.port_number, transport: Transport::of_protocol(&p.protocol) }.key();
        p.host_endpoint = c.host_endpoints.get(&key).cloned();
    }
    if s.status == ServiceStatus::Pending {
        s.status = ServiceStatus::Running;
    }
}

/// Records the started containers on their services; containers of an execution Zoe does not
/// know (or that `wanted` refuses) are orphans.
fn record_starts(
    state: &mut State,
    id: u64,
    containers: &[StartedContainer],
    wanted: impl Fn(ExecutionStatus) -> bool,
    f: &mut FollowUp,
) -> bool {
    match exec_mut(state, id) {
        Some(e) if wanted(e.status) => {
            for s in &mut e.services {
                if let Some(c) = containers.iter().find(|c| c.service_id == s.id) {
                    record_start(s, c);
                }
            }
            f.changed = true;
            true
        }
        _ => {
            f.orphans = containers.iter().map(|c| c.docker_id.clone()).collect();
            false
        }
    }
}

/// All containers of an execution were created and started.
pub fn started(state: &mut State, id: u64, containers: &[StartedContainer], now: Timestamp) -> FollowUp {
    let mut f = FollowUp::default();
    if !record_starts(state, id, containers, |_| true, &mut f) {
        return f;
    }
    let Some(status) = state.executions.get(&id).map(|e| e.status) else { return f };
    match status {
        ExecutionStatus::Starting => {
            let _ = set_status(state, id, ExecutionStatus::Running, now);
            end_if_monitor_exited(state, id, now, &mut f);
        }
        // Terminated while starting, or otherwise no longer wanted: remove what was made.
        _ => {
            if let Some(e) = state.executions.get(&id) {
                f.remove.push(remove_plan(e));
            }
        }
    }
    f
}

/// Elastic instances added to a running execution were started (recorded too while it is being
/// removed, which removes them with the rest). Those of an execution that has ended are orphans.
pub fn instances_started(state: &mut State, id: u64, containers: &[StartedContainer]) -> FollowUp {
    let mut f = FollowUp::default();
    let wanted = |st| matches!(st, ExecutionStatus::Running | ExecutionStatus::CleaningUp);
    record_starts(state, id, containers, wanted, &mut f);
    f
}

/// Elastic instances could not be added to a running execution (the back end removed what it had
/// made): they wait for room again, each attempt counted in its `retries`.
pub fn instances_start_failed(state: &mut State, id: u64, service_ids: &[u64]) -> FollowUp {
    let mut f = FollowUp::default();
    let Some(e) = exec_mut(state, id) else { return f };
    for s in e.services.iter_mut().filter(|s| service_ids.contains(&s.id) && s.status == ServiceStatus::Pending) {
        s.status = ServiceStatus::Waiting;
        s.retries = s.retries.saturating_add(1);
        f.changed = true;
    }
    f
}

/// A start failed; the back end already removed whatever it had created. With `retry` (the
/// back end was too slow or away, and the execution has attempts left) the execution goes back to
/// the queue, where it keeps its place; otherwise it ends in `error`.
pub fn start_failed(state: &mut State, id: u64, error: &str, retry: bool, now: Timestamp) -> FollowUp {
    let mut f = FollowUp::default();
    let Some(e) = exec_mut(state, id) else { return f };
    for s in &mut e.services {
        s.status = ServiceStatus::Removed;
    }
    match e.status {
        ExecutionStatus::Starting if retry => {
            f.changed = set_status(state, id, ExecutionStatus::CleaningUp, now).is_ok()
                && set_status(state, id, ExecutionStatus::Scheduled, now).is_ok();
        }
        ExecutionStatus::Starting => {
            e.error = Some(error.to_string());
            f.changed = set_status(state, id, ExecutionStatus::Error, now).is_ok();
        }
        ExecutionStatus::CleaningUp => {
            let to = e.ending.unwrap_or(ExecutionStatus::Terminated);
            f.changed = set_status(state, id, to, now).is_ok();
        }
        _ => {}
    }
    f
}

/// The containers of an execution were stopped and removed (or some could not be).
pub fn removed(state: &mut State, id: u64, error: Option<&str>, now: Timestamp) -> FollowUp {
    let mut f = FollowUp::default();
    let Some(e) = exec_mut(state, id) else { return f };
    if e.status != ExecutionStatus::CleaningUp {
        return f;
    }
    f.changed = true;
    if let Some(err) = error {
        // Stay in `cleaning up`; the next inventory finishes the job once they are gone.
        tracing::warn!("execution {id}: containers not all removed: {err}");
        return f;
    }
    for s in &mut e.services {
        if s.status != ServiceStatus::Exited {
            s.status = ServiceStatus::Removed;
        }
    }
    let to = e.ending.unwrap_or(ExecutionStatus::Terminated);
    let _ = set_status(state, id, to, now);
    f
}

/// A container stopped on its own.
pub fn exited(
    state: &mut State,
    execution_id: u64,
    service_id: u64,
    exit_code: i64,
    oom_killed: bool,
    now: Timestamp,
) -> FollowUp {
    let mut f = FollowUp::default();
    let Some(e) = exec_mut(state, execution_id) else { return f };
    let Some(s) = e.services.iter_mut().find(|s| s.id == service_id) else { return f };
    if matches!(s.status, ServiceStatus::Exited | ServiceStatus::Removed) && s.exit_code.is_some() {
        return f;
    }
    s.status = ServiceStatus::Exited;
    s.exit_code = Some(exit_code);
    s.oom_killed = oom_killed;
    f.changed = true;
    end_if_monitor_exited(state, execution_id, now, &mut f);
    f
}

/// A container was lost with its node. A lost monitor or essential instance (one of the first
/// `essential_count` of its service) ends the execution in `error`, naming the node; a lost
/// non-essential instance is recorded on its service and the execution goes on.
pub fn lost(state: &mut State, execution_id: u64, service_id: u64, node: &str, now: Timestamp) -> FollowUp {
    let mut f = FollowUp::default();
    let Some(e) = exec_mut(state, execution_id) else { return f };
    let Some(i) = e.services.iter().position(|s| s.id == service_id) else { return f };
    let (status, is_monitor) = (e.services[i].status, e.services[i].is_monitor);
    let essential = is_monitor || e.is_essential(&e.services[i]);
    if matches!(status, ServiceStatus::Removed | ServiceStatus::Lost | ServiceStatus::Exited) {
        return f;
    }
    let s = &mut e.services[i];
    s.status = ServiceStatus::Lost;
    s.node = Some(node.to_string());
    let name = s.name.clone();
    f.changed = true;
    if essential && matches!(e.status, ExecutionStatus::Running | ExecutionStatus::Starting) {
        let what = if is_monitor { "monitor service" } else { "essential service" };
        let reason = format!("{what} {name} was lost with node {node}, which went down");
        if begin_cleanup(state, execution_id, ExecutionStatus::Error, &reason, now).is_ok() {
            if let Some(e) = state.executions.get(&execution_id) {
                f.remove.push(remove_plan(e));
            }
        }
    }
    f
}

/// Compares the state with every container of this deployment that the back end reports.
pub fn reconcile(state: &mut State, inventory: &[ContainerInfo], now: Timestamp) -> FollowUp {
    let mut f = FollowUp::default();
    let by_id: HashMap<&str, &ContainerInfo> = inventory.iter().map(|c| (c.docker_id.as_str(), c)).collect();
    let with_execution: HashSet<u64> = inventory.iter().filter_map(|c| c.execution_id).collect();
    let ids: Vec<(u64, ExecutionStatus)> =
        state.executions.values().filter(|e| e.status.is_active()).map(|e| (e.id, e.status)).collect();
    for (id, status) in ids {
        match status {
            ExecutionStatus::Running => {
                let Some(e) = exec_mut(state, id) else { continue };
                let mut lost = Vec::new();
                for s in e.services.iter_mut().filter(|s| s.status == ServiceStatus::Running) {
                    match s.docker_id.as_deref().and_then(|d| by_id.get(d)) {
                        None => {
                            s.status = ServiceStatus::Removed;
                            f.changed = true;
                            if s.is_monitor {
                                lost.push(s.name.clone());
                            }
                        }
                        Some(c) if !c.running => {
                            s.status = ServiceStatus::Exited;
                            s.exit_code = Some(c.exit_code.unwrap_or(-1));
                            s.oom_killed = c.oom_killed;
                            f.changed = true;
                        }
                        Some(c) => {
                            if c.node.is_some() && s.node != c.node {
                                s.node = c.node.clone();
                                f.changed = true;
                            }
                        }
                    }
                }
                if let Some(name) = lost.first() {
                    let reason = format!("container {name} disappeared: it was removed outside Zoe");
                    if begin_cleanup(state, id, ExecutionStatus::Error, &reason, now).is_ok() {
                        if let Some(e) = state.executions.get(&id) {
                            f.remove.push(remove_plan(e));
                        }
                    }
                } else {
                    end_if_monitor_exited(state, id, now, &mut f);
                }
            }
            ExecutionStatus::CleaningUp if !with_execution.contains(&id) => {
                // Nothing of it is left: the clean-up is done even if its report was lost.
                let g = removed(state, id, None, now);
                f.changed |= g.changed;
            }
            ExecutionStatus::CleaningUp => {
                // Some of it is still there (a removal failed, e.g. while Docker was down):
                // ask again. The state actor does not repeat a removal already under way.
                if let Some(e) = state.executions.get(&id) {
                    f.remove.push(remove_plan(e));
                }
            }
            _ => {}
        }
    }
    // Containers that belong to no execution holding (or getting) containers.
    for c in inventory {
        let owner = c.execution_id.and_then(|id| state.executions.get(&id));
        let known = match owner {
            Some(e) if matches!(e.status, ExecutionStatus::Starting | ExecutionStatus::CleaningUp) => true,
            Some(e) if e.status == ExecutionStatus::Running => e.services.iter().any(|s| {
                s.docker_id.as_deref() == Some(c.docker_id.as_str()) || Some(s.id) == c.service_id && s.name == c.name
            }),
            _ => false,
        };
        if !known {
            f.orphans.push(c.docker_id.clone());
        }
    }
    f
}

/// At master start: what was in flight is checked before it is trusted. Starts interrupted by
/// the restart are cleaned and queued again; clean-ups are asked for again. Running executions
/// are checked by the first inventory; elastic instances they were growing wait for room again
/// (a container such a grow made is replaced when the instance starts again).
pub fn repair_after_restart(state: &mut State, now: Timestamp) -> FollowUp {
    let mut f = FollowUp::default();
    let ids: Vec<(u64, ExecutionStatus)> = state.executions.values().map(|e| (e.id, e.status)).collect();
    for (id, status) in ids {
        match status {
            ExecutionStatus::Running => {
                let pending: Vec<u64> = state.executions[&id]
                    .services
                    .iter()
                    .filter(|s| s.status == ServiceStatus::Pending)
                    .map(|s| s.id)
                    .collect();
                if !pending.is_empty() {
                    if let Some(e) = exec_mut(state, id) {
                        for s in e.services.iter_mut().filter(|s| pending.contains(&s.id)) {
                            s.status = ServiceStatus::Waiting;
                        }
                        f.changed = true;
                    }
                }
                continue;
            }
            ExecutionStatus::Starting => {
                if begin_cleanup(state, id, ExecutionStatus::Scheduled, "", now).is_ok() {
                    f.changed = true;
                }
            }
            ExecutionStatus::CleaningUp => {}
            _ => continue,
        }
        if let Some(e) = state.executions.get(&id) {
            f.remove.push(remove_plan(e));
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::scheduler::SchedulerConfig;
    use crate::logic::transitions::{begin_start, submit_execution};
    use crate::testing::at;
    use crate::testing::starts;
    use serde_json::json;

    fn state_with_one(status_after: &str) -> (State, u64) {
        let mut s = crate::testing::admin_state();
        let admin = crate::testing::admin();
        let app = crate::description::app_description::parse_application(&json!({
            "name": "a", "version": 2, "will_end": true, "requires_binary": false, "priority": 1,
            "services": [{"name": "main", "docker_image": "img", "monitor": true, "total_count": 2, "essential_count": 1,
                          "startup_order": 0, "ports": [], "required_resources": {"memory": 67108864}}]
        }))
        .unwrap();
        let id = submit_execution(&mut s, &admin, "job", app, &SchedulerConfig::default(), None, at(1)).unwrap();
        begin_start(&mut s, id, at(2)).unwrap();
        if status_after == "running" {
            let containers = crate::testing::containers_of(&s.executions[&id], |_| true);
            started(&mut s, id, &containers, at(3));
        }
        (s, id)
    }

    #[test]
    fn a_start_interrupted_by_a_restart_is_cleaned_and_queued_again() {
        let (mut s, id) = state_with_one("starting");
        let f = repair_after_restart(&mut s, at(10));
        assert!(f.changed);
        assert_eq!(f.remove.len(), 1);
        assert_eq!(f.remove[0].containers.len(), 2, "removed by name, even if never recorded");
        assert_eq!(s.executions[&id].status, ExecutionStatus::CleaningUp);
        assert!(starts(&s, &SchedulerConfig::default(), None, at(10)).is_empty(), "not before it is clean");
        removed(&mut s, id, None, at(11));
        let e = &s.executions[&id];
        assert_eq!((e.status, e.services.len(), e.time_started), (ExecutionStatus::Scheduled, 0, None));
        assert_eq!(starts(&s, &SchedulerConfig::default(), None, at(12)), vec![id]);
    }

    #[test]
    fn a_grow_interrupted_by_a_restart_waits_for_room_again() {
        let mut s = crate::testing::admin_state();
        let app = crate::description::app_description::parse_application(&json!({
            "name": "a", "version": 2, "will_end": true, "requires_binary": false, "priority": 1,
            "services": [
                {"name": "main", "docker_image": "img", "monitor": true, "total_count": 1, "essential_count": 1,
                 "startup_order": 0, "ports": [], "required_resources": {"memory": 67108864}},
                {"name": "worker", "docker_image": "img", "monitor": false, "total_count": 2, "essential_count": 1,
                 "startup_order": 0, "ports": [], "required_resources": {"memory": 67108864}}]
        }))
        .unwrap();
        let cfg = SchedulerConfig::default();
        let id = submit_execution(&mut s, &crate::testing::admin(), "job", app, &cfg, None, at(1)).unwrap();
        crate::logic::transitions::begin_start_with(&mut s, id, |svc, i| svc == "main" || i == 0, at(2)).unwrap();
        let containers = crate::testing::containers_of(&s.executions[&id], |sv| sv.status == ServiceStatus::Pending);
        assert_eq!(containers.len(), 2);
        started(&mut s, id, &containers, at(3));
        let elastic = s.executions[&id].services.iter().find(|sv| sv.status == ServiceStatus::Waiting).unwrap().id;
        crate::logic::transitions::begin_grow(&mut s, id, &[elastic]).unwrap();
        // The master stops while the grow is under way.
        let f = repair_after_restart(&mut s, at(10));
        assert!(f.changed && f.remove.is_empty());
        let e = &s.executions[&id];
        let status = e.services.iter().find(|sv| sv.id == elastic).unwrap().status;
        assert_eq!((e.status, status), (ExecutionStatus::Running, ServiceStatus::Waiting));
        let round = crate::logic::scheduler::round(&s, &cfg, None, at(11));
        assert_eq!(round.grow, vec![(id, vec![elastic])], "and the scheduler starts it again");
    }

    #[test]
    fn the_inventory_catches_missed_exits_vanished_containers_and_orphans() {
        let (mut s, id) = state_with_one("running");
        let sids: Vec<u64> = s.executions[&id].services.iter().map(|sv| sv.id).collect();
        let info = |sid: u64, running: bool, exit: Option<i64>| ContainerInfo {
            docker_id: format!("d{sid}"),
            name: String::new(),
            execution_id: Some(id),
            service_id: Some(sid),
            running,
            exit_code: exit,
            oom_killed: false,
            node: None,
        };
        // All there and running: nothing to do.
        let f = reconcile(&mut s, &[info(sids[0], true, None), info(sids[1], true, None)], at(5));
        assert!(!f.changed && f.remove.is_empty() && f.orphans.is_empty());
        // A stranger with our labels is an orphan.
        let mut stray = info(999, true, None);
        stray.docker_id = "stray".into();
        stray.execution_id = Some(12345);
        let f = reconcile(&mut s, &[info(sids[0], true, None), info(sids[1], true, None), stray], at(6));
        assert_eq!(f.orphans, vec!["stray".to_string()]);
        // One exited while we were not looking (a monitor: the execution finishes), the other
        // vanished.
        let f = reconcile(&mut s, &[info(sids[0], false, Some(2))], at(7));
        assert!(f.changed);
        let e = &s.executions[&id];
        assert_eq!(e.status, ExecutionStatus::CleaningUp);
        assert_eq!(e.ending, Some(ExecutionStatus::Error), "a vanished monitor container is an error");
        assert_eq!(f.remove.len(), 1);
        // While something of it is left, its removal is asked for again (it may have failed).
        let f = reconcile(&mut s, &[info(sids[0], false, Some(2))], at(8));
        assert_eq!(f.remove.len(), 1);
        assert_eq!(s.executions[&id].status, ExecutionStatus::CleaningUp);
        // Once nothing of it is left, the clean-up completes even without its report.
        let f = reconcile(&mut s, &[], at(9));
        assert!(f.changed);
        assert_eq!(s.executions[&id].status, ExecutionStatus::Error);
    }
}
