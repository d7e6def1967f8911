//! The Docker actor against the real Docker Engine: no mocks.
//!
//! These tests need a running Docker Engine and the local image built by
//! `tests/images/build.sh` (`zoe-test-busybox:latest`; nothing can be pulled). They fail, loudly,
//! when either is missing; they never skip. Each test uses its own deployment name, and removes
//! every container and network labelled with it when it ends, passed or failed.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::engine::*;
use crate::common::proxy::{Proxy, ProxyMode};
use zoe_actors::protocol::{
    BackendEvent, ContainerInfo, ContainerSpec, ExposedPort, Reconcile, RemoveContainers, RemoveNetwork, ServiceLogs,
    StartExecution, Transport, Workspace,
};

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
