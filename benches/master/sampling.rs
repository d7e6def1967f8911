//! The sampler's cost (11): the master's CPU time over a window while 200 containers run
//! (`ZOE_BENCH_CONTAINERS`), sampled every 15 s (`ZOE_BENCH_USAGE_INTERVAL`), on the real
//! engine. The containers are Zoe's own (4 executions of 50 busybox sleepers, started by Zoe with
//! its bounded concurrency) and are removed after, also when the benchmark fails.

use super::*;

/// CPU time of a process so far (user and system), from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command's name in parentheses: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let hz = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    (ticks(14) + ticks(15)) / hz
}

pub fn sampling() {
    let containers: usize = std::env::var("ZOE_BENCH_CONTAINERS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let interval: u64 = std::env::var("ZOE_BENCH_USAGE_INTERVAL").ok().and_then(|s| s.parse().ok()).unwrap_or(15);
    let window: u64 = std::env::var("ZOE_BENCH_SAMPLING_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(120);
    let interval_arg = interval.to_string();
    let (dir, _, cleanup, addr) = docker_master("sampling", "samp", &["--usage-interval", &interval_arg]);
    let pid = cleanup.1.child.id();
    let call = admin_caller(&addr);
    let per = 50.min(containers);
    let executions = containers.div_ceil(per);
    let sleepers = |count: usize| {
        json!({"name": "s", "version": 2, "will_end": false, "requires_binary": false, "priority": 1,
            "services": [{"name": "main", "docker_image": "zoe-test-busybox:latest", "monitor": false,
                          "total_count": count, "essential_count": count, "startup_order": 0, "ports": [],
                          "required_resources": {"memory": 8 << 20}, "command": "sleep 3600"},
                         {"name": "mon", "docker_image": "zoe-test-busybox:latest", "monitor": true,
                          "total_count": 1, "essential_count": 1, "startup_order": 0, "ports": [],
                          "required_resources": {"memory": 8 << 20}, "command": "sleep 3600"}]})
    };
    let t = Instant::now();
    let mut ids = Vec::new();
    for i in 0..executions {
        // The monitor makes one more container per execution: the others make up the count.
        let count = (containers - i * per).min(per).saturating_sub(1).max(1);
        let v =
            call("POST", "/api/0.6/execution", Some(json!({"name": format!("s{i}"), "application": sleepers(count)})));
        ids.push(v["execution_id"].as_u64().unwrap_or_else(|| panic!("{v}")));
    }
    let running = || {
        call("GET", "/api/0.6/execution?status=running", None)
            .as_array()
            .map_or(0, |l| l.iter().map(|e| e["instances"]["essential"]["running"].as_u64().unwrap_or(0)).sum::<u64>())
    };
    while running() < containers as u64 {
        assert!(t.elapsed() < Duration::from_secs(900), "only {} of {containers} containers run", running());
        std::thread::sleep(Duration::from_secs(2));
    }
    println!("\nsampling {containers} running containers (started by Zoe in {:.0} s):", t.elapsed().as_secs_f64());
    // Let a round or two pass, then measure the master over the window.
    std::thread::sleep(Duration::from_secs(interval * 2));
    let (cpu0, t0) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(window));
    let (cpu, wall) = (cpu_seconds(pid) - cpu0, t0.elapsed().as_secs_f64());
    let measured = call("GET", &format!("/api/0.6/execution/{}", ids[0]), None);
    assert!(measured["usage"]["reserved_core_seconds"].as_f64().unwrap_or(0.0) > 0.0, "not sampled: {measured}");
    println!(
        "master CPU over {wall:.0} s, sampling every {interval} s: {cpu:.2} s, {:.2}% of one core (goal: under 5%; \
         everything the master does, reconciliation every 10 s included)",
        cpu / wall * 100.0
    );
    drop(cleanup);
    let _ = std::fs::remove_dir_all(&dir);
}
