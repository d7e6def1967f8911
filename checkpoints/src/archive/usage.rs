//! What the archive knows of its executions' usage, for the usage reports, without reading a
//! segment: each segment's index keeps every execution's run and usage totals ([`SlotUsage`],
//! 56 bytes) and, derived from them when the index is built, a daily roll-up per owner
//! ([`DayRow`]). A report over whole days sums the roll-up rows of those days, whatever the
//! number of archived executions (the reports are `ArchiveIndex::usage_by_owner` and
//! `ArchiveIndex::usage_by_execution`).
//!
//! Usage is taken as spread evenly over an execution's run (from its start to its end): a day
//! gets the share of the totals that its run spent in that day ([`share`]). The live part of a
//! report (executions still in the checkpoints) is computed the same way, so both agree.

use std::collections::BTreeMap;

use crate::model::{Execution, Usage};

/// Seconds in a (UTC) day.
pub const DAY: i64 = 86_400;

/// A run longer than this many days counts in its last ones only (a hand-edited time).
const MAX_DAYS: i64 = 3660;

/// `started` of an execution that never ran.
pub const NEVER: i64 = i64::MIN;

/// An archived execution's run (Unix seconds) and usage totals.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlotUsage {
    /// When it started ([`NEVER`]: it never ran) and ended.
    pub started: i64,
    pub ended: i64,
    pub usage: Usage,
}

impl SlotUsage {
    pub fn of(e: &Execution) -> SlotUsage {
        let started = e.time_started.map_or(NEVER, |t| t.unix_timestamp());
        let ended = e.time_finished.map_or(started, |t| t.unix_timestamp());
        SlotUsage { started, ended, usage: e.usage }
    }

    pub fn ran(&self) -> bool {
        self.started != NEVER
    }

    /// Its run as a span of at least one second.
    pub fn run(&self) -> (i64, i64) {
        run(self.started, self.ended)
    }
}

/// A run `[started, ended)` of at least one second.
pub fn run(started: i64, ended: i64) -> (i64, i64) {
    (started, ended.max(started.saturating_add(1)))
}

/// The share of `usage` that a run `[started, ended)` spent in `[from, to)` (the peak is kept
/// when they overlap, zero otherwise).
pub fn share(usage: &Usage, started: i64, ended: i64, from: i64, to: i64) -> Usage {
    let (s, e) = run(started, ended);
    let overlap = e.min(to).saturating_sub(s.max(from));
    if overlap <= 0 {
        return Usage::default();
    }
    if s >= from && e <= to {
        return *usage;
    }
    usage.scaled(overlap as f64 / (e - s) as f64)
}

/// The usage of one owner's executions in one day.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DayRow {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    /// The owner's place in its segment's owners.
    pub owner: u16,
    /// Executions that started that day.
    pub started: u32,
    /// Executions that started before and still ran when the day began.
    pub continuing: u32,
    pub usage: Usage,
}

/// The daily roll-up of a segment, in (day, owner) order.
pub(super) fn days(owners: &[u16], usage: &[SlotUsage], skip: impl Fn(usize) -> bool) -> Vec<DayRow> {
    let mut rows: BTreeMap<(i64, u16), DayRow> = BTreeMap::new();
    for (i, (owner, u)) in owners.iter().zip(usage).enumerate() {
        if !u.ran() || skip(i) {
            continue;
        }
        let (s, e) = u.run();
        let first = s.div_euclid(DAY);
        let last = (e - 1).div_euclid(DAY);
        for day in first.max(last - MAX_DAYS)..=last {
            let row = rows.entry((day, *owner)).or_insert(DayRow {
                day,
                owner: *owner,
                started: 0,
                continuing: 0,
                usage: Usage::default(),
            });
            if day == first {
                row.started += 1;
            } else {
                row.continuing += 1;
            }
            row.usage = row.usage.plus(&share(&u.usage, s, e, day * DAY, (day + 1) * DAY));
        }
    }
    rows.into_values().collect()
}

/// One owner's usage over a span of days: the executions that ran then, and what they used.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sum {
    pub executions: u64,
    pub usage: Usage,
}

impl Sum {
    pub fn add(&mut self, executions: u64, usage: &Usage) {
        self.executions += executions;
        self.usage = self.usage.plus(usage);
    }
}

#[cfg(test)]
mod tests;
