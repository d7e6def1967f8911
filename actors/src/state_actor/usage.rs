//! Measured usage: the sampler's rounds ([`RecordUsage`]) are added to the state
//! ([`crate::logic::usage`]) without a checkpoint of their own. Readers see them at once: each
//! round publishes, with the durable state, the durable executions with their newer usage
//! ([`crate::logic::reader::Published::metered`]). They reach the disk with the next checkpoint,
//! or with one written for them once they have waited [`USAGE_PERSIST`].
//!
//! What a crash (or a checkpoint that cannot be written) loses: the memory peak since the last
//! checkpoint, and the CPU time of containers that ended since. Containers still running lose
//! nothing of their CPU time (the next round counts from the counter last written); their
//! memory and reservations over the gap are counted at the next round (memory as what is in use
//! then).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use zoe_checkpoints::{Execution, Timestamp};

use super::StateActor;
use crate::logic::reader::Metered;
use crate::logic::usage::{self, ExecutionSample};

/// Measured usage waits at most this long for a checkpoint.
pub const USAGE_PERSIST: Duration = Duration::from_secs(300);

/// A round of samples taken at `at`, every `step` seconds.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RecordUsage {
    pub at: Timestamp,
    pub step: u32,
    pub executions: Vec<ExecutionSample>,
}

/// Usage not yet on disk.
#[derive(Default)]
pub(super) struct Unsaved {
    /// Since when (none: all on disk).
    pub since: Option<Instant>,
    /// The durable executions with their newer usage, as published.
    pub metered: HashMap<u64, Arc<Execution>>,
}

impl StateActor {
    /// The executions of `ids` as the durable state has them, with the usage they have now.
    fn meter(&mut self, ids: impl IntoIterator<Item = u64>) {
        for id in ids {
            let (Some(now), Some(durable)) = (self.state.executions.get(&id), self.durable.executions.get(&id)) else {
                self.usage.metered.remove(&id);
                continue;
            };
            if now.usage == durable.usage && now.usage_series == durable.usage_series {
                self.usage.metered.remove(&id);
                continue;
            }
            let mut e = (**durable).clone();
            e.usage = now.usage;
            e.usage_series = now.usage_series.clone();
            self.usage.metered.insert(id, Arc::new(e));
        }
    }

    /// What readers see of the usage not yet durable; after each checkpoint and each round.
    pub(super) fn metered(&mut self) -> Metered {
        let ids: Vec<u64> = self.usage.metered.keys().copied().collect();
        self.meter(ids);
        Arc::new(self.usage.metered.clone())
    }

    /// Once measured usage has waited long enough, a checkpoint takes it to disk.
    pub(super) fn persist_usage_due(&mut self, ctx: &mut Context<Self>) {
        if self.usage.since.is_some_and(|t| t.elapsed() >= USAGE_PERSIST) {
            self.changed(ctx);
        }
    }
}

impl Handler<RecordUsage> for StateActor {
    type Result = ();

    fn handle(&mut self, msg: RecordUsage, _ctx: &mut Self::Context) {
        let changed = usage::record(&mut self.state, &msg.executions, msg.at, msg.step);
        if changed.is_empty() {
            return;
        }
        self.usage.since.get_or_insert_with(Instant::now);
        self.meter(changed);
        self.refresh();
    }
}
