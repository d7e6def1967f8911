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
//! 10. Workspace files: upload and download of a 200 MiB file through the API with curl, against
//!     `cp` of the same file between the same places, in turns (`ZOE_BENCH_ONLY=files`).

// A benchmark fails by panicking, as a test does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use zoe_checkpoints::{encode, Archive, Execution, ExecutionStatus, Service, ServiceStatus, State, Store};

#[path = "../../tests/integration/common/process.rs"]
mod process;
#[path = "../../tests/integration/common/states.rs"]
mod states;

mod burst;
mod diff;
mod files;
mod logins;
mod proxy;
mod reads;
mod startup;
mod state;
mod swarm;
mod writes;

use process::{agent, MasterProcess, NO_USER_LIMITS};

use burst::*;
use diff::*;
use files::*;
use logins::*;
use proxy::*;
use reads::*;
use startup::*;
use state::*;
use swarm::*;
use writes::*;

const AUTH: &str = "Basic YWxpY2U6YWxpY2UtcHc="; // alice:alice-pw

fn seconds() -> f64 {
    std::env::var("ZOE_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0)
}

/// What every benchmark's master gets: its deployment, few checkpoints kept, and no per-user
/// limits (the benchmarks measure throughput).
const UNLIMITED: &[&str] = &["--deployment-name", "bench", "--keep-checkpoints", "3"];

/// What a master process gets in most of these benchmarks: no Docker, and no per-user limits.
fn bench_master() -> Vec<&'static str> {
    [&["--no-docker"], UNLIMITED, &NO_USER_LIMITS].concat()
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
        let store = Store::open(&dir).unwrap();
        let size = store.list().unwrap_or_default().first().map(|f| f.size).unwrap_or(0);
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let s = store.load(1).unwrap();
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

    // 10. Workspace files through the API against cp.
    if only.is_empty() || only == "files" {
        files();
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

/// A startup benchmark's master on the deployment `bench`: no quotas, a second's stop grace, and
/// a tenth of a core reserved by each container (two cores on each node, as the direct paths
/// limit theirs); `extra` flags are added.
fn startup_master(dir: &Path, extra: &[&str]) -> (MasterProcess, String) {
    let startup: &[&str] = &["--stop-grace", "1", "--default-cores", "0.1"];
    master_process(dir, &[UNLIMITED, &NO_USER_LIMITS, startup, extra].concat())
}

/// A master as a process of its own (the `zoe` binary of this build, started as the tests start
/// theirs), so that its memory can be read; returns it and its address (`host:port`).
/// `ZOE_ADMIN_PASSWORD` is `admin-pw`.
fn master_process(dir: &Path, extra: &[&str]) -> (MasterProcess, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_zoe"));
    command
        .args(["master", "--listen-port", "0", "--state-dir"])
        .arg(dir)
        .args(extra)
        .env("ZOE_ADMIN_PASSWORD", "admin-pw")
        .env("ZOE_LOG", "info");
    let master = MasterProcess::spawn(command).expect("the master did not start");
    let addr = master.url.trim_start_matches("http://").to_string();
    (master, addr)
}

/// Stops a benchmark's master, and shows the errors it logged.
fn stop(mut master: MasterProcess) {
    master.kill();
    for line in master.log_text().lines().filter(|l| l.contains("ERROR")) {
        eprintln!("master: {line}");
    }
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

/// Runs the docker CLI under a time limit; its standard output.
fn docker_cli(args: &[&str]) -> String {
    let out = std::process::Command::new("timeout").args(["-k", "5", "300", "docker"]).args(args).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn http(agent: &ureq::Agent, method: &str, url: &str, body: Option<String>) -> (u16, serde_json::Value) {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Authorization", AUTH)
        .header("Content-Type", "application/json")
        .body(body.unwrap_or_default().into_bytes())
        .unwrap();
    let mut resp = agent.run(req).unwrap();
    let v = resp.body_mut().read_json().unwrap_or(serde_json::Value::Null);
    (resp.status().as_u16(), v)
}
