//! The `/usage` page's figures: each user's usage day by day over a span of whole UTC days, for
//! a caller (their own; an administrator's: everyone's). Each day is a usage report of that day
//! ([`usage_report`]), so the page and `GET /usage` always agree.

use std::collections::BTreeMap;

use zoe_checkpoints::archive::usage::DAY;
use zoe_checkpoints::Timestamp;

use super::usage::{usage_report, UsageBy, UsageQuery, UsageRow};
use crate::error::ZoeError;
use crate::logic::access::Caller;
use crate::logic::reader::Published;

/// One user's usage over a span: the whole span's row, and each day's.
#[derive(Clone, Debug, PartialEq)]
pub struct UserDays {
    pub total: UsageRow,
    /// `(day, row)`, days since 1970-01-01 (UTC), oldest first; days without use are left out.
    pub days: Vec<(i64, UsageRow)>,
}

/// Each user's usage the caller may see, per day over days `[from_day, to_day)`, by name.
pub fn usage_days(
    p: &Published,
    caller: &Caller,
    from_day: i64,
    to_day: i64,
    now: Timestamp,
) -> Result<Vec<UserDays>, ZoeError> {
    let span = UsageQuery { from: from_day * DAY, to: to_day * DAY, by: UsageBy::User };
    let mut users: BTreeMap<String, UserDays> = usage_report(p, caller, &span, now)?
        .into_iter()
        .map(|r| (r.user.clone(), UserDays { total: r, days: Vec::new() }))
        .collect();
    for day in from_day..to_day {
        let q = UsageQuery { from: day * DAY, to: (day + 1) * DAY, by: UsageBy::User };
        for row in usage_report(p, caller, &q, now)? {
            if let Some(u) = users.get_mut(&row.user) {
                u.days.push((day, row));
            }
        }
    }
    Ok(users.into_values().collect())
}
