//! Following the engine: its container events (a container that stops is reported at once) and
//! inventories of the deployment's containers (for whatever events cannot tell), with the
//! engine's info.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{ContainerSummaryStateEnum, EventMessage};
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::Docker;
use futures_util::StreamExt;
use tracing::{debug, info, warn};

use super::{summary_name, Inner};
use crate::backend::client::{classify, CallError};
use crate::backend::shared::{consistent_inventory, label_u64, Reconciler, Reconciles};
use crate::backend::{LABEL_DEPLOYMENT, LABEL_EXECUTION_ID, LABEL_SERVICE_ID};
use crate::backoff::Backoff;
use crate::protocol::{BackendEvent, ContainerInfo, NodeInfo, PlatformInfo};

/// Reconnections wait 0.5 s, doubling up to 10 s.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));

// ---------------------------------------------------------------------------- reconcile

impl Reconciles for Inner {
    fn reconciler(&self) -> &Reconciler {
        &self.reconciler
    }

    async fn reconcile_once(self: Arc<Self>) {
        self.take_inventory_and_info().await;
    }
}

impl Inner {
    /// Takes an inventory and sends it (not older than an outcome sent before it: see
    /// [`consistent_inventory`]), then the engine's info.
    async fn take_inventory_and_info(&self) {
        let take = async |docker: &Docker| self.take_inventory(docker).await;
        let Some((docker, containers)) = consistent_inventory(&self.client, &self.outbox, take).await else { return };
        self.outbox.send(BackendEvent::Inventory { containers });
        match self.client.call_bounded("reading the engine's info", docker.info()).await {
            Ok(info) => {
                let count = |v: Option<i64>| u64::try_from(v.unwrap_or(0)).unwrap_or(0);
                let cpus = u32::try_from(info.ncpu.unwrap_or(0)).unwrap_or(0);
                let name = info.name.unwrap_or_default();
                // The engine is the one node; engine labels are `key=value` strings.
                let node = NodeInfo {
                    id: info.id.unwrap_or_default(),
                    name: name.clone(),
                    address: "local".to_string(),
                    ready: true,
                    status: "ready".to_string(),
                    role: "engine".to_string(),
                    cpus,
                    memory: count(info.mem_total),
                    labels: info
                        .labels
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                        .collect(),
                    containers: count(info.containers_running),
                };
                self.outbox.send(BackendEvent::Platform(PlatformInfo {
                    memory_total: count(info.mem_total),
                    cpus,
                    containers: count(info.containers),
                    containers_running: count(info.containers_running),
                    images: count(info.images),
                    server_version: info.server_version.unwrap_or_default(),
                    name,
                    nodes: vec![node],
                }));
            }
            Err(e) => warn!(error = %e, "cannot read the engine's info"),
        }
    }

    /// Every container of the deployment; `None` when Docker could not list them.
    async fn take_inventory(&self, docker: &Docker) -> Option<Vec<ContainerInfo>> {
        let options =
            ListContainersOptions { all: true, filters: Some(self.deployment_filter()), ..Default::default() };
        let list = match self.client.call_bounded("listing containers", docker.list_containers(Some(options))).await {
            Ok(l) => l,
            Err(e) => {
                if let CallError::Timeout { .. } = e {
                    self.client.mark_unreachable(&e.to_string());
                }
                warn!(error = %e, "inventory failed");
                return None;
            }
        };
        let mut containers = Vec::with_capacity(list.len());
        for c in list {
            let Some(docker_id) = c.id.clone() else {
                continue;
            };
            let running = matches!(
                c.state,
                Some(
                    ContainerSummaryStateEnum::RUNNING
                        | ContainerSummaryStateEnum::PAUSED
                        | ContainerSummaryStateEnum::RESTARTING
                )
            );
            let never_ran = matches!(c.state, Some(ContainerSummaryStateEnum::CREATED));
            let (mut exit_code, mut oom_killed) = (None, false);
            if !running && !never_ran {
                match self.inspect_container(docker, &docker_id).await {
                    Ok(info) => {
                        if let Some(state) = info.state {
                            exit_code = state.exit_code;
                            oom_killed = state.oom_killed.unwrap_or(false);
                        }
                    }
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => debug!(docker_id, error = %e, "cannot inspect container"),
                }
            }
            containers.push(ContainerInfo {
                name: summary_name(&c),
                execution_id: label_u64(c.labels.as_ref(), LABEL_EXECUTION_ID),
                service_id: label_u64(c.labels.as_ref(), LABEL_SERVICE_ID),
                docker_id,
                running,
                exit_code,
                oom_killed,
                node: None,
            });
        }
        Some(containers)
    }
}

// ------------------------------------------------------------------------------------ watching

/// Follows the engine's container events for the deployment for as long as the actor lives,
/// reconnecting with exponential backoff. After a reconnection it asks the engine to replay what
/// happened since the last event seen (the engine keeps a short history; duplicates are
/// dropped), and takes an inventory for whatever is beyond that history.
pub(super) async fn watch_events(inner: Arc<Inner>) {
    let mut backoff = RECONNECT;
    let mut first = true;
    // Where to resume: the time of the last event seen, or the engine's clock when first
    // connected (anything the engine accepts as `since`).
    let mut since: Option<String> = None;
    let mut recent: VecDeque<(i64, String, String)> = VecDeque::new();
    let mut oom_seen: HashSet<String> = HashSet::new();
    loop {
        let connected = match inner.client.ready().await {
            Ok(docker) => inner.client.call_bounded("pinging Docker", docker.ping()).await.map(|_| docker),
            Err(e) => Err(e),
        };
        let docker = match connected {
            Ok(d) => d,
            Err(e) => {
                inner.client.mark_unreachable(&e.to_string());
                tokio::time::sleep(backoff.next_pause()).await;
                continue;
            }
        };
        if since.is_none() {
            match inner.client.call_bounded("reading the engine's clock", docker.info()).await {
                Ok(info) => since = info.system_time.as_deref().and_then(unix_timestamp),
                Err(e) => debug!(error = %e, "cannot read the engine's clock"),
            }
        }
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("label".to_string(), vec![format!("{LABEL_DEPLOYMENT}={}", inner.config.deployment_name)]),
            ("event".to_string(), vec!["die".to_string(), "oom".to_string()]),
        ]);
        let mut stream =
            docker.events(Some(EventsOptions { since: since.clone(), until: None, filters: Some(filters) }));
        if !first {
            // Events beyond the engine's history may have been missed while disconnected.
            inner.request_reconcile();
        }
        first = false;
        debug!(since, "following Docker events");
        let subscribed_at = std::time::Instant::now();
        let outages = inner.client.outages();
        let error = loop {
            // Created before the check so that no notification is missed.
            let outage = inner.client.outage_notified();
            if inner.client.outages() != outages {
                break None;
            }
            let item = tokio::select! {
                _ = outage => continue,
                item = stream.next() => item,
            };
            let event = match item {
                Some(Ok(event)) => event,
                Some(Err(e)) => match classify(e) {
                    // Docker answered but refused the subscription: not an outage. Try again
                    // without resuming.
                    e @ CallError::Api { .. } => {
                        warn!(error = %e, "Docker refused the event subscription");
                        since = None;
                        break None;
                    }
                    e => break Some(e.to_string()),
                },
                None => break Some("the Docker event stream ended".to_string()),
            };
            if let Some(nanos) = event.time_nano {
                let key = (
                    nanos,
                    event.actor.as_ref().and_then(|a| a.id.clone()).unwrap_or_default(),
                    event.action.clone().unwrap_or_default(),
                );
                if recent.contains(&key) {
                    continue; // replayed after a reconnection
                }
                if recent.len() >= 1024 {
                    recent.pop_front();
                }
                recent.push_back(key);
                since = Some(timestamp_from_nanos(i128::from(nanos)));
            }
            inner.handle_event(&docker, event, &mut oom_seen).await;
        };
        drop(stream);
        match error {
            Some(error) => inner.client.mark_unreachable(&error),
            None => debug!("resubscribing to Docker events"),
        }
        if subscribed_at.elapsed() > backoff.max() {
            backoff.reset();
        }
        tokio::time::sleep(backoff.next_pause()).await;
    }
}

/// An RFC 3339 time (the engine's clock) as the Unix timestamp the events API takes.
fn unix_timestamp(rfc3339: &str) -> Option<String> {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).ok()?;
    Some(timestamp_from_nanos(t.unix_timestamp_nanos()))
}

fn timestamp_from_nanos(nanos: i128) -> String {
    format!("{}.{:09}", nanos.div_euclid(1_000_000_000), nanos.rem_euclid(1_000_000_000))
}

impl Inner {
    async fn handle_event(&self, docker: &Docker, event: EventMessage, oom_seen: &mut HashSet<String>) {
        let Some(actor) = event.actor else {
            return;
        };
        let Some(id) = actor.id else {
            return;
        };
        let attributes = actor.attributes.unwrap_or_default();
        match event.action.as_deref() {
            Some("oom") => {
                if oom_seen.len() > 10_000 {
                    oom_seen.clear();
                }
                oom_seen.insert(id);
            }
            Some("die") => {
                let mut oom_killed = oom_seen.remove(&id);
                let execution_id = label_u64(Some(&attributes), LABEL_EXECUTION_ID);
                let service_id = label_u64(Some(&attributes), LABEL_SERVICE_ID);
                let (Some(execution_id), Some(service_id)) = (execution_id, service_id) else {
                    debug!(id, "a container without execution and service ids stopped");
                    return;
                };
                let mut exit_code = attributes.get("exitCode").and_then(|c| c.parse::<i64>().ok());
                match self.inspect_container(docker, &id).await {
                    Ok(info) => {
                        if let Some(state) = info.state {
                            oom_killed |= state.oom_killed.unwrap_or(false);
                            if exit_code.is_none() {
                                exit_code = state.exit_code;
                            }
                        }
                    }
                    Err(e) => debug!(id, error = %e, "cannot inspect a stopped container"),
                }
                let exit_code = exit_code.unwrap_or(-1);
                info!(execution_id, service_id, exit_code, oom_killed, "container exited");
                self.outbox.send(BackendEvent::ContainerExited {
                    execution_id,
                    service_id,
                    docker_id: id,
                    exit_code,
                    oom_killed,
                });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(unix_timestamp("2026-11-25T08:53:34.194755065Z").as_deref(), Some("1795596814.194755065"));
        assert_eq!(unix_timestamp("1970-01-01T00:00:01Z").as_deref(), Some("1.000000000"));
        assert_eq!(timestamp_from_nanos(1_500_000_000), "1.500000000");
        assert!(unix_timestamp("yesterday").is_none());
    }
}
