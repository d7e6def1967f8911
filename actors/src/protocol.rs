//! The back-end protocol: the commands the state actor sends to a container back end and the
//! outcomes the back end sends back. Both back ends (one Docker Engine, a Docker Swarm) speak
//! it; the pure code (`plan`, `outcomes`) depends on it and on no actor.
//!
//! What the state actor can rely on, from any back end:
//! - a [`StartExecution`] ends with exactly one `ExecutionStarted` or `ExecutionStartFailed`;
//!   after a failure no container of that start is left behind (unless the back end itself could
//!   not be reached to remove it; the error then says so, and the next `Inventory` shows it);
//! - a [`RemoveExecution`] ends with exactly one `ExecutionRemoved`; it cancels a start of the
//!   same execution still under way, and no container of that execution appears after it;
//! - `ContainerExited` is sent for every container of the deployment that stops, including the
//!   ones Zoe stops itself; it may arrive before `ExecutionStarted` when a container exits right
//!   away, and it may arrive twice after a reconnection;
//! - `Inventory` is a snapshot of every container of the deployment, including ones of
//!   executions being started or removed at that moment;
//! - `Unreachable` is sent once per outage, `Reachable` once when the back end answers again,
//!   followed by a fresh `Inventory`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use actix::{Actor, Addr, Context, Handler, Message, Recipient};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zoe_checkpoints::Role;

use crate::description::units::show_bytes;

/// One container to create, fully computed by the caller (names, labels, expanded templates,
/// the owner's uid, limits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub service_id: u64,
    /// Container name and host name.
    pub name: String,
    pub image: String,
    /// `NAME=value`, already template-expanded.
    pub env: Vec<String>,
    /// Already expanded and split; `None` runs the image's default command.
    pub cmd: Option<Vec<String>>,
    /// The `zoe.*` labels.
    pub labels: BTreeMap<String, String>,
    /// The uid (and gid) the container runs as: its owner's, never root.
    pub uid: u32,
    /// Bytes; used for both `Memory` and `MemorySwap` (no swap beyond RAM).
    pub memory: u64,
    /// CPU limit in billionths of a core: the description's cores (a service without gets the
    /// configured default at submission), which is also what the scheduler counts as reserved
    /// (a back end that reserves, such as a Swarm, reserves this).
    pub nano_cpus: i64,
    /// Ports published on `publish_address`, on a random host port.
    pub exposed_ports: Vec<ExposedPort>,
    /// The owner's workspace, created (owned by `uid`, mode 0700) and bind-mounted read-write.
    pub workspace: Option<Workspace>,
    /// Data sets bind-mounted read-only (and not recursively: nothing mounted beneath a data
    /// set's folder on the host is seen).
    pub datasets: Vec<DatasetMount>,
    /// Containers start in ascending `startup_order`.
    pub startup_order: u32,
}

/// A data set of the administrator's mounted read-only in a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetMount {
    /// The folder on the host (on every node of a Swarm).
    pub host: PathBuf,
    /// Where it is seen: `/mnt/datasets/<name>`.
    pub container: String,
}

/// Where a container may write besides its workspace: its root file system is read-only, and
/// these are tmpfs mounts (mode 1777) of at most its memory limit, whose pages count in that
/// limit, so nothing a container writes outside its workspace reaches a disk.
pub const SCRATCH: &[&str] = &["/tmp"];

/// The mount options of a scratch tmpfs of a container with this memory limit: executables may
/// run from it (the JVM loads the native libraries it unpacks in `/tmp`), set-id bits and
/// devices do not work there.
pub fn scratch_options(memory: u64) -> String {
    format!("rw,exec,nosuid,nodev,size={memory},mode=1777")
}

/// A port to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExposedPort {
    pub port: u16,
    pub transport: Transport,
}

impl ExposedPort {
    /// Docker's key of the port, such as `8080/tcp`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.port, self.transport.as_str())
    }
}

/// The transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    /// The transport a description's port protocol runs on: `udp` for `udp`, else TCP (`http`,
    /// `https`, `tcp`, `spark`...).
    pub fn of_protocol(protocol: &str) -> Transport {
        if protocol == "udp" {
            Transport::Udp
        } else {
            Transport::Tcp
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// The workspace quota of each role, in bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Quotas {
    /// The quota of a role without one of its own.
    pub default: u64,
    pub by_role: HashMap<Role, u64>,
}

impl Default for Quotas {
    /// 10 GiB for everyone.
    fn default() -> Self {
        Quotas { default: 10 << 30, by_role: HashMap::new() }
    }
}

impl Quotas {
    /// The quota of a user of this role.
    pub fn of(&self, role: Role) -> u64 {
        self.by_role.get(&role).copied().unwrap_or(self.default)
    }
}

/// A workspace's use of its quota, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceUse {
    /// Bytes in use.
    pub used: u64,
    /// The quota.
    pub quota: u64,
    /// Bytes that can still be written (0 when full or over quota).
    pub available: u64,
}

impl WorkspaceUse {
    /// Whether more is used than the quota allows (a lowered quota, or shared storage that does
    /// not enforce it).
    pub fn over_quota(&self) -> bool {
        self.used > self.quota
    }

    /// In words: `1.2 GiB of 10 GiB used`.
    pub fn describe(&self) -> String {
        format!("{} of {} used", show_bytes(self.used), show_bytes(self.quota))
    }
}

/// A user's workspace directory on the host and where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    pub host: PathBuf,
    pub container: String,
    /// Its owner's uid (and gid).
    pub uid: u32,
    /// Its hard quota in bytes: on one engine, a file system image of this size mounted at
    /// `host` (see the back ends' workspaces); a back end whose workspaces live on shared
    /// storage leaves the quota to the storage.
    pub quota: u64,
}

/// Create and start the containers of an execution. Answered by `ExecutionStarted` or
/// `ExecutionStartFailed`; with `grow`, by `InstancesStarted` or `InstancesStartFailed`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct StartExecution {
    pub execution_id: u64,
    /// The user's network, e.g. `alice-dev`; created on first use.
    pub network: String,
    pub owner: String,
    pub containers: Vec<ContainerSpec>,
    /// More containers (elastic instances) for an execution that runs: a failure removes only
    /// what this start created, and leaves the execution's other containers alone.
    pub grow: bool,
}

/// Stop and remove the containers of an execution, keeping their log tails. Answered by
/// `ExecutionRemoved`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RemoveExecution {
    pub execution_id: u64,
    /// (service id, container name).
    pub containers: Vec<(u64, String)>,
}

/// Remove a user network; a missing one is fine. No answer.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RemoveNetwork {
    pub network: String,
}

/// Stop and remove containers Zoe does not know (orphans). No answer; the next `Inventory`
/// shows the result.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RemoveContainers {
    pub names_or_ids: Vec<String>,
}

/// Take an inventory now: answered by `Inventory` then `Platform`.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Reconcile;

/// Stream a container's log (stdout and stderr merged, in order, raw bytes).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<LogStream, String>")]
pub struct ServiceLogs {
    /// Container name or id.
    pub container: String,
    /// Keep streaming until the container stops.
    pub follow: bool,
    /// Only the last lines.
    pub tail_lines: Option<u64>,
}

/// The CPU time each container has used so far, in nanoseconds (`None`: not known, e.g. a
/// container on another node of a Swarm, whose manager does not tell). For idle culling.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Vec<Option<u64>>")]
pub struct CpuUsage {
    /// Container names or ids.
    pub containers: Vec<String>,
}

/// Where the master reaches the relay of a user's network (`host:port`), on a back end whose
/// services are reached that way (a Swarm: see [`crate::relay`]). `fresh`: look again rather
/// than answer from what was last seen (a connection to it just failed). `Err` while the relay
/// does not run yet (it is then started), or on a back end without relays.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<String, String>")]
pub struct FindRelay {
    pub network: String,
    pub fresh: bool,
}

/// A container log, chunk by chunk; ends when the log ends. An `Err` item is the last one.
pub type LogStream = tokio::sync::mpsc::Receiver<Result<Vec<u8>, String>>;

/// What a back end tells the state actor.
#[derive(Message, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[rtype(result = "()")]
pub enum BackendEvent {
    /// Every container of the execution was created and started.
    ExecutionStarted { execution_id: u64, containers: Vec<StartedContainer> },
    /// The execution could not be started; none of its containers is left. `transient`: the
    /// back end was too slow or could not be reached (the start may work later), as opposed to
    /// a refusal (a missing image, a bad command) that would fail again.
    ExecutionStartFailed { execution_id: u64, error: String, transient: bool },
    /// The containers of a `grow` start were created and started.
    InstancesStarted { execution_id: u64, containers: Vec<StartedContainer> },
    /// The containers of a `grow` start could not be started; none of them is left, and the
    /// execution's other containers were not touched.
    InstancesStartFailed { execution_id: u64, service_ids: Vec<u64>, error: String, transient: bool },
    /// The execution's containers were stopped and removed; `error` tells what could not be.
    ExecutionRemoved { execution_id: u64, error: Option<String> },
    /// A container of the deployment stopped (on its own or because Zoe stopped it).
    ContainerExited { execution_id: u64, service_id: u64, docker_id: String, exit_code: i64, oom_killed: bool },
    /// A container was lost with its node (the node went down); the back end has already made
    /// sure nothing replaces it behind Zoe's back.
    ContainerLost { execution_id: u64, service_id: u64, node: String },
    /// Every container labelled `zoe.deployment_name=<deployment>`.
    Inventory { containers: Vec<ContainerInfo> },
    /// The engine's capacity and counters; after each inventory.
    Platform(PlatformInfo),
    /// The back end could not be reached; sent once per outage.
    Unreachable { error: String },
    /// The back end answers again after an `Unreachable`; an `Inventory` follows.
    Reachable,
}

/// Where the state actor and the HTTP layer send each command of a back end.
#[derive(Clone)]
pub struct BackendHandle {
    pub start: Recipient<StartExecution>,
    pub remove: Recipient<RemoveExecution>,
    pub remove_containers: Recipient<RemoveContainers>,
    pub remove_network: Recipient<RemoveNetwork>,
    pub reconcile: Recipient<Reconcile>,
    pub logs: Recipient<ServiceLogs>,
    pub cpu: Recipient<CpuUsage>,
    pub relay: Recipient<FindRelay>,
}

impl BackendHandle {
    /// The handle of a back-end actor that speaks the whole protocol.
    pub fn of<A>(addr: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>>
            + Handler<StartExecution>
            + Handler<RemoveExecution>
            + Handler<RemoveContainers>
            + Handler<RemoveNetwork>
            + Handler<Reconcile>
            + Handler<ServiceLogs>
            + Handler<CpuUsage>
            + Handler<FindRelay>,
    {
        BackendHandle {
            start: addr.clone().recipient(),
            remove: addr.clone().recipient(),
            remove_containers: addr.clone().recipient(),
            remove_network: addr.clone().recipient(),
            reconcile: addr.clone().recipient(),
            logs: addr.clone().recipient(),
            cpu: addr.clone().recipient(),
            relay: addr.clone().recipient(),
        }
    }
}

/// A started container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedContainer {
    pub service_id: u64,
    pub docker_id: String,
    /// Network name to IP address.
    pub ip_address: BTreeMap<String, String>,
    /// Docker's port key (`8080/tcp`) to the published `host:port`.
    pub host_endpoints: BTreeMap<String, String>,
    /// The node it runs on, on a back end of several nodes.
    pub node: Option<String>,
}

/// One container of the deployment, as seen by an inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub docker_id: String,
    pub name: String,
    /// From the `zoe.execution.id` label.
    pub execution_id: Option<u64>,
    /// From the `zoe.service.id` label.
    pub service_id: Option<u64>,
    /// Running (or paused, or restarting).
    pub running: bool,
    /// Once it has stopped; `None` while running or never started.
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// The node it runs on, on a back end of several nodes.
    pub node: Option<String>,
}

/// The platform: its totals (from `docker info` of the engine or the manager), and its nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformInfo {
    pub memory_total: u64,
    pub cpus: u32,
    pub containers: u64,
    pub containers_running: u64,
    pub images: u64,
    pub server_version: String,
    pub name: String,
    /// Where containers can run: the engine itself, or the Swarm's nodes (every one the
    /// manager lists, ready or not).
    pub nodes: Vec<NodeInfo>,
}

/// One node containers can run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The engine's or the Swarm node's id.
    pub id: String,
    /// Its host name.
    pub name: String,
    /// Its address (`local` for the single engine).
    pub address: String,
    /// Whether it takes containers now (Swarm: status ready and availability active).
    pub ready: bool,
    /// In words: `ready`, `down`, `unknown`, `disconnected`, and `drain` or `pause` when so.
    pub status: String,
    /// `manager` or `worker` on a Swarm; `engine` for the single engine.
    pub role: String,
    pub cpus: u32,
    pub memory: u64,
    /// Node labels (Swarm) or engine labels.
    pub labels: BTreeMap<String, String>,
    /// Containers of this deployment running on it.
    pub containers: u64,
}
