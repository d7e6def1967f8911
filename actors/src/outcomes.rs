//! What the container back end reports, applied to the state (pure, `now` passed in): a start
//! that worked or failed, containers removed, a container that exited, and the periodic
//! inventory that catches whatever events were missed. Each function says what must be asked of
//! the back end next.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use zoe_checkpoints::{Execution, ExecutionStatus, ServiceStatus, State, Timestamp};

use crate::docker_actor::{ContainerInfo, RemoveExecution, StartedContainer};
use crate::plan::remove_plan;
use crate::transitions::{begin_cleanup, set_status};

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

fn exec_mut<'s>(state: &'s mut State, id: u64) -> Option<&'s mut Execution> {
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
    let memory = e
        .application
        .services
        .iter()
        .find(|d| d.name == s.service_name)
        .map(|d| d.required_resources.memory);
    let reason = monitor_reason(&s.name, s.exit_code.unwrap_or(0), s.oom_killed, memory);
    if begin_cleanup(state, id, ExecutionStatus::Finished, &reason, now).is_ok() {
        if let Some(e) = state.executions.get(&id) {
            f.remove.push(remove_plan(e));
        }
        f.changed = true;
    }
}

/// All containers of an execution were created and started.
pub fn started(state: &mut State, id: u64, containers: &[StartedContainer], now: Timestamp) -> FollowUp {
    let mut f = FollowUp::default();
    let Some(e) = exec_mut(state, id) else {
        f.orphans = containers.iter().map(|c| c.docker_id.clone()).collect();
        return f;
    };
    for s in &mut e.services {
        if let Some(c) = containers.iter().find(|c| c.service_id == s.id) {
            s.docker_id = Some(c.docker_id.clone());
            s.ip_address = c.ip_address.clone();
            for p in &mut s.ports {
                p.host_endpoint = c.host_endpoints.get(&p.port_number).cloned();
            }
            if s.status == ServiceStatus::Pending {
                s.status = ServiceStatus::Running;
            }
        }
    }
    f.changed = true;
    match e.status {
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

/// A start failed; the back end already removed whatever it had created.
pub fn start_failed(state: &mut State, id: u64, error: &str, now: Timestamp) -> FollowUp {
    let mut f = FollowUp::default();
    let Some(e) = exec_mut(state, id) else { return f };
    for s in &mut e.services {
        s.status = ServiceStatus::Removed;
    }
    let to = match e.status {
        ExecutionStatus::Starting => {
            e.error = Some(error.to_string());
            ExecutionStatus::Error
        }
        ExecutionStatus::CleaningUp => e.ending.unwrap_or(ExecutionStatus::Terminated),
        _ => return f,
    };
    f.changed = set_status(state, id, to, now).is_ok();
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

/// Compares the state with every container of this deployment that the back end reports.
pub fn reconcile(state: &mut State, inventory: &[ContainerInfo], now: Timestamp) -> FollowUp {
    let mut f = FollowUp::default();
    let by_id: HashMap<&str, &ContainerInfo> = inventory.iter().map(|c| (c.docker_id.as_str(), c)).collect();
    let with_execution: HashSet<u64> = inventory.iter().filter_map(|c| c.execution_id).collect();
    let ids: Vec<(u64, ExecutionStatus)> = state
        .executions
        .values()
        .filter(|e| e.status.is_active())
        .map(|e| (e.id, e.status))
        .collect();
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
                        Some(_) => {}
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
            _ => {}
        }
    }
    // Containers that belong to no execution holding (or getting) containers.
    for c in inventory {
        let owner = c.execution_id.and_then(|id| state.executions.get(&id));
        let known = match owner {
            Some(e) if matches!(e.status, ExecutionStatus::Starting | ExecutionStatus::CleaningUp) => true,
            Some(e) if e.status == ExecutionStatus::Running => e
                .services
                .iter()
                .any(|s| s.docker_id.as_deref() == Some(c.docker_id.as_str()) || Some(s.id) == c.service_id && s.name == c.name),
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
/// are checked by the first inventory.
pub fn repair_after_restart(state: &mut State, now: Timestamp) -> FollowUp {
    let mut f = FollowUp::default();
    let ids: Vec<(u64, ExecutionStatus)> = state.executions.values().map(|e| (e.id, e.status)).collect();
    for (id, status) in ids {
        match status {
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
