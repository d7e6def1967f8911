//! The relays of a Swarm's user networks (see [`crate::relay`]): one service per overlay network,
//! `zoe-relay_<network>` (a `_` never appears in a container's name, so it cannot collide with
//! one), made with the network and removed with it; where the master finds each one.
//!
//! A relay runs the `relay-image` as nobody (uid 65534), read-only, with no capabilities and
//! small limits (64 MiB, half a core, 256 processes), reserves nothing, and is restarted by Swarm
//! wherever it likes (it holds no state). Its one port is published in host mode on its node. It
//! is labelled `zoe.type=relay` and `zoe.relay.deployment=<deployment>` but not with the
//! deployment's container labels: inventories and the task poll never see it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum, EndpointSpec,
    EndpointSpecModeEnum, Limit, ResourceObject, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec,
    TaskSpecContainerSpec, TaskSpecResources, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{InspectNetworkOptions, ListTasksOptions};
use bollard::Docker;
use tracing::{info, warn};

use super::Inner;
use crate::backend::client::lock;
use crate::backend::config::RelaySettings;

/// Labels of a relay's service.
const LABEL_TYPE: &str = "zoe.type";
const LABEL_RELAY_DEPLOYMENT: &str = "zoe.relay.deployment";
const LABEL_RELAY_NETWORK: &str = "zoe.relay.network";
/// How long a relay may take to go away before its network is removed.
const GONE_STEP: Duration = Duration::from_millis(300);

/// The service of the relay of `network`.
pub(crate) fn relay_name(network: &str) -> String {
    format!("zoe-relay_{network}")
}

impl Inner {
    fn relay_settings(&self) -> Result<&RelaySettings, String> {
        self.config.relay.as_ref().ok_or_else(|| "this master runs no relays: the proxy cannot reach services".into())
    }

    /// Makes sure the relay of `network` exists (created, or re-created from another image);
    /// unless `look`, a relay this back end made or found already is taken to be there (a start
    /// costs no call then; one that is gone is made again when the master looks for it). The
    /// caller holds the network lock.
    pub(super) async fn ensure_relay(&self, docker: &Docker, network: &str, look: bool) -> Result<(), String> {
        let settings = self.relay_settings()?;
        if !look && lock(&self.relays_made).contains(network) {
            return Ok(());
        }
        let name = relay_name(network);
        match self.client.call_bounded(&format!("inspecting service {name}"), docker.inspect_service(&name, None)).await
        {
            Ok(s) => {
                let image =
                    s.spec.as_ref().and_then(|sp| sp.task_template.as_ref()).and_then(|t| t.container_spec.as_ref());
                if image.and_then(|c| c.image.as_deref()) == Some(settings.image.as_str()) {
                    lock(&self.relays_made).insert(network.to_string());
                    return Ok(());
                }
                info!(relay = name, image = settings.image, "replacing a relay of another image");
                self.delete_service(docker, &name).await.map_err(|e| e.to_string())?;
                self.wait_relay_gone(docker, &name).await;
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(format!("cannot inspect the relay {name}: {e}")),
        }
        let subnets = self.subnets(docker, network).await?;
        let spec = self.relay_spec(settings, network, &subnets);
        match self.client.call_bounded(&format!("creating service {name}"), docker.create_service(spec, None)).await {
            Ok(_) => {
                info!(relay = name, subnets = subnets.join(","), "relay created");
                lock(&self.relays_made).insert(network.to_string());
                Ok(())
            }
            Err(e) if e.is_conflict() => Ok(()),
            Err(e) => Err(format!("cannot create the relay {name}: {e}")),
        }
    }

    /// The subnets of an overlay network, where its relay may connect.
    async fn subnets(&self, docker: &Docker, network: &str) -> Result<Vec<String>, String> {
        let inspect = self
            .client
            .call_bounded(
                &format!("inspecting network {network}"),
                docker.inspect_network(network, None::<InspectNetworkOptions>),
            )
            .await
            .map_err(|e| format!("cannot inspect network {network}: {e}"))?;
        let subnets: Vec<String> = inspect
            .ipam
            .and_then(|i| i.config)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.subnet)
            .filter(|s| !s.is_empty())
            .collect();
        if subnets.is_empty() {
            return Err(format!("network {network} has no subnet yet"));
        }
        Ok(subnets)
    }

    fn relay_spec(&self, settings: &RelaySettings, network: &str, subnets: &[String]) -> ServiceSpec {
        let c = &self.config;
        let labels = HashMap::from([
            (LABEL_TYPE.to_string(), "relay".to_string()),
            (LABEL_RELAY_DEPLOYMENT.to_string(), c.deployment_name.clone()),
            (LABEL_RELAY_NETWORK.to_string(), network.to_string()),
        ]);
        let key = settings.secret.network_key(network);
        ServiceSpec {
            name: Some(relay_name(network)),
            labels: Some(labels.clone()),
            task_template: Some(TaskSpec {
                container_spec: Some(Inner::locked_down(TaskSpecContainerSpec {
                    image: Some(settings.image.clone()),
                    labels: Some(labels),
                    args: Some(vec!["--listen".into(), format!("0.0.0.0:{}", crate::relay::PORT)]),
                    env: Some(vec![
                        format!("ZOE_RELAY_KEY={}", key.to_hex()),
                        format!("ZOE_RELAY_SUBNETS={}", subnets.join(",")),
                        "ZOE_LOG=info".to_string(),
                    ]),
                    user: Some("65534:65534".to_string()),
                    stop_grace_period: Some(2_000_000_000),
                    ..Default::default()
                })),
                resources: Some(TaskSpecResources {
                    limits: Some(Limit { nano_cpus: Some(500_000_000), memory_bytes: Some(64 << 20), pids: Some(256) }),
                    reservations: Some(ResourceObject::default()),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                    delay: Some(1_000_000_000),
                    ..Default::default()
                }),
                ..self.task_on(network, "1048576".to_string(), "2".to_string())
            }),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
                ..Default::default()
            }),
            endpoint_spec: Some(EndpointSpec {
                mode: Some(EndpointSpecModeEnum::DNSRR),
                ports: Some(vec![EndpointPortConfig {
                    protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                    target_port: Some(i64::from(crate::relay::PORT)),
                    publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        }
    }

    /// Where the relay of `network` answers (`node address:port`), from what was last seen
    /// unless `fresh`. A relay that does not exist is created (and `Err` says it is starting).
    pub(super) async fn find_relay(&self, network: &str, fresh: bool) -> Result<String, String> {
        if !fresh {
            if let Some(addr) = lock(&self.relays).get(network) {
                return Ok(addr.clone());
            }
        }
        self.relay_settings()?;
        let docker = self.client.ready().await.map_err(|e| e.to_string())?;
        let name = relay_name(network);
        let filters = HashMap::from([
            ("service".to_string(), vec![name.clone()]),
            ("desired-state".to_string(), vec!["running".to_string()]),
        ]);
        let tasks = self
            .client
            .call_bounded(
                &format!("listing the tasks of {name}"),
                docker.list_tasks(Some(ListTasksOptions { filters: Some(filters) })),
            )
            .await;
        let tasks = match tasks {
            Ok(t) => t,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(format!("cannot find the relay of {network}: {e}")),
        };
        let running = tasks.iter().find(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING));
        let Some(task) = running else {
            if tasks.is_empty() {
                let _guard = self.network_lock.lock().await;
                self.ensure_relay(&docker, network, true).await?;
            }
            lock(&self.relays).remove(network);
            return Err(format!("the relay of network {network} is starting"));
        };
        let node = task.node_id.clone().unwrap_or_default();
        let nodes = self.node_addresses(&docker, &[node.as_str()]).await;
        let addr = nodes.get(&node).map(|(_, a)| a.clone()).filter(|a| !a.is_empty());
        let port = task
            .status
            .as_ref()
            .and_then(|s| s.port_status.as_ref())
            .and_then(|p| p.ports.as_ref())
            .and_then(|p| p.iter().find_map(|p| p.published_port));
        let (Some(addr), Some(port)) = (addr, port) else {
            return Err(format!("the relay of network {network} has no published port yet"));
        };
        let endpoint = format!("{addr}:{port}");
        lock(&self.relays).insert(network.to_string(), endpoint.clone());
        Ok(endpoint)
    }

    /// Removes the relay of `network` and waits (bounded) until its task is gone, so that the
    /// network can go. The caller holds the network lock.
    pub(super) async fn remove_relay(&self, docker: &Docker, network: &str) {
        lock(&self.relays).remove(network);
        lock(&self.relays_made).remove(network);
        let name = relay_name(network);
        if let Err(e) = self.delete_service(docker, &name).await {
            warn!(relay = name, error = %e, "cannot remove the relay");
            return;
        }
        self.wait_relay_gone(docker, &name).await;
    }

    async fn wait_relay_gone(&self, docker: &Docker, name: &str) {
        let deadline = Instant::now() + self.config.stop_grace + self.config.call_timeout;
        let filters = HashMap::from([("service".to_string(), vec![name.to_string()])]);
        while Instant::now() < deadline {
            let options = ListTasksOptions { filters: Some(filters.clone()) };
            match self.client.call_bounded("listing a relay's tasks", docker.list_tasks(Some(options))).await {
                Ok(tasks) if tasks.is_empty() => return,
                Err(e) if e.is_not_found() => return,
                _ => tokio::time::sleep(GONE_STEP).await,
            }
        }
    }
}
