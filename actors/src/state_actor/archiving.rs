//! The history's archive as the state actor keeps it: the archive and its index, the segment
//! being written, the number of the next one, and when the history window is looked at again.
//! Ended executions beyond the window go to a new segment, written by the writer thread; once it
//! is on disk they leave the state (a fact, [`Fact::Archived`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use zoe_checkpoints::{Archive, ArchiveIndex, Execution, Timestamp};

use super::facts::Fact;
use super::writer::{SegmentWritten, WriteJob};
use super::StateActor;
use crate::logic::history;

/// Under a stream of changes, the history window is looked at this often.
const ARCHIVE_CHECK: Duration = Duration::from_millis(100);
/// After a segment could not be written, the next attempt waits this long.
const ARCHIVE_RETRY: Duration = Duration::from_secs(60);

/// The archive and the segment on its way to it.
pub(super) struct Archiving {
    pub archive: Archive,
    /// The archive's index, with every segment written so far.
    pub index: Arc<ArchiveIndex>,
    /// The segment being written, and the executions it holds.
    writing: Option<(u64, Vec<Arc<Execution>>)>,
    /// The number of the next segment.
    next_segment: u64,
    /// After a segment could not be written, none is tried before this moment.
    paused_until: Option<Instant>,
    /// When the history window was last looked at.
    checked: Instant,
}

impl Archiving {
    /// The archive with its index; the next segment follows the index's last.
    pub fn new(archive: Archive, index: ArchiveIndex) -> Archiving {
        Archiving {
            archive,
            next_segment: index.last_segment() + 1,
            index: Arc::new(index),
            writing: None,
            paused_until: None,
            checked: Instant::now(),
        }
    }

    /// Whether the history window is due for a look under a stream of changes.
    pub fn check_due(&self) -> bool {
        self.checked.elapsed() >= ARCHIVE_CHECK
    }
}

impl StateActor {
    /// Hands ended executions beyond the history window to the writer, as a new archive segment,
    /// when a batch of them is due (or the oldest has waited long enough). Only durable ones: a
    /// segment never holds a change that might be undone. So the next segment waits until the
    /// checkpoint that drops the last one's executions is durable too (else the durable state
    /// still holds them, and they would be archived twice).
    pub(super) fn archive_due(&mut self, now: Timestamp) {
        let a = &mut self.archive;
        if a.writing.is_some() || self.commits.archiving() || a.paused_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        a.checked = Instant::now();
        let Some(writer) = &self.commits.writer else { return };
        let due = history::due_for_archive(&self.durable, &self.config.history, now);
        if due.is_empty() {
            return;
        }
        let number = a.next_segment;
        a.next_segment += 1;
        if writer.send(WriteJob::Segment { number, executions: due.clone() }).is_ok() {
            a.writing = Some((number, due));
        }
    }
}

impl Handler<SegmentWritten> for StateActor {
    type Result = ();

    fn handle(&mut self, msg: SegmentWritten, ctx: &mut Self::Context) {
        let Some((number, sent)) = self.archive.writing.take() else { return };
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
                self.archive.index = Arc::new(self.archive.index.with_segment(segment));
                self.record(Fact::Archived { number, executions: sent }, ctx);
            }
            Err(e) => {
                tracing::error!(
                    "archive segment {number} could not be written, trying again in {} s: {e}",
                    ARCHIVE_RETRY.as_secs()
                );
                // The next try takes the same number: segments are numbered without a gap.
                self.archive.next_segment = number;
                self.archive.paused_until = Some(Instant::now() + ARCHIVE_RETRY);
            }
        }
    }
}
