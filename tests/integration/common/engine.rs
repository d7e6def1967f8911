//! The Docker actor's test harness: a Docker engine back end of its own per test (deployment,
//! directory, event channel), what the tests ask of it, and the docker CLI around it.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Context, Handler};
use serde_json::Value;
use tokio::sync::mpsc;
use zoe_actors::backend::engine::{DockerActor, DockerConfig};
use zoe_actors::protocol::{BackendEvent, ContainerSpec, RemoveExecution, StartExecution, StartedContainer};

pub const IMAGE: &str = "zoe-test-busybox:latest";
/// The longest any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(60);
pub const OWNER: &str = "alice";
pub const MIB: u64 = 1 << 20;
/// The uid the test containers run as, like a Zoe user's.
pub const TEST_UID: u32 = 200_777;

static COUNTER: AtomicU32 = AtomicU32::new(0);

// ------------------------------------------------------------------------------------ helpers

/// Runs the docker CLI (bounded in time); panics when it cannot be run at all.
pub fn docker_cli(args: &[&str]) -> Output {
    crate::common::docker::docker(args)
}

/// Runs the docker CLI off the actor's thread.
pub async fn docker_cli_async(args: Vec<String>) -> Output {
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_cli(&args)
    })
    .await;
    match out {
        Ok(out) => out,
        Err(e) => panic!("the docker CLI task failed: {e}"),
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fails loudly unless Docker answers and the test image exists.
pub fn require_docker_and_image() {
    let out = docker_cli(&["image", "inspect", "--format", "{{.Id}}", IMAGE]);
    if out.status.success() {
        return;
    }
    let stderr = text(&out.stderr);
    if stderr.to_lowercase().contains("no such image") {
        panic!("the test image {IMAGE} is missing: run tests/images/build.sh ({stderr})");
    }
    panic!("Docker does not answer (is dockerd running?): {stderr}");
}

/// `docker inspect` (containers or networks) as JSON.
pub fn docker_inspect(kind: &str, name: &str) -> Value {
    let out = docker_cli(&[kind, "inspect", name]);
    assert!(out.status.success(), "docker {kind} inspect {name} failed: {}", text(&out.stderr));
    let list: Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => panic!("docker {kind} inspect {name} printed no JSON: {e}"),
    };
    list[0].clone()
}

/// Names of the containers carrying all these labels, running or not.
pub fn containers_with_labels(labels: &[(&str, &str)]) -> Vec<String> {
    let mut args = vec!["ps".to_string(), "-a".to_string()];
    for (k, v) in labels {
        args.push("--filter".to_string());
        args.push(format!("label={k}={v}"));
    }
    args.push("--format".to_string());
    args.push("{{.Names}}".to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = docker_cli(&args);
    assert!(out.status.success(), "docker ps failed: {}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_string).collect()
}

/// Removes every container, image and network of a deployment (best effort; used on drop).
pub fn remove_deployment(dep: &str) {
    crate::common::docker::remove_deployment(dep);
    let filter = format!("label=zoe.deployment_name={dep}");
    let out = docker_cli(&["images", "-q", "--filter", &filter]);
    for image in text(&out.stdout).split_whitespace() {
        let _ = docker_cli(&["rmi", "-f", image]);
    }
}

/// Cleans a deployment up when dropped, including during a panic.
struct Cleanup {
    dep: String,
    dir: PathBuf,
    docker: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.docker {
            remove_deployment(&self.dep);
        }
        crate::common::unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Forwards the Docker actor's events into a channel the test reads.
struct Forward(mpsc::UnboundedSender<BackendEvent>);

impl Actor for Forward {
    type Context = Context<Self>;
}

impl Handler<BackendEvent> for Forward {
    type Result = ();

    fn handle(&mut self, event: BackendEvent, _ctx: &mut Context<Self>) {
        let _ = self.0.send(event);
    }
}

/// A Docker actor for one test, with its own deployment, directory and event channel.
pub struct Harness {
    pub dep: String,
    pub dir: PathBuf,
    pub docker: Addr<DockerActor>,
    pub events: mpsc::UnboundedReceiver<BackendEvent>,
    /// Events received but not yet asked for.
    pub backlog: VecDeque<BackendEvent>,
    _cleanup: Cleanup,
}

impl Harness {
    /// Must run inside an actix System.
    pub fn new(configure: impl FnOnce(&mut DockerConfig)) -> Self {
        Self::build(true, configure)
    }

    pub fn build(needs_docker: bool, configure: impl FnOnce(&mut DockerConfig)) -> Self {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
        if needs_docker {
            require_docker_and_image();
        }
        let dep = format!("t{}{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        let dir = std::env::temp_dir().join(format!("zoe-docker-test-{dep}"));
        let cleanup = Cleanup { dep: dep.clone(), dir: dir.clone(), docker: needs_docker };
        if needs_docker {
            remove_deployment(&dep);
        }
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        let mut config = DockerConfig::new(dep.clone());
        // The same engine as the docker CLI these tests also use.
        config.docker_host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
        config.call_timeout = Duration::from_secs(30);
        config.pull_timeout = Duration::from_secs(30);
        config.stop_grace = Duration::from_secs(3);
        config.log_dir = dir.join("logs");
        config.log_tail_bytes = 4096;
        config.reconcile_interval = Duration::from_secs(300);
        configure(&mut config);
        let (tx, events) = mpsc::unbounded_channel();
        let forward = Forward(tx).start();
        let docker = match DockerActor::new(config, forward.recipient()) {
            Ok(actor) => actor.start(),
            Err(e) => panic!("the Docker actor refused its configuration: {e}"),
        };
        Harness { dep, dir, docker, events, backlog: VecDeque::new(), _cleanup: cleanup }
    }

    pub fn network(&self) -> String {
        format!("{OWNER}-{}", self.dep)
    }

    pub fn container_name(&self, execution: u64, service: &str, index: Option<u32>) -> String {
        match index {
            Some(i) => format!("{service}-{i}-e{execution}-{OWNER}-{}", self.dep),
            None => format!("{service}-e{execution}-{OWNER}-{}", self.dep),
        }
    }

    /// A container of this test's deployment, with Zoe's labels.
    pub fn spec(
        &self,
        execution: u64,
        service: &str,
        index: Option<u32>,
        service_id: u64,
        cmd: &[&str],
    ) -> ContainerSpec {
        let name = self.container_name(execution, service, index);
        let service_name = match index {
            Some(i) => format!("{service}-{i}"),
            None => service.to_string(),
        };
        let labels = BTreeMap::from([
            ("zoe.deployment_name".to_string(), self.dep.clone()),
            ("zoe.owner".to_string(), OWNER.to_string()),
            ("zoe.execution.name".to_string(), format!("e{execution}")),
            ("zoe.execution.id".to_string(), execution.to_string()),
            ("zoe.service.name".to_string(), service_name),
            ("zoe.service.id".to_string(), service_id.to_string()),
            ("zoe.type".to_string(), "app_service".to_string()),
            ("zoe.monitor".to_string(), "false".to_string()),
        ]);
        ContainerSpec {
            service_id,
            name,
            image: IMAGE.to_string(),
            env: vec![format!("ZOE_TEST_SERVICE={service}")],
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            labels,
            uid: TEST_UID,
            memory: 32 * MIB,
            nano_cpus: 1_000_000_000,
            exposed_ports: Vec::new(),
            workspace: None,
            datasets: Vec::new(),
            startup_order: 0,
        }
    }

    pub fn send_start(&self, execution_id: u64, containers: Vec<ContainerSpec>) {
        self.docker.do_send(StartExecution {
            execution_id,
            network: self.network(),
            owner: OWNER.to_string(),
            containers,
            grow: false,
        });
    }

    /// Waits for the first event (received earlier or later) that `pick` accepts.
    pub async fn wait_for<T>(&mut self, what: &str, mut pick: impl FnMut(&BackendEvent) -> Option<T>) -> T {
        if let Some(pos) = self.backlog.iter().position(|e| pick(e).is_some()) {
            if let Some(event) = self.backlog.remove(pos) {
                if let Some(found) = pick(&event) {
                    return found;
                }
            }
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let event = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => panic!("the event channel closed while waiting for {what}"),
                Err(_) => panic!("no {what} within {WAIT:?}; events seen meanwhile: {:?}", self.backlog),
            };
            if let Some(found) = pick(&event) {
                return found;
            }
            self.backlog.push_back(event);
        }
    }

    /// The outcome of starting this execution.
    pub async fn start_outcome(&mut self, execution: u64) -> Result<Vec<StartedContainer>, String> {
        self.wait_for(&format!("start outcome of execution {execution}"), |e| match e {
            BackendEvent::ExecutionStarted { execution_id, containers } if *execution_id == execution => {
                Some(Ok(containers.clone()))
            }
            BackendEvent::ExecutionStartFailed { execution_id, error, .. } if *execution_id == execution => {
                Some(Err(error.clone()))
            }
            _ => None,
        })
        .await
    }

    pub async fn start(&mut self, execution: u64, containers: Vec<ContainerSpec>) -> Vec<StartedContainer> {
        self.send_start(execution, containers);
        match self.start_outcome(execution).await {
            Ok(started) => started,
            Err(e) => panic!("execution {execution} failed to start: {e}"),
        }
    }

    pub async fn start_failure(&mut self, execution: u64, containers: Vec<ContainerSpec>) -> String {
        self.send_start(execution, containers);
        match self.start_outcome(execution).await {
            Ok(started) => panic!("execution {execution} started but should not have: {started:?}"),
            Err(e) => e,
        }
    }

    pub async fn remove(&mut self, execution: u64, containers: Vec<(u64, String)>) -> Option<String> {
        self.docker.do_send(RemoveExecution { execution_id: execution, containers });
        self.wait_for(&format!("removal of execution {execution}"), |e| match e {
            BackendEvent::ExecutionRemoved { execution_id, error } if *execution_id == execution => Some(error.clone()),
            _ => None,
        })
        .await
    }

    /// (exit code, OOM killed) of a service's container.
    pub async fn exited(&mut self, execution: u64, service: u64) -> (i64, bool) {
        self.wait_for(&format!("exit of service {service}"), |e| match e {
            BackendEvent::ContainerExited { execution_id, service_id, exit_code, oom_killed, .. }
                if *execution_id == execution && *service_id == service =>
            {
                Some((*exit_code, *oom_killed))
            }
            _ => None,
        })
        .await
    }

    pub fn leftovers(&self, execution: u64) -> Vec<String> {
        containers_with_labels(&[("zoe.deployment_name", &self.dep), ("zoe.execution.id", &execution.to_string())])
    }
}

pub fn targets(specs: &[ContainerSpec]) -> Vec<(u64, String)> {
    specs.iter().map(|s| (s.service_id, s.name.clone())).collect()
}

/// Polls a container's log (CLI) until it contains `needle`.
pub async fn wait_for_log(container: &str, needle: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = docker_cli_async(vec!["logs".into(), container.into()]).await;
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        if all.contains(needle) {
            return;
        }
        assert!(Instant::now() < deadline, "{container} never logged {needle:?}; its log: {all}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until `done` says so.
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a command in a container; returns (success, stdout + stderr).
pub async fn exec(container: &str, cmd: &[&str]) -> (bool, String) {
    let mut args = vec!["exec".to_string(), container.to_string()];
    args.extend(cmd.iter().map(|s| s.to_string()));
    let out = docker_cli_async(args).await;
    (out.status.success(), format!("{}{}", text(&out.stdout), text(&out.stderr)))
}

/// An HTTP GET from the host, retried for a few seconds while the server comes up.
pub async fn http_get(url: String) -> String {
    let result = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build().into();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let attempt = agent.get(&url).call().and_then(|mut r| r.body_mut().read_to_string());
            match attempt {
                Ok(body) => return Ok(body),
                Err(e) if Instant::now() > deadline => return Err(format!("GET {url}: {e}")),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    })
    .await;
    match result {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => panic!("{e}"),
        Err(e) => panic!("the HTTP task failed: {e}"),
    }
}

pub async fn collect_logs(mut stream: zoe_actors::protocol::LogStream) -> String {
    let mut all = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, stream.recv()).await {
            Ok(Some(Ok(chunk))) => all.extend_from_slice(&chunk),
            Ok(Some(Err(e))) => panic!("the log stream failed: {e}"),
            Ok(None) => return text(&all),
            Err(_) => panic!("the log stream did not end within {WAIT:?}; so far: {}", text(&all)),
        }
    }
}

pub fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
