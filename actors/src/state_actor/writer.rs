//! The writer: one thread that writes checkpoints and archive segments, one at a time, and tells
//! the state actor when each is on disk (or could not be written). A segment handed over before
//! a checkpoint is on disk before that checkpoint is written. It also measures the state disk's
//! free space, after each write and every second meanwhile (one `statvfs`), for the
//! `state-min-free` guard.

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use actix::prelude::*;
use zoe_checkpoints::archive::SegmentIndex;
use zoe_checkpoints::{Archive, Encoder, Execution, State, Store};

use super::StateActor;
use crate::logic::reader::Storage;

/// How often the free space is measured while nothing is written.
const MEASURE_EVERY: Duration = Duration::from_secs(1);

/// What the writer is asked to write.
pub(super) enum WriteJob {
    /// A state, as checkpoint `seq`.
    Checkpoint { seq: u64, state: Arc<State> },
    /// Ended executions, as archive segment `number`.
    Segment { number: u64, executions: Vec<Arc<Execution>> },
}

/// Sent by the writer thread when an archive segment is on disk (or could not be written).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct SegmentWritten {
    pub number: u64,
    /// Its index, and a warning when only the index file could not be written.
    pub result: Result<(Arc<SegmentIndex>, Option<String>), String>,
    pub elapsed_ms: f64,
}

/// Sent by the writer thread when a checkpoint is on disk (or could not be written).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Written {
    pub seq: u64,
    pub result: Result<(), String>,
    pub elapsed_ms: f64,
}

/// Where the writer writes.
pub(super) struct Disk {
    pub store: Store,
    /// Checkpoints to keep.
    pub keep: usize,
    pub archive: Archive,
    pub deployment: String,
    /// Where the free space is told.
    pub storage: Arc<Storage>,
}

/// Starts the writer thread.
pub(super) fn start(disk: Disk, actor: Addr<StateActor>) -> std::io::Result<mpsc::Sender<WriteJob>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new().name("zoe-checkpoint-writer".into()).spawn(move || run(disk, rx, actor))?;
    Ok(tx)
}

fn run(disk: Disk, jobs: mpsc::Receiver<WriteJob>, actor: Addr<StateActor>) {
    let Disk { store, keep, archive, deployment, storage } = disk;
    let mut encoder = Encoder::default();
    let measure = || match store.free_space() {
        Ok(bytes) => storage.set_free(bytes),
        Err(e) => {
            tracing::debug!("cannot measure the free space of {}: {e}", store.dir().display());
            storage.set_free(u64::MAX);
        }
    };
    measure();
    loop {
        let job = match jobs.recv_timeout(MEASURE_EVERY) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                measure();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let started = Instant::now();
        let elapsed_ms = || started.elapsed().as_secs_f64() * 1e3;
        match job {
            WriteJob::Checkpoint { seq, state } => {
                let result =
                    encoder.encode(&state).map_err(|e| format!("cannot encode the state: {e}")).and_then(|text| {
                        tracing::trace!(ms = elapsed_ms(), bytes = text.len(), "checkpoint encoded");
                        store.write(seq, &text).map_err(|e| format!("cannot write {}: {e}", store.path(seq).display()))
                    });
                if result.is_ok() {
                    if let Err(e) = store.prune(keep) {
                        tracing::warn!("cannot prune old checkpoints: {e}");
                    }
                }
                measure();
                actor.do_send(Written { seq, result, elapsed_ms: elapsed_ms() });
            }
            WriteJob::Segment { number, executions } => {
                let result = archive.write(&deployment, number, &executions);
                measure();
                actor.do_send(SegmentWritten { number, result, elapsed_ms: elapsed_ms() });
            }
        }
    }
}
