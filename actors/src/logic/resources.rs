//! Resources (memory and cores) and the rule of which executions hold them: the ground the
//! scheduler and the placement both stand on. Pure functions.

use zoe_checkpoints::ExecutionStatus;

/// Memory (bytes) and cores.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Resources {
    pub memory: u64,
    pub cores: f64,
}

impl Resources {
    /// Both together.
    pub fn plus(self, o: Resources) -> Resources {
        Resources { memory: self.memory.saturating_add(o.memory), cores: self.cores + o.cores }
    }

    /// What is left when `o` is taken (never below zero).
    pub fn minus(self, o: Resources) -> Resources {
        Resources { memory: self.memory.saturating_sub(o.memory), cores: (self.cores - o.cores).max(0.0) }
    }

    /// Whether `self` fits in `free`.
    pub fn fits(self, free: Resources) -> bool {
        self.memory <= free.memory && self.cores <= free.cores + 1e-9
    }
}

/// All of them together.
pub fn sum(instances: &[Resources]) -> Resources {
    instances.iter().fold(Resources::default(), |acc, r| acc.plus(*r))
}

/// Whether an execution in this status holds (or is getting, or releasing) its containers.
pub fn holds_resources(status: ExecutionStatus) -> bool {
    matches!(status, ExecutionStatus::Starting | ExecutionStatus::Running | ExecutionStatus::CleaningUp)
}
