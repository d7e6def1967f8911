//! 6. A burst of small executions released at once on Docker.

use super::*;

/// Kills the master and removes the containers of a deployment when dropped, even when the
/// benchmark fails half-way.
pub struct BurstCleanup(pub String, pub MasterProcess);

impl Drop for BurstCleanup {
    fn drop(&mut self) {
        self.1.kill();
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

/// A master on Docker for the benchmarks that start containers, with `extra` arguments: its
/// state in a fresh folder of the temporary directory named after `tag`, its deployment
/// `<prefix><pid>`. The folder, the deployment, what kills it and removes its containers, and
/// its address.
pub fn docker_master(tag: &str, prefix: &str, extra: &[&str]) -> (PathBuf, String, BurstCleanup, String) {
    let dir = std::env::temp_dir().join(format!("zoe-bench-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let deployment = format!("{prefix}{}", std::process::id() % 100_000);
    let ws = dir.join("ws");
    let mut args = vec![
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
    ];
    args.extend_from_slice(extra);
    let (child, addr) = master_process(&dir, &args);
    let cleanup = BurstCleanup(deployment.clone(), child);
    (dir, deployment, cleanup, addr)
}

/// Calls the API of the master at `addr` as zoeadmin: `method path` with `body` as JSON; the
/// answer's JSON (null when it has none).
pub fn admin_caller(addr: &str) -> impl Fn(&str, &str, Option<serde_json::Value>) -> serde_json::Value + '_ {
    let agent = agent(Duration::from_secs(120));
    move |method, path, body| {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header("Authorization", "Basic em9lYWRtaW46YWRtaW4tcHc=") // zoeadmin:admin-pw
            .header("Content-Type", "application/json")
            .body(body.map(|b| b.to_string()).unwrap_or_default().into_bytes())
            .unwrap();
        let mut resp = agent.run(req).unwrap();
        resp.body_mut().read_json::<serde_json::Value>().unwrap_or(serde_json::Value::Null)
    }
}

pub fn burst(n: usize) {
    let (dir, deployment, cleanup, addr) = docker_master("burst", "burst", &[]);
    let call = admin_caller(&addr);
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
