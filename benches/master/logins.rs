//! 5. A master's memory during a flood of logins with made-up names.

use super::*;

pub fn logins() {
    use base64::Engine;
    let dir = prepare_dir("logins", 0);
    let (child, addr) = master_process(&dir, &["--no-docker", "--deployment-name", "bench"]);
    std::thread::sleep(Duration::from_secs(1));
    let before = memory_kb(child.child.id(), "VmRSS");
    let t = Instant::now();
    let handles: Vec<_> = (0..200)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let agent = agent(Duration::from_secs(60));
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
    let peak = memory_kb(child.child.id(), "VmHWM");
    std::thread::sleep(Duration::from_secs(4));
    let after = memory_kb(child.child.id(), "VmRSS");
    stop(child);
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
