//! The Swarm back end on a real three-node Docker Swarm (Docker-in-Docker nodes from Debian
//! packages, `tests/cluster/cluster.sh`): the master reaches the manager over TLS, an execution
//! spreads over the nodes and its parts find each other by host name, its port answers at its
//! recorded endpoint, names, labels and limits read back from Swarm, a node killed under running
//! executions gives the documented outcome, the master restarted mid-execution finds everything
//! again, and terminating leaves nothing behind.
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
use crate::common::{assert_error, temp_dir, Master, ADMIN};

const CLUSTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster/cluster.sh");
const ALICE: (&str, &str) = ("alice", "pa");

/// The cluster's endpoints, from `cluster.sh env`.
struct Cluster {
    env: HashMap<String, String>,
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

/// Brings the cluster up (once per test binary) with the test image on every node; the tests
/// fail loudly when it cannot come up.
fn cluster() -> &'static Cluster {
    static C: OnceLock<Cluster> = OnceLock::new();
    C.get_or_init(|| {
        for args in [&["up"][..], &["load", IMAGE][..]] {
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
        Cluster { env }
    })
}

/// One Swarm test at a time.
fn serial() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|p| p.into_inner())
}

/// The docker CLI against the manager's plain port (the harness's own access), bounded.
fn manager(c: &Cluster, args: &[&str]) -> String {
    node_docker(c, 1, args)
}

fn node_docker(c: &Cluster, n: u32, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["-k", "5", "30", "docker", "-H", &format!("tcp://{}:2375", c.node(n))])
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
        crate::common::docker::kill_masters_of(&self.deployment);
        let label = format!("label=zoe.deployment_name={}", self.deployment);
        for s in manager(self.cluster, &["service", "ls", "-q", "--filter", &label]).split_whitespace() {
            manager(self.cluster, &["service", "rm", s]);
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
    ];
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
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn an_execution_spreads_over_nodes_its_parts_meet_and_terminating_leaves_nothing() {
    let _one = serial();
    let c = cluster();
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
    // The port answers at its recorded endpoint (the node's address), serving the workspace.
    let endpoint = master["ports"][0]["host_endpoint"].as_str().expect("a host endpoint").to_string();
    assert!(endpoint.starts_with("10.77.0."), "{endpoint}");
    let page = Command::new("timeout")
        .args(["10", "wget", "-q", "-O", "-", &format!("http://{endpoint}/wide.html")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&page.stdout).trim(), "hello from wide");
    // And through the master's proxy, which reaches it at that endpoint, on the application's own
    // host, for its owner only.
    let link = format!("/proxy/{id}/master/8080/");
    assert_eq!(master["ports"][0]["proxy_url"], link);
    let page = crate::common::apps::sign_in(&m, ALICE, &link).get("/wide.html");
    assert_eq!((page.status, page.text().trim()), (200, "hello from wide"));
    m.create_user("bob", "user", "pb");
    assert_eq!(crate::common::apps::enter(&m, Some(("bob", "pb")), &link, "").status, 404);
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
    eventually(30, "the overlay network removed", || {
        manager(c, &["network", "ls", "-q", "--filter", &label]).trim().is_empty()
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
    let _one = serial();
    let c = cluster();
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

#[test]
fn plain_tcp_to_a_remote_engine_is_refused_unless_insecure_is_chosen() {
    let c = cluster();
    let dir = temp_dir("swarm-plain");
    let plain = format!("tcp://{}:2375", c.node(1));
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
    let _one = serial();
    let c = cluster();
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
