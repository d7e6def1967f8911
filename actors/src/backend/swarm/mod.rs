//! The Swarm back end: executions across a Docker Swarm mode cluster, through one of its
//! managers, speaking the same protocol as the single engine ([`crate::protocol`]).
//!
//! Each container of an execution is one Swarm service with one replica, named and labelled as
//! the container would be on one engine (the labels on the service and on its container), never
//! restarted by Swarm (Zoe decides), with memory and cores as both reservation and limit, the
//! isolation settings of a container on one engine (the owner's uid, no capabilities, an init,
//! pids and log limits) and the placement constraints of the configuration. The owner's network
//! is an attachable overlay network, whose services find each other by host name (`dnsrr`
//! endpoints: a name resolves to its task's address). Exposed ports are published in host mode
//! on the node that runs the task, and recorded with that node's address. Workspaces are bind
//! mounts of the same path on every node: shared storage.
//!
//! Swarm does not report a container's end as an event: the tasks of the deployment and the
//! nodes are polled (every second, and at once on a service or node event), bounded like every
//! other call. A task that ended gives `ContainerExited`; one on a node that went down gives
//! `ContainerLost`, after its service is removed (so that nothing Swarm re-places survives behind
//! Zoe's back). Inventories list the services, and the platform is the list of nodes.
//!
//! Files: `start` (network, services, waiting for their tasks), `remove`, `follow` (polling,
//! events, inventories, the platform), `constraints` (Swarm's placement constraints, evaluated
//! on nodes).

mod constraints;
mod follow;
mod relay;
mod remove;
mod start;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Recipient, WrapFuture};
use bollard::models::{
    NetworkAttachmentConfig, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecPrivileges, TaskSpecLogDriver,
    TaskSpecPlacement,
};

use super::client::Client;
use super::config::{validate_config, DockerConfig};
use super::logs::{self, KeptLogs};
use super::shared::{Outbox, Reconciler, Reconciles, Starts};
use super::LABEL_DEPLOYMENT;
use crate::protocol::{BackendEvent, FindRelay, LogStream, SampleContainers, ServiceLogs, Stats};
pub use constraints::Constraint;

/// How often the tasks and nodes are polled.
const POLL: Duration = Duration::from_secs(1);

/// The actor. See the module documentation.
pub struct SwarmActor {
    inner: Arc<Inner>,
}

impl SwarmActor {
    /// Checks the configuration (endpoint, TLS, placement constraints); does not contact the
    /// manager (that happens when the actor starts).
    pub fn new(config: DockerConfig, events: Recipient<BackendEvent>) -> Result<Self, String> {
        validate_config(&config)?;
        let constraints = config.constraints.iter().map(|c| Constraint::parse(c)).collect::<Result<Vec<_>, _>>()?;
        let client = Client::new(&config, events.clone());
        Ok(SwarmActor {
            inner: Arc::new(Inner {
                outbox: Outbox::new(events),
                client,
                constraints,
                reconciler: Reconciler::default(),
                starts: Starts::default(),
                network_lock: tokio::sync::Mutex::new(()),
                seen: Mutex::new(Seen::default()),
                relays: Mutex::new(HashMap::new()),
                relays_made: Mutex::new(HashSet::new()),
                poke: tokio::sync::Notify::new(),
                logs: Arc::new(KeptLogs::new(config.log_dir.clone(), config.log_tail_bytes, config.log_keep_bytes)),
                config,
            }),
        })
    }
}

impl Actor for SwarmActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.spawn(follow::poll_forever(self.inner.clone()).into_actor(self));
        ctx.spawn(follow::watch_events(self.inner.clone()).into_actor(self));
        self.inner.request_reconcile();
        ctx.run_interval(self.inner.config.reconcile_interval, |act, _ctx| {
            act.inner.request_reconcile();
        });
    }
}

command_handlers!(SwarmActor, remove_containers: remove_services);

impl Handler<FindRelay> for SwarmActor {
    type Result = actix::ResponseFuture<Result<String, String>>;

    fn handle(&mut self, msg: FindRelay, _ctx: &mut Self::Context) -> Self::Result {
        let inner = self.inner.clone();
        Box::pin(async move { inner.find_relay(&msg.network, msg.fresh).await })
    }
}

impl Handler<SampleContainers> for SwarmActor {
    type Result = Vec<Option<Stats>>;

    /// Not known: a Swarm manager does not report the CPU and memory use of containers (the
    /// engine's stats are per node, and Zoe reaches only the manager). Usage accounting then
    /// counts only what was reserved, and idle culling never culls, since a busy computation
    /// must not be taken for an idle one (see the README).
    fn handle(&mut self, msg: SampleContainers, _ctx: &mut Self::Context) -> Self::Result {
        vec![None; msg.containers.len()]
    }
}

/// What the poller has seen: the nodes, and which task ends and lost services were reported.
#[derive(Default)]
struct Seen {
    /// Nodes by id.
    nodes: HashMap<String, NodeSeen>,
    /// Tasks whose end was reported.
    exited: HashSet<String>,
    /// Services reported lost with their node.
    lost: HashSet<String>,
}

/// A node as last listed.
#[derive(Clone, Debug, Default)]
struct NodeSeen {
    hostname: String,
    addr: String,
    /// Down, disconnected or unknown: what runs there is lost.
    down: bool,
}

/// Shared by the actor and all its tasks.
struct Inner {
    config: DockerConfig,
    /// Where its events go.
    outbox: Outbox,
    /// The connection to the manager: its API version, the bound on calls, its reachability.
    client: Client,
    constraints: Vec<Constraint>,
    reconciler: Reconciler,
    /// Starts under way, by execution id.
    starts: Starts,
    /// The log tails kept of removed containers.
    logs: Arc<KeptLogs>,
    /// Held while a network is made sure of (and the first services put on it), and while one
    /// is removed because nothing uses it: a start never loses its network to a removal.
    network_lock: tokio::sync::Mutex<()>,
    seen: Mutex<Seen>,
    /// Where each network's relay was last found answering.
    relays: Mutex<HashMap<String, String>>,
    /// The networks whose relay this back end made or found.
    relays_made: Mutex<HashSet<String>>,
    /// Wakes the poller before its next round.
    poke: tokio::sync::Notify,
}

impl Inner {
    /// What every task Zoe makes shares (an execution's service, a relay): on `network`,
    /// placed by the configured constraints, logging to json files of `max_size` bytes, at most
    /// `max_files` of them.
    fn task_on(&self, network: &str, max_size: String, max_files: String) -> TaskSpec {
        TaskSpec {
            placement: Some(TaskSpecPlacement {
                constraints: Some(self.constraints.iter().map(|c| c.text.clone()).collect()),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig { target: Some(network.to_string()), ..Default::default() }]),
            log_driver: Some(TaskSpecLogDriver {
                name: Some("json-file".to_string()),
                options: Some(HashMap::from([("max-size".to_string(), max_size), ("max-file".to_string(), max_files)])),
            }),
            ..Default::default()
        }
    }

    /// `spec` locked down as every container Zoe runs on a Swarm is (an execution's service, a
    /// relay): a read-only root, an init, no capabilities, no new privileges. The last is
    /// honoured by managers of API 1.46 (Docker 27) and later; older ones ignore the field (see
    /// "Several hosts" in the README).
    fn locked_down(spec: TaskSpecContainerSpec) -> TaskSpecContainerSpec {
        TaskSpecContainerSpec {
            read_only: Some(true),
            init: Some(true),
            capability_drop: Some(vec!["ALL".to_string()]),
            privileges: Some(TaskSpecContainerSpecPrivileges { no_new_privileges: Some(true), ..Default::default() }),
            ..spec
        }
    }

    fn deployment_filter(&self) -> HashMap<String, Vec<String>> {
        super::shared::label_filter(&[(LABEL_DEPLOYMENT, self.config.deployment_name.clone())])
    }

    /// A service's log (its task's container, on whatever node it runs), live or from the start.
    async fn service_logs(&self, msg: ServiceLogs) -> Result<LogStream, String> {
        let docker = self.client.ready().await.map_err(|e| e.to_string())?;
        let limit = self.config.call_timeout;
        let service = msg.container.clone();
        let inspect = self
            .client
            .call_bounded(&format!("inspecting service {service}"), docker.inspect_service(&service, None))
            .await;
        logs::read_service_log(msg, inspect, move |name, options| docker.service_logs(&name, Some(options)), limit)
    }
}
