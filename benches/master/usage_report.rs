//! Usage reports (10): `GET /api/0.6/usage` with 50,000 ended executions in the history
//! (`ZOE_BENCH_USAGE_HISTORY`): per user over the last 30 days and over all time, and per
//! execution over one day, on a master process, as an administrator (every user's rows).

use super::*;
use zoe_checkpoints::Usage;

/// Owners of the generated history.
const OWNERS: usize = 50;

/// A state directory with zoeadmin (password `admin-pw`) and `n` ended executions of 50 users
/// over the last 90 days, each with usage, as a master leaves them: the newest
/// [`HISTORY_KEEP`] in the checkpoint, the others in archive segments of [`SEGMENT`].
fn prepare_usage(n: usize) -> PathBuf {
    let state = states::with_ended("bench", "admin-pw", 0, ExecutionStatus::Finished, &app());
    let application = zoe_actors::description::app_description::parse_application(&app()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let span = 90 * 86_400 / n.max(1) as u64;
    write_archived("usage", state, n, |state, i| {
        let id = state.gen_id();
        let owner = i % OWNERS;
        let started = now - Duration::from_secs(span * (n - i) as u64);
        // From a minute to two days.
        let ran = 60 + (i as u64 * 7919) % (2 * 86_400);
        Arc::new(Execution {
            id,
            name: format!("job-{}", i % 10_000),
            owner: format!("user{owner}"),
            owner_id: 1000 + owner as u64,
            status: ExecutionStatus::Finished,
            error: None,
            ending: None,
            time_scheduled: started,
            time_started: Some(started),
            time_finished: Some(started + Duration::from_secs(ran)),
            application: application.clone(),
            services: vec![],
            proxy_secret: None,
            usage: Usage {
                cpu_seconds: ran as f64 * 0.3,
                memory_byte_seconds: ran as f64 * 3e7,
                memory_peak_bytes: 40 << 20,
                reserved_core_seconds: ran as f64,
                reserved_memory_byte_seconds: ran as f64 * 6.7e7,
            },
            usage_series: Default::default(),
        })
    })
}

pub fn usage_report() {
    let n = std::env::var("ZOE_BENCH_USAGE_HISTORY").ok().and_then(|s| s.parse().ok()).unwrap_or(50_000);
    let dir = prepare_usage(n);
    let (master, addr) = master_process(&dir, &[&["--no-docker"], UNLIMITED].concat());
    let agent = agent(Duration::from_secs(60));
    let admin = "Basic em9lYWRtaW46YWRtaW4tcHc="; // zoeadmin:admin-pw
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let url = |q: String| format!("http://{addr}/api/0.6/usage?{q}");
    let rows = |q: String| {
        let mut resp = agent.get(url(q)).header("Authorization", admin).call().unwrap();
        resp.body_mut().read_json::<Vec<serde_json::Value>>().unwrap().len()
    };
    println!("\nusage reports with {n} ended executions of {OWNERS} users over 90 days (median of 11, ms):");
    println!("| report | rows | ms |\n|---|---|---|");
    for (what, q) in [
        ("per user, last 30 days", format!("since={}", now - 30 * 86_400)),
        ("per user, all time", "since=0".to_string()),
        ("per execution, one day", format!("since={}&until={}&by=execution", now - 10 * 86_400, now - 9 * 86_400)),
    ] {
        let found = rows(q.clone());
        let ms = get_ms(&agent, &url(q), admin);
        println!("| {what} | {found} | {ms:.1} |");
    }
    stop(master);
    let _ = std::fs::remove_dir_all(&dir);
}
