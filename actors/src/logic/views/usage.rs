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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use zoe_checkpoints::{Role, State};

    use super::*;
    use crate::logic::reader::{Counters, Platform};
    use crate::logic::scheduler::SchedulerConfig;
    use crate::logic::transitions::{begin_start, create_user, submit_execution};
    use crate::testing::{admin, admin_state, at};

    fn caller(s: &State, name: &str) -> Caller {
        let u = s.user_by_name(name).unwrap();
        Caller { id: u.id, name: u.name.clone(), role: u.role }
    }

    /// alice's execution ran from `at(0)` for two days and used 48 CPU-seconds; bob's runs since
    /// `at(0)` and has used 10 so far, measured after the last checkpoint.
    fn published() -> (Published, Timestamp) {
        let mut s = admin_state();
        for n in ["alice", "bob"] {
            create_user(&mut s, &admin(), n, Role::User, "$argon2id$".into(), at(0)).unwrap();
        }
        let app = crate::description::app_description::parse_application(&json!({
            "name": "a", "version": 2, "will_end": false, "requires_binary": false, "priority": 1,
            "services": [{"name": "main", "docker_image": "img", "monitor": true, "total_count": 1,
                          "essential_count": 1, "startup_order": 0, "ports": [],
                          "required_resources": {"memory": 33554432, "cores": 1.0}}]
        }))
        .unwrap();
        let cfg = SchedulerConfig::default();
        let mut ids = Vec::new();
        for who in ["alice", "bob"] {
            let c = caller(&s, who);
            let id = submit_execution(&mut s, &c, "x", app.clone(), &cfg, None, at(0)).unwrap();
            begin_start(&mut s, id, at(0)).unwrap();
            crate::logic::outcomes::started(&mut s, id, &[], at(0));
            ids.push(id);
        }
        let used = |cpu: f64| Usage { cpu_seconds: cpu, reserved_core_seconds: cpu * 2.0, ..Usage::default() };
        let e = Arc::make_mut(s.executions.get_mut(&ids[0]).unwrap());
        e.status = zoe_checkpoints::ExecutionStatus::Finished;
        e.time_finished = Some(at(2 * DAY));
        e.usage = used(48.0);
        let now = at(3 * DAY);
        let mut bob = (*s.executions[&ids[1]]).clone();
        bob.usage = used(10.0);
        let metered = Arc::new([(ids[1], Arc::new(bob))].into_iter().collect());
        let p = Published::new(Arc::new(s), Arc::default(), Platform::default(), Counters::default(), true)
            .with_metered(metered);
        (p, now)
    }

    #[test]
    fn queries_are_whole_days_and_bad_ones_are_refused_with_their_code() {
        let now = at(0);
        let q = UsageQuery::parse(Some("90000"), Some("172800"), Some("execution"), now).unwrap();
        assert_eq!(q, UsageQuery { from: DAY, to: 2 * DAY, by: UsageBy::Execution }, "until on a midnight stays");
        let q = UsageQuery::parse(None, Some("172801"), None, now).unwrap();
        assert_eq!((q.from, q.to, q.by), (0, 3 * DAY, UsageBy::User), "30 days back, but not before 1970");
        let q = UsageQuery::parse(None, None, None, now).unwrap();
        assert_eq!(q.to - q.from, 31 * DAY, "the last 30 days, whole: 31 of them");
        for (since, until, by, code) in [
            (Some("x"), None, None, Code::InvalidPeriod),
            (Some("-5"), None, None, Code::InvalidPeriod),
            (Some("10"), Some("10"), None, Code::InvalidPeriod),
            (None, Some("99999999999999"), None, Code::InvalidPeriod),
            (None, None, Some("owner"), Code::InvalidGrouping),
        ] {
            assert_eq!(UsageQuery::parse(since, until, by, now).unwrap_err().code, code, "{since:?} {until:?} {by:?}");
        }
    }

    #[test]
    fn reports_count_the_span_s_share_with_live_usage_and_only_what_the_caller_may_see() {
        let (p, now) = published();
        let start = at(0).unix_timestamp();
        let days = |from: i64, to: i64, by: UsageBy| UsageQuery { from: start + from * DAY, to: start + to * DAY, by };
        // at(0) is not a midnight: the span is the caller's; the view takes it as given.
        let all = usage_report(&p, &admin(), &days(0, 4, UsageBy::User), now).unwrap();
        let names: Vec<&str> = all.iter().map(|r| r.user.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert!((all[0].cpu_core_hours - 48.0 / 3600.0).abs() < 1e-12, "{all:?}");
        assert!((all[1].cpu_core_hours - 10.0 / 3600.0).abs() < 1e-12, "bob's newest measure: {all:?}");
        assert!(all.iter().all(|r| r.reserved_core_hours >= r.cpu_core_hours && r.executions == 1));
        // The second day holds half of alice's run, and a third of bob's (three days so far).
        let day2 = usage_report(&p, &admin(), &days(1, 2, UsageBy::User), now).unwrap();
        assert!((day2[0].cpu_core_hours * 3600.0 - 24.0).abs() < 1e-9, "{day2:?}");
        assert!((day2[1].cpu_core_hours * 3600.0 - 10.0 / 3.0).abs() < 1e-9, "{day2:?}");
        // Users see their own rows only, per user and per execution.
        let bob = caller(&p.state, "bob");
        let mine = usage_report(&p, &bob, &days(0, 4, UsageBy::Execution), now).unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!((mine[0].user.as_str(), mine[0].execution_name.as_deref()), ("bob", Some("x")));
        assert_eq!(usage_report(&p, &bob, &days(0, 4, UsageBy::User), now).unwrap().len(), 1);
        // Before anything ran: nothing.
        assert!(usage_report(&p, &admin(), &days(-5, -1, UsageBy::User), now).unwrap().is_empty());
        // A caller who no longer exists gets nothing.
        let gone = Caller { id: 99, name: "eve".into(), role: Role::Admin };
        assert_eq!(usage_report(&p, &gone, &days(0, 4, UsageBy::User), now).unwrap_err().code, Code::Unauthorized);
    }
}
