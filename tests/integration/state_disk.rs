//! A full state disk (issue 20, item 3): a master whose state directory is on a tiny tmpfs, with
//! Docker. While the disk is full it backs off (CPU and log stay near zero), says it is not ready,
//! answers changes 503 and undoes them (no container starts for a refused submission, a refused
//! termination stops nothing), leaves no temporary files, and carries on without a restart once
//! space returns; after a restart the refused changes are absent and the acknowledged ones there.
//! Before the disk is full, changes are refused with 507 under `state-min-free`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::common::docker::{containers_of, require_docker, service, wait_status, Cleanup};
use crate::common::{app, assert_error, temp_dir, Master, ADMIN};

/// A tmpfs of `size` mounted on a new directory, unmounted when dropped (even when the test
/// fails; lazily if something still holds it).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(tag: &str, size: &str) -> Tmpfs {
        let dir = temp_dir(tag);
        let out =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(&dir).output();
        let out = out.unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        assert!(
            out.status.success(),
            "this test mounts a tmpfs (it needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Fills the file system of `dir` with `name`, up to `leave` bytes left free.
fn fill(dir: &Path, name: &str, leave: u64) -> PathBuf {
    use std::io::Write;
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    loop {
        if free(dir) <= leave + chunk.len() as u64 {
            break;
        }
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    if leave == 0 {
        // The last bytes, one by one.
        while f.write_all(&[0]).is_ok() {}
    }
    let _ = f.sync_all();
    path
}

/// Free bytes on the file system of `dir` (`df`, which this machine has).
fn free(dir: &Path) -> u64 {
    let out = Command::new("df").args(["-B1", "--output=avail"]).arg(dir).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().nth(1).and_then(|l| l.trim().parse().ok()).unwrap()
}

/// CPU time (user + system) a process has used, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz: u64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100);
    ticks as f64 / hz as f64
}

fn readyz(m: &Master) -> (u16, String) {
    let (s, v) = m.call("GET", "/readyz", None, None);
    (s, v.as_str().unwrap_or_default().to_string())
}

fn temp_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["checkpoints", "archive"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp") {
                out.push(format!("{sub}/{name}"));
            }
        }
    }
    out
}

#[test]
fn a_full_state_disk_is_calm_undoes_refused_changes_and_recovers_without_a_restart() {
    require_docker();
    // Dropped last: after the masters and the containers.
    let disk = Tmpfs::mount("statedisk", "4m");
    let state = disk.0.join("state");
    let deployment = format!("sd{}", std::process::id() % 10000);
    let _cleanup = Cleanup(deployment.clone());
    let ws = temp_dir("statedisk-ws");
    let flags = |min_free: &'static str| -> Vec<String> {
        [
            "--deployment-name",
            &deployment,
            "--reconcile-interval",
            "1",
            "--stop-grace",
            "1",
            "--workspace-base-path",
            ws.to_str().unwrap(),
            "--state-min-free",
            min_free,
        ]
        .map(String::from)
        .to_vec()
    };
    let args = flags("0");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut m = Master::start_in(&state, &args);
    m.create_user("alice", "user", "pa");
    let alice = ("alice", "pa");
    let sleeper = json!({"name": "sleeper", "version": 2, "will_end": false, "requires_binary": false, "priority": 1,
        "services": [service("main", true, 1, 0, "sleep 3600", json!([]))]});
    let kept = m.submit(alice, "kept", &sleeper);
    wait_status(&m, alice, kept, &["running"], 60);
    let running = containers_of(&deployment);
    assert_eq!(running.len(), 1, "{running:?}");

    // The disk fills up.
    let filler = fill(&disk.0, "filler", 0);
    let r = m.post("/api/0.6/user", ADMIN, &json!({"name": "refused", "role": "user", "password": "pr"}));
    assert_error(&r, 503, "checkpoint_failed");
    // Retrying is refused the same way, not with user_exists: the refused user is not in memory.
    let r = m.post("/api/0.6/user", ADMIN, &json!({"name": "refused", "role": "user", "password": "pr"}));
    assert_error(&r, 503, "checkpoint_failed");
    assert_error(&m.get("/api/0.6/user/refused", ADMIN), 404, "no_such_user");
    let r = m.post("/api/0.6/execution", alice, &json!({"name": "refused", "application": sleeper}));
    assert_error(&r, 503, "checkpoint_failed");
    assert_error(&m.delete(&format!("/api/0.6/execution/{kept}"), alice), 503, "checkpoint_failed");
    let (s, body) = readyz(&m);
    assert!(s == 503 && body.contains("not ready") && body.contains("failing"), "{s} {body}");

    // Calm while full: near-zero CPU and a log that does not grow (the engine is inventoried every
    // second meanwhile).
    let pid = m.process.child.id();
    let (cpu, lines) = (cpu_seconds(pid), m.process.log.lock().unwrap().len());
    std::thread::sleep(Duration::from_secs(5));
    let (cpu_used, new_lines) = (cpu_seconds(pid) - cpu, m.process.log.lock().unwrap()[lines..].to_vec());
    eprintln!("while full: {cpu_used:.2} s of CPU in 5 s, {} new log line(s)", new_lines.len());
    assert!(cpu_used < 0.25, "{cpu_used} s of CPU in 5 s while full");
    assert!(new_lines.len() <= 2, "the log grows while full: {new_lines:?}");
    // Nothing the refused changes asked for happened: no container for the refused submission,
    // the one whose termination was refused still runs.
    assert_eq!(containers_of(&deployment), running, "no container started or removed for a refused change");
    assert_eq!(m.get(&format!("/api/0.6/execution/{kept}"), alice).1["status"], "running");
    assert!(temp_files(&state).is_empty(), "no temporary files left: {:?}", temp_files(&state));

    // Space returns: the next change succeeds, without a restart.
    std::fs::remove_file(&filler).unwrap();
    m.create_user("bob", "user", "pb");
    assert_eq!(readyz(&m).0, 200);
    m.kill();

    // After a restart: the acknowledged changes are there, the refused ones are not.
    let mut m = Master::start_in(&state, &args);
    assert_eq!(m.get("/api/0.6/user/alice", ADMIN).0, 200);
    assert_eq!(m.get("/api/0.6/user/bob", ADMIN).0, 200);
    assert_eq!(m.get("/api/0.6/user/refused", ADMIN).0, 404);
    let (_, list) = m.get("/api/0.6/execution", ADMIN);
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["kept"], "{list}");
    assert_eq!(wait_status(&m, alice, kept, &["running"], 30)["status"], "running");
    m.kill();

    // The guard: with 2 MiB to be kept free, changes are refused with 507 once less is free,
    // before the disk is full; terminations still pass.
    let args = flags("2MiB");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let m = Master::start_in(&state, &args);
    let filler = fill(&disk.0, "filler", 1 << 20);
    // The master measures the disk every second.
    std::thread::sleep(Duration::from_millis(1500));
    let r = m.post("/api/0.6/user", ADMIN, &json!({"name": "carol", "role": "user", "password": "pc"}));
    assert_error(&r, 507, "insufficient_storage");
    assert!(r.1["message"].as_str().unwrap().contains("state-min-free"), "{}", r.1);
    assert_error(
        &m.post("/api/0.6/execution", alice, &json!({"name": "more", "application": app("img", None)})),
        507,
        "insufficient_storage",
    );
    assert!(free(&disk.0) > 512 * 1024, "refused before the disk is full");
    let (s, body) = readyz(&m);
    assert!(s == 200 && body.contains("state disk: low"), "{s} {body}");
    assert_eq!(m.delete(&format!("/api/0.6/execution/{kept}"), alice).0, 204, "terminations pass");
    wait_status(&m, alice, kept, &["terminated"], 60);
    std::fs::remove_file(&filler).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    m.create_user("carol", "user", "pc");
}
