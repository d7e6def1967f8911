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
use crate::logic::placement::{self, essential_reservation, reservation, reserved, Node};
use crate::logic::quota::{self, charged, Quota};
use crate::logic::resources::{sum, Resources};

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
        let c = charges.entry(e.owner_id).or_default();
        let after = c.plus(need);
        let ok = config.quota(role).over(after).is_none();
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
    quota::admit(state, &config.quota(role), owner_id, role, need, config.elastic)
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
#[path = "scheduler_tests.rs"]
mod tests;
