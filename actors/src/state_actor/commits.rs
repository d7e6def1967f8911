//! The changes on their way to disk (group commit): what the next checkpoint carries (the
//! replies waiting for it, the facts it holds, the commands it releases), the checkpoint being
//! written, and whether checkpoints are failing. One checkpoint is written at a time; changes
//! that arrive meanwhile wait for the next one, which acknowledges them all.

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;
use zoe_checkpoints::{ArchiveIndex, Change, State, Store};

use super::facts::Fact;
use super::link::Effect;
use super::writer::{WriteJob, Written};
use super::StateActor;
use crate::backoff::Backoff;
use crate::error::{Code, ZoeError};
use crate::logic::reader::Published;

/// How long to wait for more changes after a checkpoint, when few are waiting.
const GATHER: Duration = Duration::from_millis(2);

/// After a checkpoint could not be written, the next attempt (unless a request asks for one)
/// waits 1 s, doubling up to 15 s.
const WRITE_RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(15));
/// Repeated checkpoint failures are logged at most this often, with a count.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// A reply waiting for its change to become durable.
type Reply = Box<dyn FnOnce(Result<(), ZoeError>) + Send>;

/// What one checkpoint carries besides the state: the replies waiting for it, the facts it holds
/// (applied again if it cannot be written) and the commands it releases once on disk.
#[derive(Default)]
pub(super) struct Batch {
    pub replies: Vec<Reply>,
    pub facts: Vec<Fact>,
    pub effects: Vec<Effect>,
}

impl Batch {
    /// Whether it holds an archived segment's fact (a segment whose executions have not yet
    /// left the durable state).
    pub fn archives(&self) -> bool {
        self.facts.iter().any(|f| matches!(f, Fact::Archived { .. }))
    }
}

/// The checkpoint being written: its number, its state and the archive it goes with (published
/// once it is on disk), and what it carries.
struct Writing {
    seq: u64,
    state: Arc<State>,
    archive: Arc<ArchiveIndex>,
    batch: Batch,
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
    retry: Backoff,
    last_error: String,
}

/// The changes on their way to disk.
pub(super) struct Commits {
    pub store: Store,
    /// Number of the newest checkpoint on disk.
    pub seq: u64,
    /// Changes applied in memory but not yet handed to the writer.
    dirty: bool,
    /// Who changed what since the last checkpoint handed to the writer.
    pub log: Vec<Change>,
    /// What the next checkpoint carries.
    pub next: Batch,
    /// The checkpoint being written.
    writing: Option<Writing>,
    /// The writer thread.
    pub writer: Option<mpsc::Sender<WriteJob>>,
    /// Set while checkpoints cannot be written.
    failing: Option<Failing>,
}

impl Commits {
    /// Nothing written yet after checkpoint `seq` of `store`.
    pub fn new(store: Store, seq: u64) -> Commits {
        Commits {
            store,
            seq,
            dirty: false,
            log: Vec::new(),
            next: Batch::default(),
            writing: None,
            writer: None,
            failing: None,
        }
    }

    /// Whether a batch not yet on disk holds an archived segment's fact.
    pub fn archiving(&self) -> bool {
        self.next.archives() || self.writing.as_ref().is_some_and(|w| w.batch.archives())
    }

    /// Counts a failed checkpoint, sets when to try again, and logs at a bounded rate.
    fn note_failure(&mut self, seq: u64, error: String) {
        let now = Instant::now();
        match &mut self.failing {
            None => {
                let mut retry = WRITE_RETRY;
                let pause = retry.next_pause();
                tracing::error!(
                    "checkpoint {seq} cannot be written: {error}; changes are refused (503 checkpoint_failed) and \
                     undone until one can be, tried again in {} s (sooner when a request asks), /readyz says not ready",
                    pause.as_secs()
                );
                self.failing = Some(Failing {
                    since: now,
                    failures: 1,
                    unlogged: 0,
                    logged_at: now,
                    next_try: now + pause,
                    retry,
                    last_error: error,
                });
            }
            Some(f) => {
                f.failures += 1;
                f.unlogged += 1;
                f.next_try = now + f.retry.next_pause();
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
}

impl StateActor {
    /// Records that the state changed and returns a future that resolves with `value` once the
    /// change is durable.
    pub(super) fn commit<T: Send + 'static>(
        &mut self,
        value: T,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<T, ZoeError>> {
        let (tx, rx) = oneshot::channel();
        self.commits.next.replies.push(Box::new(move |r: Result<(), ZoeError>| {
            let _ = tx.send(r.map(|()| value));
        }));
        self.changed(ctx);
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| Err(ZoeError::new(Code::Unavailable, "the state actor stopped")))
        })
    }

    /// Marks a change that no request waits for (Docker outcomes, scheduling).
    pub(super) fn changed(&mut self, ctx: &mut Context<Self>) {
        self.commits.dirty = true;
        self.flush(ctx);
    }

    /// Hands the current state to the writer unless a write is already in flight, or checkpoints
    /// are failing and the next attempt is not due (a request waiting makes it due). With
    /// nothing to write and nothing being written, the commands waiting go to the back end.
    pub(super) fn flush(&mut self, ctx: &mut Context<Self>) {
        let c = &mut self.commits;
        if c.writing.is_some() {
            return;
        }
        if !c.dirty {
            for effect in std::mem::take(&mut c.next.effects) {
                self.link.send(effect);
            }
            return;
        }
        let due = c.failing.as_ref().is_none_or(|f| Instant::now() >= f.next_try);
        if !due && c.next.replies.is_empty() {
            return;
        }
        let Some(writer) = &c.writer else {
            return;
        };
        let seq = c.seq + 1;
        c.dirty = false;
        let mut snapshot = self.state.clone();
        snapshot.changes = std::mem::take(&mut c.log);
        // The usage measured so far goes with it.
        self.usage.since = None;
        let snapshot = Arc::new(snapshot);
        if writer.send(WriteJob::Checkpoint { seq, state: snapshot.clone() }).is_err() {
            tracing::error!("checkpoint writer thread is gone");
            for r in c.next.replies.drain(..) {
                r(Err(ZoeError::new(Code::CheckpointFailed, "the checkpoint writer stopped")));
            }
            ctx.stop();
            return;
        }
        let batch = std::mem::take(&mut c.next);
        c.writing = Some(Writing { seq, state: snapshot, archive: self.archive.index.clone(), batch });
    }

    /// A checkpoint could not be written: the state goes back to the newest durable one. Every
    /// request not yet on disk is refused and leaves no trace; the commands they (and the
    /// scheduler) asked for are dropped; what the back end reported is applied again.
    fn roll_back(&mut self, failed: Batch, error: &str) {
        let later = std::mem::take(&mut self.commits.next);
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
        self.commits.log.clear();
        self.commits.dirty = false;
        let facts: Vec<Fact> = failed.facts.into_iter().chain(later.facts).collect();
        let replayed = facts.len();
        for fact in facts {
            let f = self.apply_fact(&fact);
            self.follow_up_effects(&f);
            self.commits.dirty |= f.changed;
            self.commits.next.facts.push(fact);
        }
        tracing::debug!(refused, dropped, replayed, "state rolled back to checkpoint {}", self.commits.seq);
    }
}

impl Handler<Written> for StateActor {
    type Result = ();

    fn handle(&mut self, msg: Written, ctx: &mut Self::Context) {
        let Some(Writing { seq, state, archive, batch }) = self.commits.writing.take() else { return };
        debug_assert_eq!(seq, msg.seq);
        self.counters.checkpoint_last_seconds = msg.elapsed_ms / 1e3;
        self.counters.checkpoint_seconds += msg.elapsed_ms / 1e3;
        match msg.result {
            Ok(()) => {
                self.commits.seq = seq;
                self.durable = state.clone();
                let replies = batch.replies.len();
                let archived = batch.archives();
                self.counters.checkpoints_written += 1;
                tracing::debug!(seq, ms = msg.elapsed_ms, changes = replies, "checkpoint written");
                if let Some(f) = self.commits.failing.take() {
                    tracing::info!(
                        "checkpoints are written again (checkpoint {seq}), after {} failure(s) over {} s",
                        f.failures,
                        f.since.elapsed().as_secs()
                    );
                    self.reader.storage.set_failing(false);
                }
                // Readers see the change before its requester hears that it is done, and the back
                // end hears of it only now.
                let has_backend = self.link.handle.is_some();
                let metered = self.metered();
                self.reader.publish(
                    Published::new(state, archive, self.link.platform.clone(), self.counters.clone(), has_backend)
                        .with_metered(metered),
                );
                for effect in batch.effects {
                    self.link.send(effect);
                }
                for r in batch.replies {
                    r(Ok(()));
                }
                // Under a stream of changes, history is looked at more often than every tick,
                // so that a burst of ended executions does not swell the checkpoints.
                // A backlog (a first start after an upgrade, a burst of ends) goes segment after
                // segment, each once the previous one has left the durable state.
                if archived || self.archive.check_due() {
                    self.archive_due(Self::now());
                }
                // Group commit: the clients just answered are about to send their next change.
                // When few changes are waiting, give them a moment to arrive, so the next
                // checkpoint covers them too instead of leaving them for the one after.
                if self.commits.next.replies.len() * 2 < replies {
                    ctx.run_later(GATHER, |act, ctx| act.flush(ctx));
                    return;
                }
            }
            Err(e) => {
                self.counters.checkpoint_failures += 1;
                self.reader.storage.set_failing(true);
                self.commits.note_failure(msg.seq, e.clone());
                self.roll_back(batch, &e);
                self.refresh();
                // Decisions are made again on the durable state (their commands were dropped).
                self.schedule(ctx);
            }
        }
        self.flush(ctx);
    }
}
