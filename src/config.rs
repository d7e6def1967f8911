//! The master's configuration: one struct. Each key can be given as a flag (`--state-dir`), an
//! environment variable (`ZOE_STATE_DIR`) or a key in a TOML file (`state-dir = "..."`, file named
//! by `--config`); flags win over the environment, which wins over the file, which wins over the
//! defaults.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use serde::{Deserialize, Serialize};
use zoe_actors::logic::scheduler::Policy;

/// The default password of `zoeadmin`; the master warns loudly while it is in use.
pub const DEFAULT_ADMIN_PASSWORD: &str = "changeme";

/// Settings of `zoe master`.
#[derive(Args, Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MasterConfig {
    /// TOML file with any of these settings, written as `listen-port = 4850`.
    #[arg(long, env = "ZOE_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address the REST API and web interface listen on.
    #[arg(long, env = "ZOE_LISTEN_ADDRESS", default_value = "127.0.0.1")]
    pub listen_address: String,

    /// Port the REST API and web interface listen on (0 picks a free one).
    #[arg(long, env = "ZOE_LISTEN_PORT", default_value_t = 4850)]
    pub listen_port: u16,

    /// Serve HTTPS with this certificate chain (PEM: the server's certificate first, then any
    /// intermediates); needs --tls-key. Without both, the master serves plain HTTP.
    #[arg(long, env = "ZOE_TLS_CERT", value_name = "PATH")]
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1, not encrypted) of the --tls-cert
    /// certificate. It must not be readable by every user of the host (see
    /// --tls-key-readable); readable by its group, it is used with a warning.
    #[arg(long, env = "ZOE_TLS_KEY", value_name = "PATH")]
    #[serde(default)]
    pub tls_key: Option<PathBuf>,

    /// Use a --tls-key file that every user of the host can read (with a loud warning), instead
    /// of refusing to start.
    #[arg(long, env = "ZOE_TLS_KEY_READABLE")]
    #[serde(default)]
    pub tls_key_readable: bool,

    /// Directory for checkpoints, the archive and kept logs (locked by the running master).
    #[arg(long, env = "ZOE_STATE_DIR", default_value = "./zoe-state")]
    pub state_dir: PathBuf,

    /// Name of this deployment: the last part of every container, network and execution name.
    #[arg(long, env = "ZOE_DEPLOYMENT_NAME", default_value = "dev")]
    pub deployment_name: String,

    /// Directory under which each user's workspace `<deployment>/<user>` is created.
    #[arg(long, env = "ZOE_WORKSPACE_BASE_PATH", default_value = "./zoe-workspaces")]
    pub workspace_base_path: PathBuf,

    /// Hard quota of each workspace (bytes or 10GiB...), for roles without one of their own. On
    /// one engine a workspace is a file system image of this size (writes past it fail with "No
    /// space left on device"); on a Swarm the shared storage must enforce it, and a user over it
    /// cannot start new executions.
    #[arg(long, env = "ZOE_WORKSPACE_QUOTA", default_value = "10GiB", value_parser = parse_bytes)]
    #[serde(with = "bytes")]
    pub workspace_quota: u64,

    /// Workspace quota of guests (default: `workspace-quota`).
    #[arg(long, env = "ZOE_GUEST_WORKSPACE_QUOTA", value_parser = parse_bytes)]
    #[serde(default, with = "bytes_opt")]
    pub guest_workspace_quota: Option<u64>,

    /// Workspace quota of users (default: `workspace-quota`).
    #[arg(long, env = "ZOE_USER_WORKSPACE_QUOTA", value_parser = parse_bytes)]
    #[serde(default, with = "bytes_opt")]
    pub user_workspace_quota: Option<u64>,

    /// Password of the first administrator, `zoeadmin`, set when the state is first created.
    #[arg(long, env = "ZOE_ADMIN_PASSWORD", default_value = DEFAULT_ADMIN_PASSWORD, hide_env_values = true)]
    pub admin_password: String,

    /// How many checkpoint files to keep.
    #[arg(long, env = "ZOE_KEEP_CHECKPOINTS", default_value_t = 100)]
    pub keep_checkpoints: usize,

    /// Ended executions the newest checkpoint keeps at most; older ones move to the archive
    /// (`<state-dir>/archive`), where every API still reads them.
    #[arg(long, env = "ZOE_HISTORY_KEEP", default_value_t = 500)]
    pub history_keep: usize,

    /// Ended executions also move to the archive once they ended this many seconds ago.
    #[arg(long, env = "ZOE_HISTORY_KEEP_SECONDS", default_value_t = 86_400)]
    pub history_keep_seconds: u64,

    /// An archive segment is written once this many ended executions are due (or when the
    /// oldest of them has waited an hour more); a segment holds at most 1,000.
    #[arg(long, env = "ZOE_ARCHIVE_BATCH", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub archive_batch: u64,

    /// Free space the state disk keeps: below it, changes are refused with 507
    /// `insufficient_storage` (terminations pass), so that Zoe never fills the disk itself
    /// (bytes or 64MiB...; 0: no guard).
    #[arg(long, env = "ZOE_STATE_MIN_FREE", default_value = "64MiB", value_parser = parse_bytes)]
    #[serde(with = "bytes")]
    pub state_min_free: u64,

    /// Start from checkpoint N instead of the newest (it is re-written as the new newest, once:
    /// a later start with the same setting refuses if changes were made since).
    #[arg(long, env = "ZOE_FROM_CHECKPOINT")]
    #[serde(default)]
    pub from_checkpoint: Option<u64>,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "ZOE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest application description accepted, in bytes of JSON: every description is kept
    /// in the checkpoints.
    #[arg(long, env = "ZOE_MAX_DESCRIPTION_BYTES", default_value_t = 64 * 1024)]
    pub max_description_bytes: usize,

    /// Executions a user (any role but admin) may submit per second, on average.
    #[arg(long, env = "ZOE_SUBMIT_RATE", default_value_t = 2.0)]
    pub submit_rate: f64,

    /// Executions a user may submit in a quick burst before `submit-rate` applies.
    #[arg(long, env = "ZOE_SUBMIT_BURST", default_value_t = 20)]
    pub submit_burst: u32,

    /// Followed (`?follow=true`) log streams a user may have open at once.
    #[arg(long, env = "ZOE_MAX_LOG_FOLLOWERS", default_value_t = 4)]
    pub max_log_followers: usize,

    /// Audit events (sign-ins, failed sign-ins, token creations and revocations) kept in memory
    /// for administrators, the newest; lost at a restart (the log keeps them).
    #[arg(long, env = "ZOE_AUDIT_KEEP", default_value_t = crate::audit::DEFAULT_KEEP)]
    pub audit_keep: usize,

    /// How long a verified password is remembered, in seconds (0: verify every request).
    #[arg(long, env = "ZOE_AUTH_CACHE_SECONDS", default_value_t = 60)]
    pub auth_cache_seconds: u64,

    /// How long a web session (signed in at `/login`) lasts, in hours; fractions are allowed
    /// (0.5: half an hour). It also ends at sign-out, when its user is deleted or their role or
    /// password changes, and when the master restarts.
    #[arg(long, env = "ZOE_SESSION_HOURS", default_value_t = 12.0)]
    pub session_hours: f64,

    /// New passwords (of `user-new`, `user-set`, the API and the web page) must have at least
    /// this many characters; shorter ones are refused with 400 `password_too_short`. Existing
    /// passwords keep working.
    #[arg(long, env = "ZOE_MIN_PASSWORD_LENGTH", default_value_t = 8)]
    pub min_password_length: usize,

    /// Password verifications run at once (each takes ~19 MiB and a core for a moment; 0: one
    /// per core). Further logins wait their turn.
    #[arg(long, env = "ZOE_AUTH_CONCURRENCY", default_value_t = 0)]
    pub auth_concurrency: usize,

    /// Seconds a login may wait for its turn before it is refused with 503 and `Retry-After`.
    #[arg(long, env = "ZOE_AUTH_WAIT_SECONDS", default_value_t = 5)]
    pub auth_wait_seconds: u64,

    /// Addresses of reverse proxies whose `X-Forwarded-For`, `X-Forwarded-Host`,
    /// `X-Forwarded-Proto` and `Forwarded` headers are believed (comma-separated, or repeat the
    /// flag): the client's address for login throttling comes from them. From any other peer
    /// these headers are ignored.
    #[arg(long = "trusted-proxy", env = "ZOE_TRUSTED_PROXIES", value_delimiter = ',')]
    #[serde(default)]
    pub trusted_proxy: Vec<std::net::IpAddr>,

    /// Failed logins allowed per user and client address within the window before further
    /// attempts are refused with 429; ten times as many per user name from all addresses. An
    /// address with ten times as many failures under any names is never refused: its logins
    /// take turns, one at a time.
    #[arg(long, env = "ZOE_LOGIN_FAILURES_MAX", default_value_t = 10)]
    pub login_failures_max: u32,

    /// The failed-login window, in seconds.
    #[arg(long, env = "ZOE_LOGIN_FAILURES_WINDOW", default_value_t = 300)]
    pub login_failures_window: u64,

    /// The directory (LDAP) that signs users in besides Zoe's own: `ldap://host[:port]`,
    /// `ldaps://host[:port]`, or `ldap://` with `ldap-starttls`. A user Zoe does not know, or one
    /// it created from the directory, is verified there (see "Users and sign-in" in the README).
    #[arg(long, env = "ZOE_LDAP_URL")]
    #[serde(default)]
    pub ldap_url: Option<String>,

    /// Upgrade an `ldap://` connection with StartTLS before anything is sent.
    #[arg(long, env = "ZOE_LDAP_STARTTLS")]
    #[serde(default)]
    pub ldap_starttls: bool,

    /// The certificate authority (PEM) the directory's certificate is checked against
    /// (default: the system's).
    #[arg(long, env = "ZOE_LDAP_TLS_CA", value_name = "PATH")]
    #[serde(default)]
    pub ldap_tls_ca: Option<PathBuf>,

    /// The service account that searches the directory (default: an anonymous search).
    #[arg(long, env = "ZOE_LDAP_BIND_DN")]
    #[serde(default)]
    pub ldap_bind_dn: Option<String>,

    /// The password of `ldap-bind-dn` (better in the environment than on the command line).
    #[arg(long, env = "ZOE_LDAP_BIND_PASSWORD", hide_env_values = true)]
    #[serde(default)]
    pub ldap_bind_password: Option<String>,

    /// Where users are searched for (the whole subtree).
    #[arg(long, env = "ZOE_LDAP_BASE_DN")]
    #[serde(default)]
    pub ldap_base_dn: Option<String>,

    /// The search filter of a user; `{username}` is replaced by the name, escaped (RFC 4515).
    #[arg(long, env = "ZOE_LDAP_USER_FILTER", default_value = "(uid={username})")]
    pub ldap_user_filter: String,

    /// The group (DN) whose members are administrators (`groupOfNames` `member`, or
    /// `posixGroup` `memberUid`).
    #[arg(long, env = "ZOE_LDAP_ADMIN_GROUP")]
    #[serde(default)]
    pub ldap_admin_group: Option<String>,

    /// The group (DN) whose members are guests; other directory users are users.
    #[arg(long, env = "ZOE_LDAP_GUEST_GROUP")]
    #[serde(default)]
    pub ldap_guest_group: Option<String>,

    /// Time limit of each step with the directory (connecting, each bind and search), in seconds.
    #[arg(long, env = "ZOE_LDAP_TIMEOUT", default_value_t = 5)]
    pub ldap_timeout: u64,

    /// Sign-ins verified with the directory at once; further ones wait their turn.
    #[arg(long, env = "ZOE_LDAP_MAX_CALLS", default_value_t = 4)]
    pub ldap_max_calls: usize,

    /// Scheduling policy: `fifo` (submission order), `priority` (the description's priority,
    /// higher first) or `size` (smallest reservation first); the last two with aging.
    #[arg(long, env = "ZOE_SCHEDULER_POLICY", default_value = "fifo", value_parser = policy_arg())]
    pub scheduler_policy: Policy,

    /// Elastic scheduling: an execution starts once its essential instances fit, and its elastic
    /// instances (those beyond a service's `essential_count`) start as room allows and restart
    /// when they die; `false`: every instance is reserved up front (rigid, as Zoe 0.9.7).
    #[arg(long, env = "ZOE_ELASTIC", default_value_t = true, action = clap::ArgAction::Set)]
    pub elastic: bool,

    /// Seconds of waiting after which an execution outranks any newly submitted one.
    #[arg(long, env = "ZOE_AGING_SECONDS", default_value_t = 600)]
    pub aging_seconds: u64,

    /// Cap on the memory Zoe hands out (bytes, or with a suffix: 512MiB, 16GiB); default: the
    /// engine's memory.
    #[arg(long, env = "ZOE_MAX_MEMORY", value_parser = parse_bytes)]
    #[serde(default, with = "bytes_opt")]
    pub max_memory: Option<u64>,

    /// Cap on the cores Zoe hands out; default: the engine's CPUs.
    #[arg(long, env = "ZOE_MAX_CORES")]
    #[serde(default)]
    pub max_cores: Option<f64>,

    /// Active (queued or running) executions a guest may have at once.
    #[arg(long, env = "ZOE_GUEST_MAX_ACTIVE", default_value_t = 1)]
    pub guest_max_active: usize,

    /// Executions a guest may have waiting in the queue at once.
    #[arg(long, env = "ZOE_GUEST_MAX_QUEUED", default_value_t = 1)]
    pub guest_max_queued: usize,

    /// Memory a guest's active executions may reserve at once (bytes or 4GiB...; default: no limit).
    #[arg(long, env = "ZOE_GUEST_MAX_MEMORY", value_parser = parse_bytes)]
    #[serde(default, with = "bytes_opt")]
    pub guest_max_memory: Option<u64>,

    /// Cores a guest's active executions may reserve at once (default: no limit).
    #[arg(long, env = "ZOE_GUEST_MAX_CORES")]
    #[serde(default)]
    pub guest_max_cores: Option<f64>,

    /// Seconds a guest's execution may run before it is terminated (default: no limit).
    #[arg(long, env = "ZOE_GUEST_MAX_RUNTIME")]
    #[serde(default)]
    pub guest_max_runtime: Option<u64>,

    /// Active (queued or running) executions a user may have at once.
    #[arg(long, env = "ZOE_USER_MAX_ACTIVE", default_value_t = 20)]
    pub user_max_active: usize,

    /// Executions a user may have waiting in the queue at once.
    #[arg(long, env = "ZOE_USER_MAX_QUEUED", default_value_t = 10)]
    pub user_max_queued: usize,

    /// Memory a user's active executions may reserve at once (default: no limit).
    #[arg(long, env = "ZOE_USER_MAX_MEMORY", value_parser = parse_bytes)]
    #[serde(default, with = "bytes_opt")]
    pub user_max_memory: Option<u64>,

    /// Cores a user's active executions may reserve at once (default: no limit).
    #[arg(long, env = "ZOE_USER_MAX_CORES")]
    #[serde(default)]
    pub user_max_cores: Option<f64>,

    /// Seconds a user's execution may run before it is terminated (default: no limit).
    #[arg(long, env = "ZOE_USER_MAX_RUNTIME")]
    #[serde(default)]
    pub user_max_runtime: Option<u64>,

    /// Seconds a guest's running execution may stay unused (no traffic through the proxy, its
    /// containers' CPU under `idle-cpu-percent`) before it is terminated; 0: never.
    #[arg(long, env = "ZOE_GUEST_IDLE_SECONDS", default_value_t = 3600)]
    pub guest_idle_seconds: u64,

    /// The same for users (default 0: never).
    #[arg(long, env = "ZOE_USER_IDLE_SECONDS", default_value_t = 0)]
    pub user_idle_seconds: u64,

    /// CPU use, in percent of one core summed over an execution's containers, above which the
    /// execution counts as used.
    #[arg(long, env = "ZOE_IDLE_CPU_PERCENT", default_value_t = 10.0)]
    pub idle_cpu_percent: f64,

    /// HTTP worker threads (0: one per core).
    #[arg(long, env = "ZOE_HTTP_WORKERS", default_value_t = 0)]
    pub http_workers: usize,

    /// Run without a container back end: executions wait in the queue. For trying the API.
    #[arg(long, env = "ZOE_NO_DOCKER")]
    #[serde(default)]
    pub no_docker: bool,

    /// The container back end: `engine` (one Docker Engine) or `swarm` (a Docker Swarm mode
    /// cluster, through a manager given with `docker-host`).
    #[arg(long, env = "ZOE_BACKEND", value_enum, default_value_t = Backend::Engine)]
    pub backend: Backend,

    /// Docker endpoint to use (the engine, or a Swarm manager): `unix:///path/docker.sock` or
    /// `tcp://host:port` (default: the local engine's socket). A `tcp://` endpoint that is not
    /// on this machine needs TLS (`docker-tls-*`) unless `docker-insecure` is given: an open
    /// Docker port is root on every machine behind it.
    #[arg(long, env = "ZOE_DOCKER_HOST")]
    #[serde(default)]
    pub docker_host: Option<String>,

    /// The certificate authority (PEM) that signed the Docker endpoint's certificate: TLS with
    /// the endpoint's certificate checked. Needs `docker-tls-cert` and `docker-tls-key`.
    #[arg(long, env = "ZOE_DOCKER_TLS_CA", requires_all = ["docker_tls_cert", "docker_tls_key"])]
    #[serde(default)]
    pub docker_tls_ca: Option<PathBuf>,

    /// Zoe's client certificate (PEM) for the Docker endpoint.
    #[arg(long, env = "ZOE_DOCKER_TLS_CERT", requires_all = ["docker_tls_ca", "docker_tls_key"])]
    #[serde(default)]
    pub docker_tls_cert: Option<PathBuf>,

    /// The private key (PEM) of `docker-tls-cert`.
    #[arg(long, env = "ZOE_DOCKER_TLS_KEY", requires_all = ["docker_tls_ca", "docker_tls_cert"])]
    #[serde(default)]
    pub docker_tls_key: Option<PathBuf>,

    /// Allow a plain (not TLS) `tcp://` Docker endpoint on another machine. Anyone who can
    /// reach that port controls every container and the machines behind it.
    #[arg(long, env = "ZOE_DOCKER_INSECURE")]
    #[serde(default)]
    pub docker_insecure: bool,

    /// Placement constraints of the Swarm back end, in Swarm's syntax (repeat the flag), e.g.
    /// `node.role==worker` or `node.labels.zoe==yes`. Only nodes that match take Zoe's
    /// containers, and only they count in the capacity.
    #[arg(long = "swarm-constraint", env = "ZOE_SWARM_CONSTRAINTS", value_delimiter = ',')]
    #[serde(default)]
    pub swarm_constraint: Vec<String>,

    /// Time limit of each Docker call, in seconds.
    #[arg(long, env = "ZOE_DOCKER_TIMEOUT", default_value_t = 30)]
    pub docker_timeout: u64,

    /// Docker calls in flight at once (log streams excepted); more wait their turn. An old
    /// engine flooded with concurrent calls can deadlock.
    #[arg(long, env = "ZOE_DOCKER_MAX_CALLS", default_value_t = 8)]
    pub docker_max_calls: usize,

    /// Executions being started at once; the queue waits while this many are starting.
    #[arg(long, env = "ZOE_MAX_STARTING", default_value_t = 4)]
    pub max_starting: usize,

    /// Registries that images may name (`host` or `host:port`; comma-separated, or repeat the
    /// flag). Images naming any other registry are refused at submission; images without a
    /// registry (local ones, or Docker Hub's bare names) are always allowed.
    #[arg(long = "allowed-registry", env = "ZOE_ALLOWED_REGISTRIES", value_delimiter = ',')]
    #[serde(default)]
    pub allowed_registry: Vec<String>,

    /// A data set that descriptions may name, `NAME=HOSTPATH` (repeat the flag; in the
    /// environment, comma-separated; in the file, a list of strings): the folder HOSTPATH
    /// (absolute and existing; on a Swarm, on every node: shared storage) is mounted read-only at
    /// `/mnt/datasets/NAME` in the services whose `datasets` name it. NAME is a lowercase DNS
    /// label. No other host path is ever mounted.
    #[arg(long = "dataset", env = "ZOE_DATASETS", value_delimiter = ',', value_name = "NAME=HOSTPATH")]
    #[serde(default)]
    pub dataset: Vec<String>,

    /// Processes (and threads) each container may have.
    #[arg(long, env = "ZOE_PIDS_LIMIT", default_value_t = 1024)]
    pub pids_limit: i64,

    /// Cores of a service whose description gives none: its CPU limit, and what it reserves
    /// against capacity and quotas (at least 0.01).
    #[arg(long, env = "ZOE_DEFAULT_CORES", default_value_t = 1.0)]
    pub default_cores: f64,

    /// Bytes of log the engine keeps per container file (bytes or 10MiB...).
    #[arg(long, env = "ZOE_CONTAINER_LOG_BYTES", default_value = "10MiB", value_parser = parse_bytes)]
    #[serde(with = "bytes")]
    pub container_log_bytes: u64,

    /// Log files the engine keeps per container (the oldest is dropped).
    #[arg(long, env = "ZOE_CONTAINER_LOG_FILES", default_value_t = 2)]
    pub container_log_files: u32,

    /// Time limit for pulling a missing image, in seconds.
    #[arg(long, env = "ZOE_PULL_TIMEOUT", default_value_t = 120)]
    pub pull_timeout: u64,

    /// Seconds a container gets between SIGTERM and SIGKILL when its execution ends.
    #[arg(long, env = "ZOE_STOP_GRACE", default_value_t = 10)]
    pub stop_grace: u64,

    /// Host address that exposed ports are published on.
    #[arg(long, env = "ZOE_PUBLISH_ADDRESS", default_value = "127.0.0.1")]
    pub publish_address: String,

    /// Also publish exposed ports on the host (`publish-address`, a random port each; on a Swarm,
    /// on the node that runs the container). A published port answers anyone who can reach that
    /// address, without Zoe's sign-in and without the proxy's guard (on a Swarm: every container
    /// of every user). Default: `false` on both back ends (exposed ports are reached through the
    /// master's proxy only; on a Swarm it reaches them through the relay of each user's network).
    #[arg(long, env = "ZOE_PUBLISH_PORTS", default_value_t = false, action = clap::ArgAction::Set)]
    #[serde(default)]
    pub publish_ports: bool,

    /// The image of `zoe relay` (built by `deploy/relay-image.sh`, present on every node), which
    /// the Swarm back end runs on each user's overlay network so that the master reaches that
    /// user's services without publishing their ports.
    #[arg(long, env = "ZOE_RELAY_IMAGE", default_value = concat!("zoe-relay:", env!("CARGO_PKG_VERSION")))]
    pub relay_image: String,

    /// The domain under which every exposed port of every execution is served, each on a host
    /// name of its own: `<port>-<instance>-<execution-id>.<apps-domain>` (for example
    /// `8888-notebook-12.localhost`), on the master's own address and port. Browsers send
    /// `*.localhost` to this machine by themselves; a deployment on a network needs a wildcard DNS
    /// name `*.<apps-domain>` pointing at the master (and, with TLS, a certificate for it). Zoe's
    /// own host must not be under it.
    #[arg(long, env = "ZOE_APPS_DOMAIN", default_value = "localhost")]
    pub apps_domain: String,

    /// Connections through the proxy a user (not an administrator) may have open at once.
    #[arg(long, env = "ZOE_MAX_PROXY_CONNECTIONS", default_value_t = 64)]
    pub max_proxy_connections: usize,

    /// Bytes of each container's log kept under `<state-dir>/logs` when it is removed.
    #[arg(long, env = "ZOE_LOG_TAIL_BYTES", default_value_t = 1024 * 1024)]
    pub log_tail_bytes: usize,

    /// Bytes of kept logs under `<state-dir>/logs` in all (bytes or 1GiB...): beyond it the
    /// oldest are removed, so that containers' logs cannot fill the state disk.
    #[arg(long, env = "ZOE_LOG_KEEP_BYTES", default_value = "1GiB", value_parser = parse_bytes)]
    #[serde(with = "bytes")]
    pub log_keep_bytes: u64,

    /// Seconds between two comparisons of the state with Docker's containers.
    #[arg(long, env = "ZOE_RECONCILE_INTERVAL", default_value_t = 10)]
    pub reconcile_interval: u64,

    /// Log format: `text` or `json`.
    #[arg(long, env = "ZOE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Which container back end the master uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// One Docker Engine.
    Engine,
    /// A Docker Swarm mode cluster, through one of its managers.
    Swarm,
}

/// How the master writes its logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A scheduling policy on the command line: one of its names (listed in `--help`).
pub fn policy_arg() -> impl clap::builder::TypedValueParser<Value = Policy> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Policy::ALL.map(Policy::as_str))
        .try_map(|s: String| Policy::parse(&s).ok_or("unknown scheduling policy"))
}

pub use zoe_actors::description::units::parse_bytes;

/// A size in the TOML file: a number of bytes or a string such as "10MiB".
mod bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match super::bytes_opt::deserialize(d)? {
            Some(n) => Ok(n),
            None => Err(serde::de::Error::custom("a size is needed")),
        }
    }
}

/// Sizes in the TOML file: a number of bytes or a string such as "16GiB".
mod bytes_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_some(n),
            None => s.serialize_none(),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Number(u64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<Size>::deserialize(d)? {
            None => Ok(None),
            Some(Size::Number(n)) => Ok(Some(n)),
            Some(Size::Text(t)) => super::parse_bytes(&t).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

impl MasterConfig {
    /// The scheduler settings these options describe.
    /// How much history the checkpoints hold.
    pub fn history(&self) -> zoe_actors::state_actor::HistoryConfig {
        zoe_actors::state_actor::HistoryConfig {
            keep: self.history_keep,
            keep_seconds: self.history_keep_seconds,
            batch: self.archive_batch as usize,
        }
    }

    pub fn scheduler(&self) -> zoe_actors::logic::scheduler::SchedulerConfig {
        use zoe_actors::logic::quota::Quota;
        use zoe_actors::logic::scheduler::SchedulerConfig;
        use zoe_checkpoints::Role;
        let secs = |s: Option<u64>| s.map(std::time::Duration::from_secs);
        SchedulerConfig {
            policy: self.scheduler_policy,
            aging: std::time::Duration::from_secs(self.aging_seconds.max(1)),
            max_memory: self.max_memory,
            max_cores: self.max_cores,
            max_starting: self.max_starting.max(1),
            elastic: self.elastic,
            default_cores: self.default_cores,
            quotas: std::collections::HashMap::from([
                (
                    Role::Guest,
                    Quota {
                        max_active: Some(self.guest_max_active),
                        max_queued: Some(self.guest_max_queued),
                        max_memory: self.guest_max_memory,
                        max_cores: self.guest_max_cores,
                        max_runtime: secs(self.guest_max_runtime),
                    },
                ),
                (
                    Role::User,
                    Quota {
                        max_active: Some(self.user_max_active),
                        max_queued: Some(self.user_max_queued),
                        max_memory: self.user_max_memory,
                        max_cores: self.user_max_cores,
                        max_runtime: secs(self.user_max_runtime),
                    },
                ),
            ]),
        }
    }
}

impl MasterConfig {
    /// Each role's workspace quota.
    pub fn workspace_quotas(&self) -> zoe_actors::backend::workspace::Quotas {
        use zoe_checkpoints::Role;
        let mut by_role = std::collections::HashMap::new();
        for (role, quota) in [(Role::Guest, self.guest_workspace_quota), (Role::User, self.user_workspace_quota)] {
            if let Some(q) = quota {
                by_role.insert(role, q);
            }
        }
        zoe_actors::backend::workspace::Quotas { default: self.workspace_quota, by_role }
    }

    /// Where the log tails of removed containers are kept.
    pub fn log_dir(&self) -> std::path::PathBuf {
        self.state_dir.join("logs")
    }

    /// The idle limits of idle culling.
    pub fn idle_limits(&self) -> crate::idle::IdleLimits {
        let secs = |s: u64| (s > 0).then(|| std::time::Duration::from_secs(s));
        crate::idle::IdleLimits {
            guest: secs(self.guest_idle_seconds),
            user: secs(self.user_idle_seconds),
            busy_cpu: if self.idle_cpu_percent.is_finite() { self.idle_cpu_percent.max(0.0) / 100.0 } else { 0.1 },
        }
    }
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl MasterConfig {
    /// Fills every key that was left at its default from the `--config` TOML file, if any.
    pub fn apply_file(self, matches: &ArgMatches) -> Result<Self, ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        let file: toml::Table =
            text.parse().map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
        let mut merged =
            toml::Table::try_from(&self).map_err(|e| ConfigError(format!("cannot merge the config file: {e}")))?;
        for (key, value) in file {
            let id = key.replace('-', "_");
            if id == "config" || matches.try_get_raw(&id).is_err() {
                return Err(ConfigError(format!(
                    "config file {}: unknown key {key:?} (keys are the long flag names, e.g. listen-port)",
                    path.display()
                )));
            }
            if matches!(matches.value_source(&id), None | Some(ValueSource::DefaultValue)) {
                merged.insert(key, value);
            }
        }
        let mut merged: MasterConfig =
            merged.try_into().map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
        merged.config = Some(path);
        Ok(merged)
    }
}
