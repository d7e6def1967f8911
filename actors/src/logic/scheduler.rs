//! The scheduler: pure functions that decide which queued executions start, in which order, and
//! which running ones have overstayed their time. Used by the state actor on every change and on
//! a periodic tick, and by the simulator (`zoe simulate`) with a simulated clock.
//!
//! An execution reserves the sum of its services' `required_resources` (memory, and cores when
//! given, times `total_count`) from the moment it starts until its containers are gone, and
//! starts only when that reservation fits in what is free. The head of the queue (in the
//! policy's order) is never overtaken: when it does not fit, nothing else starts, so a large
//! execution cannot starve. Aging moves waiting executions ahead as they wait:
//!
//! - `fifo`: submission order, as in Zoe 0.9.7;
//! - `priority`: the description's `priority` (0 to 1024, higher first), submission order among
//!   equals; waiting `aging` seconds is worth 1024 priority levels;
//! - `size`: the smallest reservation first (its dominant share of the capacity: the larger
//!   of its memory and cores shares), submission order among equals; waiting `aging` seconds is
//!   worth the whole capacity.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::Duration;

use zoe_checkpoints::{Application, Execution, ExecutionStatus, Role, State, Timestamp};

use crate::description::units::show_bytes;
use crate::error::{Code, ZoeError};
use crate::logic::placement::{self, Node};
use crate::logic::resources::{holds_resources, Resources};

/// How the queue is ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    Fifo,
    Priority,
    Size,
}

impl Policy {
    pub const ALL: [Policy; 3] = [Policy::Fifo, Policy::Priority, Policy::Size];

    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "fifo" => Some(Policy::Fifo),
            "priority" => Some(Policy::Priority),
            "size" => Some(Policy::Size),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Fifo => "fifo",
            Policy::Priority => "priority",
            Policy::Size => "size",
        }
    }
}

/// What an application reserves while it runs.
pub fn reservation(app: &Application) -> Resources {
    app.services.iter().fold(Resources::default(), |acc, d| {
        let n = u64::from(d.total_count);
        acc.plus(Resources {
            memory: d.required_resources.memory.saturating_mul(n),
            cores: d.required_resources.cores.unwrap_or(0.0) * f64::from(d.total_count),
        })
    })
}

/// What an elastic execution needs to be admitted: its essential instances.
pub fn essential_reservation(app: &Application) -> Resources {
    sum(&placement::essential_instances(app))
}

fn sum(instances: &[Resources]) -> Resources {
    instances.iter().fold(Resources::default(), |acc, r| acc.plus(*r))
}

/// What an execution holds now: rigid, its whole reservation while it holds resources; elastic,
/// what its instances hold (see [`placement::holds`]).
pub fn held_now(e: &Execution, elastic: bool) -> Resources {
    if !holds_resources(e.status) {
        return Resources::default();
    }
    if elastic {
        placement::held(e, true).into_iter().fold(Resources::default(), |acc, (r, _)| acc.plus(r))
    } else {
        reservation(&e.application)
    }
}

/// What executions hold now.
pub fn reserved(state: &State, elastic: bool) -> Resources {
    state.executions.values().fold(Resources::default(), |acc, e| acc.plus(held_now(e, elastic)))
}

/// What an active execution counts against its owner's quota: what it holds, or, while queued,
/// what it needs to start (all of it rigid, its essential instances elastic).
fn charged(e: &Execution, elastic: bool) -> Resources {
    match e.status {
        ExecutionStatus::Scheduled if elastic => essential_reservation(&e.application),
        ExecutionStatus::Scheduled => reservation(&e.application),
        _ => held_now(e, elastic),
    }
}

/// Per-role limits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Quota {
    /// Active (queued or running) executions at once.
    pub max_active: Option<usize>,
    /// Executions waiting in the queue at once.
    pub max_queued: Option<usize>,
    /// Memory reserved by the user's active executions at once, in bytes.
    pub max_memory: Option<u64>,
    /// Cores reserved by the user's active executions at once.
    pub max_cores: Option<f64>,
    /// How long an execution may run, from `time_started`.
    pub max_runtime: Option<Duration>,
}

/// Scheduler settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerConfig {
    pub policy: Policy,
    /// Waiting this long outranks any fresh execution.
    pub aging: Duration,
    /// Caps on the platform's capacity (the engine's own figures are used up to these).
    pub max_memory: Option<u64>,
    pub max_cores: Option<f64>,
    pub quotas: HashMap<Role, Quota>,
    /// Executions being started at once; the next ones wait until one of these is running.
    /// Keeps a burst of submissions from flooding the back end. Growing a running execution
    /// counts as a start.
    pub max_starting: usize,
    /// Elastic scheduling: an execution is admitted when its essential instances fit, and its
    /// elastic instances start as room allows. Off: every instance is reserved up front (rigid).
    pub elastic: bool,
    /// The cores of a service whose description gives none: its CPU limit, and what it
    /// reserves (written into its description at submission, see [`default_cores`]).
    pub default_cores: f64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            policy: Policy::Fifo,
            aging: Duration::from_secs(600),
            max_memory: None,
            max_cores: None,
            quotas: HashMap::from([(Role::Guest, Quota { max_active: Some(1), ..Quota::default() })]),
            max_starting: usize::MAX,
            elastic: true,
            default_cores: 1.0,
        }
    }
}

/// Gives every service of `app` without `cores` the default, and one with less than Docker's
/// smallest limit (which only an older master accepted) that limit: what a container may use is
/// what it reserves, so that no combination of descriptions gets more CPU than capacity and
/// quotas say. Done at submission (and to active executions of older checkpoints when loaded),
/// so the execution's description shows what it holds.
pub fn default_cores(app: &mut Application, cores: f64) {
    use zoe_checkpoints::model::limits::MIN_CORES;
    for d in app.services.iter_mut() {
        let given = d.required_resources.cores;
        if given.is_none_or(|c| c < MIN_CORES) {
            d.required_resources.cores = Some(given.map_or(cores, |_| MIN_CORES));
        }
    }
}

impl SchedulerConfig {
    /// The capacity: the sum of the nodes' figures capped by configuration. With no figures
    /// (the back end not heard from yet), only the caps; `None` when nothing is known.
    pub fn capacity(&self, nodes: Option<&[Node]>) -> Option<Resources> {
        let cap_mem = |m: u64| self.max_memory.map_or(m, |c| c.min(m));
        let cap_cores = |c: f64| self.max_cores.map_or(c, |x| x.min(c));
        let total = nodes.map(|n| n.iter().fold(Resources::default(), |acc, n| acc.plus(n.capacity)));
        match total {
            Some(e) => Some(Resources { memory: cap_mem(e.memory), cores: cap_cores(e.cores) }),
            None => match (self.max_memory, self.max_cores) {
                (None, None) => None,
                (m, c) => Some(Resources { memory: m.unwrap_or(u64::MAX), cores: c.unwrap_or(f64::MAX) }),
            },
        }
    }

    fn quota(&self, role: Role) -> Quota {
        self.quotas.get(&role).cloned().unwrap_or_default()
    }
}

/// An execution waiting in the queue, as the scheduler sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Waiting {
    pub id: u64,
    pub submitted: Timestamp,
    pub priority: u32,
    /// All of it together.
    pub need: Resources,
    /// Each instance (container), each to be placed on a node.
    pub instances: Vec<Resources>,
    /// Its essential instances, which admit it when it is elastic.
    pub essential: Vec<Resources>,
}

impl Waiting {
    pub fn of(e: &Execution) -> Waiting {
        Waiting {
            id: e.id,
            submitted: e.time_scheduled,
            priority: e.application.priority,
            need: reservation(&e.application),
            instances: placement::instances(&e.application),
            essential: placement::essential_instances(&e.application),
        }
    }

    /// What admits it: all its instances (rigid) or its essential ones (elastic).
    pub fn admitting(&self, elastic: bool) -> &[Resources] {
        if elastic {
            &self.essential
        } else {
            &self.instances
        }
    }
}

/// The queue of a state: every `scheduled` execution.
pub fn waiting(state: &State) -> Vec<Waiting> {
    state.executions.values().filter(|e| e.status == ExecutionStatus::Scheduled).map(|e| Waiting::of(e)).collect()
}

fn waited(w: &Waiting, now: Timestamp, aging: Duration) -> f64 {
    let secs = (now - w.submitted).as_seconds_f64().max(0.0);
    secs / aging.as_secs_f64().max(1e-3)
}

/// Sorts the queue in the policy's order, most urgent first.
pub fn order(queue: &mut [Waiting], policy: Policy, capacity: Option<Resources>, aging: Duration, now: Timestamp) {
    let fifo = |a: &Waiting, b: &Waiting| a.submitted.cmp(&b.submitted).then(a.id.cmp(&b.id));
    match policy {
        Policy::Fifo => queue.sort_by(fifo),
        Policy::Priority => {
            let score = |w: &Waiting| f64::from(w.priority) + 1024.0 * waited(w, now, aging);
            queue.sort_by(|a, b| score(b).partial_cmp(&score(a)).unwrap_or(Ordering::Equal).then_with(|| fifo(a, b)));
        }
        Policy::Size => {
            let cap = capacity.unwrap_or(Resources { memory: 1 << 40, cores: 64.0 });
            let share = |w: &Waiting| {
                let m = w.need.memory as f64 / (cap.memory.max(1) as f64);
                let c = if cap.cores > 0.0 { w.need.cores / cap.cores } else { 0.0 };
                m.max(c)
            };
            let score = |w: &Waiting| share(w) - waited(w, now, aging);
            queue.sort_by(|a, b| score(a).partial_cmp(&score(b)).unwrap_or(Ordering::Equal).then_with(|| fifo(a, b)));
        }
    }
}

/// From a queue in order, the executions that start now: each in turn while what admits it
/// (all its instances, or its essential ones when `elastic`) fits in what is free, in total and,
/// with `nodes` (what is free on each node), instance by instance on the nodes; the first that
/// does not fit stops the round (nothing overtakes it). What they take is taken from `free` and
/// `nodes`.
pub fn pick(ordered: &[Waiting], free: &mut Resources, mut nodes: Option<&mut [Resources]>, elastic: bool) -> Vec<u64> {
    let mut out = Vec::new();
    for w in ordered {
        let wanted = w.admitting(elastic);
        let need = sum(wanted);
        if !need.fits(*free) {
            break;
        }
        if let Some(nodes) = nodes.as_deref_mut() {
            if placement::place(nodes, wanted).is_none() {
                break;
            }
        }
        *free = free.minus(need);
        out.push(w.id);
    }
    out
}

/// Growth: the elastic instances that start now, given, in the policy's order, each execution
/// with the instances it misses. Execution after execution, instance after instance while the
/// instance fits (in total, on a node with `nodes`) and `allow(execution, instance)` agrees (the
/// owner's quota); what they take is taken. Returns how many of each execution's missing
/// instances start (the first ones of its list), for those that start any.
pub fn grow(
    ordered: &[(u64, Vec<Resources>)],
    free: &mut Resources,
    mut nodes: Option<&mut [Resources]>,
    mut allow: impl FnMut(u64, Resources) -> bool,
) -> Vec<(u64, usize)> {
    let mut out = Vec::new();
    for (id, missing) in ordered {
        let mut n = 0;
        for need in missing {
            if !need.fits(*free) || !allow(*id, *need) {
                break;
            }
            if let Some(nodes) = nodes.as_deref_mut() {
                if placement::place(nodes, std::slice::from_ref(need)).is_none() {
                    break;
                }
            }
            *free = free.minus(*need);
            n += 1;
        }
        if n > 0 {
            out.push((*id, n));
        }
    }
    out
}

/// An execution the scheduler starts: which of its elastic instances start with its essential
/// ones, as (service, index); `None` when rigid (every instance).
#[derive(Clone, Debug, PartialEq)]
pub struct Start {
    pub id: u64,
    pub elastic_now: Option<Vec<(String, u32)>>,
}

impl Start {
    /// Whether instance `index` of `service` starts now (else it waits for room).
    pub fn starts_now(&self, app: &Application, service: &str, index: u32) -> bool {
        match &self.elastic_now {
            None => true,
            Some(now) => {
                app.services.iter().any(|d| d.name == service && d.is_essential(index))
                    || now.iter().any(|(s, i)| s == service && *i == index)
            }
        }
    }
}

/// What one round of the scheduler decides.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Round {
    /// Queued executions to start, in order.
    pub start: Vec<Start>,
    /// Running executions to grow, with the service ids of the instances to start.
    pub grow: Vec<(u64, Vec<u64>)>,
}

/// A missing elastic instance: one of a queued execution (service, index), or a record of a
/// running one (service id).
enum Missing {
    New(String, u32),
    Record(u64),
}

/// Whether some instances of an execution are being started (a start or a grow under way).
fn growing(e: &Execution) -> bool {
    e.services.iter().any(|s| s.status == zoe_checkpoints::ServiceStatus::Pending)
}

/// The round of `state`: the queued executions that start (what [`pick`] chooses, but no more
/// than leaves `max_starting` starts at once), then, elastic, when the whole queue could start,
/// the elastic instances that start in the room left ([`grow`]): the new executions' and the
/// running ones' missing instances, in the policy's order. While an execution waits for room,
/// nothing grows into the room it waits for.
pub fn round(state: &State, config: &SchedulerConfig, nodes: Option<&[Node]>, now: Timestamp) -> Round {
    let elastic = config.elastic;
    let capacity = config.capacity(nodes);
    let starting = state
        .executions
        .values()
        .filter(|e| e.status == ExecutionStatus::Starting || e.status == ExecutionStatus::Running && growing(e))
        .count();
    let mut room = config.max_starting.saturating_sub(starting);
    if room == 0 {
        // Nothing may start or grow: no need to look at the queue.
        return Round::default();
    }
    let mut queue = waiting(state);
    order(&mut queue, config.policy, capacity, config.aging, now);
    let mut free = match capacity {
        Some(c) => c.minus(reserved(state, elastic)),
        None => Resources { memory: u64::MAX, cores: f64::MAX },
    };
    let mut per_node = nodes.map(|n| placement::free_per_node(n, state, elastic));
    let mut picked = pick(&queue, &mut free, per_node.as_deref_mut(), elastic);
    let drained = picked.len() == queue.len() && picked.len() <= room;
    picked.truncate(room);
    room -= picked.len();
    let mut out = Round {
        start: picked.iter().map(|id| Start { id: *id, elastic_now: elastic.then(Vec::new) }).collect(),
        grow: Vec::new(),
    };
    if !elastic || !drained {
        return out;
    }
    // Growth candidates: the executions just started, and running ones with no start under way.
    let mut candidates: Vec<Waiting> = Vec::new();
    let mut missing: HashMap<u64, Vec<(Resources, Missing)>> = HashMap::new();
    for id in &picked {
        let e = &state.executions[id];
        let list: Vec<_> = placement::elastic_instances(&e.application)
            .into_iter()
            .map(|(d, i)| (placement::need_of(d), Missing::New(d.name.clone(), i)))
            .collect();
        if !list.is_empty() {
            candidates.push(Waiting::of(e));
            missing.insert(e.id, list);
        }
    }
    for e in state.executions.values().filter(|e| e.status == ExecutionStatus::Running) {
        if room == 0 || growing(e) {
            continue;
        }
        let list: Vec<_> = e
            .services
            .iter()
            .filter_map(|s| {
                let d = e.description_of(s)?;
                placement::wants_start(d, s).then(|| (placement::need_of(d), Missing::Record(s.id)))
            })
            .collect();
        if !list.is_empty() {
            candidates.push(Waiting::of(e));
            missing.insert(e.id, list);
        }
    }
    if candidates.is_empty() {
        return out;
    }
    order(&mut candidates, config.policy, capacity, config.aging, now);
    let ordered: Vec<(u64, Vec<Resources>)> =
        candidates.iter().map(|w| (w.id, missing[&w.id].iter().map(|(r, _)| *r).collect())).collect();
    // Quotas: what each owner's active executions count, and what growing may add.
    let mut charges: HashMap<u64, Resources> = HashMap::new();
    for e in state.executions.values().filter(|e| e.status.is_active()) {
        let c = charges.entry(e.owner_id).or_default();
        *c = c.plus(charged(e, true));
    }
    let allow = |id: u64, need: Resources| {
        let e = &state.executions[&id];
        let role = state.users.get(&e.owner_id).map_or(Role::User, |u| u.role);
        let quota = config.quota(role);
        let c = charges.entry(e.owner_id).or_default();
        let after = c.plus(need);
        let ok = quota.max_memory.is_none_or(|m| after.memory <= m)
            && quota.max_cores.is_none_or(|m| after.cores <= m + 1e-9);
        if ok {
            *c = after;
        }
        ok
    };
    for (id, n) in grow(&ordered, &mut free, per_node.as_deref_mut(), allow) {
        let taken = missing.remove(&id).unwrap_or_default().into_iter().take(n).map(|(_, m)| m);
        if let Some(start) = out.start.iter_mut().find(|s| s.id == id) {
            start.elastic_now =
                Some(taken.filter_map(|m| if let Missing::New(s, i) = m { Some((s, i)) } else { None }).collect());
        } else if room > 0 {
            room -= 1;
            out.grow
                .push((id, taken.filter_map(|m| if let Missing::Record(s) = m { Some(s) } else { None }).collect()));
        }
    }
    out
}

/// The executions of `state` to start now (see [`round`]).
pub fn to_start(state: &State, config: &SchedulerConfig, nodes: Option<&[Node]>, now: Timestamp) -> Vec<u64> {
    round(state, config, nodes, now).start.into_iter().map(|s| s.id).collect()
}

/// Where waiting executions stand in the queue (from 1), by id.
pub type Positions = HashMap<u64, usize>;

/// Queue positions (from 1) in the policy's order.
pub fn queue_positions(state: &State, config: &SchedulerConfig, nodes: Option<&[Node]>, now: Timestamp) -> Positions {
    let mut queue = waiting(state);
    order(&mut queue, config.policy, config.capacity(nodes), config.aging, now);
    queue.iter().enumerate().map(|(i, w)| (w.id, i + 1)).collect()
}

/// Checks a new submission against the capacity (it must fit one day) and the owner's quota.
pub fn admit(
    state: &State,
    config: &SchedulerConfig,
    nodes: Option<&[Node]>,
    owner_id: u64,
    role: Role,
    app: &Application,
) -> Result<(), ZoeError> {
    let need = if config.elastic { essential_reservation(app) } else { reservation(app) };
    let partly = config.elastic && placement::essential_instances(app).len() < placement::instances(app).len();
    let needs = if partly { "the application's essential instances need" } else { "the application needs" };
    if let Some(cap) = config.capacity(nodes) {
        if need.memory > cap.memory {
            return Err(ZoeError::new(
                Code::ExceedsCapacity,
                format!(
                    "{needs} {} of memory, {} more than the whole platform has ({}); it could never start",
                    show_bytes(need.memory),
                    show_bytes(need.memory - cap.memory),
                    show_bytes(cap.memory)
                ),
            ));
        }
        if need.cores > cap.cores + 1e-9 {
            return Err(ZoeError::new(
                Code::ExceedsCapacity,
                format!(
                    "{needs} {} cores, {} more than the whole platform has ({}); it could never start",
                    need.cores,
                    need.cores - cap.cores,
                    cap.cores
                ),
            ));
        }
    }
    fits_on_nodes(nodes, app, config.elastic)?;
    let quota = config.quota(role);
    let mine: Vec<_> = state.executions.values().filter(|e| e.owner_id == owner_id && e.status.is_active()).collect();
    let role_name = role.as_str();
    if let Some(max) = quota.max_active {
        if mine.len() >= max {
            return Err(ZoeError::new(
                Code::QuotaExceeded,
                format!(
                    "Quota exceeded: role {role_name} may have {max} active execution(s) and you have {}",
                    mine.len()
                ),
            ));
        }
    }
    if let Some(max) = quota.max_queued {
        let queued = mine.iter().filter(|e| e.status == ExecutionStatus::Scheduled).count();
        if queued >= max {
            return Err(ZoeError::new(
                Code::QuotaExceeded,
                format!(
                    "Quota exceeded: role {role_name} may have {max} execution(s) waiting in the queue and you have {queued}; \
                     wait until some start"
                ),
            ));
        }
    }
    let used = mine.iter().fold(Resources::default(), |acc, e| acc.plus(charged(e, config.elastic)));
    if let Some(max) = quota.max_memory {
        if used.memory.saturating_add(need.memory) > max {
            return Err(ZoeError::new(
                Code::QuotaExceeded,
                format!(
                    "Quota exceeded: role {role_name} may reserve {} of memory at once; your active executions hold {} and this one needs {}",
                    show_bytes(max),
                    show_bytes(used.memory),
                    show_bytes(need.memory)
                ),
            ));
        }
    }
    if let Some(max) = quota.max_cores {
        if used.cores + need.cores > max + 1e-9 {
            return Err(ZoeError::new(
                Code::QuotaExceeded,
                format!(
                    "Quota exceeded: role {role_name} may reserve {max} cores at once; your active executions hold {} and this one needs {}",
                    used.cores, need.cores
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses an application whose instances (its essential ones when `elastic`, and then each
/// elastic one alone) do not fit on the nodes even with the whole platform empty (with no node
/// known, nothing is refused).
fn fits_on_nodes(nodes: Option<&[Node]>, app: &Application, elastic: bool) -> Result<(), ZoeError> {
    let Some(nodes) = nodes.filter(|n| !n.is_empty()) else { return Ok(()) };
    let wanted = placement::instances(app);
    let empty: Vec<Resources> = nodes.iter().map(|n| n.capacity).collect();
    let fits = |instances: &[Resources]| placement::place(&mut empty.clone(), instances).is_some();
    let ok = if elastic {
        fits(&placement::essential_instances(app)) && wanted.iter().all(|i| fits(std::slice::from_ref(i)))
    } else {
        fits(&wanted)
    };
    if ok {
        return Ok(());
    }
    let largest = nodes
        .iter()
        .map(|n| n.capacity)
        .fold(Resources::default(), |a, c| Resources { memory: a.memory.max(c.memory), cores: a.cores.max(c.cores) });
    let biggest = wanted
        .iter()
        .fold(Resources::default(), |a, c| Resources { memory: a.memory.max(c.memory), cores: a.cores.max(c.cores) });
    Err(ZoeError::new(
        Code::ExceedsCapacity,
        format!(
            "the application's {} containers do not fit on the platform's {} node(s) even when they are empty: \
             the largest container needs {} and {} cores, the largest node has {} and {} cores",
            wanted.len(),
            nodes.len(),
            show_bytes(biggest.memory),
            biggest.cores,
            show_bytes(largest.memory),
            largest.cores
        ),
    ))
}

/// Running executions that have run longer than their owner's role allows, with the reason.
pub fn overdue(state: &State, config: &SchedulerConfig, now: Timestamp) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for e in state.executions.values().filter(|e| e.status == ExecutionStatus::Running) {
        let Some(role) = state.users.get(&e.owner_id).map(|u| u.role) else { continue };
        let (Some(limit), Some(started)) = (config.quota(role).max_runtime, e.time_started) else { continue };
        if (now - started).as_seconds_f64() >= limit.as_secs_f64() {
            out.push((
                e.id,
                format!("terminated after running for the {} s limit of role {}", limit.as_secs(), role.as_str()),
            ));
        }
    }
    out
}

#[cfg(test)]
#[path = "elastic_tests.rs"]
mod elastic_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::outcomes;
    use crate::logic::transitions::{begin_start, create_user, set_status, submit_execution, Caller};
    use crate::protocol::StartedContainer;
    use crate::testing::{at, describe, insta_settings};
    use serde_json::json;
    use std::sync::Arc;
    use zoe_checkpoints::ServiceStatus;

    pub(super) const MIB: u64 = 1 << 20;

    pub(super) fn app(memory_mib: u64, cores: Option<f64>, priority: u32) -> Application {
        let mut res = json!({"memory": memory_mib * MIB});
        if let Some(c) = cores {
            res["cores"] = json!(c);
        }
        crate::description::app_description::parse_application(&json!({
            "name": "a", "version": 2, "will_end": true, "requires_binary": false, "priority": priority,
            "services": [{"name": "main", "docker_image": "img", "monitor": true, "total_count": 1,
                          "essential_count": 1, "startup_order": 0, "ports": [], "required_resources": res}]
        }))
        .unwrap()
    }

    pub(super) struct World {
        pub(super) s: State,
        pub(super) cfg: SchedulerConfig,
        pub(super) nodes: Option<Vec<Node>>,
        pub(super) log: String,
    }

    impl World {
        pub(super) fn new(policy: Policy) -> World {
            let mut s = crate::testing::admin_state();
            let admin = crate::testing::admin();
            for (name, role) in [("alice", Role::User), ("gina", Role::Guest)] {
                create_user(&mut s, &admin, name, role, "$argon2id$".into(), at(0)).unwrap();
            }
            // Memory decides in these scenarios: a service without cores reserves a quarter of
            // one (`quotas_of_each_kind` shows the default cores counting).
            let cfg = SchedulerConfig {
                policy,
                aging: Duration::from_secs(100),
                default_cores: 0.25,
                ..SchedulerConfig::default()
            };
            World {
                s,
                cfg,
                nodes: Some(vec![Node {
                    name: "engine".into(),
                    capacity: Resources { memory: 1024 * MIB, cores: 4.0 },
                }]),
                log: String::new(),
            }
        }

        pub(super) fn caller(&self, name: &str) -> Caller {
            let u = self.s.user_by_name(name).unwrap();
            Caller { id: u.id, name: name.into(), role: u.role }
        }

        pub(super) fn submit(&mut self, who: &str, name: &str, app: Application, t: i64) -> Result<u64, ZoeError> {
            let c = self.caller(who);
            let r = submit_execution(&mut self.s, &c, name, app, &self.cfg, self.nodes.as_deref(), at(t));
            self.log.push_str(&format!(
                "t+{t} submit {name} by {who}: {}\n",
                match &r {
                    Ok(id) => format!("id {id}"),
                    Err(e) => format!("{} {}", e.code.as_str(), e.message),
                }
            ));
            self.step_state(t);
            r
        }

        /// One scheduling round: starts what the scheduler picks (the back end "succeeds").
        pub(super) fn round(&mut self, t: i64) -> Vec<u64> {
            let ids = to_start(&self.s, &self.cfg, self.nodes.as_deref(), at(t));
            for id in &ids {
                begin_start(&mut self.s, *id, at(t)).unwrap();
                outcomes::started(&mut self.s, *id, &[], at(t));
            }
            let names: Vec<&str> = ids.iter().map(|id| self.s.executions[id].name.as_str()).collect();
            self.log.push_str(&format!(
                "t+{t} round: started {names:?}, reserved {:?}\n",
                reserved(&self.s, self.cfg.elastic)
            ));
            self.step_state(t);
            ids
        }

        /// Containers for the services being started, as the back end reports them.
        pub(super) fn pending_containers(&self, id: u64) -> Vec<StartedContainer> {
            crate::testing::containers_of(&self.s.executions[&id], |s| s.status == ServiceStatus::Pending)
        }

        pub(super) fn end(&mut self, id: u64, t: i64) {
            begin_cleanup_done(&mut self.s, id, t);
            self.log.push_str(&format!("t+{t} {} finished\n", self.s.executions[&id].name));
            self.step_state(t);
        }

        /// The state after a step, one line: every execution's status and queue position.
        pub(super) fn step_state(&mut self, t: i64) {
            let pos = queue_positions(&self.s, &self.cfg, self.nodes.as_deref(), at(t));
            let line: Vec<String> = self
                .s
                .executions
                .values()
                .map(|e| match pos.get(&e.id) {
                    Some(p) => format!("{}={}#{p}", e.name, e.status.as_str()),
                    None => format!("{}={}", e.name, e.status.as_str()),
                })
                .collect();
            self.log.push_str(&format!("      state: {}\n", line.join(" ")));
        }

        pub(super) fn snapshot(&self, name: &str) {
            let text = format!("{}---\n{}", self.log, describe(&self.s));
            insta_settings().bind(|| insta::assert_snapshot!(name.to_string(), text));
        }
    }

    fn begin_cleanup_done(s: &mut State, id: u64, t: i64) {
        crate::logic::transitions::begin_cleanup(s, id, ExecutionStatus::Finished, "", at(t)).unwrap();
        outcomes::removed(s, id, None, at(t));
    }

    #[test]
    fn fits_and_does_not_fit_then_starts_when_room_is_made() {
        let mut w = World::new(Policy::Fifo);
        let a = w.submit("alice", "big", app(600, Some(2.0), 1), 0).unwrap();
        w.submit("alice", "second", app(600, None, 1), 1).unwrap();
        assert_eq!(w.round(2), vec![a]);
        assert!(w.round(3).is_empty(), "600 + 600 MiB does not fit in 1024");
        assert_eq!(queue_positions(&w.s, &w.cfg, w.nodes.as_deref(), at(3)).into_values().collect::<Vec<_>>(), vec![1]);
        w.end(a, 10);
        assert_eq!(w.round(10).len(), 1);
        // Never fits: refused at submit, saying by how much.
        let e = w.submit("alice", "huge", app(2048, None, 1), 11).unwrap_err();
        assert_eq!(e.code, Code::ExceedsCapacity);
        assert!(e.message.contains("1 GiB more"), "{e}");
        let e = w.submit("alice", "cpu", app(10, Some(8.0), 1), 12).unwrap_err();
        assert!(e.message.contains("4 more"), "{e}");
        w.snapshot("fits_and_does_not_fit");
    }

    #[test]
    fn on_several_nodes_every_container_must_fit_on_one_node() {
        let mut w = World::new(Policy::Fifo);
        let node = |name: &str| Node { name: name.into(), capacity: Resources { memory: 512 * MIB, cores: 2.0 } };
        w.nodes = Some(vec![node("n1"), node("n2")]);
        // 600 MiB fits in the 1 GiB of the two nodes together, but on neither: refused.
        let e = w.submit("alice", "wide", app(600, None, 1), 0).unwrap_err();
        assert_eq!(e.code, Code::ExceedsCapacity);
        assert!(e.message.contains("the largest node has 512 MiB"), "{e}");
        // Two containers of 400 MiB go one on each node.
        let mut pair = app(400, None, 1);
        pair.services[0].total_count = 2;
        pair.services[0].essential_count = 2;
        let two = w.submit("alice", "pair", pair, 1).unwrap();
        assert_eq!(w.round(1), vec![two]);
        w.end(two, 2);
        // Two of 300 MiB run, one on each node (the back end says where)...
        let a = w.submit("alice", "a", app(300, None, 1), 3).unwrap();
        let b = w.submit("alice", "b", app(300, None, 1), 3).unwrap();
        assert_eq!(w.round(3), vec![a, b]);
        for (id, n) in [(a, "n1"), (b, "n2")] {
            Arc::make_mut(w.s.executions.get_mut(&id).unwrap()).services[0].node = Some(n.into());
        }
        // ...so 400 MiB waits although 424 MiB are free in total: 212 on each node.
        let c = w.submit("alice", "c", app(400, None, 1), 4).unwrap();
        assert!(w.round(4).is_empty());
        assert_eq!(placement::free_per_node(w.nodes.as_deref().unwrap(), &w.s, true)[0].memory, 212 * MIB);
        w.end(a, 5);
        assert_eq!(w.round(5), vec![c], "it starts once a node has room");
        w.snapshot("several_nodes");
    }

    #[test]
    fn a_large_execution_at_the_head_fifo_versus_size() {
        for policy in [Policy::Fifo, Policy::Size] {
            let mut w = World::new(policy);
            let hog = w.submit("alice", "hog", app(700, None, 1), 0).unwrap();
            w.round(0);
            w.submit("alice", "large", app(800, None, 1), 1).unwrap();
            w.submit("alice", "small-1", app(100, None, 1), 2).unwrap();
            w.submit("alice", "small-2", app(100, None, 1), 3).unwrap();
            let started = w.round(4);
            match policy {
                // Strict order: nothing passes the large one.
                Policy::Fifo => assert!(started.is_empty()),
                // Smallest first: both small ones run now; the large one waits for room.
                _ => assert_eq!(started.len(), 2),
            }
            w.end(hog, 20);
            w.round(20);
            w.snapshot(&format!("large_at_head_{}", policy.as_str()));
        }
    }

    #[test]
    fn aging_ends_starvation() {
        // With `size`, a stream of small executions would keep a large one waiting forever;
        // after the aging time it goes first and nothing overtakes it.
        let mut w = World::new(Policy::Size);
        let large = w.submit("alice", "large", app(900, None, 1), 0).unwrap();
        let mut t = 0;
        let mut running = Vec::new();
        let mut large_started = None;
        for i in 0..40 {
            t = i * 10;
            if let Some(id) = running.pop() {
                w.end(id, t);
            }
            w.submit("alice", &format!("small-{i}"), app(200, None, 1), t).unwrap();
            let started = w.round(t);
            if started.contains(&large) {
                large_started = Some(t);
                break;
            }
            running.extend(started);
        }
        let at_t = large_started.expect("the large execution never started");
        // Its share is 900/1024 and a small one's 200/1024: it must wait about 0.68 of the aging
        // time (100 s) to outrank a fresh small execution.
        assert!((60..=100).contains(&at_t), "started at t+{at_t}");
        let _ = t;
        w.snapshot("aging_ends_starvation");
    }

    #[test]
    fn priority_orders_and_ages() {
        let mut w = World::new(Policy::Priority);
        w.nodes = Some(vec![Node { name: "engine".into(), capacity: Resources { memory: 100 * MIB, cores: 1.0 } }]);
        let blocker = w.submit("alice", "blocker", app(100, None, 0), 0).unwrap();
        w.round(0);
        w.submit("alice", "low-old", app(100, None, 10), 1).unwrap();
        w.submit("alice", "high-new", app(100, None, 900), 50).unwrap();
        let pos = queue_positions(&w.s, &w.cfg, w.nodes.as_deref(), at(50));
        let name_at = |p: usize| pos.iter().find(|(_, v)| **v == p).map(|(id, _)| w.s.executions[id].name.clone());
        assert_eq!(name_at(1).as_deref(), Some("high-new"));
        // Later, low-old has waited long enough to outrank a fresh high-priority execution
        // (10 + 1024 * 140/100 > 900), though not high-new, which has been waiting too.
        w.submit("alice", "high-late", app(100, None, 900), 141).unwrap();
        let pos = queue_positions(&w.s, &w.cfg, w.nodes.as_deref(), at(141));
        let mut order: Vec<(usize, String)> = pos.iter().map(|(id, p)| (*p, w.s.executions[id].name.clone())).collect();
        order.sort();
        let order: Vec<String> = order.into_iter().map(|(_, n)| n).collect();
        assert_eq!(order, ["high-new", "low-old", "high-late"]);
        w.end(blocker, 141);
        w.round(141);
        w.snapshot("priority_orders_and_ages");
    }

    #[test]
    fn a_failing_start_does_not_block_the_queue() {
        let mut w = World::new(Policy::Fifo);
        let bad = w.submit("alice", "bad", app(500, None, 1), 0).unwrap();
        let next = w.submit("alice", "next", app(500, None, 1), 1).unwrap();
        let third = w.submit("alice", "third", app(500, None, 1), 2).unwrap();
        let ids = to_start(&w.s, &w.cfg, w.nodes.as_deref(), at(3));
        assert_eq!(ids, vec![bad, next]);
        for id in ids {
            begin_start(&mut w.s, id, at(3)).unwrap();
        }
        outcomes::start_failed(&mut w.s, bad, "image \"x\" is not present on this engine", false, at(4));
        outcomes::started(&mut w.s, next, &[], at(4));
        w.log.push_str("t+4 bad failed to start, next started\n");
        assert_eq!(w.round(5), vec![third], "the failure freed its reservation and the queue moved on");
        w.snapshot("failing_start_does_not_block");
    }

    #[test]
    fn starts_in_flight_are_bounded() {
        let mut w = World::new(Policy::Fifo);
        w.cfg.max_starting = 2;
        let ids: Vec<u64> = (0..5).map(|i| w.submit("alice", &format!("e{i}"), app(10, None, 1), i).unwrap()).collect();
        let first = to_start(&w.s, &w.cfg, w.nodes.as_deref(), at(5));
        assert_eq!(first, ids[..2], "two at once, in queue order");
        for id in &first {
            begin_start(&mut w.s, *id, at(5)).unwrap();
        }
        w.log.push_str("t+5 e0 and e1 starting\n");
        w.step_state(5);
        assert!(to_start(&w.s, &w.cfg, w.nodes.as_deref(), at(6)).is_empty(), "nothing more while two are starting");
        let containers = w.pending_containers(ids[0]);
        outcomes::started(&mut w.s, ids[0], &containers, at(7));
        w.log.push_str("t+7 e0 running\n");
        w.step_state(7);
        assert_eq!(to_start(&w.s, &w.cfg, w.nodes.as_deref(), at(7)), ids[2..3], "one more once one is running");
        w.snapshot("starts_in_flight_are_bounded");
    }

    #[test]
    fn a_start_that_may_work_later_goes_back_to_its_place() {
        let mut w = World::new(Policy::Fifo);
        w.cfg.max_starting = 1;
        let slow = w.submit("alice", "slow", app(10, None, 1), 0).unwrap();
        let next = w.submit("alice", "next", app(10, None, 1), 1).unwrap();
        assert_eq!(to_start(&w.s, &w.cfg, w.nodes.as_deref(), at(2)), vec![slow]);
        begin_start(&mut w.s, slow, at(2)).unwrap();
        let f = outcomes::start_failed(&mut w.s, slow, "Docker did not answer within 30 s", true, at(32));
        assert!(f.changed);
        w.log.push_str("t+32 slow failed to start (Docker too slow): back to the queue\n");
        w.step_state(32);
        let e = &w.s.executions[&slow];
        assert_eq!((e.status, e.time_started, e.services.len()), (ExecutionStatus::Scheduled, None, 0));
        assert_eq!(queue_positions(&w.s, &w.cfg, w.nodes.as_deref(), at(33))[&slow], 1, "it keeps its place");
        assert_eq!(queue_positions(&w.s, &w.cfg, w.nodes.as_deref(), at(33))[&next], 2);
        w.snapshot("transient_failure_requeues");
    }

    #[test]
    fn what_a_service_may_use_is_what_it_reserves() {
        let mut given = app(10, Some(1.5), 1);
        default_cores(&mut given, 0.5);
        assert_eq!(given.services[0].required_resources.cores, Some(1.5), "given cores stay");
        let mut none = app(10, None, 1);
        default_cores(&mut none, 0.5);
        assert_eq!(none.services[0].required_resources.cores, Some(0.5), "the default, written in");
        assert_eq!(reservation(&none).cores, 0.5);
        // A description an older master accepted (any positive number): Docker's smallest limit.
        let mut tiny = app(10, Some(1.0), 1);
        tiny.services[0].required_resources.cores = Some(1e-300);
        default_cores(&mut tiny, 0.5);
        assert_eq!(tiny.services[0].required_resources.cores, Some(0.01));
    }

    #[test]
    fn quotas_of_each_kind() {
        let mut w = World::new(Policy::Fifo);
        w.cfg.quotas.insert(
            Role::User,
            Quota {
                max_active: Some(4),
                max_queued: Some(3),
                max_memory: Some(300 * MIB),
                max_cores: Some(1.5),
                max_runtime: None,
            },
        );
        w.submit("alice", "one", app(100, Some(1.0), 1), 0).unwrap();
        let mem = w.submit("alice", "two", app(250, None, 1), 1).unwrap_err();
        assert!(mem.code == Code::QuotaExceeded && mem.message.contains("memory"), "{mem}");
        let cores = w.submit("alice", "two", app(10, Some(1.0), 1), 2).unwrap_err();
        assert!(cores.code == Code::QuotaExceeded && cores.message.contains("cores"), "{cores}");
        // A service without cores reserves the default ones and counts against the quota too:
        // no number of them adds up to more than the quota.
        w.cfg.default_cores = 1.0;
        let defaulted = w.submit("alice", "two", app(10, None, 1), 2).unwrap_err();
        assert!(defaulted.code == Code::QuotaExceeded && defaulted.message.contains("cores"), "{defaulted}");
        w.cfg.default_cores = 0.1;
        w.submit("alice", "two", app(10, None, 1), 3).unwrap();
        assert_eq!(w.s.executions.values().last().unwrap().application.services[0].required_resources.cores, Some(0.1));
        w.submit("alice", "three", app(10, None, 1), 4).unwrap();
        let queued = w.submit("alice", "four", app(10, None, 1), 5).unwrap_err();
        assert!(queued.code == Code::QuotaExceeded && queued.message.contains("3 execution(s) waiting"), "{queued}");
        w.round(5);
        w.submit("alice", "four", app(10, None, 1), 6).unwrap();
        let active = w.submit("alice", "five", app(10, None, 1), 7).unwrap_err();
        assert!(active.code == Code::QuotaExceeded && active.message.contains("4 active"), "{active}");
        w.submit("gina", "g1", app(10, None, 1), 8).unwrap();
        let guest = w.submit("gina", "g2", app(10, None, 1), 9).unwrap_err();
        assert_eq!(guest.code, Code::QuotaExceeded);
        w.snapshot("quotas_of_each_kind");
    }

    #[test]
    fn the_running_time_limit_counts_from_the_start() {
        let mut w = World::new(Policy::Fifo);
        w.cfg.quotas.insert(
            Role::Guest,
            Quota { max_active: Some(1), max_runtime: Some(Duration::from_secs(60)), ..Quota::default() },
        );
        let id = w.submit("gina", "g1", app(10, None, 1), 0).unwrap();
        // Queued for 100 s: the limit does not count waiting.
        assert!(overdue(&w.s, &w.cfg, at(100)).is_empty());
        w.round(100);
        assert!(overdue(&w.s, &w.cfg, at(159)).is_empty());
        let over = overdue(&w.s, &w.cfg, at(160));
        assert_eq!(over.len(), 1);
        assert_eq!(over[0].0, id);
        assert!(over[0].1.contains("60 s limit of role guest"), "{}", over[0].1);
        let _ = set_status;
    }

    #[test]
    fn the_queue_survives_a_restart_in_order() {
        let mut w = World::new(Policy::Fifo);
        w.nodes = Some(vec![Node { name: "engine".into(), capacity: Resources { memory: 100 * MIB, cores: 1.0 } }]);
        let first = w.submit("alice", "first", app(100, None, 1), 0).unwrap();
        w.submit("alice", "second", app(100, None, 1), 1).unwrap();
        w.submit("alice", "third", app(100, None, 1), 2).unwrap();
        w.round(3);
        let text = zoe_checkpoints::encode(&w.s).unwrap();
        let mut restored = zoe_checkpoints::decode(&text).unwrap();
        assert_eq!(restored, w.s);
        // After a restart the running one is checked, and the others keep their places.
        let pos = queue_positions(&restored, &w.cfg, w.nodes.as_deref(), at(4));
        let mut names: Vec<(usize, String)> =
            pos.iter().map(|(id, p)| (*p, restored.executions[id].name.clone())).collect();
        names.sort();
        assert_eq!(names, vec![(1, "second".to_string()), (2, "third".to_string())]);
        begin_cleanup_done(&mut restored, first, 5);
        let next = to_start(&restored, &w.cfg, w.nodes.as_deref(), at(5));
        assert_eq!(next.len(), 1);
        assert_eq!(restored.executions[&next[0]].name, "second");
    }
}
