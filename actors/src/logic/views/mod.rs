//! The API's typed views: users, executions, services and the two statistics, in the JSON shapes
//! of Zoe 0.9.7 (reference section 1.3) plus a few fields its clients ignore, one file per object.
//! These types are what the API serializes, what its OpenAPI document describes, and what the
//! command-line client and the web pages read; no other type describes these shapes.
//!
//! The functions make them for a caller from a [`Published`] state: pure, no actor, no clock
//! (`now` is given). Each checks that the caller still exists and shows them only what they may
//! see ([`crate::logic::access`]); an object they may not see is reported as missing. Passwords
//! and hashes never appear here.

use std::sync::Arc;

use serde::Serialize;
use zoe_checkpoints::{Execution, Timestamp};

use crate::error::{Code, ZoeError};
use crate::logic::access::{no_such_execution, no_such_service, Caller};
use crate::logic::history::{self, Found};
use crate::logic::reader::Published;
use crate::logic::scheduler::{self, SchedulerConfig};

mod execution;
mod metrics;
mod proxy;
mod query;
mod service;
mod stats;
mod usage;
mod usage_days;
mod user;

pub use execution::*;
pub use metrics::*;
pub use proxy::*;
pub use query::*;
pub use service::*;
pub use stats::*;
pub use usage::*;
pub use usage_days::*;
pub use user::*;

/// Queue positions (from 1) in the scheduler's order at `now`.
fn positions(p: &Published, sched: &SchedulerConfig, now: Timestamp) -> scheduler::Positions {
    scheduler::queue_positions(&p.state, sched, p.platform.nodes(), now)
}

/// The execution with this id, if the caller may see it (wherever it is).
fn visible_execution(p: &Published, caller: &Caller, id: u64) -> Result<Found, ZoeError> {
    history::find(p, id).filter(|f| caller.can_see(f.owner_id())).ok_or_else(|| no_such_execution(id))
}

/// The execution holding the service with this id, and the service's place in it, if the caller
/// may see it.
fn visible_service(p: &Published, caller: &Caller, id: u64) -> Result<(Arc<Execution>, usize), ZoeError> {
    let found =
        history::find_by_service(p, id).filter(|f| caller.can_see(f.owner_id())).ok_or_else(|| no_such_service(id))?;
    let e = found.load(p)?;
    let i = e.services.iter().position(|s| s.id == id).ok_or_else(|| no_such_service(id))?;
    Ok((e, i))
}

/// A view's JSON: a view that cannot be written is an error (`internal`), never an empty body.
fn to_json<T: Serialize>(view: &T) -> Result<Vec<u8>, ZoeError> {
    serde_json::to_vec(view).map_err(unwritable)
}

/// The error of a view that cannot be written as JSON.
fn unwritable(e: serde_json::Error) -> ZoeError {
    ZoeError::new(Code::Internal, format!("cannot write the answer as JSON: {e}"))
}

#[cfg(test)]
mod tests;
