//! Removing on a Swarm: an execution's services (their log tails kept first), waiting until
//! their tasks are gone; the owner's overlay network once nothing of theirs uses it; services
//! Zoe does not know; networks of deleted users.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::query_parameters::{ListServicesOptions, ListTasksOptions};
use bollard::Docker;
use tracing::{debug, info, warn};

use super::Inner;
use crate::backend::client::CallError;
use crate::backend::shared::{in_batches, label_filter, label_u64, remove_orphans};
use crate::backend::{logs, LABEL_DEPLOYMENT, LABEL_EXECUTION_ID, LABEL_OWNER, LABEL_SERVICE_ID};
use crate::description::naming;
use crate::protocol::{BackendEvent, RemoveContainers, RemoveExecution, RemoveNetwork};

/// How often the tasks of a removed execution are looked at until they are gone.
const GONE_STEP: Duration = Duration::from_millis(300);

impl Inner {
    pub(super) async fn remove_execution(self: Arc<Self>, msg: RemoveExecution) {
        let execution_id = msg.execution_id;
        info!(execution_id, "removing execution from the swarm");
        self.starts.cancel(execution_id).await;
        let names: Vec<String> = msg.containers.iter().map(|(_, n)| n.clone()).collect();
        let error = self.remove_execution_services(execution_id, &names).await.err();
        if let Some(error) = &error {
            warn!(execution_id, error, "execution not entirely removed");
        }
        self.outbox.send_outcome(BackendEvent::ExecutionRemoved { execution_id, error });
    }

    /// Removes the services of an execution (those labelled with it, and those of `names`),
    /// keeping their log tails, and waits until their tasks are gone; then removes the owner's
    /// network if nothing else of theirs uses it.
    pub(super) async fn remove_execution_services(&self, execution_id: u64, names: &[String]) -> Result<(), String> {
        let docker = self.client.ready().await.map_err(|e| e.to_string())?;
        let mut errors = Vec::new();
        let mut targets: Vec<(String, Option<u64>)> = names.iter().map(|n| (n.clone(), None)).collect();
        let mut owners = Vec::new();
        match self.list_services(&docker, &[(LABEL_EXECUTION_ID, execution_id.to_string())]).await {
            Ok(list) => {
                for s in list {
                    let spec = s.spec.as_ref();
                    let labels = spec.and_then(|sp| sp.labels.as_ref());
                    if let Some(owner) = labels.and_then(|l| l.get(LABEL_OWNER)) {
                        if !owners.contains(owner) {
                            owners.push(owner.clone());
                        }
                    }
                    let name = spec.and_then(|sp| sp.name.clone()).unwrap_or_default();
                    let service_id = label_u64(labels, LABEL_SERVICE_ID);
                    match targets.iter_mut().find(|(n, _)| *n == name) {
                        Some(t) => t.1 = service_id,
                        None => targets.push((name, service_id)),
                    }
                }
            }
            Err(e) => errors.push(format!("cannot list the services of execution {execution_id}: {e}")),
        }
        let results = in_batches(targets, |(name, service_id)| {
            let docker = docker.clone();
            async move { self.save_and_delete(&docker, &name, service_id).await }
        })
        .await;
        errors.extend(results.into_iter().filter_map(Result::err));
        if let Err(e) = self.wait_gone(&docker, execution_id).await {
            errors.push(e);
        }
        for owner in owners {
            let network = naming::user_network_name(&owner, &self.config.deployment_name);
            self.remove_network_if_unused(&docker, &owner, &network).await;
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Removes the services of these names (what a failed grow created), nothing else of their
    /// execution.
    pub(super) async fn remove_named_services(&self, names: &[String]) -> Result<(), String> {
        let docker = self.client.ready().await.map_err(|e| e.to_string())?;
        let results = in_batches(names, |name| {
            let docker = docker.clone();
            async move { self.delete_service(&docker, name).await }
        })
        .await;
        let errors: Vec<String> = results.into_iter().filter_map(|r| r.err().map(|e| e.to_string())).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Keeps the log tail of a service (when its Zoe service id is known), then removes it.
    async fn save_and_delete(&self, docker: &Docker, name: &str, service_id: Option<u64>) -> Result<(), String> {
        if let Some(service_id) = service_id {
            let what = format!("reading the log of service {name}");
            let open = |options| docker.service_logs(name, Some(options));
            match logs::save_log_tail(&self.client, &what, &self.logs, service_id, open).await {
                Ok(true) => debug!(name, service_id, "kept the log tail"),
                Ok(false) => {}
                // A service already gone (lost with its node and removed) has no log to keep.
                Err(e) if e.ends_with("not found") => debug!(name, error = e, "no log to keep"),
                Err(e) => warn!(name, error = e, "cannot keep the service's log"),
            }
        }
        self.delete_service(docker, name).await.map_err(|e| format!("cannot remove service {name}: {e}"))
    }

    /// Removes a service; a missing one is fine.
    pub(super) async fn delete_service(&self, docker: &Docker, name: &str) -> Result<(), CallError> {
        let result = self.client.call_bounded(&format!("removing service {name}"), docker.delete_service(name)).await;
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Waits until no task of the execution is left (their containers stopped and removed), for
    /// at most the stop grace time plus a call timeout.
    async fn wait_gone(&self, docker: &Docker, execution_id: u64) -> Result<(), String> {
        let deadline = Instant::now() + self.config.stop_grace + self.config.call_timeout;
        let filters = label_filter(&[
            (LABEL_DEPLOYMENT, self.config.deployment_name.clone()),
            (LABEL_EXECUTION_ID, execution_id.to_string()),
        ]);
        loop {
            let options = ListTasksOptions { filters: Some(filters.clone()) };
            let left = self
                .client
                .call_bounded("listing the tasks of a removed execution", docker.list_tasks(Some(options)))
                .await
                .map_err(|e| format!("cannot check that the execution's tasks are gone: {e}"))?;
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("{} task(s) of execution {execution_id} are still stopping", left.len()));
            }
            tokio::time::sleep(GONE_STEP).await;
        }
    }

    /// The deployment's services with these labels too.
    pub(super) async fn list_services(
        &self,
        docker: &Docker,
        labels: &[(&str, String)],
    ) -> Result<Vec<bollard::models::Service>, CallError> {
        let mut pairs = vec![(LABEL_DEPLOYMENT, self.config.deployment_name.clone())];
        pairs.extend(labels.iter().cloned());
        let options = ListServicesOptions { filters: Some(label_filter(&pairs)), ..Default::default() };
        self.client.call_bounded("listing services", docker.list_services(Some(options))).await
    }

    /// Removes a user's overlay network when none of their services is left on it.
    async fn remove_network_if_unused(&self, docker: &Docker, owner: &str, network: &str) {
        let _guard = self.network_lock.lock().await;
        match self.list_services(docker, &[(LABEL_OWNER, owner.to_string())]).await {
            Ok(list) if list.is_empty() => {
                self.remove_relay(docker, network).await;
                self.delete_network(docker, network).await
            }
            Ok(_) => {}
            Err(e) => debug!(network, error = %e, "cannot tell whether the network is still used"),
        }
    }

    /// Removes a network; while Swarm is still taking a removed relay's endpoint off it, tries
    /// again a few times.
    async fn delete_network(&self, docker: &Docker, network: &str) {
        for attempt in 1..=10 {
            let result =
                self.client.call_bounded(&format!("removing network {network}"), docker.remove_network(network)).await;
            match result {
                Ok(()) => return info!(network, "removed network"),
                Err(e) if e.is_not_found() => return,
                Err(e) if attempt < 10 && e.to_string().contains("active endpoints") => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return warn!(network, error = %e, "cannot remove network"),
            }
        }
    }

    /// Removes services Zoe does not know (orphans), a batch at a time.
    pub(super) async fn remove_services(&self, msg: RemoveContainers) {
        let inner = self;
        let remove = |docker: Docker, service: String| async move { inner.delete_service(&docker, &service).await };
        remove_orphans(&self.client, "service", msg.names_or_ids, remove).await;
    }

    pub(super) async fn remove_network(&self, msg: RemoveNetwork) {
        match self.client.ready().await {
            Ok(docker) => {
                let _guard = self.network_lock.lock().await;
                self.remove_relay(&docker, &msg.network).await;
                self.delete_network(&docker, &msg.network).await;
            }
            Err(e) => warn!(network = msg.network, error = %e, "cannot remove network"),
        }
    }
}
