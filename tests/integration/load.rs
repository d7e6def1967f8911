//! Load: 100 concurrent clients (wrk, on loopback) mixing reads and durable state changes
//! against a master holding thousands of executions, bounded in time. The master keeps
//! answering every request correctly and its memory stays bounded.
//!
//! `ZOE_LOAD_SECONDS` sets the length (default 5); `ZOE_LOAD_BIN` another `zoe` binary (e.g.
//! `target/release/zoe` for the README's figures).

use std::process::Command;
use zoe_checkpoints::{encode, ExecutionStatus, Store};

use crate::common::process::NO_USER_LIMITS;
use crate::common::states::with_ended;
use crate::common::{app, temp_dir, Master, ADMIN};

const EXECUTIONS: usize = 5_000;

/// A state with `n` ended executions of alice, written as the first checkpoint.
fn prepare(dir: &std::path::Path, n: usize) {
    let s = with_ended("test", ADMIN.1, n, ExecutionStatus::Finished, &app("img", Some("sleep 1")));
    Store::open(dir).unwrap().write(1, &encode(&s).unwrap()).unwrap();
}

fn peak_memory_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches(" kB").trim().to_string()))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_hundred_clients_mixing_reads_and_changes() {
    let wrk = Command::new("wrk").arg("--version").output();
    assert!(wrk.is_ok(), "wrk is not installed: run tests/run.sh (it installs Debian's wrk)");
    let secs: u64 = std::env::var("ZOE_LOAD_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let dir = temp_dir("load");
    prepare(&dir, EXECUTIONS);
    // The load test measures throughput, not the per-user limits that protect a real
    // deployment from one user (tested in `security`): they are lifted.
    let args = [&["--no-docker", "--keep-checkpoints", "5"][..], &NO_USER_LIMITS].concat();
    let mut m = match std::env::var("ZOE_LOAD_BIN") {
        Ok(bin) => Master::start_with_bin(&bin, &dir, &args),
        Err(_) => Master::start_in(&dir, &args),
    };
    let before = peak_memory_kib(m.process.child.id());
    // 90% reads of random executions, 10% submissions (acknowledged once durable).
    let script = dir.join("mix.lua");
    std::fs::write(
        &script,
        format!(
            r#"
local n = 0
local id = 0
setup = function(thread) thread:set("tid", id); id = id + 1 end
request = function()
  n = n + 1
  if n % 10 == 0 then
    local body = '{{"name": "w' .. tid .. '-' .. n .. '", "application": {app}}}'
    return wrk.format("POST", "/api/0.6/execution", {{["Authorization"] = "Basic YWxpY2U6YWRtaW4tc2VjcmV0", ["Content-Type"] = "application/json"}}, body)
  end
  return wrk.format("GET", "/api/0.6/execution/" .. math.random(2, {max}), {{["Authorization"] = "Basic YWxpY2U6YWRtaW4tc2VjcmV0"}})
end
"#,
            app = app("img", None),
            max = EXECUTIONS + 1
        ),
    )
    .unwrap();
    let out = Command::new("wrk")
        .args(["-t", "2", "-c", "100", "-d", &format!("{secs}s"), "--latency", "-s"])
        .arg(&script)
        .arg(&m.url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let peak = peak_memory_kib(m.process.child.id());
    let find = |prefix: &str| text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string()));
    let rps = find("Requests/sec:").unwrap_or_default();
    let (p50, p99) = (find("50%").unwrap_or_default(), find("99%").unwrap_or_default());
    eprintln!(
        "load: {secs} s, 100 clients, {EXECUTIONS} executions in state: {rps} requests/s, p50 {p50}, p99 {p99}, peak memory {} MiB (before: {} MiB)",
        peak / 1024,
        before / 1024
    );
    assert!(!text.contains("Non-2xx"), "every request answered with success:\n{text}");
    assert!(!text.contains("Socket errors"), "no connection errors:\n{text}");
    let rps: f64 = rps.parse().unwrap_or(0.0);
    assert!(rps > 100.0, "throughput collapsed: {text}");
    assert!(peak < 1024 * 1024, "memory stayed bounded (peak {} MiB)", peak / 1024);
    // Still working, and every acknowledged submission is there.
    let (s, list) = m.get("/api/0.6/execution", ADMIN);
    assert_eq!(s, 200);
    assert!(list.as_array().unwrap().len() > EXECUTIONS);
    m.kill();
}
