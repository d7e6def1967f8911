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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Recipient, ResponseFuture, WrapFuture};
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, ContainerSummaryStateEnum, EventMessage,
    HostConfig, HostConfigLogConfig, ImageInspect, NetworkCreateRequest, PortBinding,
};
use bollard::query_parameters::{
    ContainerArchiveInfoOptions, CreateContainerOptions, CreateImageOptions, EventsOptions, InspectContainerOptions,
    InspectNetworkOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions, StartContainerOptions,
    StopContainerOptions,
};
use bollard::{ClientVersion, Docker, API_DEFAULT_VERSION};
use futures_util::StreamExt;
use tracing::{debug, info, warn};

use crate::protocol::{
    BackendEvent, ContainerInfo, ContainerSpec, LogStream, NodeInfo, PlatformInfo, Reconcile, RemoveContainers,
    RemoveExecution, RemoveNetwork, ServiceLogs, StartExecution, StartedContainer,
};

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
        Ok(DockerActor {
            inner: Arc::new(Inner {
                events,
                client: Mutex::new(None),
                unreachable: Mutex::new(false),
                network_lock: tokio::sync::Mutex::new(()),
                reconcile_busy: AtomicBool::new(false),
                reconcile_again: AtomicBool::new(false),
                outages: AtomicU64::new(0),
                outage_notify: tokio::sync::Notify::new(),
                completions: AtomicU64::new(0),
                runnable: Mutex::new(HashSet::new()),
                calls: tokio::sync::Semaphore::new(config.max_calls.max(1)),
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

const LABEL_DEPLOYMENT: &str = "zoe.deployment_name";
const LABEL_OWNER: &str = "zoe.owner";
const LABEL_EXECUTION_ID: &str = "zoe.execution.id";
const LABEL_SERVICE_ID: &str = "zoe.service.id";

const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// bollard's own timeout (response headers only); ours are tighter and per call.
const BOLLARD_TIMEOUT_SECS: u64 = 3600;
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
const LOG_CHANNEL_CAPACITY: usize = 64;
const INVENTORY_ATTEMPTS: usize = 10;
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Go's os.FileMode type bits, as reported by Docker's archive stat.
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;
const MODE_TYPE: u32 = (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19);

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

/// A failed Docker call.
#[derive(Debug)]
enum CallError {
    /// Docker answered with an error status.
    Api { status: u16, message: String },
    /// Docker did not answer in time.
    Timeout { what: String, after: Duration },
    /// Docker could not be reached.
    Unreachable(String),
    /// Anything else (a broken response, an error inside a stream).
    Other(String),
}

impl CallError {
    /// Whether the engine was too slow or out of reach, rather than refusing.
    fn is_transient(&self) -> bool {
        matches!(self, CallError::Timeout { .. } | CallError::Unreachable(_))
    }

    fn is_not_found(&self) -> bool {
        matches!(self, CallError::Api { status: 404, .. })
    }

    fn is_conflict(&self) -> bool {
        matches!(self, CallError::Api { status: 409, .. })
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Api { status, message } if message.trim().is_empty() => {
                write!(f, "Docker answered with status {status}")
            }
            CallError::Api { message, .. } => write!(f, "{}", plain_docker_message(message)),
            CallError::Timeout { what, after } => {
                write!(f, "Docker did not answer within {} while {what}", human_duration(*after))
            }
            CallError::Unreachable(m) => write!(f, "cannot reach Docker: {m}"),
            CallError::Other(m) => write!(f, "{m}"),
        }
    }
}

fn classify(e: BollardError) -> CallError {
    match e {
        BollardError::DockerResponseServerError { status_code, message } => {
            CallError::Api { status: status_code, message }
        }
        BollardError::DockerStreamError { error } => CallError::Other(plain_docker_message(&error)),
        BollardError::RequestTimeoutError => CallError::Unreachable("the request timed out".to_string()),
        e @ (BollardError::HyperLegacyError { .. }
        | BollardError::IOError { .. }
        | BollardError::SocketNotFoundError(_)
        | BollardError::HyperResponseError { .. }) => {
            CallError::Unreachable(error_chain(&e).replace("Error in the hyper legacy client: ", ""))
        }
        e => CallError::Other(error_chain(&e)),
    }
}

/// An error with its sources, without repeating what is already said.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !m.is_empty() && !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

fn human_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Why a pull failed, in words that never repeat what a registry answered: a registry's answer
/// is whatever its owner wants it to be, and the image name may point anywhere.
fn pull_reason(e: &CallError) -> String {
    match e {
        CallError::Timeout { after, .. } => format!("the pull did not finish within {}", human_duration(*after)),
        CallError::Unreachable(_) => "Docker could not be reached".to_string(),
        CallError::Api { status: 404, .. } => "no registry has it (or it needs credentials)".to_string(),
        CallError::Api { .. } | CallError::Other(_) => {
            "the registry could not be reached or refused it (its answer is not shown)".to_string()
        }
    }
}

/// Docker's error text without the runtime's plumbing, e.g.
/// `failed to create shim task: OCI runtime create failed: runc create failed: unable to start
/// container process: exec: "x": executable file not found in $PATH: unknown` becomes
/// `executable "x" was not found in $PATH`.
fn plain_docker_message(message: &str) -> String {
    let mut msg = message.trim();
    while let Some(rest) = msg.strip_prefix("Error response from daemon: ") {
        msg = rest.trim();
    }
    if let Some(pos) = msg.find("exec: \"") {
        let after = &msg[pos + "exec: \"".len()..];
        if let Some(end) = after.find('"') {
            let prog = &after[..end];
            let reason = after[end + 1..].trim_start_matches(':').trim();
            let reason = reason.strip_suffix(": unknown").unwrap_or(reason);
            if reason.starts_with("executable file not found") {
                return format!("executable \"{prog}\" was not found in $PATH");
            }
            return format!("cannot run \"{prog}\": {reason}");
        }
    }
    const NOISE: [&str; 8] = [
        "failed to create shim task",
        "failed to create shim",
        "OCI runtime create failed",
        "OCI runtime start failed",
        "runc create failed",
        "unable to start container process",
        "starting container process caused",
        "error during container init",
    ];
    let parts: Vec<&str> = msg
        .split(": ")
        .filter(|p| {
            let p = p.trim();
            !NOISE.contains(&p) && !p.starts_with("container_linux.go:")
        })
        .collect();
    let mut out = parts.join(": ");
    if let Some(s) = out.strip_suffix(": unknown") {
        out = s.to_string();
    }
    if out.is_empty() {
        msg.to_string()
    } else {
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn connect(host: Option<&str>, version: &ClientVersion) -> Result<Docker, BollardError> {
    match host {
        None => Docker::connect_with_unix(DEFAULT_SOCKET, BOLLARD_TIMEOUT_SECS, version),
        Some(h) if h.starts_with("unix://") => Docker::connect_with_unix(h, BOLLARD_TIMEOUT_SECS, version),
        Some(h) if h.starts_with("tcp://") || h.starts_with("http://") => {
            Docker::connect_with_http(h, BOLLARD_TIMEOUT_SECS, version)
        }
        Some(h) => Err(BollardError::UnsupportedURISchemeError { uri: h.to_string() }),
    }
}

/// `1.41` (possibly followed by other text) as a client version.
fn parse_api_version(s: &str) -> Option<ClientVersion> {
    let s: String = s.trim().chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let (major, minor) = s.trim_end_matches('.').split_once('.')?;
    Some(ClientVersion { major_version: major.parse().ok()?, minor_version: minor.parse().ok()? })
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

/// Containers of one startup-order group created and started at the same time.
const START_CONCURRENCY: usize = 4;

/// Why a start failed, and whether it may work later.
#[derive(Debug)]
struct Failure {
    message: String,
    /// Docker was too slow or out of reach.
    transient: bool,
}

impl Failure {
    /// A failed engine call, described in the context of what was being done.
    fn call(e: CallError, context: impl FnOnce(&CallError) -> String) -> Failure {
        Failure { transient: e.is_transient(), message: context(&e) }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure { message, transient: false }
    }
}

/// A start under way, which a removal of the same execution can cancel and wait for.
#[derive(Default)]
struct StartControl {
    cancelled: AtomicBool,
    /// Held by the start until it has cleaned up after itself.
    running: tokio::sync::Mutex<()>,
}

/// Containers removed (stopped) at once by one removal or clean-up pass.
const REMOVE_BATCH: usize = 8;

/// What a start has done so far, for cleaning up after a failure.
#[derive(Default)]
struct Created {
    /// Names of the containers whose creation was asked for.
    attempted: Vec<String>,
    /// Ids of the containers created.
    ids: Vec<String>,
}

enum PathKind {
    Executable,
    NotExecutable,
    Missing,
}

/// Shared by the actor and all its tasks.
struct Inner {
    config: DockerConfig,
    events: Recipient<BackendEvent>,
    /// A client whose API version has been agreed with the engine; reset on an outage.
    client: Mutex<Option<Docker>>,
    /// Whether `Unreachable` was sent and `Reachable` not yet.
    unreachable: Mutex<bool>,
    /// Serializes network creation (old engines do not refuse duplicate network names).
    network_lock: tokio::sync::Mutex<()>,
    reconcile_busy: AtomicBool,
    reconcile_again: AtomicBool,
    /// Counts outages; the event watcher resubscribes when it changes (an outage noticed by
    /// another call means the event stream may be dead without knowing it).
    outages: AtomicU64,
    outage_notify: tokio::sync::Notify,
    /// Counts the outcomes of starts and removals sent.
    completions: AtomicU64,
    /// Commands found runnable: (image id, program, PATH, working dir).
    runnable: Mutex<HashSet<(String, String, String, String)>>,
    /// Engine calls in flight (bounded by `max_calls`).
    calls: tokio::sync::Semaphore,
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

    fn mark_unreachable(&self, error: &str) {
        *lock(&self.client) = None;
        let first = {
            let mut u = lock(&self.unreachable);
            !std::mem::replace(&mut *u, true)
        };
        if first {
            self.outages.fetch_add(1, Ordering::SeqCst);
            self.outage_notify.notify_waiters();
            warn!(error, "Docker is unreachable");
            let error = if error.starts_with("cannot reach Docker") {
                error.to_string()
            } else {
                format!("cannot reach Docker: {error}")
            };
            self.send(BackendEvent::Unreachable { error });
        }
    }

    fn mark_reachable(&self) {
        let was_unreachable = std::mem::replace(&mut *lock(&self.unreachable), false);
        if was_unreachable {
            info!("Docker answers again");
            self.send(BackendEvent::Reachable);
        }
    }

    /// Runs one Docker call under a time limit, once one of the `max_calls` turns is free, and
    /// keeps track of Docker's reachability.
    async fn call<T>(
        &self,
        what: &str,
        limit: Duration,
        fut: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<T, CallError> {
        let _turn = self.calls.acquire().await.map_err(|_| CallError::Other("the Docker actor is stopping".into()))?;
        self.timed(what, limit, fut).await
    }

    /// Runs one Docker call under a time limit, without taking a turn (the caller has one).
    async fn timed<T>(
        &self,
        what: &str,
        limit: Duration,
        fut: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<T, CallError> {
        match tokio::time::timeout(limit, fut).await {
            Err(_) => Err(CallError::Timeout { what: what.to_string(), after: limit }),
            Ok(Ok(v)) => {
                self.mark_reachable();
                Ok(v)
            }
            Ok(Err(e)) => {
                let e = classify(e);
                match &e {
                    CallError::Unreachable(m) => self.mark_unreachable(m),
                    _ => self.mark_reachable(),
                }
                Err(e)
            }
        }
    }

    /// A client that speaks an API version the engine accepts.
    async fn ready(&self) -> Result<Docker, CallError> {
        let cached = lock(&self.client).clone();
        if let Some(docker) = cached {
            return Ok(docker);
        }
        let docker = self.connect_with(API_DEFAULT_VERSION)?;
        let docker = self.negotiate(docker).await?;
        *lock(&self.client) = Some(docker.clone());
        Ok(docker)
    }

    fn connect_with(&self, version: &ClientVersion) -> Result<Docker, CallError> {
        connect(self.config.docker_host.as_deref(), version).map_err(|e| {
            let e = classify(e);
            if let CallError::Unreachable(m) = &e {
                self.mark_unreachable(m);
            }
            e
        })
    }

    /// bollard's own negotiation asks with its newest version, which older engines refuse
    /// ("client version 1.53 is too new"); this one reads the engine's maximum from that refusal.
    async fn negotiate(&self, docker: Docker) -> Result<Docker, CallError> {
        let what = "asking Docker for its API version";
        let limit = self.config.call_timeout;
        match self.call(what, limit, docker.version()).await {
            Ok(v) => {
                let server = v.api_version.as_deref().and_then(parse_api_version);
                match server {
                    Some(server) if server < docker.client_version() => self.connect_with(&server),
                    _ => Ok(docker),
                }
            }
            Err(CallError::Api { status: 400, message }) => {
                let server = message.split("Maximum supported API version is ").nth(1).and_then(parse_api_version);
                match server {
                    Some(server) => {
                        let docker = self.connect_with(&server)?;
                        self.call(what, limit, docker.version()).await?;
                        debug!(version = %server, "using an older Docker API version");
                        Ok(docker)
                    }
                    None => Err(CallError::Api { status: 400, message }),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn deployment_filter(&self) -> HashMap<String, Vec<String>> {
        label_filter(&[(LABEL_DEPLOYMENT, self.config.deployment_name.clone())])
    }

    fn stop_options(&self) -> StopContainerOptions {
        let grace = self.config.stop_grace;
        let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        StopContainerOptions { signal: None, t: Some(i32::try_from(secs).unwrap_or(i32::MAX)) }
    }

    // -------------------------------------------------------------------------------- start

    async fn start_execution(self: Arc<Self>, msg: StartExecution) {
        let execution_id = msg.execution_id;
        info!(execution_id, containers = msg.containers.len(), "starting execution");
        let control = Arc::new(StartControl::default());
        let guard = control.running.lock().await;
        lock(&self.starts).insert(execution_id, control.clone());
        let mut created = Created::default();
        let outcome = match self.ready().await {
            Ok(docker) => self.try_start(&docker, &msg, &control, &mut created).await,
            Err(e) => Err(Failure::call(e, |e| e.to_string())),
        };
        let event = match outcome {
            Ok(containers) => {
                info!(execution_id, "execution started");
                BackendEvent::ExecutionStarted { execution_id, containers }
            }
            Err(failure) => {
                warn!(execution_id, error = failure.message, "execution failed to start");
                let error = match self.cleanup_failed_start(&msg, &created).await {
                    Ok(()) => failure.message,
                    Err(cleanup) => format!("{} (and cleaning up failed: {cleanup})", failure.message),
                };
                BackendEvent::ExecutionStartFailed { execution_id, error, transient: failure.transient }
            }
        };
        lock(&self.starts).remove(&execution_id);
        drop(guard);
        self.send_outcome(event);
    }

    /// Cancels the start of an execution, if one is under way, and waits until it has cleaned
    /// up after itself: no container of it is created after this returns.
    async fn cancel_start(&self, execution_id: u64) {
        let control = lock(&self.starts).get(&execution_id).cloned();
        if let Some(control) = control {
            info!(execution_id, "cancelling the start under way");
            control.cancelled.store(true, Ordering::SeqCst);
            let _ = control.running.lock().await;
        }
    }

    async fn try_start(
        &self,
        docker: &Docker,
        msg: &StartExecution,
        control: &StartControl,
        created: &mut Created,
    ) -> Result<Vec<StartedContainer>, Failure> {
        self.ensure_network(docker, &msg.network, &msg.owner).await?;
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

    async fn ensure_network(&self, docker: &Docker, network: &str, owner: &str) -> Result<(), Failure> {
        let _guard = self.network_lock.lock().await;
        let limit = self.config.call_timeout;
        let inspect = self
            .call(
                &format!("looking for network {network}"),
                limit,
                docker.inspect_network(network, None::<InspectNetworkOptions>),
            )
            .await;
        match inspect {
            Ok(_) => return Ok(()),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(Failure::call(e, |e| format!("cannot inspect network {network}: {e}"))),
        }
        let request = NetworkCreateRequest {
            name: network.to_string(),
            driver: Some("bridge".to_string()),
            labels: Some(HashMap::from([
                (LABEL_DEPLOYMENT.to_string(), self.config.deployment_name.clone()),
                (LABEL_OWNER.to_string(), owner.to_string()),
            ])),
            ..Default::default()
        };
        match self.call(&format!("creating network {network}"), limit, docker.create_network(request)).await {
            Ok(_) => {
                info!(network, "created network");
                Ok(())
            }
            Err(e) if e.is_conflict() => Ok(()),
            Err(e) => Err(Failure::call(e, |e| format!("cannot create network {network}: {e}"))),
        }
    }

    async fn ensure_image(&self, docker: &Docker, image: &str) -> Result<ImageInspect, Failure> {
        let limit = self.config.call_timeout;
        let what = format!("inspecting image {image}");
        match self.call(&what, limit, docker.inspect_image(image)).await {
            Ok(i) => return Ok(i),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(Failure::call(e, |e| format!("cannot inspect image \"{image}\": {e}"))),
        }
        info!(image, "image missing, pulling it");
        let not_pulled = |reason: String| {
            format!("image \"{image}\" is not present on this engine and could not be pulled: {reason}")
        };
        self.pull(docker, image).await.map_err(|e| Failure::call(e, |e| not_pulled(pull_reason(e))))?;
        self.call(&what, limit, docker.inspect_image(image))
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
        self.call(&format!("pulling image {image}"), limit, pulling).await
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
        let limit = self.config.call_timeout;
        let mut binds = Vec::new();
        if let Some(ws) = spec.workspace.clone() {
            let bind = tokio::task::spawn_blocking(move || crate::workspace::prepare(&ws))
                .await
                .map_err(|e| format!("the workspace task failed: {e}"))??;
            binds.push(bind);
        }
        let body = self.create_body(msg, spec, binds)?;
        if control.cancelled.load(Ordering::SeqCst) {
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
        self.call(
            &format!("starting container {name}"),
            limit,
            docker.start_container(&id, None::<StartContainerOptions>),
        )
        .await
        .map_err(|e| Failure::call(e, |e| format!("cannot start container {name}: {e}")))?;
        let info = self
            .call(
                &format!("inspecting container {name}"),
                limit,
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
            nano_cpus: Some(spec.nano_cpus),
            pids_limit: Some(c.pids_limit),
            network_mode: Some(msg.network.clone()),
            init: Some(true),
            privileged: Some(false),
            cap_drop: Some(vec!["ALL".to_string()]),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            binds: (!binds.is_empty()).then_some(binds),
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
        let limit = self.config.call_timeout;
        let what = format!("creating container {name}");
        let options = || CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
        let failed = |e: CallError| Failure::call(e, |e| format!("cannot create container {name}: {e}"));
        match self.call(&what, limit, docker.create_container(Some(options()), body.clone())).await {
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
        self.call(&what, limit, docker.create_container(Some(options()), body)).await.map(|r| r.id).map_err(failed)
    }

    /// The id of the container with this name if it carries this deployment's and this
    /// execution's labels.
    async fn belongs_to(&self, docker: &Docker, name: &str, execution_id: u64) -> Result<Option<String>, CallError> {
        let inspect = self
            .call(
                &format!("inspecting container {name}"),
                self.config.call_timeout,
                docker.inspect_container(name, None::<InspectContainerOptions>),
            )
            .await;
        let info = match inspect {
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

    /// With `Init` on, a command that cannot be executed does not make the start fail: the
    /// init process starts and then exits with 127. So the program the container will run (the
    /// image's entrypoint, else the given command, else the image's command) is looked up in the
    /// created container's filesystem first, the way the runtime would.
    async fn check_command(
        &self,
        docker: &Docker,
        id: &str,
        spec: &ContainerSpec,
        image: &ImageInspect,
    ) -> Result<(), String> {
        let config = image.config.as_ref();
        let first = |v: Option<&Vec<String>>| v.and_then(|v| v.first()).cloned();
        let entrypoint = first(config.and_then(|c| c.entrypoint.as_ref()));
        let given = first(spec.cmd.as_ref());
        let image_cmd = first(config.and_then(|c| c.cmd.as_ref()));
        let (prog, whose) = match (entrypoint, given, image_cmd) {
            (Some(p), _, _) => (p, " (the image's entrypoint)"),
            (None, Some(p), _) => (p, ""),
            (None, None, Some(p)) => (p, " (the image's command)"),
            (None, None, None) => return Ok(()),
        };
        let prog = &prog;
        let env_path = |env: &[String]| env.iter().rev().find_map(|e| e.strip_prefix("PATH=").map(str::to_string));
        let path_var = env_path(&spec.env)
            .or_else(|| config.and_then(|c| c.env.as_deref()).and_then(env_path))
            .unwrap_or_else(|| DEFAULT_PATH.to_string());
        let workdir =
            config.and_then(|c| c.working_dir.clone()).filter(|w| !w.is_empty()).unwrap_or_else(|| "/".to_string());
        let candidates: Vec<String> = if prog.contains('/') {
            vec![absolute_in(&workdir, prog)]
        } else {
            path_var
                .split(':')
                .filter(|d| !d.is_empty())
                .map(|d| absolute_in(&workdir, &format!("{}/{prog}", d.trim_end_matches('/'))))
                .collect()
        };
        // Images do not change under their id: a program found in one stays there. (Unless it
        // was found in the workspace, which is mounted and may change.)
        let key =
            (image.id.clone().unwrap_or_else(|| spec.image.clone()), prog.clone(), path_var.clone(), workdir.clone());
        if lock(&self.runnable).contains(&key) {
            return Ok(());
        }
        // Every place the program may be is looked at concurrently; the first in PATH order
        // decides, as it would for the shell.
        let kinds = futures_util::future::join_all(candidates.iter().map(|c| self.path_kind(docker, id, c))).await;
        for (kind, candidate) in kinds.into_iter().zip(&candidates) {
            match kind {
                Ok(PathKind::Executable) => {
                    let mounted = spec.workspace.as_ref().is_some_and(|w| candidate.starts_with(w.container.as_str()));
                    if !mounted {
                        lock(&self.runnable).insert(key);
                    }
                    return Ok(());
                }
                Ok(PathKind::NotExecutable) if prog.contains('/') => {
                    return Err(format!(
                        "container {}: cannot run \"{prog}\"{whose}: it is not an executable file",
                        spec.name
                    ))
                }
                Ok(PathKind::NotExecutable | PathKind::Missing) => {}
                Err(e) => {
                    // Not a verdict: let the runtime decide.
                    debug!(container = spec.name, error = %e, "cannot check the command");
                    return Ok(());
                }
            }
        }
        if prog.contains('/') {
            Err(format!(
                "container {}: cannot run \"{prog}\"{whose}: no such file in image \"{}\"",
                spec.name, spec.image
            ))
        } else {
            Err(format!(
                "container {}: executable \"{prog}\"{whose} was not found in $PATH ({path_var}) \
                 of image \"{}\"",
                spec.name, spec.image
            ))
        }
    }

    /// What is at `path` in the container's filesystem, following symbolic links.
    async fn path_kind(&self, docker: &Docker, id: &str, path: &str) -> Result<PathKind, CallError> {
        let mut path = path.to_string();
        for _ in 0..16 {
            let options = ContainerArchiveInfoOptions { path: path.clone() };
            let stat = self
                .call(
                    &format!("looking for {path} in the container"),
                    self.config.call_timeout,
                    docker.get_container_archive_info(id, Some(options)),
                )
                .await;
            let stat = match stat {
                Ok(s) => s,
                Err(e) if e.is_not_found() => return Ok(PathKind::Missing),
                Err(e) => return Err(e),
            };
            let mode = stat.file_mode;
            if mode & MODE_SYMLINK != 0 && !stat.link_target.is_empty() {
                let dir = match path.rfind('/') {
                    Some(0) | None => "/".to_string(),
                    Some(i) => path[..i].to_string(),
                };
                path = absolute_in(&dir, &stat.link_target);
                continue;
            }
            if mode & MODE_DIR != 0 || mode & MODE_TYPE != 0 || mode & 0o111 == 0 {
                return Ok(PathKind::NotExecutable);
            }
            return Ok(PathKind::Executable);
        }
        Ok(PathKind::NotExecutable)
    }

    /// Catches the init process's report of a command it could not execute.
    async fn check_exec_failure(
        &self,
        docker: &Docker,
        id: &str,
        name: &str,
        info: &ContainerInspectResponse,
    ) -> Result<(), String> {
        let Some(state) = &info.state else {
            return Ok(());
        };
        if state.running.unwrap_or(false) || !matches!(state.exit_code, Some(126 | 127)) {
            return Ok(());
        }
        let Ok((log, _)) = self.read_log(docker, id, 20, 4096).await else {
            return Ok(());
        };
        let text = String::from_utf8_lossy(&log);
        match text.lines().find(|l| l.contains("[FATAL tini")) {
            Some(line) => {
                let reason = line.split_once("] ").map_or(line, |(_, r)| r).trim();
                Err(format!("container {name}: the command could not be run: {reason}"))
            }
            None => Ok(()),
        }
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
    /// out on our side may still have happened), and anything else labelled with this execution.
    async fn cleanup_failed_start(&self, msg: &StartExecution, created: &Created) -> Result<(), String> {
        if created.attempted.is_empty() {
            return Ok(());
        }
        let docker = self.ready().await.map_err(|e| e.to_string())?;
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
        match self.list_execution(&docker, msg.execution_id).await {
            Ok(list) => ids.extend(list.into_iter().filter_map(|c| c.id)),
            Err(e) => errors.push(format!("cannot list the execution's containers: {e}")),
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

    async fn list_execution(&self, docker: &Docker, execution_id: u64) -> Result<Vec<ContainerSummary>, CallError> {
        let filters = label_filter(&[
            (LABEL_DEPLOYMENT, self.config.deployment_name.clone()),
            (LABEL_EXECUTION_ID, execution_id.to_string()),
        ]);
        let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        self.call(
            &format!("listing the containers of execution {execution_id}"),
            self.config.call_timeout,
            docker.list_containers(Some(options)),
        )
        .await
    }

    /// Force-removes a container; a missing one, or one already being removed, is fine.
    async fn force_remove(&self, docker: &Docker, container: &str) -> Result<(), CallError> {
        let options = RemoveContainerOptions { force: true, v: false, link: false };
        let result = self
            .call(
                &format!("removing container {container}"),
                self.config.call_timeout,
                docker.remove_container(container, Some(options)),
            )
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(CallError::Api { status: 409, message }) if message.contains("already in progress") => Ok(()),
            Err(e) => Err(e),
        }
    }

    // ------------------------------------------------------------------------------- remove

    async fn remove_execution(self: Arc<Self>, msg: RemoveExecution) {
        let execution_id = msg.execution_id;
        info!(execution_id, "removing execution");
        self.cancel_start(execution_id).await;
        let error = match self.ready().await {
            Ok(docker) => self.clone().remove_execution_containers(docker, &msg).await.err(),
            Err(e) => Some(e.to_string()),
        };
        if let Some(error) = &error {
            warn!(execution_id, error, "execution not entirely removed");
        }
        self.send_outcome(BackendEvent::ExecutionRemoved { execution_id, error });
    }

    async fn remove_execution_containers(self: Arc<Self>, docker: Docker, msg: &RemoveExecution) -> Result<(), String> {
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
        let results: Vec<Result<(), String>> = futures_util::stream::iter(targets)
            .map(|(container, service_id)| {
                let docker = docker.clone();
                let inner = self.clone();
                async move { inner.stop_and_remove(&docker, &container, service_id).await }
            })
            .buffer_unordered(REMOVE_BATCH)
            .collect()
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
                self.timed(
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

    /// Reads the last `lines` lines of a log, keeping at most `max_bytes` of its end. Returns
    /// the bytes and how many line ends were seen.
    async fn read_log(
        &self,
        docker: &Docker,
        container: &str,
        lines: usize,
        max_bytes: usize,
    ) -> Result<(Vec<u8>, usize), CallError> {
        let options =
            LogsOptions { follow: false, stdout: true, stderr: true, tail: lines.to_string(), ..Default::default() };
        let reading = async {
            let mut buf: Vec<u8> = Vec::new();
            let mut newlines = 0usize;
            let mut stream = docker.logs(container, Some(options));
            while let Some(item) = stream.next().await {
                let chunk = item?.into_bytes();
                newlines += chunk.iter().filter(|b| **b == b'\n').count();
                buf.extend_from_slice(&chunk);
                if buf.len() > max_bytes.saturating_mul(2).max(64 * 1024) {
                    let cut = buf.len() - max_bytes;
                    buf.drain(..cut);
                }
            }
            if buf.len() > max_bytes {
                let cut = buf.len() - max_bytes;
                buf.drain(..cut);
            }
            Ok::<_, BollardError>((buf, newlines))
        };
        self.call(&format!("reading the log of container {container}"), self.config.call_timeout, reading).await
    }

    /// Keeps the last `log_tail_bytes` of the container's log in `<log_dir>/<service_id>.log`.
    /// Docker can only cut a log by lines, so this asks for a few lines first and for more only
    /// when they do not add up to enough bytes.
    async fn save_log_tail(&self, docker: &Docker, container: &str, service_id: u64) -> Result<(), String> {
        let max = self.config.log_tail_bytes;
        if max == 0 {
            return Ok(());
        }
        let mut lines = (max / 64).clamp(100, max);
        let tail = loop {
            let (buf, seen) = self.read_log(docker, container, lines, max).await.map_err(|e| e.to_string())?;
            // Every line takes at least one byte, so `max` lines always hold `max` bytes.
            if buf.len() >= max || seen < lines || lines >= max {
                break buf;
            }
            let estimate = max.saturating_mul(lines) / buf.len().max(1);
            lines = estimate.saturating_add(estimate / 4).max(lines.saturating_mul(2)).min(max);
        };
        let dir = self.config.log_dir.clone();
        let written = tokio::task::spawn_blocking(move || write_log_file(&dir, service_id, &tail))
            .await
            .map_err(|e| format!("the log writer failed: {e}"))?;
        written?;
        debug!(container, service_id, "kept the log tail");
        Ok(())
    }

    /// Removes orphan containers, a batch at a time.
    async fn remove_containers(self: Arc<Self>, msg: RemoveContainers) {
        let docker = match self.ready().await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "cannot remove orphan containers");
                return;
            }
        };
        let results: Vec<(String, Result<(), String>)> = futures_util::stream::iter(msg.names_or_ids)
            .map(|container| {
                let docker = docker.clone();
                let inner = self.clone();
                async move {
                    let result = inner.stop_and_remove(&docker, &container, None).await;
                    (container, result)
                }
            })
            .buffer_unordered(REMOVE_BATCH)
            .collect()
            .await;
        for (container, result) in results {
            match result {
                Ok(()) => info!(container, "removed orphan container"),
                Err(e) => warn!(error = e, "cannot remove orphan container"),
            }
        }
    }

    async fn remove_network(&self, msg: RemoveNetwork) {
        let network = msg.network;
        let docker = match self.ready().await {
            Ok(d) => d,
            Err(e) => {
                warn!(network, error = %e, "cannot remove network");
                return;
            }
        };
        let result = self
            .call(&format!("removing network {network}"), self.config.call_timeout, docker.remove_network(&network))
            .await;
        match result {
            Ok(()) => info!(network, "removed network"),
            Err(e) if e.is_not_found() => {}
            Err(e) => warn!(network, error = %e, "cannot remove network"),
        }
    }

    // ---------------------------------------------------------------------------- reconcile

    /// Runs a reconciliation, or makes the running one go around once more.
    fn request_reconcile(self: &Arc<Self>) {
        self.reconcile_again.store(true, Ordering::SeqCst);
        if !self.reconcile_busy.swap(true, Ordering::SeqCst) {
            let inner = self.clone();
            actix::spawn(async move {
                loop {
                    inner.reconcile_again.store(false, Ordering::SeqCst);
                    inner.reconcile_once().await;
                    if inner.reconcile_again.load(Ordering::SeqCst) {
                        continue;
                    }
                    inner.reconcile_busy.store(false, Ordering::SeqCst);
                    // A request may have come between the check and the release.
                    if inner.reconcile_again.load(Ordering::SeqCst)
                        && !inner.reconcile_busy.swap(true, Ordering::SeqCst)
                    {
                        continue;
                    }
                    break;
                }
            });
        }
    }

    /// Takes an inventory and sends it, then the engine's info.
    ///
    /// An inventory must not be older than an outcome sent before it: a list taken while a start
    /// was creating containers, delivered after that start's `ExecutionStarted`, would show
    /// containers as missing that exist. So when a start or removal reports its outcome while an
    /// inventory is being taken, the inventory is taken again (and skipped after a few tries; the
    /// next one will do).
    async fn reconcile_once(&self) {
        let docker = match self.ready().await {
            Ok(d) => d,
            Err(e) => {
                debug!(error = %e, "inventory skipped");
                return;
            }
        };
        let mut sent = false;
        for _ in 0..INVENTORY_ATTEMPTS {
            let completions = self.completions.load(Ordering::SeqCst);
            let Some(containers) = self.take_inventory(&docker).await else {
                return;
            };
            if self.completions.load(Ordering::SeqCst) == completions {
                self.send(BackendEvent::Inventory { containers });
                sent = true;
                break;
            }
            debug!("a start or removal ended while taking the inventory; taking it again");
        }
        if !sent {
            debug!("inventory skipped: starts and removals kept ending meanwhile");
            return;
        }
        let limit = self.config.call_timeout;
        match self.call("reading the engine's info", limit, docker.info()).await {
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
                self.send(BackendEvent::Platform(PlatformInfo {
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
        let limit = self.config.call_timeout;
        let options =
            ListContainersOptions { all: true, filters: Some(self.deployment_filter()), ..Default::default() };
        let list = match self.call("listing containers", limit, docker.list_containers(Some(options))).await {
            Ok(l) => l,
            Err(e) => {
                if let CallError::Timeout { .. } = e {
                    self.mark_unreachable(&e.to_string());
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
                let inspect = self
                    .call(
                        &format!("inspecting container {docker_id}"),
                        limit,
                        docker.inspect_container(&docker_id, None::<InspectContainerOptions>),
                    )
                    .await;
                match inspect {
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

    // --------------------------------------------------------------------------------- logs

    async fn service_logs(&self, msg: ServiceLogs) -> Result<LogStream, String> {
        let docker = self.ready().await.map_err(|e| e.to_string())?;
        let container = msg.container;
        let limit = self.config.call_timeout;
        let inspect = self
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
        let (tx, rx) = tokio::sync::mpsc::channel(LOG_CHANNEL_CAPACITY);
        let follow = msg.follow;
        actix::spawn(async move {
            let mut stream = docker.logs(&container, Some(options));
            loop {
                let item = tokio::select! {
                    _ = tx.closed() => break,
                    item = next_with_limit(&mut stream, (!follow).then_some(limit)) => item,
                };
                let out = match item {
                    Ok(Some(Ok(chunk))) => Ok(chunk.into_bytes().to_vec()),
                    Ok(Some(Err(e))) => Err(classify(e).to_string()),
                    Ok(None) => break,
                    Err(()) => Err(format!("Docker sent nothing for {} while reading the log", human_duration(limit))),
                };
                let last = out.is_err();
                if tx.send(out).await.is_err() || last {
                    break;
                }
            }
        });
        Ok(rx)
    }
}

/// The next item of a stream, optionally within a time limit (`Err(())` when it passed).
async fn next_with_limit<S: futures_util::Stream + Unpin>(
    stream: &mut S,
    limit: Option<Duration>,
) -> Result<Option<S::Item>, ()> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, stream.next()).await.map_err(|_| ()),
        None => Ok(stream.next().await),
    }
}

/// `path` made absolute relative to `dir`, with `.` and `..` resolved.
fn absolute_in(dir: &str, path: &str) -> String {
    let joined = if path.starts_with('/') { path.to_string() } else { format!("{}/{path}", dir.trim_end_matches('/')) };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Writes a log tail durably and privately (logs may hold secrets): mode 0600 in a 0700
/// directory.
fn write_log_file(dir: &Path, service_id: u64, data: &[u8]) -> Result<(), String> {
    zoe_checkpoints::private_dir(dir).map_err(|e| format!("cannot create the log directory {}: {e}", dir.display()))?;
    let path = dir.join(format!("{service_id}.log"));
    zoe_checkpoints::write_atomic(&path, data).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

// ------------------------------------------------------------------------------------ watching

/// Follows the engine's container events for the deployment for as long as the actor lives,
/// reconnecting with exponential backoff. After a reconnection it asks the engine to replay what
/// happened since the last event seen (the engine keeps a short history; duplicates are
/// dropped), and takes an inventory for whatever is beyond that history.
async fn watch_events(inner: Arc<Inner>) {
    let mut backoff = BACKOFF_MIN;
    let mut first = true;
    // Where to resume: the time of the last event seen, or the engine's clock when first
    // connected (anything the engine accepts as `since`).
    let mut since: Option<String> = None;
    let mut recent: VecDeque<(i64, String, String)> = VecDeque::new();
    let mut oom_seen: HashSet<String> = HashSet::new();
    loop {
        let limit = inner.config.call_timeout;
        let connected = match inner.ready().await {
            Ok(docker) => inner.call("pinging Docker", limit, docker.ping()).await.map(|_| docker),
            Err(e) => Err(e),
        };
        let docker = match connected {
            Ok(d) => d,
            Err(e) => {
                inner.mark_unreachable(&e.to_string());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        if since.is_none() {
            match inner.call("reading the engine's clock", limit, docker.info()).await {
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
        let outages = inner.outages.load(Ordering::SeqCst);
        let error = loop {
            // Created before the check so that no notification is missed.
            let outage = inner.outage_notify.notified();
            if inner.outages.load(Ordering::SeqCst) != outages {
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
            Some(error) => inner.mark_unreachable(&error),
            None => debug!("resubscribing to Docker events"),
        }
        if subscribed_at.elapsed() > BACKOFF_MAX {
            backoff = BACKOFF_MIN;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
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
                let inspect = self
                    .call(
                        &format!("inspecting container {id}"),
                        self.config.call_timeout,
                        docker.inspect_container(&id, None::<InspectContainerOptions>),
                    )
                    .await;
                match inspect {
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
                self.send(BackendEvent::ContainerExited {
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
    fn plain_messages() {
        assert_eq!(
            plain_docker_message(
                "failed to create shim task: OCI runtime create failed: runc create failed: \
                 unable to start container process: exec: \"nosuchcmd\": executable file not \
                 found in $PATH: unknown"
            ),
            "executable \"nosuchcmd\" was not found in $PATH"
        );
        assert_eq!(
            plain_docker_message(
                "failed to create shim task: OCI runtime create failed: runc create failed: \
                 unable to start container process: exec: \"/etc/passwd\": permission denied: unknown"
            ),
            "cannot run \"/etc/passwd\": permission denied"
        );
        assert_eq!(plain_docker_message("No such image: foo:1"), "No such image: foo:1");
        assert_eq!(
            plain_docker_message(
                "driver failed programming external connectivity on endpoint x: Bind for \
                 127.0.0.1:80 failed: port is already allocated"
            ),
            "driver failed programming external connectivity on endpoint x: Bind for \
             127.0.0.1:80 failed: port is already allocated"
        );
    }

    #[test]
    fn api_versions() {
        let v = parse_api_version("1.41").map(|v| (v.major_version, v.minor_version));
        assert_eq!(v, Some((1, 41)));
        let v = parse_api_version(" 1.24 and more").map(|v| (v.major_version, v.minor_version));
        assert_eq!(v, Some((1, 24)));
        assert!(parse_api_version("x").is_none());
    }

    #[test]
    fn timestamps() {
        assert_eq!(unix_timestamp("2026-11-25T08:53:34.194755065Z").as_deref(), Some("1795596814.194755065"));
        assert_eq!(unix_timestamp("1970-01-01T00:00:01Z").as_deref(), Some("1.000000000"));
        assert_eq!(timestamp_from_nanos(1_500_000_000), "1.500000000");
        assert!(unix_timestamp("yesterday").is_none());
    }

    #[test]
    fn paths() {
        assert_eq!(absolute_in("/", "bin/sh"), "/bin/sh");
        assert_eq!(absolute_in("/usr/bin", "../lib/x"), "/usr/lib/x");
        assert_eq!(absolute_in("/app", "./run.sh"), "/app/run.sh");
        assert_eq!(absolute_in("/app", "/bin/busybox"), "/bin/busybox");
    }

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
