//! An execution as the API shows it (its status in 0.9.7's words, its instances), and the one way
//! executions are read: a selection for a caller, written as JSON (cached while an execution does
//! not change) for the API, or as views for the pages.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};
use zoe_checkpoints::{Application, Execution, ExecutionStatus, ServiceStatus, Timestamp, Usage};

use super::{positions, service_view, to_json, visible_execution, ServiceView};
use crate::error::ZoeError;
use crate::logic::access::{check_caller, Caller};
use crate::logic::history::{self, Found, ListFilter, Selection};
use crate::logic::reader::{JsonCache, Published};
use crate::logic::scheduler::{self, SchedulerConfig};

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
    /// What it used and reserved so far (measured every `usage-interval` while it runs; kept
    /// after it ends).
    #[serde(default)]
    pub usage: Usage,
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
        usage: e.usage,
    }
}

/// An execution read for a caller: the API writes it as JSON, the execution page shows its view
/// and every one of its services (the API lists only live ones).
#[derive(Clone, Debug)]
pub struct OneExecution {
    pub execution: Arc<Execution>,
    /// Read from the archive (not cached: each read is a new `Arc`).
    archived: bool,
    /// Where it stands in the queue, while it waits.
    pub queue_position: Option<usize>,
}

impl OneExecution {
    /// Its JSON (see [`execution_json`]).
    pub fn json(&self, cache: &JsonCache) -> Result<Arc<[u8]>, ZoeError> {
        execution_json(cache, &self.execution, self.archived, self.queue_position)
    }

    /// Its view.
    pub fn view(&self) -> ExecutionView {
        execution_view(&self.execution, self.queue_position)
    }

    /// Every one of its services, live or not.
    pub fn services(&self) -> Vec<ServiceView> {
        self.execution.services.iter().map(|s| service_view(&self.execution, s)).collect()
    }
}

/// `GET /execution/<id>`: the execution with this id, if the caller may see it (wherever it is).
pub fn get_execution(
    p: &Published,
    sched: &SchedulerConfig,
    caller: &Caller,
    id: u64,
    now: Timestamp,
) -> Result<OneExecution, ZoeError> {
    check_caller(&p.state, caller)?;
    let found = visible_execution(p, caller, id)?;
    let archived = matches!(found, Found::Archived(_));
    let execution = found.load(p)?;
    // Only a waiting execution has a position: the scheduler's order is not computed for others.
    let queue_position = (execution.status == ExecutionStatus::Scheduled)
        .then(|| positions(p, sched, now).get(&execution.id).copied())
        .flatten();
    Ok(OneExecution { execution, archived, queue_position })
}

/// The JSON of an execution: one of the checkpoint that is not waiting (no queue position, which
/// changes with time) comes from the cache while it does not change.
fn execution_json(
    cache: &JsonCache,
    e: &Arc<Execution>,
    archived: bool,
    queue_position: Option<usize>,
) -> Result<Arc<[u8]>, ZoeError> {
    let make = || to_json(&execution_view(e, queue_position));
    if archived || queue_position.is_some() {
        make().map(Into::into)
    } else {
        cache.get_or_make(e, make)
    }
}

/// Executions read for a caller from one publication: what was selected, and the queue
/// positions of the moment. The API writes them as JSON piece by piece ([`Executions::render`]);
/// the pages take their views.
#[derive(Debug)]
pub struct Executions {
    pub selection: Selection,
    positions: scheduler::Positions,
}

impl Executions {
    /// The JSON of `items[range]`, comma-separated (no brackets), for a caller that writes the
    /// list piece by piece.
    pub fn render(&self, p: &Published, cache: &JsonCache, range: std::ops::Range<usize>) -> Result<Vec<u8>, ZoeError> {
        let mut out = Vec::with_capacity(range.len() * 1024);
        for (n, f) in self.selection.items[range].iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            let e = f.load(p)?;
            let archived = matches!(f, Found::Archived(_));
            out.extend_from_slice(&execution_json(cache, &e, archived, self.positions.get(&e.id).copied())?);
        }
        Ok(out)
    }

    /// The views of every item, in id order.
    pub fn views(&self, p: &Published) -> Result<Vec<ExecutionView>, ZoeError> {
        self.selection
            .items
            .iter()
            .map(|f| f.load(p).map(|e| execution_view(&e, self.positions.get(&e.id).copied())))
            .collect()
    }
}

/// `GET /execution?...`: the executions the caller may see that match `filter`, in id order
/// (archived ones are read from disk when written).
pub fn list_executions(
    p: &Published,
    sched: &SchedulerConfig,
    caller: &Caller,
    filter: &ListFilter,
    now: Timestamp,
) -> Result<Executions, ZoeError> {
    check_caller(&p.state, caller)?;
    Ok(Executions { selection: history::select(p, caller, filter), positions: positions(p, sched, now) })
}
