//! Docker for the tests: the local test image, a master on its own deployment, clean-up of
//! everything a deployment left behind (even when a test fails), and the docker CLI, every call
//! of it bounded in time (the shared engine is old and can hang under load).

use std::process::{Command, Output};

use serde_json::{json, Value};

use super::{temp_dir, Master};

/// The image built by `tests/images/build.sh` from Debian's busybox-static.
pub const IMAGE: &str = "zoe-test-busybox:latest";

/// Seconds any one docker CLI call may take.
const CLI_TIMEOUT: &str = "120";

/// Runs the docker CLI under `timeout`; panics when it cannot be run at all.
pub fn docker(args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["-k", "5", CLI_TIMEOUT, "docker"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `docker` ({e}): the tests need the Docker CLI and a running engine"))
}

/// The docker CLI's standard output, as text.
pub fn docker_out(args: &[&str]) -> String {
    String::from_utf8_lossy(&docker(args).stdout).into_owned()
}

/// Removes every container and network of a deployment when dropped, even on failure. The
/// masters of that deployment are killed first (it is usually dropped before them), so that none
/// starts a container after the clean-up.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        super::kill_masters_of(&self.0);
        remove_deployment(&self.0);
        // The deployment's workspace images, under the tests' temporary folders.
        let tmp = std::env::temp_dir();
        super::unmount_where(|p| p.starts_with(&tmp) && p.iter().any(|c| c == self.0.as_str()));
    }
}

/// Removes every container and network labelled with this deployment.
pub fn remove_deployment(deployment: &str) {
    let filter = format!("label=zoe.deployment_name={deployment}");
    let ids: Vec<String> =
        docker_out(&["ps", "-aq", "--filter", &filter]).split_whitespace().map(String::from).collect();
    // A few at a time: the CLI removes the containers of one call in parallel, and an old
    // engine can deadlock when too many network sandboxes go at once.
    for chunk in ids.chunks(4) {
        let mut args = vec!["rm", "-f"];
        args.extend(chunk.iter().map(String::as_str));
        docker(&args);
    }
    for id in docker_out(&["network", "ls", "-q", "--filter", &filter]).split_whitespace() {
        docker(&["network", "rm", id]);
    }
}

/// Fails loudly unless Docker answers and the test image exists.
pub fn require_docker() {
    let out = docker(&["image", "inspect", IMAGE]);
    assert!(
        out.status.success(),
        "Docker is unreachable or the image {IMAGE} is missing: run tests/images/build.sh (tests/run.sh does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// For a test on Docker: checks that Docker and the test image are there, and returns the
/// deployment `name` with the guard that removes it when the test ends.
pub fn docker_deployment(name: String) -> (String, Cleanup) {
    require_docker();
    (name.clone(), Cleanup(name))
}

/// A master with Docker, on its own deployment name, with fast reconciliation and its own
/// workspace directory; `extra` flags are added.
pub fn docker_master_with(tag: &str, extra: &[&str]) -> (Master, Cleanup, String) {
    require_docker();
    let deployment = format!("l{}{tag}", std::process::id() % 10000);
    let dir = temp_dir(tag);
    let ws = dir.join("ws");
    let mut args = vec![
        "--deployment-name",
        deployment.as_str(),
        "--reconcile-interval",
        "1",
        "--stop-grace",
        "2",
        "--workspace-base-path",
        ws.to_str().unwrap_or_default(),
    ];
    // This machine has two cores, and a service without cores reserves the default ones: a
    // tenth of a core each lets the tests' many small services fit, unless a test says otherwise.
    if !extra.contains(&"--default-cores") {
        args.extend_from_slice(&["--default-cores", "0.1"]);
    }
    args.extend_from_slice(extra);
    let m = Master::start_in(&dir, &args);
    (m, Cleanup(deployment.clone()), deployment)
}

/// A master with Docker, on its own deployment name.
pub fn docker_master(tag: &str) -> (Master, Cleanup, String) {
    docker_master_with(tag, &[])
}

/// Waits until an execution reaches one of `want`.
pub fn wait_status(m: &Master, auth: (&str, &str), id: u64, want: &[&str], secs: u64) -> Value {
    super::wait_execution(m, auth, id, secs, &format!("execution {id} never reached {want:?}"), |e| {
        want.contains(&e["status"].as_str().unwrap_or(""))
    })
}

/// A service's log (as `auth` reads it) once it holds `needle`, or as it is after `secs`.
pub fn log_with(m: &Master, auth: (&str, &str), sid: u64, needle: &str, secs: u64) -> String {
    let polled = super::poll(std::time::Duration::from_secs(secs), std::time::Duration::from_millis(300), || {
        let log = m.get(&format!("/api/0.6/service/{sid}/logs"), auth).1.as_str().unwrap_or_default().to_string();
        if log.contains(needle) {
            Ok(log)
        } else {
            Err(log)
        }
    });
    polled.unwrap_or_else(|log| log)
}

/// `docker inspect` of a container or network.
pub fn inspect(name: &str) -> Value {
    let out = docker(&["inspect", name]);
    assert!(out.status.success(), "docker inspect {name}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
}

/// The names of a deployment's containers, sorted.
pub fn containers_of(deployment: &str) -> Vec<String> {
    let filter = format!("label=zoe.deployment_name={deployment}");
    let mut v: Vec<String> =
        docker_out(&["ps", "-a", "--format", "{{.Names}}", "--filter", &filter]).lines().map(String::from).collect();
    v.sort();
    v
}

/// Runs a shell command in a container: (success, stdout + stderr).
pub fn exec_in(container: &str, cmd: &str) -> (bool, String) {
    let out = docker(&["exec", container, "sh", "-c", cmd]);
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A service of the test image with 32 MiB.
pub fn service(name: &str, monitor: bool, count: u32, order: u32, command: &str, ports: Value) -> Value {
    json!({
        "name": name, "docker_image": IMAGE, "monitor": monitor, "total_count": count,
        "essential_count": 1, "startup_order": order, "ports": ports,
        "required_resources": {"memory": 32 * 1024 * 1024}, "command": command,
    })
}

/// An elastic application: a monitor and `workers` workers of 32 MiB each, the first worker
/// essential, the others elastic; every part sleeps.
pub fn elastic_app(workers: u32) -> Value {
    let mut monitor = service("master", true, 1, 0, "sleep 3600", json!([]));
    monitor["essential_count"] = json!(1);
    let mut worker = service("worker", false, workers, 1, "sleep 3600", json!([]));
    worker["essential_count"] = json!(1);
    application(vec![monitor, worker])
}

/// The instance counts of an execution, as its JSON shows them: `[essential running, elastic
/// running, elastic starting, elastic waiting]`.
pub fn instance_counts(e: &Value) -> [u64; 4] {
    let n = |kind: &str, what: &str| {
        e["instances"][kind][what].as_u64().unwrap_or_else(|| panic!("no instances.{kind}.{what} in {e}"))
    };
    [n("essential", "running"), n("elastic", "running"), n("elastic", "starting"), n("elastic", "waiting")]
}

/// An application of these services.
pub fn application(services: Vec<Value>) -> Value {
    json!({"name": "lifecycle", "version": 2, "will_end": false, "requires_binary": false, "priority": 1, "services": services})
}
