//! Following a Swarm: the tasks and nodes polled every second (and at once on a service or node
//! event), which gives the ends of containers and the containers lost with their node;
//! inventories of the deployment's services; and the platform: the nodes, their capacity and
//! whether Zoe may place containers there.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{Node, NodeSpecAvailabilityEnum, NodeState, Task, TaskState};
use bollard::query_parameters::{EventsOptions, ListNodesOptions, ListTasksOptions};
use bollard::Docker;
use futures_util::StreamExt;
use tracing::{debug, info, warn};

use super::constraints::{all_match, NodeFacts};
use super::{Inner, NodeSeen, POLL};
use crate::backend::client::lock;
use crate::backend::shared::{consistent_inventory, label_u64, Reconciler, Reconciles};
use crate::backend::{LABEL_EXECUTION_ID, LABEL_SERVICE_ID};
use crate::backoff::Backoff;
use crate::protocol::{BackendEvent, ContainerInfo, NodeInfo, PlatformInfo};

/// Reconnections wait 0.5 s, doubling up to 10 s.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));

/// The Zoe execution and service of a task, from its container's labels.
fn task_ids(t: &Task) -> (Option<u64>, Option<u64>) {
    let labels = t.spec.as_ref().and_then(|s| s.container_spec.as_ref()).and_then(|c| c.labels.as_ref());
    (label_u64(labels, LABEL_EXECUTION_ID), label_u64(labels, LABEL_SERVICE_ID))
}

fn is_over(state: Option<TaskState>) -> bool {
    matches!(
        state,
        Some(
            TaskState::COMPLETE
                | TaskState::FAILED
                | TaskState::SHUTDOWN
                | TaskState::REJECTED
                | TaskState::ORPHANED
                | TaskState::REMOVE
        )
    )
}

/// What a node is known by, for placement constraints.
fn facts(n: &Node) -> NodeFacts {
    let spec = n.spec.as_ref();
    let desc = n.description.as_ref();
    NodeFacts {
        id: n.id.clone().unwrap_or_default(),
        hostname: desc.and_then(|d| d.hostname.clone()).unwrap_or_default(),
        role: spec.and_then(|s| s.role).map(|r| r.to_string()).unwrap_or_default(),
        os: desc.and_then(|d| d.platform.as_ref()).and_then(|p| p.os.clone()).unwrap_or_default(),
        arch: desc.and_then(|d| d.platform.as_ref()).and_then(|p| p.architecture.clone()).unwrap_or_default(),
        labels: spec.and_then(|s| s.labels.clone()).unwrap_or_default().into_iter().collect(),
        engine_labels: desc
            .and_then(|d| d.engine.as_ref())
            .and_then(|e| e.labels.clone())
            .unwrap_or_default()
            .into_iter()
            .collect(),
    }
}

/// A node's address: its own, or its manager address when it reports none.
fn address(n: &Node) -> String {
    let own = n.status.as_ref().and_then(|s| s.addr.clone()).filter(|a| !a.is_empty() && a != "0.0.0.0");
    own.or_else(|| {
        let addr = n.manager_status.as_ref().and_then(|m| m.addr.clone())?;
        Some(addr.rsplit_once(':').map_or(addr.clone(), |(h, _)| h.to_string()))
    })
    .unwrap_or_default()
}

/// Whether what runs on a node is lost: it is down, disconnected or unknown.
fn is_down(n: &Node) -> bool {
    matches!(
        n.status.as_ref().and_then(|s| s.state),
        Some(NodeState::DOWN | NodeState::DISCONNECTED | NodeState::UNKNOWN)
    )
}

/// The node as the platform reports it. `mine`: containers of the deployment running on it.
pub(super) fn node_info(n: &Node, eligible: bool, mine: u64) -> NodeInfo {
    let f = facts(n);
    let state = n.status.as_ref().and_then(|s| s.state);
    let availability = n.spec.as_ref().and_then(|s| s.availability);
    let ready = state == Some(NodeState::READY);
    let active = matches!(availability, Some(NodeSpecAvailabilityEnum::ACTIVE) | None);
    let status = match (ready, active, eligible) {
        (true, true, true) => "ready".to_string(),
        (true, true, false) => "ready, excluded by the placement constraints".to_string(),
        (true, false, _) => availability.map(|a| a.to_string()).unwrap_or_default(),
        (false, _, _) => state.map(|s| s.to_string()).unwrap_or_else(|| "unknown".to_string()),
    };
    let resources = n.description.as_ref().and_then(|d| d.resources.as_ref());
    NodeInfo {
        id: f.id,
        name: f.hostname,
        address: address(n),
        ready: ready && active && eligible,
        status,
        role: f.role,
        cpus: u32::try_from(resources.and_then(|r| r.nano_cpus).unwrap_or(0) / 1_000_000_000).unwrap_or(0),
        memory: u64::try_from(resources.and_then(|r| r.memory_bytes).unwrap_or(0)).unwrap_or(0),
        labels: f.labels,
        containers: mine,
    }
}

/// Polls the tasks and nodes for as long as the actor lives.
pub(super) async fn poll_forever(inner: Arc<Inner>) {
    loop {
        if let Err(e) = inner.poll_once().await {
            debug!(error = e, "poll skipped");
        }
        let poked = inner.poke.notified();
        let _ = tokio::time::timeout(POLL, poked).await;
    }
}

/// Follows the manager's service and node events, to poll at once when something happens
/// (a node going down, a service changing); reconnects with exponential backoff.
pub(super) async fn watch_events(inner: Arc<Inner>) {
    let mut backoff = RECONNECT;
    loop {
        let Ok(docker) = inner.client.ready().await else {
            tokio::time::sleep(backoff.next_pause()).await;
            continue;
        };
        let filters = HashMap::from([("type".to_string(), vec!["service".to_string(), "node".to_string()])]);
        let mut stream = docker.events(Some(EventsOptions { since: None, until: None, filters: Some(filters) }));
        let started = std::time::Instant::now();
        let outages = inner.client.outages();
        loop {
            let outage = inner.client.outage_notified();
            if inner.client.outages() != outages {
                break;
            }
            let item = tokio::select! {
                _ = outage => break,
                item = stream.next() => item,
            };
            match item {
                Some(Ok(event)) => {
                    debug!(kind = ?event.typ, action = event.action, "swarm event");
                    inner.poke.notify_one();
                    if event.typ.map(|t| t.to_string()).as_deref() == Some("node") {
                        inner.request_reconcile();
                    }
                }
                Some(Err(e)) => {
                    debug!(error = %e, "the swarm's event stream failed");
                    break;
                }
                None => break,
            }
        }
        if started.elapsed() > backoff.max() {
            backoff.reset();
        }
        tokio::time::sleep(backoff.next_pause()).await;
    }
}

impl Inner {
    async fn list_nodes(&self, docker: &Docker) -> Result<Vec<Node>, String> {
        let nodes = self
            .client
            .call_bounded("listing the swarm's nodes", docker.list_nodes(None::<ListNodesOptions>))
            .await
            .map_err(|e| e.to_string())?;
        let mut seen = lock(&self.seen);
        seen.nodes = nodes
            .iter()
            .map(|n| {
                let node = NodeSeen { hostname: facts(n).hostname, addr: address(n), down: is_down(n) };
                (n.id.clone().unwrap_or_default(), node)
            })
            .collect();
        Ok(nodes)
    }

    async fn list_tasks(&self, docker: &Docker) -> Result<Vec<Task>, String> {
        let options = ListTasksOptions { filters: Some(self.deployment_filter()) };
        self.client
            .call_bounded("listing the deployment's tasks", docker.list_tasks(Some(options)))
            .await
            .map_err(|e| e.to_string())
    }

    /// The nodes by id: host name and address; listed afresh unless every one of `wanted` is
    /// known already.
    pub(super) async fn node_addresses(&self, docker: &Docker, wanted: &[&str]) -> HashMap<String, (String, String)> {
        let known = {
            let seen = lock(&self.seen);
            wanted.iter().all(|id| seen.nodes.contains_key(*id))
        };
        if !known {
            if let Err(e) = self.list_nodes(docker).await {
                debug!(error = e, "cannot list the nodes; using the last list");
            }
        }
        lock(&self.seen).nodes.iter().map(|(id, n)| (id.clone(), (n.hostname.clone(), n.addr.clone()))).collect()
    }

    /// One round: the nodes, then the tasks. A task that ended gives `ContainerExited` (once);
    /// one that was running on a node now down gives `ContainerLost` (once), after its service
    /// is removed.
    async fn poll_once(&self) -> Result<(), String> {
        let docker = self.client.ready().await.map_err(|e| e.to_string())?;
        self.list_nodes(&docker).await?;
        let tasks = self.list_tasks(&docker).await?;
        let mut exits = Vec::new();
        let mut lost = Vec::new();
        {
            let mut seen = lock(&self.seen);
            let listed: HashSet<String> = tasks.iter().filter_map(|t| t.id.clone()).collect();
            seen.exited.retain(|id| listed.contains(id));
            for t in &tasks {
                let (Some(execution_id), Some(service_id)) = task_ids(t) else { continue };
                let (Some(task_id), Some(service)) = (t.id.clone(), t.service_id.clone()) else { continue };
                let status = t.status.as_ref();
                let state = status.and_then(|s| s.state);
                let node = t.node_id.as_ref().and_then(|n| seen.nodes.get(n)).cloned();
                let was_running = matches!(state, Some(TaskState::RUNNING | TaskState::ORPHANED))
                    || t.desired_state == Some(TaskState::RUNNING) && !is_over(state);
                if let Some(node) = node.filter(|n| n.down && was_running) {
                    if seen.lost.insert(service.clone()) {
                        lost.push((execution_id, service_id, service, node.hostname));
                    }
                    continue;
                }
                if is_over(state) && seen.exited.insert(task_id) {
                    if let Some(code) = status.and_then(|s| s.container_status.as_ref()).and_then(|c| c.exit_code) {
                        exits.push(BackendEvent::ContainerExited {
                            execution_id,
                            service_id,
                            docker_id: service,
                            exit_code: code,
                            oom_killed: false,
                        });
                    }
                }
            }
            if seen.lost.len() > 10_000 {
                seen.lost.clear();
            }
        }
        for e in exits {
            if let BackendEvent::ContainerExited { execution_id, service_id, exit_code, .. } = &e {
                info!(execution_id, service_id, exit_code, "container exited");
            }
            self.outbox.send(e);
        }
        for (execution_id, service_id, service, node) in lost {
            warn!(execution_id, service_id, node, "a container was lost with its node; removing its service");
            if let Err(e) = self.delete_service(&docker, &service).await {
                warn!(service, error = %e, "cannot remove the service of a lost container");
                lock(&self.seen).lost.remove(&service);
                continue;
            }
            self.outbox.send(BackendEvent::ContainerLost { execution_id, service_id, node });
        }
        Ok(())
    }

    /// Takes an inventory of the deployment's services and sends it (not older than an outcome
    /// sent before it: see [`consistent_inventory`]), then the platform.
    async fn take_inventory_and_platform(&self) {
        let take =
            async |docker: &Docker| self.inventory(docker).await.map_err(|e| warn!(error = e, "inventory failed")).ok();
        let Some((docker, (containers, tasks))) = consistent_inventory(&self.client, &self.outbox, take).await else {
            return;
        };
        self.outbox.send(BackendEvent::Inventory { containers });
        match self.platform(&docker, &tasks).await {
            Ok(p) => self.outbox.send(BackendEvent::Platform(p)),
            Err(e) => warn!(error = e, "cannot read the swarm's nodes"),
        }
    }

    /// Every service of the deployment as a container (its newest task's state), and the tasks.
    async fn inventory(&self, docker: &Docker) -> Result<(Vec<ContainerInfo>, Vec<Task>), String> {
        let services = self.list_services(docker, &[]).await.map_err(|e| e.to_string())?;
        let tasks = self.list_tasks(docker).await?;
        let seen = lock(&self.seen);
        let mut out = Vec::with_capacity(services.len());
        for s in services {
            let Some(id) = s.id.clone() else { continue };
            let spec = s.spec.as_ref();
            let labels = spec.and_then(|sp| sp.labels.as_ref());
            let task = tasks
                .iter()
                .filter(|t| t.service_id.as_deref() == Some(id.as_str()))
                .max_by_key(|t| t.version.as_ref().and_then(|v| v.index).unwrap_or(0));
            let status = task.and_then(|t| t.status.as_ref());
            let state = status.and_then(|st| st.state);
            let node = task.and_then(|t| t.node_id.as_ref()).and_then(|n| seen.nodes.get(n));
            out.push(ContainerInfo {
                docker_id: id,
                name: spec.and_then(|sp| sp.name.clone()).unwrap_or_default(),
                execution_id: label_u64(labels, LABEL_EXECUTION_ID),
                service_id: label_u64(labels, LABEL_SERVICE_ID),
                // Not started yet counts as running: the start is under way.
                running: !is_over(state),
                exit_code: if is_over(state) {
                    status.and_then(|st| st.container_status.as_ref()).and_then(|c| c.exit_code)
                } else {
                    None
                },
                oom_killed: false,
                node: node.map(|n| n.hostname.clone()),
            });
        }
        Ok((out, tasks))
    }

    /// The platform: the nodes (ready, active and matching the constraints: Zoe's capacity),
    /// and the manager's figures.
    async fn platform(&self, docker: &Docker, tasks: &[Task]) -> Result<PlatformInfo, String> {
        let nodes = self.list_nodes(docker).await?;
        let info =
            self.client.call_bounded("reading the manager's info", docker.info()).await.map_err(|e| e.to_string())?;
        let mut running: BTreeMap<String, u64> = BTreeMap::new();
        for t in tasks.iter().filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING)) {
            *running.entry(t.node_id.clone().unwrap_or_default()).or_default() += 1;
        }
        let infos: Vec<NodeInfo> = nodes
            .iter()
            .map(|n| {
                let id = n.id.clone().unwrap_or_default();
                node_info(n, all_match(&self.constraints, &facts(n)), running.get(&id).copied().unwrap_or(0))
            })
            .collect();
        let ready = infos.iter().filter(|n| n.ready);
        let (memory, cpus) =
            ready.fold((0u64, 0u32), |(m, c), n| (m.saturating_add(n.memory), c.saturating_add(n.cpus)));
        let count = |v: Option<i64>| u64::try_from(v.unwrap_or(0)).unwrap_or(0);
        Ok(PlatformInfo {
            memory_total: memory,
            cpus,
            containers: tasks.iter().filter(|t| !is_over(t.status.as_ref().and_then(|s| s.state))).count() as u64,
            containers_running: running.values().sum(),
            images: count(info.images),
            server_version: info.server_version.unwrap_or_default(),
            name: info.name.unwrap_or_default(),
            nodes: infos,
        })
    }
}

impl Reconciles for Inner {
    fn reconciler(&self) -> &Reconciler {
        &self.reconciler
    }

    async fn reconcile_once(self: Arc<Self>) {
        self.take_inventory_and_platform().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{NodeDescription, NodeSpec, NodeSpecRoleEnum, NodeStatus, ResourceObject};

    fn node(state: NodeState, availability: NodeSpecAvailabilityEnum, role: NodeSpecRoleEnum) -> Node {
        Node {
            id: Some("n2".into()),
            spec: Some(NodeSpec {
                role: Some(role),
                availability: Some(availability),
                labels: Some(HashMap::from([("zoe".into(), "yes".into())])),
                ..Default::default()
            }),
            description: Some(NodeDescription {
                hostname: Some("zoe-node-2".into()),
                resources: Some(ResourceObject {
                    nano_cpus: Some(2_000_000_000),
                    memory_bytes: Some(1 << 34),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: Some(NodeStatus { state: Some(state), addr: Some("10.77.0.12".into()), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn nodes_are_ready_only_when_up_active_and_allowed() {
        use NodeSpecAvailabilityEnum::{ACTIVE, DRAIN};
        let worker = NodeSpecRoleEnum::WORKER;
        let n = node_info(&node(NodeState::READY, ACTIVE, worker), true, 3);
        assert_eq!(
            (n.ready, n.status.as_str(), n.address.as_str(), n.cpus, n.memory, n.role.as_str(), n.containers),
            (true, "ready", "10.77.0.12", 2, 1 << 34, "worker", 3)
        );
        assert_eq!(n.labels.get("zoe").map(String::as_str), Some("yes"));
        let down = node_info(&node(NodeState::DOWN, ACTIVE, worker), true, 0);
        assert_eq!((down.ready, down.status.as_str()), (false, "down"));
        assert!(is_down(&node(NodeState::DOWN, ACTIVE, worker)));
        let drained = node_info(&node(NodeState::READY, DRAIN, worker), true, 0);
        assert_eq!((drained.ready, drained.status.as_str()), (false, "drain"));
        let excluded = node_info(&node(NodeState::READY, ACTIVE, worker), false, 0);
        assert!(!excluded.ready && excluded.status.contains("placement constraints"));
    }
}
