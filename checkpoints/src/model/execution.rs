//! Executions and their containers, as a checkpoint keeps them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Application, HasId, PortDescription, ServiceDescription, Timestamp, Usage, UsageSeries};

/// One run of an application description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Execution {
    pub id: u64,
    /// A lowercase DNS label, unique among the owner's active executions.
    pub name: String,
    /// The owner's name when the execution was submitted.
    pub owner: String,
    /// The owner's user id. Ids are never reused, so a later user with the same name does not
    /// inherit this execution.
    pub owner_id: u64,
    pub status: ExecutionStatus,
    /// Why the execution failed or ended, in plain words.
    pub error: Option<String>,
    /// While `cleaning up`: the status it takes once its containers are gone (`finished`,
    /// `terminated`, `error`, or `scheduled` to start again after a master restart).
    #[serde(default)]
    pub ending: Option<ExecutionStatus>,
    /// When it was submitted (and queued).
    #[serde(with = "time::serde::rfc3339")]
    pub time_scheduled: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    pub time_started: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub time_finished: Option<Timestamp>,
    /// The validated application description.
    pub application: Application,
    /// One entry per container, created when the execution starts.
    pub services: Vec<Service>,
    /// The secret Zoe made for this execution when its description asks for one (a port with
    /// `secret_header`, or `{proxy_secret}`): given to its containers and added by the proxy to
    /// the requests it forwards to those ports, shown to nobody. Written only when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_secret: Option<String>,
    /// What it used and reserved so far (see [`Usage`]); written once something was measured.
    #[serde(default, skip_serializing_if = "Usage::is_zero")]
    pub usage: Usage,
    /// Its CPU and memory over time, while the checkpoints hold it (not in the archive).
    #[serde(default, skip_serializing_if = "UsageSeries::is_empty")]
    pub usage_series: UsageSeries,
}

impl HasId for Execution {
    fn id(&self) -> u64 {
        self.id
    }
}

impl Execution {
    /// The description of the service a service record is an instance of.
    pub fn description_of(&self, s: &Service) -> Option<&ServiceDescription> {
        self.application.services.iter().find(|d| d.name == s.service_name)
    }

    /// Whether a service record is an essential instance (see
    /// [`ServiceDescription::is_essential`]); one whose description is missing counts as one.
    pub fn is_essential(&self, s: &Service) -> bool {
        self.description_of(s).is_none_or(|d| d.is_essential(s.index))
    }
}

/// The life of an execution. The allowed moves between these are written down in
/// `ExecutionStatus::can_move_to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Waiting in the queue.
    Scheduled,
    /// Its containers are being created.
    Starting,
    /// All its containers were started.
    Running,
    /// Its containers are being stopped and removed.
    CleaningUp,
    /// Ended on its own (the monitor service exited).
    Finished,
    /// Ended by a user or an administrator.
    Terminated,
    /// Failed to start or lost its containers.
    Error,
}

impl ExecutionStatus {
    /// Every status, in life order.
    pub const ALL: [ExecutionStatus; 7] = [
        ExecutionStatus::Scheduled,
        ExecutionStatus::Starting,
        ExecutionStatus::Running,
        ExecutionStatus::CleaningUp,
        ExecutionStatus::Finished,
        ExecutionStatus::Terminated,
        ExecutionStatus::Error,
    ];

    /// The status as written in the API (0.9.7 spelling, `cleaning up` with a space).
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Scheduled => "scheduled",
            ExecutionStatus::Starting => "starting",
            ExecutionStatus::Running => "running",
            ExecutionStatus::CleaningUp => "cleaning up",
            ExecutionStatus::Finished => "finished",
            ExecutionStatus::Terminated => "terminated",
            ExecutionStatus::Error => "error",
        }
    }

    /// Parses an API status string.
    pub fn parse(s: &str) -> Option<ExecutionStatus> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Active executions hold (or are about to hold) resources and block their name.
    pub fn is_active(self) -> bool {
        !self.is_final()
    }

    /// Final statuses are never left.
    pub fn is_final(self) -> bool {
        matches!(self, ExecutionStatus::Finished | ExecutionStatus::Terminated | ExecutionStatus::Error)
    }

    /// The allowed transitions, and only these:
    ///
    /// ```text
    /// scheduled   -> starting | terminated | error
    /// starting    -> running | cleaning up | error
    /// running     -> cleaning up | finished | error
    /// cleaning up -> finished | terminated | error
    ///              | scheduled   (a start interrupted by a master restart, cleaned, retried)
    /// finished, terminated, error: final
    /// ```
    pub fn can_move_to(self, to: ExecutionStatus) -> bool {
        use ExecutionStatus::*;
        matches!(
            (self, to),
            (Scheduled, Starting | Terminated | Error)
                | (Starting, Running | CleaningUp | Error)
                | (Running, CleaningUp | Finished | Error)
                | (CleaningUp, Finished | Terminated | Error | Scheduled)
        )
    }
}

/// One container of an execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub id: u64,
    /// Container name and host name: `<service>[-<index>]-<execution>-<owner>-<deployment>`.
    pub name: String,
    /// The name of the service in the application description.
    pub service_name: String,
    /// Which instance of the service this is, from 0.
    pub index: u32,
    pub is_monitor: bool,
    pub status: ServiceStatus,
    /// The Docker container id, once created.
    pub docker_id: Option<String>,
    /// Exit code, once the container has stopped.
    pub exit_code: Option<i64>,
    /// Whether the kernel killed it for exceeding its memory limit.
    pub oom_killed: bool,
    /// Network name to IP address.
    pub ip_address: BTreeMap<String, String>,
    /// The ports of the description, with their published host endpoints.
    pub ports: Vec<ServicePort>,
    /// The node it runs (or ran) on, on a back end of several nodes.
    #[serde(default)]
    pub node: Option<String>,
    /// An elastic instance's starts after its first that died or failed (see
    /// `ServiceDescription::is_essential`); bounded, so a crashing worker is not started forever.
    /// Written only when not 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// The CPU time its container had used at the last sample, in nanoseconds (the engine's
    /// counter, from the container's start): the next sample counts what was used since, also
    /// across a restart of the master. Written only when not 0.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub cpu_ns: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// The life of one container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    /// Being created (in a start under way).
    Pending,
    /// An elastic instance not started for lack of room; the scheduler starts it when room
    /// frees.
    Waiting,
    /// Created and started.
    Running,
    /// Stopped on its own; see `exit_code` and `oom_killed`.
    Exited,
    /// Removed by Zoe.
    Removed,
    /// Lost with its node (the node went down while it ran).
    Lost,
}

impl ServiceStatus {
    /// The status as written in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Pending => "pending",
            ServiceStatus::Waiting => "waiting",
            ServiceStatus::Running => "running",
            ServiceStatus::Exited => "exited",
            ServiceStatus::Removed => "removed",
            ServiceStatus::Lost => "lost",
        }
    }
}

/// A port of a running service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServicePort {
    pub name: String,
    pub protocol: String,
    pub port_number: u16,
    pub path: String,
    pub is_main_endpoint: bool,
    pub expose: bool,
    /// `host:port` where an exposed port was published, once running (with `publish-ports`).
    pub host_endpoint: Option<String>,
}

impl ServicePort {
    /// The port `p` of a description, on a service not published yet.
    pub fn of(p: &PortDescription) -> ServicePort {
        ServicePort {
            name: p.name.clone(),
            protocol: p.protocol.clone(),
            port_number: p.port_number,
            path: p.path.clone(),
            is_main_endpoint: p.is_main_endpoint,
            expose: p.expose,
            host_endpoint: None,
        }
    }
}
