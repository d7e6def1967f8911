//! Starting an execution on a Swarm: the owner's overlay network, then one service per
//! container, one startup-order group after the other, each group waited for until its tasks
//! run; and, when a start fails, removing the services it created.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum, EndpointSpec,
    EndpointSpecModeEnum, Limit, Mount, MountTmpfsOptions, MountType, ResourceObject, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, Task, TaskSpec, TaskSpecContainerSpec, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::ListTasksOptions;
use bollard::Docker;
use tracing::{debug, info};

use super::Inner;
use crate::backend::client::CallError;
use crate::backend::shared::{
    dataset_mounts, ensure_network, label_filter, label_u64, Failure, NetworkKind, StartControl,
};
use crate::backend::{LABEL_DEPLOYMENT, LABEL_EXECUTION_ID, LABEL_SERVICE_ID};
use crate::protocol::{ContainerSpec, StartExecution, StartedContainer, Transport, SCRATCH};

/// How often the tasks of a starting group are looked at.
const WAIT_STEP: Duration = Duration::from_millis(50);
/// Services of one startup-order group created at the same time.
const CREATE_CONCURRENCY: usize = 4;

impl Inner {
    pub(super) async fn start_execution(self: Arc<Self>, msg: StartExecution) {
        info!(execution_id = msg.execution_id, containers = msg.containers.len(), "starting execution on the swarm");
        let try_start =
            async |control: &StartControl, created: &mut Vec<String>| self.try_start(&msg, control, created).await;
        let clean_up = async |created: &Vec<String>| {
            if msg.grow {
                self.remove_named_services(created).await
            } else {
                self.remove_execution_services(msg.execution_id, created).await
            }
        };
        self.starts.run(&msg, &self.outbox, Vec::new(), try_start, clean_up).await;
    }

    /// Starts what `msg` asks for, once the back end is reached; what it made is in `created`.
    async fn try_start(
        &self,
        msg: &StartExecution,
        control: &StartControl,
        created: &mut Vec<String>,
    ) -> Result<Vec<StartedContainer>, Failure> {
        let docker = &self.client.ready().await.map_err(|e| Failure::call(e, |e| e.to_string()))?;
        // The network lock is held until the first services are on the network: a removal of
        // the owner's last execution cannot take the network away meanwhile.
        let mut network_guard = Some(self.network_lock.lock().await);
        let user = (msg.network.as_str(), msg.owner.as_str());
        let deployment = &self.config.deployment_name;
        ensure_network(&self.client, docker, deployment, user, NetworkKind::Overlay).await?;
        // The master reaches the services through it; an execution runs without it (the proxy
        // makes it again when it needs it).
        if let Err(e) = self.ensure_relay(docker, &msg.network, false).await {
            tracing::warn!(network = msg.network, error = e, "no relay on the network yet");
        }
        let mut order: Vec<&ContainerSpec> = msg.containers.iter().collect();
        order.sort_by_key(|c| c.startup_order);
        let mut started = Vec::with_capacity(order.len());
        for group in order.chunk_by(|a, b| a.startup_order == b.startup_order) {
            for batch in group.chunks(CREATE_CONCURRENCY) {
                if control.is_cancelled() {
                    return Err(Failure::from(format!(
                        "the start was cancelled before service {} was created: the execution is being removed",
                        batch[0].name
                    )));
                }
                created.extend(batch.iter().map(|s| s.name.clone()));
                let results =
                    futures_util::future::join_all(batch.iter().map(|spec| self.create_service(docker, msg, spec)))
                        .await;
                results.into_iter().collect::<Result<Vec<()>, Failure>>()?;
            }
            network_guard.take();
            started.extend(self.wait_running(docker, msg, group, control).await?);
        }
        Ok(started)
    }

    /// The service of one container, as Swarm takes it.
    fn service_spec(&self, msg: &StartExecution, spec: &ContainerSpec, source: Option<String>) -> ServiceSpec {
        let c = &self.config;
        let labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        let memory = i64::try_from(spec.memory).unwrap_or(i64::MAX);
        let mut mounts: Vec<Mount> = SCRATCH
            .iter()
            .map(|p| Mount {
                target: Some(p.to_string()),
                typ: Some(MountType::TMPFS),
                tmpfs_options: Some(MountTmpfsOptions {
                    size_bytes: Some(memory),
                    mode: Some(0o1777),
                    // Honoured from API 1.46 (Docker 27); older managers mount it noexec.
                    options: Some(vec![vec!["exec".to_string()]]),
                }),
                ..Default::default()
            })
            .collect();
        if let (Some(source), Some(ws)) = (source, &spec.workspace) {
            mounts.push(Mount {
                target: Some(ws.container.clone()),
                source: Some(source),
                typ: Some(MountType::BIND),
                read_only: Some(false),
                ..Default::default()
            });
        }
        mounts.extend(dataset_mounts(&spec.datasets));
        let grace = i64::try_from(c.stop_grace.as_nanos()).unwrap_or(i64::MAX);
        let ports: Vec<EndpointPortConfig> = spec
            .exposed_ports
            .iter()
            .map(|p| EndpointPortConfig {
                protocol: Some(match p.transport {
                    Transport::Tcp => EndpointPortConfigProtocolEnum::TCP,
                    Transport::Udp => EndpointPortConfigProtocolEnum::UDP,
                }),
                target_port: Some(i64::from(p.port)),
                publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                ..Default::default()
            })
            .collect();
        ServiceSpec {
            name: Some(spec.name.clone()),
            labels: Some(labels.clone()),
            task_template: Some(TaskSpec {
                container_spec: Some(Inner::locked_down(TaskSpecContainerSpec {
                    image: Some(spec.image.clone()),
                    labels: Some(labels),
                    args: spec.cmd.clone(),
                    hostname: Some(spec.name.clone()),
                    env: Some(spec.env.clone()),
                    user: Some(format!("{0}:{0}", spec.uid)),
                    mounts: Some(mounts),
                    stop_grace_period: Some(grace),
                    ..Default::default()
                })),
                resources: Some(TaskSpecResources {
                    limits: Some(Limit {
                        nano_cpus: Some(spec.nano_cpus),
                        memory_bytes: Some(memory),
                        pids: Some(c.pids_limit),
                    }),
                    reservations: Some(ResourceObject {
                        nano_cpus: Some(spec.nano_cpus),
                        memory_bytes: Some(memory),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                    max_attempts: Some(0),
                    ..Default::default()
                }),
                ..self.task_on(&msg.network, c.log_max_bytes.to_string(), c.log_max_files.max(1).to_string())
            }),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
                ..Default::default()
            }),
            endpoint_spec: Some(EndpointSpec {
                mode: Some(EndpointSpecModeEnum::DNSRR),
                ports: (!ports.is_empty()).then_some(ports),
            }),
            ..Default::default()
        }
    }

    /// Creates the service of one container; a leftover service of an earlier attempt of this
    /// same execution with this name is removed first.
    async fn create_service(&self, docker: &Docker, msg: &StartExecution, spec: &ContainerSpec) -> Result<(), Failure> {
        let name = &spec.name;
        let source = match spec.workspace.clone() {
            Some(ws) => {
                let bind = tokio::task::spawn_blocking(move || crate::backend::workspace::prepare_folder(&ws))
                    .await
                    .map_err(|e| format!("the workspace task failed: {e}"))??;
                // `host:container:rw`; the container path has no colon.
                bind.strip_suffix(&format!(
                    ":{}:rw",
                    spec.workspace.as_ref().map(|w| w.container.as_str()).unwrap_or_default()
                ))
                .map(str::to_string)
            }
            None => None,
        };
        let body = self.service_spec(msg, spec, source);
        let what = format!("creating service {name}");
        let failed = |e: CallError| Failure::call(e, |e| format!("cannot create service {name}: {e}"));
        match self.client.call_bounded(&what, docker.create_service(body.clone(), None)).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(failed(e)),
        }
        let inspect =
            self.client.call_bounded(&format!("inspecting service {name}"), docker.inspect_service(name, None)).await;
        match inspect {
            Ok(s) => {
                let labels = s.spec.as_ref().and_then(|sp| sp.labels.as_ref());
                let ours = labels.is_some_and(|l| {
                    l.get(LABEL_DEPLOYMENT) == Some(&self.config.deployment_name)
                        && l.get(LABEL_EXECUTION_ID) == Some(&msg.execution_id.to_string())
                });
                if !ours {
                    return Err(Failure::from(format!(
                        "cannot create service {name}: a service with this name already exists and does not \
                         belong to execution {}",
                        msg.execution_id
                    )));
                }
                info!(name, "removing a leftover service of an earlier attempt");
                self.delete_service(docker, name).await.map_err(failed)?;
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(failed(e)),
        }
        self.client.call_bounded(&what, docker.create_service(body, None)).await.map(|_| ()).map_err(failed)
    }

    /// Waits until the task of every service of a group runs (or ran: a container may end at
    /// once); fails when one cannot start, or when one has not started within `pull_timeout`
    /// (no node had room, or its image took too long to come).
    async fn wait_running(
        &self,
        docker: &Docker,
        msg: &StartExecution,
        group: &[&ContainerSpec],
        control: &StartControl,
    ) -> Result<Vec<StartedContainer>, Failure> {
        let deadline = Instant::now() + self.config.pull_timeout;
        let filters = label_filter(&[
            (LABEL_DEPLOYMENT, self.config.deployment_name.clone()),
            (LABEL_EXECUTION_ID, msg.execution_id.to_string()),
        ]);
        loop {
            if control.is_cancelled() {
                return Err(Failure::from("the start was cancelled: the execution is being removed".to_string()));
            }
            let options = ListTasksOptions { filters: Some(filters.clone()) };
            let tasks = self
                .client
                .call_bounded("listing the execution's tasks", docker.list_tasks(Some(options)))
                .await
                .map_err(|e| Failure::call(e, |e| format!("cannot follow the start: {e}")))?;
            let mut done = Vec::new();
            let mut waiting = Vec::new();
            for spec in group {
                let task = newest_task(&tasks, spec.service_id);
                match task.map(|t| task_progress(t, &spec.name)) {
                    Some(Progress::Ran) => done.push((*spec, task)),
                    Some(Progress::Failed(message)) => return Err(Failure::from(message)),
                    Some(Progress::Waiting(why)) => waiting.push(format!("{}: {why}", spec.name)),
                    None => waiting.push(format!("{}: no task yet", spec.name)),
                }
            }
            if waiting.is_empty() {
                let wanted: Vec<&str> = done.iter().filter_map(|(_, t)| t.and_then(|t| t.node_id.as_deref())).collect();
                let nodes = self.node_addresses(docker, &wanted).await;
                return done
                    .into_iter()
                    .map(|(spec, task)| self.started(spec, task, &msg.network, &nodes))
                    .collect::<Result<Vec<_>, String>>()
                    .map_err(Failure::from);
            }
            if Instant::now() >= deadline {
                return Err(Failure {
                    message: format!(
                        "the swarm did not start every container within {} s: {}",
                        self.config.pull_timeout.as_secs(),
                        waiting.join("; ")
                    ),
                    transient: true,
                });
            }
            debug!(execution_id = msg.execution_id, waiting = waiting.join("; "), "waiting for tasks");
            tokio::time::sleep(WAIT_STEP).await;
        }
    }

    /// A started container, from its task.
    fn started(
        &self,
        spec: &ContainerSpec,
        task: Option<&Task>,
        network: &str,
        nodes: &HashMap<String, (String, String)>,
    ) -> Result<StartedContainer, String> {
        let task = task.ok_or_else(|| format!("service {} has no task", spec.name))?;
        let (node, addr) = task.node_id.as_ref().and_then(|n| nodes.get(n)).cloned().unwrap_or_default();
        let published = task.status.as_ref().and_then(|s| s.port_status.as_ref()).and_then(|p| p.ports.as_ref());
        let mut host_endpoints = BTreeMap::new();
        for port in &spec.exposed_ports {
            let found = published.into_iter().flatten().find(|p| {
                p.target_port == Some(i64::from(port.port))
                    && p.protocol.map(|pr| pr.to_string()).as_deref() == Some(port.transport.as_str())
            });
            let Some(host_port) = found.and_then(|p| p.published_port) else {
                return Err(format!("container {}: port {} was not published by the swarm", spec.name, port.key()));
            };
            host_endpoints.insert(port.key(), format!("{addr}:{host_port}"));
        }
        Ok(StartedContainer {
            service_id: spec.service_id,
            docker_id: task.service_id.clone().unwrap_or_default(),
            // Its address on the overlay changes with its task; its name there does not (dnsrr).
            ip_address: BTreeMap::from([(network.to_string(), spec.name.clone())]),
            host_endpoints,
            node: (!node.is_empty()).then_some(node),
        })
    }
}

/// The newest task of the service of Zoe's service `service_id`, among `tasks`.
pub(super) fn newest_task(tasks: &[Task], service_id: u64) -> Option<&Task> {
    tasks
        .iter()
        .filter(|t| {
            let labels = t.spec.as_ref().and_then(|s| s.container_spec.as_ref()).and_then(|c| c.labels.as_ref());
            label_u64(labels, LABEL_SERVICE_ID) == Some(service_id)
        })
        .max_by_key(|t| t.version.as_ref().and_then(|v| v.index).unwrap_or(0))
}

/// Where a task stands in a start.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Progress {
    /// Its container runs, or ran and ended (its end is reported as it is followed).
    Ran,
    /// It could not start, for this reason.
    Failed(String),
    /// Not yet: its state (and the swarm's reason, such as no node with room).
    Waiting(String),
}

/// Where a task of the service `name` stands.
pub(super) fn task_progress(task: &Task, name: &str) -> Progress {
    let status = task.status.as_ref();
    let state = status.and_then(|s| s.state);
    let err = status.and_then(|s| s.err.clone()).filter(|e| !e.is_empty());
    let exited = status.and_then(|s| s.container_status.as_ref()).and_then(|c| c.exit_code);
    match state {
        Some(TaskState::RUNNING | TaskState::COMPLETE) => Progress::Ran,
        // "task: non-zero exit (3)": it ran.
        Some(TaskState::FAILED) if err.as_deref().is_some_and(|e| e.starts_with("task: non-zero exit")) => {
            Progress::Ran
        }
        Some(
            TaskState::FAILED | TaskState::REJECTED | TaskState::SHUTDOWN | TaskState::ORPHANED | TaskState::REMOVE,
        ) => {
            let why =
                err.or_else(|| status.and_then(|s| s.message.clone())).unwrap_or_else(|| "no reason given".into());
            Progress::Failed(format!(
                "container {name} could not start: {}{}",
                crate::backend::client::plain_docker_message(&why),
                exited.filter(|c| *c != 0).map(|c| format!(" (exit code {c})")).unwrap_or_default()
            ))
        }
        Some(s) => Progress::Waiting(match err {
            Some(e) => format!("{s}: {e}"),
            None => s.to_string(),
        }),
        None => Progress::Waiting("no state yet".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerStatus, TaskStatus};

    fn task(state: TaskState, err: Option<&str>, exit: Option<i64>) -> Task {
        Task {
            status: Some(TaskStatus {
                state: Some(state),
                err: err.map(str::to_string),
                container_status: Some(ContainerStatus { exit_code: exit, ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_task_ran_failed_or_waits() {
        assert_eq!(task_progress(&task(TaskState::RUNNING, None, None), "x"), Progress::Ran);
        assert_eq!(task_progress(&task(TaskState::COMPLETE, None, Some(0)), "x"), Progress::Ran);
        assert_eq!(
            task_progress(&task(TaskState::FAILED, Some("task: non-zero exit (3)"), Some(3)), "x"),
            Progress::Ran
        );
        let failed = task_progress(&task(TaskState::REJECTED, Some("No such image: nope:1"), None), "web-1");
        assert_eq!(failed, Progress::Failed("container web-1 could not start: No such image: nope:1".into()));
        let oci = "starting container failed: OCI runtime create failed: runc create failed: unable to start \
                   container process: exec: \"nosuch\": executable file not found in $PATH: unknown";
        match task_progress(&task(TaskState::FAILED, Some(oci), Some(127)), "w") {
            Progress::Failed(m) => assert!(m.contains("executable \"nosuch\" was not found"), "{m}"),
            p => panic!("{p:?}"),
        }
        let pending = task(TaskState::PENDING, Some("no suitable node (insufficient resources on 3 nodes)"), None);
        assert_eq!(
            task_progress(&pending, "x"),
            Progress::Waiting("pending: no suitable node (insufficient resources on 3 nodes)".into())
        );
    }
}
