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
use std::sync::{Arc, Mutex};

use actix::{Actor, AsyncContext, Context, Handler, Recipient, ResponseFuture, WrapFuture};
use bollard::models::{ContainerInspectResponse, ContainerSummary};
use bollard::query_parameters::{InspectContainerOptions, StatsOptions};
use bollard::Docker;
use futures_util::StreamExt;

use super::client::{CallError, Client};
use super::config::validate_config;
pub use super::config::DockerConfig;
use super::logs::{self, KeptLogs};
use super::shared::{label_filter, Outbox, Reconciler, Reconciles, Starts};
use super::LABEL_DEPLOYMENT;
use crate::protocol::{BackendEvent, FindRelay, LogStream, SampleContainers, ServiceLogs, Stats};
use watch::watch_events;

// ------------------------------------------------------------------------------------------------
// Public API
// ------------------------------------------------------------------------------------------------

/// The actor. See the module documentation.
pub struct DockerActor {
    inner: Arc<Inner>,
}

impl DockerActor {
    /// Checks the configuration; does not contact Docker (that happens when the actor starts,
    /// and an unreachable Docker is reported as `BackendEvent::Unreachable`).
    pub fn new(config: DockerConfig, events: Recipient<BackendEvent>) -> Result<Self, String> {
        validate_config(&config)?;
        let client = Client::new(&config, events.clone());
        Ok(DockerActor {
            inner: Arc::new(Inner {
                outbox: Outbox::new(events),
                client,
                network_lock: tokio::sync::Mutex::new(()),
                reconciler: Reconciler::default(),
                runnable: Mutex::new(HashSet::new()),
                stops: tokio::sync::Semaphore::new(config.max_calls.max(1)),
                starts: Starts::default(),
                logs: Arc::new(KeptLogs::new(config.log_dir.clone(), config.log_tail_bytes, config.log_keep_bytes)),
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

command_handlers!(DockerActor, remove_containers: remove_containers);

impl Handler<FindRelay> for DockerActor {
    type Result = Result<String, String>;

    /// One engine has no relays: the master reaches containers on the user's bridge directly.
    fn handle(&mut self, _msg: FindRelay, _ctx: &mut Self::Context) -> Self::Result {
        Err("one Docker Engine has no relays: its containers are reached directly".to_string())
    }
}

impl Handler<SampleContainers> for DockerActor {
    type Result = ResponseFuture<Vec<Option<Stats>>>;

    fn handle(&mut self, msg: SampleContainers, _ctx: &mut Self::Context) -> Self::Result {
        let inner = self.inner.clone();
        Box::pin(async move { inner.sample(msg).await })
    }
}

// ------------------------------------------------------------------------------------------------
// Internals
// ------------------------------------------------------------------------------------------------

fn summary_name(c: &ContainerSummary) -> String {
    c.names.as_ref().and_then(|n| n.first()).map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default()
}

/// Containers sampled at once: the engine answers a few calls in parallel, and an old one
/// stalls under a flood.
const SAMPLES_AT_ONCE: usize = 4;

/// Shared by the actor and all its tasks.
struct Inner {
    config: DockerConfig,
    /// Where its events go.
    outbox: Outbox,
    /// The connection to the engine: its API version, the bound on calls, its reachability.
    client: Client,
    /// Serializes network creation (old engines do not refuse duplicate network names).
    network_lock: tokio::sync::Mutex<()>,
    reconciler: Reconciler,
    /// Commands found runnable: (image id, program, PATH, working dir).
    runnable: Mutex<HashSet<(String, String, String, String)>>,
    /// Container stops in flight: a stop holds its call for up to the grace time, so stops have
    /// a budget of their own (as large as `calls`) instead of starving every other call. Stops
    /// tear down network sandboxes, which an old engine deadlocks on when too many go at once.
    stops: tokio::sync::Semaphore,
    /// Starts under way, by execution id.
    starts: Starts,
    /// The log tails kept of removed containers.
    logs: Arc<KeptLogs>,
}

impl Inner {
    fn deployment_filter(&self) -> HashMap<String, Vec<String>> {
        label_filter(&[(LABEL_DEPLOYMENT, self.config.deployment_name.clone())])
    }

    // --------------------------------------------------------------------------------- stats

    /// One stats sample per container (`one-shot`: no wait for a second sample), at most
    /// [`SAMPLES_AT_ONCE`] at a time, each under the call timeout and the bound on calls.
    async fn sample(&self, msg: SampleContainers) -> Vec<Option<Stats>> {
        let Ok(docker) = self.client.ready().await else { return vec![None; msg.containers.len()] };
        let docker = &docker;
        futures_util::stream::iter(msg.containers.iter())
            .map(|name| async move {
                let options = StatsOptions { stream: false, one_shot: true };
                let sample = self
                    .client
                    .call_bounded(&format!("sampling container {name}"), async {
                        docker.stats(name, Some(options)).next().await.transpose()
                    })
                    .await;
                let s = sample.ok().flatten()?;
                let cpu_ns = s.cpu_stats.and_then(|c| c.cpu_usage).and_then(|u| u.total_usage)?;
                let memory = s.memory_stats.and_then(|m| {
                    // As `docker stats`: the page cache the kernel can drop is not in use.
                    let cache = m
                        .stats
                        .as_ref()
                        .and_then(|st| st.get("total_inactive_file").or_else(|| st.get("inactive_file")).copied());
                    m.usage.map(|u| u.saturating_sub(cache.unwrap_or(0)))
                });
                Some(Stats { cpu_ns, memory })
            })
            .buffered(SAMPLES_AT_ONCE)
            .collect()
            .await
    }

    // --------------------------------------------------------------------------------- logs

    async fn service_logs(&self, msg: ServiceLogs) -> Result<LogStream, String> {
        let docker = self.client.ready().await.map_err(|e| e.to_string())?;
        let inspect = self.inspect_container(&docker, &msg.container).await;
        let limit = self.config.call_timeout;
        logs::read_service_log(msg, inspect, move |name, options| docker.logs(&name, Some(options)), limit)
    }

    /// Inspects a container (by id or name) under the call timeout.
    async fn inspect_container(&self, docker: &Docker, container: &str) -> Result<ContainerInspectResponse, CallError> {
        let what = format!("inspecting container {container}");
        let inspecting = docker.inspect_container(container, None::<InspectContainerOptions>);
        self.client.call_bounded(&what, inspecting).await
    }
}
