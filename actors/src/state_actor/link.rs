//! The state actor's link to its back end: the handle to send commands on, what the back end
//! last reported (its platform), the removals under way, and the pause of starts after the back
//! end struggled. Commands wait for the checkpoint of the change that asked for them
//! ([`Effect`]); the back end's reports arrive as [`BackendEvent`]s.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::facts::{self, Fact};
use super::StateActor;
use crate::backoff::Backoff;
use crate::logic::outcomes::FollowUp;
use crate::logic::reader::Platform;
use crate::protocol::{BackendEvent, BackendHandle, RemoveContainers, RemoveExecution, RemoveNetwork, StartExecution};

/// Starts that failed because the back end was slow or away are retried this many times.
const START_ATTEMPTS: u32 = 5;
/// After such a failure nothing is started for a while: 1 s, doubling up to 60 s.
const START_PAUSE: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));

/// A command for the back end, sent once the checkpoint holding the change that asked for it is
/// on disk (dropped if that checkpoint cannot be written).
#[derive(Debug)]
pub(super) enum Effect {
    Start(StartExecution),
    Remove(RemoveExecution),
    RemoveContainers(RemoveContainers),
    RemoveNetwork(RemoveNetwork),
}

/// The back end as the state actor knows it.
pub(super) struct Link {
    /// The container back end; `None` runs without one (executions wait in the queue).
    pub handle: Option<BackendHandle>,
    /// What it last reported.
    pub platform: Platform,
    /// Executions whose removal was asked of the back end and not yet reported.
    removing: HashSet<u64>,
    /// Starts that failed because the back end was slow or away, by execution.
    attempts: HashMap<u64, u32>,
    /// After such a failure, nothing starts before this moment.
    paused_until: Option<Instant>,
    /// The pauses of starts.
    pause: Backoff,
}

impl Link {
    /// No back end yet, nothing reported.
    pub fn new(handle: Option<BackendHandle>) -> Link {
        Link {
            handle,
            platform: Platform::default(),
            removing: HashSet::new(),
            attempts: HashMap::new(),
            paused_until: None,
            pause: START_PAUSE,
        }
    }

    /// Whether executions may be started now: there is a back end, it answers, and no pause
    /// after a struggle is under way.
    pub fn may_start(&self) -> bool {
        self.handle.is_some() && self.platform.reachable && self.paused_until.is_none_or(|t| Instant::now() >= t)
    }

    /// The back end is struggling (a start was too slow, or it was away): nothing starts for a
    /// while instead of sending it more (the tick starts the queue again once the pause is
    /// over); the next pause is twice as long. Returns this pause.
    fn pause_starts(&mut self) -> Duration {
        let pause = self.pause.next_pause();
        self.paused_until = Some(Instant::now() + pause);
        pause
    }

    /// The removal of an execution is asked for: a failed start of it is not retried.
    pub fn removes(&mut self, execution_id: u64) {
        self.attempts.remove(&execution_id);
    }

    /// Sends a command to the back end: its change is on disk.
    pub fn send(&mut self, effect: Effect) {
        let Some(backend) = &self.handle else { return };
        match effect {
            Effect::Start(p) => backend.start.do_send(p),
            Effect::Remove(r) => {
                // A removal already under way is not asked for again.
                if self.removing.insert(r.execution_id) {
                    backend.remove.do_send(r);
                }
            }
            Effect::RemoveContainers(r) => {
                tracing::warn!(
                    "removing {} container(s) unknown to the state: {:?}",
                    r.names_or_ids.len(),
                    r.names_or_ids
                );
                backend.remove_containers.do_send(r);
            }
            Effect::RemoveNetwork(r) => backend.remove_network.do_send(r),
        }
    }

    /// Takes in what an event says about the back end itself; returns whether a failed start
    /// goes back to the queue.
    fn hear(&mut self, event: &BackendEvent) -> bool {
        let mut retry = false;
        match event {
            BackendEvent::ExecutionStarted { execution_id, .. } => {
                self.attempts.remove(execution_id);
                self.pause.reset();
            }
            BackendEvent::ExecutionStartFailed { execution_id, error, transient } => {
                retry = *transient && {
                    let n = self.attempts.entry(*execution_id).or_insert(0);
                    *n += 1;
                    *n < START_ATTEMPTS
                };
                if retry {
                    let pause = self.pause_starts();
                    tracing::warn!(
                        "execution {execution_id} failed to start and goes back to the queue; nothing starts for {} s: {error}",
                        pause.as_secs()
                    );
                } else {
                    tracing::warn!("execution {execution_id} failed to start: {error}");
                    self.attempts.remove(execution_id);
                }
            }
            BackendEvent::InstancesStarted { .. } => self.pause.reset(),
            BackendEvent::InstancesStartFailed { execution_id, error, transient, .. } => {
                tracing::warn!("execution {execution_id}: elastic instances failed to start: {error}");
                if *transient {
                    self.pause_starts();
                }
            }
            BackendEvent::ExecutionRemoved { execution_id, .. } => {
                self.removing.remove(execution_id);
            }
            BackendEvent::ContainerLost { execution_id, service_id, node } => {
                tracing::warn!(execution_id, service_id, node, "a container was lost with its node");
            }
            BackendEvent::ContainerExited { .. } | BackendEvent::Inventory { .. } => {}
            BackendEvent::Platform(p) => self.platform = Platform::of(p.clone()),
            BackendEvent::Unreachable { error } => {
                tracing::error!("Docker is unreachable: {error}");
                self.platform.reachable = false;
            }
            BackendEvent::Reachable => {
                tracing::info!("Docker answers again");
                self.platform.reachable = true;
            }
        }
        retry
    }
}

impl Handler<BackendEvent> for StateActor {
    type Result = ();

    fn handle(&mut self, event: BackendEvent, ctx: &mut Self::Context) {
        let now = Self::now();
        match &event {
            BackendEvent::ExecutionStartFailed { .. } | BackendEvent::InstancesStartFailed { .. } => {
                self.counters.start_failures += 1
            }
            BackendEvent::Unreachable { .. } => self.counters.docker_outages += 1,
            _ => {}
        }
        let retry = self.link.hear(&event);
        let figures = matches!(
            event,
            BackendEvent::Platform(_)
                | BackendEvent::Unreachable { .. }
                | BackendEvent::Reachable
                | BackendEvent::ExecutionStartFailed { .. }
                | BackendEvent::InstancesStartFailed { .. }
        );
        if figures {
            self.refresh();
        }
        if facts::changes_state(&event) {
            self.record(Fact::Backend { event, retry, now }, ctx);
        } else {
            self.follow_up(FollowUp::default(), ctx);
        }
    }
}
