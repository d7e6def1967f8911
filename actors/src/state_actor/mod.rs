//! The StateActor: the only writer of Zoe's [`State`]. It handles one message at a time, applies
//! changes with the pure functions of [`crate::logic::transitions`], and answers a change only once
//! a checkpoint holding it is on disk.
//!
//! Durability uses group commit: one writer thread writes one checkpoint at a time; changes that
//! arrive while a write is in flight are collected and all acknowledged by the next checkpoint.
//! The actor never waits for the disk or for Docker: it hands work off and gets the outcome back
//! as a message. After each checkpoint it publishes the state it holds for the readers
//! ([`crate::logic::reader`]): it answers no reads itself.
//!
//! Nothing a change causes reaches the back end before the checkpoint holding the change is on
//! disk: the commands it asks for (start these containers, remove those) wait with its batch
//! ([`Effect`]). When a checkpoint cannot be written (a full disk), the state goes back to the
//! newest durable one: the requests of the batch are answered `checkpoint_failed` and leave no
//! trace, their commands are dropped, the scheduler's decisions are made again, and what the
//! back end reported meanwhile ([`facts`]) is applied again. The next attempt waits (a back-off
//! of 1 s doubling to 15 s, unless a request asks for one), failures are logged at most once a
//! minute with a count, and readers see the master as not ready until a checkpoint is written.
//! Before the disk is full, requests that change the state are refused (`insufficient_storage`)
//! once its free space falls under `state-min-free`.
//!
//! History: ended executions beyond a window (by count and by age, [`HistoryConfig`]) are moved
//! to an archive segment by the same writer thread; once the segment is on disk they leave the
//! state, and the next checkpoint no longer holds them. Every checkpoint records who changed
//! what since the one before.

mod changes;
mod directory;
mod facts;
mod writer;

pub use changes::{CreateUser, CullIdle, DeleteUser, Ping, SubmitExecution, TerminateExecution, UpdateUser};
pub use directory::DirectorySignIn;

use std::collections::HashMap;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use actix::prelude::*;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use zoe_checkpoints::{record_change, Action, Archive, ArchiveIndex, Change, ExecutionStatus, State, Store, Timestamp};

use crate::backend::{Backend, DockerActor, SwarmActor};
use crate::error::{Code, ZoeError};
use crate::logic::history;
use crate::logic::outcomes::{self, FollowUp};
use crate::logic::plan::{self, PlanSettings};
use crate::logic::reader::{Counters, Platform, Published, Reader, Storage};
use crate::logic::scheduler::{self, SchedulerConfig};
use crate::logic::transitions;
use crate::protocol::{BackendEvent, BackendHandle, RemoveContainers, RemoveExecution, RemoveNetwork, StartExecution};
use facts::Fact;
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
    /// Below this many free bytes on the state disk, requests that change the state are refused
    /// (`insufficient_storage`); 0: never.
    pub state_min_free: u64,
}

pub use crate::logic::history::HistoryConfig;
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

/// After a checkpoint could not be written, the next attempt (unless a request asks for one)
/// waits this long, doubling up to [`WRITE_BACKOFF_MAX`].
const WRITE_BACKOFF_MIN: Duration = Duration::from_secs(1);
const WRITE_BACKOFF_MAX: Duration = Duration::from_secs(15);
/// Repeated checkpoint failures are logged at most this often, with a count.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// A reply waiting for its change to become durable.
type Reply = Box<dyn FnOnce(Result<(), ZoeError>) + Send>;

/// A command for the back end, sent once the checkpoint holding the change that asked for it is
/// on disk (dropped if that checkpoint cannot be written).
#[derive(Debug)]
enum Effect {
    Start(StartExecution),
    Remove(RemoveExecution),
    RemoveContainers(RemoveContainers),
    RemoveNetwork(RemoveNetwork),
}

/// What one checkpoint carries besides the state: the replies waiting for it, the facts it holds
/// (applied again if it cannot be written) and the commands it releases once on disk.
#[derive(Default)]
struct Batch {
    replies: Vec<Reply>,
    facts: Vec<Fact>,
    effects: Vec<Effect>,
}

/// Checkpoints cannot be written: since when, how often, and when to try again.
#[derive(Debug)]
struct Failing {
    since: Instant,
    failures: u64,
    /// Failures since the last line logged about them.
    unlogged: u64,
    logged_at: Instant,
    next_try: Instant,
    backoff: Duration,
    last_error: String,
}

/// The state actor.
pub struct StateActor {
    /// The state with every change applied, durable or not.
    state: State,
    /// The state of the newest checkpoint on disk: where a failed checkpoint goes back to.
    durable: Arc<State>,
    config: StateConfig,
    platform: Platform,
    store: Store,
    /// Number of the newest checkpoint on disk.
    seq: u64,
    /// Changes applied in memory but not yet handed to the writer.
    dirty: bool,
    /// The batch of changes not yet handed to the writer.
    waiting: Batch,
    /// The batch of the checkpoint being written.
    in_flight: Batch,
    /// The state being written, its number and the archive it goes with (published once it is
    /// on disk).
    in_flight_state: Option<(u64, Arc<State>, Arc<ArchiveIndex>)>,
    /// Who changed what since the last checkpoint handed to the writer.
    changes: Vec<Change>,
    archive: Archive,
    /// The archive's index, with every segment written so far.
    index: Arc<ArchiveIndex>,
    /// The segment being written, and the executions it holds.
    archiving: Option<(u64, Vec<Arc<zoe_checkpoints::Execution>>)>,
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
    /// Set while checkpoints cannot be written.
    failing: Option<Failing>,
}

impl StateActor {
    /// A state actor over `state`, whose newest checkpoint on disk is number `seq`, with a
    /// back end or not.
    fn new(mut state: State, durable: Durable, config: StateConfig, has_backend: bool) -> Self {
        let Durable { store, seq, archive, index } = durable;
        // Active executions of an older checkpoint reserve the default cores of their services
        // that give none, as submissions do now (written with the next checkpoint).
        let too_few = |c: Option<f64>| c.is_none_or(|c| c < zoe_checkpoints::model::limits::MIN_CORES);
        for e in state.executions.values_mut().filter(|e| e.status.is_active()) {
            if e.application.services.iter().any(|d| too_few(d.required_resources.cores)) {
                crate::logic::scheduler::default_cores(
                    &mut Arc::make_mut(e).application,
                    config.scheduler.default_cores,
                );
            }
        }
        let index = Arc::new(index);
        let durable_state = Arc::new(state.clone());
        let published =
            Published::new(durable_state.clone(), index.clone(), Platform::default(), Counters::default(), has_backend);
        let storage = Arc::new(Storage::new(config.state_min_free));
        let reader = Reader::new(published, config.scheduler.clone(), storage);
        StateActor {
            state,
            durable: durable_state,
            config,
            platform: Platform::default(),
            store,
            seq,
            dirty: false,
            waiting: Batch::default(),
            in_flight: Batch::default(),
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
            failing: None,
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
        Ok(Self::launch_with(state, durable, config, backend, ctx))
    }

    /// Starts the state actor with a back end that is already running (or none).
    fn launch_with(
        state: State,
        durable: Durable,
        config: StateConfig,
        backend: Option<BackendHandle>,
        ctx: Context<StateActor>,
    ) -> Launched {
        let addr = ctx.address();
        let mut actor = StateActor::new(state, durable, config, backend.is_some());
        let reader = actor.reader.clone();
        actor.backend = backend.clone();
        ctx.run(actor);
        Launched { state: addr, backend, reader }
    }

    /// Publishes new back-end figures and counters with the same durable state.
    fn refresh(&self) {
        self.reader.refresh(self.platform.clone(), self.counters.clone());
    }

    /// Records a change for the next checkpoint.
    fn note(&mut self, by: &str, action: Action, ids: &[u64]) {
        record_change(&mut self.changes, by, action, ids);
    }

    /// Refuses a request that would change the state while the state disk's free space is under
    /// `state-min-free` (terminations pass: they are how room is made).
    fn check_storage(&self) -> Result<(), ZoeError> {
        let storage = &self.reader.storage;
        if storage.low() {
            return Err(ZoeError::new(
                Code::InsufficientStorage,
                format!(
                    "the state disk has {} bytes free, under state-min-free ({} bytes): changes are refused until \
                     an operator frees space",
                    storage.free(),
                    storage.min_free
                ),
            ));
        }
        Ok(())
    }

    /// Applies a fact and keeps it until a checkpoint holding it is on disk; carries out what it
    /// asks for.
    fn record(&mut self, fact: Fact, ctx: &mut Context<Self>) {
        let f = self.apply_fact(&fact);
        if f.changed || !f.remove.is_empty() || !f.orphans.is_empty() {
            self.waiting.facts.push(fact);
        }
        self.follow_up(f, ctx);
    }

    /// Applies a fact to the state and records its change; returns its follow-up.
    fn apply_fact(&mut self, fact: &Fact) -> FollowUp {
        let (f, note) = facts::apply(&mut self.state, fact);
        if let Some((action, ids)) = note {
            self.note(Change::ZOE, action, &ids);
        }
        f
    }

    /// Carries out what an outcome asks for, then looks for executions to start.
    fn follow_up(&mut self, f: FollowUp, ctx: &mut Context<Self>) {
        self.follow_up_effects(&f);
        if f.changed {
            self.changed(ctx);
        }
        self.schedule(ctx);
        self.flush(ctx);
    }

    /// The commands an outcome asks for, with its batch.
    fn follow_up_effects(&mut self, f: &FollowUp) {
        for r in &f.remove {
            self.remove(r.clone());
        }
        if !f.orphans.is_empty() {
            self.waiting.effects.push(Effect::RemoveContainers(RemoveContainers { names_or_ids: f.orphans.clone() }));
        }
    }

    /// Asks the back end (once the change is durable) to remove an execution's containers.
    fn remove(&mut self, r: RemoveExecution) {
        self.attempts.remove(&r.execution_id);
        if self.backend.is_some() {
            self.waiting.effects.push(Effect::Remove(r));
        }
    }

    /// Sends a command to the back end: its change is on disk.
    fn send(&mut self, effect: Effect) {
        let Some(backend) = &self.backend else { return };
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

    /// Starts every execution the scheduler picks, unless the back end is away or a recent
    /// slow start asked for a pause. The starts go to the back end once they are durable.
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if self.backend.is_none() {
            return;
        }
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
                Ok(p) => self.waiting.effects.push(Effect::Start(p)),
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
                Ok(p) => self.waiting.effects.push(Effect::Start(p)),
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
        self.waiting.replies.push(Box::new(move |r: Result<(), ZoeError>| {
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

    /// Hands the current state to the writer unless a write is already in flight, or checkpoints
    /// are failing and the next attempt is not due (a request waiting makes it due). With
    /// nothing to write and nothing being written, the commands waiting go to the back end.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight_state.is_some() {
            return;
        }
        if !self.dirty {
            for effect in std::mem::take(&mut self.waiting.effects) {
                self.send(effect);
            }
            return;
        }
        let due = self.failing.as_ref().is_none_or(|f| Instant::now() >= f.next_try);
        if !due && self.waiting.replies.is_empty() {
            return;
        }
        let Some(writer) = &self.writer else {
            return;
        };
        let seq = self.seq + 1;
        self.dirty = false;
        self.in_flight = std::mem::take(&mut self.waiting);
        let mut snapshot = self.state.clone();
        snapshot.changes = std::mem::take(&mut self.changes);
        let snapshot = Arc::new(snapshot);
        self.in_flight_state = Some((seq, snapshot.clone(), self.index.clone()));
        if writer.send(WriteJob::Checkpoint { seq, state: snapshot }).is_err() {
            tracing::error!("checkpoint writer thread is gone");
            self.in_flight_state = None;
            for r in self.in_flight.replies.drain(..) {
                r(Err(ZoeError::new(Code::CheckpointFailed, "the checkpoint writer stopped")));
            }
            ctx.stop();
        }
    }

    /// A checkpoint could not be written: the state goes back to the newest durable one. Every
    /// request not yet on disk is refused and leaves no trace; the commands they (and the
    /// scheduler) asked for are dropped; what the back end reported is applied again.
    fn roll_back(&mut self, error: &str) {
        let failed = std::mem::take(&mut self.in_flight);
        let later = std::mem::take(&mut self.waiting);
        let refused = failed.replies.len() + later.replies.len();
        for r in failed.replies.into_iter().chain(later.replies) {
            r(Err(ZoeError::new(
                Code::CheckpointFailed,
                format!("the change could not be saved, and was not made: {error}"),
            )));
        }
        let dropped = failed.effects.len() + later.effects.len();
        self.state = (*self.durable).clone();
        self.state.changes.clear();
        self.changes.clear();
        self.dirty = false;
        let facts: Vec<Fact> = failed.facts.into_iter().chain(later.facts).collect();
        let replayed = facts.len();
        for fact in facts {
            let f = self.apply_fact(&fact);
            self.follow_up_effects(&f);
            self.dirty |= f.changed;
            self.waiting.facts.push(fact);
        }
        tracing::debug!(refused, dropped, replayed, "state rolled back to checkpoint {}", self.seq);
    }

    /// Counts a failed checkpoint, sets the back-off, and logs at a bounded rate.
    fn note_failure(&mut self, seq: u64, error: String) {
        self.counters.checkpoint_failures += 1;
        self.reader.storage.set_failing(true);
        let now = Instant::now();
        match &mut self.failing {
            None => {
                tracing::error!(
                    "checkpoint {seq} cannot be written: {error}; changes are refused (503 checkpoint_failed) and \
                     undone until one can be, tried again in {} s (sooner when a request asks), /readyz says not ready",
                    WRITE_BACKOFF_MIN.as_secs()
                );
                self.failing = Some(Failing {
                    since: now,
                    failures: 1,
                    unlogged: 0,
                    logged_at: now,
                    next_try: now + WRITE_BACKOFF_MIN,
                    backoff: WRITE_BACKOFF_MIN,
                    last_error: error,
                });
            }
            Some(f) => {
                f.failures += 1;
                f.unlogged += 1;
                f.backoff = (f.backoff * 2).min(WRITE_BACKOFF_MAX);
                f.next_try = now + f.backoff;
                f.last_error = error;
                if now.duration_since(f.logged_at) >= FAILURE_LOG_EVERY {
                    tracing::error!(
                        "checkpoints still cannot be written: {} more failure(s) in the last {} s, {} since {} s ago \
                         (last: {})",
                        f.unlogged,
                        now.duration_since(f.logged_at).as_secs(),
                        f.failures,
                        now.duration_since(f.since).as_secs(),
                        f.last_error
                    );
                    f.unlogged = 0;
                    f.logged_at = now;
                }
            }
        }
    }

    /// Every second: executions past their time limit are terminated, the queue is looked at
    /// again (aging changes its order; nothing else may have happened), and a write put off by
    /// failures is tried when due.
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
    /// when a batch of them is due (or the oldest has waited long enough). Only durable ones: a
    /// segment never holds a change that might be undone. So the next segment waits until the
    /// checkpoint that drops the last one's executions is durable too (else the durable state
    /// still holds them, and they would be archived twice).
    fn archive_due(&mut self, now: Timestamp) {
        let unsettled = |b: &Batch| b.facts.iter().any(|f| matches!(f, Fact::Archived { .. }));
        if self.archiving.is_some()
            || unsettled(&self.waiting)
            || unsettled(&self.in_flight)
            || self.archive_paused_until.is_some_and(|t| Instant::now() < t)
        {
            return;
        }
        self.archive_checked = Instant::now();
        let Some(writer) = &self.writer else { return };
        let due = history::due_for_archive(&self.durable, &self.config.history, now);
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
            storage: self.reader.storage.clone(),
        };
        match writer::start(disk, ctx.address()) {
            Ok(tx) => self.writer = Some(tx),
            Err(e) => {
                tracing::error!("cannot start the checkpoint writer thread: {e}");
                ctx.stop();
            }
        }
        if self.backend.is_some() {
            self.record(Fact::Repair { now: Self::now() }, ctx);
        }
        ctx.run_interval(std::time::Duration::from_secs(1), |act, ctx| act.tick(ctx));
    }
}

impl Handler<BackendEvent> for StateActor {
    type Result = ();

    fn handle(&mut self, event: BackendEvent, ctx: &mut Self::Context) {
        let now = Self::now();
        let mut retry = false;
        match &event {
            BackendEvent::ExecutionStarted { execution_id, .. } => {
                self.attempts.remove(execution_id);
                self.backoff = Duration::from_secs(1);
            }
            BackendEvent::ExecutionStartFailed { execution_id, error, transient } => {
                self.counters.start_failures += 1;
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
            BackendEvent::InstancesStarted { .. } => self.backoff = Duration::from_secs(1),
            BackendEvent::InstancesStartFailed { execution_id, error, transient, .. } => {
                self.counters.start_failures += 1;
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
                self.counters.docker_outages += 1;
                self.platform.reachable = false;
            }
            BackendEvent::Reachable => {
                tracing::info!("Docker answers again");
                self.platform.reachable = true;
            }
        }
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

impl Handler<Written> for StateActor {
    type Result = ();

    fn handle(&mut self, msg: Written, ctx: &mut Self::Context) {
        let Some((seq, state, archive)) = self.in_flight_state.take() else { return };
        debug_assert_eq!(seq, msg.seq);
        self.counters.checkpoint_last_seconds = msg.elapsed_ms / 1e3;
        self.counters.checkpoint_seconds += msg.elapsed_ms / 1e3;
        match msg.result {
            Ok(()) => {
                self.seq = seq;
                self.durable = state.clone();
                let batch = std::mem::take(&mut self.in_flight);
                let replies = batch.replies.len();
                let archived = batch.facts.iter().any(|f| matches!(f, Fact::Archived { .. }));
                self.counters.checkpoints_written += 1;
                tracing::debug!(seq, ms = msg.elapsed_ms, changes = replies, "checkpoint written");
                if let Some(f) = self.failing.take() {
                    tracing::info!(
                        "checkpoints are written again (checkpoint {seq}), after {} failure(s) over {} s",
                        f.failures,
                        f.since.elapsed().as_secs()
                    );
                    self.reader.storage.set_failing(false);
                }
                // Readers see the change before its requester hears that it is done, and the back
                // end hears of it only now.
                let has_backend = self.backend.is_some();
                self.reader.publish(Published::new(
                    state,
                    archive,
                    self.platform.clone(),
                    self.counters.clone(),
                    has_backend,
                ));
                for effect in batch.effects {
                    self.send(effect);
                }
                for r in batch.replies {
                    r(Ok(()));
                }
                // Under a stream of changes, history is looked at more often than every tick,
                // so that a burst of ended executions does not swell the checkpoints.
                // A backlog (a first start after an upgrade, a burst of ends) goes segment after
                // segment, each once the previous one has left the durable state.
                if archived || self.archive_checked.elapsed() >= ARCHIVE_CHECK {
                    self.archive_due(Self::now());
                }
                // Group commit: the clients just answered are about to send their next change.
                // When few changes are waiting, give them a moment to arrive, so the next
                // checkpoint covers them too instead of leaving them for the one after.
                if self.waiting.replies.len() * 2 < replies {
                    ctx.run_later(GATHER, |act, ctx| act.flush(ctx));
                    return;
                }
            }
            Err(e) => {
                self.note_failure(msg.seq, e.clone());
                self.roll_back(&e);
                self.refresh();
                // Decisions are made again on the durable state (their commands were dropped).
                self.schedule(ctx);
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
                self.index = Arc::new(self.index.with_segment(segment));
                self.record(Fact::Archived { number, executions: sent }, ctx);
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

#[cfg(test)]
mod tests;
