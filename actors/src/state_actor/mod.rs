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
//! ([`link::Effect`]). When a checkpoint cannot be written (a full disk), the state goes back to the
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
//!
//! The actor is one, and handles one message at a time; its parts each hold one thing:
//! - the state (with every change) and the newest durable one, here;
//! - [`requests`]: the messages of requests that change the state;
//! - [`commits`]: the changes on their way to disk, with the replies waiting for them;
//! - [`link`]: the back end, what it reported, and the commands it is sent;
//! - [`archiving`]: the history's archive and the segment being written;
//! - [`facts`]: what the world did, applied again after a rollback; [`writer`]: the thread that
//!   writes checkpoints and segments.

mod archiving;
mod commits;
mod directory;
mod facts;
mod link;
mod requests;
mod tokens;
mod usage;
mod writer;

pub use directory::DirectorySignIn;
pub use requests::{CreateUser, CullIdle, DeleteUser, Ping, SubmitExecution, TerminateExecution, UpdateUser};
pub use tokens::{CreateToken, RevokeToken, TokenUsed};
pub use usage::{RecordUsage, USAGE_PERSIST};

use std::sync::Arc;

use actix::prelude::*;
use time::OffsetDateTime;

use zoe_checkpoints::{record_change, Action, Archive, ArchiveIndex, Change, ExecutionStatus, State, Store, Timestamp};

use crate::backend::{Backend, DockerActor, SwarmActor};
use crate::error::{Code, ZoeError};
use crate::logic::outcomes::{self, FollowUp};
use crate::logic::plan::{self, PlanSettings};
use crate::logic::reader::{Counters, Platform, Published, Reader, Storage};
use crate::logic::scheduler::{self, SchedulerConfig};
use crate::logic::transitions;
use crate::protocol::{BackendHandle, RemoveContainers, RemoveExecution};
use archiving::Archiving;
use commits::Commits;
use facts::Fact;
use link::{Effect, Link};
use writer::Disk;

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

/// What is on disk when the actor starts: the checkpoints, the newest one's number, and the
/// archive with its index.
pub struct Durable {
    pub store: Store,
    pub seq: u64,
    pub archive: Archive,
    pub index: ArchiveIndex,
}

/// The state actor.
pub struct StateActor {
    config: StateConfig,
    /// The state with every change applied, durable or not.
    state: State,
    /// The state of the newest checkpoint on disk: where a failed checkpoint goes back to.
    durable: Arc<State>,
    /// The changes on their way to disk, and the replies waiting for them.
    commits: Commits,
    /// The history's archive.
    archive: Archiving,
    /// The back end.
    link: Link,
    /// Where the newest durable state is published for readers.
    reader: Reader,
    counters: Counters,
    /// Measured usage not yet on disk.
    usage: usage::Unsaved,
}

impl StateActor {
    /// A state actor over `state`, whose newest checkpoint on disk is number `seq`, with a
    /// back end or not.
    fn new(mut state: State, durable: Durable, config: StateConfig, backend: Option<BackendHandle>) -> Self {
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
        let archive = Archiving::new(archive, index);
        let durable_state = Arc::new(state.clone());
        let published = Published::new(
            durable_state.clone(),
            archive.index.clone(),
            Platform::default(),
            Counters::default(),
            backend.is_some(),
        );
        let storage = Arc::new(Storage::new(config.state_min_free));
        let reader = Reader::new(published, config.scheduler.clone(), storage);
        StateActor {
            state,
            durable: durable_state,
            config,
            commits: Commits::new(store, seq),
            archive,
            link: Link::new(backend),
            reader,
            counters: Counters::default(),
            usage: usage::Unsaved::default(),
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
        let actor = StateActor::new(state, durable, config, backend.clone());
        let reader = actor.reader.clone();
        ctx.run(actor);
        Launched { state: addr, backend, reader }
    }

    /// Publishes new back-end figures and counters with the same durable state.
    fn refresh(&mut self) {
        let metered = self.metered();
        self.reader.refresh(self.link.platform.clone(), self.counters.clone(), metered);
    }

    /// Records a change for the next checkpoint.
    fn note(&mut self, by: &str, action: Action, ids: &[u64]) {
        record_change(&mut self.commits.log, by, action, ids);
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
            self.commits.next.facts.push(fact);
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
            self.commits
                .next
                .effects
                .push(Effect::RemoveContainers(RemoveContainers { names_or_ids: f.orphans.clone() }));
        }
    }

    /// Asks the back end (once the change is durable) to remove an execution's containers.
    fn remove(&mut self, r: RemoveExecution) {
        self.link.removes(r.execution_id);
        if self.link.handle.is_some() {
            self.commits.next.effects.push(Effect::Remove(r));
        }
    }

    /// Starts every execution the scheduler picks, unless the back end is away or a recent
    /// slow start asked for a pause. The starts go to the back end once they are durable.
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        // Executions wait in the queue until the back end answers (it reports it).
        if !self.link.may_start() {
            return;
        }
        let now = Self::now();
        let round = scheduler::round(&self.state, &self.config.scheduler, self.link.platform.nodes(), now);
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
                Ok(p) => self.commits.next.effects.push(Effect::Start(p)),
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
                Ok(p) => self.commits.next.effects.push(Effect::Start(p)),
                Err(msg) => {
                    tracing::error!("cannot grow execution {id}: {msg}");
                    outcomes::instances_start_failed(&mut self.state, id, &service_ids);
                }
            }
            self.changed(ctx);
        }
    }

    fn now() -> Timestamp {
        OffsetDateTime::now_utc()
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
        self.persist_usage_due(ctx);
    }
}

impl Actor for StateActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // `send` waits (it never drops) when the mailbox is full; a roomy mailbox keeps many
        // concurrent clients from waiting on each other before the actor even sees them.
        ctx.set_mailbox_capacity(4096);
        let disk = Disk {
            store: self.commits.store.clone(),
            keep: self.config.keep_checkpoints,
            archive: self.archive.archive.clone(),
            deployment: self.state.deployment_name.clone(),
            storage: self.reader.storage.clone(),
        };
        match writer::start(disk, ctx.address()) {
            Ok(tx) => self.commits.writer = Some(tx),
            Err(e) => {
                tracing::error!("cannot start the checkpoint writer thread: {e}");
                ctx.stop();
            }
        }
        if self.link.handle.is_some() {
            self.record(Fact::Repair { now: Self::now() }, ctx);
        }
        ctx.run_interval(std::time::Duration::from_secs(1), |act, ctx| act.tick(ctx));
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
