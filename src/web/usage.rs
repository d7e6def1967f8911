//! Who used what, in pictures: the `/usage` page (per user over a period of days, CPU and
//! memory used against reserved, and a table of the totals) and the CPU and memory charts of an
//! execution's page. Charts are SVG drawn on the server ([`super::chart`]) from the same views
//! the API answers; nothing needs JavaScript.

use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;
use zoe_actors::logic::placement;
use zoe_actors::logic::views::{self, UsageRow, UserDays};
use zoe_checkpoints::archive::usage::DAY;
use zoe_checkpoints::Execution;

use super::chart::{self, Chart, Kind, Line, Unit};
use super::page::{render, Layout, PageResult, WebUser};
use crate::error::{ApiError, HttpCode};
use crate::AppData;

/// An execution's CPU and memory over time (its kept series), each against what it reserves:
/// two `<svg>` elements, none when nothing was measured yet.
pub fn execution_charts(e: &Execution, now: i64) -> Vec<String> {
    let points = &e.usage_series.points;
    let (Some(first), Some(last)) = (points.first(), points.last()) else { return Vec::new() };
    let from = first.end() - i64::from(first.seconds());
    let to = if e.status.is_final() { last.end() } else { now.max(last.end()) };
    let reserved = placement::reservation(&e.application);
    // A point is the mean over its span: drawn at the span's middle.
    let at = |p: &zoe_checkpoints::UsagePoint| p.end() - i64::from(p.seconds()) / 2;
    let flat = |v: f64| vec![(from, v), (to, v)];
    let cpu = points.iter().map(|p| (at(p), p.cores())).collect();
    let memory = points.iter().map(|p| (at(p), p.memory() as f64)).collect();
    vec![
        usage_chart(format!("CPU of {} (cores)", e.name), Unit::Cores, (from, to), cpu, flat(reserved.cores)),
        usage_chart(format!("Memory of {}", e.name), Unit::Bytes, (from, to), memory, flat(reserved.memory as f64)),
    ]
}

/// A chart of what was used against what was reserved, as an `<svg>` element.
fn usage_chart(
    title: String,
    unit: Unit,
    (from, to): (i64, i64),
    used: Vec<(i64, f64)>,
    reserved: Vec<(i64, f64)>,
) -> String {
    let line = |kind, points| Line { name: String::new(), kind, points };
    chart::svg(&Chart { title, unit, from, to, lines: vec![line(Kind::Used, used), line(Kind::Reserved, reserved)] })
}

/// The period of `/usage` without `?days=`, and the longest one.
const DEFAULT_DAYS: i64 = 30;
const MAX_DAYS: i64 = 366;

/// One user's line of the `/usage` page (the span's report row), with their charts.
pub struct UserUsageRow {
    pub row: UsageRow,
    /// Core-hours and GiB-hours of each day, as `<svg>` elements (escaped by [`chart`]).
    pub charts: Vec<String>,
}

/// Hours (core-hours, GiB-hours) for a table: two decimals, four under a hundredth.
fn hours(v: f64) -> String {
    if v > 0.0 && v < 0.01 {
        format!("{v:.4}")
    } else {
        format!("{v:.2}")
    }
}

impl UserUsageRow {
    pub fn cpu_text(&self) -> String {
        hours(self.row.cpu_core_hours)
    }

    pub fn reserved_cpu_text(&self) -> String {
        hours(self.row.reserved_core_hours)
    }

    pub fn memory_text(&self) -> String {
        hours(self.row.memory_gib_hours)
    }

    pub fn reserved_memory_text(&self) -> String {
        hours(self.row.reserved_memory_gib_hours)
    }

    /// What share of its reservation the user used: `12% · 40%` (CPU, memory); `-` for nothing
    /// reserved.
    pub fn efficiency_text(&self) -> String {
        let share = |used: f64, reserved: f64| {
            if reserved > 0.0 {
                format!("{:.0}%", 100.0 * used / reserved)
            } else {
                "-".to_string()
            }
        };
        let r = &self.row;
        format!(
            "{} · {}",
            share(r.cpu_core_hours, r.reserved_core_hours),
            share(r.memory_gib_hours, r.reserved_memory_gib_hours)
        )
    }
}

/// A user's days as two charts: core-hours and GiB-hours, used against reserved.
fn user_charts(u: &UserDays, from: i64, to: i64) -> Vec<String> {
    // A day's figures are drawn at its middle.
    let at = |day: i64| day * DAY + DAY / 2;
    let points =
        |f: fn(&UsageRow) -> f64| -> Vec<(i64, f64)> { u.days.iter().map(|(d, row)| (at(*d), f(row))).collect() };
    let user = &u.total.user;
    let chart = |title, unit, used, reserved| usage_chart(title, unit, (from, to), points(used), points(reserved));
    vec![
        chart(format!("{user}: core-hours a day"), Unit::CoreHours, |r| r.cpu_core_hours, |r| r.reserved_core_hours),
        chart(
            format!("{user}: GiB-hours a day"),
            Unit::GibHours,
            |r| r.memory_gib_hours,
            |r| r.reserved_memory_gib_hours,
        ),
    ]
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    layout: Layout,
    days: i64,
    from_text: String,
    to_text: String,
    users: Vec<UserUsageRow>,
}

/// `?days=N`: the period, in days up to today's end.
#[derive(serde::Deserialize)]
pub struct UsageQuery {
    days: Option<String>,
}

/// `GET /usage`: the caller's usage (everyone's for an administrator) over the last days.
pub async fn usage_page(data: web::Data<AppData>, user: WebUser, q: web::Query<UsageQuery>) -> PageResult {
    let days = match q.days.as_deref() {
        None | Some("") => DEFAULT_DAYS,
        Some(d) => d.parse::<i64>().ok().filter(|d| (1..=MAX_DAYS).contains(d)).ok_or_else(|| {
            user.error(ApiError::new(HttpCode::InvalidRequest, format!("days must be a number from 1 to {MAX_DAYS}")))
        })?,
    };
    let to_day = super::now().unix_timestamp().div_euclid(DAY) + 1;
    let from_day = to_day - days;
    let p = data.reader.now();
    let caller = user.caller.clone();
    // The archive's index is in memory, but a long period is many days: off the HTTP worker.
    let at = super::now();
    let list = web::block(move || views::usage_days(&p, &caller, from_day, to_day, at))
        .await
        .map_err(|e| user.error(zoe_actors::ZoeError::new(zoe_actors::Code::Unavailable, e.to_string())))?
        .map_err(|e| user.error(e))?;
    let (from, to) = (from_day * DAY, to_day * DAY);
    let users = list.iter().map(|u| UserUsageRow { charts: user_charts(u, from, to), row: u.total.clone() }).collect();
    let show =
        |t: i64| time::OffsetDateTime::from_unix_timestamp(t).map(|t| super::rows::show_time(&t)).unwrap_or_default();
    let page = UsagePage { layout: user.layout.at("usage"), days, from_text: show(from), to_text: show(to), users };
    Ok(render(&page, StatusCode::OK))
}
