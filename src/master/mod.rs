//! Starting a master: lock the state directory, load (or create) the state, start the actors and
//! the HTTP server. `main` and the integration tests use the same [`start`].

mod load;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpServer};
use zoe_actors::backend::{Backend, DockerConfig, RelaySettings, TlsFiles};
use zoe_actors::logic::plan::PlanSettings;
use zoe_actors::state_actor::{Durable, StateActor, StateConfig};
use zoe_checkpoints::{Role, StateLock};

use crate::auth::Auth;
use crate::config::{MasterConfig, DEFAULT_ADMIN_PASSWORD};
use crate::limits::Limits;
use crate::passwords::Passwords;
use crate::AppData;

pub use load::{load_state, Loaded, StartProgress};

/// The largest response buffer of a connection (see `HttpServer::h1_write_buffer_size`).
const WRITE_BUFFER: usize = 256 * 1024;

/// Name of the first administrator.
pub const ADMIN_NAME: &str = "zoeadmin";

/// Why a master could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

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

/// Starts a master inside the current actix system. Whatever can stop a start (settings, TLS
/// files, the state directory's lock, the port) is checked before anything is started.
pub fn start(config: MasterConfig) -> Result<Running, StartError> {
    check_settings(&config)?;
    let workspace_base = absolute(&config.workspace_base_path)?;
    let datasets = crate::datasets::parse(&config.dataset).map_err(StartError)?;
    let workspaces = workspace_base.join(&config.deployment_name);
    let private = [("state directory", config.state_dir.as_path()), ("workspaces folder", workspaces.as_path())];
    crate::datasets::check_apart(&datasets, &private).map_err(StartError)?;
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
    // The port is taken before anything starts, so that a master that cannot have it stops here
    // with nothing to undo; it listens only once everything is ready.
    let sockets = bind(&config)?;
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
    let state_config = StateConfig {
        keep_checkpoints: config.keep_checkpoints,
        scheduler: config.scheduler(),
        plan: PlanSettings {
            workspace_base: workspace_base.clone(),
            default_cores: config.default_cores,
            publish_ports: config.publish_ports,
            workspace_quotas: config.workspace_quotas(),
            datasets: datasets.clone(),
        },
        allowed_registries: config.allowed_registry.clone(),
        history: config.history(),
        state_min_free: config.state_min_free,
    };
    let swarm_secret = match config.backend {
        crate::config::Backend::Swarm => Some(relay_secret(&config.state_dir)?),
        crate::config::Backend::Engine => None,
    };
    let auth = Auth::new(
        Duration::from_secs(config.auth_cache_seconds),
        config.login_failures_max,
        Duration::from_secs(config.login_failures_window),
        Passwords::new(config.auth_concurrency, Duration::from_secs(config.auth_wait_seconds)),
    )
    .map_err(StartError)?
    .with_directory(crate::ldap::Directory::from_config(&config).map_err(StartError)?)
    .with_audit_keep(config.audit_keep)
    .with_session_lifetime(Duration::from_secs_f64(config.session_hours * 3600.0));
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
        let relay = swarm_secret.clone().map(|secret| RelaySettings { image: config.relay_image.clone(), secret });
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
            log_dir: config.log_dir(),
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
    let dialer = match (&launched.backend, swarm_secret) {
        (Some(backend), Some(secret)) => crate::dial::Dialer::Relayed { relays: backend.relay.clone(), secret },
        _ => crate::dial::Dialer::Direct,
    };
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
            workspace_base,
            &config.deployment_name,
            config.workspace_quotas(),
            !config.no_docker && matches!(config.backend, crate::config::Backend::Engine),
        )),
        apps: Arc::new(crate::apps::Apps::new(&config.apps_domain)),
        datasets: Arc::new(crate::datasets::Datasets::new(datasets)),
    });
    crate::apps::spawn_sweeper(data.clone());
    if let Some(backend) = &data.backend {
        crate::sampler::spawn(
            Duration::from_secs(config.usage_interval),
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
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listen_error = |e: std::io::Error| {
        StartError(format!("cannot listen on {}:{}: {e}", config.listen_address, config.listen_port))
    };
    let mut server = server;
    for socket in sockets {
        let listener = socket.listen(BACKLOG).and_then(|l| l.into_std()).map_err(listen_error)?;
        server = match &tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls.clone()),
            None => server.listen(listener),
        }
        .map_err(listen_error)?;
    }
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

/// Checks the settings that the command line and the config file cannot check by themselves.
fn check_settings(config: &MasterConfig) -> Result<(), StartError> {
    let min_cores = zoe_checkpoints::model::limits::MIN_CORES;
    if !(config.default_cores >= min_cores && config.default_cores <= 256.0) {
        return Err(StartError(format!(
            "--default-cores must be at least {min_cores} (Docker's smallest CPU limit) and at most 256, got {}",
            config.default_cores
        )));
    }
    if !(config.session_hours > 0.0 && config.session_hours <= MAX_SESSION_HOURS) {
        return Err(StartError(format!(
            "--session-hours must be more than 0 and at most {MAX_SESSION_HOURS} (a year), got {}",
            config.session_hours
        )));
    }
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
    Ok(())
}

/// The longest web session allowed (`session-hours`): a year.
const MAX_SESSION_HOURS: f64 = 24.0 * 366.0;

/// Connections waiting to be accepted, at most (actix-web's default).
const BACKLOG: u32 = 1024;

/// Binds the master's address (every address its name has), without listening yet.
fn bind(config: &MasterConfig) -> Result<Vec<tokio::net::TcpSocket>, StartError> {
    let listen = (config.listen_address.as_str(), config.listen_port);
    let error = |e: std::io::Error| StartError(format!("cannot listen on {}:{}: {e}", listen.0, listen.1));
    let mut sockets = Vec::new();
    let mut failed = None;
    for addr in std::net::ToSocketAddrs::to_socket_addrs(&listen).map_err(error)? {
        let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() };
        match socket.and_then(|s| s.set_reuseaddr(true).and_then(|()| s.bind(addr)).map(|()| s)) {
            Ok(s) => sockets.push(s),
            Err(e) => failed = Some(e),
        }
    }
    match (sockets.is_empty(), failed) {
        (false, _) => Ok(sockets),
        (true, Some(e)) => Err(error(e)),
        (true, None) => Err(error(std::io::Error::other("the name has no address"))),
    }
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
        .configure(crate::apps::entry::configure)
        .configure(crate::web::configure)
        .default_service(web::to(crate::api::not_found))
}
