//! How a back end reaches Docker and what it does with containers: one configuration for both
//! back ends (the Swarm back end also reads `constraints`), checked before anything starts.

use std::path::PathBuf;
use std::time::Duration;

/// The files of TLS with client certificates (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The authority the endpoint's certificate must be signed by.
    pub ca: PathBuf,
    /// Zoe's client certificate and its key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The relays of a Swarm's user networks (see [`crate::relay`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// The image of `zoe relay` (`deploy/relay-image.sh`), present on every node.
    pub image: String,
    /// The master's secret, from which each network's key is derived.
    pub secret: crate::relay::Secret,
}

/// How the Docker actor reaches Docker and what it does with containers.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// `None`: the local Unix socket `/var/run/docker.sock`. Otherwise `unix:///path`,
    /// `tcp://host:port` or `http://host:port` (with `tls`: HTTPS to that host and port).
    pub docker_host: Option<String>,
    /// TLS with client certificates to a `tcp://` endpoint.
    pub tls: Option<TlsFiles>,
    /// Allow a plain `tcp://` endpoint that is not on this machine.
    pub insecure: bool,
    /// Swarm placement constraints (the Swarm back end only).
    pub constraints: Vec<String>,
    /// The relays that let the master reach services on a Swarm (the Swarm back end only;
    /// without them, the proxy reaches nothing there).
    pub relay: Option<RelaySettings>,
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
    /// How many bytes of kept logs there may be in all; the oldest go first.
    pub log_keep_bytes: u64,
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
    /// stop grace, ports published on 127.0.0.1, logs in `./logs` (1 MiB tails, 1 GiB in all), inventory
    /// every 10 s, 1024 processes and 2 x 10 MiB of log per container.
    pub fn new(deployment_name: impl Into<String>) -> Self {
        DockerConfig {
            docker_host: None,
            tls: None,
            insecure: false,
            constraints: Vec::new(),
            relay: None,
            deployment_name: deployment_name.into(),
            call_timeout: Duration::from_secs(30),
            pull_timeout: Duration::from_secs(600),
            stop_grace: Duration::from_secs(10),
            publish_address: "127.0.0.1".to_string(),
            log_dir: PathBuf::from("logs"),
            log_tail_bytes: 1 << 20,
            log_keep_bytes: 1 << 30,
            reconcile_interval: Duration::from_secs(10),
            max_calls: 8,
            pids_limit: 1024,
            log_max_bytes: 10 << 20,
            log_max_files: 2,
        }
    }
}

pub(crate) fn validate_config(config: &DockerConfig) -> Result<(), String> {
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
                 tcp://host:port or http://host:port"
            ));
        }
    }
    let tcp = config.docker_host.as_deref().and_then(|h| h.strip_prefix("tcp://").or(h.strip_prefix("http://")));
    match (&config.tls, tcp) {
        (Some(_), None) => {
            return Err("TLS to Docker needs a tcp://host:port endpoint (--docker-host)".to_string());
        }
        (Some(tls), Some(_)) => {
            for (what, path) in [("CA", &tls.ca), ("certificate", &tls.cert), ("key", &tls.key)] {
                if let Err(e) = std::fs::metadata(path) {
                    return Err(format!("the Docker TLS {what} {} cannot be read: {e}", path.display()));
                }
            }
        }
        (None, Some(addr)) if !config.insecure && !is_loopback(addr) => {
            return Err(format!(
                "the Docker endpoint {} is plain TCP on another machine: anyone who reaches that port is root on it \
                 and on every container. Use TLS (--docker-tls-ca, --docker-tls-cert, --docker-tls-key), or \
                 --docker-insecure on a network you trust",
                config.docker_host.as_deref().unwrap_or_default()
            ));
        }
        _ => {}
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
    if config.log_tail_bytes as u64 > config.log_keep_bytes {
        return Err(format!(
            "the log tail kept of each container ({} bytes) is larger than the budget of all kept logs ({} bytes)",
            config.log_tail_bytes, config.log_keep_bytes
        ));
    }
    if !config.publish_address.is_empty() && config.publish_address.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("the publish address {:?} is not an IP address", config.publish_address));
    }
    Ok(())
}

/// Whether `host:port` names this machine (a loopback address or `localhost`).
fn is_loopback(addr: &str) -> bool {
    let host = addr.trim_end_matches('/');
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
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

    #[test]
    fn plain_tcp_to_another_machine_needs_tls_or_a_clear_choice() {
        let mut c = DockerConfig::new("dev");
        for local in ["tcp://127.0.0.1:2375", "tcp://localhost:2375", "http://[::1]:2375", "tcp://127.0.0.2:1"] {
            c.docker_host = Some(local.to_string());
            assert!(validate_config(&c).is_ok(), "{local}");
        }
        c.docker_host = Some("tcp://10.77.0.11:2375".to_string());
        let e = validate_config(&c).unwrap_err();
        assert!(e.contains("root") && e.contains("--docker-tls-ca") && e.contains("--docker-insecure"), "{e}");
        c.insecure = true;
        assert!(validate_config(&c).is_ok());
        c.insecure = false;
        c.tls = Some(TlsFiles { ca: "/nonexistent/ca.pem".into(), cert: "/x".into(), key: "/y".into() });
        assert!(validate_config(&c).unwrap_err().contains("CA /nonexistent/ca.pem cannot be read"));
        c.docker_host = None;
        assert!(validate_config(&c).unwrap_err().contains("tcp://host:port"));
    }
}
