//! Starting a master: lock the state directory, load (or create) the state, start the actors and
//! the HTTP server. `main` and the integration tests use the same [`start`].

use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpServer};
use time::OffsetDateTime;
use zoe_actors::backend::{Backend, DockerConfig, RelaySettings, TlsFiles};
use zoe_actors::logic::plan::PlanSettings;
use zoe_actors::state_actor::{Durable, StateActor, StateConfig};
use zoe_checkpoints::archive::{check_numbers, foreign_execution, IndexNote, LayoutError};
use zoe_checkpoints::{
    encode, is_dns_label, Action, Archive, ArchiveIndex, Change, Role, State, StateLock, Store, User,
};

use crate::auth::{hash_password, Auth};
use crate::config::{MasterConfig, DEFAULT_ADMIN_PASSWORD};
use crate::limits::Limits;
use crate::passwords::Passwords;
use crate::AppData;

/// The largest response buffer of a connection (see `HttpServer::h1_write_buffer_size`).
const WRITE_BUFFER: usize = 256 * 1024;

/// Name of the first administrator.
pub const ADMIN_NAME: &str = "zoeadmin";

/// Why a master could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// A loaded state, the number of the checkpoint it came from, and the archive it needs.
pub struct Loaded {
    pub state: State,
    pub seq: u64,
    pub store: Store,
    pub archive: Archive,
    pub index: ArchiveIndex,
}

/// A start says what it is doing, every [`PROGRESS_EVERY`], once it has taken more than a second.
pub struct StartProgress {
    phase: Arc<Mutex<String>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often a slow start logs how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

impl StartProgress {
    pub fn spawn() -> StartProgress {
        let phase = Arc::new(Mutex::new(String::from("starting")));
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = phase.clone();
        let thread = std::thread::Builder::new()
            .name("zoe-start-progress".into())
            .spawn(move || {
                let started = Instant::now();
                let mut wait = Duration::from_secs(1);
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                    let now = shared.lock().map(|p| p.clone()).unwrap_or_default();
                    tracing::info!("still starting after {:.0} s: {now}", started.elapsed().as_secs_f64());
                    wait = PROGRESS_EVERY;
                }
            })
            .ok();
        StartProgress { phase, stop: Some(stop), thread }
    }

    /// What the start does now.
    pub fn set(&self, what: impl Into<String>) {
        if let Ok(mut p) = self.phase.lock() {
            *p = what.into();
        }
    }
}

impl Drop for StartProgress {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How the `from-checkpoint` setting is named in messages: it may come from any of these.
const FROM_CHECKPOINT_SETTING: &str =
    "from-checkpoint (--from-checkpoint, ZOE_FROM_CHECKPOINT, or `from-checkpoint` in the config file)";

/// Loads the state the master should run with: the newest checkpoint, checkpoint
/// `--from-checkpoint N` (re-written as the newest, once), or a new state with `zoeadmin` when
/// the state directory has never been used. The caller holds the state directory's lock.
pub fn load_state(config: &MasterConfig, progress: &StartProgress) -> Result<Loaded, StartError> {
    let store = Store::open(&config.state_dir)
        .map_err(|e| StartError(format!("cannot open the state directory {}: {e}", config.state_dir.display())))?;
    store.remove_temp_files().map_err(|e| StartError(format!("cannot clean {}: {e}", store.dir().display())))?;
    let newest = store.newest().map_err(|e| StartError(format!("cannot list {}: {e}", store.dir().display())))?;
    let hint = |n: u64| {
        let older = match store.newest_loadable(n) {
            Some(k) => {
                format!(", or start from checkpoint {k}, the newest older one that loads, with `--from-checkpoint {k}`")
            }
            None => " (no older checkpoint loads)".to_string(),
        };
        format!(
            "fix the file by hand and check it with `zoe checkpoint verify --state-dir {}`{older}",
            config.state_dir.display()
        )
    };
    let chosen = match config.from_checkpoint {
        Some(n) => from_checkpoint(&store, n, newest)?,
        None => newest,
    };
    let (mut state, seq) = match chosen {
        Some(n) => {
            let size = std::fs::metadata(store.path(n)).map(|m| m.len()).unwrap_or(0);
            progress.set(format!("loading checkpoint {n} ({:.1} MB)", size as f64 / 1e6));
            let state =
                store.load(n).map_err(|e| StartError(format!("cannot load checkpoint {n}: {e}\nhint: {}", hint(n))))?;
            (state, newest.unwrap_or(n))
        }
        None => {
            if let Some(signs) = past_life(&config.state_dir) {
                return Err(StartError(format!(
                    "{} holds no checkpoint, but this state directory was used before: {signs}. Starting with an \
                     empty state would lose every user and execution.\nhint: restore the checkpoints from a backup \
                     and check them with `zoe checkpoint verify --state-dir {}`; to really start afresh, move {} away",
                    store.dir().display(),
                    config.state_dir.display(),
                    config.state_dir.display()
                )));
            }
            (new_state(config)?, 0)
        }
    };
    if state.deployment_name != config.deployment_name {
        return Err(StartError(format!(
            "the checkpoints in {} belong to deployment {:?}, but this master is configured for {:?}; \
             use --deployment-name {} or another --state-dir",
            store.dir().display(),
            state.deployment_name,
            config.deployment_name,
            state.deployment_name
        )));
    }
    // A start from an older checkpoint keeps what was archived since: the archive is never
    // rewritten.
    let reverted = chosen != newest;
    let (archive, index) = load_archive(config, &mut state, chosen.unwrap_or(0), reverted, progress)?;
    // What the loaded checkpoint records was changed before it; the next one records anew.
    state.changes.clear();
    // A new state, or an older checkpoint chosen by hand, becomes the newest checkpoint now, so
    // that history only grows and a restart without the flag keeps it.
    let seq = if seq == 0 || chosen != newest {
        let next = seq + 1;
        state.changes = match (seq, chosen) {
            (0, _) => vec![Change::new(Change::ZOE, Action::Init, vec![])],
            (_, Some(n)) => vec![Change::new(Change::ZOE, Action::Revert, vec![n])],
            _ => vec![],
        };
        progress.set(format!("writing checkpoint {next}"));
        let text = encode(&state).map_err(|e| StartError(format!("cannot encode the state: {e}")))?;
        store
            .write(next, &text)
            .map_err(|e| StartError(format!("cannot write {}: {e}", store.path(next).display())))?;
        next
    } else {
        seq
    };
    state.changes.clear();
    Ok(Loaded { state, seq, store, archive, index })
}

/// Which checkpoint `from-checkpoint N` starts from. It acts once: a later start with the
/// setting still there finds the copy of N that the first start wrote (a checkpoint recording
/// `revert` of N) and, if anything was written since, refuses rather than throw it away; if
/// nothing was, it starts from the newest with a warning.
fn from_checkpoint(store: &Store, n: u64, newest: Option<u64>) -> Result<Option<u64>, StartError> {
    let files = store.list().map_err(|e| StartError(format!("cannot list {}: {e}", store.dir().display())))?;
    if !files.iter().any(|f| f.number == n) {
        return Err(StartError(format!(
            "{FROM_CHECKPOINT_SETTING} names checkpoint {n}, which does not exist in {}; `zoe checkpoint list` shows \
             which do. If this master already started from it once, remove the setting",
            store.dir().display()
        )));
    }
    if newest == Some(n) {
        return Ok(Some(n));
    }
    let copy = files.iter().rev().map(|f| f.number).take_while(|m| *m > n).find(|m| store.reverts_to(*m) == Some(n));
    let Some(copy) = copy else { return Ok(Some(n)) };
    let newest = newest.unwrap_or(copy);
    if copy == newest {
        tracing::warn!(
            "!!! {FROM_CHECKPOINT_SETTING} is set to {n}, which was already used: checkpoint {copy} is its copy and \
             nothing was written since, so the master starts from {copy}; remove the setting, or the next start \
             refuses once changes were made !!!"
        );
        return Ok(Some(newest));
    }
    Err(StartError(format!(
        "{FROM_CHECKPOINT_SETTING} is set to {n}, which was already used: checkpoint {copy} is its copy, and {} \
         checkpoint(s) were written since (the newest is {newest}); starting from {n} again would throw away the \
         changes they hold.\nhint: remove the setting to start from the newest; to go back to {n} once more, run \
         `zoe checkpoint revert {n}` with the master stopped",
        newest - copy
    )))
}

/// What shows that a state directory without checkpoints was used by a master before: archive
/// segments, kept logs, other files among the checkpoints, or the lock file of an older Zoe.
/// `None` for a directory that is new, or holds only empty ones Zoe makes (files that Zoe does
/// not make, such as a configuration file, are no sign).
fn past_life(state_dir: &std::path::Path) -> Option<String> {
    let mut signs = Vec::new();
    for name in ["checkpoints", "archive", "logs"] {
        let Ok(entries) = std::fs::read_dir(state_dir.join(name)) else { continue };
        let mut inside: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        inside.retain(|f| !f.starts_with(zoe_checkpoints::store::TMP_PREFIX));
        inside.sort();
        if let Some(first) = inside.first() {
            let more = if inside.len() > 1 { format!(" and {} more", inside.len() - 1) } else { String::new() };
            signs.push(format!("{name}/{}{more}", shorten(first)));
        }
    }
    if state_dir.join("master.lock").exists() {
        signs.push("master.lock".into());
    }
    (!signs.is_empty()).then(|| signs.join(", "))
}

/// A file name as shown in a message: at most 64 characters.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Opens the archive and reads its index. The segments on disk must be exactly those the state
/// needs (`archived_segments`), but for those the master wrote just before a crash, before the
/// checkpoint that would have needed them (kept: what they hold is the state's or newer), and
/// after a revert (`reverted`), which keeps every segment. Moves the state's id counter past
/// every archived id (a revert to a checkpoint older than a segment must not hand out an id
/// again).
fn load_archive(
    config: &MasterConfig,
    state: &mut State,
    checkpoint: u64,
    reverted: bool,
    progress: &StartProgress,
) -> Result<(Archive, ArchiveIndex), StartError> {
    progress.set("listing the archive");
    let archive = Archive::open(&config.state_dir)
        .map_err(|e| StartError(format!("cannot open the archive in {}: {e}", config.state_dir.display())))?;
    zoe_checkpoints::remove_temp_files(archive.dir())
        .map_err(|e| StartError(format!("cannot clean {}: {e}", archive.dir().display())))?;
    let files = archive.list().map_err(|e| StartError(format!("cannot list {}: {e}", archive.dir().display())))?;
    let numbers: Vec<u64> = files.iter().map(|f| f.number).collect();
    let needed = state.archived_segments;
    let dir = archive.dir().display();
    let present = match check_numbers(&numbers, needed) {
        Ok(n) => n,
        Err(LayoutError::Missing(m)) => {
            return Err(StartError(format!(
                "archive segment {m} is missing from {dir} (checkpoint {checkpoint} needs segments 1 to {needed}); \
                 restore it from a backup"
            )))
        }
        Err(LayoutError::Stray { missing, strays }) => {
            let names: Vec<String> = strays.iter().map(|n| format!("{n:010}.ron")).collect();
            return Err(StartError(format!(
                "archive segment {} is not this state's: checkpoint {checkpoint} needs segments 1 to {needed}, and \
                 segment {missing} is missing before it (a stray file, or one of another state directory); move {} \
                 out of {dir}",
                strays.first().copied().unwrap_or(missing),
                names.join(", ")
            )));
        }
    };
    let index = archive
        .index(&state.deployment_name, present, |note| match note {
            IndexNote::Progress { done, total, reindexed, executions } => {
                if done % 64 == 0 || done == total || reindexed > 0 {
                    progress.set(format!(
                        "reading the archive's index: segment {done} of {total} ({executions} executions, {reindexed} \
                         segments indexed from their text)"
                    ));
                }
            }
            IndexNote::Info(m) => tracing::info!("{m}"),
            IndexNote::Warning(m) => tracing::warn!("{m}"),
        })
        .map_err(|e| {
            StartError(format!(
                "cannot read the archive: {e}\nhint: segments are written once and never changed; restore the file \
                 from a backup, or check it with `zoe checkpoint verify --state-dir {}`",
                config.state_dir.display()
            ))
        })?;
    if reverted {
        state.archived_segments = present;
    }
    if present > state.archived_segments {
        if let Some((n, id)) = foreign_execution(&index, state) {
            return Err(StartError(format!(
                "archive segment {n} ({}) is not this state's: it holds execution {id}, which checkpoint {checkpoint} \
                 neither holds nor was about to create, so it is not a segment written just before a crash \
                 (checkpoint {checkpoint} needs segments 1 to {needed}). Move it, and any segment after it, out of \
                 {dir}; or, if an older Zoe archived it before a revert to an older checkpoint, set \
                 `archived_segments: {present},` in checkpoint {checkpoint}",
                archive.path(n).display()
            )));
        }
        tracing::warn!(
            "archive segments {} to {present} were written just before a crash, before the checkpoint that needs \
             them: what they hold is this state's (the checkpoint's copy wins), they are kept",
            needed + 1
        );
        state.archived_segments = present;
    }
    if let Some(max) = index.max_id() {
        if max >= zoe_checkpoints::ID_LIMIT {
            return Err(StartError(format!(
                "the archive in {} holds id {max}, beyond the ids Zoe hands out (below {}); check it with \
                 `zoe checkpoint verify --state-dir {}`",
                archive.dir().display(),
                zoe_checkpoints::ID_LIMIT,
                config.state_dir.display()
            )));
        }
        state.next_id = state.next_id.max(max + 1);
    }
    Ok((archive, index))
}

fn new_state(config: &MasterConfig) -> Result<State, StartError> {
    if !is_dns_label(&config.deployment_name) {
        return Err(StartError(format!(
            "deployment name {:?} must be a lowercase DNS label (a-z, 0-9, '-')",
            config.deployment_name
        )));
    }
    let mut state = State::new(&config.deployment_name);
    let id = state.gen_id();
    let uid = state.gen_uid();
    let password_hash = hash_password(&config.admin_password).map_err(StartError)?;
    state.users.insert(
        id,
        Arc::new(User {
            id,
            name: ADMIN_NAME.into(),
            role: Role::Admin,
            uid,
            password_hash,
            created_at: OffsetDateTime::now_utc(),
        }),
    );
    Ok(state)
}

/// The master's relay secret, `<state-dir>/relay.key` (64 hex digits, mode 0600), made at the
/// first start on a Swarm: each user network's relay key is derived from it.
pub fn relay_secret(state_dir: &std::path::Path) -> Result<zoe_actors::relay::Secret, StartError> {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let path = state_dir.join("relay.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => zoe_actors::relay::Secret::from_hex(&text)
            .map_err(|e| StartError(format!("{}: {e}; remove it to make a new one", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            OsRng.fill_bytes(&mut bytes);
            let secret = zoe_actors::relay::Secret(bytes);
            zoe_checkpoints::write_atomic(&path, secret.to_hex().as_bytes())
                .map_err(|e| StartError(format!("cannot write {}: {e}", path.display())))?;
            Ok(secret)
        }
        Err(e) => Err(StartError(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Where the log tails of removed containers are kept.
pub fn log_dir(config: &MasterConfig) -> std::path::PathBuf {
    config.state_dir.join("logs")
}

fn absolute(path: &std::path::Path) -> Result<std::path::PathBuf, StartError> {
    std::path::absolute(path).map_err(|e| StartError(format!("bad path {}: {e}", path.display())))
}

/// A running master.
pub struct Running {
    /// Where the HTTP server listens.
    pub addr: SocketAddr,
    /// The HTTP server; await it to run until it stops.
    pub server: actix_web::dev::Server,
    /// Holds the state directory lock while the master runs.
    pub _lock: StateLock,
}

/// Starts a master inside the current actix system.
pub fn start(config: MasterConfig) -> Result<Running, StartError> {
    // TLS first: a bad certificate or key stops the master before it touches the state.
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            Some(crate::tls::server_config(cert, key, config.tls_key_readable).map_err(StartError)?)
        }
        (None, None) => None,
        (Some(_), None) => return Err(StartError("--tls-cert needs --tls-key (ZOE_TLS_KEY, tls-key) as well".into())),
        (None, Some(_)) => {
            return Err(StartError("--tls-key needs --tls-cert (ZOE_TLS_CERT, tls-cert) as well".into()))
        }
    };
    crate::apps::check_domain(&config.apps_domain).map_err(StartError)?;
    if std::env::var_os("ZOE_PROXY_HOST").is_some() {
        return Err(StartError(
            "ZOE_PROXY_HOST is gone: every execution's applications now have host names of their own under \
             apps-domain (ZOE_APPS_DOMAIN, default localhost); see the README's \"The proxy\""
                .into(),
        ));
    }
    let lock = StateLock::try_take(&config.state_dir)
        .map_err(|e| StartError(format!("cannot lock {}: {e}", config.state_dir.display())))?
        .ok_or_else(|| {
            StartError(format!("another master is running on {}; stop it first", config.state_dir.display()))
        })?;
    let started = Instant::now();
    let progress = StartProgress::spawn();
    let loaded = load_state(&config, &progress)?;
    if config.admin_password == DEFAULT_ADMIN_PASSWORD && loaded.seq <= 1 {
        tracing::warn!(
            "!!! zoeadmin's password is the default {DEFAULT_ADMIN_PASSWORD:?}: set ZOE_ADMIN_PASSWORD before the first start of any real deployment !!!"
        );
    }
    tracing::info!(
        checkpoint = loaded.seq,
        users = loaded.state.users.len(),
        executions = loaded.state.executions.len(),
        archived = loaded.index.len(),
        seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
        "state loaded from {}",
        loaded.store.dir().display()
    );
    let min_cores = zoe_checkpoints::model::limits::MIN_CORES;
    if !(config.default_cores >= min_cores && config.default_cores <= 256.0) {
        return Err(StartError(format!(
            "--default-cores must be at least {min_cores} (Docker's smallest CPU limit) and at most 256, got {}",
            config.default_cores
        )));
    }
    let workspace_base = absolute(&config.workspace_base_path)?;
    let quotas = config.workspace_quotas();
    for (what, quota) in std::iter::once(("workspace-quota", quotas.default)).chain(
        quotas
            .by_role
            .iter()
            .map(|(role, q)| (if *role == Role::Guest { "guest-workspace-quota" } else { "user-workspace-quota" }, *q)),
    ) {
        if quota < zoe_actors::backend::workspace::MIN_QUOTA {
            return Err(StartError(format!(
                "--{what} must be at least {} (an ext4 file system needs some room for itself)",
                zoe_actors::description::units::show_bytes(zoe_actors::backend::workspace::MIN_QUOTA)
            )));
        }
    }
    let state_config = StateConfig {
        keep_checkpoints: config.keep_checkpoints,
        scheduler: config.scheduler(),
        plan: PlanSettings {
            workspace_base,
            default_cores: config.default_cores,
            publish_ports: config.publish_ports,
            workspace_quotas: config.workspace_quotas(),
        },
        allowed_registries: config.allowed_registry.clone(),
        history: config.history(),
        state_min_free: config.state_min_free,
    };
    let backend = if config.no_docker {
        tracing::warn!("running without Docker (--no-docker): executions wait in the queue");
        None
    } else {
        let tls = match (&config.docker_tls_ca, &config.docker_tls_cert, &config.docker_tls_key) {
            (Some(ca), Some(cert), Some(key)) => {
                Some(TlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() })
            }
            _ => None,
        };
        let relay = match config.backend {
            crate::config::Backend::Swarm => {
                Some(RelaySettings { image: config.relay_image.clone(), secret: relay_secret(&config.state_dir)? })
            }
            crate::config::Backend::Engine => None,
        };
        let docker = DockerConfig {
            docker_host: config.docker_host.clone(),
            tls,
            insecure: config.docker_insecure,
            constraints: config.swarm_constraint.clone(),
            relay,
            deployment_name: config.deployment_name.clone(),
            call_timeout: Duration::from_secs(config.docker_timeout),
            pull_timeout: Duration::from_secs(config.pull_timeout),
            stop_grace: Duration::from_secs(config.stop_grace),
            publish_address: config.publish_address.clone(),
            log_dir: log_dir(&config),
            log_tail_bytes: config.log_tail_bytes,
            log_keep_bytes: config.log_keep_bytes,
            reconcile_interval: Duration::from_secs(config.reconcile_interval.max(1)),
            max_calls: config.docker_max_calls.max(1),
            pids_limit: config.pids_limit,
            log_max_bytes: config.container_log_bytes,
            log_max_files: config.container_log_files,
        };
        Some(match config.backend {
            crate::config::Backend::Engine => Backend::Engine(docker),
            crate::config::Backend::Swarm => Backend::Swarm(docker),
        })
    };
    progress.set("starting the actors and the HTTP server");
    let durable = Durable { store: loaded.store, seq: loaded.seq, archive: loaded.archive, index: loaded.index };
    let launched = StateActor::launch(loaded.state, durable, state_config, backend)
        .map_err(|e| StartError(format!("cannot start the container back end: {e}")))?;
    let dialer = match (&launched.backend, config.backend) {
        (Some(backend), crate::config::Backend::Swarm) => {
            crate::dial::Dialer::Relayed { relays: backend.relay.clone(), secret: relay_secret(&config.state_dir)? }
        }
        _ => crate::dial::Dialer::Direct,
    };
    let auth = Auth::new(
        Duration::from_secs(config.auth_cache_seconds),
        config.login_failures_max,
        Duration::from_secs(config.login_failures_window),
        Passwords::new(config.auth_concurrency, Duration::from_secs(config.auth_wait_seconds)),
    )
    .map_err(StartError)?;
    let data = web::Data::new(AppData {
        state: launched.state,
        reader: launched.reader,
        backend: launched.backend,
        auth: Arc::new(auth),
        limits: Arc::new(Limits::new(
            config.submit_rate,
            config.submit_burst,
            config.max_log_followers,
            config.max_proxy_connections,
        )),
        config: Arc::new(config.clone()),
        metrics: Arc::default(),
        activity: Arc::default(),
        dialer: Arc::new(dialer),
        workspaces: Arc::new(crate::workspaces::Workspaces::new(
            absolute(&config.workspace_base_path)?,
            &config.deployment_name,
            config.workspace_quotas(),
        )),
        apps: Arc::new(crate::apps::Apps::new(&config.apps_domain)),
    });
    crate::apps::spawn_sweeper(data.clone());
    if let Some(backend) = &data.backend {
        crate::idle::spawn(
            config.idle_limits(),
            data.reader.clone(),
            backend.clone(),
            data.state.clone(),
            data.activity.clone(),
        );
    }
    let workers = if config.http_workers == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
    } else {
        config.http_workers
    };
    // A client that goes away is noticed at once (its followed log streams end), and stopping
    // the master does not wait long for streams that never end.
    let server = HttpServer::new(move || create_app(data.clone()))
        // Responses streamed in several writes (the proxy's, logs) must not wait for the
        // client's delayed ACK between writes (Nagle): 40 ms per request on a kept-alive
        // connection otherwise.
        .on_connect(no_delay)
        .workers(workers)
        .h1_allow_half_closed(false)
        // Large responses (proxied downloads) are written in pieces of up to this size: a quarter
        // less of the master's CPU per byte than actix's default 32 KiB, which also gave back and
        // made again its buffer after every large piece. An idle connection keeps at most this
        // much.
        .h1_write_buffer_size(WRITE_BUFFER)
        .shutdown_timeout(5);
    let listen = (config.listen_address.as_str(), config.listen_port);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = match tls {
        Some(tls) => server.bind_rustls_0_23(listen, tls),
        None => server.bind(listen),
    }
    .map_err(|e| StartError(format!("cannot listen on {}:{}: {e}", config.listen_address, config.listen_port)))?;
    let addr = server.addrs().first().copied().ok_or_else(|| StartError("the server has no address".into()))?;
    let server = server.run();
    drop(progress);
    tracing::info!(
        "Zoe master listening on {scheme}://{addr}{} ({:.2} s after the start)",
        crate::api::BASE,
        started.elapsed().as_secs_f64()
    );
    Ok(Running { addr, server, _lock: lock })
}

/// Sets TCP_NODELAY on an accepted connection, plain or TLS.
fn no_delay(io: &dyn std::any::Any, _: &mut actix_web::dev::Extensions) {
    let tcp = io.downcast_ref::<actix_web::rt::net::TcpStream>().or_else(|| {
        io.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>>()
            .map(|t| t.get_ref().0)
    });
    if let Some(tcp) = tcp {
        let _ = tcp.set_nodelay(true);
    }
}

/// The whole web application: API, web pages and their middleware. Used by the server and by
/// tests.
pub fn create_app(
    data: web::Data<AppData>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let metrics = data.metrics.clone();
    App::new()
        .app_data(data)
        .wrap_fn(move |req, srv| {
            let started = std::time::Instant::now();
            let method = req.method().clone();
            let metrics = metrics.clone();
            let fut = actix_web::dev::Service::call(srv, req);
            async move {
                let res = fut.await?;
                metrics.observe(res.request().match_pattern(), &method, res.status().as_u16(), started.elapsed());
                Ok(res)
            }
        })
        .wrap(actix_web::middleware::from_fn(crate::paths::normalize))
        // Application hosts never reach Zoe's routes.
        .wrap(actix_web::middleware::from_fn(crate::apps::split))
        .wrap(actix_web::middleware::from_fn(crate::headers::nosniff))
        .configure(crate::observability::configure)
        .configure(crate::openapi::configure)
        .configure(crate::api::configure)
        .configure(crate::proxy::configure)
        .configure(crate::web::configure)
        .default_service(web::to(crate::api::not_found))
}
