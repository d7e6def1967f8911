//! Executions as readers see them: those of the newest checkpoint and those of the archive,
//! as one history. An execution in both is the checkpoint's (see [`zoe_checkpoints::archive`]).
//! Listings filter on what the archive's index holds, so that only what is returned is read
//! from disk.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

use zoe_checkpoints::{ArchiveFilter, Archived, Execution, ExecutionStatus, State, Timestamp};

use crate::error::{Code, ZoeError};
use crate::logic::access::Caller;
use crate::logic::reader::Published;

/// How much of the history the checkpoints hold; the rest is archived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Ended executions kept in the checkpoint: at most the newest this many...
    pub keep: usize,
    /// ...that ended at most this long ago.
    pub keep_seconds: u64,
    /// A segment is written once this many ended executions are due (or once the oldest has
    /// waited [`ARCHIVE_GRACE`] past its time).
    pub batch: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig { keep: 500, keep_seconds: 86_400, batch: 100 }
    }
}

/// Executions in one archive segment, at most.
pub const SEGMENT_MAX: usize = 1000;
/// Ended executions due for the archive but fewer than a batch go anyway after this long.
pub const ARCHIVE_GRACE: Duration = Duration::from_secs(3600);

/// The ended executions to move to the archive now, oldest first, a segment at most: those
/// beyond the newest `keep` and those that ended over `keep_seconds` ago, once there are a batch
/// of them or the oldest has waited [`ARCHIVE_GRACE`] more. Active executions never move.
pub fn due_for_archive(state: &State, h: &HistoryConfig, now: Timestamp) -> Vec<Arc<Execution>> {
    let mut ended: Vec<&Arc<Execution>> =
        state.executions.values().filter(|e| e.status.is_final() && e.time_finished.is_some()).collect();
    let cutoff = now - Duration::from_secs(h.keep_seconds);
    if ended.len() <= h.keep && ended.iter().all(|e| e.time_finished >= Some(cutoff)) {
        return Vec::new();
    }
    // Newest first: the first `keep` stay unless they are too old.
    ended.sort_by_key(|e| Reverse((e.time_finished, e.id)));
    let mut due: Vec<Arc<Execution>> = ended
        .iter()
        .enumerate()
        .filter(|(i, e)| *i >= h.keep || e.time_finished < Some(cutoff))
        .map(|(_, e)| Arc::clone(e))
        .collect();
    let overdue = cutoff - ARCHIVE_GRACE;
    if due.len() < h.batch.max(1) && due.last().is_none_or(|e| e.time_finished >= Some(overdue)) {
        return Vec::new();
    }
    due.reverse();
    due.truncate(SEGMENT_MAX);
    due
}

/// An execution found for a reader.
#[derive(Clone, Debug)]
pub enum Found {
    /// In the newest checkpoint.
    Hot(Arc<Execution>),
    /// In the archive (ended; read from its segment when needed).
    Archived(Archived),
}

impl Found {
    pub fn id(&self) -> u64 {
        match self {
            Found::Hot(e) => e.id,
            Found::Archived(a) => a.entry().id,
        }
    }

    pub fn owner_id(&self) -> u64 {
        match self {
            Found::Hot(e) => e.owner_id,
            Found::Archived(a) => a.entry().owner_id,
        }
    }

    /// The execution, read from the archive if it is there.
    pub fn load(&self, p: &Published) -> Result<Arc<Execution>, ZoeError> {
        match self {
            Found::Hot(e) => Ok(p.metered(e)),
            Found::Archived(a) => p.archive.read(a).map(Arc::new).map_err(|e| {
                tracing::error!("cannot read archived execution {}: {e}", a.entry().id);
                // The details (a path on the master) are for its log, not for the caller.
                ZoeError::new(
                    Code::ArchiveUnreadable,
                    format!(
                        "archived execution {} cannot be read from archive segment {}: the file changed since the \
                         master indexed it, or cannot be read. An administrator restarts the master, which indexes \
                         changed segments again (or names the place of the damage), and checks the archive with \
                         `zoe checkpoint verify`",
                        a.entry().id,
                        a.segment.number
                    ),
                )
            }),
        }
    }
}

/// The execution with this id, wherever it is.
pub fn find(p: &Published, id: u64) -> Option<Found> {
    match p.state.executions.get(&id) {
        Some(e) => Some(Found::Hot(e.clone())),
        None => p.archive.get(id).map(Found::Archived),
    }
}

/// The execution holding the service with this id, wherever it is.
pub fn find_by_service(p: &Published, service_id: u64) -> Option<Found> {
    match p.state.find_service(service_id) {
        Some((e, _)) => Some(Found::Hot(e.clone())),
        None => p
            .archive
            .get_by_service(service_id)
            .map(Found::Archived)
            .filter(|f| !p.state.executions.contains_key(&f.id())),
    }
}

/// What `GET /execution` may be asked to return; everything empty is all of it (0.9.7).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Any of these statuses (none: any status).
    pub statuses: Vec<ExecutionStatus>,
    /// Exactly this name.
    pub name: Option<String>,
    /// Exactly this owner (a user name).
    pub owner: Option<String>,
    /// Submitted at or after this time.
    pub since: Option<Timestamp>,
    /// Only ids below this one (the next page of a limited listing).
    pub before: Option<u64>,
    /// At most this many: the newest (highest ids) of those that match.
    pub limit: Option<usize>,
}

impl ListFilter {
    fn matches(&self, id: u64, status: ExecutionStatus, name: &str, owner: &str, scheduled: Timestamp) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&status))
            && self.name.as_deref().is_none_or(|n| n == name)
            && self.owner.as_deref().is_none_or(|o| o == owner)
            && self.since.is_none_or(|t| scheduled >= t)
            && self.before.is_none_or(|b| id < b)
    }

    /// Whether the archive can hold a match at all (it holds only ended executions).
    fn reaches_archive(&self) -> bool {
        self.statuses.is_empty() || self.statuses.iter().any(|s| s.is_final())
    }
}

/// The executions a listing returns, in id order.
#[derive(Clone, Debug)]
pub struct Selection {
    pub items: Vec<Found>,
    /// With a limit, when older matches were left out: the `before` of the next page.
    pub older: Option<u64>,
}

impl Selection {
    /// How many of the items are in the archive.
    pub fn archived(&self) -> usize {
        self.items.iter().filter(|f| matches!(f, Found::Archived(_))).count()
    }
}

/// The executions `caller` may see that match `filter`, in id order. The archive is searched
/// through its index (see [`zoe_checkpoints::ArchiveIndex::select`]): with a limit, only its
/// newest matches are looked for.
pub fn select(p: &Published, caller: &Caller, filter: &ListFilter) -> Selection {
    let mut refs: Vec<Found> = p
        .state
        .executions
        .values()
        .filter(|e| caller.can_see(e.owner_id) && filter.matches(e.id, e.status, &e.name, &e.owner, e.time_scheduled))
        .map(|e| Found::Hot(e.clone()))
        .collect();
    let mut more = false;
    if filter.reaches_archive() {
        let wanted = ArchiveFilter {
            visible_to: caller.sees_only(),
            owner: filter.owner.as_deref(),
            name: filter.name.as_deref(),
            statuses: &filter.statuses,
            since: filter.since,
            before: filter.before,
        };
        // An execution in both is the checkpoint's.
        let picked = p.archive.select(&wanted, filter.limit, |id| p.state.executions.contains_key(&id));
        more = picked.more;
        refs.extend(picked.items.into_iter().map(Found::Archived));
        refs.sort_unstable_by_key(Found::id);
    }
    let mut older = None;
    if let Some(limit) = filter.limit {
        if refs.len() > limit || more {
            let cut = refs.len().saturating_sub(limit);
            refs.drain(..cut);
            older = refs.first().map(Found::id);
        }
    }
    Selection { items: refs, older }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::at;
    use zoe_checkpoints::Application;

    /// `ended` executions that ended at the given seconds (ids from 1), and two active ones.
    fn state(ended: &[i64]) -> State {
        let mut s = crate::testing::admin_state();
        let app = Application {
            name: "a".into(),
            version: 2,
            will_end: true,
            requires_binary: false,
            priority: 1,
            services: vec![],
        };
        let mut add = |id: u64, status: ExecutionStatus, finished: Option<i64>| {
            s.executions.insert(
                id,
                Arc::new(Execution {
                    id,
                    name: format!("e{id}"),
                    owner: "zoeadmin".into(),
                    owner_id: 0,
                    status,
                    error: None,
                    ending: None,
                    time_scheduled: at(0),
                    time_started: None,
                    time_finished: finished.map(at),
                    application: app.clone(),
                    services: vec![],
                    proxy_secret: None,
                    usage: Default::default(),
                    usage_series: Default::default(),
                }),
            );
        };
        for (i, t) in ended.iter().enumerate() {
            add(i as u64 + 1, ExecutionStatus::Finished, Some(*t));
        }
        add(100, ExecutionStatus::Running, None);
        add(101, ExecutionStatus::Scheduled, None);
        s
    }

    fn ids(v: &[Arc<Execution>]) -> Vec<u64> {
        v.iter().map(|e| e.id).collect()
    }

    #[test]
    fn the_window_keeps_the_newest_and_the_recent_and_batches_the_rest() {
        let h = HistoryConfig { keep: 2, keep_seconds: 1000, batch: 2 };
        // Ended at 10, 30, 20, 40 (ids 1 to 4): the two newest (4 and 2) stay; 1 and 3 are due,
        // oldest first; active ones never move.
        assert_eq!(ids(&due_for_archive(&state(&[10, 30, 20, 40]), &h, at(100))), [1, 3]);
        // One due is fewer than a batch: it waits...
        assert!(due_for_archive(&state(&[10, 30, 20]), &h, at(100)).is_empty());
        // ...until it has waited the grace time past its window.
        let late = 10 + 1000 + ARCHIVE_GRACE.as_secs() as i64 + 1;
        assert_eq!(ids(&due_for_archive(&state(&[10, late - 5, late - 1]), &h, at(late))), [1]);
        // By age: all ended over keep_seconds ago are due even within the newest `keep`.
        assert_eq!(ids(&due_for_archive(&state(&[10, 20]), &h, at(1100))), [1, 2]);
        assert!(due_for_archive(&state(&[10, 20]), &h, at(900)).is_empty(), "within the window");
        // keep 0, batch 1: everything ended goes at once.
        let eager = HistoryConfig { keep: 0, keep_seconds: 1000, batch: 1 };
        assert_eq!(ids(&due_for_archive(&state(&[50]), &eager, at(60))), [1]);
    }

    #[test]
    fn a_segment_holds_at_most_a_thousand_the_oldest_first() {
        let h = HistoryConfig { keep: 10, keep_seconds: 1_000_000, batch: 100 };
        let finished: Vec<i64> = (0..1500).rev().collect();
        let due = due_for_archive(&state(&finished), &h, at(2000));
        assert_eq!(due.len(), SEGMENT_MAX);
        // The last ids ended first.
        assert_eq!((due[0].id, due[999].id), (1500, 501));
    }
}
