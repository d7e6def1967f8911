//! The connection to one Docker API endpoint, shared by every back end.
//!
//! A [`Client`] agrees on an API version with the engine (older engines refuse bollard's newest),
//! bounds every call (at most `max_calls` in flight at once, each within a time limit), and keeps
//! track of whether Docker can be reached: the first failure to reach it sends
//! `BackendEvent::Unreachable`, the first answer after that `BackendEvent::Reachable`. A failed
//! call is a [`CallError`], whose text is meant for users.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use actix::Recipient;
use bollard::errors::Error as BollardError;
use bollard::{ClientVersion, Docker, API_DEFAULT_VERSION};
use tracing::{debug, info, warn};

use super::config::{DockerConfig, TlsFiles};
use crate::protocol::BackendEvent;

const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// bollard's own timeout (response headers only); ours are tighter and per call.
const BOLLARD_TIMEOUT_SECS: u64 = 3600;

/// A failed Docker call.
#[derive(Debug)]
pub(crate) enum CallError {
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
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, CallError::Timeout { .. } | CallError::Unreachable(_))
    }

    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, CallError::Api { status: 404, .. })
    }

    pub(crate) fn is_conflict(&self) -> bool {
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

pub(crate) fn classify(e: BollardError) -> CallError {
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

pub(crate) fn human_duration(d: Duration) -> String {
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
pub(crate) fn pull_reason(e: &CallError) -> String {
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
pub(crate) fn plain_docker_message(message: &str) -> String {
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

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn connect(host: Option<&str>, tls: Option<&TlsFiles>, version: &ClientVersion) -> Result<Docker, BollardError> {
    if let (Some(tls), Some(h)) = (tls, host) {
        // HTTPS to the same host and port, the endpoint's certificate checked against `ca`.
        let addr = h.replacen("http://", "tcp://", 1);
        return Docker::connect_with_ssl(&addr, &tls.key, &tls.cert, &tls.ca, BOLLARD_TIMEOUT_SECS, version);
    }
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

/// The connection to one Docker API endpoint: shared by a back end's actor and all its tasks.
pub(crate) struct Client {
    /// `None`: the local Unix socket `/var/run/docker.sock`. Otherwise `unix:///path`,
    /// `tcp://host:port` or `http://host:port`.
    host: Option<String>,
    /// TLS with client certificates, to a `tcp://` host.
    tls: Option<TlsFiles>,
    /// Bound on each call (the back end's `call_timeout`).
    call_timeout: Duration,
    /// Where `Unreachable` and `Reachable` go.
    events: Recipient<BackendEvent>,
    /// A client whose API version has been agreed with the engine; reset on an outage.
    docker: Mutex<Option<Docker>>,
    /// Whether `Unreachable` was sent and `Reachable` not yet.
    unreachable: Mutex<bool>,
    /// Counts outages; the event watcher resubscribes when it changes (an outage noticed by
    /// another call means the event stream may be dead without knowing it).
    outages: AtomicU64,
    outage_notify: tokio::sync::Notify,
    /// Engine calls in flight (bounded by `max_calls`).
    calls: tokio::sync::Semaphore,
}

impl Client {
    /// Does not contact Docker: that happens on the first call. The configuration was checked
    /// by [`super::config::validate_config`].
    pub(crate) fn new(config: &DockerConfig, events: Recipient<BackendEvent>) -> Client {
        let max_calls = config.max_calls;
        Client {
            host: config.docker_host.clone(),
            tls: config.tls.clone(),
            call_timeout: config.call_timeout,
            events,
            docker: Mutex::new(None),
            unreachable: Mutex::new(false),
            outages: AtomicU64::new(0),
            outage_notify: tokio::sync::Notify::new(),
            calls: tokio::sync::Semaphore::new(max_calls.max(1)),
        }
    }

    /// How many outages there have been so far.
    pub(crate) fn outages(&self) -> u64 {
        self.outages.load(Ordering::SeqCst)
    }

    /// Completes at the next outage. Create it before reading [`Client::outages`], so that no
    /// outage is missed in between.
    pub(crate) fn outage_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.outage_notify.notified()
    }

    pub(crate) fn mark_unreachable(&self, error: &str) {
        *lock(&self.docker) = None;
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
            self.events.do_send(BackendEvent::Unreachable { error });
        }
    }

    fn mark_reachable(&self) {
        let was_unreachable = std::mem::replace(&mut *lock(&self.unreachable), false);
        if was_unreachable {
            info!("Docker answers again");
            self.events.do_send(BackendEvent::Reachable);
        }
    }

    /// Runs one Docker call under a time limit, once one of the `max_calls` turns is free, and
    /// keeps track of Docker's reachability.
    pub(crate) async fn call<T>(
        &self,
        what: &str,
        limit: Duration,
        fut: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<T, CallError> {
        let _turn = self.calls.acquire().await.map_err(|_| CallError::Other("the Docker actor is stopping".into()))?;
        self.timed(what, limit, fut).await
    }

    /// [`Client::call`] under the configured `call_timeout`: the bound of every call but a
    /// pull, a stop and what follows a stream.
    pub(crate) async fn call_bounded<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<T, CallError> {
        self.call(what, self.call_timeout, fut).await
    }

    /// Runs one Docker call under a time limit, without taking a turn (the caller has one).
    pub(crate) async fn timed<T>(
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
    pub(crate) async fn ready(&self) -> Result<Docker, CallError> {
        let cached = lock(&self.docker).clone();
        if let Some(docker) = cached {
            return Ok(docker);
        }
        let docker = self.connect_with(API_DEFAULT_VERSION)?;
        let docker = self.negotiate(docker).await?;
        *lock(&self.docker) = Some(docker.clone());
        Ok(docker)
    }

    fn connect_with(&self, version: &ClientVersion) -> Result<Docker, CallError> {
        connect(self.host.as_deref(), self.tls.as_ref(), version).map_err(|e| {
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
        match self.call_bounded(what, docker.version()).await {
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
                        self.call_bounded(what, docker.version()).await?;
                        debug!(version = %server, "using an older Docker API version");
                        Ok(docker)
                    }
                    None => Err(CallError::Api { status: 400, message }),
                }
            }
            Err(e) => Err(e),
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
}
