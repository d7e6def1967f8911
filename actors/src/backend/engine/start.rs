//! Starting an execution: its network, its images, then its containers, one startup-order group
//! after the other; and, when a start fails, removing whatever it created.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, HostConfig, HostConfigLogConfig, ImageInspect,
    PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StartContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use tracing::{debug, info};

use super::Inner;
use crate::backend::client::{pull_reason, CallError};
use crate::backend::shared::{dataset_mounts, ensure_network, label_filter, Failure, NetworkKind, StartControl};
use crate::backend::{LABEL_DEPLOYMENT, LABEL_EXECUTION_ID};
use crate::protocol::{scratch_options, ContainerSpec, StartExecution, StartedContainer, SCRATCH};

/// Containers of one startup-order group created and started at the same time.
const START_CONCURRENCY: usize = 4;

/// What a start has done so far, for cleaning up after a failure.
#[derive(Default)]
struct Created {
    /// Names of the containers whose creation was asked for.
    attempted: Vec<String>,
    /// Ids of the containers created.
    ids: Vec<String>,
}

impl Inner {
    pub(super) async fn start_execution(self: Arc<Self>, msg: StartExecution) {
        info!(execution_id = msg.execution_id, containers = msg.containers.len(), "starting execution");
        let try_start =
            async |control: &StartControl, created: &mut Created| self.try_start(&msg, control, created).await;
        let clean_up = async |created: &Created| self.cleanup_failed_start(&msg, created).await;
        self.starts.run(&msg, &self.outbox, Created::default(), try_start, clean_up).await;
    }

    /// Starts what `msg` asks for, once the back end is reached; what it made is in `created`.
    async fn try_start(
        &self,
        msg: &StartExecution,
        control: &StartControl,
        created: &mut Created,
    ) -> Result<Vec<StartedContainer>, Failure> {
        let docker = &self.client.ready().await.map_err(|e| Failure::call(e, |e| e.to_string()))?;
        let user = (msg.network.as_str(), msg.owner.as_str());
        let deployment = &self.config.deployment_name;
        let held = self.network_lock.lock().await;
        ensure_network(&self.client, docker, deployment, user, NetworkKind::Bridge).await?;
        drop(held);
        let mut images: BTreeMap<String, ImageInspect> = BTreeMap::new();
        for spec in &msg.containers {
            if !images.contains_key(&spec.image) {
                let inspect = self.ensure_image(docker, &spec.image).await?;
                images.insert(spec.image.clone(), inspect);
            }
        }
        let mut order: Vec<&ContainerSpec> = msg.containers.iter().collect();
        order.sort_by_key(|c| c.startup_order);
        let mut started = Vec::with_capacity(order.len());
        // Startup-order groups one after the other; within a group, a few containers at once.
        for group in order.chunk_by(|a, b| a.startup_order == b.startup_order) {
            for batch in group.chunks(START_CONCURRENCY) {
                let mut locals: Vec<Created> = batch.iter().map(|_| Created::default()).collect();
                let results =
                    futures_util::future::join_all(locals.iter_mut().zip(batch).map(|(local, spec)| {
                        self.start_one(docker, msg, spec, images.get(&spec.image), control, local)
                    }))
                    .await;
                for local in locals {
                    created.attempted.extend(local.attempted);
                    created.ids.extend(local.ids);
                }
                for r in results {
                    started.push(r?);
                }
            }
        }
        Ok(started)
    }

    async fn ensure_image(&self, docker: &Docker, image: &str) -> Result<ImageInspect, Failure> {
        let what = format!("inspecting image {image}");
        match self.client.call_bounded(&what, docker.inspect_image(image)).await {
            Ok(i) => return Ok(i),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(Failure::call(e, |e| format!("cannot inspect image \"{image}\": {e}"))),
        }
        info!(image, "image missing, pulling it");
        let not_pulled = |reason: String| {
            format!("image \"{image}\" is not present on this engine and could not be pulled: {reason}")
        };
        self.pull(docker, image).await.map_err(|e| Failure::call(e, |e| not_pulled(pull_reason(e))))?;
        self.client
            .call_bounded(&what, docker.inspect_image(image))
            .await
            .map_err(|e| Failure::call(e, |e| not_pulled(pull_reason(e))))
    }

    async fn pull(&self, docker: &Docker, image: &str) -> Result<(), CallError> {
        let last = image.rsplit('/').next().unwrap_or(image);
        let tagged = last.contains(':') || image.contains('@');
        let options = CreateImageOptions {
            from_image: Some(image.to_string()),
            tag: if tagged { None } else { Some("latest".to_string()) },
            ..Default::default()
        };
        let pulling = async {
            let mut stream = docker.create_image(Some(options), None, None);
            while let Some(item) = stream.next().await {
                item?;
            }
            Ok::<(), BollardError>(())
        };
        let limit = self.config.pull_timeout;
        self.client.call(&format!("pulling image {image}"), limit, pulling).await
    }

    async fn start_one(
        &self,
        docker: &Docker,
        msg: &StartExecution,
        spec: &ContainerSpec,
        image: Option<&ImageInspect>,
        control: &StartControl,
        created: &mut Created,
    ) -> Result<StartedContainer, Failure> {
        let name = &spec.name;
        let mut binds = Vec::new();
        if let Some(ws) = spec.workspace.clone() {
            let bind = tokio::task::spawn_blocking(move || crate::backend::workspace::prepare(&ws))
                .await
                .map_err(|e| format!("the workspace task failed: {e}"))??;
            binds.push(bind);
        }
        let body = self.create_body(msg, spec, binds)?;
        if control.is_cancelled() {
            return Err(Failure::from(format!(
                "the start was cancelled before container {name} was created: the execution is being removed"
            )));
        }
        created.attempted.push(spec.name.clone());
        let id = self.create(docker, msg, spec, body).await?;
        created.ids.push(id.clone());
        if let Some(image) = image {
            self.check_command(docker, &id, spec, image).await?;
        }
        self.client
            .call_bounded(
                &format!("starting container {name}"),
                docker.start_container(&id, None::<StartContainerOptions>),
            )
            .await
            .map_err(|e| Failure::call(e, |e| format!("cannot start container {name}: {e}")))?;
        let info = self
            .client
            .call_bounded(
                &format!("inspecting container {name}"),
                docker.inspect_container(&id, None::<InspectContainerOptions>),
            )
            .await
            .map_err(|e| Failure::call(e, |e| format!("cannot inspect container {name}: {e}")))?;
        self.check_exec_failure(docker, &id, name, &info).await?;
        debug!(name, id, "container started");
        Ok(self.started_container(spec, id, &info)?)
    }

    fn create_body(
        &self,
        msg: &StartExecution,
        spec: &ContainerSpec,
        binds: Vec<String>,
    ) -> Result<ContainerCreateBody, String> {
        let memory =
            i64::try_from(spec.memory).map_err(|_| format!("the memory limit of {} is too large", spec.name))?;
        let mut exposed = Vec::new();
        let mut bindings = HashMap::new();
        for port in &spec.exposed_ports {
            let key = port.key();
            exposed.push(key.clone());
            bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: Some(self.config.publish_address.clone()),
                    host_port: Some(String::new()),
                }]),
            );
        }
        let c = &self.config;
        let host_config = HostConfig {
            memory: Some(memory),
            memory_swap: Some(memory),
            readonly_rootfs: Some(true),
            tmpfs: Some(SCRATCH.iter().map(|p| (p.to_string(), scratch_options(spec.memory))).collect()),
            nano_cpus: Some(spec.nano_cpus),
            pids_limit: Some(c.pids_limit),
            network_mode: Some(msg.network.clone()),
            init: Some(true),
            privileged: Some(false),
            cap_drop: Some(vec!["ALL".to_string()]),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            binds: (!binds.is_empty()).then_some(binds),
            mounts: (!spec.datasets.is_empty()).then(|| dataset_mounts(&spec.datasets)),
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".to_string()),
                config: Some(HashMap::from([
                    ("max-size".to_string(), c.log_max_bytes.to_string()),
                    ("max-file".to_string(), c.log_max_files.max(1).to_string()),
                ])),
            }),
            ..Default::default()
        };
        Ok(ContainerCreateBody {
            hostname: Some(spec.name.clone()),
            image: Some(spec.image.clone()),
            user: Some(format!("{0}:{0}", spec.uid)),
            env: Some(spec.env.clone()),
            cmd: spec.cmd.clone(),
            labels: Some(spec.labels.clone().into_iter().collect()),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            host_config: Some(host_config),
            ..Default::default()
        })
    }

    /// Creates the container; a leftover container of an earlier attempt of this same execution
    /// with this name is removed first.
    async fn create(
        &self,
        docker: &Docker,
        msg: &StartExecution,
        spec: &ContainerSpec,
        body: ContainerCreateBody,
    ) -> Result<String, Failure> {
        let name = &spec.name;
        let what = format!("creating container {name}");
        let options = || CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
        let failed = |e: CallError| Failure::call(e, |e| format!("cannot create container {name}: {e}"));
        match self.client.call_bounded(&what, docker.create_container(Some(options()), body.clone())).await {
            Ok(r) => return Ok(r.id),
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(failed(e)),
        }
        match self.belongs_to(docker, name, msg.execution_id).await {
            Ok(Some(old_id)) => {
                info!(name, "removing a leftover container of an earlier attempt");
                self.force_remove(docker, &old_id)
                    .await
                    .map_err(|e| Failure::call(e, |e| format!("cannot remove the leftover container {name}: {e}")))?;
            }
            Ok(None) => {
                return Err(Failure::from(format!(
                    "cannot create container {name}: a container with this name already exists \
                     and does not belong to execution {}",
                    msg.execution_id
                )))
            }
            Err(e) => return Err(failed(e)),
        }
        self.client
            .call_bounded(&what, docker.create_container(Some(options()), body))
            .await
            .map(|r| r.id)
            .map_err(failed)
    }

    /// The id of the container with this name if it carries this deployment's and this
    /// execution's labels.
    async fn belongs_to(&self, docker: &Docker, name: &str, execution_id: u64) -> Result<Option<String>, CallError> {
        let info = match self.inspect_container(docker, name).await {
            Ok(i) => i,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let labels = info.config.as_ref().and_then(|c| c.labels.as_ref());
        let ours = labels.is_some_and(|l| {
            l.get(LABEL_DEPLOYMENT) == Some(&self.config.deployment_name)
                && l.get(LABEL_EXECUTION_ID) == Some(&execution_id.to_string())
        });
        Ok(if ours { info.id } else { None })
    }

    fn started_container(
        &self,
        spec: &ContainerSpec,
        docker_id: String,
        info: &ContainerInspectResponse,
    ) -> Result<StartedContainer, String> {
        let settings = info.network_settings.as_ref();
        let ip_address = settings
            .and_then(|s| s.networks.as_ref())
            .map(|nets| {
                nets.iter()
                    .filter_map(|(net, ep)| {
                        let ip = ep.ip_address.as_deref().unwrap_or_default();
                        (!ip.is_empty()).then(|| (net.clone(), ip.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ports = settings.and_then(|s| s.ports.as_ref());
        let mut host_endpoints = BTreeMap::new();
        for port in &spec.exposed_ports {
            let key = port.key();
            let bindings = ports.and_then(|p| p.get(&key)).and_then(|b| b.as_ref());
            let binding = bindings.and_then(|b| {
                let usable = |pb: &&PortBinding| pb.host_port.as_deref().is_some_and(|p| !p.is_empty());
                b.iter()
                    .filter(usable)
                    .find(|pb| pb.host_ip.as_deref() == Some(self.config.publish_address.as_str()))
                    .or_else(|| b.iter().find(usable))
            });
            let Some(binding) = binding else {
                return Err(format!("container {}: port {key} was not published by Docker", spec.name));
            };
            let host = match binding.host_ip.as_deref() {
                Some(ip) if !ip.is_empty() => ip.to_string(),
                _ => self.config.publish_address.clone(),
            };
            let host_port = binding.host_port.as_deref().unwrap_or_default();
            let endpoint =
                if host.contains(':') { format!("[{host}]:{host_port}") } else { format!("{host}:{host_port}") };
            host_endpoints.insert(key, endpoint);
        }
        Ok(StartedContainer { service_id: spec.service_id, docker_id, ip_address, host_endpoints, node: None })
    }

    /// Force-removes what a failed start created: the containers it created, any container
    /// it tried to create that exists anyway with this execution's labels (a create that timed
    /// out on our side may still have happened), and, unless it grew a running execution,
    /// anything else labelled with this execution.
    async fn cleanup_failed_start(&self, msg: &StartExecution, created: &Created) -> Result<(), String> {
        if created.attempted.is_empty() {
            return Ok(());
        }
        let docker = self.client.ready().await.map_err(|e| e.to_string())?;
        let mut errors = Vec::new();
        let mut ids: BTreeSet<String> = created.ids.iter().cloned().collect();
        for name in &created.attempted {
            match self.belongs_to(&docker, name, msg.execution_id).await {
                Ok(Some(id)) => {
                    ids.insert(id);
                }
                Ok(None) => {}
                Err(e) => errors.push(format!("cannot inspect container {name}: {e}")),
            }
        }
        if !msg.grow {
            match self.list_execution(&docker, msg.execution_id).await {
                Ok(list) => ids.extend(list.into_iter().filter_map(|c| c.id)),
                Err(e) => errors.push(format!("cannot list the execution's containers: {e}")),
            }
        }
        for id in ids {
            if let Err(e) = self.force_remove(&docker, &id).await {
                errors.push(format!("cannot remove container {id}: {e}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    pub(super) async fn list_execution(
        &self,
        docker: &Docker,
        execution_id: u64,
    ) -> Result<Vec<ContainerSummary>, CallError> {
        let filters = label_filter(&[
            (LABEL_DEPLOYMENT, self.config.deployment_name.clone()),
            (LABEL_EXECUTION_ID, execution_id.to_string()),
        ]);
        let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        self.client
            .call_bounded(
                &format!("listing the containers of execution {execution_id}"),
                docker.list_containers(Some(options)),
            )
            .await
    }

    /// Force-removes a container; a missing one, or one already being removed, is fine.
    pub(super) async fn force_remove(&self, docker: &Docker, container: &str) -> Result<(), CallError> {
        let options = RemoveContainerOptions { force: true, v: false, link: false };
        let result = self
            .client
            .call_bounded(&format!("removing container {container}"), docker.remove_container(container, Some(options)))
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(CallError::Api { status: 409, message }) if message.contains("already in progress") => Ok(()),
            Err(e) => Err(e),
        }
    }
}
