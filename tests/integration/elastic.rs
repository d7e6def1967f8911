//! Elastic scheduling on the real Docker Engine, through the REST API: on a platform capped so
//! that not everything fits, an execution of a monitor and workers (one essential, three elastic)
//! starts with what fits, shows its waiting instances, reaches all its workers once another
//! execution ends, and starts a worker again when it dies, without ending. The same on the Swarm
//! back end is in `swarm.rs`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::docker::{
    application, docker, docker_master_with, elastic_app, instance_counts, service, wait_status,
};
use crate::common::{Master, ADMIN};

const ALICE: (&str, &str) = ("alice", "pa");

/// Polls an execution until `check` holds, for at most `secs`.
pub fn wait_execution(m: &Master, id: u64, secs: u64, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    crate::common::wait_execution(m, ADMIN, id, secs, what, check)
}

/// The service records of an execution, as the API shows them.
pub fn services_of(m: &Master, id: u64) -> Vec<Value> {
    let (_, e) = m.get(&format!("/api/0.6/execution/{id}"), ADMIN);
    e["services"].as_array().unwrap().iter().map(|sid| m.get(&format!("/api/0.6/service/{sid}"), ADMIN).1).collect()
}

/// A blocker of 96 MiB, then the elastic application (64 MiB essential, 3 x 32 MiB elastic) on a
/// platform of 200 MiB: it starts with one elastic worker and two waiting; once the blocker is
/// terminated, all four workers run. Returns the elastic execution's id. Used by the Docker and
/// the Swarm tests.
pub fn starts_on_what_fits_and_grows(m: &Master) -> u64 {
    m.create_user("alice", "user", "pa");
    let mut blocker = service("main", true, 1, 0, "sleep 3600", json!([]));
    blocker["required_resources"]["memory"] = json!(96 * 1024 * 1024);
    let blocker = m.submit(ALICE, "blocker", &application(vec![blocker]));
    wait_status(m, ALICE, blocker, &["running"], 120);
    let id = m.submit(ALICE, "spark", &elastic_app(4));
    // 200 - 96 = 104 MiB free: the master and the essential worker (64), one elastic worker (32).
    let e =
        wait_execution(m, id, 120, "started on what fits", |e| e["status"] == "running" && instance_counts(e)[1] == 1);
    assert_eq!(instance_counts(&e), [2, 1, 0, 2], "{e}");
    let statuses: Vec<String> = services_of(m, id).iter().map(|s| s["status"].as_str().unwrap().to_string()).collect();
    assert_eq!(statuses.iter().filter(|s| *s == "waiting").count(), 2, "{statuses:?}");
    let (_, stats) = m.post("/api/0.6/query", ALICE, &json!({"what": "stats_scheduler"}));
    let st = &stats["stats"];
    assert_eq!(st["elastic"], true, "{stats}");
    assert_eq!(st["instances"]["elastic"]["waiting"], 2, "{stats}");
    assert_eq!(st["instances"]["essential"]["running"], 3, "the blocker's and the job's: {stats}");
    assert_eq!(st["memory_reserved"], 192 * 1024 * 1024, "what runs is reserved, not what waits: {stats}");
    // Stays so while nothing frees: the waiting workers do not start.
    std::thread::sleep(Duration::from_secs(2));
    let (_, e) = m.get(&format!("/api/0.6/execution/{id}"), ALICE);
    assert_eq!(instance_counts(&e), [2, 1, 0, 2], "{e}");
    // The blocker ends: the two waiting workers start, with no request.
    assert_eq!(m.delete(&format!("/api/0.6/execution/{blocker}"), ALICE).0, 204);
    let e = wait_execution(m, id, 120, "grown to all its workers", |e| instance_counts(e) == [2, 3, 0, 0]);
    assert_eq!(e["status"], "running", "{e}");
    id
}

#[test]
fn an_elastic_execution_starts_on_what_fits_grows_and_outlives_a_dead_worker() {
    let (m, _cleanup, dep) = docker_master_with("elastic", &["--max-memory", "200MiB"]);
    let id = starts_on_what_fits_and_grows(&m);
    let filter = format!("label=zoe.execution.id={id}");
    let running = || {
        let out = docker(&["ps", "--filter", &format!("label=zoe.deployment_name={dep}"), "--filter", &filter, "-q"]);
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert_eq!(running(), 5, "five containers run on the engine");
    // The web page says the same.
    let (status, page) = m.call("GET", &format!("/executions/{id}"), Some(ALICE), None);
    assert_eq!(status, 200);
    let page = page.as_str().unwrap_or_default().to_string();
    assert!(page.contains("id=\"instances\"") && page.contains("elastic: 3 running"), "{page}");
    // An elastic worker dies: the execution goes on, and the worker is started again.
    let worker =
        services_of(&m, id).into_iter().find(|s| s["name"].as_str().unwrap().starts_with("worker-3-")).unwrap();
    let old = worker["docker_id"].as_str().unwrap().to_string();
    assert!(docker(&["kill", &old]).status.success());
    let sid = worker["id"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let again = loop {
        let (_, s) = m.get(&format!("/api/0.6/service/{sid}"), ALICE);
        if s["status"] == "running" && s["docker_id"].as_str() != Some(old.as_str()) {
            break s;
        }
        assert!(Instant::now() < deadline, "the dead worker was not started again: {s}\n{}", m.log_text());
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(again["retries"], 1, "{again}");
    assert_eq!(again["essential"], false, "{again}");
    let (_, e) = m.get(&format!("/api/0.6/execution/{id}"), ALICE);
    assert_eq!(e["status"], "running", "{e}");
    assert_eq!(instance_counts(&e), [2, 3, 0, 0], "{e}");
    assert_eq!(running(), 5);
    // Terminating removes everything.
    assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), ALICE).0, 204);
    wait_status(&m, ALICE, id, &["terminated"], 60);
    assert_eq!(running(), 0);
}

#[test]
fn rigid_mode_waits_for_room_for_every_instance() {
    let (m, _cleanup, _dep) = docker_master_with("rigid", &["--max-memory", "200MiB", "--elastic", "false"]);
    m.create_user("alice", "user", "pa");
    let mut blocker = service("main", true, 1, 0, "sleep 3600", json!([]));
    blocker["required_resources"]["memory"] = json!(96 * 1024 * 1024);
    let blocker = m.submit(ALICE, "blocker", &application(vec![blocker]));
    wait_status(&m, ALICE, blocker, &["running"], 120);
    let id = m.submit(ALICE, "spark", &elastic_app(4));
    std::thread::sleep(Duration::from_secs(2));
    let (_, e) = m.get(&format!("/api/0.6/execution/{id}"), ALICE);
    assert_eq!(e["status"], "scheduled", "160 MiB do not fit in 104: it waits whole: {e}");
    assert_eq!(instance_counts(&e), [0, 0, 0, 3], "{e}");
    let (_, stats) = m.post("/api/0.6/query", ALICE, &json!({"what": "stats_scheduler"}));
    assert_eq!(stats["stats"]["elastic"], false, "{stats}");
    assert_eq!(m.delete(&format!("/api/0.6/execution/{blocker}"), ALICE).0, 204);
    let e = wait_execution(&m, id, 120, "started whole", |e| e["status"] == "running");
    assert_eq!(instance_counts(&e), [2, 3, 0, 0], "{e}");
}
