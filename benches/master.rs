//! Master benchmarks: `cargo bench --bench master` (set `ZOE_BENCH_SECONDS` to change how long
//! each load runs, default 3).
//!
//! 1. Authenticated `GET /api/0.6/execution/<id>` against `GET /healthz` of the same master
//!    process, with wrk (16 connections, one thread then two), in the same run.
//! 2. Durable state changes per second from 64 concurrent clients, each submitting an
//!    execution and then terminating it (every change acknowledged only once its checkpoint is
//!    on disk), with 10 to 1,000,000 ended executions in the history (`ZOE_BENCH_HISTORY`;
//!    beyond the newest 500, in archive segments written by the archive's own writer, as a
//!    master leaves them); with the newest checkpoint's size and the master's peak memory; then
//!    a restart of that master: the time until it answers /healthz and a read of the oldest
//!    (archived) execution, its memory, and listings with filters.
//! 3. Time to load (read, parse, validate) a checkpoint of 10,000 executions.
//! 4. Time from `POST /api/0.6/execution` to `running` for executions of 3 and 10 containers,
//!    against creating, starting and inspecting the same containers directly through the Docker
//!    API, in the same run (needs Docker and `zoe-test-busybox:latest`).
//! 5. A master process's memory during 200 concurrent logins with made-up user names.
//! 6. A burst of 190 small executions (`ZOE_BURST`; each reserves 0.01 core, so at most 199 fit
//!    on two cores) released at once on Docker: time until all run, time until all are gone
//!    after they are terminated, failed starts, containers left.
//! 7. On the three-node test Swarm (`tests/cluster/cluster.sh`, brought up if needed): time from
//!    `POST /api/0.6/execution` to `running` for executions of 3 and 10 containers, against
//!    creating the same Swarm services directly through the manager's API (same groups, same
//!    specification, the same TLS), in the same run.
//! 8. The proxy: requests/s and latency of a small file, MB/s of a 64 MiB one, and WebSocket round
//!    trips, from a busybox httpd and echo server in an execution, through their application hosts
//!    (signed in with their cookies) and directly at the containers' addresses, in turns (needs
//!    Docker and `zoe-test-busybox:latest`), next to a plain relay of bytes; and JupyterLab kernel
//!    round trips (`ZOE_BENCH_PROXY=small|large|websocket|jupyter` runs one part).
//! 9. `zoe checkpoint diff` of two checkpoints of 20,000 executions that differ in 80,000 lines
//!    (`ZOE_BENCH_DIFF_BEFORE=1` also times the diff as it was made before: Myers, no deadline).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use zoe::config::MasterConfig;
use zoe_checkpoints::{encode, Archive, Execution, ExecutionStatus, Role, Service, ServiceStatus, State, Store, User};

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    config: MasterConfig,
}

/// Durable changes measured at each state size.
const CHANGES: usize = 2000;

const AUTH: &str = "Basic YWxpY2U6YWxpY2UtcHc="; // alice:alice-pw

fn seconds() -> f64 {
    std::env::var("ZOE_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0)
}

fn app() -> serde_json::Value {
    json!({
        "name": "bench", "version": 2, "will_end": true, "requires_binary": false, "priority": 512,
        "services": [{
            "name": "main", "docker_image": "zoe-test-busybox:latest", "monitor": true,
            "total_count": 1, "essential_count": 1, "startup_order": 0, "ports": [],
            "required_resources": {"memory": 67108864}, "command": "sleep 1"
        }]
    })
}

/// A state with zoeadmin, alice and `n` finished executions of alice.
fn state_with(n: usize) -> State {
    let hash = zoe::auth::hash_password("alice-pw").unwrap_or_default();
    let mut s = State::new("bench");
    let now = time::OffsetDateTime::now_utc();
    for (name, role) in [("zoeadmin", Role::Admin), ("alice", Role::User)] {
        let id = s.gen_id();
        let uid = s.gen_uid();
        s.users.insert(
            id,
            Arc::new(User { id, name: name.into(), role, uid, password_hash: hash.clone(), created_at: now }),
        );
    }
    let application =
        zoe_actors::description::app_description::parse_application(&app()).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..n {
        let id = s.gen_id();
        s.executions.insert(
            id,
            Arc::new(Execution {
                id,
                name: format!("old-{i}"),
                owner: "alice".into(),
                owner_id: 1,
                status: ExecutionStatus::Terminated,
                error: None,
                ending: None,
                time_scheduled: now,
                time_started: None,
                time_finished: Some(now),
                application: application.clone(),
                services: vec![],
                proxy_secret: None,
            }),
        );
    }
    s
}

/// Ended executions a master keeps in its checkpoint by default (`--history-keep`).
const HISTORY_KEEP: usize = 500;

/// A state directory with `n` finished executions, all in the checkpoint.
fn prepare_dir(tag: &str, n: usize) -> PathBuf {
    prepare(tag, state_with(n))
}

fn prepare(tag: &str, state: State) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zoe-bench-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir).unwrap_or_else(|e| panic!("{e}"));
    let text = encode(&state).unwrap_or_else(|e| panic!("{e}"));
    store.write(1, &text).unwrap_or_else(|e| panic!("{e}"));
    dir
}

/// Archived executions per segment in a generated history (a master writes 100 to 1,000 per
/// segment; the issue's run through the API averaged 236).
const SEGMENT: usize = 250;

/// A state directory with `n` ended executions of alice as a master leaves them: the newest
/// [`HISTORY_KEEP`] in the checkpoint, the others in archive segments of [`SEGMENT`], written by
/// the archive's own writer a segment at a time (a million need no more memory than a segment).
/// Execution `i` (id `2 + 2i`, its service `3 + 2i`) is named `job-<i % 10,000>`, was submitted
/// `n - i` minutes ago, ran 30 s and ended terminated, finished or in error in turn.
fn prepare_archived(tag: &str, n: usize) -> PathBuf {
    let mut state = state_with(0);
    let application =
        zoe_actors::description::app_description::parse_application(&app()).unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!("zoe-bench-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let archive = Archive::open(&dir).unwrap_or_else(|e| panic!("{e}"));
    let archived = n.saturating_sub(HISTORY_KEEP);
    let now = time::OffsetDateTime::now_utc();
    let mut batch = Vec::with_capacity(SEGMENT);
    for i in 0..n {
        let (id, service) = (state.gen_id(), state.gen_id());
        let name = format!("job-{}", i % 10_000);
        let scheduled = now - Duration::from_secs(60 * (n - i) as u64);
        let e = Arc::new(Execution {
            id,
            name: name.clone(),
            owner: "alice".into(),
            owner_id: 1,
            status: [ExecutionStatus::Terminated, ExecutionStatus::Finished, ExecutionStatus::Error][i % 3],
            error: None,
            ending: None,
            time_scheduled: scheduled,
            time_started: Some(scheduled),
            time_finished: Some(scheduled + Duration::from_secs(30)),
            application: application.clone(),
            services: vec![Service {
                id: service,
                name: format!("main-{name}-alice-bench"),
                service_name: "main".into(),
                index: 0,
                is_monitor: true,
                status: ServiceStatus::Exited,
                docker_id: None,
                exit_code: Some(0),
                oom_killed: false,
                ip_address: Default::default(),
                ports: vec![],
                node: None,
                retries: 0,
            }],
            proxy_secret: None,
        });
        if i < archived {
            batch.push(e);
            if batch.len() == SEGMENT || i + 1 == archived {
                state.archived_segments += 1;
                archive.write("bench", state.archived_segments, &batch).unwrap_or_else(|e| panic!("{e}"));
                batch.clear();
            }
        } else {
            state.executions.insert(id, e);
        }
    }
    let store = Store::open(&dir).unwrap_or_else(|e| panic!("{e}"));
    let text = encode(&state).unwrap_or_else(|e| panic!("{e}"));
    store.write(1, &text).unwrap_or_else(|e| panic!("{e}"));
    dir
}

/// Bytes of the files in a directory.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).into_iter().flatten().flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()
}

/// What a master process gets in these benchmarks: no Docker, and the per-user limits that
/// protect a real deployment from one user lifted (the benchmark measures throughput).
const BENCH_MASTER: &[&str] = &[
    "--no-docker",
    "--deployment-name",
    "bench",
    "--keep-checkpoints",
    "3",
    "--submit-rate",
    "1000000",
    "--submit-burst",
    "1000000",
    "--user-max-active",
    "1000000",
    "--user-max-queued",
    "1000000",
];

/// Starts a master (in this process, its own actix system) on `dir`; returns its address.
fn start_master_with(dir: &Path, extra: &[&str]) -> SocketAddr {
    let mut args = vec![
        "bench",
        "--state-dir",
        dir.to_str().unwrap_or("."),
        "--deployment-name",
        "bench",
        "--listen-port",
        "0",
        "--keep-checkpoints",
        "3",
        // The benchmark measures throughput, not the per-user limits that protect a real
        // deployment from one user: lift them.
        "--submit-rate",
        "1000000",
        "--submit-burst",
        "1000000",
        "--user-max-active",
        "1000000",
        "--user-max-queued",
        "1000000",
    ];
    args.extend_from_slice(extra);
    let config = Wrap::parse_from(args).config;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        actix::System::new().block_on(async move {
            match zoe::master::start(config) {
                Ok(r) => {
                    let _ = tx.send(r.addr);
                    let _ = r.server.await;
                }
                Err(e) => panic!("master: {e}"),
            }
        })
    });
    rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|e| panic!("master did not start: {e}"))
}

/// Requests per second, p50 and p99 latencies (ms).
type Rate = (f64, f64, f64);

/// wrk's requests per second and p50 and p99 latencies (ms) for `url`, 16 connections from
/// `threads` threads.
fn wrk(url: &str, threads: u32, secs: f64, headers: &[&str]) -> Rate {
    let mut cmd = std::process::Command::new("wrk");
    cmd.args(["-t", &threads.to_string(), "-c", "16", "-d", &format!("{}s", secs.ceil() as u64), "--latency"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().unwrap_or_else(|e| panic!("cannot run wrk (apt-get install wrk): {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"));
    let ms = |pct: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(pct).map(str::trim))
            .map(|v| {
                let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
                let n: f64 = n.parse().unwrap_or(0.0);
                match unit {
                    "us" => n / 1000.0,
                    "s" => n * 1000.0,
                    _ => n,
                }
            })
            .unwrap_or(0.0)
    };
    (rps, ms("50%"), ms("99%"))
}

fn reads(secs: f64) {
    let dir = prepare_dir("reads", 1000);
    // All 1,000 stay in the checkpoint: this measures reads of the state in memory.
    let (mut child, addr) =
        master_process(&dir, &["--no-docker", "--deployment-name", "bench", "--history-keep", "1000000"]);
    let health = format!("http://{addr}/healthz");
    let read = format!("http://{addr}/api/0.6/execution/2");
    let auth = format!("Authorization: {AUTH}");
    // Warm up (the first authenticated request pays argon2 once). Then, for one wrk thread (the
    // load generator keeps to one core and leaves the other to the master) and for two (it
    // competes with the master for both), alternate the two loads twice.
    wrk(&read, 1, 1.0, &[&auth]);
    println!("| wrk, 16 connections (mean of 2 alternating runs) | GET /healthz: requests/s, p50, p99 ms | authenticated GET /api/0.6/execution/<id> (1,000 in state): requests/s, p50, p99 ms | ratio |");
    println!("|---|---|---|---|");
    for threads in [1, 2] {
        let mut runs = Vec::new();
        for _ in 0..2 {
            runs.push((wrk(&health, threads, secs, &[]), wrk(&read, threads, secs, &[&auth])));
        }
        let mean = |f: &dyn Fn(&(Rate, Rate)) -> f64| runs.iter().map(f).sum::<f64>() / runs.len() as f64;
        let (h, h50, h99) = (mean(&|r| r.0 .0), mean(&|r| r.0 .1), mean(&|r| r.0 .2));
        let (r, r50, r99) = (mean(&|r| r.1 .0), mean(&|r| r.1 .1), mean(&|r| r.1 .2));
        println!("| {threads} thread(s) | {h:.0}, {h50:.2}, {h99:.2} | {r:.0}, {r50:.2}, {r99:.2} | {:.2}x |", r / h);
    }
    println!("\n(goal: authenticated reads at least 0.8x the rate of /healthz)\n");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    // An archived execution is read from its segment on disk at each request.
    let dir = prepare_archived("reads-archived", 10_000);
    let (mut child, addr) = master_process(&dir, &["--no-docker", "--deployment-name", "bench"]);
    let read = format!("http://{addr}/api/0.6/execution/2");
    wrk(&read, 1, 1.0, &[&auth]);
    let (r, r50, r99) = wrk(&read, 1, secs, &[&auth]);
    println!("authenticated GET of an archived execution (10,000 in history), wrk 1 thread: {r:.0} requests/s, p50 {r50:.2} ms, p99 {r99:.2} ms\n");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    // `cargo test --benches` passes --bench-less flags; only run when asked for a benchmark.
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    if let Ok(filter) = std::env::var("ZOE_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let only = std::env::var("ZOE_BENCH_ONLY").unwrap_or_default();
    let secs = seconds();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    println!("Zoe master benchmarks: {cores} cores, {secs} s per load, release build\n");

    // 1. Authenticated reads against /healthz, with wrk, on a master process.
    if only.is_empty() || only == "reads" {
        reads(secs);
    }

    // 2. Durable changes with 64 clients.
    if only.is_empty() || only == "writes" {
        writes();
    }

    // 3. Loading a checkpoint of 10,000 executions.
    if only.is_empty() || only == "load" {
        let dir = prepare_dir("load", 10_000);
        let store = Store::open(&dir).unwrap_or_else(|e| panic!("{e}"));
        let size = store.list().unwrap_or_default().first().map(|f| f.size).unwrap_or(0);
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let s = store.load(1).unwrap_or_else(|e| panic!("{e}"));
            best = best.min(t.elapsed().as_secs_f64());
            assert_eq!(s.executions.len(), 10_000);
        }
        println!(
            "\nloading a checkpoint of 10,000 executions ({:.1} MB): {:.0} ms (best of 3; goal: under 1 s)",
            size as f64 / 1e6,
            best * 1e3
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    // 4. Starting containers: Zoe against the Docker API directly.
    if only.is_empty() || only == "start" {
        startup(std::env::var("ZOE_BENCH_STARTS").ok().and_then(|s| s.parse().ok()).unwrap_or(5));
    }

    // 5. Memory during a flood of logins with made-up names.
    if only.is_empty() || only == "logins" {
        logins();
    }

    // 6. A burst of executions released at once.
    if only.is_empty() || only == "burst" {
        burst(std::env::var("ZOE_BURST").ok().and_then(|s| s.parse().ok()).unwrap_or(190));
    }

    // 8. The proxy against the service reached directly.
    if only.is_empty() || only == "proxy" {
        proxy(secs);
    }

    // 9. `zoe checkpoint diff` of two large checkpoints that differ everywhere.
    if only.is_empty() || only == "diff" {
        diff();
    }

    // 7. Starting on a Swarm: Zoe against the manager's API directly.
    if only.is_empty() || only == "swarm" {
        swarm_startup(std::env::var("ZOE_BENCH_STARTS").ok().and_then(|s| s.parse().ok()).unwrap_or(5));
    }

    unmount_workspaces();
}

/// Unmounts the workspace images the benchmark's masters mounted (under its own folders).
fn unmount_workspaces() {
    let ours = std::env::temp_dir().join(format!("zoe-bench-{}-", std::process::id()));
    let ours = ours.to_string_lossy().into_owned();
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> =
        table.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| p.starts_with(&ours)).collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = std::process::Command::new("timeout").args(["-k", "5", "60", "umount", p]).status();
    }
}

/// Sizes of history the `writes` benchmark measures (`ZOE_BENCH_HISTORY`, comma-separated).
fn history_sizes() -> Vec<usize> {
    std::env::var("ZOE_BENCH_HISTORY")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 10_000, 50_000, 100_000, 500_000, 1_000_000])
}

/// Median milliseconds of 11 sequential `GET url` (after one not counted), each answered 200.
fn get_ms(agent: &ureq::Agent, url: &str, auth: &str) -> f64 {
    let once = || {
        let t = Instant::now();
        let mut resp = agent.get(url).header("Authorization", auth).call().unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_vec().unwrap_or_default();
        assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
        t.elapsed().as_secs_f64() * 1e3
    };
    once();
    median((0..11).map(|_| once()).collect())
}

/// Durable changes with history of growing size, each on a master process of its own; then a
/// restart of it, timed, with its memory and the time of listings and of reading an archived
/// execution.
fn writes() {
    use base64::Engine;
    let admin = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("zoeadmin:alice-pw"));
    println!("{CHANGES} durable state changes from 64 clients at each size (the median of 3 runs, each after one on a master with a fresh state, kept running: the ratio is of the medians), each client submitting an execution and then terminating it; masters on default history settings (the newest 500 ended executions in the checkpoint, the rest archived):\n");
    println!("| ended executions in history | durable changes/s (64 clients) | vs a fresh state | p50 ms | p99 ms | executions in the newest checkpoint at end | archive segments | newest checkpoint | largest checkpoint during the run | master peak RSS | restart until an archived execution is read |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let fresh_dir = prepare_archived("writes-fresh", 10);
    let (mut fresh, fresh_addr) = master_process(&fresh_dir, BENCH_MASTER);
    let fresh_sock: SocketAddr = fresh_addr.parse().unwrap_or_else(|e| panic!("{fresh_addr}: {e}"));
    let mut restarts = Vec::new();
    for n in history_sizes() {
        let t = Instant::now();
        let generated = time::OffsetDateTime::now_utc();
        let dir = prepare_archived(&format!("writes-{n}"), n);
        eprintln!("history of {n} generated in {:.1} s", t.elapsed().as_secs_f64());
        let (mut child, addr) = master_process(&dir, BENCH_MASTER);
        let sock: SocketAddr = addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"));
        // The largest checkpoint written during the run, watched every 5 ms.
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let (done, checkpoints) = (done.clone(), dir.join("checkpoints"));
            std::thread::spawn(move || {
                let mut largest = 0;
                while !done.load(Ordering::Relaxed) {
                    for e in std::fs::read_dir(&checkpoints).into_iter().flatten().flatten() {
                        largest = largest.max(e.metadata().map(|m| m.len()).unwrap_or(0));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                largest
            })
        };
        // Three runs, each right after one on the fresh master: a run takes about half a
        // second and the machine is shared, so both sides of the ratio see the same weather.
        let mut runs = Vec::new();
        let mut base = Vec::new();
        for _ in 0..3 {
            base.push(changes(fresh_sock, 64, CHANGES).0);
            runs.push(changes(sock, 64, CHANGES));
        }
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (rps, p50, p99) = runs[1];
        let base = median(base);
        done.store(true, Ordering::Relaxed);
        let largest = watcher.join().unwrap_or(0);
        let peak = memory_kb(child.id(), "VmHWM");
        let _ = child.kill();
        let _ = child.wait();
        let store = Store::open(&dir).unwrap_or_else(|e| panic!("{e}"));
        let last = store.list().unwrap_or_default().last().map(|f| (f.number, f.size)).unwrap_or((0, 0));
        let state = store.load(last.0).unwrap_or_else(|e| panic!("{e}"));
        // Restart: from starting the process to the first answer of /healthz, and to the first
        // answer about the oldest execution, which is archived (except in the smallest history).
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let t = Instant::now();
        let (mut child, addr) = master_process(&dir, BENCH_MASTER);
        let health = agent.get(format!("http://{addr}/healthz")).call().map(|r| r.status().as_u16()).unwrap_or(0);
        let healthy = t.elapsed().as_secs_f64();
        let status = agent
            .get(format!("http://{addr}/api/0.6/execution/2"))
            .header("Authorization", AUTH)
            .call()
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        let restart = t.elapsed().as_secs_f64();
        assert_eq!((health, status), (200, 200), "the oldest execution is readable after the restart");
        // Listings with filters, as an administrator (all of alice's are visible) and as alice.
        let url = |q: &str| format!("http://{addr}/api/0.6/execution?{q}");
        // The generated executions of the last 10 hours before the run (600), not those of the run.
        let since = (generated - Duration::from_secs(10 * 3600))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
            .replace(':', "%3A")
            .replace('+', "%2B");
        let listings = [
            get_ms(&agent, &url("limit=100"), &admin),
            get_ms(&agent, &url("owner=alice&status=finished&limit=100"), &admin),
            get_ms(&agent, &url("name=job-7"), &admin),
            get_ms(&agent, &url(&format!("since={since}&before={}", 2 + 2 * n)), &admin),
            get_ms(&agent, &url(&format!("before={}&limit=100", n + 2)), &admin),
            get_ms(&agent, &url("status=error&limit=50"), AUTH),
        ];
        let get = get_ms(&agent, &format!("http://{addr}/api/0.6/execution/2"), AUTH);
        let (rss, rss_peak) = (memory_kb(child.id(), "VmRSS"), memory_kb(child.id(), "VmHWM"));
        let _ = child.kill();
        let _ = child.wait();
        println!(
            "| {n} | {rps:.0} | {:.2}x | {p50:.1} | {p99:.1} | {} | {} | {:.2} MB | {:.2} MB | {:.0} MB | {restart:.2} s |",
            rps / base,
            state.executions.len(),
            state.archived_segments,
            last.1 as f64 / 1e6,
            largest as f64 / 1e6,
            peak as f64 / 1024.0
        );
        let ms = listings.iter().map(|l| format!("{l:.1}")).collect::<Vec<_>>().join(" | ");
        restarts.push(format!(
            "| {n} | {:.0} MB | {healthy:.2} s | {restart:.2} s | {:.0} MB ({:.0} MB) | {ms} | {get:.2} |",
            dir_bytes(&dir.join("archive")) as f64 / 1e6,
            rss as f64 / 1024.0,
            rss_peak as f64 / 1024.0,
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = fresh.kill();
    let _ = fresh.wait();
    let _ = std::fs::remove_dir_all(&fresh_dir);
    println!("\n(goals with 50,000 ended executions: at least 0.7x the changes/s of a fresh state, newest checkpoint under 2 MB, restart under 1.5 s, RSS under 200 MB; with 500,000 and 1,000,000: at least 0.9x)\n");
    println!("The restart of each master above: from starting the process to the first answer of /healthz and of a read of the oldest (archived) execution; its memory once it answered the listings; listings with filters and a read of an archived execution (median ms of 11, sequential):\n");
    println!("| ended executions in history | archive on disk | restart until /healthz | until an archived execution is read | RSS (peak) | newest 100 | owner and status, 100 | by name (all) | submitted in 10 h, before the run | 100 deep in history (before) | alice's errors, 50 | GET of an archived execution |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in restarts {
        println!("{r}");
    }
    println!("\n(goals with 500,000 and 1,000,000: answers within 1 s of the start, RSS under 150 MB, listings and reads within 50 ms)\n");
}

/// A master as a process of its own (the `zoe` binary of this build), so that its memory can be
/// read; returns the process and its address. `ZOE_ADMIN_PASSWORD` is `admin-pw`.
fn master_process(dir: &Path, extra: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_zoe"))
        .args(["master", "--listen-port", "0", "--state-dir"])
        .arg(dir)
        .args(extra)
        .env("ZOE_ADMIN_PASSWORD", "admin-pw")
        .env("ZOE_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run zoe: {e}"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = tx.send(rest.split('/').next().unwrap_or_default().to_string());
            }
            if line.contains("ERROR") || line.starts_with("zoe master:") {
                eprintln!("master: {line}");
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("the master did not start ({e}); see its errors above"));
    (child, addr)
}

/// A figure of `/proc/<pid>/status` in kB (`VmRSS`, `VmHWM`).
fn memory_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .and_then(|r| r.trim_start_matches(':').split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn logins() {
    use base64::Engine;
    let dir = prepare_dir("logins", 0);
    let (mut child, addr) = master_process(&dir, &["--no-docker", "--deployment-name", "bench"]);
    std::thread::sleep(Duration::from_secs(1));
    let before = memory_kb(child.id(), "VmRSS");
    let t = Instant::now();
    let handles: Vec<_> = (0..200)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(60)))
                    .build()
                    .into();
                let auth = base64::engine::general_purpose::STANDARD.encode(format!("made-up-{i}:guess"));
                agent
                    .get(format!("http://{addr}/api/0.6/info"))
                    .header("Authorization", format!("Basic {auth}"))
                    .call()
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap_or(0)).collect();
    let took = t.elapsed();
    let peak = memory_kb(child.id(), "VmHWM");
    std::thread::sleep(Duration::from_secs(4));
    let after = memory_kb(child.id(), "VmRSS");
    let _ = child.kill();
    let _ = child.wait();
    let count = |s: u16| statuses.iter().filter(|x| **x == s).count();
    println!(
        "
200 concurrent logins with made-up names: {} refused (401), {} asked to retry (503) in {:.1} s; master memory {:.0} MiB before, peak {:.0} MiB (+{:.0} MiB), {:.0} MiB 4 s after",
        count(401),
        count(503),
        took.as_secs_f64(),
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        peak.saturating_sub(before) as f64 / 1024.0,
        after as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the docker CLI under a time limit; its standard output.
fn docker_cli(args: &[&str]) -> String {
    let out = std::process::Command::new("timeout").args(["-k", "5", "300", "docker"]).args(args).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

/// Kills the master and removes the containers of a deployment when dropped, even when the
/// benchmark fails half-way.
struct BurstCleanup(String, std::process::Child);

impl Drop for BurstCleanup {
    fn drop(&mut self) {
        let _ = self.1.kill();
        let _ = self.1.wait();
        let ids = docker_cli(&["ps", "-aq", "--filter", &format!("label=zoe.deployment_name={}", self.0)]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        for chunk in ids.chunks(4) {
            let mut args = vec!["rm", "-f"];
            args.extend_from_slice(chunk);
            docker_cli(&args);
        }
        for net in docker_cli(&["network", "ls", "-q", "--filter", &format!("label=zoe.deployment_name={}", self.0)])
            .split_whitespace()
        {
            docker_cli(&["network", "rm", net]);
        }
    }
}

fn burst(n: usize) {
    let dir = std::env::temp_dir().join(format!("zoe-bench-{}-burst", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let deployment = format!("burst{}", std::process::id() % 100_000);
    let ws = dir.join("ws");
    let (child, addr) = master_process(
        &dir,
        &[
            "--deployment-name",
            &deployment,
            "--max-memory",
            "8GiB",
            // Every container reserves what it may use: a hundredth of a core, Docker's
            // smallest limit, so that 199 fit at once on two cores.
            "--default-cores",
            "0.01",
            "--stop-grace",
            "2",
            "--workspace-base-path",
            ws.to_str().unwrap_or("ws"),
        ],
    );
    let cleanup = BurstCleanup(deployment.clone(), child);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let call = |method: &str, path: &str, body: Option<serde_json::Value>| {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header("Authorization", "Basic em9lYWRtaW46YWRtaW4tcHc=") // zoeadmin:admin-pw
            .header("Content-Type", "application/json")
            .body(body.map(|b| b.to_string()).unwrap_or_default().into_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut resp = agent.run(req).unwrap_or_else(|e| panic!("{path}: {e}"));
        resp.body_mut().read_json::<serde_json::Value>().unwrap_or(serde_json::Value::Null)
    };
    let sleeper = |memory: u64| {
        json!({"name": "b", "version": 2, "will_end": false, "requires_binary": false, "priority": 1,
            "services": [{"name": "main", "docker_image": "zoe-test-busybox:latest", "monitor": true, "total_count": 1,
                          "essential_count": 1, "startup_order": 0, "ports": [], "required_resources": {"memory": memory},
                          "command": "sleep 3600"}]})
    };
    let count =
        |status: &str| call("GET", &format!("/api/0.6/execution?status={status}"), None).as_array().map_or(0, Vec::len);
    let blocker = call("POST", "/api/0.6/execution", Some(json!({"name": "blocker", "application": sleeper(8 << 30)})))
        ["execution_id"]
        .clone();
    while count("running") < 1 {
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..n {
        let v =
            call("POST", "/api/0.6/execution", Some(json!({"name": format!("x{i}"), "application": sleeper(8 << 20)})));
        assert!(v["execution_id"].is_u64(), "{v}");
    }
    let t = Instant::now();
    call("DELETE", &format!("/api/0.6/execution/{blocker}"), None);
    let mut most_starting = 0;
    while count("running") < n && count("error") == 0 {
        let stats = call("POST", "/api/0.6/query", Some(json!({"what": "stats_scheduler"})));
        most_starting = most_starting.max(stats["stats"]["count_starting"].as_u64().unwrap_or(0));
        std::thread::sleep(Duration::from_millis(500));
    }
    let running = t.elapsed();
    let failed = count("error");
    let t = Instant::now();
    for e in call("GET", "/api/0.6/execution?status=running", None).as_array().cloned().unwrap_or_default() {
        call("DELETE", &format!("/api/0.6/execution/{}", e["id"]), None);
    }
    while count("running") + count("cleaning%20up") > 0 {
        std::thread::sleep(Duration::from_millis(500));
    }
    let gone = t.elapsed();
    let left = docker_cli(&["ps", "-aq", "--filter", &format!("label=zoe.deployment_name={deployment}")])
        .split_whitespace()
        .count();
    let engine = docker_cli(&["info", "--format", "{{.ServerVersion}}"]);
    drop(cleanup);
    println!(
        "
burst of {n} executions released at once: all running in {:.0} s ({:.1}/s, at most {most_starting} starting at once), {failed} failed starts; \
         terminated, all gone in {:.0} s; {left} containers left; engine {}",
        running.as_secs_f64(),
        n as f64 / running.as_secs_f64(),
        gone.as_secs_f64(),
        if engine.trim().is_empty() { "not answering!".to_string() } else { format!("still answering ({})", engine.trim()) }
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `clients` threads, each submitting an execution and terminating it, again and again, until
/// `total` changes (each acknowledged only once durable) were answered. Returns (changes per
/// second, p50 ms, p99 ms).
fn changes(addr: SocketAddr, clients: usize, total: usize) -> (f64, f64, f64) {
    let count = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(std::sync::Barrier::new(clients + 1));
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (count, ready) = (count.clone(), ready.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(60)))
                    .build()
                    .into();
                // Warm up: the connection and the credential cache.
                let (s, _) = http(&agent, "GET", &format!("http://{addr}/api/0.6/info"), None);
                assert_eq!(s, 200);
                ready.wait();
                let mut lat = Vec::new();
                for i in 0.. {
                    if count.load(Ordering::Relaxed) as usize >= total {
                        break;
                    }
                    let t = Instant::now();
                    let body = json!({"name": format!("c{c}-{i}"), "application": app()}).to_string();
                    let (s, v) = http(&agent, "POST", &format!("http://{addr}/api/0.6/execution"), Some(body));
                    assert_eq!(s, 201, "{v}");
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                    let t = Instant::now();
                    let (s, v) =
                        http(&agent, "DELETE", &format!("http://{addr}/api/0.6/execution/{}", v["execution_id"]), None);
                    assert_eq!(s, 204, "{v}");
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                    count.fetch_add(2, Ordering::Relaxed);
                }
                lat
            })
        })
        .collect();
    ready.wait();
    let started = Instant::now();
    let mut lat: Vec<f64> = handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect();
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct =
        |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0.0);
    (count.load(Ordering::Relaxed) as f64 / elapsed, pct(0.5), pct(0.99))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn app_of(containers: u32) -> serde_json::Value {
    json!({
        "name": "startup", "version": 2, "will_end": false, "requires_binary": false, "priority": 1,
        "services": [
            {"name": "main", "docker_image": "zoe-test-busybox:latest", "monitor": true, "total_count": 1,
             "essential_count": 1, "startup_order": 0, "ports": [],
             "required_resources": {"memory": 33554432}, "command": "sleep 600"},
            {"name": "worker", "docker_image": "zoe-test-busybox:latest", "monitor": false, "total_count": containers - 1,
             "essential_count": 1, "startup_order": 1, "ports": [],
             "required_resources": {"memory": 33554432}, "command": "sleep 600"}
        ]
    })
}

fn http(agent: &ureq::Agent, method: &str, url: &str, body: Option<String>) -> (u16, serde_json::Value) {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Authorization", AUTH)
        .header("Content-Type", "application/json")
        .body(body.unwrap_or_default().into_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut resp = agent.run(req).unwrap_or_else(|e| panic!("{url}: {e}"));
    let v = resp.body_mut().read_json().unwrap_or(serde_json::Value::Null);
    (resp.status().as_u16(), v)
}

fn wait_for(agent: &ureq::Agent, url: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, e) = http(agent, "GET", url, None);
        if e["status"] == status {
            return;
        }
        assert!(e["status"] != "error", "{e}");
        assert!(Instant::now() < deadline, "never {status}: {e}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Creates, starts and inspects `n` containers like Zoe does, straight through the Docker API.
async fn direct_start(docker: &bollard::Docker, run: usize, n: u32, workspace: &str) -> Vec<String> {
    use bollard::models::{ContainerCreateBody, HostConfig};
    use bollard::query_parameters::{CreateContainerOptions, InspectContainerOptions, StartContainerOptions};
    let mut ids = Vec::new();
    for i in 0..n {
        let name = format!("direct-{run}-{i}-bench");
        let body = ContainerCreateBody {
            hostname: Some(name.clone()),
            image: Some("zoe-test-busybox:latest".into()),
            cmd: Some(vec!["sleep".into(), "600".into()]),
            env: Some(vec!["HOME=/mnt/workspace".into()]),
            user: Some("200001:200001".into()),
            labels: Some(
                [
                    "deployment_name",
                    "owner",
                    "execution.name",
                    "execution.id",
                    "service.name",
                    "service.id",
                    "type",
                    "monitor",
                ]
                .iter()
                .map(|k| (format!("zoe.bench.{k}"), "x".to_string()))
                .collect(),
            ),
            host_config: Some(HostConfig {
                memory: Some(33554432),
                memory_swap: Some(33554432),
                readonly_rootfs: Some(true),
                tmpfs: Some([("/tmp".to_string(), "rw,exec,nosuid,nodev,size=33554432,mode=1777".to_string())].into()),
                nano_cpus: Some(100_000_000),
                pids_limit: Some(1024),
                network_mode: Some("zoe-bench-direct".into()),
                init: Some(true),
                privileged: Some(false),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                binds: Some(vec![format!("{workspace}:/mnt/workspace:rw")]),
                log_config: Some(bollard::models::HostConfigLogConfig {
                    typ: Some("json-file".into()),
                    config: Some(
                        [("max-size".to_string(), "10485760".to_string()), ("max-file".to_string(), "2".to_string())]
                            .into(),
                    ),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptions { name: Some(name), ..Default::default() };
        let id = docker.create_container(Some(opts), body).await.unwrap_or_else(|e| panic!("{e}")).id;
        docker.start_container(&id, None::<StartContainerOptions>).await.unwrap_or_else(|e| panic!("{e}"));
        docker.inspect_container(&id, None::<InspectContainerOptions>).await.unwrap_or_else(|e| panic!("{e}"));
        ids.push(id);
    }
    ids
}

fn startup(runs: usize) {
    use bollard::query_parameters::RemoveContainerOptions;
    let dir = prepare_dir("start", 0);
    // Two cores: each container reserves a tenth of one (as the direct path limits them).
    let addr = start_master_with(
        &dir,
        &[
            "--stop-grace",
            "1",
            "--default-cores",
            "0.1",
            "--workspace-base-path",
            dir.join("ws").to_str().unwrap_or("ws"),
        ],
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let workspace =
        std::path::absolute(dir.join("ws").join("bench").join("alice")).unwrap_or_default().display().to_string();
    let system = actix::System::new();
    let docker = bollard::Docker::connect_with_local_defaults().unwrap_or_else(|e| panic!("Docker: {e}"));
    system.block_on(async {
        let req = bollard::models::NetworkCreateRequest { name: "zoe-bench-direct".into(), ..Default::default() };
        let _ = docker.create_network(req).await;
    });
    println!("\n| containers | POST to running, Zoe (median of {runs}) | create+start+inspect, Docker API directly | Zoe's overhead |");
    println!("|---|---|---|---|");
    for n in [3u32, 10] {
        let (mut zoe, mut direct) = (Vec::new(), Vec::new());
        for run in 0..=runs {
            let zoe_run = || {
                let t = Instant::now();
                let body = json!({"name": format!("s{n}-{run}"), "application": app_of(n)}).to_string();
                let (s, v) = http(&agent, "POST", &format!("http://{addr}/api/0.6/execution"), Some(body));
                assert_eq!(s, 201, "{v}");
                let url = format!("http://{addr}/api/0.6/execution/{}", v["execution_id"]);
                wait_for(&agent, &url, "running");
                let z = t.elapsed().as_secs_f64();
                http(&agent, "DELETE", &url, None);
                wait_for(&agent, &url, "terminated");
                z
            };
            let direct_run = || {
                let t = Instant::now();
                let ids = system.block_on(direct_start(&docker, run, n, &workspace));
                let d = t.elapsed().as_secs_f64();
                system.block_on(async {
                    for id in ids {
                        let _ = docker
                            .remove_container(&id, Some(RemoveContainerOptions { force: true, ..Default::default() }))
                            .await;
                    }
                });
                d
            };
            // Alternate which goes first, and let the engine settle after each clean-up, so
            // that neither path pays for the other's leftovers.
            let settle = || std::thread::sleep(Duration::from_millis(1500));
            let (z, d) = if run % 2 == 0 {
                let z = zoe_run();
                settle();
                let d = direct_run();
                settle();
                (z, d)
            } else {
                let d = direct_run();
                settle();
                let z = zoe_run();
                settle();
                (z, d)
            };
            if run > 0 {
                // Run 0 warms up both paths (network creation, caches).
                zoe.push(z);
                direct.push(d);
            }
        }
        let (z, d) = (median(zoe), median(direct));
        println!("| {n} | {:.0} ms | {:.0} ms | {:+.1}% |", z * 1e3, d * 1e3, 100.0 * (z - d) / d);
    }
    system.block_on(async {
        let _ = docker.remove_network("zoe-bench-direct").await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// The test cluster's settings (`cluster.sh env`), the cluster brought up first, with the test
/// image and the relay's (`zoe-relay:bench`, built from this binary) on every node.
fn cluster_env() -> std::collections::HashMap<String, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster/cluster.sh");
    let relay = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/relay-image.sh");
    let built = std::process::Command::new("bash")
        .args([relay, env!("CARGO_BIN_EXE_zoe"), "zoe-relay:bench"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(built.status.success(), "relay-image.sh: {}", String::from_utf8_lossy(&built.stderr));
    for args in [&["up"][..], &["load", "zoe-test-busybox:latest", "zoe-relay:bench"][..]] {
        let out = std::process::Command::new("timeout")
            .args(["900", "bash", script])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "cluster.sh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = std::process::Command::new("bash").args([script, "env"]).output().unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

/// The specification Zoe gives a Swarm service, built here by hand (as a user of the API would).
fn direct_service(name: &str, network: &str, workspace: &str) -> bollard::models::ServiceSpec {
    use bollard::models::*;
    let labels: std::collections::HashMap<String, String> =
        ["deployment_name", "owner", "execution.name", "execution.id", "service.name", "service.id", "type", "monitor"]
            .iter()
            .map(|k| (format!("zoe.bench.{k}"), "x".to_string()))
            .collect();
    ServiceSpec {
        name: Some(name.to_string()),
        labels: Some(labels.clone()),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some("zoe-test-busybox:latest".into()),
                labels: Some(labels),
                args: Some(vec!["sleep".into(), "600".into()]),
                hostname: Some(name.to_string()),
                env: Some(vec!["HOME=/mnt/workspace".into()]),
                user: Some("200001:200001".into()),
                mounts: Some(vec![
                    Mount {
                        target: Some("/tmp".into()),
                        typ: Some(MountType::TMPFS),
                        tmpfs_options: Some(MountTmpfsOptions {
                            size_bytes: Some(33554432),
                            mode: Some(0o1777),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    Mount {
                        target: Some("/mnt/workspace".into()),
                        source: Some(workspace.to_string()),
                        typ: Some(MountType::BIND),
                        ..Default::default()
                    },
                ]),
                read_only: Some(true),
                init: Some(true),
                capability_drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            resources: Some(TaskSpecResources {
                limits: Some(Limit { nano_cpus: Some(100_000_000), memory_bytes: Some(33554432), pids: Some(1024) }),
                reservations: Some(ResourceObject {
                    nano_cpus: Some(100_000_000),
                    memory_bytes: Some(33554432),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig { target: Some(network.to_string()), ..Default::default() }]),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec { mode: Some(EndpointSpecModeEnum::DNSRR), ports: None }),
        ..Default::default()
    }
}

/// Creates the services, then waits until each one's task runs (polling every 50 ms).
async fn direct_group(docker: &bollard::Docker, names: &[String], network: &str, workspace: &str) {
    use bollard::query_parameters::ListTasksOptions;
    for name in names {
        docker.create_service(direct_service(name, network, workspace), None).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let filters = std::collections::HashMap::from([("service".to_string(), names.to_vec())]);
        let tasks = docker
            .list_tasks(Some(ListTasksOptions { filters: Some(filters) }))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let running = tasks
            .iter()
            .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(bollard::models::TaskState::RUNNING))
            .count();
        if running >= names.len() {
            return;
        }
        assert!(Instant::now() < deadline, "the direct services never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn swarm_startup(runs: usize) {
    let env = cluster_env();
    let get = |k: &str| env.get(k).cloned().unwrap_or_else(|| panic!("cluster.sh env has no {k}"));
    let workspaces = get("ZOE_CLUSTER_WORKSPACES");
    let dir = prepare_dir("swarm", 0);
    let addr = start_master_with(
        &dir,
        &[
            "--backend",
            "swarm",
            "--docker-host",
            &get("ZOE_CLUSTER_MANAGER_TLS"),
            "--docker-tls-ca",
            &get("ZOE_CLUSTER_TLS_CA"),
            "--docker-tls-cert",
            &get("ZOE_CLUSTER_TLS_CERT"),
            "--docker-tls-key",
            &get("ZOE_CLUSTER_TLS_KEY"),
            "--workspace-base-path",
            &workspaces,
            "--stop-grace",
            "1",
            "--relay-image",
            "zoe-relay:bench",
            // Three nodes of two cores; each container reserves a tenth of one.
            "--default-cores",
            "0.1",
        ],
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let workspace = format!("{workspaces}/bench/alice");
    let _ = std::fs::create_dir_all(&workspace);
    let system = actix::System::new();
    let path = |k: &str| PathBuf::from(get(k));
    let docker = bollard::Docker::connect_with_ssl(
        &get("ZOE_CLUSTER_MANAGER_TLS"),
        &path("ZOE_CLUSTER_TLS_KEY"),
        &path("ZOE_CLUSTER_TLS_CERT"),
        &path("ZOE_CLUSTER_TLS_CA"),
        120,
        &bollard::ClientVersion { major_version: 1, minor_version: 41 },
    )
    .unwrap_or_else(|e| panic!("the manager: {e}"));
    let network = "zoe-bench-direct";
    system.block_on(async {
        let req = bollard::models::NetworkCreateRequest {
            name: network.into(),
            driver: Some("overlay".into()),
            attachable: Some(true),
            ..Default::default()
        };
        let _ = docker.create_network(req).await;
    });
    println!("\n3-node Swarm (Docker-in-Docker on this machine), manager over TLS:\n");
    println!("| containers | POST to running, Zoe (median of {runs}) | the same services through the manager's API | Zoe's overhead |");
    println!("|---|---|---|---|");
    for n in [3usize, 10] {
        let (mut zoe, mut direct) = (Vec::new(), Vec::new());
        for run in 0..=runs {
            let zoe_run = || {
                let t = Instant::now();
                let body = json!({"name": format!("w{n}-{run}"), "application": app_of(n as u32)}).to_string();
                let (s, v) = http(&agent, "POST", &format!("http://{addr}/api/0.6/execution"), Some(body));
                assert_eq!(s, 201, "{v}");
                let url = format!("http://{addr}/api/0.6/execution/{}", v["execution_id"]);
                wait_for(&agent, &url, "running");
                let z = t.elapsed().as_secs_f64();
                http(&agent, "DELETE", &url, None);
                wait_for(&agent, &url, "terminated");
                z
            };
            let direct_run = || {
                // The same two startup groups as the application: the monitor, then the workers.
                let names: Vec<String> = (0..n).map(|i| format!("direct-{run}-{i}-bench")).collect();
                let t = Instant::now();
                system.block_on(async {
                    direct_group(&docker, &names[..1], network, &workspace).await;
                    direct_group(&docker, &names[1..], network, &workspace).await;
                });
                let d = t.elapsed().as_secs_f64();
                system.block_on(async {
                    for name in &names {
                        let _ = docker.delete_service(name).await;
                    }
                });
                d
            };
            // Alternate which goes first, and let the nodes remove the containers in between.
            let settle = || std::thread::sleep(Duration::from_millis(3000));
            let (z, d) = if run % 2 == 0 {
                let z = zoe_run();
                settle();
                let d = direct_run();
                settle();
                (z, d)
            } else {
                let d = direct_run();
                settle();
                let z = zoe_run();
                settle();
                (z, d)
            };
            if run > 0 {
                zoe.push(z);
                direct.push(d);
            }
        }
        let (z, d) = (median(zoe), median(direct));
        println!("| {n} | {:.0} ms | {:.0} ms | {:+.1}% |", z * 1e3, d * 1e3, 100.0 * (z - d) / d);
    }
    println!("\n(goal: Zoe within 10% of the direct path)\n");
    system.block_on(async {
        let _ = docker.remove_network(network).await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// One request over a fresh connection to `addr` with `Host: host` and `extra` header lines:
/// the status, the head, and the body (read in 256 KiB pieces; kept only with `keep`) with its
/// length.
fn raw_get(addr: &str, host: &str, path: &str, extra: &str, keep: bool) -> (u16, String, Vec<u8>, u64) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    let _ = s.set_read_timeout(Some(Duration::from_secs(120)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let mut buf = vec![0u8; 256 * 1024];
    let mut head = Vec::new();
    let mut in_head = true;
    let mut body = Vec::new();
    let mut n_body = 0u64;
    loop {
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        if in_head {
            head.extend_from_slice(&buf[..n]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                in_head = false;
                let rest = head.split_off(i + 4);
                n_body += rest.len() as u64;
                if keep {
                    body.extend_from_slice(&rest);
                }
            }
        } else {
            n_body += n as u64;
            if keep {
                body.extend_from_slice(&buf[..n]);
            }
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head, body, n_body)
}

/// A header of a response head.
fn header_of(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {name} in {head}"))
}

/// Signs alice in to the application host of `link` (the master at `addr`) as a browser does:
/// the host and its cookie (`name=value`).
fn sign_in(addr: &str, link: &str) -> (String, String) {
    let (s, head, _, _) = raw_get(addr, addr, link, &format!("Authorization: {AUTH}\r\n"), false);
    assert_eq!(s, 303, "{head}");
    let location = header_of(&head, "location");
    let rest = location.split_once("://").map_or(location.as_str(), |(_, r)| r);
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (s, head, _, _) = raw_get(addr, host, path, "", false);
    assert_eq!(s, 303, "{head}");
    let cookie = header_of(&head, "set-cookie").split(';').next().unwrap_or_default().to_string();
    (host.to_string(), cookie)
}

/// Seconds to download `path` `times` times (to nowhere) from `addr` as `host`, with `extra`
/// headers; and the bytes.
fn download(addr: &str, host: &str, path: &str, extra: &str, times: usize) -> (f64, u64) {
    let t = Instant::now();
    let mut bytes = 0;
    for _ in 0..times {
        let (s, head, _, n) = raw_get(addr, host, path, extra, false);
        assert_eq!(s, 200, "{head}");
        bytes += n;
    }
    (t.elapsed().as_secs_f64(), bytes)
}

/// Round trips of 32 bytes over a WebSocket opened at `addr` as `host` (with `extra` headers),
/// to an echo service: each round trip's time in microseconds, sorted.
fn websocket_round_trips(addr: &str, host: &str, extra: &str, n: usize) -> Vec<f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap_or(0), 1, "the upgrade was cut: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    let msg = [b'x'; 32];
    let mut back = [0u8; 32];
    let mut times = Vec::with_capacity(n);
    for i in 0..n + 100 {
        let t = Instant::now();
        s.write_all(&msg).unwrap_or_else(|e| panic!("{e}"));
        s.read_exact(&mut back).unwrap_or_else(|e| panic!("{e}"));
        if i >= 100 {
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    times.sort_by(f64::total_cmp);
    times
}

/// Round trip times, directly and through the proxy.
type RoundTrips = (Vec<f64>, Vec<f64>);

/// A plain relay of bytes to `target` on a local port of its own (two threads per connection,
/// 256 KiB buffers, no HTTP): the floor of any proxy, for reference. Its address.
fn plain_relay(target: String) -> String {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    fn pump(mut from: TcpStream, mut to: TcpStream) {
        let mut buf = vec![0u8; 256 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(service) = TcpStream::connect(&target) else { continue };
            let _ = (client.set_nodelay(true), service.set_nodelay(true));
            let (Ok(c2), Ok(s2)) = (client.try_clone(), service.try_clone()) else { continue };
            std::thread::spawn(move || pump(client, service));
            std::thread::spawn(move || pump(s2, c2));
        }
    });
    addr
}

/// Round trips of a JupyterLab kernel (`apps/jupyter.json`; skipped without its image): `1`
/// executed 300 times over the kernel's WebSocket by `tests/clients/jupyter.py`, directly at the
/// container with the notebook's token and through the proxy with the host's cookie, twice in
/// turns; each round trip in microseconds, sorted.
fn jupyter_round_trips(agent: &ureq::Agent, addr: &str) -> Option<RoundTrips> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let app: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("apps/jupyter.json")).ok()?).ok()?;
    let image = app["services"][0]["docker_image"].as_str()?.to_string();
    if docker_cli(&["image", "inspect", "--format", "{{.Id}}", &image]).trim().is_empty() {
        println!("(no {image}: the JupyterLab round trips are left out; apps/build-images.sh builds it)");
        return None;
    }
    let body = json!({"name": "nb", "application": app}).to_string();
    let (s, v) = http(agent, "POST", &format!("http://{addr}/api/0.6/execution"), Some(body));
    assert_eq!(s, 201, "{v}");
    let id = v["execution_id"].as_u64().unwrap_or_default();
    let url = format!("http://{addr}/api/0.6/execution/{id}");
    wait_for(agent, &url, "running");
    let (_, e) = http(agent, "GET", &url, None);
    let (_, svc) = http(agent, "GET", &format!("http://{addr}/api/0.6/service/{}", e["services"][0]), None);
    let ip = svc["ip_address"].as_object().and_then(|m| m.values().next()).and_then(|v| v.as_str()).unwrap_or_default();
    let container = svc["name"].as_str().unwrap_or_default().to_string();
    let (host, cookie) = sign_in(addr, &format!("/proxy/{id}/notebook/8888/"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while raw_get(addr, &host, "/api/status", &format!("Cookie: {cookie}\r\n"), false).0 != 200 {
        assert!(Instant::now() < deadline, "the notebook never answered");
        std::thread::sleep(Duration::from_millis(500));
    }
    let secret = docker_cli(&["exec", &container, "printenv", "ZOE_PROXY_SECRET"]).trim().to_string();
    let client = root.join("tests/clients/jupyter.py");
    let run = |address: &str, host: &str, header: &str| -> Vec<f64> {
        let out = std::process::Command::new("python3")
            .arg(&client)
            .args(["round-trips", address, host, header, "300"])
            .output()
            .unwrap_or_else(|e| panic!("python3: {e}"));
        let mut v: Vec<f64> = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        v.sort_by(f64::total_cmp);
        v
    };
    let direct = format!("{ip}:8888");
    let (mut d, mut p) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        d.extend(run(&direct, &direct, &format!("Authorization: token {secret}")));
        p.extend(run(addr, &host, &format!("Cookie: {cookie}")));
    }
    d.sort_by(f64::total_cmp);
    p.sort_by(f64::total_cmp);
    http(agent, "DELETE", &url, None);
    wait_for(agent, &url, "terminated");
    Some((d, p))
}

/// The busybox echo server of the WebSocket round trips: a `101`, then every byte back.
/// (Braces are doubled: descriptions are templates.)
const WS_ECHO: &str = r#"while IFS= read -r l; do l="${{l%$(printf '\r')}}"; [ -z "$l" ] && break; done
printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'; exec cat
"#;

/// The proxy's overhead: a busybox httpd and an echo server in an execution, reached on their
/// application hosts (signed in with their cookies, as a browser is) and directly at the
/// containers' addresses, in turns.
fn proxy(secs: f64) {
    // A run cut short may have left its containers behind.
    docker_cli(&["rm", "-f", "web-proxy-alice-bench", "echo-proxy-alice-bench"]);
    let dir = prepare_dir("proxy", 0);
    let ws = dir.join("ws");
    let (mut child, addr) = master_process(
        &dir,
        &[
            "--deployment-name",
            "bench",
            "--stop-grace",
            "1",
            "--max-proxy-connections",
            "1000",
            "--workspace-base-path",
            ws.to_str().unwrap_or("ws"),
        ],
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let ports = |port: u16| json!([{"name": "p", "protocol": "http", "port_number": port, "is_main_endpoint": true, "expose": true}]);
    let app = json!({
        "name": "proxy", "version": 2, "will_end": false, "requires_binary": false, "priority": 1,
        "services": [
            {"name": "web", "docker_image": "zoe-test-busybox:latest", "monitor": true, "total_count": 1,
             "essential_count": 1, "startup_order": 0, "required_resources": {"memory": 134217728, "cores": 1},
             "ports": ports(8080),
             "command": "sh -c 'd=$HOME/www && mkdir -p $d && echo hello > $d/small.txt && head -c 67108864 /dev/urandom > $d/large.bin && exec httpd -f -p 8080 -h $d'"},
            {"name": "echo", "docker_image": "zoe-test-busybox:latest", "monitor": false, "total_count": 1,
             "essential_count": 1, "startup_order": 0, "required_resources": {"memory": 33554432, "cores": 1},
             "ports": ports(9001), "environment": [["ECHO", WS_ECHO]],
             "command": "sh -c 'exec nc -ll -p 9001 -e sh -c \"$ECHO\"'"}
        ]
    });
    let body = json!({"name": "proxy", "application": app}).to_string();
    let (s, v) = http(&agent, "POST", &format!("http://{addr}/api/0.6/execution"), Some(body));
    assert_eq!(s, 201, "{v}");
    let id = v["execution_id"].as_u64().unwrap_or_default();
    let url = format!("http://{addr}/api/0.6/execution/{id}");
    wait_for(&agent, &url, "running");
    let (_, e) = http(&agent, "GET", &url, None);
    let ip_of = |sid: &serde_json::Value| {
        let (_, svc) = http(&agent, "GET", &format!("http://{addr}/api/0.6/service/{sid}"), None);
        let ip = svc["ip_address"].as_object().and_then(|m| m.values().next()).and_then(|v| v.as_str());
        (svc["service_name"].as_str().unwrap_or_default().to_string(), ip.unwrap_or_default().to_string())
    };
    let ips: std::collections::HashMap<String, String> =
        e["services"].as_array().map(|a| a.iter().map(ip_of).collect()).unwrap_or_default();
    let (web_direct, echo_direct) = (format!("{}:8080", ips["web"]), format!("{}:9001", ips["echo"]));
    // Until the files are there.
    let deadline = Instant::now() + Duration::from_secs(60);
    while agent.get(format!("http://{web_direct}/small.txt")).call().map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        assert!(Instant::now() < deadline, "httpd never served");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (web_host, web_cookie) = sign_in(&addr, &format!("/proxy/{id}/web/8080/"));
    let (echo_host, echo_cookie) = sign_in(&addr, &format!("/proxy/{id}/echo/9001/"));
    let web_headers = format!("Cookie: {web_cookie}\r\n");
    let echo_headers = format!("Cookie: {echo_cookie}\r\nOrigin: http://{echo_host}\r\n");
    let only = std::env::var("ZOE_BENCH_PROXY").unwrap_or_default();
    // The floor of any proxy on this machine: a plain relay of bytes (two threads, 256 KiB
    // buffers, no HTTP), to the same services.
    let (web_relay, echo_relay) = (plain_relay(web_direct.clone()), plain_relay(echo_direct.clone()));
    let (mut small, mut large, mut rtt) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..2 {
        if only.is_empty() || only == "small" {
            let host = format!("Host: {web_host}");
            let cookie = format!("Cookie: {web_cookie}");
            // (busybox httpd closes every connection; the plain relay, one thread per direction,
            // is not meant for that.)
            small.push([
                wrk(&format!("http://{web_direct}/small.txt"), 1, secs, &[]),
                (f64::NAN, f64::NAN, f64::NAN),
                wrk(&format!("http://{addr}/small.txt"), 1, secs, &[&host, &cookie]),
            ]);
        }
        if only.is_empty() || only == "large" {
            let (d, n) = download(&web_direct, &web_direct, "/large.bin", "", 4);
            let (r, _) = download(&web_relay, &web_relay, "/large.bin", "", 4);
            let (p, m) = download(&addr, &web_host, "/large.bin", &web_headers, 4);
            assert_eq!(n, m, "the same bytes both ways");
            large.push([n as f64 / d / 1e6, n as f64 / r / 1e6, m as f64 / p / 1e6]);
        }
        if only.is_empty() || only == "websocket" {
            let d = websocket_round_trips(&echo_direct, &echo_direct, "", 2000);
            let r = websocket_round_trips(&echo_relay, &echo_relay, "", 2000);
            let p = websocket_round_trips(&addr, &echo_host, &echo_headers, 2000);
            rtt.push([d, r, p]);
        }
    }
    let mean = |v: &[f64]| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
    let pct =
        |v: &[f64], q: f64| if v.is_empty() { f64::NAN } else { v[((v.len() as f64 * q) as usize).min(v.len() - 1)] };
    // Each figure for the three paths: directly, the plain relay, the proxy.
    let three = |f: &dyn Fn(usize) -> f64| [f(0), f(1), f(2)];
    let rps = three(&|i| mean(&small.iter().map(|r| r[i].0).collect::<Vec<_>>()));
    let p50 = three(&|i| mean(&small.iter().map(|r| r[i].1).collect::<Vec<_>>()));
    let p99 = three(&|i| mean(&small.iter().map(|r| r[i].2).collect::<Vec<_>>()));
    let mbs = three(&|i| mean(&large.iter().map(|l| l[i]).collect::<Vec<_>>()));
    let ws_mean = three(&|i| mean(&rtt.iter().map(|r| mean(&r[i])).collect::<Vec<_>>()));
    let ws50 = three(&|i| mean(&rtt.iter().map(|r| pct(&r[i], 0.5)).collect::<Vec<_>>()));
    let ws99 = three(&|i| mean(&rtt.iter().map(|r| pct(&r[i], 0.99)).collect::<Vec<_>>()));
    println!(
        "\nproxy: busybox httpd and echo in containers, directly at their addresses, through a plain relay of bytes \
         (the floor of any proxy) and through the master's proxy on their application hosts (wrk 1 thread, 16 \
         connections; mean of 2 alternating runs):\n"
    );
    println!("| | directly | a plain relay | through the proxy | proxy / directly |");
    println!("|---|---|---|---|---|");
    println!("| small file (6 B): requests/s | {:.0} | | {:.0} | {:.2}x |", rps[0], rps[2], rps[2] / rps[0]);
    println!("| small file: p50, p99 ms | {:.2}, {:.2} | | {:.2}, {:.2} | |", p50[0], p99[0], p50[2], p99[2]);
    println!(
        "| 64 MiB file, one client: MB/s | {:.0} | {:.0} | {:.0} | {:.2}x |",
        mbs[0],
        mbs[1],
        mbs[2],
        mbs[2] / mbs[0]
    );
    println!(
        "| WebSocket round trip (32 B), mean µs | {:.0} | {:.0} | {:.0} | {:.2}x |",
        ws_mean[0],
        ws_mean[1],
        ws_mean[2],
        ws_mean[2] / ws_mean[0]
    );
    println!(
        "| WebSocket round trip: p50, p99 µs | {:.0}, {:.0} | {:.0}, {:.0} | {:.0}, {:.0} | {:.2}x at p50 |",
        ws50[0],
        ws99[0],
        ws50[1],
        ws99[1],
        ws50[2],
        ws99[2],
        ws50[2] / ws50[0]
    );
    http(&agent, "DELETE", &url, None);
    wait_for(&agent, &url, "terminated");
    if only.is_empty() || only == "jupyter" {
        if let Some((d, p)) = jupyter_round_trips(&agent, &addr) {
            let (jd, jp) = (mean(&d) / 1000.0, mean(&p) / 1000.0);
            let (jd50, jp50) = (pct(&d, 0.5) / 1000.0, pct(&p, 0.5) / 1000.0);
            println!(
                "| JupyterLab kernel: execute `1`, WebSocket round trip, mean ms | {jd:.2} | | {jp:.2} | {:.2}x |",
                jp / jd
            );
            println!("| JupyterLab kernel: p50 ms | {jd50:.2} | | {jp50:.2} | {:.2}x |", jp50 / jd50);
        }
    }
    println!("\n(goals: small files and the 64 MiB download at least 0.9x, WebSocket round trips at most 1.2x)");
    let _ = child.kill();
    let _ = child.wait();
    // The user's network outlives the execution (it goes with the user): leave nothing behind.
    docker_cli(&["network", "rm", "alice-bench"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `zoe checkpoint diff` of two checkpoints of 20,000 executions, every one changed in 4 lines.
fn diff() {
    let before = state_with(20_000);
    let mut after = before.clone();
    for e in after.executions.values_mut() {
        let e = Arc::make_mut(e);
        e.name = format!("{}-renamed", e.name);
        e.status = ExecutionStatus::Error;
        e.error = Some("edited".into());
        e.time_started = e.time_finished;
    }
    let dir = prepare("diff", before.clone());
    let store = Store::open(&dir).unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = (encode(&before).unwrap_or_default(), encode(&after).unwrap_or_default());
    store.write(2, &b).unwrap_or_else(|e| panic!("{e}"));
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.split_inclusive('\n').collect(), b.split_inclusive('\n').collect());
    let changed: usize = zoe::checkpoint_diff::diff_lines(&la, &lb)
        .iter()
        .filter(|op| op.tag() != similar::DiffTag::Equal)
        .map(|op| op.new_range().len())
        .sum();
    let state_dir = zoe::checkpoint_cmd::StateDir { state_dir: dir.clone() };
    let t = Instant::now();
    let mut out = Vec::new();
    let cmd = zoe::checkpoint_cmd::CheckpointCmd::Diff { a: 1, b: Some(2) };
    if let Err(e) = zoe::checkpoint_cmd::run_to(cmd, &state_dir, &mut out) {
        panic!("{e:?}");
    }
    println!(
        "\n`zoe checkpoint diff` of two checkpoints of 20,000 executions ({:.1} MB each), {changed} lines changed: \
         {:.2} s, {:.1} MB of diff",
        a.len() as f64 / 1e6,
        t.elapsed().as_secs_f64(),
        out.len() as f64 / 1e6
    );
    if std::env::var("ZOE_BENCH_DIFF_BEFORE").is_ok() {
        let t = Instant::now();
        let old = similar::TextDiff::from_lines(&a, &b).unified_diff().context_radius(3).to_string();
        println!(
            "the same diff as made before (Myers, no deadline): {:.2} s, {:.1} MB",
            t.elapsed().as_secs_f64(),
            old.len() as f64 / 1e6
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
