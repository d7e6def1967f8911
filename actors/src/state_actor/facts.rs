//! Facts: what the world did (the back end's reports, a segment on disk, the repair of what a
//! restart interrupted), as opposed to what a request asked for or what the scheduler decided.
//! A fact is applied to the state when it arrives and kept until a checkpoint holding it is on
//! disk; if that checkpoint cannot be written, the state goes back to the newest durable one and
//! the facts are applied to it again, while the requests are refused and the decisions are made
//! anew. Pure: no actix, no I/O, `now` recorded in the fact.

use std::collections::BTreeMap;
use std::sync::Arc;

use zoe_checkpoints::{Action, Execution, State, Timestamp};

use crate::logic::outcomes::{self, FollowUp};
use crate::protocol::BackendEvent;

/// Something that happened, to be applied to the state (again, after a rollback).
#[derive(Clone, Debug)]
pub(super) enum Fact {
    /// A back end's report. `retry`: a failed start goes back to the queue (decided once, when
    /// it arrived, from the attempts so far).
    Backend { event: BackendEvent, retry: bool, now: Timestamp },
    /// Archive segment `number` is on disk with these executions: they leave the state.
    Archived { number: u64, executions: Vec<Arc<Execution>> },
    /// The repair pass of a master start (starts interrupted by the restart queued again...).
    Repair { now: Timestamp },
}

/// Applies a fact to the state: what the back end must do next, and the change to record (who
/// is always `zoe`).
pub(super) fn apply(state: &mut State, fact: &Fact) -> (FollowUp, Option<(Action, Vec<u64>)>) {
    match fact {
        Fact::Backend { event, retry, now } => {
            let before = matches!(event, BackendEvent::Inventory { .. }).then(|| state.executions.clone());
            let f = apply_event(state, event, *retry, *now);
            if !f.changed {
                return (f, None);
            }
            let ids = match before {
                Some(before) => touched(&before, &state.executions),
                None => execution_of(event).into_iter().collect(),
            };
            (f, Some((Action::Containers, ids)))
        }
        Fact::Archived { number, executions } => {
            // Only what did not change since it was handed over leaves the state (ended
            // executions do not change; anything else stays, and the checkpoint wins).
            for e in executions {
                if state.executions.get(&e.id).is_some_and(|cur| Arc::ptr_eq(cur, e)) {
                    state.executions.remove(&e.id);
                }
            }
            state.archived_segments = state.archived_segments.max(*number);
            (FollowUp { changed: true, ..FollowUp::default() }, Some((Action::Archive, vec![*number])))
        }
        Fact::Repair { now } => {
            let before = state.executions.clone();
            let f = outcomes::repair_after_restart(state, *now);
            let ids = touched(&before, &state.executions);
            let note = (!ids.is_empty()).then_some((Action::Repair, ids));
            (f, note)
        }
    }
}

/// Whether an event can change the state (the others only bring figures).
pub(super) fn changes_state(event: &BackendEvent) -> bool {
    !matches!(event, BackendEvent::Platform(_) | BackendEvent::Unreachable { .. } | BackendEvent::Reachable)
}

fn execution_of(event: &BackendEvent) -> Option<u64> {
    match event {
        BackendEvent::ExecutionStarted { execution_id, .. }
        | BackendEvent::ExecutionStartFailed { execution_id, .. }
        | BackendEvent::InstancesStarted { execution_id, .. }
        | BackendEvent::InstancesStartFailed { execution_id, .. }
        | BackendEvent::ExecutionRemoved { execution_id, .. }
        | BackendEvent::ContainerExited { execution_id, .. }
        | BackendEvent::ContainerLost { execution_id, .. } => Some(*execution_id),
        _ => None,
    }
}

fn apply_event(state: &mut State, event: &BackendEvent, retry: bool, now: Timestamp) -> FollowUp {
    match event {
        BackendEvent::ExecutionStarted { execution_id, containers } => {
            outcomes::started(state, *execution_id, containers, now)
        }
        BackendEvent::ExecutionStartFailed { execution_id, error, .. } => {
            outcomes::start_failed(state, *execution_id, error, retry, now)
        }
        BackendEvent::InstancesStarted { execution_id, containers } => {
            outcomes::instances_started(state, *execution_id, containers)
        }
        BackendEvent::InstancesStartFailed { execution_id, service_ids, .. } => {
            outcomes::instances_start_failed(state, *execution_id, service_ids)
        }
        BackendEvent::ExecutionRemoved { execution_id, error } => {
            outcomes::removed(state, *execution_id, error.as_deref(), now)
        }
        BackendEvent::ContainerExited { execution_id, service_id, exit_code, oom_killed, .. } => {
            outcomes::exited(state, *execution_id, *service_id, *exit_code, *oom_killed, now)
        }
        BackendEvent::ContainerLost { execution_id, service_id, node } => {
            outcomes::lost(state, *execution_id, *service_id, node, now)
        }
        BackendEvent::Inventory { containers } => outcomes::reconcile(state, containers, now),
        BackendEvent::Platform(_) | BackendEvent::Unreachable { .. } | BackendEvent::Reachable => FollowUp::default(),
    }
}

/// The executions that changed (or left) between two versions of the state's executions.
fn touched(before: &BTreeMap<u64, Arc<Execution>>, after: &BTreeMap<u64, Arc<Execution>>) -> Vec<u64> {
    let mut ids: Vec<u64> =
        before.iter().filter(|(id, e)| after.get(id).is_none_or(|a| !Arc::ptr_eq(a, e))).map(|(id, _)| *id).collect();
    ids.extend(after.keys().filter(|id| !before.contains_key(id)));
    ids.sort_unstable();
    ids
}
