//! Whole execution lifecycles through the REST API on the real Docker Engine: start, names and
//! labels, service discovery, exposed ports, monitor exit, OOM, terminate with kept logs,
//! missing images, containers removed behind Zoe's back, and master restarts.
//!
//! Needs Docker and the image `zoe-test-busybox:latest` (made by `tests/images/build.sh`); a
//! missing one fails the test loudly.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::docker::{
    application, containers_of, docker, docker_deployment, docker_master, docker_master_with, exec_in, inspect,
    service, wait_status, IMAGE,
};
use crate::common::{assert_kept, temp_dir, wait_until, Master, ADMIN};

#[test]
fn a_three_service_execution_runs_named_labelled_connected_and_reachable() {
    // Exposed ports published on the host too (off by default).
    let (m, _cleanup, dep) = docker_master_with("run", &["--publish-ports", "true"]);
    m.create_user("alice", "user", "pa");
    let alice = ("alice", "pa");
    let web = service(
        "web",
        false,
        1,
        0,
        "httpd -f -p 8080 -h /mnt/workspace",
        json!([{"name": "site", "protocol": "http", "port_number": 8080, "is_main_endpoint": true, "expose": true}]),
    );
    let worker =
        service("worker", false, 2, 1, "sh -c 'echo worker {index} of {execution_name}; sleep 600'", json!([]));
    let main = service("main", true, 1, 2, "sleep 600", json!([]));
    let id = m.submit(alice, "wc1", &application(vec![web, worker, main]));
    let e = wait_status(&m, alice, id, &["running", "error"], 60);
    assert_eq!(e["status"], "running", "{e}");
    assert!(e["time_started"].is_string());
    let sids: Vec<u64> = e["services"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(sids.len(), 4);

    let names = containers_of(&dep);
    let expect: Vec<String> =
        ["main", "web", "worker-0", "worker-1"].iter().map(|s| format!("{s}-wc1-alice-{dep}")).collect();
    assert_eq!(names, expect);

    // Read back what Docker was told.
    let w1 = inspect(&format!("worker-1-wc1-alice-{dep}"));
    assert_eq!(w1["Config"]["Hostname"], format!("worker-1-wc1-alice-{dep}"));
    let labels = &w1["Config"]["Labels"];
    assert_eq!(labels["zoe.deployment_name"], dep.as_str());
    assert_eq!(labels["zoe.owner"], "alice");
    assert_eq!(labels["zoe.execution.name"], "wc1");
    assert_eq!(labels["zoe.execution.id"], id.to_string());
    assert_eq!(labels["zoe.service.name"], "worker-1");
    assert_eq!(labels["zoe.type"], "app_service");
    assert_eq!(labels["zoe.monitor"], "false");
    assert!(sids.contains(&labels["zoe.service.id"].as_str().unwrap().parse::<u64>().unwrap()));
    let host = &w1["HostConfig"];
    assert_eq!(host["NetworkMode"], format!("alice-{dep}"));
    assert_eq!(host["Memory"], 32 * 1024 * 1024);
    assert_eq!(host["MemorySwap"], 32 * 1024 * 1024);
    assert_eq!(host["Privileged"], false);
    assert_eq!(host["Init"], true);
    let mounts = w1["Mounts"].as_array().unwrap();
    assert!(
        mounts.iter().any(|mt| mt["Destination"] == "/mnt/workspace"
            && mt["RW"] == true
            && mt["Source"].as_str().unwrap().ends_with(&format!("/ws/{dep}/alice"))),
        "{mounts:?}"
    );
    assert_eq!(inspect(&format!("main-wc1-alice-{dep}"))["Config"]["Labels"]["zoe.monitor"], "true");

    // Services find each other by host name on the user's network.
    let ws = m.state_dir.join("ws").join(&dep).join("alice");
    std::fs::write(ws.join("index.html"), "hello from the workspace\n").unwrap();
    let (ok, out) = exec_in(
        &format!("worker-0-wc1-alice-{dep}"),
        &format!("timeout 5 wget -q -O- http://web-wc1-alice-{dep}:8080/index.html"),
    );
    assert!(ok && out.contains("hello from the workspace"), "{out}");
    let (ok, out) = exec_in(&format!("main-wc1-alice-{dep}"), &format!("nslookup worker-1-wc1-alice-{dep}"));
    assert!(ok, "{out}");

    // The exposed port answers from the host, at the endpoint the API reports.
    let web_sid = sids[0];
    let (s, svc) = m.get(&format!("/api/0.6/service/{web_sid}"), alice);
    assert_eq!(s, 200, "{svc}");
    assert_eq!(svc["name"], format!("web-wc1-alice-{dep}"));
    assert_eq!(svc["status"], "running");
    assert!(svc["ip_address"][format!("alice-{dep}")].is_string(), "{svc}");
    let endpoint = svc["ports"][0]["host_endpoint"].as_str().unwrap().to_string();
    assert!(endpoint.starts_with("127.0.0.1:"), "{endpoint}");
    let body = ureq::get(format!("http://{endpoint}/index.html")).call().unwrap().body_mut().read_to_string().unwrap();
    assert_eq!(body, "hello from the workspace\n");

    // Live log of a worker, expanded templates included.
    let (s, log) = m.call("GET", &format!("/api/0.6/service/{}/logs", sids[1]), Some(alice), None);
    assert_eq!(s, 200);
    assert!(log.as_str().unwrap_or("").contains("worker 0 of wc1"), "{log}");

    // Terminate: every container goes, log tails stay.
    assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), alice).0, 204);
    let e = wait_status(&m, alice, id, &["terminated"], 60);
    assert!(e["time_finished"].is_string());
    assert_eq!(e["services"], json!([]));
    assert!(containers_of(&dep).is_empty(), "{:?}", containers_of(&dep));
    let (s, log) = m.call("GET", &format!("/api/0.6/service/{}/logs", sids[1]), Some(alice), None);
    assert_eq!(s, 200, "{log}");
    assert!(log.as_str().unwrap_or("").contains("worker 0 of wc1"), "kept tail: {log}");
    // Others cannot read it.
    m.create_user("bob", "user", "pb");
    assert_eq!(m.call("GET", &format!("/api/0.6/service/{}/logs", sids[1]), Some(("bob", "pb")), None).0, 404);
}

#[test]
fn the_monitor_ending_finishes_the_execution_with_its_exit_code_and_oom_is_reported() {
    let (m, _cleanup, dep) = docker_master("exit");
    m.create_user("alice", "user", "pa");
    let alice = ("alice", "pa");
    let helper = service("helper", false, 1, 0, "sleep 600", json!([]));
    let main = service("main", true, 1, 1, "sh -c 'sleep 1; exit 3'", json!([]));
    let id = m.submit(alice, "exit3", &application(vec![helper, main]));
    let e = wait_status(&m, alice, id, &["finished", "error"], 60);
    assert_eq!(e["status"], "finished", "{e}");
    assert!(e["error"].as_str().unwrap().contains("exited with code 3"), "{e}");
    assert!(containers_of(&dep).is_empty(), "the helper is removed too: {:?}", containers_of(&dep));
    let (_, svcs) = m.post("/api/0.6/query", ADMIN, &json!({"what": "execution", "filters": {"id": id}}));
    assert_eq!(svcs[0]["status"], "finished");

    // Memory limit 8 MiB, a process that wants far more.
    let mut hog = service(
        "hog",
        true,
        1,
        0,
        "sh -c 'x=$(head -c 200000000 /dev/zero | tr \"\\0\" a); echo $x | wc -c'",
        json!([]),
    );
    hog["required_resources"]["memory"] = json!(8 * 1024 * 1024);
    let id = m.submit(alice, "oom", &application(vec![hog]));
    let e = wait_status(&m, alice, id, &["finished", "error"], 60);
    assert_eq!(e["status"], "finished", "{e}");
    let err = e["error"].as_str().unwrap_or("");
    assert!(err.contains("more than its memory limit"), "OOM reported: {e}");
}

#[test]
fn a_missing_image_ends_in_error_with_a_clear_message_and_no_container() {
    let (m, _cleanup, dep) = docker_master("noimg");
    m.create_user("alice", "user", "pa");
    let alice = ("alice", "pa");
    let mut svc = service("main", true, 1, 0, "true", json!([]));
    svc["docker_image"] = json!("zoe-no-such-image:1");
    let ok = service("first", false, 1, 0, "sleep 600", json!([]));
    let id = m.submit(alice, "noimg", &application(vec![ok, svc]));
    let e = wait_status(&m, alice, id, &["error"], 120);
    let err = e["error"].as_str().unwrap();
    assert!(err.contains("zoe-no-such-image:1") && err.contains("not present"), "{err}");
    assert!(containers_of(&dep).is_empty(), "{:?}", containers_of(&dep));
    // A failed start does not block the next one.
    let id2 = m.submit(alice, "next", &application(vec![service("main", true, 1, 0, "sleep 600", json!([]))]));
    assert_eq!(wait_status(&m, alice, id2, &["running", "error"], 60)["status"], "running");
}

#[test]
fn containers_removed_behind_zoes_back_and_master_restarts_end_matching_docker() {
    let (mut m, _cleanup, dep) = docker_master("reconcile");
    m.create_user("alice", "user", "pa");
    let alice = ("alice", "pa");
    let one = m.submit(alice, "one", &application(vec![service("main", true, 1, 0, "sleep 600", json!([]))]));
    let two = m.submit(alice, "two", &application(vec![service("main", true, 1, 0, "sleep 600", json!([]))]));
    wait_status(&m, alice, one, &["running"], 60);
    wait_status(&m, alice, two, &["running"], 60);

    // Someone removes a container directly.
    let out = docker(&["rm", "-f", &format!("main-one-alice-{dep}")]);
    assert!(out.status.success());
    let e = wait_status(&m, alice, one, &["error", "finished"], 30);
    assert!(e["error"].as_str().unwrap_or("").contains("disappeared") || e["status"] == "finished", "{e}");

    // The master dies while `two` runs; a container it never knew appears; then it restarts.
    m.kill();
    let stray = docker(&[
        "run",
        "-d",
        "--name",
        &format!("stray-{dep}"),
        "--label",
        &format!("zoe.deployment_name={dep}"),
        "--label",
        "zoe.execution.id=999999",
        IMAGE,
        "sleep",
        "600",
    ]);
    assert!(stray.status.success(), "{}", String::from_utf8_lossy(&stray.stderr));
    let dir = m.state_dir.clone();
    let m = Master::start_in(
        &dir,
        &[
            "--deployment-name",
            &dep,
            "--reconcile-interval",
            "1",
            "--stop-grace",
            "2",
            "--workspace-base-path",
            dir.join("ws").to_str().unwrap(),
        ],
    );
    let three = m.submit(alice, "three", &application(vec![service("main", true, 1, 0, "sleep 600", json!([]))]));
    wait_status(&m, alice, three, &["running"], 60);
    wait_until(
        20,
        || !containers_of(&dep).contains(&format!("stray-{dep}")),
        || format!("the orphan container was not removed: {:?}", containers_of(&dep)),
    );
    assert_eq!(wait_status(&m, alice, two, &["running"], 5)["status"], "running", "two survived the restart");
    assert_eq!(containers_of(&dep), vec![format!("main-three-alice-{dep}"), format!("main-two-alice-{dep}")]);
}

#[test]
fn with_docker_unreachable_reads_work_submissions_queue_and_all_resumes_when_it_is_back() {
    let (deployment, _cleanup) = docker_deployment(format!("l{}down", std::process::id() % 10000));
    let dir = temp_dir("down");
    // The master's Docker socket is a path that does not exist yet.
    let sock = dir.join("docker.sock");
    let host = format!("unix://{}", sock.display());
    let m = master_via(&dir, &deployment, &host, &["--docker-timeout", "2"]);
    m.create_user("alice", "user", "pa");
    let alice = ("alice", "pa");
    let id = m.submit(alice, "waits", &application(vec![service("main", true, 1, 0, "sleep 600", json!([]))]));
    std::thread::sleep(Duration::from_secs(2));
    let (s, e) = m.get(&format!("/api/0.6/execution/{id}"), alice);
    assert_eq!((s, e["status"].as_str()), (200, Some("scheduled")), "waits in the queue: {e}");
    let (s, stats) = m.post("/api/0.6/query", ADMIN, &json!({"what": "stats_swarm"}));
    assert_eq!(s, 200);
    assert_eq!(stats["stats"]["nodes"][0]["status"], "unreachable", "{stats}");

    // Docker comes back: the execution starts without any further request.
    std::os::unix::fs::symlink("/var/run/docker.sock", &sock).unwrap();
    let e = wait_status(&m, alice, id, &["running", "error"], 60);
    assert_eq!(e["status"], "running", "{e}");
    let (_, stats) = m.post("/api/0.6/query", ADMIN, &json!({"what": "stats_swarm"}));
    assert_eq!(stats["stats"]["nodes"][0]["status"], "healthy", "{stats}");
    assert!(stats["stats"]["memory_total"].as_u64().unwrap() > 0, "{stats}");
}

#[test]
fn with_capacity_capped_a_second_execution_waits_then_starts_on_its_own() {
    let (deployment, _cleanup) = docker_deployment(format!("l{}cap", std::process::id() % 10000));
    let dir = temp_dir("cap");
    let m = Master::start_in(
        &dir,
        &["--deployment-name", &deployment, "--max-memory", "100MiB", "--stop-grace", "1", "--reconcile-interval", "1"],
    );
    m.create_user("alice", "user", "pa");
    let alice = ("alice", "pa");
    let one_svc = || {
        let mut s = service("main", true, 1, 0, "sleep 600", json!([]));
        s["required_resources"]["memory"] = json!(64 * 1024 * 1024);
        application(vec![s])
    };
    let first = m.submit(alice, "first", &one_svc());
    wait_status(&m, alice, first, &["running"], 60);
    let second = m.submit(alice, "second", &one_svc());
    std::thread::sleep(Duration::from_secs(2));
    let (_, e) = m.get(&format!("/api/0.6/execution/{second}"), alice);
    assert_eq!(e["status"], "scheduled", "64 + 64 MiB do not fit in 100 MiB: {e}");
    assert_eq!(e["queue_position"], 1);
    let (_, stats) = m.post("/api/0.6/query", alice, &json!({"what": "stats_scheduler"}));
    assert_eq!(stats["stats"]["waiting_list"], json!(["second"]), "{stats}");
    assert_eq!(stats["stats"]["memory_total"], 100 * 1024 * 1024);
    assert_eq!(stats["stats"]["memory_reserved"], 64 * 1024 * 1024);
    // An application that could never fit is refused at once, saying by how much.
    let mut huge = one_svc();
    huge["services"][0]["required_resources"]["memory"] = json!(200 * 1024 * 1024);
    let r = m.post("/api/0.6/execution", alice, &json!({"name": "huge", "application": huge}));
    crate::common::assert_error(&r, 400, "exceeds_capacity");
    // Terminating the first lets the second start, with no further request.
    assert_eq!(m.delete(&format!("/api/0.6/execution/{first}"), alice).0, 204);
    let e = wait_status(&m, alice, second, &["running", "error"], 60);
    assert_eq!(e["status"], "running", "{e}");
    assert_eq!(e["queue_position"], Value::Null);
}

/// Labels of every container of a deployment: (execution id, running).
fn containers_by_execution(deployment: &str) -> Vec<(u64, bool)> {
    let filter = format!("label=zoe.deployment_name={deployment}");
    let out = docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Label \"zoe.execution.id\"}} {{.State}}"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (id, state) = l.split_once(' ')?;
            Some((id.parse().ok()?, state == "running"))
        })
        .collect()
}

#[test]
fn sigkill_while_containers_start_and_stop_leaves_nothing_stranded() {
    let (mut m, _cleanup, dep) = docker_master("crash");
    m.create_user("alice", "user", "pa");
    let alice = ("alice", "pa");
    let dir = m.state_dir.clone();
    let args = ["--deployment-name", &dep, "--reconcile-interval", "1", "--stop-grace", "1"];
    let mut acked: Vec<(u64, bool)> = Vec::new();
    for round in 0..3 {
        // Submissions and terminations race with the kill.
        let url = m.url.clone();
        let client = std::thread::spawn(move || {
            let agent: ureq::Agent =
                ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build().into();
            let mut done = Vec::new();
            for n in 0..6 {
                let body = json!({"name": format!("r{round}-{n}"), "application": application(vec![service("main", true, 1, 0, "sleep 120", json!([]))])});
                let Ok(mut r) = agent
                    .post(format!("{url}/api/0.6/execution"))
                    .header("Authorization", "Basic YWxpY2U6cGE=")
                    .header("Content-Type", "application/json")
                    .send(body.to_string().as_bytes())
                else {
                    break;
                };
                let Ok(v) = r.body_mut().read_json::<Value>() else { break };
                let id = v["execution_id"].as_u64().unwrap();
                done.push((id, false));
                std::thread::sleep(Duration::from_millis(150));
                if n % 2 == 1 {
                    let ok = agent
                        .delete(format!("{url}/api/0.6/execution/{id}"))
                        .header("Authorization", "Basic YWxpY2U6cGE=")
                        .call()
                        .is_ok();
                    if !ok {
                        break;
                    }
                    done.push((id, true));
                }
            }
            done
        });
        std::thread::sleep(Duration::from_millis(600 + 400 * round));
        m.kill();
        acked.extend(client.join().unwrap());
        m = Master::start_in(&dir, &args);
        // After the restart settles, nothing is stuck and the state matches Docker.
        let deadline = Instant::now() + Duration::from_secs(60);
        let list = loop {
            let (_, list) = m.get("/api/0.6/execution", alice);
            let list = list.as_array().unwrap().clone();
            let busy = list
                .iter()
                .filter(|e| ["starting", "cleaning up"].contains(&e["status"].as_str().unwrap_or("")))
                .count();
            if busy == 0 {
                break list;
            }
            assert!(Instant::now() < deadline, "round {round}: stuck executions: {list:?}\n{}", m.log_text());
            std::thread::sleep(Duration::from_millis(200));
        };
        for (id, terminated) in &acked {
            assert_kept(&list, &format!("round {round}"), *id, &id.to_string(), *terminated);
        }
        // Give the first inventory time to remove orphans, then compare with Docker.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, list) = m.get("/api/0.6/execution", alice);
            let list = list.as_array().unwrap().clone();
            let docker = containers_by_execution(&dep);
            let mismatches: Vec<String> = list
                .iter()
                .filter_map(|e| {
                    let id = e["id"].as_u64()?;
                    let status = e["status"].as_str()?;
                    let running = docker.iter().filter(|(x, r)| *x == id && *r).count();
                    let any = docker.iter().filter(|(x, _)| *x == id).count();
                    let ok = match status {
                        "running" => running == 1,
                        "scheduled" | "terminated" | "finished" | "error" => any == 0,
                        _ => false,
                    };
                    (!ok).then(|| format!("{id} {status}: {any} container(s), {running} running"))
                })
                .chain(
                    docker
                        .iter()
                        .filter(|(x, _)| !list.iter().any(|e| e["id"] == *x))
                        .map(|(x, _)| format!("orphan of {x}")),
                )
                .collect();
            if mismatches.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "round {round}: state and Docker differ: {mismatches:?}");
            std::thread::sleep(Duration::from_millis(300));
        }
        eprintln!("round {round}: {} acknowledged changes, state matches Docker", acked.len());
    }
    let out = Command::new(crate::common::zoe_bin())
        .args(["checkpoint", "verify", "--state-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn docker_cut_slowed_and_its_event_stream_dropped_the_master_serves_and_recovers() {
    use crate::common::proxy::{Proxy, ProxyMode};
    let proxy = Proxy::start();
    let (deployment, _cleanup) = docker_deployment(format!("l{}faults", std::process::id() % 10000));
    let dir = temp_dir("faults");
    let host = format!("tcp://127.0.0.1:{}", proxy.port);
    let m = master_via(&dir, &deployment, &host, &["--docker-timeout", "3", "--stop-grace", "1"]);
    m.create_user("alice", "user", "pa");
    let alice = ("alice", "pa");
    let app1 = || application(vec![service("main", true, 1, 0, "sleep 600", json!([]))]);

    // The event stream breaks mid-way, and a container dies meanwhile: the death is still seen.
    let a = m.submit(alice, "a", &app1());
    wait_status(&m, alice, a, &["running"], 60);
    proxy.cut_streams();
    let out = docker(&["kill", &format!("main-a-alice-{deployment}")]);
    assert!(out.status.success());
    let e = wait_status(&m, alice, a, &["finished", "error"], 30);
    assert_eq!(e["status"], "finished", "{e}");

    // Docker slowed down: reads stay fast; a start that times out is not a failure: the
    // execution goes back to the queue and starts once Docker keeps up again.
    proxy.set(ProxyMode::Slow);
    let b = m.submit(alice, "b", &app1());
    let t = Instant::now();
    assert_eq!(m.get(&format!("/api/0.6/execution/{b}"), alice).0, 200);
    assert!(t.elapsed() < Duration::from_millis(500), "reads do not wait for Docker: {:?}", t.elapsed());
    let slow_until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < slow_until {
        let e = m.get(&format!("/api/0.6/execution/{b}"), alice).1;
        assert_ne!(e["status"], "error", "a slow Docker must not fail a start: {e}");
        if e["status"] == "running" {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    proxy.set(ProxyMode::Up);
    let e = wait_status(&m, alice, b, &["running", "error"], 120);
    assert_eq!(e["status"], "running", "{e}");

    // Docker down: reads work, a termination and a submission wait; all completes when it is back.
    proxy.set(ProxyMode::Down);
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    assert_eq!(m.get("/api/0.6/execution", alice).0, 200);
    assert!(t.elapsed() < Duration::from_millis(500));
    assert_eq!(m.delete(&format!("/api/0.6/execution/{b}"), alice).0, 204);
    let c = m.submit(alice, "c", &app1());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(m.get(&format!("/api/0.6/execution/{c}"), alice).1["status"], "scheduled");
    proxy.set(ProxyMode::Up);
    let e = wait_status(&m, alice, c, &["running", "error"], 60);
    assert_eq!(e["status"], "running", "{e}");
    let e = wait_status(&m, alice, b, &["terminated", "error"], 60);
    assert_ne!(e["status"], "cleaning up");
    // Nothing is stuck, and the state matches Docker.
    let (_, list) = m.get("/api/0.6/execution", alice);
    for e in list.as_array().unwrap() {
        assert!(!["starting", "cleaning up"].contains(&e["status"].as_str().unwrap()), "{e}");
    }
    assert_eq!(containers_of(&deployment), vec![format!("main-c-alice-{deployment}")]);
}

/// A master of `deployment` in `dir` that reaches Docker at `host` and reconciles every second;
/// `extra` flags are added.
fn master_via(dir: &std::path::Path, deployment: &str, host: &str, extra: &[&str]) -> Master {
    let mut args = vec!["--deployment-name", deployment, "--docker-host", host, "--reconcile-interval", "1"];
    args.extend_from_slice(extra);
    Master::start_in(dir, &args)
}
