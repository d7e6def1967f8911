//! 1. Authenticated reads against `/healthz`, with wrk, on a master process.

use super::*;

/// Requests per second, p50 and p99 latencies (ms).
pub type Rate = (f64, f64, f64);

/// wrk's requests per second and p50 and p99 latencies (ms) for `url`, 16 connections from
/// `threads` threads.
pub fn wrk(url: &str, threads: u32, secs: f64, headers: &[&str]) -> Rate {
    let mut cmd = std::process::Command::new("wrk");
    cmd.args(["-t", &threads.to_string(), "-c", "16", "-d", &format!("{}s", secs.ceil() as u64), "--latency"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().expect("cannot run wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("no Requests/sec in wrk's output");
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

pub fn reads(secs: f64) {
    let dir = prepare_dir("reads", 1000);
    // All 1,000 stay in the checkpoint: this measures reads of the state in memory.
    let (child, addr) =
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
    stop(child);
    let _ = std::fs::remove_dir_all(&dir);

    // An archived execution is read from its segment on disk at each request.
    let dir = prepare_archived("reads-archived", 10_000);
    let (child, addr) = master_process(&dir, &["--no-docker", "--deployment-name", "bench"]);
    let read = format!("http://{addr}/api/0.6/execution/2");
    wrk(&read, 1, 1.0, &[&auth]);
    let (r, r50, r99) = wrk(&read, 1, secs, &[&auth]);
    println!("authenticated GET of an archived execution (10,000 in history), wrk 1 thread: {r:.0} requests/s, p50 {r50:.2} ms, p99 {r99:.2} ms\n");
    stop(child);
    let _ = std::fs::remove_dir_all(&dir);
}
