//! `GET /usage`: what users and executions used and reserved over a span of whole UTC days, per
//! user or per execution, for a caller (their own rows; an administrator's: everyone's).
//!
//! The archived executions come from the archive's daily roll-up (per user) or its per-execution
//! totals (per execution) (see `zoe_checkpoints::archive::usage`); the executions still in the
//! checkpoints, running ones with their newest measured usage, are added the same way: usage is
//! taken as spread evenly over each execution's run, and the span's share of it counts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zoe_checkpoints::archive::usage::{share, Sum, DAY};
use zoe_checkpoints::{Timestamp, Usage};

use crate::error::{Code, ZoeError};
use crate::logic::access::{check_caller, Caller};
use crate::logic::reader::Published;

/// Rows per user or per execution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UsageBy {
    #[default]
    User,
    Execution,
}

/// The default span of a report: the last 30 days.
pub const DEFAULT_SPAN: i64 = 30 * DAY;

/// The latest time a report may name (the end of year 9999).
const LAST_TIME: i64 = 253_402_300_799;

/// A usage report's span, as whole UTC days `[from, to)` in Unix seconds, and its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageQuery {
    pub from: i64,
    pub to: i64,
    pub by: UsageBy,
}

impl UsageQuery {
    /// The query of `since`, `until` (Unix seconds; by default the 30 days before now) and
    /// `by` (`user` or `execution`; by default `user`), as given in a request: the span widens
    /// to whole UTC days (`since` back to its day's start, `until` on to the next day's start).
    pub fn parse(since: Option<&str>, until: Option<&str>, by: Option<&str>, now: Timestamp) -> Result<Self, ZoeError> {
        let time = |name: &str, v: &str| {
            v.parse::<i64>().ok().filter(|t| (0..=LAST_TIME).contains(t)).ok_or_else(|| {
                ZoeError::new(
                    Code::InvalidPeriod,
                    format!("{name} must be a Unix time in seconds, from 0 to {LAST_TIME}"),
                )
            })
        };
        let until = until.map(|v| time("until", v)).transpose()?.unwrap_or_else(|| now.unix_timestamp());
        let since = since.map(|v| time("since", v)).transpose()?.unwrap_or((until - DEFAULT_SPAN).max(0));
        if since >= until {
            return Err(ZoeError::new(Code::InvalidPeriod, format!("since ({since}) must be before until ({until})")));
        }
        let by = match by {
            None | Some("user") => UsageBy::User,
            Some("execution") => UsageBy::Execution,
            Some(_) => {
                return Err(ZoeError::new(Code::InvalidGrouping, "by must be user or execution"));
            }
        };
        let from = since.div_euclid(DAY) * DAY;
        let to = (until.div_euclid(DAY) + i64::from(until.rem_euclid(DAY) > 0)) * DAY;
        Ok(UsageQuery { from, to, by })
    }
}

/// One row of a usage report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageRow {
    /// The owner's name.
    pub user: String,
    /// The execution (rows per execution only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<u64>,
    /// The execution's name (rows per execution only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_name: Option<String>,
    /// Executions that ran in the span.
    pub executions: u64,
    /// CPU time used, in core-hours.
    pub cpu_core_hours: f64,
    /// Memory in use over time, in GiB-hours.
    pub memory_gib_hours: f64,
    /// Cores reserved over the time the containers ran, in core-hours.
    pub reserved_core_hours: f64,
    /// Memory reserved over the time the containers ran, in GiB-hours.
    pub reserved_memory_gib_hours: f64,
}

impl UsageRow {
    fn of(user: String, execution: Option<(u64, String)>, executions: u64, u: &Usage) -> UsageRow {
        const HOUR: f64 = 3600.0;
        const GIB_HOUR: f64 = (1u64 << 30) as f64 * HOUR;
        let (execution_id, execution_name) = execution.unzip();
        UsageRow {
            user,
            execution_id,
            execution_name,
            executions,
            cpu_core_hours: u.cpu_seconds / HOUR,
            memory_gib_hours: u.memory_byte_seconds / GIB_HOUR,
            reserved_core_hours: u.reserved_core_seconds / HOUR,
            reserved_memory_gib_hours: u.reserved_memory_byte_seconds / GIB_HOUR,
        }
    }
}

/// The rows of a usage report for `caller`: per user by name, or per execution by id.
pub fn usage_report(p: &Published, caller: &Caller, q: &UsageQuery, now: Timestamp) -> Result<Vec<UsageRow>, ZoeError> {
    check_caller(&p.state, caller)?;
    let owner = caller.sees_only();
    let now = now.unix_timestamp();
    // The executions of the checkpoints that ran in the span, with their share of usage.
    let hot = p
        .state
        .executions
        .values()
        .filter(|e| owner.is_none_or(|o| o == e.owner_id) && p.archive.get(e.id).is_none())
        .filter_map(|e| {
            let e = p.metered(e);
            let started = e.time_started?.unix_timestamp();
            let ended = e.time_finished.map_or(now.max(started), |t| t.unix_timestamp());
            let (s, end) = zoe_checkpoints::archive::usage::run(started, ended);
            (end > q.from && s < q.to).then(|| {
                let u = share(&e.usage, started, ended, q.from, q.to);
                (e, u)
            })
        });
    let mut rows = Vec::new();
    match q.by {
        UsageBy::User => {
            let mut sums = p.archive.usage_by_owner(q.from.div_euclid(DAY), q.to.div_euclid(DAY), owner);
            for (e, u) in hot {
                sums.entry(e.owner_id).or_insert_with(|| (e.owner.clone(), Sum::default())).1.add(1, &u);
            }
            let mut named: Vec<(String, Sum)> = sums
                .into_iter()
                .map(|(id, (name, sum))| (p.state.users.get(&id).map_or(name, |u| u.name.clone()), sum))
                .collect();
            named.sort_by(|a, b| a.0.cmp(&b.0));
            rows.extend(named.into_iter().map(|(name, sum)| UsageRow::of(name, None, sum.executions, &sum.usage)));
        }
        UsageBy::Execution => {
            let mut by_id: BTreeMap<u64, UsageRow> = BTreeMap::new();
            p.archive.usage_by_execution(q.from, q.to, owner, |entry, su| {
                let u = share(&su.usage, su.started, su.ended, q.from, q.to);
                let row = UsageRow::of(entry.owner.to_string(), Some((entry.id, entry.name.to_string())), 1, &u);
                by_id.insert(entry.id, row);
            });
            for (e, u) in hot {
                by_id.insert(e.id, UsageRow::of(e.owner.clone(), Some((e.id, e.name.clone())), 1, &u));
            }
            rows.extend(by_id.into_values());
        }
    }
    Ok(rows)
}
