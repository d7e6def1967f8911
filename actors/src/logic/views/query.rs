//! `POST /query`: what it looks for, what it answers, and the search.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use zoe_checkpoints::{ExecutionStatus, Timestamp};

use super::{
    execution_view, positions, service_view, stats_platform, stats_scheduler, unwritable, user_view, ExecutionView,
    PlatformStats, SchedulerStats, ServiceView, Stats, UserView,
};
use crate::error::ZoeError;
use crate::logic::access::{check_caller, Caller};
use crate::logic::history::{self, ListFilter};
use crate::logic::reader::Published;
use crate::logic::scheduler::SchedulerConfig;

/// What `POST /query` looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueryWhat {
    User,
    Execution,
    Service,
    StatsScheduler,
    StatsSwarm,
}

impl QueryWhat {
    pub const ALL: [QueryWhat; 5] =
        [QueryWhat::User, QueryWhat::Execution, QueryWhat::Service, QueryWhat::StatsScheduler, QueryWhat::StatsSwarm];

    pub fn as_str(self) -> &'static str {
        match self {
            QueryWhat::User => "user",
            QueryWhat::Execution => "execution",
            QueryWhat::Service => "service",
            QueryWhat::StatsScheduler => "stats_scheduler",
            QueryWhat::StatsSwarm => "stats_swarm",
        }
    }

    pub fn parse(s: &str) -> Option<QueryWhat> {
        Self::ALL.into_iter().find(|w| w.as_str() == s)
    }
}

/// The answer of `POST /query`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum QueryAnswer {
    Users(Vec<UserView>),
    Executions(Vec<ExecutionView>),
    Services(Vec<ServiceView>),
    Scheduler(Stats<SchedulerStats>),
    Platform(Stats<PlatformStats>),
}

/// What of a query's filters the archive's index can check, to read fewer executions.
fn prefilter(filters: &Map<String, Value>) -> ListFilter {
    let text = |k: &str| filters.get(k).and_then(Value::as_str).map(str::to_string);
    ListFilter {
        statuses: filters.get("status").and_then(Value::as_str).and_then(ExecutionStatus::parse).into_iter().collect(),
        name: text("name"),
        owner: text("owner"),
        ..ListFilter::default()
    }
}

/// Whether a view's JSON form has every attribute of `filters` with exactly that value.
/// A view that cannot be written as JSON is an error, not a mismatch.
fn matches<T: Serialize>(view: &T, filters: &Map<String, Value>) -> Result<bool, ZoeError> {
    if filters.is_empty() {
        return Ok(true);
    }
    let v = serde_json::to_value(view).map_err(unwritable)?;
    Ok(filters.iter().all(|(k, want)| v.get(k) == Some(want)))
}

/// The views that match `filters`, in their order.
fn matching<T: Serialize>(views: impl Iterator<Item = T>, filters: &Map<String, Value>) -> Result<Vec<T>, ZoeError> {
    let mut found = Vec::new();
    for view in views {
        if matches(&view, filters)? {
            found.push(view);
        }
    }
    Ok(found)
}

/// `POST /query`: users, executions or services whose API form matches every filter exactly, or
/// one of the statistics. A non-admin only ever sees their own objects.
pub fn query(
    p: &Published,
    sched: &SchedulerConfig,
    caller: &Caller,
    what: QueryWhat,
    filters: &Map<String, Value>,
    now: Timestamp,
) -> Result<QueryAnswer, ZoeError> {
    check_caller(&p.state, caller)?;
    let state = &p.state;
    Ok(match what {
        QueryWhat::User => QueryAnswer::Users(matching(
            state.users.values().filter(|u| caller.can_see(u.id)).map(|u| user_view(u)),
            filters,
        )?),
        QueryWhat::Execution => {
            let wanted = prefilter(filters);
            // A status that is no status matches nothing: read nothing.
            let unmatchable =
                filters.get("status").is_some_and(|s| s.as_str().and_then(ExecutionStatus::parse).is_none());
            let mut found = Vec::new();
            if !unmatchable {
                // One at a time: what is kept is only what matches.
                let pos = positions(p, sched, now);
                for f in history::select(p, caller, &wanted).items {
                    let e = f.load(p)?;
                    let view = execution_view(&e, pos.get(&e.id).copied());
                    if matches(&view, filters)? {
                        found.push(view);
                    }
                }
            }
            QueryAnswer::Executions(found)
        }
        QueryWhat::Service => QueryAnswer::Services(matching(
            state
                .executions
                .values()
                .filter(|e| caller.can_see(e.owner_id) && !e.status.is_final())
                .flat_map(|e| e.services.iter().map(move |s| service_view(e, s))),
            filters,
        )?),
        QueryWhat::StatsScheduler => QueryAnswer::Scheduler(Stats { stats: stats_scheduler(p, sched, caller, now) }),
        QueryWhat::StatsSwarm => QueryAnswer::Platform(Stats { stats: stats_platform(p, sched, caller, now) }),
    })
}
