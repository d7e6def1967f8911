//! 2. Durable changes per second from 64 clients, with history of growing size, and a restart.

use super::*;

/// Durable changes measured at each state size.
pub const CHANGES: usize = 2000;

/// Sizes of history the `writes` benchmark measures (`ZOE_BENCH_HISTORY`, comma-separated).
pub fn history_sizes() -> Vec<usize> {
    std::env::var("ZOE_BENCH_HISTORY")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 10_000, 50_000, 100_000, 500_000, 1_000_000])
}

/// Median milliseconds of 11 sequential `GET url` (after one not counted), each answered 200.
pub fn get_ms(agent: &ureq::Agent, url: &str, auth: &str) -> f64 {
    let once = || {
        let t = Instant::now();
        let mut resp = agent.get(url).header("Authorization", auth).call().unwrap();
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
pub fn writes() {
    use base64::Engine;
    let admin = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("zoeadmin:alice-pw"));
    println!("{CHANGES} durable state changes from 64 clients at each size (the median of 3 runs, each after one on a master with a fresh state, kept running: the ratio is of the medians), each client submitting an execution and then terminating it; masters on default history settings (the newest 500 ended executions in the checkpoint, the rest archived):\n");
    println!("| ended executions in history | durable changes/s (64 clients) | vs a fresh state | p50 ms | p99 ms | executions in the newest checkpoint at end | archive segments | newest checkpoint | largest checkpoint during the run | master peak RSS | restart until an archived execution is read |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let fresh_dir = prepare_archived("writes-fresh", 10);
    let (fresh, fresh_addr) = master_process(&fresh_dir, &bench_master());
    let fresh_sock: SocketAddr = fresh_addr.parse().unwrap();
    let mut restarts = Vec::new();
    for n in history_sizes() {
        let t = Instant::now();
        let generated = time::OffsetDateTime::now_utc();
        let dir = prepare_archived(&format!("writes-{n}"), n);
        eprintln!("history of {n} generated in {:.1} s", t.elapsed().as_secs_f64());
        let (child, addr) = master_process(&dir, &bench_master());
        let sock: SocketAddr = addr.parse().unwrap();
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
        let peak = memory_kb(child.child.id(), "VmHWM");
        stop(child);
        let store = Store::open(&dir).unwrap();
        let last = store.list().unwrap_or_default().last().map(|f| (f.number, f.size)).unwrap_or((0, 0));
        let state = store.load(last.0).unwrap();
        // Restart: from starting the process to the first answer of /healthz, and to the first
        // answer about the oldest execution, which is archived (except in the smallest history).
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let t = Instant::now();
        let (child, addr) = master_process(&dir, &bench_master());
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
        let (rss, rss_peak) = (memory_kb(child.child.id(), "VmRSS"), memory_kb(child.child.id(), "VmHWM"));
        stop(child);
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
    stop(fresh);
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

/// `clients` threads, each submitting an execution and terminating it, again and again, until
/// `total` changes (each acknowledged only once durable) were answered. Returns (changes per
/// second, p50 ms, p99 ms).
pub fn changes(addr: SocketAddr, clients: usize, total: usize) -> (f64, f64, f64) {
    let count = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(std::sync::Barrier::new(clients + 1));
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (count, ready) = (count.clone(), ready.clone());
            std::thread::spawn(move || {
                let agent = agent(Duration::from_secs(60));
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
