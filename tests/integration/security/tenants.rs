//! A hostile tenant against the host and the engine, through the real master, real HTTP and the
//! real Docker Engine. Each test performs an attack that worked on an earlier Zoe and checks that
//! it no longer does.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::docker::{
    application, containers_of, docker, docker_master, docker_master_with, inspect, log_with, service, wait_status,
    IMAGE,
};
use crate::common::{assert_error, poll, ADMIN};

const ALICE: (&str, &str) = ("alice", "alice-pw");

/// Every file under `dir`, with its metadata, not following links.
fn walk(dir: &Path) -> Vec<(std::path::PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        out.push((p, m));
    }
    out
}

/// Attack 1: a service copied busybox into its workspace and made it setuid root, and made a
/// block device there. Containers now run as their user's own uid, with no capabilities and no
/// new privileges, with process and CPU limits, and the workspace is theirs alone.
#[test]
fn a_container_cannot_plant_root_files_setuid_binaries_or_devices_on_the_host() {
    let (m, _cleanup, dep) = docker_master_with("rootws", &["--pids-limit", "300", "--default-cores", "0.5"]);
    m.create_user("alice", "user", ALICE.1);
    m.create_user("bob", "user", "bob-pw");
    let uid = m.get("/api/0.6/user/alice", ADMIN).1["uid"].as_u64().expect("admins see the uid");
    let bob_uid = m.get("/api/0.6/user/bob", ADMIN).1["uid"].as_u64().unwrap();
    assert!(uid >= 200_000 && bob_uid != uid, "each user has a uid of their own, far from root's: {uid}, {bob_uid}");
    let attack = "sh -c 'cd /mnt/workspace; id -u > uid; id -g > gid; echo $HOME > home; \
                  cp /bin/busybox sx; chmod 4755 sx; \
                  mknod blk b 8 0 2> mknod.err; echo $? > mknod.rc; mknod chr c 1 3 2>> mknod.err; \
                  chown 0:0 uid 2> chown.err; echo $? > chown.rc; \
                  grep -E \"^(CapEff|CapBnd|NoNewPrivs)\" /proc/self/status > status; \
                  cat /sys/fs/cgroup/pids/pids.max > pids.max; cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us > cpu.quota; \
                  touch done'";
    let id = m.submit(ALICE, "attack", &application(vec![service("main", true, 1, 0, attack, json!([]))]));
    let e = wait_status(&m, ALICE, id, &["finished", "error"], 60);
    assert_eq!(e["status"], "finished", "{e}");

    let ws = m.state_dir.join("ws").join(&dep).join("alice");
    let read = |f: &str| std::fs::read_to_string(ws.join(f)).unwrap_or_else(|e| panic!("{f}: {e}")).trim().to_string();
    assert_eq!(read("uid"), uid.to_string(), "the container ran as alice's uid");
    assert_eq!(read("gid"), uid.to_string());
    assert_eq!(read("home"), "/mnt/workspace");
    assert_ne!(read("mknod.rc"), "0", "mknod must fail: {}", read("mknod.err"));
    assert_ne!(read("chown.rc"), "0", "giving a file to root must fail");
    let status = read("status");
    for line in ["CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1"] {
        assert!(status.lines().any(|l| l == line), "{line:?} missing from\n{status}");
    }
    assert_eq!(read("pids.max"), "300");
    assert_eq!(read("cpu.quota"), "50000", "0.5 core of a 100 ms period, without any cores in the description");

    let meta = std::fs::metadata(&ws).unwrap();
    assert_eq!((meta.uid(), meta.gid(), meta.permissions().mode() & 0o7777), (uid as u32, uid as u32, 0o700));
    let files = walk(&ws);
    assert!(files.len() >= 10, "{files:?}");
    for (path, meta) in &files {
        let kind = meta.file_type();
        assert!(!kind.is_block_device() && !kind.is_char_device(), "a device in the workspace: {}", path.display());
        assert_ne!(meta.uid(), 0, "owned by root: {}", path.display());
        assert_eq!(meta.uid(), uid as u32, "owned by someone else: {}", path.display());
    }
    let sx = std::fs::metadata(ws.join("sx")).unwrap();
    assert_eq!(sx.uid(), uid as u32, "a set-uid bit on alice's own file gives nothing but alice's rights");
}

/// Attack 4: thousands of queued executions released at once were started 64 at a time until
/// the engine fell over. Now the starts in flight and the engine calls are bounded: a burst
/// (150 here; `ZOE_BURST` for more, the benchmark runs 1,000) starts without a single failure,
/// terminating all of it leaves no container, and the engine still answers.
#[test]
fn a_burst_of_executions_released_at_once_starts_without_failures_and_leaves_nothing() {
    let n: usize = std::env::var("ZOE_BURST").ok().and_then(|v| v.parse().ok()).unwrap_or(150);
    // A hundredth of a core each (Docker's smallest limit): 150 fit on two cores.
    let (m, _cleanup, dep) =
        docker_master_with("burst", &["--max-memory", "8GiB", "--max-starting", "4", "--default-cores", "0.01"]);
    let sleeper = |memory: u64| {
        json!({"name": "b", "version": 2, "will_end": false, "requires_binary": false, "priority": 1,
            "services": [{"name": "main", "docker_image": IMAGE, "monitor": true, "total_count": 1, "essential_count": 1,
                          "startup_order": 0, "ports": [], "required_resources": {"memory": memory}, "command": "sleep 600"}]})
    };
    // The blocker holds all the capacity; once it ends, the whole burst fits at once.
    let b = m.submit(ADMIN, "blocker", &sleeper(8 << 30));
    wait_status(&m, ADMIN, b, &["running"], 60);
    let small = sleeper(8 << 20);
    let ids: Vec<u64> = (0..n).map(|i| m.submit(ADMIN, &format!("x{i}"), &small)).collect();
    let t0 = Instant::now();
    assert_eq!(m.delete(&format!("/api/0.6/execution/{b}"), ADMIN).0, 204);
    let mut most_starting = 0;
    let (mut last_running, mut last_progress) = (0, Instant::now());
    let all_running = loop {
        let (_, stats) = m.post("/api/0.6/query", ADMIN, &json!({"what": "stats_scheduler"}));
        most_starting = most_starting.max(stats["stats"]["count_starting"].as_u64().unwrap_or(0));
        let (_, list) = m.get("/api/0.6/execution?status=running", ADMIN);
        let running = list.as_array().unwrap().len();
        let (_, errors) = m.get("/api/0.6/execution?status=error", ADMIN);
        assert_eq!(errors, json!([]), "no start may fail");
        if running == n {
            break t0.elapsed();
        }
        if running > last_running {
            (last_running, last_progress) = (running, Instant::now());
        }
        assert!(
            last_progress.elapsed() < Duration::from_secs(60),
            "{running} of {n} running after {:?}; scheduler: {stats}\nmaster log:\n{}",
            t0.elapsed(),
            m.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(most_starting <= 4, "at most 4 executions start at once, saw {most_starting}");
    let t1 = Instant::now();
    for id in &ids {
        assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), ADMIN).0, 204);
    }
    for id in &ids {
        let e = wait_status(&m, ADMIN, *id, &["terminated", "error"], 30 + 2 * n as u64);
        assert_eq!(e["status"], "terminated", "{e}");
    }
    let all_gone = t1.elapsed();
    assert_eq!(containers_of(&dep), Vec::<String>::new(), "no container is left");
    let info = docker(&["info", "--format", "{{.ServerVersion}}"]);
    assert!(info.status.success(), "the engine still answers");
    eprintln!("burst of {n}: all running in {all_running:?}, all gone {all_gone:?} after the terminations began");
}

/// Attack 4 again: starts still arrived after their execution was terminated. A termination now
/// cancels the creations pending for it: once the execution has ended, none of its containers
/// exists, and none appears later.
#[test]
fn terminating_an_execution_while_it_starts_leaves_no_container_behind() {
    let (m, _cleanup, dep) = docker_master("cancel");
    m.create_user("alice", "user", ALICE.1);
    let app = application(vec![
        service("first", true, 1, 0, "sleep 600", json!([])),
        service("many", false, 24, 1, "sleep 600", json!([])),
    ]);
    let id = m.submit(ALICE, "big", &app);
    wait_status(&m, ALICE, id, &["starting", "running"], 60);
    assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), ALICE).0, 204);
    let e = wait_status(&m, ALICE, id, &["terminated", "error"], 120);
    assert_eq!(e["status"], "terminated", "{e}");
    let ours = |c: &String| c.ends_with(&format!("-big-alice-{dep}"));
    assert_eq!(containers_of(&dep).into_iter().filter(ours).collect::<Vec<_>>(), Vec::<String>::new());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        containers_of(&dep).into_iter().filter(ours).collect::<Vec<_>>(),
        Vec::<String>::new(),
        "no container appears after its execution ended"
    );
}

/// A registry on loopback that answers every request with an error carrying a secret, and
/// counts the connections it gets.
struct FakeRegistry {
    port: u16,
    connections: Arc<AtomicUsize>,
}

const SECRET: &str = "SECRET-PROBE-BODY-4242";

impl FakeRegistry {
    fn start() -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 4096];
                let n = conn.read(&mut buf).unwrap_or(0);
                if n == 0 || buf[0] == 0x16 {
                    continue; // a TLS hello: hang up, as a plain-HTTP registry would
                }
                let head = String::from_utf8_lossy(&buf[..n]);
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let (status, body) = if path == "/v2/" {
                    ("200 OK", "{}".to_string())
                } else {
                    (
                        "404 Not Found",
                        format!("{{\"errors\":[{{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"{SECRET}\"}}]}}"),
                    )
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nDocker-Distribution-API-Version: registry/2.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeRegistry { port, connections }
    }
}

/// Attack 5: an image naming `127.0.0.1:<port>/...` made the engine connect there, and the
/// answer came back in the execution's error. Registries are now an allow-list (none by
/// default) checked at submission, and a registry's answer is never shown.
#[test]
fn the_engine_cannot_be_used_to_probe_addresses_or_read_their_answers() {
    let registry = FakeRegistry::start();
    let image = format!("127.0.0.1:{}/probe/img:1", registry.port);
    let (m, _cleanup, _) = docker_master("ssrf");
    m.create_user("alice", "user", ALICE.1);
    let probe = application(vec![json!({
        "name": "main", "docker_image": image, "monitor": true, "total_count": 1, "essential_count": 1,
        "startup_order": 0, "ports": [], "required_resources": {"memory": 33554432}, "command": "true"})]);
    let refused = m.post("/api/0.6/execution", ALICE, &json!({"name": "probe", "application": probe}));
    assert_error(&refused, 400, "registry_not_allowed");
    assert!(refused.1["message"].as_str().unwrap().contains("application.services[0].docker_image"), "{}", refused.1);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(registry.connections.load(Ordering::SeqCst), 0, "the engine was never sent there");
    assert_eq!(m.get("/api/0.6/execution", ALICE).1, json!([]), "nothing was stored");

    // An administrator who allows that registry: the engine goes there, but what the registry
    // says never reaches the user.
    let allowed = format!("127.0.0.1:{}", registry.port);
    let (m, _cleanup, _) = docker_master_with("ssrf2", &["--allowed-registry", &allowed]);
    m.create_user("alice", "user", ALICE.1);
    let id = m.submit(ALICE, "probe", &probe);
    let e = wait_status(&m, ALICE, id, &["error"], 120);
    let error = e["error"].as_str().unwrap_or_default();
    assert!(error.contains("could not be pulled"), "{e}");
    assert!(!error.contains(SECRET) && !m.log_text().contains(SECRET), "a registry's answer is never shown: {e}");
    assert!(registry.connections.load(Ordering::SeqCst) > 0, "the engine did contact the allowed registry");
}

/// Attack 8, last part: a `udp` port was published as TCP. It is published as UDP now.
#[test]
fn a_udp_port_is_published_as_udp() {
    // Publishing is off by default; an administrator can turn it on.
    let (m, _cleanup, dep) = docker_master_with("udp", &["--publish-ports", "true"]);
    m.create_user("alice", "user", ALICE.1);
    let ports = json!([{"name": "dns", "protocol": "udp", "port_number": 5353, "path": "/", "is_main_endpoint": false, "expose": true},
                       {"name": "web", "protocol": "http", "port_number": 8080, "path": "/", "is_main_endpoint": true, "expose": true}]);
    let id = m.submit(ALICE, "udp", &application(vec![service("main", true, 1, 0, "sleep 600", ports)]));
    let e = wait_status(&m, ALICE, id, &["running"], 60);
    let sid = e["services"][0].as_u64().unwrap();
    let s = m.get(&format!("/api/0.6/service/{sid}"), ALICE).1;
    let endpoint =
        |i: usize| s["ports"][i]["host_endpoint"].as_str().unwrap_or_else(|| panic!("no endpoint: {s}")).to_string();
    let c = inspect(&format!("main-udp-alice-{dep}"));
    let published =
        |key: &str| c["NetworkSettings"]["Ports"][key][0]["HostPort"].as_str().unwrap_or_default().to_string();
    assert_eq!(endpoint(0), format!("127.0.0.1:{}", published("5353/udp")), "{c}");
    assert_eq!(endpoint(1), format!("127.0.0.1:{}", published("8080/tcp")));
    assert!(c["NetworkSettings"]["Ports"]["5353/tcp"].is_null(), "not as TCP");
    let udp: Value = c["HostConfig"]["PortBindings"]["5353/udp"].clone();
    assert_eq!(udp[0]["HostIp"], "127.0.0.1", "{c}");
}

/// Issue 20, disk: a container wrote 1 GiB into its workspace and nothing stopped it. The
/// workspace is now a file system of its quota: the write fails inside the container with "No
/// space left on device", the owner and administrators see the use, and once the quota is
/// lowered under what the workspace holds, new executions are refused until files go.
#[test]
fn a_workspace_holds_no_more_than_its_quota() {
    let (m, _cleanup, dep) = docker_master_with("quota", &["--workspace-quota", "32MiB"]);
    m.create_user("alice", "user", ALICE.1);
    m.create_user("bob", "user", "bob-pw");
    let fill = "sh -c 'dd if=/dev/zero of=/mnt/workspace/fill bs=1M count=64 2>&1; echo dd=$?; \
                dd if=/dev/zero of=/mnt/workspace/more bs=1M count=1 2>&1; echo done; exec sleep 600'";
    let id = m.submit(ALICE, "fill", &application(vec![service("main", true, 1, 0, fill, json!([]))]));
    let e = wait_status(&m, ALICE, id, &["running", "error"], 60);
    assert_eq!(e["status"], "running", "{e}");
    let sid = e["services"][0].as_u64().unwrap();
    let log = log_with(&m, ALICE, sid, "done", 60);
    assert_eq!(log.matches("No space left on device").count(), 2, "the writes must fail: {log}");
    assert!(log.contains("dd=1"), "{log}");
    let ws = m.state_dir.join("ws").join(&dep).join("alice");
    let written = std::fs::metadata(ws.join("fill")).map(|m| m.len()).unwrap_or(0);
    assert!(written > 16 << 20 && written <= 32 << 20, "it filled the quota and no more: {written} bytes");
    // Its use, for alice and the administrators; not for bob. A use measured before the writes
    // (when the execution was admitted) is kept for up to 5 s.
    let shown = poll(Duration::from_secs(10), Duration::from_millis(250), || {
        let shown = m.get("/api/0.6/user/alice", ALICE).1;
        let w = &shown["workspace"];
        let full = w["used"].as_u64().unwrap_or(0) >= written && w["available"].as_u64().unwrap_or(u64::MAX) < 1 << 20;
        if full {
            Ok(shown)
        } else {
            Err(shown)
        }
    })
    .unwrap_or_else(|shown| panic!("the workspace's use never showed it full: {shown}"));
    let w = &shown["workspace"];
    assert_eq!(w["quota"], 32 << 20, "{shown}");
    assert_eq!(m.get("/api/0.6/user/alice", ADMIN).1["workspace"], *w);
    assert_eq!(m.get("/api/0.6/user/alice", ("bob", "bob-pw")).0, 404);
    let text = |path: &str, who| m.get(path, who).1.as_str().unwrap_or_default().to_string();
    let mine = text("/executions", ALICE);
    assert!(mine.contains("Your workspace: ") && mine.contains(" of 32 MiB used"), "{mine}");
    assert!(text("/admin/users", ADMIN).contains(" of 32 MiB used"), "the administrators' list of users");
    // A full workspace does not stop new executions (they may be what makes room).
    let true_app = application(vec![service("main", true, 1, 0, "true", json!([]))]);
    let again = m.submit(ALICE, "again", &true_app);
    assert_eq!(wait_status(&m, ALICE, again, &["finished", "error"], 60)["status"], "finished");
    assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), ALICE).0, 204);
    wait_status(&m, ALICE, id, &["terminated"], 60);

    // The quota lowered under what it holds: refused, until files go.
    let (state_dir, base) = (m.state_dir.clone(), m.state_dir.join("ws"));
    drop(m);
    let base = base.to_str().unwrap();
    let flags = ["--deployment-name", &dep, "--workspace-base-path", base, "--workspace-quota", "16MiB"];
    let m = crate::common::Master::start_in(&state_dir, &flags);
    let refused = m.post("/api/0.6/execution", ALICE, &json!({"name": "over", "application": true_app}));
    assert_error(&refused, 402, "quota_exceeded");
    let message = refused.1["message"].as_str().unwrap_or_default();
    assert!(message.contains("workspace") && message.contains("quota of 16 MiB"), "{message}");
    assert!(m.get("/api/0.6/user/alice", ALICE).1["workspace"]["used"].as_u64().unwrap() > 16 << 20);
    std::fs::remove_file(ws.join("fill")).unwrap();
    std::thread::sleep(Duration::from_secs(6));
    let ok = m.submit(ALICE, "room", &true_app);
    assert_eq!(wait_status(&m, ALICE, ok, &["finished", "error"], 60)["status"], "finished");
}

/// Issue 20, disk again: a container wrote 512 MiB into its own root file system, which lives
/// on the engine's disk. Root file systems are read-only now, and `/tmp` is a tmpfs counted in
/// the container's memory: writing 300 MiB into either leaves the engine's disk as it was.
#[test]
fn nothing_a_container_writes_outside_its_workspace_reaches_the_disk() {
    let (m, _cleanup, dep) = docker_master("rootfs");
    m.create_user("alice", "user", ALICE.1);
    let write = "sh -c 'for d in / /etc /bin /tmp; do dd if=/dev/zero of=$d/big bs=1M count=300 2>&1; \
                 echo \"$d: $?\"; done; rm -f /tmp/big; echo done; exec sleep 600'";
    let mut svc = service("main", true, 1, 0, write, json!([]));
    svc["required_resources"]["memory"] = json!(64 << 20);
    let id = m.submit(ALICE, "rootfs", &application(vec![svc]));
    let e = wait_status(&m, ALICE, id, &["running", "error"], 60);
    assert_eq!(e["status"], "running", "{e}");
    let sid = e["services"][0].as_u64().unwrap();
    let log = log_with(&m, ALICE, sid, "done", 60);
    assert!(log.contains("done"), "{log}");
    assert_eq!(log.matches("Read-only file system").count(), 3, "/, /etc and /bin are read-only: {log}");
    assert!(!log.contains("/tmp: 0"), "300 MiB do not fit in /tmp of a 64 MiB container: {log}");
    // What the container wrote to the engine's disk: its writable layer, nothing.
    let name = format!("main-rootfs-alice-{dep}");
    let out = docker(&["container", "inspect", "--size", "--format", "{{.SizeRw}}", &name]);
    let size_rw: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(u64::MAX);
    assert!(size_rw < 1 << 20, "the container's layer grew by {size_rw} bytes");
    let c = inspect(&name);
    assert_eq!(c["HostConfig"]["ReadonlyRootfs"], true);
    assert_eq!(c["HostConfig"]["Tmpfs"]["/tmp"], format!("rw,exec,nosuid,nodev,size={},mode=1777", 64 << 20));
}

/// Issue 20, CPU: `"cores": 1e-300` was accepted and gave the container no CPU limit at all,
/// and services without cores reserved nothing, so a user with `user-max-cores 1` ran 21 of them.
/// Cores below Docker's smallest limit are refused with the field's path, and a service without
/// cores reserves `default-cores`: no combination of descriptions runs more than the quota.
#[test]
fn cpu_is_bounded_by_what_is_reserved() {
    let (m, _cleanup, dep) = docker_master_with("cores", &["--user-max-cores", "1", "--default-cores", "0.5"]);
    m.create_user("alice", "user", ALICE.1);
    let mut tiny = service("main", true, 1, 0, "sleep 600", json!([]));
    tiny["required_resources"]["cores"] = json!(1e-300);
    let refused = m.post("/api/0.6/execution", ALICE, &json!({"name": "tiny", "application": application(vec![tiny])}));
    assert_error(&refused, 400, "out_of_range");
    let message = refused.1["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("application.services[0].required_resources.cores: must be at least 0.01"),
        "{message}"
    );
    // Busy loops without cores: each reserves half a core, two fit in the quota, the third is
    // refused; the two running are limited to half a core each.
    let busy = application(vec![service("main", true, 1, 0, "sh -c 'while :; do :; done'", json!([]))]);
    let a = m.submit(ALICE, "busy-a", &busy);
    let b = m.submit(ALICE, "busy-b", &busy);
    let third = m.post("/api/0.6/execution", ALICE, &json!({"name": "busy-c", "application": busy}));
    assert_error(&third, 402, "quota_exceeded");
    assert!(third.1["message"].as_str().unwrap_or_default().contains("cores"), "{}", third.1);
    for id in [a, b] {
        let e = wait_status(&m, ALICE, id, &["running", "error"], 60);
        assert_eq!(e["status"], "running", "{e}");
        assert_eq!(e["application"]["services"][0]["required_resources"]["cores"], 0.5, "what it reserves, shown");
        let name = format!("main-{}-alice-{dep}", e["name"].as_str().unwrap());
        assert_eq!(inspect(&name)["HostConfig"]["NanoCpus"], 500_000_000);
    }
    let (_, stats) = m.post("/api/0.6/query", ALICE, &json!({"what": "stats_scheduler"}));
    assert_eq!(stats["stats"]["cores_reserved"], 1.0, "{stats}");
}
