//! The checkpoint writer: one thread that encodes and writes one checkpoint at a time, and tells
//! the state actor when it is on disk (or could not be written).

use std::sync::{mpsc, Arc};
use std::time::Instant;

use actix::prelude::*;
use zoe_checkpoints::{Encoder, State, Store};

use super::StateActor;

/// A state to write as checkpoint `seq`.
pub(super) struct WriteJob {
    pub seq: u64,
    pub state: Arc<State>,
}

/// Sent by the writer thread when a checkpoint is on disk (or could not be written).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Written {
    pub seq: u64,
    pub result: Result<(), String>,
    pub elapsed_ms: f64,
}

/// Starts the writer thread.
pub(super) fn start(store: Store, keep: usize, actor: Addr<StateActor>) -> std::io::Result<mpsc::Sender<WriteJob>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new().name("zoe-checkpoint-writer".into()).spawn(move || run(store, keep, rx, actor))?;
    Ok(tx)
}

fn run(store: Store, keep: usize, jobs: mpsc::Receiver<WriteJob>, actor: Addr<StateActor>) {
    let mut encoder = Encoder::default();
    while let Ok(job) = jobs.recv() {
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
