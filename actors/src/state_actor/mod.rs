//! The StateActor: the only writer of Zoe's [`State`]. It handles one message at a time, applies
//! changes with the pure functions of [`crate::transitions`], and answers a change only once a
//! checkpoint holding it is on disk.
//!
//! Durability uses group commit: one writer thread writes one checkpoint at a time; changes that
//! arrive while a write is in flight are collected and all acknowledged by the next checkpoint.
//! The actor never waits for the disk or for Docker: it hands work off and gets the outcome back
//! as a message. After each checkpoint it publishes the state it holds for the readers
//! ([`crate::reader`]): it answers no reads itself.
//!
//! History: ended executions beyond a window (by count and by age, [`HistoryConfig`]) are moved
//! to an archive segment by the same writer thread; once the segment is on disk they leave the
//! state, and the next checkpoint no longer holds them. Every checkpoint records who changed
//! what since the one before.

mod changes;
mod writer;

pub use changes::{CreateUser, CullIdle, DeleteUser, Ping, SubmitExecution, TerminateExecution, UpdateUser};

use std::collections::{BTreeMap, HashMap};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use actix::prelude::*;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use zoe_checkpoints::{
    record_change, Action, Archive, ArchiveIndex, Change, Execution, ExecutionStatus, State, Store, Timestamp,
};

use crate::backend::{Backend, DockerActor, SwarmActor};
use crate::error::{Code, ZoeError};
use crate::history;
use crate::outcomes::{self, FollowUp};
use crate::plan::{self, PlanSettings};
use crate::protocol::{BackendEvent, BackendHandle, RemoveContainers, RemoveExecution};
use crate::reader::{Counters, Platform, Published, Reader};
use crate::scheduler::{self, SchedulerConfig};
use crate::transitions;
use writer::{Disk, SegmentWritten, WriteJob, Written};

/// Settings of the state actor.
#[derive(Clone, Debug)]
pub struct StateConfig {
    /// Checkpoints to keep on disk.
    pub keep_checkpoints: usize,
    pub scheduler: SchedulerConfig,
    /// Workspaces and default limits of start plans.
    pub plan: PlanSettings,
    /// Registries images may name (`host[:port]`); images that name no registry are always
    /// allowed.
    pub allowed_registries: Vec<String>,
    pub history: HistoryConfig,
}

pub use crate::history::HistoryConfig;
/// Under a stream of changes, the history window is looked at this often.
const ARCHIVE_CHECK: Duration = Duration::from_millis(100);
/// After a segment could not be written, the next attempt waits this long.
const ARCHIVE_RETRY: Duration = Duration::from_secs(60);

/// What is on disk when the actor starts: the checkpoints, the newest one's number, and the
/// archive with its index.
pub struct Durable {
    pub store: Store,
    pub seq: u64,
    pub archive: Archive,
    pub index: ArchiveIndex,
}

/// Starts that failed because the back end was slow or away are retried this many times.
const START_ATTEMPTS: u32 = 5;
/// After such a failure nothing is started for a while: 1 s, doubling up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// How long to wait for more changes after a checkpoint, when few are waiting.
const GATHER: std::time::Duration = std::time::Duration::from_millis(2);

/// A reply waiting for its change to become durable.
type Reply = Box<dyn FnOnce(Result<(), ZoeError>) + Send>;

/// The state actor.
pub struct StateActor {
    state: State,
    config: StateConfig,
    platform: Platform,
    store: Store,
    /// Number of the newest checkpoint written or being written.
    seq: u64,
    /// Changes applied in memory but not yet handed to the writer.
    dirty: bool,
    /// Replies of changes not yet handed to the writer.
    waiting: Vec<Reply>,
    /// Replies of changes in the checkpoint being written.
    in_flight: Vec<Reply>,
    /// The state being written and the archive it goes with (published once it is on disk).
    in_flight_state: Option<(Arc<State>, Arc<ArchiveIndex>)>,
    /// Who changed what since the last checkpoint handed to the writer.
    changes: Vec<Change>,
    archive: Archive,
    /// The archive's index, with every segment written so far.
    index: Arc<ArchiveIndex>,
    /// The segment being written, and the executions it holds.
    archiving: Option<(u64, Vec<Arc<Execution>>)>,
    /// The number of the next segment.
    next_segment: u64,
    /// After a segment could not be written, none is tried before this moment.
    archive_paused_until: Option<Instant>,
    /// When the history window was last looked at.
    archive_checked: Instant,
    writer: Option<mpsc::Sender<WriteJob>>,
    /// Where the newest durable state is published for readers.
    reader: Reader,
    /// The container back end; `None` runs without one (executions wait in the queue).
    backend: Option<BackendHandle>,
    /// Executions whose removal was asked of the back end and not yet reported.
    removing: std::collections::HashSet<u64>,
    /// Starts that failed because the back end was slow or away, by execution.
    attempts: HashMap<u64, u32>,
    /// After such a failure, nothing starts before this moment.
    paused_until: Option<Instant>,
    /// The pause after the next such failure.
    backoff: Duration,
    counters: Counters,
}

impl StateActor {
    /// A state actor over `state`, whose newest checkpoint on disk is number `seq`, with a
    /// back end or not.
    fn new(state: State, durable: Durable, config: StateConfig, has_backend: bool) -> Self {
        let Durable { store, seq, archive, index } = durable;
        let index = Arc::new(index);
        let published = Published::new(
            Arc::new(state.clone()),
            index.clone(),
            Platform::default(),
            Counters::default(),
            has_backend,
        );
        let reader = Reader::new(published, config.scheduler.clone());
        StateActor {
            state,
            config,
            platform: Platform::default(),
            store,
            seq,
            dirty: false,
            waiting: Vec::new(),
            in_flight: Vec::new(),
            in_flight_state: None,
            changes: Vec::new(),
            archive,
            next_segment: index.last_segment() + 1,
            index,
            archiving: None,
            archive_paused_until: None,
            archive_checked: Instant::now(),
            writer: None,
            reader,
            backend: None,
            removing: Default::default(),
            attempts: HashMap::new(),
            paused_until: None,
            backoff: Duration::from_secs(1),
            counters: Counters::default(),
        }
    }

    /// Starts the state actor and, with a `backend`, the back-end actor (one engine, or a Swarm)
    /// that reports to it. Returns the actor, the back end and the readers' handle.
    pub fn launch(
        state: State,
        durable: Durable,
        config: StateConfig,
        backend: Option<Backend>,
    ) -> Result<Launched, String> {
        let ctx = Context::<StateActor>::new();
        let addr = ctx.address();
        let backend = match backend {
            Some(Backend::Engine(cfg)) => {
                Some(BackendHandle::of(&DockerActor::new(cfg, addr.clone().recipient())?.start()))
            }
            Some(Backend::Swarm(cfg)) => {
                Some(BackendHandle::of(&SwarmActor::new(cfg, addr.clone().recipient())?.start()))
            }
            None => None,
        };
        let mut actor = StateActor::new(state, durable, config, backend.is_some());
        let reader = actor.reader.clone();
        actor.backend = backend.clone();
        ctx.run(actor);
        Ok(Launched { state: addr, backend, reader })
    }

    /// Publishes new back-end figures and counters with the same durable state.
    fn refresh(&self) {
        self.reader.refresh(self.platform.clone(), self.counters.clone());
    }

    /// Records a change for the next checkpoint.
    fn note(&mut self, by: &str, action: Action, ids: &[u64]) {
        record_change(&mut self.changes, by, action, ids);
    }

    /// Carries out what an outcome asks for, then looks for executions to start.
    fn follow_up(&mut self, f: FollowUp, ctx: &mut Context<Self>) {
        if f.changed {
            self.changed(ctx);
        }
        for r in f.remove {
            self.remove(r);
        }
        if let Some(backend) = &self.backend {
            if !f.orphans.is_empty() {
                tracing::warn!("removing {} container(s) unknown to the state: {:?}", f.orphans.len(), f.orphans);
                backend.remove_containers.do_send(RemoveContainers { names_or_ids: f.orphans });
            }
        }
        self.schedule(ctx);
    }

    /// Asks the back end to remove an execution's containers, unless that is already under way.
    fn remove(&mut self, r: RemoveExecution) {
        self.attempts.remove(&r.execution_id);
        if let Some(backend) = &self.backend {
            if self.removing.insert(r.execution_id) {
                backend.remove.do_send(r);
            }
        }
    }

    /// Starts every execution the scheduler picks, unless the back end is away or a recent
    /// slow start asked for a pause.
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        let Some(backend) = self.backend.clone() else { return };
        if !self.platform.reachable {
            // Executions wait in the queue until the back end answers (it reports it).
            return;
        }
        if self.paused_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let now = Self::now();
        let round = scheduler::round(&self.state, &self.config.scheduler, self.platform.nodes(), now);
        for start in round.start {
            let id = start.id;
            let Some(app) = self.state.executions.get(&id).map(|e| e.application.clone()) else { continue };
            let begun = transitions::begin_start_with(
                &mut self.state,
                id,
                |service, i| start.starts_now(&app, service, i),
                now,
            );
            if let Err(e) = begun {
                tracing::error!("cannot start execution {id}: {e}");
                continue;
            }
            self.note(Change::ZOE, Action::Start, &[id]);
            match plan::start_plan(&self.state, id, &self.config.plan) {
                Ok(p) => backend.start.do_send(p),
                Err(msg) => {
                    let _ = transitions::set_status(&mut self.state, id, ExecutionStatus::Error, now);
                    if let Some(e) = self.state.executions.get_mut(&id) {
                        Arc::make_mut(e).error = Some(msg);
                    }
                }
            }
            self.changed(ctx);
        }
        for (id, service_ids) in round.grow {
            if let Err(e) = transitions::begin_grow(&mut self.state, id, &service_ids) {
                tracing::error!("cannot grow execution {id}: {e}");
                continue;
            }
            self.note(Change::ZOE, Action::Grow, &[id]);
            match plan::grow_plan(&self.state, id, &service_ids, &self.config.plan) {
                Ok(p) => backend.start.do_send(p),
                Err(msg) => {
                    tracing::error!("cannot grow execution {id}: {msg}");
                    outcomes::instances_start_failed(&mut self.state, id, &service_ids);
                }
            }
            self.changed(ctx);
        }
    }

    /// The back end is struggling (a start was too slow, or it was away): nothing starts for a
    /// while instead of sending it more (the tick starts the queue again once the pause is over);
    /// the next pause is twice as long, up to `BACKOFF_MAX`. Returns this pause.
    fn pause_starts(&mut self) -> Duration {
        let pause = self.backoff;
        self.paused_until = Some(Instant::now() + pause);
        self.backoff = (pause * 2).min(BACKOFF_MAX);
        pause
    }

    fn now() -> Timestamp {
        OffsetDateTime::now_utc()
    }

    /// Records that the state changed and returns a future that resolves with `value` once the
    /// change is durable.
    fn commit<T: Send + 'static>(&mut self, value: T, ctx: &mut Context<Self>) -> ResponseFuture<Result<T, ZoeError>> {
        let (tx, rx) = oneshot::channel();
        self.waiting.push(Box::new(move |r: Result<(), ZoeError>| {
            let _ = tx.send(r.map(|()| value));
        }));
        self.dirty = true;
        self.flush(ctx);
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| Err(ZoeError::new(Code::Unavailable, "the state actor stopped")))
        })
    }

    /// Marks a change that no request waits for (Docker outcomes, scheduling).
    fn changed(&mut self, ctx: &mut Context<Self>) {
        self.dirty = true;
        self.flush(ctx);
    }

    /// Hands the current state to the writer unless a write is already in flight.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if !self.dirty || self.in_flight_state.is_some() {
            return;
        }
        let Some(writer) = &self.writer else {
            return;
        };
        self.seq += 1;
        self.dirty = false;
        self.in_flight = std::mem::take(&mut self.waiting);
        let mut snapshot = self.state.clone();
        snapshot.changes = std::mem::take(&mut self.changes);
        let snapshot = Arc::new(snapshot);
        self.in_flight_state = Some((snapshot.clone(), self.index.clone()));
        if writer.send(WriteJob::Checkpoint { seq: self.seq, state: snapshot }).is_err() {
            tracing::error!("checkpoint writer thread is gone");
            self.in_flight_state = None;
            for r in self.in_flight.drain(..) {
                r(Err(ZoeError::new(Code::CheckpointFailed, "the checkpoint writer stopped")));
            }
            ctx.stop();
        }
    }

    /// Every second: executions past their time limit are terminated, and the queue is looked
    /// at again (aging changes its order; nothing else may have happened).
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = Self::now();
        let mut f = FollowUp::default();
        for (id, reason) in scheduler::overdue(&self.state, &self.config.scheduler, now) {
            tracing::info!("execution {id}: {reason}");
            if transitions::begin_cleanup(&mut self.state, id, ExecutionStatus::Terminated, &reason, now).is_ok() {
                if let Some(e) = self.state.executions.get(&id) {
                    f.remove.push(plan::remove_plan(e));
                }
                self.note(Change::ZOE, Action::TimeLimit, &[id]);
                f.changed = true;
            }
        }
        self.follow_up(f, ctx);
        self.archive_due(now);
    }

    /// Hands ended executions beyond the history window to the writer, as a new archive segment,
    /// when a batch of them is due (or the oldest has waited long enough).
    fn archive_due(&mut self, now: Timestamp) {
        if self.archiving.is_some() || self.archive_paused_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.archive_checked = Instant::now();
        let Some(writer) = &self.writer else { return };
        let due = history::due_for_archive(&self.state, &self.config.history, now);
        if due.is_empty() {
            return;
        }
        let number = self.next_segment;
        self.next_segment += 1;
        if writer.send(WriteJob::Segment { number, executions: due.clone() }).is_ok() {
            self.archiving = Some((number, due));
        }
    }
}

impl Actor for StateActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // `send` waits (it never drops) when the mailbox is full; a roomy mailbox keeps many
        // concurrent clients from waiting on each other before the actor even sees them.
        ctx.set_mailbox_capacity(4096);
        let disk = Disk {
            store: self.store.clone(),
            keep: self.config.keep_checkpoints,
            archive: self.archive.clone(),
            deployment: self.state.deployment_name.clone(),
        };
        match writer::start(disk, ctx.address()) {
            Ok(tx) => self.writer = Some(tx),
            Err(e) => {
                tracing::error!("cannot start the checkpoint writer thread: {e}");
                ctx.stop();
            }
        }
        if self.backend.is_some() {
            let before = self.state.executions.clone();
            let f = outcomes::repair_after_restart(&mut self.state, Self::now());
            let ids = touched(&before, &self.state.executions);
            if !ids.is_empty() {
                self.note(Change::ZOE, Action::Repair, &ids);
            }
            self.follow_up(f, ctx);
        }
        ctx.run_interval(std::time::Duration::from_secs(1), |act, ctx| act.tick(ctx));
    }
}

impl Handler<BackendEvent> for StateActor {
    type Result = ();

    fn handle(&mut self, msg: BackendEvent, ctx: &mut Self::Context) {
        let now = Self::now();
        let before = matches!(msg, BackendEvent::Inventory { .. }).then(|| self.state.executions.clone());
        let about = match &msg {
            BackendEvent::ExecutionStarted { execution_id, .. }
            | BackendEvent::ExecutionStartFailed { execution_id, .. }
            | BackendEvent::InstancesStarted { execution_id, .. }
            | BackendEvent::InstancesStartFailed { execution_id, .. }
            | BackendEvent::ExecutionRemoved { execution_id, .. }
            | BackendEvent::ContainerExited { execution_id, .. }
            | BackendEvent::ContainerLost { execution_id, .. } => Some(*execution_id),
            _ => None,
        };
        let figures = matches!(
            msg,
            BackendEvent::Platform(_)
                | BackendEvent::Unreachable { .. }
                | BackendEvent::Reachable
                | BackendEvent::ExecutionStartFailed { .. }
                | BackendEvent::InstancesStartFailed { .. }
        );
        let f = match msg {
            BackendEvent::ExecutionStarted { execution_id, containers } => {
                self.attempts.remove(&execution_id);
                self.backoff = Duration::from_secs(1);
                outcomes::started(&mut self.state, execution_id, &containers, now)
            }
            BackendEvent::ExecutionStartFailed { execution_id, error, transient } => {
                self.counters.start_failures += 1;
                let retry = transient && {
                    let n = self.attempts.entry(execution_id).or_insert(0);
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
                    self.attempts.remove(&execution_id);
                }
                outcomes::start_failed(&mut self.state, execution_id, &error, retry, now)
            }
            BackendEvent::InstancesStarted { execution_id, containers } => {
                self.backoff = Duration::from_secs(1);
                outcomes::instances_started(&mut self.state, execution_id, &containers)
            }
            BackendEvent::InstancesStartFailed { execution_id, service_ids, error, transient } => {
                self.counters.start_failures += 1;
                tracing::warn!("execution {execution_id}: elastic instances failed to start: {error}");
                if transient {
                    self.pause_starts();
                }
                outcomes::instances_start_failed(&mut self.state, execution_id, &service_ids)
            }
            BackendEvent::ExecutionRemoved { execution_id, error } => {
                self.removing.remove(&execution_id);
                outcomes::removed(&mut self.state, execution_id, error.as_deref(), now)
            }
            BackendEvent::ContainerExited { execution_id, service_id, exit_code, oom_killed, .. } => {
                outcomes::exited(&mut self.state, execution_id, service_id, exit_code, oom_killed, now)
            }
            BackendEvent::ContainerLost { execution_id, service_id, node } => {
                tracing::warn!(execution_id, service_id, node, "a container was lost with its node");
                outcomes::lost(&mut self.state, execution_id, service_id, &node, now)
            }
            BackendEvent::Inventory { containers } => outcomes::reconcile(&mut self.state, &containers, now),
            BackendEvent::Platform(p) => {
                self.platform = Platform::of(p);
                FollowUp::default()
            }
            BackendEvent::Unreachable { error } => {
                tracing::error!("Docker is unreachable: {error}");
                self.counters.docker_outages += 1;
                self.platform.reachable = false;
                FollowUp::default()
            }
            BackendEvent::Reachable => {
                tracing::info!("Docker answers again");
                self.platform.reachable = true;
                FollowUp::default()
            }
        };
        if figures {
            self.refresh();
        }
        if f.changed {
            let ids = match before {
                Some(before) => touched(&before, &self.state.executions),
                None => about.into_iter().collect(),
            };
            self.note(Change::ZOE, Action::Containers, &ids);
        }
        self.follow_up(f, ctx);
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

impl Handler<Written> for StateActor {
    type Result = ();

    fn handle(&mut self, msg: Written, ctx: &mut Self::Context) {
        let written = self.in_flight_state.take();
        let replies = std::mem::take(&mut self.in_flight);
        let batch = replies.len();
        self.counters.checkpoint_last_seconds = msg.elapsed_ms / 1e3;
        self.counters.checkpoint_seconds += msg.elapsed_ms / 1e3;
        match msg.result {
            Ok(()) => {
                self.counters.checkpoints_written += 1;
                tracing::debug!(seq = msg.seq, ms = msg.elapsed_ms, changes = batch, "checkpoint written");
                // Readers see the change before its requester hears that it is done.
                if let Some((state, archive)) = written {
                    let has_backend = self.backend.is_some();
                    self.reader.publish(Published::new(
                        state,
                        archive,
                        self.platform.clone(),
                        self.counters.clone(),
                        has_backend,
                    ));
                }
                for r in replies {
                    r(Ok(()));
                }
                // Under a stream of changes, history is looked at more often than every tick,
                // so that a burst of ended executions does not swell the checkpoints.
                if self.archive_checked.elapsed() >= ARCHIVE_CHECK {
                    self.archive_due(Self::now());
                }
                // Group commit: the clients just answered are about to send their next change.
                // When few changes are waiting, give them a moment to arrive, so the next
                // checkpoint covers them too instead of leaving them for the one after.
                if self.waiting.len() * 2 < batch {
                    ctx.run_later(GATHER, |act, ctx| act.flush(ctx));
                    return;
                }
            }
            Err(e) => {
                self.counters.checkpoint_failures += 1;
                tracing::error!("checkpoint {} failed: {e}", msg.seq);
                // The changes stay in memory and go into the next checkpoint, but none of them
                // was acknowledged.
                self.dirty = true;
                if let Some((state, _)) = written {
                    let later = std::mem::take(&mut self.changes);
                    self.changes = state.changes.clone();
                    self.changes.extend(later);
                }
                for r in replies {
                    r(Err(ZoeError::new(Code::CheckpointFailed, format!("the change could not be saved: {e}"))));
                }
                self.refresh();
            }
        }
        self.flush(ctx);
    }
}

impl Handler<SegmentWritten> for StateActor {
    type Result = ();

    fn handle(&mut self, msg: SegmentWritten, ctx: &mut Self::Context) {
        let Some((number, sent)) = self.archiving.take() else { return };
        debug_assert_eq!(number, msg.number);
        match msg.result {
            Ok((segment, warning)) => {
                if let Some(w) = warning {
                    tracing::warn!("{w}");
                }
                tracing::info!(
                    segment = number,
                    executions = sent.len(),
                    ms = msg.elapsed_ms,
                    "archive segment written"
                );
                // Only what did not change since it was handed over leaves the state (ended
                // executions do not change; anything else stays, and the checkpoint wins).
                for e in &sent {
                    if self.state.executions.get(&e.id).is_some_and(|cur| Arc::ptr_eq(cur, e)) {
                        self.state.executions.remove(&e.id);
                    }
                }
                self.state.archived_segments = number;
                self.index = Arc::new(self.index.with_segment(segment));
                self.note(Change::ZOE, Action::Archive, &[number]);
                self.changed(ctx);
                // A backlog (a first start after an upgrade, a burst of ends) goes segment after
                // segment, not one a second.
                self.archive_due(Self::now());
            }
            Err(e) => {
                tracing::error!(
                    "archive segment {number} could not be written, trying again in {} s: {e}",
                    ARCHIVE_RETRY.as_secs()
                );
                // The next try takes the same number: segments are numbered without a gap.
                self.next_segment = number;
                self.archive_paused_until = Some(Instant::now() + ARCHIVE_RETRY);
            }
        }
    }
}

/// A started state actor: its address, its back end and the readers' handle.
pub struct Launched {
    pub state: Addr<StateActor>,
    pub backend: Option<BackendHandle>,
    pub reader: Reader,
}
