//! The owners' quotas: the limits of each role, and the one rule over what an owner's active
//! executions may hold together, checked when an execution is submitted (admission) and when an
//! elastic execution grows. Below the scheduler, which uses both. Pure functions.

use std::time::Duration;

use zoe_checkpoints::{Execution, ExecutionStatus, Role, State};

use crate::description::units::show_bytes;
use crate::error::{Code, ZoeError};
use crate::logic::placement::{essential_reservation, held_now, reservation};
use crate::logic::resources::Resources;

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

/// A limit of a quota that what an owner would hold goes over.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Over {
    /// The memory limit, in bytes.
    Memory(u64),
    /// The cores limit.
    Cores(f64),
}

impl Quota {
    /// The rule: what an owner's active executions hold together (`after` a new need is added)
    /// stays within the memory and the cores of the quota; else the first limit it goes over.
    pub fn over(&self, after: Resources) -> Option<Over> {
        if let Some(max) = self.max_memory.filter(|m| after.memory > *m) {
            return Some(Over::Memory(max));
        }
        self.max_cores.filter(|m| after.cores > m + 1e-9).map(Over::Cores)
    }
}

/// What an active execution counts against its owner's quota: what it holds, or, while queued,
/// what it needs to start (all of it rigid, its essential instances elastic).
pub fn charged(e: &Execution, elastic: bool) -> Resources {
    match e.status {
        ExecutionStatus::Scheduled if elastic => essential_reservation(&e.application),
        ExecutionStatus::Scheduled => reservation(&e.application),
        _ => held_now(e, elastic),
    }
}

/// Checks that the owner of a new submission needing `need` stays within `quota` (of `role`):
/// active and queued executions, then memory and cores.
pub fn admit(
    state: &State,
    quota: &Quota,
    owner_id: u64,
    role: Role,
    need: Resources,
    elastic: bool,
) -> Result<(), ZoeError> {
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
    let used = mine.iter().fold(Resources::default(), |acc, e| acc.plus(charged(e, elastic)));
    match quota.over(used.plus(need)) {
        None => Ok(()),
        Some(Over::Memory(max)) => Err(ZoeError::new(
            Code::QuotaExceeded,
            format!(
                "Quota exceeded: role {role_name} may reserve {} of memory at once; your active executions hold {} and this one needs {}",
                show_bytes(max),
                show_bytes(used.memory),
                show_bytes(need.memory)
            ),
        )),
        Some(Over::Cores(max)) => Err(ZoeError::new(
            Code::QuotaExceeded,
            format!(
                "Quota exceeded: role {role_name} may reserve {max} cores at once; your active executions hold {} and this one needs {}",
                used.cores, need.cores
            ),
        )),
    }
}
