//! Who used what, as operators and users see it: the usage series of `/metrics` scraped by a real
//! Prometheus (Debian's package, an instance of its own) from a real master running a CPU
//! burner and a sleeper on the real Docker Engine; every query of the Grafana dashboard
//! (`docs/grafana-dashboard.json`) evaluated against it; who sees which names; the `/usage` page
//! and the execution page's charts.
//!
//! Needs Docker, the image `zoe-test-busybox:latest` and `prometheus` (tests/run.sh prepares
//! all three); fails loudly without them.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::docker::{docker_master_with, exec_in, service, wait_status, IMAGE};
use crate::common::prometheus::{Prometheus, ScrapeAuth};
use crate::common::{poll, Master, ADMIN};

const ALICE: (&str, &str) = ("alice", "alice-pw");
const BOB: (&str, &str) = ("bob", "bob-pw");

/// `/metrics` as `auth` reads it: the status and the text.
fn metrics(m: &Master, auth: Option<(&str, &str)>) -> (u16, String) {
    let (status, v) = m.call("GET", "/metrics", auth, None);
    (status, v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))
}

/// The samples of `name` in an exposition text: (labels, value).
fn samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => {
                    let (labels, value) = r.split_once("} ")?;
                    (labels.to_string(), value)
                }
                None => (String::new(), rest.strip_prefix(' ')?),
            };
            Some((labels, value.split(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// The CPU time a container used, as its cgroup counts it (v1 `cpuacct.usage`, v2 `cpu.stat`).
fn kernel_cpu_seconds(container: &str) -> f64 {
    let cmd = "cat /sys/fs/cgroup/cpuacct/cpuacct.usage 2>/dev/null || grep usage_usec /sys/fs/cgroup/cpu.stat";
    let (ok, out) = exec_in(container, cmd);
    assert!(ok, "{container}: {out}");
    match out.trim().strip_prefix("usage_usec ") {
        Some(us) => us.parse::<f64>().unwrap() / 1e6,
        None => out.trim().parse::<f64>().unwrap() / 1e9,
    }
}

/// An application of one service of `cores` cores running `command`.
fn one_service(command: &str, cores: f64) -> Value {
    let mut s = service("main", true, 1, 0, command, json!([]));
    s["required_resources"]["cores"] = json!(cores);
    s["docker_image"] = json!(IMAGE);
    json!({"name": "usage", "version": 2, "will_end": false, "requires_binary": false, "priority": 1, "services": [s]})
}

/// Every `expr` of a Grafana dashboard, wherever it is.
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// A dashboard query as Grafana sends it: its variables replaced (every user, a rate window of
/// several scrapes, a range of the last minutes).
fn as_grafana_sends(expr: &str) -> String {
    expr.replace("$__rate_interval", "15s")
        .replace("$__range", "2m")
        .replace("$__interval", "5s")
        .replace("$owner", ".*")
}

#[test]
fn a_burner_and_a_sleeper_scraped_by_prometheus() {
    let (m, _cleanup, dep) = docker_master_with("usage-prom", &["--usage-interval", "1"]);
    m.create_user("alice", "user", ALICE.1);
    m.create_user("bob", "user", BOB.1);
    let prom = Prometheus::start("usage", &m.url, ScrapeAuth::Basic(ADMIN.0, ADMIN.1));

    let burner = m.submit(ALICE, "burn", &one_service("sh -c 'while :; do :; done'", 1.0));
    let sleeper = m.submit(BOB, "nap", &one_service("sleep 3600", 0.5));
    for (auth, id) in [(ALICE, burner), (BOB, sleeper)] {
        let e = wait_status(&m, auth, id, &["running", "error"], 60);
        assert_eq!(e["status"], "running", "{e}");
    }

    // Prometheus scrapes the master as an administrator: its target is up.
    poll(Duration::from_secs(20), Duration::from_millis(500), || {
        let t = prom.target();
        if t["health"] == "up" {
            Ok(())
        } else {
            Err(t)
        }
    })
    .unwrap_or_else(|t| panic!("the scrape is not up: {t}\n{}", prom.log()));

    // Both series in Prometheus; then the burner's CPU as the kernel counts it (its cgroup's
    // counter, read in the container) over 30 s, against what PromQL says of the same 30 s.
    let query = "sum by (owner) (rate(zoe_execution_cpu_seconds_total[30s]))";
    poll(Duration::from_secs(30), Duration::from_millis(500), || {
        let v = prom.vector(query);
        if v.len() == 2 {
            Ok(())
        } else {
            Err(v)
        }
    })
    .unwrap_or_else(|v| panic!("{query}: not both owners within 30 s: {v:?}\n{}", metrics(&m, Some(ADMIN)).1));
    let container = format!("main-burn-alice-{dep}");
    let (k0, t0) = (kernel_cpu_seconds(&container), Instant::now());
    std::thread::sleep(Duration::from_secs(30));
    let (k1, t1) = (kernel_cpu_seconds(&container), Instant::now());
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let kernel = (k1 - k0) / (t1 - t0).as_secs_f64();
    let v = prom.vector_at(query, at);
    let of = |who: &str| v.iter().find(|(l, _)| l["owner"] == who).map_or(f64::NAN, |(_, x)| *x);
    let (alice, bob) = (of("alice"), of("bob"));
    eprintln!("PromQL {query}: alice {alice:.3} cores, bob {bob:.4} cores; the kernel: the burner {kernel:.3} cores");
    // The burner may have one core; on a loaded two-core machine it gets less, and PromQL must
    // say what it got.
    assert!(kernel > 0.05 && kernel < 1.1, "the burner burns, within its one core: {kernel}");
    assert!((alice - kernel).abs() < 0.1 + 0.25 * kernel, "PromQL {alice} cores, the kernel {kernel} cores");
    assert!(bob < 0.05 && bob * 20.0 < alice, "the sleeper burns nothing: {bob} against {alice}");

    // Every query of the dashboard answers, with data while executions run.
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string("docs/grafana-dashboard.json").unwrap()).unwrap();
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    assert!(all.len() >= 10, "{all:?}");
    // A range of two minutes needs two minutes of data for nothing: a few scrapes are enough.
    for expr in &all {
        let q = as_grafana_sends(expr);
        let data = prom.query(&q).unwrap_or_else(|e| panic!("the dashboard's query fails: {e}"));
        let result = data["result"].as_array().unwrap();
        assert!(!result.is_empty(), "the dashboard's query {q} answers nothing\n{}", metrics(&m, Some(ADMIN)).1);
    }
    eprintln!("{} dashboard queries answered", all.len());

    // Who sees which names: an administrator everyone's, a user only their own, anybody none.
    let (s, admin_text) = metrics(&m, Some(ADMIN));
    assert_eq!(s, 200);
    let cpu = samples(&admin_text, "zoe_execution_cpu_seconds_total");
    assert!(cpu.iter().any(|(l, _)| l == &format!("owner=\"alice\",execution=\"{burner}\"")), "{admin_text}");
    assert!(cpu.iter().any(|(l, _)| l == &format!("owner=\"bob\",execution=\"{sleeper}\"")), "{admin_text}");
    let memory = samples(&admin_text, "zoe_execution_memory_bytes");
    assert!(memory.iter().all(|(_, v)| *v > 0.0) && memory.len() == 2, "{memory:?}");
    let (s, alice_text) = metrics(&m, Some(ALICE));
    assert_eq!(s, 200);
    assert!(alice_text.contains("owner=\"alice\"") && !alice_text.contains("bob"), "{alice_text}");
    let (s, anonymous) = metrics(&m, None);
    assert_eq!(s, 200);
    assert!(!anonymous.contains("owner=") && !anonymous.contains("alice"), "{anonymous}");
    assert!(anonymous.contains("zoe_executions{status=\"running\"} 2"), "{anonymous}");
    let (s, _) = metrics(&m, Some(("alice", "wrong")));
    assert_eq!(s, 401, "wrong credentials are refused, not taken for nobody");

    // The pages: alice's usage without bob, the burner's charts.
    let (s, page) = m.call("GET", "/usage", Some(ALICE), None);
    let page = page.as_str().unwrap_or_default().to_string();
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("<svg") && page.contains("alice") && !page.contains("bob"), "{page}");
    let (_, page) = m.call("GET", "/usage", Some(ADMIN), None);
    let page = page.as_str().unwrap_or_default().to_string();
    assert!(page.contains("alice") && page.contains("bob"), "{page}");
    let (s, page) = m.call("GET", &format!("/executions/{burner}"), Some(ALICE), None);
    let page = page.as_str().unwrap_or_default().to_string();
    assert_eq!(s, 200);
    assert!(page.contains("<svg") && page.contains("CPU") && page.contains("Memory"), "{page}");
    assert!(page.contains("<polyline"), "samples drawn as lines: {page}");
    let (s, _) = m.call("GET", &format!("/executions/{burner}"), Some(BOB), None);
    assert_eq!(s, 404, "bob does not see alice's execution");

    // Both end: their series go, the users' totals stay and never go back.
    let user_before = samples(&metrics(&m, Some(ADMIN)).1, "zoe_user_cpu_seconds_total");
    for (auth, id) in [(ALICE, burner), (BOB, sleeper)] {
        let (s, v) = m.delete(&format!("/api/0.6/execution/{id}"), auth);
        assert!(s == 200 || s == 204, "{s} {v}");
    }
    for (auth, id) in [(ALICE, burner), (BOB, sleeper)] {
        wait_status(&m, auth, id, &["terminated"], 60);
    }
    let after = metrics(&m, Some(ADMIN)).1;
    for name in [
        "zoe_execution_cpu_seconds_total",
        "zoe_execution_memory_bytes",
        "zoe_execution_cores_reserved",
        "zoe_execution_memory_reserved_bytes",
    ] {
        assert!(samples(&after, name).is_empty(), "{name} of ended executions: {after}");
    }
    let user_after = samples(&after, "zoe_user_cpu_seconds_total");
    for (labels, before) in &user_before {
        let now = user_after.iter().find(|(l, _)| l == labels).map(|(_, v)| *v);
        assert!(now.is_some_and(|v| v >= *before), "{labels}: {before} then {now:?}");
    }
    let alice_total = user_after.iter().find(|(l, _)| l == "owner=\"alice\"").map(|(_, v)| *v).unwrap_or(0.0);
    // At least what the kernel had counted of the burner 30 s before it ended (less a sample).
    assert!(alice_total >= 0.9 * k1, "alice's total {alice_total} s, the kernel's {k1} s: {user_after:?}");
    // In Prometheus too: the ended executions' series are stale.
    poll(Duration::from_secs(20), Duration::from_secs(1), || {
        let v = prom.vector("zoe_execution_cpu_seconds_total");
        if v.is_empty() {
            Ok(())
        } else {
            Err(v)
        }
    })
    .unwrap_or_else(|v| panic!("ended executions still in Prometheus: {v:?}"));
}

/// Without Docker: who may read what, and bad periods refused.
#[test]
fn usage_pages_and_series_need_the_right_credentials() {
    let dir = crate::common::temp_dir("usage-web");
    let m = Master::start_in(&dir, &["--no-docker"]);
    m.create_user("alice", "user", ALICE.1);
    m.submit(ALICE, "waits", &crate::common::app("img", None));

    let page = |auth, path: &str| {
        let (s, v) = m.call("GET", path, auth, None);
        (s, v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))
    };
    let (s, body) = page(Some(ALICE), "/usage");
    assert_eq!(s, 200, "{body}");
    assert!(body.contains(r#"<a href="/usage" aria-current="page">Usage</a>"#), "{body}");
    assert!(body.contains("No execution ran in this period"), "a queued execution never ran: {body}");
    assert!(body.contains("last 30 days"), "{body}");
    let (s, body) = page(Some(ALICE), "/usage?days=7");
    assert_eq!(s, 200, "{body}");
    for bad in ["0", "367", "x", "-1", "1e3"] {
        let (s, body) = page(Some(ALICE), &format!("/usage?days={bad}"));
        assert_eq!(s, 400, "days={bad}: {body}");
        assert!(body.contains("Days must be a number from 1 to 366"), "{body}");
    }
    // Nobody signed in is sent to the sign-in form (the agent follows the redirect).
    let (s, body) = page(None, "/usage");
    assert!(s == 200 && body.contains(r#"id="sign-in-form""#) && !body.contains("No execution ran"), "{s} {body}");
    assert_eq!(page(Some(("alice", "wrong")), "/usage").0, 401);

    // /metrics: anybody gets the figures without names; wrong credentials are refused.
    let (s, text) = metrics(&m, None);
    assert_eq!(s, 200);
    assert!(!text.contains("alice"), "{text}");
    assert_eq!(metrics(&m, Some(("alice", "wrong"))).0, 401);
    assert_eq!(metrics(&m, Some(("nobody", "x"))).0, 401);
    let url = format!("{}/metrics", m.url);
    let req = ureq::http::Request::builder().uri(&url).header("Authorization", "Bearer zoe_1_made-up");
    let status = m.agent.run(req.body(Vec::new()).unwrap()).unwrap().status().as_u16();
    assert_eq!(status, 401, "a made-up token is refused");
    let (s, text) = metrics(&m, Some(ALICE));
    assert_eq!(s, 200);
    assert!(samples(&text, "zoe_execution_cpu_seconds_total").is_empty(), "nothing runs: {text}");

    // A real Prometheus with alice's API token scrapes; one with a wrong password sees the
    // target down (401), not an empty one.
    let (s, token) = m.post("/api/0.6/token", ALICE, &json!({"name": "prometheus", "expires_days": 1}));
    assert_eq!(s, 201, "{token}");
    let good = Prometheus::start("token", &m.url, ScrapeAuth::Bearer(token["token"].as_str().unwrap()));
    let bad = Prometheus::start("wrong", &m.url, ScrapeAuth::Basic("alice", "wrong"));
    let health = |p: &Prometheus, want: &str| {
        poll(Duration::from_secs(20), Duration::from_millis(300), || {
            let t = p.target();
            if t["health"] == want {
                Ok(t)
            } else {
                Err(t)
            }
        })
        .unwrap_or_else(|t| panic!("the scrape is not {want}: {t}\n{}", p.log()))
    };
    health(&good, "up");
    let down = health(&bad, "down");
    assert!(down["lastError"].as_str().unwrap_or_default().contains("401"), "{down}");
    let up = good.vector("up");
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0].1, 1.0);
}
