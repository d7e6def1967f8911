//! The API's typed views: users, executions, services and the two statistics, in the JSON shapes
//! of Zoe 0.9.7 (reference section 1.3) plus a few fields its clients ignore. These types are
//! what the API serializes, what its OpenAPI document describes, and what the command-line
//! client and the web pages read; no other type describes these shapes.
//!
//! The functions below make them for a caller from a [`Published`] state: pure, no actor, no
//! clock (`now` is given). Each checks that the caller still exists and shows them only what
//! they may see; an object they may not see is reported as missing. Passwords and hashes never
//! appear here.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};
use zoe_checkpoints::{
    Application, Execution, ExecutionStatus, Role, Service, ServicePort, ServiceStatus, Timestamp, User,
};

use crate::description::naming;
use crate::error::{Code, ZoeError};
use crate::logic::history::{self, Found, ListFilter, Selection};
use crate::logic::placement;
use crate::logic::reader::{Counters, JsonCache, Published};
use crate::logic::scheduler::{self, Policy, SchedulerConfig};
use crate::logic::transitions::{check_caller, visible_user, Caller};

/// An execution's status as the API writes it: 0.9.7's words, `cleaning up` with a space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Status(pub ExecutionStatus);

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ExecutionStatus::parse(&s)
            .map(Status)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown execution status {s:?}")))
    }
}

impl PartialSchema for Status {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(ExecutionStatus::ALL.map(|s| s.as_str())))
            .description(Some("An execution's status"))
            .into()
    }
}

impl ToSchema for Status {
    fn name() -> std::borrow::Cow<'static, str> {
        "ExecutionStatus".into()
    }
}

/// A user; passwords and hashes are never returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = User, example = json!({"id": 2, "name": "alice", "role": "user", "uid": 200001, "gateway_urls": [], "owner": "alice", "created_at": "2026-11-25T12:00:00Z"}))]
pub struct UserView {
    pub id: u64,
    pub name: String,
    pub role: Role,
    /// The uid (and gid) the user's containers run as and their workspace belongs to.
    pub uid: u32,
    /// Always empty (kept for 0.9.7's clients).
    pub gateway_urls: Vec<String>,
    /// The user's own name.
    pub owner: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// The workspace's use of its quota (`GET /user/<name>` only; absent when it could not be
    /// measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<crate::backend::workspace::WorkspaceUse>,
}

/// An execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Execution)]
pub struct ExecutionView {
    pub id: u64,
    pub name: String,
    /// The owner's name.
    pub owner: String,
    pub status: Status,
    /// Why it failed or ended, in plain words.
    pub error: Option<String>,
    /// UTC, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub time_scheduled: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub time_started: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub time_finished: Option<Timestamp>,
    /// The validated description, with every default filled in.
    pub application: Application,
    /// Ids of the services of its live containers (empty once it has ended).
    pub services: Vec<u64>,
    /// Where it stands in the queue (1: next), while it waits.
    pub queue_position: Option<usize>,
    /// Its essential and elastic instances: how many run, are being started, wait for room.
    #[serde(default)]
    pub instances: Instances,
}

/// How many instances run, are being started, or wait (for room, or in the queue).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstanceCounts {
    pub running: usize,
    pub starting: usize,
    pub waiting: usize,
}

/// Essential instances (the application needs them; they admit it) and elastic ones (they make
/// it faster; they start as room allows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Instances {
    pub essential: InstanceCounts,
    pub elastic: InstanceCounts,
}

impl Instances {
    /// Both together.
    pub fn plus(self, o: Instances) -> Instances {
        let add = |a: InstanceCounts, b: InstanceCounts| InstanceCounts {
            running: a.running + b.running,
            starting: a.starting + b.starting,
            waiting: a.waiting + b.waiting,
        };
        Instances { essential: add(self.essential, o.essential), elastic: add(self.elastic, o.elastic) }
    }
}

fn pick(out: &mut Instances, essential: bool) -> &mut InstanceCounts {
    if essential {
        &mut out.essential
    } else {
        &mut out.elastic
    }
}

/// The instances of an execution: queued, all wait; ended, none runs or waits; otherwise as its
/// service records say (an elastic instance that died and will be started again waits).
pub fn instances(e: &Execution) -> Instances {
    let mut out = Instances::default();
    if e.status.is_final() {
        return out;
    }
    if e.status == ExecutionStatus::Scheduled || e.services.is_empty() {
        for d in &e.application.services {
            for i in 0..d.total_count {
                pick(&mut out, d.is_essential(i)).waiting += 1;
            }
        }
        return out;
    }
    for s in &e.services {
        let Some(d) = e.description_of(s) else { continue };
        let counts = pick(&mut out, d.is_essential(s.index));
        match s.status {
            ServiceStatus::Running => counts.running += 1,
            ServiceStatus::Pending => counts.starting += 1,
            _ if crate::logic::placement::wants_start(d, s) => counts.waiting += 1,
            _ => {}
        }
    }
    out
}

/// A service: one container of an execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Service)]
pub struct ServiceView {
    pub id: u64,
    /// The container name, which is also its host name.
    pub name: String,
    /// The name of the service in the description.
    pub service_name: String,
    pub docker_id: Option<String>,
    /// `{network: ip}`.
    pub ip_address: BTreeMap<String, String>,
    pub is_monitor: bool,
    pub ports: Vec<PortView>,
    pub owner: String,
    pub execution_id: u64,
    pub status: ServiceStatus,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// The node it runs (or ran) on, on a Swarm.
    #[serde(default)]
    pub node: Option<String>,
    /// Whether the application needs this instance (`false`: an elastic instance, started as
    /// room allows, whose loss does not end the execution).
    #[serde(default = "yes")]
    pub essential: bool,
    /// How many times this elastic instance was started again after it died or could not start.
    #[serde(default)]
    pub retries: u32,
}

fn yes() -> bool {
    true
}

/// A port of a service: the description's port, where it was published, and where the master's
/// proxy serves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PortView {
    pub name: String,
    pub protocol: String,
    pub port_number: u16,
    pub path: String,
    pub is_main_endpoint: bool,
    pub expose: bool,
    /// `host:port` where an exposed port was published, once running (with `publish-ports`).
    pub host_endpoint: Option<String>,
    /// For an exposed port: the path on the master that forwards to it (the owner and
    /// administrators only), `/proxy/<execution-id>/<instance>/<port>/` followed by the port's
    /// `path`.
    #[serde(default)]
    pub proxy_url: Option<String>,
}

impl PortView {
    fn of(p: &ServicePort, execution_id: u64, instance: &str) -> PortView {
        PortView {
            name: p.name.clone(),
            protocol: p.protocol.clone(),
            port_number: p.port_number,
            path: p.path.clone(),
            is_main_endpoint: p.is_main_endpoint,
            expose: p.expose,
            host_endpoint: p.host_endpoint.clone(),
            proxy_url: p.expose.then(|| {
                format!(
                    "{}{}",
                    naming::proxy_path(execution_id, instance, p.port_number),
                    p.path.trim_start_matches('/')
                )
            }),
        }
    }
}

/// The instance name of a service of `e` (`<service>` or `<service>-<index>`).
pub fn instance_name(e: &Execution, s: &Service) -> String {
    let total = e.description_of(s).map_or(1, |d| d.total_count);
    naming::service_instance_name(&s.service_name, s.index, total)
}

/// `{"stats": ...}`, the envelope of both statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Stats<T> {
    pub stats: T,
}

/// `stats_scheduler`: the queue in the scheduler's order, what runs, and reserved against total
/// resources. The waiting list names only the caller's own executions unless the caller is an
/// administrator; the counts are everyone's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SchedulerStats {
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
    pub policy: Policy,
    pub count_waiting: usize,
    pub waiting_list: Vec<String>,
    pub count_starting: usize,
    pub count_running: usize,
    pub count_cleaning_up: usize,
    pub memory_reserved: u64,
    pub memory_total: Option<u64>,
    pub cores_reserved: f64,
    pub cores_total: Option<f64>,
    /// Whether the scheduler is elastic (essential instances admit an execution, elastic ones
    /// start as room allows) or rigid.
    #[serde(default)]
    pub elastic: bool,
    /// The instances of every active execution together.
    #[serde(default)]
    pub instances: Instances,
}

/// `stats_swarm`: the platform's figures, in the shape 0.9.7 meant. Only administrators see the
/// nodes and the engine's details; others see the totals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlatformStats {
    pub container_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_count: Option<u64>,
    pub memory_total: u64,
    pub cores_total: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_strategy: Option<String>,
    /// What the scheduler hands out: the engine's figures capped by configuration.
    pub memory_capacity: Option<u64>,
    pub cores_capacity: Option<f64>,
    pub memory_reserved: u64,
    pub cores_reserved: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_filters: Option<Vec<String>>,
    pub nodes: Vec<NodeView>,
}

/// One node of the platform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    pub name: String,
    pub docker_endpoint: String,
    pub container_count: u64,
    pub cores_total: u32,
    pub cores_reserved: f64,
    pub memory_total: u64,
    pub memory_reserved: u64,
    pub labels: BTreeMap<String, String>,
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
    /// `healthy` or `unreachable`.
    pub status: String,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_update: Timestamp,
    pub server_version: String,
}

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

// ------------------------------------------------------------------------------- the views

/// The view of a user.
pub fn user_view(u: &User) -> UserView {
    UserView {
        id: u.id,
        name: u.name.clone(),
        role: u.role,
        uid: u.uid,
        gateway_urls: Vec::new(),
        owner: u.name.clone(),
        created_at: u.created_at,
        workspace: None,
    }
}

/// The view of an execution; `services` lists its live containers' services.
pub fn execution_view(e: &Execution, queue_position: Option<usize>) -> ExecutionView {
    ExecutionView {
        id: e.id,
        name: e.name.clone(),
        owner: e.owner.clone(),
        status: Status(e.status),
        error: e.error.clone(),
        time_scheduled: e.time_scheduled,
        time_started: e.time_started,
        time_finished: e.time_finished,
        application: e.application.clone(),
        services: if e.status.is_final() { Vec::new() } else { e.services.iter().map(|s| s.id).collect() },
        queue_position,
        instances: instances(e),
    }
}

/// The view of a service of an execution.
pub fn service_view(e: &Execution, s: &Service) -> ServiceView {
    ServiceView {
        id: s.id,
        name: s.name.clone(),
        service_name: s.service_name.clone(),
        docker_id: s.docker_id.clone(),
        ip_address: s.ip_address.clone(),
        is_monitor: s.is_monitor,
        ports: {
            let instance = instance_name(e, s);
            s.ports.iter().map(|p| PortView::of(p, e.id, &instance)).collect()
        },
        owner: e.owner.clone(),
        execution_id: e.id,
        status: s.status,
        exit_code: s.exit_code,
        oom_killed: s.oom_killed,
        node: s.node.clone(),
        essential: e.is_essential(s),
        retries: s.retries,
    }
}

/// Queue positions (from 1) in the scheduler's order at `now`.
fn positions(p: &Published, sched: &SchedulerConfig, now: Timestamp) -> scheduler::Positions {
    scheduler::queue_positions(&p.state, sched, p.platform.nodes(), now)
}

/// `GET /user/<name>`.
pub fn get_user(p: &Published, caller: &Caller, name: &str) -> Result<UserView, ZoeError> {
    check_caller(&p.state, caller)?;
    visible_user(&p.state, caller, name).map(|u| user_view(u))
}

/// A page of executions: the views, in id order, and when older ones matched but were left out
/// by the limit, the `before` that asks for them.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionList {
    pub items: Vec<ExecutionView>,
    pub older: Option<u64>,
}

/// `GET /execution?...`: the executions the caller may see that match `filter`, in id order
/// (archived ones are read from disk).
pub fn list_executions(
    p: &Published,
    sched: &SchedulerConfig,
    caller: &Caller,
    filter: &ListFilter,
    now: Timestamp,
) -> Result<ExecutionList, ZoeError> {
    check_caller(&p.state, caller)?;
    let pos = positions(p, sched, now);
    let selection = history::select(p, caller, filter);
    let items = selection
        .items
        .iter()
        .map(|f| f.load(p).map(|e| execution_view(&e, pos.get(&e.id).copied())))
        .collect::<Result<_, _>>()?;
    Ok(ExecutionList { items, older: selection.older })
}

/// The execution with this id, if the caller may see it (wherever it is).
fn visible_execution(p: &Published, caller: &Caller, id: u64) -> Result<Found, ZoeError> {
    match history::find(p, id) {
        Some(f) if caller.can_see(f.owner_id()) => Ok(f),
        _ => Err(ZoeError::new(Code::NoSuchExecution, format!("no such execution: {id}"))),
    }
}

/// The execution holding the service with this id, and the service's place in it, if the caller
/// may see it.
fn visible_service(p: &Published, caller: &Caller, id: u64) -> Result<(Arc<Execution>, usize), ZoeError> {
    let missing = || ZoeError::new(Code::NoSuchService, format!("no such service: {id}"));
    let found = history::find_by_service(p, id).filter(|f| caller.can_see(f.owner_id())).ok_or_else(missing)?;
    let e = found.load(p)?;
    let i = e.services.iter().position(|s| s.id == id).ok_or_else(missing)?;
    Ok((e, i))
}

/// Its queue position, when an execution waits.
fn position_of(p: &Published, sched: &SchedulerConfig, e: &Execution, now: Timestamp) -> Option<usize> {
    (e.status == ExecutionStatus::Scheduled).then(|| positions(p, sched, now).get(&e.id).copied()).flatten()
}

/// `GET /execution/<id>`.
pub fn get_execution(
    p: &Published,
    sched: &SchedulerConfig,
    caller: &Caller,
    id: u64,
    now: Timestamp,
) -> Result<ExecutionView, ZoeError> {
    check_caller(&p.state, caller)?;
    let e = visible_execution(p, caller, id)?.load(p)?;
    Ok(execution_view(&e, position_of(p, sched, &e, now)))
}

/// The JSON of an execution: one of the checkpoint that is not waiting (no queue position, which
/// changes with time) comes from the cache while it does not change.
fn execution_json(cache: &JsonCache, e: &Arc<Execution>, queue_position: Option<usize>) -> Arc<[u8]> {
    let make = || serde_json::to_vec(&execution_view(e, queue_position)).unwrap_or_default();
    match queue_position {
        None => cache.get_or_make(e, make),
        Some(_) => make().into(),
    }
}

/// The JSON of a found execution (archived ones are not cached: each read is a new `Arc`).
fn found_json(
    p: &Published,
    cache: &JsonCache,
    f: &Found,
    positions: &scheduler::Positions,
) -> Result<Arc<[u8]>, ZoeError> {
    match f {
        Found::Hot(e) => Ok(execution_json(cache, e, positions.get(&e.id).copied())),
        Found::Archived(_) => {
            let e = f.load(p)?;
            Ok(serde_json::to_vec(&execution_view(&e, None)).unwrap_or_default().into())
        }
    }
}

/// `GET /execution/<id>`, as JSON.
pub fn get_execution_json(
    p: &Published,
    sched: &SchedulerConfig,
    cache: &JsonCache,
    caller: &Caller,
    id: u64,
    now: Timestamp,
) -> Result<Arc<[u8]>, ZoeError> {
    check_caller(&p.state, caller)?;
    match visible_execution(p, caller, id)? {
        Found::Hot(e) => Ok(execution_json(cache, &e, position_of(p, sched, &e, now))),
        f => found_json(p, cache, &f, &Default::default()),
    }
}

/// A listing on its way out as JSON: what was selected, and the queue positions of the moment.
#[derive(Debug)]
pub struct JsonListing {
    pub selection: Selection,
    positions: scheduler::Positions,
}

impl JsonListing {
    /// The JSON of `items[range]`, comma-separated (no brackets), for a caller that writes the
    /// list piece by piece.
    pub fn render(&self, p: &Published, cache: &JsonCache, range: std::ops::Range<usize>) -> Result<Vec<u8>, ZoeError> {
        let mut out = Vec::with_capacity(range.len() * 1024);
        for (n, f) in self.selection.items[range].iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&found_json(p, cache, f, &self.positions)?);
        }
        Ok(out)
    }
}

/// `GET /execution?...`: what to write, as JSON (see [`JsonListing::render`]).
pub fn list_executions_json(
    p: &Published,
    sched: &SchedulerConfig,
    caller: &Caller,
    filter: &ListFilter,
    now: Timestamp,
) -> Result<JsonListing, ZoeError> {
    check_caller(&p.state, caller)?;
    Ok(JsonListing { selection: history::select(p, caller, filter), positions: positions(p, sched, now) })
}

/// An execution with every one of its services, live or not (the execution page).
pub fn execution_with_services(
    p: &Published,
    sched: &SchedulerConfig,
    caller: &Caller,
    id: u64,
    now: Timestamp,
) -> Result<(ExecutionView, Vec<ServiceView>), ZoeError> {
    check_caller(&p.state, caller)?;
    let e = visible_execution(p, caller, id)?.load(p)?;
    let view = execution_view(&e, position_of(p, sched, &e, now));
    Ok((view, e.services.iter().map(|s| service_view(&e, s)).collect()))
}

/// `GET /service/<id>`.
pub fn get_service(p: &Published, caller: &Caller, id: u64) -> Result<ServiceView, ZoeError> {
    check_caller(&p.state, caller)?;
    visible_service(p, caller, id).map(|(e, i)| service_view(&e, &e.services[i]))
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
fn matches<T: Serialize>(view: &T, filters: &Map<String, Value>) -> bool {
    filters.is_empty()
        || serde_json::to_value(view).is_ok_and(|v| filters.iter().all(|(k, want)| v.get(k) == Some(want)))
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
        QueryWhat::User => QueryAnswer::Users(
            state
                .users
                .values()
                .filter(|u| caller.can_see(u.id))
                .map(|u| user_view(u))
                .filter(|v| matches(v, filters))
                .collect(),
        ),
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
                    if matches(&view, filters) {
                        found.push(view);
                    }
                }
            }
            QueryAnswer::Executions(found)
        }
        QueryWhat::Service => QueryAnswer::Services(
            state
                .executions
                .values()
                .filter(|e| caller.can_see(e.owner_id) && !e.status.is_final())
                .flat_map(|e| e.services.iter().map(move |s| service_view(e, s)))
                .filter(|v| matches(v, filters))
                .collect(),
        ),
        QueryWhat::StatsScheduler => QueryAnswer::Scheduler(Stats { stats: stats_scheduler(p, sched, caller, now) }),
        QueryWhat::StatsSwarm => QueryAnswer::Platform(Stats { stats: stats_platform(p, sched, caller, now) }),
    })
}

fn epoch_seconds(now: Timestamp) -> f64 {
    now.unix_timestamp_nanos() as f64 / 1e9
}

/// The scheduler's figures for a caller.
pub fn stats_scheduler(p: &Published, sched: &SchedulerConfig, caller: &Caller, now: Timestamp) -> SchedulerStats {
    let state = &p.state;
    let pos = positions(p, sched, now);
    let mut queued: Vec<(usize, &Execution)> =
        state.executions.values().filter_map(|e| pos.get(&e.id).map(|n| (*n, e.as_ref()))).collect();
    queued.sort_by_key(|(n, _)| *n);
    let count = |st: ExecutionStatus| state.executions.values().filter(|e| e.status == st).count();
    let used = scheduler::reserved(state, sched.elastic);
    let capacity = sched.capacity(p.platform.nodes());
    SchedulerStats {
        timestamp: epoch_seconds(now),
        policy: sched.policy,
        count_waiting: queued.len(),
        waiting_list: queued
            .into_iter()
            .filter(|(_, e)| caller.can_see(e.owner_id))
            .map(|(_, e)| e.name.clone())
            .collect(),
        count_starting: count(ExecutionStatus::Starting),
        count_running: count(ExecutionStatus::Running),
        count_cleaning_up: count(ExecutionStatus::CleaningUp),
        memory_reserved: used.memory,
        memory_total: capacity.map(|c| c.memory),
        cores_reserved: used.cores,
        cores_total: capacity.map(|c| c.cores),
        elastic: sched.elastic,
        instances: state.executions.values().fold(Instances::default(), |acc, e| acc.plus(instances(e))),
    }
}

/// The platform's figures for a caller: with its one node for administrators.
pub fn stats_platform(p: &Published, sched: &SchedulerConfig, caller: &Caller, now: Timestamp) -> PlatformStats {
    let platform = &p.platform;
    let used = scheduler::reserved(&p.state, sched.elastic);
    let capacity = sched.capacity(platform.nodes());
    let admin = caller.is_admin();
    let known: Vec<placement::Node> = platform
        .nodes
        .iter()
        .map(|n| placement::Node {
            name: n.name.clone(),
            capacity: crate::logic::resources::Resources { memory: n.memory, cores: f64::from(n.cpus) },
        })
        .collect();
    let per_node = placement::reserved_per_node(&known, &p.state, sched.elastic);
    PlatformStats {
        container_count: platform.containers,
        image_count: admin.then_some(platform.images),
        memory_total: platform.memory_total,
        cores_total: platform.cpus,
        placement_strategy: admin.then(|| {
            if platform.nodes.len() > 1 || platform.nodes.iter().any(|n| n.role != "engine") {
                "swarm: first-fit decreasing admission, Swarm spread placement".to_string()
            } else {
                "single engine".to_string()
            }
        }),
        memory_capacity: capacity.map(|c| c.memory),
        cores_capacity: capacity.map(|c| c.cores),
        memory_reserved: used.memory,
        cores_reserved: used.cores,
        active_filters: admin.then(Vec::new),
        nodes: if admin && platform.nodes.is_empty() {
            // Nothing reported yet (the back end was never reached, or there is none): the
            // engine as one node, as 0.9.7 showed it, so that its state is seen.
            vec![NodeView {
                name: platform.name.clone(),
                docker_endpoint: "local".to_string(),
                container_count: platform.containers,
                cores_total: platform.cpus,
                cores_reserved: used.cores,
                memory_total: platform.memory_total,
                memory_reserved: used.memory,
                labels: BTreeMap::new(),
                timestamp: epoch_seconds(now),
                status: if platform.reachable { "healthy" } else { "unreachable" }.to_string(),
                error: (!platform.reachable).then(|| "the container back end has not been reached".to_string()),
                last_update: now,
                server_version: platform.server_version.clone(),
            }]
        } else if admin {
            platform
                .nodes
                .iter()
                .zip(&per_node)
                .map(|(n, reserved)| NodeView {
                    name: n.name.clone(),
                    docker_endpoint: n.address.clone(),
                    container_count: n.containers,
                    cores_total: n.cpus,
                    cores_reserved: reserved.cores,
                    memory_total: n.memory,
                    memory_reserved: reserved.memory,
                    labels: n.labels.clone(),
                    timestamp: epoch_seconds(now),
                    status: match (platform.reachable, n.ready) {
                        (false, _) => "unreachable".to_string(),
                        (true, true) => "healthy".to_string(),
                        (true, false) => n.status.clone(),
                    },
                    error: (!n.ready).then(|| format!("node {} is {}: nothing is placed on it", n.name, n.status)),
                    last_update: now,
                    server_version: platform.server_version.clone(),
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// The user with this name, whose credentials a login is checked against.
pub fn credentials<'a>(p: &'a Published, name: &str) -> Option<&'a User> {
    p.state.users.get(&p.user_id(name)?).map(|u| u.as_ref())
}

/// Where a service's log can be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSource {
    pub service_id: u64,
    /// The container name.
    pub container: String,
    /// Whether the container may still exist (otherwise only the kept tail is left).
    pub live: bool,
}

/// `GET /service/<id>/logs`: where to read the log of a service the caller may see.
pub fn log_source(p: &Published, caller: &Caller, id: u64) -> Result<LogSource, ZoeError> {
    check_caller(&p.state, caller)?;
    let (e, i) = visible_service(p, caller, id)?;
    let s = &e.services[i];
    Ok(LogSource { service_id: s.id, container: s.name.clone(), live: !e.status.is_final() && s.docker_id.is_some() })
}

/// Where the proxy forwards a request for port `port` of instance `instance` of execution
/// `execution_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyTarget {
    /// The owner's user id (connections are counted per owner).
    pub owner_id: u64,
    /// The service's id.
    pub service_id: u64,
    /// `host:port` to connect to: the container's address on one engine, the service's host
    /// name on a Swarm (where it is reached through the relay of `network`).
    pub address: String,
    /// The owner's network.
    pub network: String,
    /// A header to add to every forwarded request (name, value): the port's `secret_header`
    /// with the execution's secret.
    pub secret_header: Option<(String, String)>,
}

/// The target of a proxied request, if the caller may see the execution (else
/// `no_such_execution`, as for the execution itself), the instance has that exposed port
/// (`no_such_service`) and it runs (`Unavailable`, with what to wait for). The address is the
/// container's on the user's network (one engine), or its host name there (a Swarm, whose
/// overlay networks the master reaches through their relays).
pub fn proxy_target(
    p: &Published,
    caller: &Caller,
    execution_id: u64,
    instance: &str,
    port: u16,
) -> Result<ProxyTarget, ZoeError> {
    check_caller(&p.state, caller)?;
    // Only active executions have something to reach; an ended one is looked up only to answer
    // with the right error.
    let e = match p.state.executions.get(&execution_id) {
        Some(e) if caller.can_see(e.owner_id) => e.clone(),
        _ => visible_execution(p, caller, execution_id)?.load(p)?,
    };
    let no_port = || {
        ZoeError::new(
            Code::NoSuchService,
            format!("execution {execution_id} has no instance {instance:?} with an exposed port {port}"),
        )
    };
    let s = e.services.iter().find(|s| instance_name(&e, s) == instance).ok_or_else(no_port)?;
    if !s.ports.iter().any(|sp| sp.port_number == port && sp.expose) {
        return Err(no_port());
    }
    let not_ready = |what: &str| {
        ZoeError::new(
            Code::Unavailable,
            format!("{instance} of execution {execution_id} is {what}; try again when it runs"),
        )
    };
    if e.status != ExecutionStatus::Running || s.status != ServiceStatus::Running {
        let what = if e.status.is_final() { "no longer running" } else { "not running" };
        return Err(not_ready(what));
    }
    // On one engine the container's address; on a Swarm its host name (resolved by the relay).
    let ip = s.ip_address.values().find(|ip| !ip.is_empty()).ok_or_else(|| not_ready("without an address yet"))?;
    let address = if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") };
    let network = naming::user_network_name(&e.owner, &p.state.deployment_name);
    let secret_header = match (&e.proxy_secret, e.description_of(s)) {
        (Some(secret), Some(d)) => {
            d.ports.iter().find(|p| p.port_number == port).and_then(|p| p.secret_header_with(secret))
        }
        _ => None,
    };
    Ok(ProxyTarget { owner_id: e.owner_id, service_id: s.id, address, network, secret_header })
}

/// Figures for `/metrics` and `/readyz`; no names.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    pub executions_by_status: Vec<(ExecutionStatus, usize)>,
    pub queue_length: usize,
    pub memory_reserved: u64,
    pub memory_total: Option<u64>,
    pub cores_reserved: f64,
    pub cores_total: Option<f64>,
    pub docker_reachable: bool,
    pub counters: Counters,
}

/// The figures of `/metrics`.
pub fn metrics(p: &Published, sched: &SchedulerConfig) -> Metrics {
    let by_status: Vec<(ExecutionStatus, usize)> = ExecutionStatus::ALL
        .iter()
        .map(|st| (*st, p.state.executions.values().filter(|e| e.status == *st).count() + p.archive.count(*st)))
        .collect();
    // An execution both in the checkpoint and in the archive (after a crash or a revert) counts
    // once, as the checkpoint's.
    let mut by_status = by_status;
    for e in p.state.executions.values().filter(|e| e.status.is_final()) {
        if let Some(a) = p.archive.get(e.id) {
            if let Some((_, n)) = by_status.iter_mut().find(|(st, _)| *st == a.entry().status) {
                *n = n.saturating_sub(1);
            }
        }
    }
    let used = scheduler::reserved(&p.state, sched.elastic);
    let capacity = sched.capacity(p.platform.nodes());
    Metrics {
        queue_length: by_status.first().map(|(_, n)| *n).unwrap_or(0),
        executions_by_status: by_status,
        memory_reserved: used.memory,
        memory_total: capacity.map(|c| c.memory),
        cores_reserved: used.cores,
        cores_total: capacity.map(|c| c.cores),
        docker_reachable: p.platform.reachable,
        counters: p.counters.clone(),
    }
}

/// Refuses a caller who is not an administrator: `what` says what only one can do (asked before
/// costly work, such as hashing a new user's password).
pub fn admin_only(p: &Published, caller: &Caller, what: &str) -> Result<(), ZoeError> {
    check_caller(&p.state, caller)?;
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ZoeError::new(Code::AdminOnly, format!("only an administrator can {what}")))
    }
}

/// Every user, for an administrator (the web's users page).
pub fn users(p: &Published, caller: &Caller) -> Result<Vec<UserView>, ZoeError> {
    admin_only(p, caller, "see the users")?;
    Ok(p.state.users.values().map(|u| user_view(u)).collect())
}

/// What the platform page shows an administrator: the platform, the scheduler and the queue in
/// its order.
#[derive(Clone, Debug, PartialEq)]
pub struct PlatformOverview {
    pub platform: PlatformStats,
    pub scheduler: SchedulerStats,
    pub queue: Vec<ExecutionView>,
}

/// The platform page, for an administrator.
pub fn platform_overview(
    p: &Published,
    sched: &SchedulerConfig,
    caller: &Caller,
    now: Timestamp,
) -> Result<PlatformOverview, ZoeError> {
    admin_only(p, caller, "see the platform")?;
    let queued = ListFilter { statuses: vec![ExecutionStatus::Scheduled], ..ListFilter::default() };
    let mut queue = list_executions(p, sched, caller, &queued, now)?.items;
    queue.sort_by_key(|e| e.queue_position);
    Ok(PlatformOverview {
        platform: stats_platform(p, sched, caller, now),
        scheduler: stats_scheduler(p, sched, caller, now),
        queue,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::reader::Platform;
    use crate::logic::transitions::{begin_start, create_user, submit_execution};
    use crate::testing::{at, insta_settings};
    use serde_json::json;
    use std::sync::Arc;
    use zoe_checkpoints::State;

    fn caller(s: &State, name: &str) -> Caller {
        let u = &s.users[&s.user_by_name(name).unwrap().id];
        Caller { id: u.id, name: u.name.clone(), role: u.role }
    }

    /// zoeadmin, alice (a running execution with a port, a queued one) and bob (one queued).
    fn published() -> Published {
        let mut s = crate::testing::admin_state();
        let admin = caller(&s, "zoeadmin");
        for n in ["alice", "bob"] {
            create_user(&mut s, &admin, n, Role::User, "$argon2id$".into(), at(1)).unwrap();
        }
        let app = crate::description::app_description::parse_application(&json!({
            "name": "web", "version": 2, "will_end": false, "requires_binary": false, "priority": 1,
            "services": [{"name": "main", "docker_image": "img", "monitor": true, "total_count": 1, "essential_count": 1,
                          "startup_order": 0, "required_resources": {"memory": 33554432},
                          "ports": [{"name": "ui", "protocol": "http", "port_number": 80, "is_main_endpoint": true, "expose": true}]}]
        }))
        .unwrap();
        let cfg = SchedulerConfig::default();
        let alice = caller(&s, "alice");
        let bob = caller(&s, "bob");
        let run = submit_execution(&mut s, &alice, "run", app.clone(), &cfg, None, at(2)).unwrap();
        begin_start(&mut s, run, at(3)).unwrap();
        crate::logic::outcomes::started(&mut s, run, &[], at(4));
        submit_execution(&mut s, &bob, "theirs", app.clone(), &cfg, None, at(5)).unwrap();
        submit_execution(&mut s, &alice, "mine", app, &cfg, None, at(6)).unwrap();
        let platform = Platform::of(crate::protocol::PlatformInfo {
            name: "host-1".into(),
            server_version: "20.10".into(),
            memory_total: 1 << 34,
            cpus: 8,
            containers: 0,
            containers_running: 0,
            images: 0,
            nodes: vec![crate::protocol::NodeInfo {
                id: "ENGINE1".into(),
                name: "host-1".into(),
                address: "local".into(),
                ready: true,
                status: "ready".into(),
                role: "engine".into(),
                cpus: 8,
                memory: 1 << 34,
                labels: BTreeMap::new(),
                containers: 0,
            }],
        });
        Published::new(Arc::new(s), Arc::default(), platform, Counters::default(), true)
    }

    #[test]
    fn the_views_have_the_0_9_7_shapes_and_read_back() {
        let p = published();
        let cfg = SchedulerConfig::default();
        let (admin, alice) = (caller(&p.state, "zoeadmin"), caller(&p.state, "alice"));
        let executions = list_executions(&p, &cfg, &alice, &ListFilter::default(), at(10)).unwrap().items;
        let service = get_service(&p, &alice, executions[0].services[0]).unwrap();
        let answer = json!({
            "user": get_user(&p, &alice, "alice").unwrap(),
            "executions": executions,
            "service": service,
            "stats_scheduler": query(&p, &cfg, &alice, QueryWhat::StatsScheduler, &Map::new(), at(10)).unwrap(),
            "stats_swarm (a user)": query(&p, &cfg, &alice, QueryWhat::StatsSwarm, &Map::new(), at(10)).unwrap(),
            "stats_swarm (an admin)": query(&p, &cfg, &admin, QueryWhat::StatsSwarm, &Map::new(), at(10)).unwrap(),
        });
        insta_settings().bind(|| insta::assert_json_snapshot!("views", answer));
        // What the API writes is what the client and the pages read.
        let back: Vec<ExecutionView> = serde_json::from_value(answer["executions"].clone()).unwrap();
        assert_eq!(back, executions);
        let back: ServiceView = serde_json::from_value(answer["service"].clone()).unwrap();
        assert_eq!(back, service);
        let back: QueryAnswer = serde_json::from_value(answer["stats_swarm (an admin)"].clone()).unwrap();
        assert!(matches!(back, QueryAnswer::Platform(s) if s.stats.nodes.len() == 1));
    }

    #[test]
    fn callers_see_only_their_own_and_a_gone_caller_nothing() {
        let p = published();
        let cfg = SchedulerConfig::default();
        let (admin, alice, bob) = (caller(&p.state, "zoeadmin"), caller(&p.state, "alice"), caller(&p.state, "bob"));
        let theirs = list_executions(&p, &cfg, &bob, &ListFilter::default(), at(10)).unwrap().items;
        assert_eq!(theirs.len(), 1);
        let id = theirs[0].id;
        assert_eq!(get_execution(&p, &cfg, &alice, id, at(10)).unwrap_err().code, Code::NoSuchExecution);
        assert_eq!(get_execution(&p, &cfg, &admin, id, at(10)).unwrap().queue_position, Some(1));
        assert_eq!(get_user(&p, &alice, "bob").unwrap_err().code, Code::NoSuchUser);
        let filters = json!({"owner": "bob"}).as_object().unwrap().clone();
        let found = query(&p, &cfg, &alice, QueryWhat::Execution, &filters, at(10)).unwrap();
        assert_eq!(found, QueryAnswer::Executions(vec![]), "filters cannot widen what one sees");
        let found = query(&p, &cfg, &admin, QueryWhat::Execution, &filters, at(10)).unwrap();
        assert!(matches!(found, QueryAnswer::Executions(l) if l.len() == 1));
        let gone = Caller { id: 99, name: "carol".into(), role: Role::Admin };
        assert_eq!(
            list_executions(&p, &cfg, &gone, &ListFilter::default(), at(10)).unwrap_err().code,
            Code::Unauthorized
        );
        let creds = credentials(&p, "alice").unwrap();
        assert_eq!((creds.id, creds.name.as_str()), (alice.id, "alice"));
        assert!(credentials(&p, "carol").is_none());
        let m = metrics(&p, &cfg);
        assert_eq!((m.queue_length, m.memory_reserved), (2, 33554432));
    }
}
