//! The Docker actor against the real Docker Engine: no mocks.
//!
//! These tests need a running Docker Engine and the local image built by
//! `tests/images/build.sh` (`zoe-test-busybox:latest`; nothing can be pulled). They fail, loudly,
//! when either is missing; they never skip. Each test uses its own deployment name, and removes
//! every container and network labelled with it when it ends, passed or failed.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Context, Handler};

use crate::common::proxy::{Proxy, ProxyMode};
use serde_json::Value;
use tokio::sync::mpsc;
use zoe_actors::backend::engine::{DockerActor, DockerConfig};
use zoe_actors::protocol::{
    BackendEvent, ContainerInfo, ContainerSpec, ExposedPort, Reconcile, RemoveContainers, RemoveExecution,
    RemoveNetwork, ServiceLogs, StartExecution, StartedContainer, Transport, Workspace,
};

const IMAGE: &str = "zoe-test-busybox:latest";
/// The longest any single expected event may take.
const WAIT: Duration = Duration::from_secs(60);
const OWNER: &str = "alice";
const MIB: u64 = 1 << 20;
/// The uid the test containers run as, like a Zoe user's.
const TEST_UID: u32 = 200_777;

static COUNTER: AtomicU32 = AtomicU32::new(0);

// ------------------------------------------------------------------------------------ helpers

/// Runs the docker CLI (bounded in time); panics when it cannot be run at all.
fn docker_cli(args: &[&str]) -> Output {
    crate::common::docker::docker(args)
}

/// Runs the docker CLI off the actor's thread.
async fn docker_cli_async(args: Vec<String>) -> Output {
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

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fails loudly unless Docker answers and the test image exists.
fn require_docker_and_image() {
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
fn docker_inspect(kind: &str, name: &str) -> Value {
    let out = docker_cli(&[kind, "inspect", name]);
    assert!(out.status.success(), "docker {kind} inspect {name} failed: {}", text(&out.stderr));
    let list: Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => panic!("docker {kind} inspect {name} printed no JSON: {e}"),
    };
    list[0].clone()
}

/// Names of the containers carrying all these labels, running or not.
fn containers_with_labels(labels: &[(&str, &str)]) -> Vec<String> {
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
fn remove_deployment(dep: &str) {
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
struct Harness {
    dep: String,
    dir: PathBuf,
    docker: Addr<DockerActor>,
    events: mpsc::UnboundedReceiver<BackendEvent>,
    /// Events received but not yet asked for.
    backlog: VecDeque<BackendEvent>,
    _cleanup: Cleanup,
}

impl Harness {
    /// Must run inside an actix System.
    fn new(configure: impl FnOnce(&mut DockerConfig)) -> Self {
        Self::build(true, configure)
    }

    fn build(needs_docker: bool, configure: impl FnOnce(&mut DockerConfig)) -> Self {
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

    fn network(&self) -> String {
        format!("{OWNER}-{}", self.dep)
    }

    fn container_name(&self, execution: u64, service: &str, index: Option<u32>) -> String {
        match index {
            Some(i) => format!("{service}-{i}-e{execution}-{OWNER}-{}", self.dep),
            None => format!("{service}-e{execution}-{OWNER}-{}", self.dep),
        }
    }

    /// A container of this test's deployment, with Zoe's labels.
    fn spec(&self, execution: u64, service: &str, index: Option<u32>, service_id: u64, cmd: &[&str]) -> ContainerSpec {
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
            startup_order: 0,
        }
    }

    fn send_start(&self, execution_id: u64, containers: Vec<ContainerSpec>) {
        self.docker.do_send(StartExecution {
            execution_id,
            network: self.network(),
            owner: OWNER.to_string(),
            containers,
            grow: false,
        });
    }

    /// Waits for the first event (received earlier or later) that `pick` accepts.
    async fn wait_for<T>(&mut self, what: &str, mut pick: impl FnMut(&BackendEvent) -> Option<T>) -> T {
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
    async fn start_outcome(&mut self, execution: u64) -> Result<Vec<StartedContainer>, String> {
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

    async fn start(&mut self, execution: u64, containers: Vec<ContainerSpec>) -> Vec<StartedContainer> {
        self.send_start(execution, containers);
        match self.start_outcome(execution).await {
            Ok(started) => started,
            Err(e) => panic!("execution {execution} failed to start: {e}"),
        }
    }

    async fn start_failure(&mut self, execution: u64, containers: Vec<ContainerSpec>) -> String {
        self.send_start(execution, containers);
        match self.start_outcome(execution).await {
            Ok(started) => panic!("execution {execution} started but should not have: {started:?}"),
            Err(e) => e,
        }
    }

    async fn remove(&mut self, execution: u64, containers: Vec<(u64, String)>) -> Option<String> {
        self.docker.do_send(RemoveExecution { execution_id: execution, containers });
        self.wait_for(&format!("removal of execution {execution}"), |e| match e {
            BackendEvent::ExecutionRemoved { execution_id, error } if *execution_id == execution => Some(error.clone()),
            _ => None,
        })
        .await
    }

    /// (exit code, OOM killed) of a service's container.
    async fn exited(&mut self, execution: u64, service: u64) -> (i64, bool) {
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

    fn leftovers(&self, execution: u64) -> Vec<String> {
        containers_with_labels(&[("zoe.deployment_name", &self.dep), ("zoe.execution.id", &execution.to_string())])
    }
}

fn targets(specs: &[ContainerSpec]) -> Vec<(u64, String)> {
    specs.iter().map(|s| (s.service_id, s.name.clone())).collect()
}

/// Polls a container's log (CLI) until it contains `needle`.
async fn wait_for_log(container: &str, needle: &str) {
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
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a command in a container; returns (success, stdout + stderr).
async fn exec(container: &str, cmd: &[&str]) -> (bool, String) {
    let mut args = vec!["exec".to_string(), container.to_string()];
    args.extend(cmd.iter().map(|s| s.to_string()));
    let out = docker_cli_async(args).await;
    (out.status.success(), format!("{}{}", text(&out.stdout), text(&out.stderr)))
}

/// An HTTP GET from the host, retried for a few seconds while the server comes up.
async fn http_get(url: String) -> String {
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

async fn collect_logs(mut stream: zoe_actors::protocol::LogStream) -> String {
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

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

// -------------------------------------------------------------------------------------- tests

/// Three containers in two startup groups on the user's network: web (busybox httpd serving
/// the workspace, port published) and two clients. Checks what Docker was told, name resolution
/// and HTTP between containers, HTTP from the host, then removal.
#[actix::test]
async fn starts_an_execution_on_the_user_network() {
    let mut h = Harness::new(|_| {});
    let ws = h.dir.join("workspace");
    if let Err(e) =
        std::fs::create_dir_all(&ws).and_then(|()| std::fs::write(ws.join("index.html"), "hello from zoe\n"))
    {
        panic!("cannot prepare the workspace: {e}");
    }
    let workspace =
        Some(Workspace { host: ws.clone(), container: "/mnt/workspace".to_string(), uid: TEST_UID, quota: 64 * MIB });

    let mut web = h.spec(1, "web", None, 10, &["httpd", "-f", "-p", "8080", "-h", "/mnt/workspace"]);
    web.exposed_ports = vec![ExposedPort { port: 8080, transport: Transport::Tcp }];
    web.workspace = workspace.clone();
    web.memory = 64 * MIB;
    web.nano_cpus = 500_000_000;
    let mut clients = Vec::new();
    for (i, sid) in [(0, 11), (1, 12)] {
        let mut c = h.spec(1, "client", Some(i), sid, &["sh", "-c", "sleep 300"]);
        c.startup_order = 1;
        c.workspace = workspace.clone();
        clients.push(c);
    }
    // Out of order on purpose: startup_order decides.
    let specs = vec![clients[0].clone(), web.clone(), clients[1].clone()];

    let t0 = Instant::now();
    let started = h.start(1, specs.clone()).await;
    eprintln!("started 3 containers in {:?}", t0.elapsed());

    assert_eq!(
        started.iter().map(|c| c.service_id).collect::<Vec<_>>(),
        vec![10, 11, 12],
        "containers are reported in startup order"
    );
    let network = h.network();
    for c in &started {
        assert!(!c.docker_id.is_empty());
        assert!(c.ip_address.get(&network).is_some_and(|ip| !ip.is_empty()), "no IP on {network}: {c:?}");
    }
    let web_started = &started[0];
    let endpoint = match web_started.host_endpoints.get("8080/tcp") {
        Some(e) => e.clone(),
        None => panic!("port 8080 of web was not published: {web_started:?}"),
    };
    assert!(endpoint.starts_with("127.0.0.1:"), "endpoint {endpoint}");
    assert!(started[1].host_endpoints.is_empty());

    // What Docker was told.
    let v = docker_inspect("container", &web.name);
    assert_eq!(v["Id"], web_started.docker_id.as_str());
    assert_eq!(v["Name"], format!("/{}", web.name).as_str());
    assert_eq!(v["Config"]["Hostname"], web.name.as_str());
    assert_eq!(v["Config"]["Image"], IMAGE);
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["httpd", "-f", "-p", "8080", "-h", "/mnt/workspace"]));
    assert!(v["Config"]["Env"].as_array().is_some_and(|env| env.iter().any(|e| e == "ZOE_TEST_SERVICE=web")));
    let labels = &v["Config"]["Labels"];
    for (k, want) in &web.labels {
        assert_eq!(labels[k], want.as_str(), "label {k}");
    }
    let hc = &v["HostConfig"];
    assert_eq!(hc["NetworkMode"], network.as_str());
    assert_eq!(hc["Memory"], 64 * MIB);
    assert_eq!(hc["MemorySwap"], 64 * MIB);
    assert_eq!(hc["NanoCpus"], 500_000_000);
    assert_eq!(hc["Init"], true);
    assert_eq!(hc["Privileged"], false);
    assert!(hc["CapAdd"].is_null() || hc["CapAdd"] == serde_json::json!([]));
    // Never root, no capabilities, no new privileges, bounded processes and logs.
    assert_eq!(v["Config"]["User"], format!("{TEST_UID}:{TEST_UID}").as_str());
    assert_eq!(hc["CapDrop"], serde_json::json!(["ALL"]));
    assert_eq!(hc["SecurityOpt"], serde_json::json!(["no-new-privileges"]));
    assert_eq!(hc["PidsLimit"], 1024);
    assert_eq!(hc["LogConfig"]["Config"], serde_json::json!({"max-size": "10485760", "max-file": "2"}));
    assert!(matches!(hc["RestartPolicy"]["Name"].as_str(), Some("" | "no")));
    assert_eq!(hc["LogConfig"]["Type"], "json-file");
    assert_eq!(hc["Binds"], serde_json::json!([format!("{}:/mnt/workspace:rw", path_str(&ws))]));
    // Nothing written outside the workspace reaches a disk: a read-only root, and /tmp in memory
    // (at most the memory limit, which its pages count in).
    assert_eq!(hc["ReadonlyRootfs"], true);
    assert_eq!(hc["Tmpfs"], serde_json::json!({"/tmp": format!("rw,exec,nosuid,nodev,size={},mode=1777", 64 * MIB)}));
    assert_eq!(hc["PortBindings"]["8080/tcp"][0]["HostIp"], "127.0.0.1", "ports are published on the publish address");
    assert!(v["State"]["Running"] == true);
    let c0 = docker_inspect("container", &clients[0].name);
    assert_eq!(c0["Config"]["Hostname"], clients[0].name.as_str());
    assert_eq!(c0["HostConfig"]["Memory"], 32 * MIB);
    assert_eq!(c0["HostConfig"]["NanoCpus"], 1_000_000_000, "a CPU limit even without cores");

    let net = docker_inspect("network", &network);
    assert_eq!(net["Driver"], "bridge");
    assert_eq!(net["Labels"]["zoe.deployment_name"], h.dep.as_str());
    assert_eq!(net["Labels"]["zoe.owner"], OWNER);

    // Name resolution and HTTP inside the user network.
    let web_ip = web_started.ip_address[&network].clone();
    let (ok, out) = exec(&clients[0].name, &["nslookup", &web.name]).await;
    assert!(ok && out.contains(&web_ip), "nslookup {} -> {out}", web.name);
    // No capabilities: no raw sockets (ping); TCP to the other service works (wget below).
    let (ok, out) = exec(&clients[1].name, &["ping", "-c", "1", "-W", "5", &web.name]).await;
    assert!(!ok, "ping needs CAP_NET_RAW, which containers do not have: {out}");
    let url = format!("http://{}:8080/", web.name);
    let (ok, out) = exec(&clients[0].name, &["timeout", "5", "wget", "-q", "-O-", &url]).await;
    assert!(ok && out.contains("hello from zoe"), "wget {url} -> {out}");
    // The workspace is shared and writable.
    let (ok, out) = exec(&clients[1].name, &["sh", "-c", "echo written > /mnt/workspace/from-client"]).await;
    assert!(ok, "write to the workspace: {out}");
    assert_eq!(std::fs::read_to_string(ws.join("from-client")).ok().as_deref(), Some("written\n"));
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let owner = |p: &Path| std::fs::metadata(p).map(|m| (m.uid(), m.permissions().mode() & 0o7777)).ok();
        assert_eq!(owner(&ws), Some((TEST_UID, 0o700)), "the workspace is the user's alone");
        assert_eq!(owner(&ws.join("from-client")).map(|o| o.0), Some(TEST_UID), "files written are the user's");
    }

    // HTTP from the host, through the published port.
    let body = http_get(format!("http://{endpoint}/")).await;
    assert_eq!(body, "hello from zoe\n");

    let t0 = Instant::now();
    assert_eq!(h.remove(1, targets(&specs)).await, None);
    eprintln!("removed 3 containers in {:?}", t0.elapsed());
    assert_eq!(h.leftovers(1), Vec::<String>::new());

    // The user's network goes too, when asked (and asking twice is harmless).
    h.docker.do_send(RemoveNetwork { network: network.clone() });
    h.docker.do_send(RemoveNetwork { network: network.clone() });
    let filter = format!("name=^{network}$");
    wait_until("the network is removed", || {
        let out = docker_cli(&["network", "ls", "-q", "--filter", &filter]);
        out.status.success() && text(&out.stdout).trim().is_empty()
    })
    .await;
}

/// A missing image cannot be pulled (there is no registry): the start fails with a message
/// naming the image, and nothing is left.
#[actix::test]
async fn a_missing_image_fails_the_start() {
    let mut h = Harness::new(|_| {});
    let ok = h.spec(2, "ok", None, 20, &["sleep", "300"]);
    let mut missing = h.spec(2, "missing", None, 21, &["sleep", "300"]);
    missing.image = "zoe-test-missing:1".to_string();
    missing.startup_order = 1;
    let t0 = Instant::now();
    let error = h.start_failure(2, vec![ok, missing]).await;
    eprintln!("missing image reported in {:?}: {error}", t0.elapsed());
    assert!(
        error.starts_with("image \"zoe-test-missing:1\" is not present on this engine and could not be pulled: "),
        "{error}"
    );
    assert_eq!(h.leftovers(2), Vec::<String>::new());
}

/// Growing a running execution: new containers start next to the running ones and are reported
/// as `InstancesStarted`; a grow that fails (here a missing image) removes what it created and
/// nothing else of the execution, and says which instances failed.
#[actix::test]
async fn a_grow_adds_containers_and_a_failed_grow_leaves_the_execution_alone() {
    let mut h = Harness::new(|_| {});
    let base = h.spec(9, "base", None, 90, &["sleep", "300"]);
    let base_name = base.name.clone();
    h.start(9, vec![base.clone()]).await;
    let grown = h.spec(9, "worker", Some(1), 91, &["sleep", "300"]);
    let network = h.network();
    let grow = |containers: Vec<ContainerSpec>| StartExecution {
        execution_id: 9,
        network: network.clone(),
        owner: OWNER.to_string(),
        containers,
        grow: true,
    };
    h.docker.do_send(grow(vec![grown.clone()]));
    let started = h
        .wait_for("the grow", |e| match e {
            BackendEvent::InstancesStarted { execution_id: 9, containers } => Some(containers.clone()),
            _ => None,
        })
        .await;
    assert_eq!(started.iter().map(|c| c.service_id).collect::<Vec<_>>(), vec![91]);
    let mut names = h.leftovers(9);
    names.sort();
    assert_eq!(names, {
        let mut v = vec![base_name.clone(), grown.name.clone()];
        v.sort();
        v
    });
    // A grow of one good and one missing image: both go, the running ones stay.
    let good = h.spec(9, "worker", Some(2), 92, &["sleep", "300"]);
    let mut missing = h.spec(9, "worker", Some(3), 93, &["sleep", "300"]);
    missing.image = "zoe-test-missing:1".to_string();
    missing.startup_order = 1;
    h.docker.do_send(grow(vec![good, missing]));
    let (ids, error) = h
        .wait_for("the failed grow", |e| match e {
            BackendEvent::InstancesStartFailed { execution_id: 9, service_ids, error, .. } => {
                Some((service_ids.clone(), error.clone()))
            }
            _ => None,
        })
        .await;
    assert_eq!(ids, vec![92, 93]);
    assert!(error.contains("zoe-test-missing:1"), "{error}");
    let mut left = h.leftovers(9);
    left.sort();
    let mut want = vec![base_name, grown.name.clone()];
    want.sort();
    assert_eq!(left, want, "the failed grow removed only what it created");
    let all = targets(&[base, grown]);
    assert_eq!(h.remove(9, all).await, None);
    assert_eq!(h.leftovers(9), Vec::<String>::new());
}

/// A command that cannot be run fails the start even though the first container was already
/// running, and every container of the execution is removed.
#[actix::test]
async fn a_command_that_cannot_run_fails_the_start() {
    let mut h = Harness::new(|_| {});
    let first = h.spec(3, "first", None, 30, &["sleep", "300"]);
    let mut bad = h.spec(3, "bad", None, 31, &["nosuchcmd", "--flag"]);
    bad.startup_order = 1;
    let error = h.start_failure(3, vec![first.clone(), bad.clone()]).await;
    eprintln!("bad command: {error}");
    assert!(error.contains("\"nosuchcmd\"") && error.contains("not found"), "{error}");
    assert!(error.contains(&bad.name), "{error}");
    assert_eq!(h.leftovers(3), Vec::<String>::new());

    let mut not_exec = h.spec(4, "notexec", None, 40, &["/etc/passwd"]);
    not_exec.startup_order = 0;
    let error = h.start_failure(4, vec![not_exec]).await;
    eprintln!("not executable: {error}");
    assert!(error.contains("/etc/passwd"), "{error}");
    assert_eq!(h.leftovers(4), Vec::<String>::new());

    let missing_path = h.spec(5, "nopath", None, 50, &["/no/such/prog"]);
    let error = h.start_failure(5, vec![missing_path]).await;
    eprintln!("missing path: {error}");
    assert!(error.contains("/no/such/prog"), "{error}");
    assert_eq!(h.leftovers(5), Vec::<String>::new());

    // An image whose own entrypoint is missing (made here with `docker commit`; the image
    // carries the deployment label, so the cleanup removes it).
    let base = format!("base-{}", h.dep);
    let label = format!("zoe.deployment_name={}", h.dep);
    let out =
        docker_cli_async(vec!["create".into(), "--name".into(), base.clone(), "--label".into(), label, IMAGE.into()])
            .await;
    assert!(out.status.success(), "docker create: {}", text(&out.stderr));
    let bad_image = format!("zoe-test-badentry-{}:latest", h.dep);
    let out = docker_cli_async(vec![
        "commit".into(),
        "--change".into(),
        r#"ENTRYPOINT ["/opt/missing-entry"]"#.into(),
        base.clone(),
        bad_image.clone(),
    ])
    .await;
    assert!(out.status.success(), "docker commit: {}", text(&out.stderr));
    let mut bad_entry = h.spec(6, "badentry", None, 60, &["sleep", "1"]);
    bad_entry.image = bad_image;
    let error = h.start_failure(6, vec![bad_entry]).await;
    eprintln!("missing entrypoint: {error}");
    assert!(error.contains("\"/opt/missing-entry\" (the image's entrypoint)"), "{error}");
    assert_eq!(h.leftovers(6), Vec::<String>::new());
}

/// Exit codes and OOM kills are reported; two executions of one user start concurrently and
/// share one network.
#[actix::test]
async fn reports_exit_codes_and_oom_kills() {
    let mut h = Harness::new(|_| {});
    let job = h.spec(6, "job", None, 60, &["sh", "-c", "echo bye; exit 3"]);
    let mut hog = h.spec(7, "hog", None, 70, &["sh", "-c", "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo ${#x}"]);
    hog.memory = 8 * MIB;
    h.send_start(6, vec![job.clone()]);
    h.send_start(7, vec![hog.clone()]);
    let t0 = Instant::now();
    let started_job = h.start_outcome(6).await;
    let started_hog = h.start_outcome(7).await;
    assert!(started_job.is_ok(), "{started_job:?}");
    assert!(started_hog.is_ok(), "{started_hog:?}");

    assert_eq!(h.exited(6, 60).await, (3, false));
    let (code, oom) = h.exited(7, 70).await;
    eprintln!("exit code and OOM kill reported in {:?}", t0.elapsed());
    assert!(oom, "the hog was not reported as OOM killed (exit code {code})");
    assert_eq!(code, 137);

    let net = format!("^{}$", h.network());
    let out = docker_cli(&["network", "ls", "-q", "--filter", &format!("name={net}")]);
    assert_eq!(text(&out.stdout).lines().count(), 1, "one network for the user, even with concurrent starts");

    assert_eq!(h.remove(6, targets(&[job])).await, None);
    assert_eq!(h.remove(7, targets(&[hog])).await, None);
    assert_eq!(h.leftovers(6), Vec::<String>::new());
    assert_eq!(h.leftovers(7), Vec::<String>::new());
}

/// Removal stops and removes every container of the execution (also one not named in the
/// request) and keeps the end of each log.
#[actix::test]
async fn removal_stops_everything_and_keeps_log_tails() {
    let mut h = Harness::new(|c| c.log_tail_bytes = 200);
    let a = h.spec(8, "a", None, 80, &["sh", "-c", "echo zoe-log-marker-A; echo to-stderr >&2; sleep 300"]);
    let b = h.spec(
        8,
        "b",
        None,
        81,
        &["sh", "-c", "i=0; while [ $i -lt 500 ]; do echo line-$i; i=$((i+1)); done; echo last-line-B; sleep 300"],
    );
    let unnamed = h.spec(8, "c", None, 82, &["sh", "-c", "echo unnamed; sleep 300"]);
    h.start(8, vec![a.clone(), b.clone(), unnamed.clone()]).await;
    wait_for_log(&a.name, "to-stderr").await;
    wait_for_log(&b.name, "last-line-B").await;
    wait_for_log(&unnamed.name, "unnamed").await;

    let t0 = Instant::now();
    let error = h.remove(8, targets(&[a, b])).await;
    let took = t0.elapsed();
    eprintln!("removed 3 containers in {took:?}");
    assert_eq!(error, None);
    assert!(
        took < Duration::from_secs(3),
        "stopping took {took:?}: SIGTERM should end these containers at once (Init)"
    );
    assert_eq!(h.leftovers(8), Vec::<String>::new());

    let read = |sid: u64| {
        let path = h.dir.join("logs").join(format!("{sid}.log"));
        match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) => panic!("no log tail at {}: {e}", path.display()),
        }
    };
    let log_a = read(80);
    assert!(log_a.contains("zoe-log-marker-A\n") && log_a.contains("to-stderr\n"), "{log_a:?}");
    let log_b = read(81);
    assert!(log_b.len() <= 200, "the tail is {} bytes", log_b.len());
    assert!(log_b.len() > 150, "the tail is only {} bytes", log_b.len());
    assert!(log_b.ends_with("line-499\nlast-line-B\n"), "{log_b:?}");
    assert_eq!(read(82), "unnamed\n");
}

/// An inventory lists the deployment's containers with their ids and states, and the
/// engine's info follows.
#[actix::test]
async fn reconcile_reports_the_containers() {
    let mut h = Harness::new(|_| {});
    let s0 = h.spec(9, "s", Some(0), 90, &["sleep", "300"]);
    let s1 = h.spec(9, "s", Some(1), 91, &["sleep", "300"]);
    let done = h.spec(9, "done", None, 92, &["sh", "-c", "exit 7"]);
    let started = h.start(9, vec![s0.clone(), s1.clone(), done.clone()]).await;
    assert_eq!(h.exited(9, 92).await, (7, false));
    // A container of the deployment Zoe knows nothing about (no ids, no init: it ignores
    // SIGTERM, so removing it takes the grace time and a kill).
    let orphan = format!("orphan-{}", h.dep);
    let out = docker_cli_async(vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        orphan.clone(),
        "--label".into(),
        format!("zoe.deployment_name={}", h.dep),
        IMAGE.into(),
        "sleep".into(),
        "300".into(),
    ])
    .await;
    assert!(out.status.success(), "docker run: {}", text(&out.stderr));

    h.docker.do_send(Reconcile);
    let t0 = Instant::now();
    // The first inventory that saw all of them, the third one stopped.
    let inventory = h
        .wait_for("an inventory", |e| match e {
            BackendEvent::Inventory { containers }
                if containers
                    .iter()
                    .filter(|c| c.execution_id == Some(9) && (c.service_id != Some(92) || !c.running))
                    .count()
                    == 3
                    && containers.iter().any(|c| c.name == orphan) =>
            {
                Some(containers.clone())
            }
            _ => None,
        })
        .await;
    let orphan_info = inventory.iter().find(|c| c.name == orphan).cloned();
    assert!(
        orphan_info.as_ref().is_some_and(|o| o.running && o.execution_id.is_none() && o.service_id.is_none()),
        "{orphan_info:?}"
    );
    eprintln!("inventory in {:?}", t0.elapsed());
    let mut mine: Vec<ContainerInfo> = inventory.into_iter().filter(|c| c.execution_id == Some(9)).collect();
    mine.sort_by_key(|c| c.service_id);
    assert_eq!(mine.len(), 3, "{mine:?}");
    for (info, (spec, running, exit)) in
        mine.iter().zip([(&s0, true, None), (&s1, true, None), (&done, false, Some(7))])
    {
        assert_eq!(info.name, spec.name);
        assert_eq!(info.service_id, Some(spec.service_id));
        assert_eq!(info.running, running, "{info:?}");
        assert_eq!(info.exit_code, exit, "{info:?}");
        assert!(!info.oom_killed);
        let docker_id = started.iter().find(|c| c.service_id == spec.service_id).map(|c| c.docker_id.clone());
        assert_eq!(Some(info.docker_id.clone()), docker_id);
    }
    // The engine's info that follows this inventory (not the one taken at start-up).
    let platform = h
        .wait_for("platform info", |e| match e {
            BackendEvent::Platform(p) if p.containers_running >= 2 => Some(p.clone()),
            _ => None,
        })
        .await;
    assert!(platform.cpus > 0 && platform.memory_total > 0, "{platform:?}");
    assert!(platform.containers_running >= 2 && platform.images >= 1, "{platform:?}");
    assert!(!platform.server_version.is_empty(), "{platform:?}");

    // Orphans are removed on request.
    let t0 = Instant::now();
    h.docker.do_send(RemoveContainers { names_or_ids: vec![orphan.clone(), format!("no-such-{}", h.dep)] });
    let filter = format!("name=^{orphan}$");
    wait_until("the orphan is removed", || {
        let out = docker_cli(&["ps", "-aq", "--filter", &filter]);
        out.status.success() && text(&out.stdout).trim().is_empty()
    })
    .await;
    eprintln!("orphan (ignoring SIGTERM) removed in {:?}", t0.elapsed());

    assert_eq!(h.remove(9, targets(&[s0, s1, done])).await, None);
}

/// Logs stream stdout and stderr, followed to the end of the container or not; a missing
/// container is an error.
#[actix::test]
async fn streams_service_logs() {
    let mut h = Harness::new(|_| {});
    let talker = h.spec(10, "talker", None, 100, &["sh", "-c", "echo one; echo two >&2; sleep 1; echo three"]);
    h.start(10, vec![talker.clone()]).await;

    let follow = h.docker.send(ServiceLogs { container: talker.name.clone(), follow: true, tail_lines: None }).await;
    let stream = match follow {
        Ok(Ok(s)) => s,
        other => panic!("cannot follow the log: {other:?}", other = other.map(|r| r.err())),
    };
    let t0 = Instant::now();
    let all = collect_logs(stream).await;
    eprintln!("followed the log to its end in {:?}", t0.elapsed());
    assert!(all.contains("one\n") && all.contains("two\n") && all.ends_with("three\n"), "{all:?}");

    let tail = h.docker.send(ServiceLogs { container: talker.name.clone(), follow: false, tail_lines: Some(1) }).await;
    let stream = match tail {
        Ok(Ok(s)) => s,
        other => panic!("cannot read the log: {other:?}", other = other.map(|r| r.err())),
    };
    assert_eq!(collect_logs(stream).await, "three\n");

    let missing =
        h.docker.send(ServiceLogs { container: format!("nothing-{}", h.dep), follow: false, tail_lines: None }).await;
    match missing {
        Ok(Err(e)) => assert_eq!(e, "no such container"),
        Ok(Ok(_)) => panic!("a log stream for a container that does not exist"),
        Err(e) => panic!("the Docker actor did not answer: {e}"),
    }

    assert_eq!(h.remove(10, targets(&[talker])).await, None);
}

/// A Docker that cannot be reached is reported once, and a start fails in plain words.
/// (Needs no Docker.)
#[actix::test]
async fn an_unreachable_docker_is_reported_once() {
    let mut h = Harness::build(false, |c| {
        c.docker_host = Some("unix:///nonexistent/zoe-test-docker.sock".to_string());
    });
    let error = h
        .wait_for("Unreachable", |e| match e {
            BackendEvent::Unreachable { error } => Some(error.clone()),
            _ => None,
        })
        .await;
    assert!(error.contains("/nonexistent/zoe-test-docker.sock"), "{error}");

    let spec = h.spec(11, "x", None, 110, &["true"]);
    let error = h.start_failure(11, vec![spec]).await;
    assert!(error.starts_with("cannot reach Docker"), "{error}");

    // Retries go on with backoff, but the outage is reported only once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while let Ok(event) = h.events.try_recv() {
        h.backlog.push_back(event);
    }
    let again =
        h.backlog.iter().filter(|e| matches!(e, BackendEvent::Unreachable { .. } | BackendEvent::Reachable)).count();
    assert_eq!(again, 0, "{:?}", h.backlog);
}

// ------------------------------------------------------------------------- outages, via a proxy

/// Docker goes away (connections refused), then hangs (no answers); each outage is reported
/// once, starts fail in plain words meanwhile, and when Docker is back the actor says so, takes
/// an inventory that shows what happened meanwhile, and follows events again.
#[actix::test]
async fn survives_outages_of_docker() {
    let proxy = Proxy::start();
    let mut h = Harness::new(|c| {
        c.docker_host = Some(format!("tcp://127.0.0.1:{}", proxy.port));
        c.call_timeout = Duration::from_secs(2);
        c.reconcile_interval = Duration::from_secs(1);
    });
    let sleeper = h.spec(12, "sleeper", None, 120, &["sleep", "300"]);
    let victim = h.spec(12, "victim", None, 121, &["sleep", "300"]);
    h.start(12, vec![sleeper.clone(), victim.clone()]).await;
    // The event stream works: an inventory after the start proves the actor is connected.
    h.wait_for("an inventory", |e| match e {
        BackendEvent::Inventory { containers } if containers.len() == 2 => Some(()),
        _ => None,
    })
    .await;

    // 1. Docker goes away.
    let t0 = Instant::now();
    proxy.set(ProxyMode::Down);
    let error = h
        .wait_for("Unreachable", |e| match e {
            BackendEvent::Unreachable { error } => Some(error.clone()),
            _ => None,
        })
        .await;
    eprintln!("outage noticed in {:?}: {error}", t0.elapsed());
    // Meanwhile a container dies: its event is missed.
    let out = docker_cli_async(vec!["kill".into(), victim.name.clone()]).await;
    assert!(out.status.success(), "docker kill: {}", text(&out.stderr));
    let error = h.start_failure(13, vec![h.spec(13, "x", None, 130, &["true"])]).await;
    assert!(error.starts_with("cannot reach Docker"), "{error}");
    h.backlog.clear();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let t0 = Instant::now();
    proxy.set(ProxyMode::Up);
    h.wait_for("Reachable", |e| matches!(e, BackendEvent::Reachable).then_some(())).await;
    eprintln!("back in {:?}", t0.elapsed());
    let repeated = h.backlog.iter().filter(|e| matches!(e, BackendEvent::Unreachable { .. })).count();
    assert_eq!(repeated, 0, "one outage, one Unreachable: {:?}", h.backlog);
    // The engine replays the death that happened meanwhile...
    assert_eq!(h.exited(12, 121).await, (137, false));
    // ...and the inventory shows it too.
    let victim_info = h
        .wait_for("an inventory with the killed container", |e| match e {
            BackendEvent::Inventory { containers } => {
                containers.iter().find(|c| c.service_id == Some(121) && !c.running).cloned()
            }
            _ => None,
        })
        .await;
    assert_eq!(victim_info.exit_code, Some(137));

    // 2. Docker hangs: calls time out, the periodic inventory notices.
    h.backlog.clear();
    proxy.set(ProxyMode::Hang);
    let t0 = Instant::now();
    let error = h.start_failure(14, vec![h.spec(14, "y", None, 140, &["true"])]).await;
    eprintln!("start against a hung Docker failed in {:?}: {error}", t0.elapsed());
    assert!(error.contains("did not answer within 2 s"), "{error}");
    h.wait_for("Unreachable", |e| match e {
        BackendEvent::Unreachable { .. } => Some(()),
        _ => None,
    })
    .await;
    eprintln!("hang noticed in {:?}", t0.elapsed());
    proxy.set(ProxyMode::Up);
    h.wait_for("Reachable", |e| matches!(e, BackendEvent::Reachable).then_some(())).await;

    // Events flow again: the event stream was resubscribed after the hang (the death is
    // reported even if it happens before the new subscription is made: it is replayed).
    let out = docker_cli_async(vec!["kill".into(), sleeper.name.clone()]).await;
    assert!(out.status.success(), "docker kill: {}", text(&out.stderr));
    assert_eq!(h.exited(12, 120).await, (137, false));

    assert_eq!(h.remove(12, targets(&[sleeper, victim])).await, None);
    assert_eq!(h.leftovers(12), Vec::<String>::new());
}
