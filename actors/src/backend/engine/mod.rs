//! The single-engine back end: the Docker actor, the only code that talks to one Docker Engine.
//!
//! It never touches Zoe's state. It speaks the back-end protocol of [`crate::protocol`]: the state
//! actor sends it commands and receives their outcomes, and whatever happens to containers on
//! their own, as [`BackendEvent`] messages through the `Recipient` given to [`DockerActor::new`].
//! [`ServiceLogs`] is the one request with a direct answer: a channel fed with a container's log.
//!
//! Handlers never block the actor: every command runs as its own task. The engine is protected
//! from floods: at most `max_calls` engine calls are in flight at once (the others wait their
//! turn), every call is bounded by a timeout (`call_timeout`; pulls by `pull_timeout`; stops by
//! `stop_grace` plus `call_timeout`), removals of many containers go in bounded batches, and a
//! removal cancels the creations still pending for its execution. The only unbounded reads are
//! followed log streams, which end when the container stops or the receiver is dropped.
//!
//! The parts every back end shares are in [`crate::backend`]: the connection to the engine and
//! the bounds on calls (`client`), reading logs (`logs`). Here: the configuration, the actor and
//! its handlers; starting an execution (`start`, with `command` checking that each container's
//! command can run), removing (`remove`), and following the engine (`watch`: events,
//! inventories).

mod command;
mod remove;
mod start;
mod watch;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Recipient, ResponseFuture, WrapFuture};
use bollard::models::ContainerSummary;
use bollard::query_parameters::{InspectContainerOptions, LogsOptions};

use super::client::Client;
use super::{logs, LABEL_DEPLOYMENT};
use crate::protocol::{
    BackendEvent, LogStream, Reconcile, RemoveContainers, RemoveExecution, RemoveNetwork, ServiceLogs, StartExecution,
};
use start::StartControl;
use watch::watch_events;

// ------------------------------------------------------------------------------------------------
// Public API
// ------------------------------------------------------------------------------------------------

/// How the Docker actor reaches Docker and what it does with containers.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// `None`: the local Unix socket `/var/run/docker.sock`. Otherwise `unix:///path`,
    /// `tcp://host:port` or `http://host:port`.
    pub docker_host: Option<String>,
    /// The deployment whose containers this actor manages (label `zoe.deployment_name`).
    pub deployment_name: String,
    /// Bound on each Docker call.
    pub call_timeout: Duration,
    /// Bound on pulling a missing image.
    pub pull_timeout: Duration,
    /// Time between SIGTERM and SIGKILL when stopping a container.
    pub stop_grace: Duration,
    /// Host address exposed ports are published on (a random host port each).
    pub publish_address: String,
    /// Log tails of removed containers are kept here as `<service_id>.log`.
    pub log_dir: PathBuf,
    /// How much of the end of each container log to keep, in bytes (0: keep nothing).
    pub log_tail_bytes: usize,
    /// How often the actor takes an inventory of the deployment's containers.
    pub reconcile_interval: Duration,
    /// Engine calls in flight at once (followed logs and events excepted); the others wait.
    pub max_calls: usize,
    /// Processes (and threads) each container may have.
    pub pids_limit: i64,
    /// Bytes of each container's log file kept by the engine, and how many files.
    pub log_max_bytes: u64,
    pub log_max_files: u32,
}

impl DockerConfig {
    /// The defaults for a deployment: local socket, 30 s calls (8 at once), 10 min pulls, 10 s
    /// stop grace, ports published on 127.0.0.1, logs in `./logs` (1 MiB tails), inventory
    /// every 10 s, 1024 processes and 2 x 10 MiB of log per container.
    pub fn new(deployment_name: impl Into<String>) -> Self {
        DockerConfig {
            docker_host: None,
            deployment_name: deployment_name.into(),
            call_timeout: Duration::from_secs(30),
            pull_timeout: Duration::from_secs(600),
            stop_grace: Duration::from_secs(10),
            publish_address: "127.0.0.1".to_string(),
            log_dir: PathBuf::from("logs"),
            log_tail_bytes: 1 << 20,
            reconcile_interval: Duration::from_secs(10),
            max_calls: 8,
            pids_limit: 1024,
            log_max_bytes: 10 << 20,
            log_max_files: 2,
        }
    }
}

/// The actor. See the module documentation.
pub struct DockerActor {
    inner: Arc<Inner>,
}

impl DockerActor {
    /// Checks the configuration; does not contact Docker (that happens when the actor starts,
    /// and an unreachable Docker is reported as `BackendEvent::Unreachable`).
    pub fn new(config: DockerConfig, events: Recipient<BackendEvent>) -> Result<Self, String> {
        validate_config(&config)?;
        let client = Client::new(config.docker_host.clone(), config.call_timeout, config.max_calls, events.clone());
        Ok(DockerActor {
            inner: Arc::new(Inner {
                events,
                client,
                network_lock: tokio::sync::Mutex::new(()),
                reconcile_busy: AtomicBool::new(false),
                reconcile_again: AtomicBool::new(false),
                completions: AtomicU64::new(0),
                runnable: Mutex::new(HashSet::new()),
                stops: tokio::sync::Semaphore::new(config.max_calls.max(1)),
                starts: Mutex::new(HashMap::new()),
                config,
            }),
        })
    }
}

impl Actor for DockerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.spawn(watch_events(self.inner.clone()).into_actor(self));
        self.inner.request_reconcile();
        ctx.run_interval(self.inner.config.reconcile_interval, |act, _ctx| {
            act.inner.request_reconcile();
        });
    }
}

impl Handler<StartExecution> for DockerActor {
    type Result = ();

    fn handle(&mut self, msg: StartExecution, _ctx: &mut Self::Context) {
        let inner = self.inner.clone();
        actix::spawn(async move { inner.start_execution(msg).await });
    }
}

impl Handler<RemoveExecution> for DockerActor {
    type Result = ();

    fn handle(&mut self, msg: RemoveExecution, _ctx: &mut Self::Context) {
        let inner = self.inner.clone();
        actix::spawn(async move { inner.remove_execution(msg).await });
    }
}

impl Handler<RemoveContainers> for DockerActor {
    type Result = ();

    fn handle(&mut self, msg: RemoveContainers, _ctx: &mut Self::Context) {
        let inner = self.inner.clone();
        actix::spawn(async move { inner.remove_containers(msg).await });
    }
}

impl Handler<RemoveNetwork> for DockerActor {
    type Result = ();

    fn handle(&mut self, msg: RemoveNetwork, _ctx: &mut Self::Context) {
        let inner = self.inner.clone();
        actix::spawn(async move { inner.remove_network(msg).await });
    }
}

impl Handler<Reconcile> for DockerActor {
    type Result = ();

    fn handle(&mut self, _msg: Reconcile, _ctx: &mut Self::Context) {
        self.inner.request_reconcile();
    }
}

impl Handler<ServiceLogs> for DockerActor {
    type Result = ResponseFuture<Result<LogStream, String>>;

    fn handle(&mut self, msg: ServiceLogs, _ctx: &mut Self::Context) -> Self::Result {
        let inner = self.inner.clone();
        Box::pin(async move { inner.service_logs(msg).await })
    }
}

// ------------------------------------------------------------------------------------------------
// Internals
// ------------------------------------------------------------------------------------------------

fn validate_config(config: &DockerConfig) -> Result<(), String> {
    if config.deployment_name.is_empty() {
        return Err("the deployment name is empty".to_string());
    }
    if let Some(host) = &config.docker_host {
        let ok = match host.split_once("://") {
            Some(("unix", path)) => !path.is_empty(),
            Some(("tcp" | "http", addr)) => !addr.is_empty(),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "unsupported Docker host {host:?}: use unix:///path/to/docker.sock, \
                 tcp://host:port or http://host:port (TLS is not supported)"
            ));
        }
    }
    for (what, d) in [
        ("call timeout", config.call_timeout),
        ("pull timeout", config.pull_timeout),
        ("reconcile interval", config.reconcile_interval),
    ] {
        if d.is_zero() {
            return Err(format!("the Docker {what} must not be zero"));
        }
    }
    if !config.publish_address.is_empty() && config.publish_address.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("the publish address {:?} is not an IP address", config.publish_address));
    }
    Ok(())
}

fn label_filter(pairs: &[(&str, String)]) -> HashMap<String, Vec<String>> {
    let labels = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    HashMap::from([("label".to_string(), labels)])
}

fn summary_name(c: &ContainerSummary) -> String {
    c.names.as_ref().and_then(|n| n.first()).map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default()
}

fn label_u64(labels: Option<&HashMap<String, String>>, key: &str) -> Option<u64> {
    labels.and_then(|l| l.get(key)).and_then(|v| v.parse().ok())
}

/// Shared by the actor and all its tasks.
struct Inner {
    config: DockerConfig,
    events: Recipient<BackendEvent>,
    /// The connection to the engine: its API version, the bound on calls, its reachability.
    client: Client,
    /// Serializes network creation (old engines do not refuse duplicate network names).
    network_lock: tokio::sync::Mutex<()>,
    reconcile_busy: AtomicBool,
    reconcile_again: AtomicBool,
    /// Counts the outcomes of starts and removals sent.
    completions: AtomicU64,
    /// Commands found runnable: (image id, program, PATH, working dir).
    runnable: Mutex<HashSet<(String, String, String, String)>>,
    /// Container stops in flight: a stop holds its call for up to the grace time, so stops have
    /// a budget of their own (as large as `calls`) instead of starving every other call. Stops
    /// tear down network sandboxes, which an old engine deadlocks on when too many go at once.
    stops: tokio::sync::Semaphore,
    /// Starts under way, by execution id.
    starts: Mutex<HashMap<u64, Arc<StartControl>>>,
}

impl Inner {
    fn send(&self, event: BackendEvent) {
        self.events.do_send(event);
    }

    /// Sends the outcome of a start or a removal, which an inventory taken meanwhile must not
    /// contradict (see `reconcile_once`).
    fn send_outcome(&self, event: BackendEvent) {
        self.completions.fetch_add(1, Ordering::SeqCst);
        self.send(event);
    }

    fn deployment_filter(&self) -> HashMap<String, Vec<String>> {
        label_filter(&[(LABEL_DEPLOYMENT, self.config.deployment_name.clone())])
    }

    // --------------------------------------------------------------------------------- logs

    async fn service_logs(&self, msg: ServiceLogs) -> Result<LogStream, String> {
        let docker = self.client.ready().await.map_err(|e| e.to_string())?;
        let container = msg.container;
        let limit = self.config.call_timeout;
        let inspect = self
            .client
            .call(
                &format!("inspecting container {container}"),
                limit,
                docker.inspect_container(&container, None::<InspectContainerOptions>),
            )
            .await;
        match inspect {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Err("no such container".to_string()),
            Err(e) => return Err(e.to_string()),
        }
        let options = LogsOptions {
            follow: msg.follow,
            stdout: true,
            stderr: true,
            tail: msg.tail_lines.map_or_else(|| "all".to_string(), |n| n.to_string()),
            ..Default::default()
        };
        Ok(logs::stream_log(move || docker.logs(&container, Some(options)), msg.follow, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        let mut c = DockerConfig::new("dev");
        assert!(validate_config(&c).is_ok());
        c.docker_host = Some("ssh://x".to_string());
        assert!(validate_config(&c).is_err());
        c.docker_host = Some("tcp://127.0.0.1:2375".to_string());
        assert!(validate_config(&c).is_ok());
        c.publish_address = "localhost".to_string();
        assert!(validate_config(&c).is_err());
    }
}
