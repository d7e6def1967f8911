//! The StateActor: the only writer of Zoe's [`State`]. It handles one message at a time, applies
//! changes with the pure functions of [`crate::transitions`], and answers a change only once a
//! checkpoint holding it is on disk.
//!
//! Durability uses group commit: one writer thread writes one checkpoint at a time; changes that
//! arrive while a write is in flight are collected and all acknowledged by the next checkpoint.
//! The actor never waits for the disk or for Docker: it hands work off and gets the outcome back
//! as a message.

use std::collections::HashMap;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use zoe_checkpoints::{Application, Encoder, ExecutionStatus, Role, State, Store, Timestamp};

use crate::app_description::check_registries;
use crate::docker_actor::{DockerActor, DockerConfig};
use crate::error::{Code, ZoeError};
use crate::outcomes::{self, FollowUp};
use crate::plan::{self, PlanSettings};
use crate::protocol::{BackendEvent, BackendHandle, RemoveContainers, RemoveExecution, RemoveNetwork};
use crate::scheduler::{self, Resources, SchedulerConfig};
use crate::transitions::{self, Caller, Termination};
use crate::views::{self, Platform};

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
    /// Whether a checkpoint is being written.
    seq_in_flight: bool,
    writer: Option<mpsc::Sender<WriteJob>>,
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

/// Running totals for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
struct Counters {
    checkpoints_written: u64,
    checkpoint_failures: u64,
    checkpoint_seconds: f64,
    checkpoint_last_seconds: f64,
    docker_outages: u64,
    start_failures: u64,
}

struct WriteJob {
    seq: u64,
    state: State,
}

/// Sent by the writer thread when a checkpoint is on disk (or could not be written).
#[derive(Message)]
#[rtype(result = "()")]
struct Written {
    seq: u64,
    result: Result<(), String>,
    elapsed_ms: f64,
}

impl StateActor {
    /// A state actor over `state`, whose newest checkpoint on disk is number `seq`.
    pub fn new(state: State, store: Store, seq: u64, config: StateConfig) -> Self {
        StateActor {
            state,
            config,
            platform: Platform::default(),
            store,
            seq,
            dirty: false,
            waiting: Vec::new(),
            in_flight: Vec::new(),
            seq_in_flight: false,
            writer: None,
            backend: None,
            removing: Default::default(),
            attempts: HashMap::new(),
            paused_until: None,
            backoff: Duration::from_secs(1),
            counters: Counters::default(),
        }
    }

    /// Starts the state actor and, with a `docker` configuration, the Docker actor that reports
    /// to it.
    pub fn launch(
        state: State,
        store: Store,
        seq: u64,
        config: StateConfig,
        docker: Option<DockerConfig>,
    ) -> Result<(Addr<StateActor>, Option<BackendHandle>), String> {
        let ctx = Context::<StateActor>::new();
        let addr = ctx.address();
        let backend = match docker {
            Some(cfg) => Some(BackendHandle::of(&DockerActor::new(cfg, addr.clone().recipient())?.start())),
            None => None,
        };
        let mut actor = StateActor::new(state, store, seq, config);
        actor.backend = backend.clone();
        ctx.run(actor);
        Ok((addr, backend))
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
        for id in scheduler::to_start(&self.state, &self.config.scheduler, self.engine(), now) {
            if let Err(e) = transitions::begin_start(&mut self.state, id, now) {
                tracing::error!("cannot start execution {id}: {e}");
                continue;
            }
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
        if !self.dirty || self.seq_in_flight {
            return;
        }
        let Some(writer) = &self.writer else {
            return;
        };
        self.seq += 1;
        self.dirty = false;
        self.seq_in_flight = true;
        self.in_flight = std::mem::take(&mut self.waiting);
        let job = WriteJob { seq: self.seq, state: self.state.clone() };
        if writer.send(job).is_err() {
            tracing::error!("checkpoint writer thread is gone");
            self.seq_in_flight = false;
            for r in self.in_flight.drain(..) {
                r(Err(ZoeError::new(Code::CheckpointFailed, "the checkpoint writer stopped")));
            }
            ctx.stop();
        }
    }

    fn caller(&self, caller: &Caller) -> Result<(), ZoeError> {
        transitions::check_caller(&self.state, caller)
    }

    /// The engine's capacity as last reported, if it was.
    fn engine(&self) -> Option<Resources> {
        (self.platform.memory_total > 0)
            .then(|| Resources { memory: self.platform.memory_total, cores: f64::from(self.platform.cpus) })
    }

    fn positions(&self) -> views::Positions {
        scheduler::queue_positions(&self.state, &self.config.scheduler, self.engine(), Self::now())
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
                f.changed = true;
            }
        }
        self.follow_up(f, ctx);
    }
}

fn writer_thread(store: Store, keep: usize, jobs: mpsc::Receiver<WriteJob>, actor: Addr<StateActor>) {
    let mut encoder = Encoder::default();
    while let Ok(mut job) = jobs.recv() {
        // Group commit on the writer side too: if more states queued up meanwhile, the newest
        // one covers them all.
        while let Ok(newer) = jobs.try_recv() {
            job = newer;
        }
        let started = Instant::now();
        let result = encoder.encode(&job.state).map_err(|e| format!("cannot encode the state: {e}")).and_then(|text| {
            tracing::trace!(ms = started.elapsed().as_secs_f64() * 1e3, bytes = text.len(), "checkpoint encoded");
            store.write(job.seq, &text).map_err(|e| format!("cannot write {}: {e}", store.path(job.seq).display()))
        });
        if result.is_ok() {
            if let Err(e) = store.prune(keep) {
                tracing::warn!("cannot prune old checkpoints: {e}");
            }
        }
        actor.do_send(Written { seq: job.seq, result, elapsed_ms: started.elapsed().as_secs_f64() * 1e3 });
    }
}

impl Actor for StateActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // `send` waits (it never drops) when the mailbox is full; a roomy mailbox keeps many
        // concurrent clients from waiting on each other before the actor even sees them.
        ctx.set_mailbox_capacity(4096);
        let (tx, rx) = mpsc::channel();
        let store = self.store.clone();
        let keep = self.config.keep_checkpoints;
        let addr = ctx.address();
        match std::thread::Builder::new()
            .name("zoe-checkpoint-writer".into())
            .spawn(move || writer_thread(store, keep, rx, addr))
        {
            Ok(_) => self.writer = Some(tx),
            Err(e) => {
                tracing::error!("cannot start the checkpoint writer thread: {e}");
                ctx.stop();
            }
        }
        if self.backend.is_some() {
            let f = outcomes::repair_after_restart(&mut self.state, Self::now());
            self.follow_up(f, ctx);
        }
        ctx.run_interval(std::time::Duration::from_secs(1), |act, ctx| act.tick(ctx));
    }
}

impl Handler<BackendEvent> for StateActor {
    type Result = ();

    fn handle(&mut self, msg: BackendEvent, ctx: &mut Self::Context) {
        let now = Self::now();
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
                    // The back end is struggling: give it a rest instead of sending it more (the
                    // tick starts the queue again once the pause is over).
                    let pause = self.backoff;
                    tracing::warn!(
                        "execution {execution_id} failed to start and goes back to the queue; nothing starts for {} s: {error}",
                        pause.as_secs()
                    );
                    self.paused_until = Some(Instant::now() + pause);
                    self.backoff = (pause * 2).min(BACKOFF_MAX);
                } else {
                    tracing::warn!("execution {execution_id} failed to start: {error}");
                    self.attempts.remove(&execution_id);
                }
                outcomes::start_failed(&mut self.state, execution_id, &error, retry, now)
            }
            BackendEvent::ExecutionRemoved { execution_id, error } => {
                self.removing.remove(&execution_id);
                outcomes::removed(&mut self.state, execution_id, error.as_deref(), now)
            }
            BackendEvent::ContainerExited { execution_id, service_id, exit_code, oom_killed, .. } => {
                outcomes::exited(&mut self.state, execution_id, service_id, exit_code, oom_killed, now)
            }
            BackendEvent::Inventory { containers } => outcomes::reconcile(&mut self.state, &containers, now),
            BackendEvent::Platform(p) => {
                self.platform = Platform {
                    name: p.name,
                    server_version: p.server_version,
                    memory_total: p.memory_total,
                    cpus: p.cpus,
                    containers: p.containers,
                    containers_running: p.containers_running,
                    images: p.images,
                    reachable: true,
                };
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
        self.follow_up(f, ctx);
    }
}

impl Handler<Written> for StateActor {
    type Result = ();

    fn handle(&mut self, msg: Written, ctx: &mut Self::Context) {
        self.seq_in_flight = false;
        let replies = std::mem::take(&mut self.in_flight);
        let batch = replies.len();
        self.counters.checkpoint_last_seconds = msg.elapsed_ms / 1e3;
        self.counters.checkpoint_seconds += msg.elapsed_ms / 1e3;
        match msg.result {
            Ok(()) => {
                self.counters.checkpoints_written += 1;
                tracing::debug!(seq = msg.seq, ms = msg.elapsed_ms, changes = batch, "checkpoint written");
                for r in replies {
                    r(Ok(()));
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
                for r in replies {
                    r(Err(ZoeError::new(Code::CheckpointFailed, format!("the change could not be saved: {e}"))));
                }
            }
        }
        self.flush(ctx);
    }
}

macro_rules! message {
    ($(#[$m:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? } -> $ret:literal) => {
        $(#[$m])*
        #[derive(Message, Debug)]
        #[rtype(result = $ret)]
        pub struct $name { $(pub $field: $ty),* }
    };
}

/// What the HTTP layer needs to verify a login.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub caller: Caller,
    pub password_hash: String,
}

message!(
    /// Looks up a user's credentials by name, for authentication.
    LookupCredentials { name: String } -> "Option<Credentials>"
);

impl Handler<LookupCredentials> for StateActor {
    type Result = Option<Credentials>;

    fn handle(&mut self, msg: LookupCredentials, _: &mut Self::Context) -> Self::Result {
        self.state.user_by_name(&msg.name).map(|u| Credentials {
            caller: Caller { id: u.id, name: u.name.clone(), role: u.role },
            password_hash: u.password_hash.clone(),
        })
    }
}

message!(
    /// `GET /user/<name>`.
    GetUser { caller: Caller, name: String } -> "Result<Value, ZoeError>"
);

impl Handler<GetUser> for StateActor {
    type Result = Result<Value, ZoeError>;

    fn handle(&mut self, msg: GetUser, _: &mut Self::Context) -> Self::Result {
        self.caller(&msg.caller)?;
        transitions::visible_user(&self.state, &msg.caller, &msg.name).map(|u| views::user(u))
    }
}

message!(
    /// `POST /user`; the password was hashed by the caller, off this actor.
    CreateUser { caller: Caller, name: String, role: Role, password_hash: String } -> "Result<Value, ZoeError>"
);

impl Handler<CreateUser> for StateActor {
    type Result = ResponseFuture<Result<Value, ZoeError>>;

    fn handle(&mut self, msg: CreateUser, ctx: &mut Self::Context) -> Self::Result {
        let result = self.caller(&msg.caller).and_then(|()| {
            transitions::create_user(&mut self.state, &msg.caller, &msg.name, msg.role, msg.password_hash, Self::now())
        });
        match result {
            Ok(u) => self.commit(views::user(&u), ctx),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

message!(
    /// `PUT /user/<name>`: a new role and/or password hash.
    UpdateUser { caller: Caller, name: String, role: Option<Role>, password_hash: Option<String> } -> "Result<Value, ZoeError>"
);

impl Handler<UpdateUser> for StateActor {
    type Result = ResponseFuture<Result<Value, ZoeError>>;

    fn handle(&mut self, msg: UpdateUser, ctx: &mut Self::Context) -> Self::Result {
        let result = self.caller(&msg.caller).and_then(|()| {
            transitions::update_user(&mut self.state, &msg.caller, &msg.name, msg.role, msg.password_hash)
        });
        match result {
            Ok(u) => self.commit(views::user(&u), ctx),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

message!(
    /// `DELETE /user/<name>`.
    DeleteUser { caller: Caller, name: String } -> "Result<(), ZoeError>"
);

impl Handler<DeleteUser> for StateActor {
    type Result = ResponseFuture<Result<(), ZoeError>>;

    fn handle(&mut self, msg: DeleteUser, ctx: &mut Self::Context) -> Self::Result {
        let result =
            self.caller(&msg.caller).and_then(|()| transitions::delete_user(&mut self.state, &msg.caller, &msg.name));
        match result {
            Ok(user) => {
                if let Some(backend) = &self.backend {
                    let network = crate::naming::user_network_name(&user.name, &self.state.deployment_name);
                    backend.remove_network.do_send(RemoveNetwork { network });
                }
                self.commit((), ctx)
            }
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

message!(
    /// `GET /execution`, optionally only one status.
    ListExecutions { caller: Caller, status: Option<ExecutionStatus> } -> "Result<Value, ZoeError>"
);

impl Handler<ListExecutions> for StateActor {
    type Result = Result<Value, ZoeError>;

    fn handle(&mut self, msg: ListExecutions, _: &mut Self::Context) -> Self::Result {
        self.caller(&msg.caller)?;
        Ok(Value::Array(views::executions(&self.state, &self.positions(), &msg.caller, msg.status)))
    }
}

message!(
    /// `GET /execution/<id>`.
    GetExecution { caller: Caller, id: u64 } -> "Result<Value, ZoeError>"
);

impl Handler<GetExecution> for StateActor {
    type Result = Result<Value, ZoeError>;

    fn handle(&mut self, msg: GetExecution, _: &mut Self::Context) -> Self::Result {
        self.caller(&msg.caller)?;
        let e = transitions::visible_execution(&self.state, &msg.caller, msg.id)?;
        let position = scheduler::queue_positions(&self.state, &self.config.scheduler, self.engine(), Self::now());
        Ok(views::execution(&position, e))
    }
}

message!(
    /// `POST /execution` with an already validated application description.
    SubmitExecution { caller: Caller, name: String, application: Application } -> "Result<u64, ZoeError>"
);

impl Handler<SubmitExecution> for StateActor {
    type Result = ResponseFuture<Result<u64, ZoeError>>;

    fn handle(&mut self, msg: SubmitExecution, ctx: &mut Self::Context) -> Self::Result {
        let engine = self.engine();
        let result = self.caller(&msg.caller).and_then(|()| {
            check_registries(&msg.application, &self.config.allowed_registries).map_err(ZoeError::from)?;
            transitions::submit_execution(
                &mut self.state,
                &msg.caller,
                &msg.name,
                msg.application,
                &self.config.scheduler,
                engine,
                Self::now(),
            )
        });
        match result {
            Ok(id) => {
                let reply = self.commit(id, ctx);
                self.schedule(ctx);
                reply
            }
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

message!(
    /// `DELETE /execution/<id>`.
    TerminateExecution { caller: Caller, id: u64 } -> "Result<(), ZoeError>"
);

impl Handler<TerminateExecution> for StateActor {
    type Result = ResponseFuture<Result<(), ZoeError>>;

    fn handle(&mut self, msg: TerminateExecution, ctx: &mut Self::Context) -> Self::Result {
        let result = self
            .caller(&msg.caller)
            .and_then(|()| transitions::terminate_execution(&mut self.state, &msg.caller, msg.id, Self::now()));
        match result {
            Ok(Termination::AlreadyEnding) => Box::pin(async { Ok(()) }),
            Ok(Termination::Done) => self.commit((), ctx),
            Ok(Termination::RemoveContainers) => {
                if let Some(e) = self.state.executions.get(&msg.id) {
                    let r = plan::remove_plan(e);
                    self.remove(r);
                }
                self.commit((), ctx)
            }
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

message!(
    /// `GET /service/<id>`.
    GetService { caller: Caller, id: u64 } -> "Result<Value, ZoeError>"
);

impl Handler<GetService> for StateActor {
    type Result = Result<Value, ZoeError>;

    fn handle(&mut self, msg: GetService, _: &mut Self::Context) -> Self::Result {
        self.caller(&msg.caller)?;
        transitions::visible_service(&self.state, &msg.caller, msg.id).map(|(e, s)| views::service(e, s))
    }
}

message!(
    /// `POST /query`.
    Query { caller: Caller, what: String, filters: serde_json::Map<String, Value> } -> "Result<Value, ZoeError>"
);

impl Handler<Query> for StateActor {
    type Result = Result<Value, ZoeError>;

    fn handle(&mut self, msg: Query, _: &mut Self::Context) -> Self::Result {
        self.caller(&msg.caller)?;
        let positions = self.positions();
        let sched = views::SchedulerView {
            policy: self.config.scheduler.policy.as_str(),
            capacity: self.config.scheduler.capacity(self.engine()),
            positions: &positions,
        };
        views::query(&self.state, &self.platform, &sched, &msg.caller, &msg.what, &msg.filters, Self::now())
    }
}

message!(
    /// A copy of the whole state (cheap: users and executions are shared), for tests and tools.
    Snapshot {} -> "Arc<State>"
);

impl Handler<Snapshot> for StateActor {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _: Snapshot, _: &mut Self::Context) -> Self::Result {
        MessageResult(Arc::new(self.state.clone()))
    }
}

/// Where a service's log can be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSource {
    pub service_id: u64,
    /// The container name.
    pub container: String,
    /// Whether the container may still exist (otherwise only the kept tail is left).
    pub live: bool,
}

message!(
    /// `GET /service/<id>/logs`: where to read the log of a service the caller may see.
    ServiceLogSource { caller: Caller, id: u64 } -> "Result<LogSource, ZoeError>"
);

impl Handler<ServiceLogSource> for StateActor {
    type Result = Result<LogSource, ZoeError>;

    fn handle(&mut self, msg: ServiceLogSource, _: &mut Self::Context) -> Self::Result {
        self.caller(&msg.caller)?;
        let (e, s) = transitions::visible_service(&self.state, &msg.caller, msg.id)?;
        Ok(LogSource {
            service_id: s.id,
            container: s.name.clone(),
            live: !e.status.is_final() && s.docker_id.is_some(),
        })
    }
}

/// Figures for `/metrics` and `/readyz`; no names.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    pub executions_by_status: Vec<(&'static str, usize)>,
    pub queue_length: usize,
    pub memory_reserved: u64,
    pub memory_total: Option<u64>,
    pub cores_reserved: f64,
    pub cores_total: Option<f64>,
    pub docker_reachable: bool,
    pub checkpoints_written: u64,
    pub checkpoint_failures: u64,
    pub checkpoint_seconds: f64,
    pub checkpoint_last_seconds: f64,
    pub docker_outages: u64,
    pub start_failures: u64,
}

message!(
    /// The figures of `/metrics`.
    MetricsSnapshot {} -> "Metrics"
);

impl Handler<MetricsSnapshot> for StateActor {
    type Result = MessageResult<MetricsSnapshot>;

    fn handle(&mut self, _: MetricsSnapshot, _: &mut Self::Context) -> Self::Result {
        let by_status = ExecutionStatus::ALL
            .iter()
            .map(|st| (st.as_str(), self.state.executions.values().filter(|e| e.status == *st).count()))
            .collect::<Vec<_>>();
        let queue_length = by_status.first().map(|(_, n)| *n).unwrap_or(0);
        let used = scheduler::reserved(&self.state);
        let capacity = self.config.scheduler.capacity(self.engine());
        let c = &self.counters;
        MessageResult(Metrics {
            executions_by_status: by_status,
            queue_length,
            memory_reserved: used.memory,
            memory_total: capacity.map(|c| c.memory),
            cores_reserved: used.cores,
            cores_total: capacity.map(|c| c.cores),
            docker_reachable: self.platform.reachable,
            checkpoints_written: c.checkpoints_written,
            checkpoint_failures: c.checkpoint_failures,
            checkpoint_seconds: c.checkpoint_seconds,
            checkpoint_last_seconds: c.checkpoint_last_seconds,
            docker_outages: c.docker_outages,
            start_failures: c.start_failures,
        })
    }
}
