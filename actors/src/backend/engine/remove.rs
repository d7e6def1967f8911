//! Removing what Zoe started: an execution's containers (stopped, their log tails kept, then
//! removed, a batch at a time), orphan containers, networks.

use std::sync::Arc;

use bollard::query_parameters::StopContainerOptions;
use bollard::Docker;
use tracing::{debug, info, warn};

use super::{summary_name, Inner};
use crate::backend::client::CallError;
use crate::backend::shared::{in_batches, label_u64, remove_orphans};
use crate::backend::{logs, LABEL_SERVICE_ID};
use crate::protocol::{BackendEvent, RemoveContainers, RemoveExecution, RemoveNetwork};

impl Inner {
    fn stop_options(&self) -> StopContainerOptions {
        let grace = self.config.stop_grace;
        let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        StopContainerOptions { signal: None, t: Some(i32::try_from(secs).unwrap_or(i32::MAX)) }
    }

    pub(super) async fn remove_execution(self: Arc<Self>, msg: RemoveExecution) {
        let execution_id = msg.execution_id;
        info!(execution_id, "removing execution");
        self.starts.cancel(execution_id).await;
        let error = match self.client.ready().await {
            Ok(docker) => self.remove_execution_containers(docker, &msg).await.err(),
            Err(e) => Some(e.to_string()),
        };
        if let Some(error) = &error {
            warn!(execution_id, error, "execution not entirely removed");
        }
        self.outbox.send_outcome(BackendEvent::ExecutionRemoved { execution_id, error });
    }

    async fn remove_execution_containers(&self, docker: Docker, msg: &RemoveExecution) -> Result<(), String> {
        let mut errors = Vec::new();
        let mut targets: Vec<(String, Option<u64>)> =
            msg.containers.iter().map(|(sid, name)| (name.clone(), Some(*sid))).collect();
        match self.list_execution(&docker, msg.execution_id).await {
            Ok(list) => {
                for c in list {
                    let name = summary_name(&c);
                    if msg.containers.iter().any(|(_, n)| *n == name) {
                        continue;
                    }
                    if let Some(id) = c.id.clone() {
                        targets.push((id, label_u64(c.labels.as_ref(), LABEL_SERVICE_ID)));
                    }
                }
            }
            Err(e) => errors.push(format!("cannot list the containers of execution {}: {e}", msg.execution_id)),
        }
        let results = in_batches(targets, |(container, service_id)| {
            let docker = docker.clone();
            async move { self.stop_and_remove(&docker, &container, service_id).await }
        })
        .await;
        errors.extend(results.into_iter().filter_map(Result::err));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Stops a container (SIGTERM, SIGKILL after the grace time), keeps its log tail when a
    /// service id is given, and removes it. A missing container is fine.
    async fn stop_and_remove(&self, docker: &Docker, container: &str, service_id: Option<u64>) -> Result<(), String> {
        let limit = self.config.stop_grace + self.config.call_timeout;
        let stop = match self.stops.acquire().await {
            Ok(_turn) => {
                self.client
                    .timed(
                        &format!("stopping container {container}"),
                        limit,
                        docker.stop_container(container, Some(self.stop_options())),
                    )
                    .await
            }
            Err(_) => Err(CallError::Other("the Docker actor is stopping".into())),
        };
        match stop {
            Ok(()) => {}
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => warn!(container, error = %e, "cannot stop container, removing it by force"),
        }
        if let Some(service_id) = service_id {
            if let Err(e) = self.save_log_tail(docker, container, service_id).await {
                warn!(container, error = e, "cannot keep the container's log");
            }
        }
        self.force_remove(docker, container).await.map_err(|e| format!("cannot remove container {container}: {e}"))?;
        debug!(container, "container removed");
        Ok(())
    }

    /// Keeps the last `log_tail_bytes` of the container's log in `<log_dir>/<service_id>.log`
    /// (see [`logs::save_log_tail`]).
    async fn save_log_tail(&self, docker: &Docker, container: &str, service_id: u64) -> Result<(), String> {
        let what = format!("reading the log of container {container}");
        let open = |options| docker.logs(container, Some(options));
        if logs::save_log_tail(&self.client, &what, &self.logs, service_id, open).await? {
            debug!(container, service_id, "kept the log tail");
        }
        Ok(())
    }

    /// Removes orphan containers, a batch at a time.
    pub(super) async fn remove_containers(&self, msg: RemoveContainers) {
        let inner = self;
        let remove =
            |docker: Docker, container: String| async move { inner.stop_and_remove(&docker, &container, None).await };
        remove_orphans(&self.client, "container", msg.names_or_ids, remove).await;
    }

    pub(super) async fn remove_network(&self, msg: RemoveNetwork) {
        let network = msg.network;
        let docker = match self.client.ready().await {
            Ok(d) => d,
            Err(e) => {
                warn!(network, error = %e, "cannot remove network");
                return;
            }
        };
        let result =
            self.client.call_bounded(&format!("removing network {network}"), docker.remove_network(&network)).await;
        match result {
            Ok(()) => info!(network, "removed network"),
            Err(e) if e.is_not_found() => {}
            Err(e) => warn!(network, error = %e, "cannot remove network"),
        }
    }
}
