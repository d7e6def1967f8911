//! The Swarm back end on a real three-node Docker Swarm (Docker-in-Docker nodes from Debian
//! packages, `tests/cluster/cluster.sh`): the master reaches the manager over TLS, an execution
//! spreads over the nodes and its parts find each other by host name, its port answers through
//! the proxy by way of its network's relay (and is published nowhere), names, labels and limits
//! read back from Swarm, a node killed under running executions gives the documented outcome,
//! the master restarted mid-execution finds everything again, and terminating leaves nothing
//! behind. A hostile tenant's containers try every address they can learn for another user's
//! service and get nothing, while that user's JupyterLab and Spark UI work through the proxy.
//!
//! The cluster is brought up once (idempotent, ~7 s; the node image is cached in the engine) and
//! `tests/run.sh` tears it down at the end, also on failure. These tests run one at a time: one
//! of them kills nodes.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::docker::{application, wait_status, IMAGE};
use crate::common::{assert_error, poll, temp_dir, Master, ADMIN};

const CLUSTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster/cluster.sh");
const ALICE: (&str, &str) = ("alice", "pa");

/// The cluster's endpoints, from `cluster.sh env`.
struct Cluster {
    env: HashMap<String, String>,
    /// The relay's image, on every node.
    relay: String,
}

impl Cluster {
    fn get(&self, key: &str) -> &str {
        self.env.get(key).map(String::as_str).unwrap_or_else(|| panic!("cluster.sh env has no {key}"))
    }

    /// Node N's address (1 is the manager).
    fn node(&self, n: u32) -> &str {
        self.get(&format!("ZOE_CLUSTER_NODE_{n}"))
    }
}

fn script(args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["-k", "10", "900", "bash", CLUSTER])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {CLUSTER}: {e}"))
}

/// The image of the relay, built from the binary under test (`deploy/relay-image.sh`), tagged
/// with its digest; older test images of the relay are removed.
fn relay_image() -> String {
    let bin = crate::common::zoe_bin();
    let out = Command::new("sha256sum").arg(bin).output().unwrap();
    let digest = String::from_utf8_lossy(&out.stdout).chars().take(12).collect::<String>();
    let tag = format!("zoe-relay:test-{digest}");
    let have = crate::common::docker::docker(&["image", "inspect", "--format", "{{.Id}}", &tag]);
    if !have.status.success() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/relay-image.sh");
        let out = Command::new("bash").args([script, bin, &tag]).output().unwrap();
        assert!(out.status.success(), "relay-image.sh: {}", String::from_utf8_lossy(&out.stderr));
    }
    let listed = crate::common::docker::docker_out(&["images", "zoe-relay", "--format", "{{.Tag}}"]);
    for old in listed.lines().filter(|t| t.starts_with("test-") && format!("zoe-relay:{t}") != tag) {
        crate::common::docker::docker(&["rmi", &format!("zoe-relay:{old}")]);
    }
    tag
}

/// Brings the cluster up (once per test binary) with the test image and the relay's on every
/// node; the tests fail loudly when it cannot come up.
fn cluster() -> &'static Cluster {
    static C: OnceLock<Cluster> = OnceLock::new();
    C.get_or_init(|| {
        let relay = relay_image();
        for args in [&["up"][..], &["load", IMAGE, &relay][..]] {
            let out = script(args);
            assert!(
                out.status.success(),
                "cluster.sh {args:?} failed: the Swarm tests need the three-node cluster\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = script(&["env"]);
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect();
        Cluster { env, relay }
    })
}

/// One Swarm test at a time.
fn serial() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|p| p.into_inner())
}

/// The cluster, for one test at a time: the guard is held while the test runs.
fn serial_cluster() -> (MutexGuard<'static, ()>, &'static Cluster) {
    let one = serial();
    (one, cluster())
}

/// The docker CLI against the manager's socket (the harness's own access), bounded.
fn manager(c: &Cluster, args: &[&str]) -> String {
    node_docker(c, 1, args)
}

fn node_docker(c: &Cluster, n: u32, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["-k", "5", "30", "docker", "-H", c.get(&format!("ZOE_CLUSTER_NODE_{n}_DOCKER"))])
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .output()
        .unwrap_or_else(|e| panic!("docker: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes every service and network of a deployment from the swarm when dropped (the test's
/// masters first), even on failure.
struct SwarmCleanup<'a> {
    cluster: &'a Cluster,
    deployment: String,
}

impl Drop for SwarmCleanup<'_> {
    fn drop(&mut self) {
        crate::common::kill_masters_of(&self.deployment);
        let label = format!("label=zoe.deployment_name={}", self.deployment);
        let relays = format!("label=zoe.relay.deployment={}", self.deployment);
        for filter in [&label, &relays] {
            for s in manager(self.cluster, &["service", "ls", "-q", "--filter", filter]).split_whitespace() {
                manager(self.cluster, &["service", "rm", s]);
            }
        }
        if !manager(self.cluster, &["network", "ls", "-q", "--filter", &label]).trim().is_empty() {
            std::thread::sleep(Duration::from_secs(3));
        }
        for n in manager(self.cluster, &["network", "ls", "-q", "--filter", &label]).split_whitespace() {
            manager(self.cluster, &["network", "rm", n]);
        }
    }
}

/// A master on the swarm, over TLS, on a deployment of its own; workspaces in the folder every
/// node mounts at the same path.
fn swarm_master<'a>(c: &'a Cluster, tag: &str, dir: Option<PathBuf>) -> (Master, SwarmCleanup<'a>, String) {
    swarm_master_with(c, tag, dir, &[])
}

/// As [`swarm_master`], with `extra` flags.
fn swarm_master_with<'a>(
    c: &'a Cluster,
    tag: &str,
    dir: Option<PathBuf>,
    extra: &[&str],
) -> (Master, SwarmCleanup<'a>, String) {
    let deployment = format!("s{}{tag}", std::process::id() % 10000);
    let dir = dir.unwrap_or_else(|| temp_dir(&format!("swarm-{tag}")));
    let master = start_swarm_master(c, &dir, &deployment, extra);
    (master, SwarmCleanup { cluster: c, deployment: deployment.clone() }, deployment)
}

fn start_swarm_master(c: &Cluster, dir: &std::path::Path, deployment: &str, extra: &[&str]) -> Master {
    let workspaces = c.get("ZOE_CLUSTER_WORKSPACES");
    let mut args = vec![
        "--backend",
        "swarm",
        "--docker-host",
        c.get("ZOE_CLUSTER_MANAGER_TLS"),
        "--docker-tls-ca",
        c.get("ZOE_CLUSTER_TLS_CA"),
        "--docker-tls-cert",
        c.get("ZOE_CLUSTER_TLS_CERT"),
        "--docker-tls-key",
        c.get("ZOE_CLUSTER_TLS_KEY"),
        "--deployment-name",
        deployment,
        "--workspace-base-path",
        workspaces,
        "--reconcile-interval",
        "1",
        "--stop-grace",
        "2",
        "--relay-image",
        &c.relay,
    ];
    // Each node has two cores, and a service without cores reserves the default ones.
    if !extra.contains(&"--default-cores") {
        args.extend_from_slice(&["--default-cores", "0.1"]);
    }
    args.extend_from_slice(extra);
    Master::start_in(dir, &args)
}

/// A monitor serving a file from the workspace on port 8080, and `workers` workers (the first
/// essential) that fetch it from the monitor by host name, then say so and wait.
fn spread_app(workers: u32) -> Value {
    let master = json!({
        "name": "master", "docker_image": IMAGE, "monitor": true, "total_count": 1, "essential_count": 1,
        "startup_order": 0, "required_resources": {"memory": 32 * 1024 * 1024},
        "ports": [{"name": "web", "protocol": "http", "port_number": 8080, "is_main_endpoint": true, "expose": true}],
        // The page is also at the root of the application's host (`ZOE_PROXY_PATH_8080` is `/`).
        "command": "sh -c 'd=/mnt/workspace$ZOE_PROXY_PATH_8080 && mkdir -p $d && echo hello from {execution_name} | \
                    tee /mnt/workspace/{execution_name}.html > $d/{execution_name}.html; exec httpd -f -p 8080 -h /mnt/workspace'",
    });
    let worker = json!({
        "name": "worker", "docker_image": IMAGE, "monitor": false, "total_count": workers, "essential_count": 1,
        "startup_order": 1, "required_resources": {"memory": 32 * 1024 * 1024}, "ports": [],
        "command": "sh -c 'until wget -q -O - http://master-{execution_name}-{user_name}-{deployment_name}:8080/{execution_name}.html; do sleep 1; done; echo reached; exec sleep 3600'",
    });
    application(vec![master, worker])
}

/// The services of an execution, as the API shows them.
fn services(m: &Master, id: u64) -> Vec<Value> {
    let (_, e) = m.get(&format!("/api/0.6/execution/{id}"), ADMIN);
    e["services"].as_array().unwrap().iter().map(|sid| m.get(&format!("/api/0.6/service/{sid}"), ADMIN).1).collect()
}

/// Polls until `check` holds, for at most `secs`.
fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let polled = poll(Duration::from_secs(secs), Duration::from_millis(250), || check().then_some(()).ok_or(()));
    polled.unwrap_or_else(|()| panic!("{what}: not within {secs} s"));
}

#[test]
fn an_execution_spreads_over_nodes_its_parts_meet_and_terminating_leaves_nothing() {
    let (_one, c) = serial_cluster();
    let (m, _cleanup, deployment) = swarm_master(c, "spread", None);
    m.create_user("alice", "user", "pa");
    let id = m.submit(ALICE, "wide", &spread_app(4));
    let e = wait_status(&m, ALICE, id, &["running", "error"], 120);
    assert_eq!(e["status"], "running", "{e}");
    let svcs = services(&m, id);
    assert_eq!(svcs.len(), 5);
    let nodes: BTreeSet<&str> = svcs.iter().map(|s| s["node"].as_str().expect("each service names its node")).collect();
    assert!(nodes.len() >= 2, "spread over at least two nodes: {nodes:?}");
    // Every worker reached the monitor by its host name, one of them from another node.
    let master = &svcs[0];
    assert_eq!(master["name"], format!("master-wide-alice-{deployment}"));
    let master_node = master["node"].as_str().unwrap();
    for w in &svcs[1..] {
        eventually(60, "a worker reaches the monitor", || {
            let (_, log) = m.get(&format!("/api/0.6/service/{}/logs", w["id"]), ALICE);
            log.as_str().unwrap_or_default().contains("reached")
        });
    }
    assert!(svcs[1..].iter().any(|w| w["node"] != master_node), "some worker runs on another node than the monitor");
    // The port is published nowhere: it answers through the master's proxy, on the
    // application's own host, which reaches it through the relay of alice's network, for its
    // owner only.
    assert_eq!(master["ports"][0]["host_endpoint"], Value::Null, "{master}");
    let link = format!("/proxy/{id}/master/8080/");
    assert_eq!(master["ports"][0]["proxy_url"], link);
    let page = crate::common::apps::sign_in(&m, ALICE, &link).get("/wide.html");
    assert_eq!((page.status, page.text().trim()), (200, "hello from wide"));
    m.create_user("bob", "user", "pb");
    assert_eq!(crate::common::apps::enter(&m, Some(("bob", "pb")), &link, "").status, 404);
    let relay = format!("zoe-relay_alice-{deployment}");
    let relay_spec: Value =
        serde_json::from_str(&manager(c, &["service", "inspect", &relay])).unwrap_or_else(|e| panic!("{relay}: {e}"));
    let relay_task = &relay_spec[0]["Spec"]["TaskTemplate"];
    assert_eq!(relay_task["ContainerSpec"]["User"], "65534:65534");
    assert_eq!(relay_task["ContainerSpec"]["ReadOnly"], true);
    assert_eq!(relay_task["Networks"][0]["Target"].as_str().map(|t| !t.is_empty()), Some(true));
    // Names, labels, limits, user, no restarts, as Swarm has them.
    let inspect: Value =
        serde_json::from_str(&manager(c, &["service", "inspect", master["name"].as_str().unwrap()])).unwrap();
    let spec = &inspect[0]["Spec"];
    assert_eq!(spec["Labels"]["zoe.execution.id"], id.to_string());
    assert_eq!(spec["Labels"]["zoe.owner"], "alice");
    assert_eq!(spec["Labels"]["zoe.monitor"], "true");
    let task = &spec["TaskTemplate"];
    assert_eq!(task["ContainerSpec"]["Labels"]["zoe.service.name"], "master");
    assert_eq!(task["ContainerSpec"]["Hostname"], master["name"]);
    assert_eq!(task["ContainerSpec"]["CapabilityDrop"], json!(["ALL"]));
    assert!(task["ContainerSpec"]["User"].as_str().unwrap().starts_with("2000"), "{task}");
    assert_eq!(task["Resources"]["Limits"]["MemoryBytes"], 32 * 1024 * 1024);
    assert_eq!(task["Resources"]["Reservations"]["MemoryBytes"], 32 * 1024 * 1024);
    assert_eq!(task["RestartPolicy"]["Condition"], "none");
    assert_eq!(spec["EndpointSpec"]["Mode"], "dnsrr");
    assert_eq!(spec["EndpointSpec"]["Ports"], Value::Null, "no port published on the nodes");
    assert_eq!(task["ContainerSpec"]["ReadOnly"], true);
    assert_eq!(task["ContainerSpec"]["Mounts"][0]["Target"], "/tmp");
    assert_eq!(task["ContainerSpec"]["Mounts"][0]["TmpfsOptions"]["SizeBytes"], 32 * 1024 * 1024);
    // The platform is the three nodes, with what Zoe holds on each.
    let (_, stats) = m.post("/api/0.6/query", ADMIN, &json!({"what": "stats_swarm", "filters": {}}));
    let listed = stats["stats"]["nodes"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{stats}");
    assert!(listed.iter().all(|n| n["status"] == "healthy"), "{stats}");
    let held: u64 = listed.iter().map(|n| n["memory_reserved"].as_u64().unwrap()).sum();
    assert_eq!(held, 5 * 32 * 1024 * 1024);
    // Terminate: no service, container or network of the deployment is left anywhere.
    assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), ALICE).0, 204);
    wait_status(&m, ALICE, id, &["terminated"], 60);
    let label = format!("label=zoe.deployment_name={deployment}");
    assert_eq!(manager(c, &["service", "ls", "-q", "--filter", &label]).trim(), "");
    eventually(30, "containers removed from every node", || {
        (1..=3).all(|n| node_docker(c, n, &["ps", "-aq", "--filter", &label]).trim().is_empty())
    });
    eventually(30, "the overlay network removed, with its relay", || {
        manager(c, &["network", "ls", "-q", "--filter", &label]).trim().is_empty()
            && manager(c, &["service", "ls", "-q", "--filter", &format!("name={relay}")]).trim().is_empty()
    });
    // What it logged is kept.
    let (s, log) = m.get(&format!("/api/0.6/service/{}/logs", svcs[1]["id"]), ALICE);
    assert_eq!(s, 200);
    assert!(log.as_str().unwrap().contains("reached"), "{log}");
}

/// Starts node N again when dropped, so that a failing test leaves the cluster whole.
struct Revive(u32);

impl Drop for Revive {
    fn drop(&mut self) {
        let _ = script(&["start-node", &self.0.to_string()]);
    }
}

#[test]
fn a_lost_node_ends_what_needed_it_and_a_restarted_master_finds_the_rest() {
    let (_one, c) = serial_cluster();
    let dir = temp_dir("swarm-loss");
    let (mut m, _cleanup, deployment) = swarm_master(c, "loss", Some(dir.clone()));
    m.create_user("alice", "user", "pa");
    // Three executions of a monitor and two workers (the first essential): nine containers.
    let ids: Vec<u64> = (0..3).map(|i| m.submit(ALICE, &format!("x{i}"), &spread_app(2))).collect();
    for id in &ids {
        assert_eq!(wait_status(&m, ALICE, *id, &["running", "error"], 120)["status"], "running");
    }
    // The master is killed and comes back: everything is found again.
    let before: Vec<Vec<Value>> = ids.iter().map(|id| services(&m, *id)).collect();
    m.kill();
    let m = start_swarm_master(c, &dir, &deployment, &[]);
    std::thread::sleep(Duration::from_secs(3));
    for (id, svcs) in ids.iter().zip(&before) {
        let (_, e) = m.get(&format!("/api/0.6/execution/{id}"), ALICE);
        assert_eq!(e["status"], "running", "{e}");
        assert_eq!(&services(&m, *id), svcs, "the same services, on the same nodes");
    }
    // Kill a worker node (the manager stays) that runs something of ours.
    let on = |n: &str| before.iter().flatten().filter(|s| s["node"] == n).count();
    let victim = if on("zoe-node-2") >= on("zoe-node-3") { 2 } else { 3 };
    let victim_name = format!("zoe-node-{victim}");
    assert!(on(&victim_name) > 0, "nothing runs on the worker nodes: {before:?}");
    let _revive = Revive(victim);
    let killed = Instant::now();
    let out = script(&["kill-node", &victim.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (id, svcs) in ids.iter().zip(&before) {
        let there: Vec<&Value> = svcs.iter().filter(|s| s["node"] == victim_name.as_str()).collect();
        let needed =
            there.iter().any(|s| s["is_monitor"] == true || s["name"].as_str().unwrap().starts_with("worker-0-"));
        eprintln!("execution {id}: {} container(s) on {victim_name}, needed: {needed}", there.len());
        if needed {
            // A lost monitor or essential worker ends the execution in error, naming the node.
            let e = wait_status(&m, ALICE, *id, &["error"], 30);
            assert!(e["error"].as_str().unwrap().contains(&victim_name), "{e}");
        } else if !there.is_empty() {
            // A lost elastic worker does not end the execution: it is recorded and started
            // again on a node that is up (a service of its own, `retries` 1).
            for s in &there {
                eventually(60, "a lost worker is started again elsewhere", || {
                    let now = m.get(&format!("/api/0.6/service/{}", s["id"]), ALICE).1;
                    now["status"] == "running" && now["retries"] == 1 && now["node"] != victim_name.as_str()
                });
            }
            assert_eq!(m.get(&format!("/api/0.6/execution/{id}"), ALICE).1["status"], "running");
        }
    }
    assert!(killed.elapsed() < Duration::from_secs(60), "the outcomes took {:?}", killed.elapsed());
    // Nothing of ours is re-placed by Swarm: every remaining service runs where it ran.
    std::thread::sleep(Duration::from_secs(3));
    let label = format!("label=zoe.deployment_name={deployment}");
    for line in manager(c, &["service", "ls", "--filter", &label, "--format", "{{.Name}}"]).lines() {
        let ps = manager(c, &["service", "ps", line, "--format", "{{.Node}}"]);
        assert!(!ps.contains(&victim_name), "service {line} has a task on the dead node: {ps}");
    }
    // The next execution is placed on the remaining nodes.
    let next = m.submit(ALICE, "after", &spread_app(2));
    assert_eq!(wait_status(&m, ALICE, next, &["running", "error"], 120)["status"], "running");
    for s in services(&m, next) {
        assert_ne!(s["node"], victim_name.as_str(), "{s}");
    }
    let (_, stats) = m.post("/api/0.6/query", ADMIN, &json!({"what": "stats_swarm", "filters": {}}));
    let dead = stats["stats"]["nodes"].as_array().unwrap().iter().find(|n| n["name"] == victim_name.as_str()).cloned();
    assert!(dead.is_some_and(|n| n["status"] != "healthy"), "{stats}");
}

/// A plain TCP endpoint of the manager's engine for the length of a test, on the cluster's
/// gateway (the host's address there), relaying to the manager's socket only for connections
/// from the host itself: a container on a node that reaches it is turned away (the cluster's
/// engines answer no container).
struct PlainRelay {
    endpoint: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl PlainRelay {
    fn start(c: &Cluster) -> PlainRelay {
        use std::io::copy;
        use std::os::unix::net::UnixStream;
        use std::sync::atomic::{AtomicBool, Ordering};
        let gateway = c.get("ZOE_CLUSTER_GATEWAY").to_string();
        let listener = std::net::TcpListener::bind((gateway.as_str(), 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("tcp://{}", listener.local_addr().unwrap());
        let socket = c.get("ZOE_CLUSTER_NODE_1_DOCKER").trim_start_matches("unix://").to_string();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let Ok((tcp, peer)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                if peer.ip().to_string() != gateway {
                    continue;
                }
                let _ = tcp.set_nonblocking(false);
                let Ok(unix) = UnixStream::connect(&socket) else { continue };
                let (mut tcp_in, mut unix_out) = (tcp.try_clone().unwrap(), unix.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = copy(&mut tcp_in, &mut unix_out);
                    let _ = unix_out.shutdown(std::net::Shutdown::Write);
                });
                let (mut unix_in, mut tcp_out) = (unix, tcp);
                std::thread::spawn(move || {
                    let _ = copy(&mut unix_in, &mut tcp_out);
                    let _ = tcp_out.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        PlainRelay { endpoint, stop }
    }
}

impl Drop for PlainRelay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn plain_tcp_to_a_remote_engine_is_refused_unless_insecure_is_chosen() {
    let c = cluster();
    let dir = temp_dir("swarm-plain");
    let relay = PlainRelay::start(c);
    let plain = relay.endpoint.clone();
    let err =
        Master::try_start_in(&dir, &["--backend", "swarm", "--docker-host", &plain, "--deployment-name", "plain"])
            .err()
            .expect("refused");
    assert!(err.contains("plain TCP") && err.contains("--docker-insecure"), "{err}");
    let m = Master::start_in(
        &dir,
        &["--backend", "swarm", "--docker-host", &plain, "--docker-insecure", "--deployment-name", "plain"],
    );
    let (_, stats) = m.post("/api/0.6/query", ADMIN, &json!({"what": "stats_swarm", "filters": {}}));
    assert!(stats["stats"]["nodes"].as_array().is_some(), "{stats}");
    assert_error(&m.get("/api/0.6/execution/999", ADMIN), 404, "no_such_execution");
}

#[test]
fn an_elastic_execution_starts_on_what_fits_and_grows_across_nodes() {
    let (_one, c) = serial_cluster();
    let (m, _cleanup, deployment) = swarm_master_with(c, "elastic", None, &["--max-memory", "200MiB"]);
    let id = crate::elastic::starts_on_what_fits_and_grows(&m);
    // The workers that started later run as services of their own, on the nodes Swarm chose.
    let svcs = services(&m, id);
    assert_eq!(svcs.iter().filter(|s| s["status"] == "running").count(), 5);
    let nodes: BTreeSet<&str> = svcs.iter().filter_map(|s| s["node"].as_str()).collect();
    assert!(nodes.len() >= 2, "spread over at least two nodes: {nodes:?}");
    let label = format!("label=zoe.execution.id={id}");
    let listed = manager(
        c,
        &["service", "ls", "-q", "--filter", &format!("label=zoe.deployment_name={deployment}"), "--filter", &label],
    );
    assert_eq!(listed.split_whitespace().count(), 5, "{listed}");
    assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), ALICE).0, 204);
    wait_status(&m, ALICE, id, &["terminated"], 120);
    eventually(60, "the execution's services are gone", || {
        manager(c, &["service", "ls", "-q", "--filter", &label]).trim().is_empty()
    });
}

/// The container of a service, on its node: (node number, container id).
fn container_of(c: &Cluster, svc: &Value) -> (u32, String) {
    let node = svc["node"].as_str().expect("a node").trim_start_matches("zoe-node-").parse::<u32>().unwrap();
    let filter = format!("label=zoe.service.id={}", svc["id"]);
    let id = node_docker(c, node, &["ps", "-q", "--filter", &filter]).trim().to_string();
    assert!(!id.is_empty(), "no container of {svc} on node {node}");
    (node, id)
}

/// Issue 20, cluster: on a Swarm, exposed ports were published on the nodes, and bob's container
/// opened alice's service at a node's address, past the proxy and its sign-in. Now nothing is
/// published, and the master reaches alice's services through her network's relay: bob's
/// containers, on every node, try every address they can learn (the nodes', the host's on the
/// cluster's network, their own gateways, Docker's bridges, alice's containers' on the overlay
/// and on the nodes' bridges) on alice's port, her relay's port and the engines' ports, and get
/// nothing of hers and no engine; bob reaches his own service, and alice hers through the proxy.
#[test]
fn a_tenant_reaches_only_its_own_services_on_the_cluster() {
    let (_one, c) = serial_cluster();
    let (m, _cleanup, deployment) = swarm_master(c, "fence", None);
    m.create_user("alice", "user", "pa");
    m.create_user("bob", "user", "pb");
    let secret = format!("SECRET-{}-{}", std::process::id(), deployment);
    let web = |page: &str| {
        json!({"name": "web", "docker_image": IMAGE, "monitor": true, "total_count": 1, "essential_count": 1,
            "startup_order": 0, "required_resources": {"memory": 32 * 1024 * 1024},
            "ports": [{"name": "web", "protocol": "http", "port_number": 8080, "is_main_endpoint": true, "expose": true}],
            "command": format!("sh -c 'mkdir -p /tmp/www && echo {page} > /tmp/www/page.html; exec httpd -f -p 8080 -h /tmp/www'")})
    };
    let id = m.submit(ALICE, "vault", &application(vec![web(&secret)]));
    assert_eq!(wait_status(&m, ALICE, id, &["running", "error"], 120)["status"], "running");
    let alice_web = &services(&m, id)[0];
    // Alice reaches her page through the proxy, on its own host (by way of her relay).
    let link = format!("/proxy/{id}/web/8080/");
    let alice_app = crate::common::apps::sign_in(&m, ALICE, &link);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = alice_app.get("/page.html");
        if r.status == 200 && r.text().trim() == secret {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alice's page through the proxy: {} {}\n{}",
            r.status,
            r.text(),
            m.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // Every address of alice's container, on every network it is on, as its node sees it.
    let (node, container) = container_of(c, alice_web);
    let inspect: Value = serde_json::from_str(&node_docker(c, node, &["inspect", &container])).unwrap();
    let mut alice_ips: Vec<String> = inspect[0]["NetworkSettings"]["Networks"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|n| n["IPAddress"].as_str().filter(|ip| !ip.is_empty()).map(String::from))
        .collect();
    // Its leg on the node's bridge to the outside (Swarm lists it with the bridge, not the
    // container).
    let bridge: Value =
        serde_json::from_str(&node_docker(c, node, &["network", "inspect", "docker_gwbridge"])).unwrap();
    let full_id = inspect[0]["Id"].as_str().unwrap();
    if let Some(ip) = bridge[0]["Containers"][full_id]["IPv4Address"].as_str() {
        alice_ips.push(ip.split('/').next().unwrap_or_default().to_string());
    }
    assert!(alice_ips.len() >= 2, "on her overlay and on the node's bridge: {alice_ips:?}");
    // Nothing of hers is published on a node: her service answers on 8080 at her container's
    // addresses only, which the probers try; a node's addresses have only her relay's port.
    let spec: Value =
        serde_json::from_str(&manager(c, &["service", "inspect", alice_web["name"].as_str().unwrap()])).unwrap();
    assert_eq!(spec[0]["Endpoint"]["Ports"], Value::Null, "{}", spec[0]["Endpoint"]);
    // Where her relay answers.
    let relay = format!("zoe-relay_alice-{deployment}");
    let task = manager(c, &["service", "ps", "-q", "--filter", "desired-state=running", &relay]);
    let task: Value = serde_json::from_str(&manager(c, &["inspect", task.trim()])).unwrap();
    let relay_port = task[0]["Status"]["PortStatus"]["Ports"][0]["PublishedPort"].as_u64().expect("the relay's port");

    // Bob: his own page, and a prober on each node.
    let mut addresses: Vec<String> = (1..=3).map(|n| c.node(n).to_string()).collect();
    addresses.push(c.get("ZOE_CLUSTER_GATEWAY").to_string());
    addresses.extend(["172.17.0.1".to_string(), "172.18.0.1".to_string()]);
    addresses.extend(alice_ips.iter().cloned());
    let ports =
        ["8080".to_string(), relay_port.to_string(), "7700".to_string(), "2375".to_string(), "2376".to_string()];
    let targets: Vec<String> = addresses.iter().flat_map(|a| ports.iter().map(move |p| format!("{a}:{p}"))).collect();
    // Literal braces are doubled: the command is a template ({deployment_name}).
    let probe = "sh -c 'gw=$(ip route | awk \"/default/ {{print \\$3}}\"); \
                 for t in $TARGETS $gw:8080 $gw:$RELAY_PORT $gw:2375; do \
                   out=$(timeout 4 wget -q -O - http://$t/page.html 2>&1); \
                   case \"$out\" in *SECRET*) echo \"HIT $t\";; esac; \
                   api=$(timeout 4 wget -q -O - http://$t/version 2>&1); \
                   case \"$api\" in *ApiVersion*) echo \"API $t\";; esac; \
                   hello=$(echo | timeout 4 nc -w 3 ${{t%:*}} ${{t#*:}} 2>/dev/null | head -c 11); \
                   case \"$hello\" in ZOE-RELAY*) echo \"GREETED $t\";; esac; \
                 done; \
                 own=$(timeout 10 wget -q -O - http://web-fence-bob-{deployment_name}:8080/page.html); \
                 echo \"own: $own\"; echo probed; exec sleep 600'";
    // Six of them: Swarm spreads services over the least busy nodes, so every node has some.
    let prober = json!({"name": "prober", "docker_image": IMAGE, "monitor": false, "total_count": 6, "essential_count": 6,
        "startup_order": 1, "required_resources": {"memory": 32 * 1024 * 1024}, "ports": [],
        "environment": [["TARGETS", targets.join(" ")], ["RELAY_PORT", relay_port.to_string()]],
        "command": probe});
    let bob = m.submit(("bob", "pb"), "fence", &application(vec![web("bob-own-page"), prober]));
    assert_eq!(wait_status(&m, ("bob", "pb"), bob, &["running", "error"], 120)["status"], "running");
    let probers: Vec<Value> = services(&m, bob).into_iter().filter(|s| s["service_name"] == "prober").collect();
    assert_eq!(probers.len(), 6);
    let nodes: BTreeSet<&str> = probers.iter().filter_map(|s| s["node"].as_str()).collect();
    assert_eq!(nodes.len(), 3, "a prober on every node, alice's included: {nodes:?}");
    eprintln!("bob's probers on {nodes:?}, alice's service on zoe-node-{node}, {} targets each", targets.len() + 3);
    let mut logs = Vec::new();
    for p in &probers {
        let mut log = String::new();
        eventually(300, "a prober finishes", || {
            log = m
                .get(&format!("/api/0.6/service/{}/logs", p["id"]), ("bob", "pb"))
                .1
                .as_str()
                .unwrap_or_default()
                .into();
            log.contains("probed")
        });
        logs.push(log);
    }
    let all = logs.join("\n");
    assert!(!all.contains("HIT"), "bob reached alice's service:\n{all}");
    assert!(!all.contains("API"), "bob reached an engine's API:\n{all}");
    assert!(logs.iter().all(|l| l.contains("own: bob-own-page")), "bob reaches his own service:\n{all}");
    assert!(all.contains("GREETED"), "the relay's port is reachable (and useless without its key):\n{all}");
    // Alice's page is still hers, through the proxy; bob gets the 404 of a stranger there.
    assert_eq!(crate::common::apps::enter(&m, Some(("bob", "pb")), &link, "").status, 404);
    assert_eq!(alice_app.get("/page.html").text().trim(), secret);
}

/// Issue 20, cluster, the owner's side: with nothing published, alice still uses her
/// applications through the proxy on the cluster. `spark-jupyter` (its images are loaded on node
/// 2 alone, and the master places there): its notebook runs a Spark job in a kernel over the
/// kernel's WebSocket, and the Spark master's UI answers, both through the relay.
#[test]
fn the_owners_notebook_and_spark_ui_work_through_the_proxy_on_the_cluster() {
    let (_one, c) = serial_cluster();
    let images = ["zoe-jupyter:4.6.6-spark4.3.0", "zoe-spark:4.3.0"];
    let out = script(&["load", "--node", "2", images[0], images[1]]);
    assert!(out.status.success(), "cluster.sh load: {}", String::from_utf8_lossy(&out.stderr));
    let (m, _cleanup, _) = swarm_master_with(
        c,
        "lab",
        None,
        &["--swarm-constraint", "node.hostname==zoe-node-2", "--default-cores", "0.5", "--max-proxy-connections", "16"],
    );
    m.create_user("alice", "user", "pa");
    m.create_user("bob", "user", "pb");
    crate::analytics::notebook_computes_on_its_spark_cluster(&m, false);
}

/// Issue 20, disk, on a Swarm: workspaces live on shared storage, which must enforce the quota
/// itself (see the README); Zoe measures each workspace and refuses new executions of a user
/// whose workspace is over it.
#[test]
fn a_user_over_the_workspace_quota_starts_nothing_on_the_cluster() {
    let (_one, c) = serial_cluster();
    let (m, _cleanup, deployment) = swarm_master_with(c, "quota", None, &["--workspace-quota", "16MiB"]);
    m.create_user("alice", "user", "pa");
    let ws = PathBuf::from(c.get("ZOE_CLUSTER_WORKSPACES")).join(&deployment).join("alice");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("big"), vec![1u8; 20 << 20]).unwrap();
    let shown = m.get("/api/0.6/user/alice", ALICE).1;
    assert!(shown["workspace"]["used"].as_u64().unwrap() > 16 << 20, "{shown}");
    assert_eq!(shown["workspace"]["available"], 0, "{shown}");
    let app = application(vec![json!({"name": "main", "docker_image": IMAGE, "monitor": true, "total_count": 1,
        "essential_count": 1, "startup_order": 0, "ports": [], "required_resources": {"memory": 33554432},
        "command": "true"})]);
    let refused = m.post("/api/0.6/execution", ALICE, &json!({"name": "over", "application": app}));
    assert_error(&refused, 402, "quota_exceeded");
    assert!(refused.1["message"].as_str().unwrap_or_default().contains("workspace"), "{}", refused.1);
    std::fs::remove_file(ws.join("big")).unwrap();
    let id = m.submit(ALICE, "room", &app);
    assert_eq!(wait_status(&m, ALICE, id, &["finished", "error"], 120)["status"], "finished");
    let _ = std::fs::remove_dir_all(ws.parent().unwrap());
}

/// Issue 26 on a Swarm: a data set on shared storage (the same path on every node, as the README
/// asks) is read in a container on whichever node runs it, and cannot be written there.
#[test]
fn a_dataset_on_shared_storage_is_read_only_on_the_cluster() {
    use std::os::unix::fs::PermissionsExt;
    let (_one, c) = serial_cluster();
    let shared = PathBuf::from(c.get("ZOE_CLUSTER_WORKSPACES")).join(format!("datasets-{}", std::process::id()));
    let data = shared.join("corpus");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("hello.txt"), "hello from shared storage\n").unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let flag = format!("corpus={}", data.display());
    let (m, _cleanup, _) = swarm_master_with(c, "dataset", None, &["--dataset", &flag]);
    m.create_user("alice", "user", "pa");
    let app = application(vec![json!({"name": "main", "docker_image": IMAGE, "monitor": true, "total_count": 1,
        "essential_count": 1, "startup_order": 0, "ports": [], "required_resources": {"memory": 33554432},
        "datasets": ["corpus"],
        "command": "sh -c 'cat /mnt/datasets/corpus/hello.txt; if echo x > /mnt/datasets/corpus/new; then echo WROTE; \
                    else echo REFUSED; fi; exec sleep 600'"})]);
    let id = m.submit(ALICE, "ds", &app);
    assert_eq!(wait_status(&m, ALICE, id, &["running", "error"], 120)["status"], "running");
    let sid = services(&m, id)[0]["id"].as_u64().unwrap();
    let log = crate::common::docker::log_with(&m, ALICE, sid, "REFUSED", 60);
    assert!(log.contains("hello from shared storage") && log.contains("REFUSED"), "{log}");
    assert!(log.contains("Read-only file system") && !log.contains("WROTE"), "{log}");
    assert!(!data.join("new").exists());
    assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), ALICE).0, 204);
    wait_status(&m, ALICE, id, &["terminated"], 120);
    let _ = std::fs::remove_dir_all(&shared);
}
