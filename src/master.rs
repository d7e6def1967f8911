//! Starting a master: lock the state directory, load (or create) the state, start the actors and
//! the HTTP server. `main` and the integration tests use the same [`start`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use time::OffsetDateTime;
use zoe_actors::backend::{Backend, DockerConfig, TlsFiles};
use zoe_actors::plan::PlanSettings;
use zoe_actors::state_actor::{Durable, StateActor, StateConfig};
use zoe_checkpoints::{encode, is_dns_label, Action, Archive, ArchiveIndex, Change, Role, State, Store, User};

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

/// Loads the state the master should run with: the newest checkpoint, checkpoint
/// `--from-checkpoint N` (re-written as the newest), or a new state with `zoeadmin`.
pub fn load_state(config: &MasterConfig) -> Result<Loaded, StartError> {
    let store = Store::open(&config.state_dir)
        .map_err(|e| StartError(format!("cannot open the state directory {}: {e}", config.state_dir.display())))?;
    let newest = store.newest().map_err(|e| StartError(format!("cannot list {}: {e}", store.dir().display())))?;
    let hint = |n: u64| {
        let older = if n > 1 {
            format!(" or start from an older one with `--from-checkpoint {}`", n - 1)
        } else {
            String::new()
        };
        format!(
            "fix the file by hand, check it with `zoe checkpoint verify --state-dir {}`{older}",
            config.state_dir.display()
        )
    };
    let chosen = config.from_checkpoint.or(newest);
    let (mut state, seq) = match chosen {
        Some(n) => {
            if !store.path(n).exists() {
                return Err(StartError(format!(
                    "checkpoint {n} does not exist in {}; `zoe checkpoint list` shows which do",
                    store.dir().display()
                )));
            }
            let state =
                store.load(n).map_err(|e| StartError(format!("cannot load checkpoint {n}: {e}\nhint: {}", hint(n))))?;
            (state, newest.unwrap_or(n))
        }
        None => (new_state(config)?, 0),
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
    let (archive, index) = load_archive(config, &mut state)?;
    // What the loaded checkpoint records was changed before it; the next one records anew.
    state.changes.clear();
    // A new state, or an older checkpoint chosen by hand, becomes the newest checkpoint now, so
    // that history only grows and a restart without the flag keeps it.
    let seq = if seq == 0 || config.from_checkpoint.is_some_and(|n| Some(n) != newest) {
        let next = seq + 1;
        state.changes = match (seq, chosen) {
            (0, _) => vec![Change::new(Change::ZOE, Action::Init, vec![])],
            (_, Some(n)) => vec![Change::new(Change::ZOE, Action::Revert, vec![n])],
            _ => vec![],
        };
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

/// Opens the archive and reads its index; checks that it holds every segment the state needs,
/// and moves the state's id counter past every archived id (a revert to a checkpoint older than
/// a segment must not hand out an id again).
fn load_archive(config: &MasterConfig, state: &mut State) -> Result<(Archive, ArchiveIndex), StartError> {
    let archive = Archive::open(&config.state_dir)
        .map_err(|e| StartError(format!("cannot open the archive in {}: {e}", config.state_dir.display())))?;
    let index = archive.index(&state.deployment_name, |note| tracing::info!("{note}")).map_err(|e| {
        StartError(format!(
            "cannot read the archive: {e}\nhint: segments are written once and never changed; restore the file from a \
             backup, or check it with `zoe checkpoint verify --state-dir {}`",
            config.state_dir.display()
        ))
    })?;
    let present: std::collections::HashSet<u64> = index.segment_numbers().collect();
    if let Some(missing) = (1..=state.archived_segments).find(|n| !present.contains(n)) {
        return Err(StartError(format!(
            "archive segment {missing} is missing from {} (the checkpoint needs segments 1 to {}); restore it from a backup",
            archive.dir().display(),
            state.archived_segments
        )));
    }
    if let Some(max) = index.max_id() {
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
    pub _lock: std::fs::File,
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
    let lock = Store::try_lock(&config.state_dir)
        .map_err(|e| StartError(format!("cannot lock {}: {e}", config.state_dir.display())))?
        .ok_or_else(|| {
            StartError(format!("another master is running on {}; stop it first", config.state_dir.display()))
        })?;
    let loaded = load_state(&config)?;
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
        "state loaded from {}",
        loaded.store.dir().display()
    );
    let workspace_base = absolute(&config.workspace_base_path)?;
    let state_config = StateConfig {
        keep_checkpoints: config.keep_checkpoints,
        scheduler: config.scheduler(),
        plan: PlanSettings {
            workspace_base,
            default_cores: config.default_cores,
            publish_ports: config.publish_ports(),
        },
        allowed_registries: config.allowed_registry.clone(),
        history: config.history(),
    };
    let backend = if config.no_docker {
        tracing::warn!("running without Docker (--no-docker): executions wait in the queue");
        None
    } else {
        if config.backend == crate::config::Backend::Swarm && !config.publish_ports() {
            return Err(StartError(
                "--publish-ports false cannot be used with --backend swarm: the proxy reaches a Swarm's services \
                 through the ports they publish on their nodes"
                    .into(),
            ));
        }
        let tls = match (&config.docker_tls_ca, &config.docker_tls_cert, &config.docker_tls_key) {
            (Some(ca), Some(cert), Some(key)) => {
                Some(TlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() })
            }
            _ => None,
        };
        let docker = DockerConfig {
            docker_host: config.docker_host.clone(),
            tls,
            insecure: config.docker_insecure,
            constraints: config.swarm_constraint.clone(),
            deployment_name: config.deployment_name.clone(),
            call_timeout: Duration::from_secs(config.docker_timeout),
            pull_timeout: Duration::from_secs(config.pull_timeout),
            stop_grace: Duration::from_secs(config.stop_grace),
            publish_address: config.publish_address.clone(),
            log_dir: log_dir(&config),
            log_tail_bytes: config.log_tail_bytes,
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
    let durable = Durable { store: loaded.store, seq: loaded.seq, archive: loaded.archive, index: loaded.index };
    let launched = StateActor::launch(loaded.state, durable, state_config, backend)
        .map_err(|e| StartError(format!("cannot start the container back end: {e}")))?;
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
    tracing::info!("Zoe master listening on {scheme}://{addr}{}", crate::api::BASE);
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
        .configure(crate::api::configure)
        .configure(crate::proxy::configure)
        .configure(crate::web::configure)
        .default_service(web::to(crate::api::not_found))
}
