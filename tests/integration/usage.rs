//! Usage accounting on the real Docker Engine: one user's CPU burner and another user's sleeper,
//! sampled every second, then ended and moved to the archive; their usage in the executions'
//! JSON, in `GET /usage` per user and per execution (each user seeing only their own rows), and
//! in `zoe usage` (table, JSON, CSV). Needs Docker and `zoe-test-busybox:latest`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::docker::{docker_master_with, docker_out, wait_status, IMAGE};
use crate::common::{app, assert_error, wait_execution, Master, ADMIN};

const ALICE: (&str, &str) = ("alice", "alice-pw");
const BOB: (&str, &str) = ("bob", "bob-pw");

/// An application of one busybox container running `command` with `cores` reserved.
fn with_cores(command: &str, cores: f64) -> Value {
    let mut a = app(IMAGE, Some(command));
    a["services"][0]["required_resources"]["cores"] = cores.into();
    a
}

fn usage_of(e: &Value) -> (f64, f64, f64, f64, u64) {
    let u = &e["usage"];
    let f = |k: &str| u[k].as_f64().unwrap_or_else(|| panic!("no {k} in {e}"));
    (
        f("cpu_seconds"),
        f("memory_byte_seconds"),
        f("reserved_core_seconds"),
        f("reserved_memory_byte_seconds"),
        u["memory_peak_bytes"].as_u64().unwrap(),
    )
}

/// The CPU time the kernel counted for a container so far (its cgroup's, read inside it).
fn cgroup_cpu_seconds(container: &str) -> f64 {
    let v2 = docker_out(&["exec", container, "cat", "/sys/fs/cgroup/cpu.stat"]);
    if let Some(us) = v2.lines().find_map(|l| l.strip_prefix("usage_usec ")) {
        return us.trim().parse::<f64>().unwrap() / 1e6;
    }
    let v1 = docker_out(&["exec", container, "cat", "/sys/fs/cgroup/cpuacct/cpuacct.usage"]);
    v1.trim().parse::<f64>().unwrap_or_else(|_| panic!("no CPU counter in {container}: {v1:?}")) / 1e9
}

fn report(m: &Master, auth: (&str, &str), query: &str) -> Vec<Value> {
    let (s, rows) = m.get(&format!("/api/0.6/usage?{query}"), auth);
    assert_eq!(s, 200, "{rows}");
    rows.as_array().unwrap().clone()
}

/// Runs `zoe usage` as `auth` with `args`; returns its stdout (it must succeed).
fn cli(m: &Master, auth: (&str, &str), args: &[&str]) -> String {
    let out = m.client(auth, &["usage"]).args(args).output().unwrap();
    assert!(out.status.success(), "zoe usage {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_burner_and_a_sleeper_are_measured_kept_and_reported_to_whom_may_see_them() {
    let (m, _cleanup, _) = docker_master_with(
        "usage",
        &["--usage-interval", "1", "--history-keep", "0", "--archive-batch", "1", "--default-cores", "0.1"],
    );
    m.create_user(ALICE.0, "user", ALICE.1);
    m.create_user(BOB.0, "user", BOB.1);
    let burner = m.submit(ALICE, "burn", &with_cores("sh -c 'while :; do :; done'", 1.0));
    let sleeper = m.submit(BOB, "nap", &with_cores("sleep 600", 0.5));
    for (who, id) in [(ALICE, burner), (BOB, sleeper)] {
        assert_eq!(wait_status(&m, who, id, &["running", "error"], 120)["status"], "running");
    }
    let t0 = Instant::now();
    // Updated while it runs: the burner's CPU grows from one look to the next.
    let first = wait_execution(&m, ALICE, burner, 30, "burner measured", |e| usage_of(e).0 > 0.2);
    let later = wait_execution(&m, ALICE, burner, 30, "burner measured again", |e| usage_of(e).0 > usage_of(&first).0);
    assert_eq!(later["status"], "running");
    std::thread::sleep(Duration::from_secs(8).saturating_sub(t0.elapsed()));
    // What the kernel counted for the burner, independently of Zoe, just before it is stopped
    // (the machine is shared: the burner gets what the others leave of the core it may use).
    let (_, e) = m.get(&format!("/api/0.6/execution/{burner}"), ALICE);
    let (_, service) = m.get(&format!("/api/0.6/service/{}", e["services"][0]), ALICE);
    let kernel = cgroup_cpu_seconds(service["name"].as_str().unwrap());
    for (who, id) in [(ALICE, burner), (BOB, sleeper)] {
        assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), who).0, 204);
    }
    let wall = t0.elapsed().as_secs_f64();
    let ended: Vec<Value> = [(ALICE, burner), (BOB, sleeper)]
        .into_iter()
        .map(|(who, id)| wait_status(&m, who, id, &["terminated"], 120))
        .collect();
    // Both moved to the archive, their usage with them (and not their series).
    let archived = || -> String {
        let Ok(dir) = std::fs::read_dir(m.state_dir.join("archive")) else { return String::new() };
        dir.flatten()
            .filter(|f| f.path().extension().is_some_and(|x| x == "ron"))
            .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default())
            .collect()
    };
    wait_execution(&m, ADMIN, sleeper, 60, "archived", |_| {
        let text = archived();
        text.contains("name: \"burn\"") && text.contains("name: \"nap\"")
    });
    let text = archived();
    assert!(text.contains("cpu_seconds:") && !text.contains("usage_series"), "{text}");
    let (_, burned) = m.get(&format!("/api/0.6/execution/{burner}"), ALICE);
    let (_, slept) = m.get(&format!("/api/0.6/execution/{sleeper}"), BOB);
    assert_eq!(usage_of(&burned), usage_of(&ended[0]), "the same from the archive: {burned}");
    assert_eq!(usage_of(&slept), usage_of(&ended[1]), "{slept}");
    let (cpu, mem, reserved_cores, reserved_mem, peak) = usage_of(&burned);
    // What the kernel counted, give or take a round (1 s) of the one core it may use, and never
    // more than that core for the time it ran.
    assert!((cpu - kernel).abs() < 2.0, "Zoe measured {cpu} s of CPU, the kernel {kernel} s: {burned}");
    assert!(cpu > 0.05 * wall && cpu < wall + 1.0, "burner used {cpu} s of CPU in {wall:.1} s: {burned}");
    assert!(reserved_cores >= cpu * 0.95, "reserved {reserved_cores} core-seconds, used {cpu}: {burned}");
    assert!(reserved_mem >= mem && peak > 0 && mem > 0.0, "{burned}");
    let burned_cpu = cpu;
    let (cpu, mem, reserved_cores, reserved_mem, peak) = usage_of(&slept);
    assert!(cpu < 0.5 && cpu * 10.0 < burned_cpu, "a sleeper uses next to no CPU: {slept}");
    assert!(reserved_cores > 0.5 * 0.5 * wall * 0.8, "half a core reserved for the whole run: {slept}");
    assert!(reserved_mem >= mem && peak > 0, "{slept}");

    // Per user: each user their own row, an administrator both.
    let since = (time::OffsetDateTime::now_utc().unix_timestamp() - 3600).to_string();
    let all = report(&m, ADMIN, &format!("since={since}"));
    let users: Vec<&str> = all.iter().map(|r| r["user"].as_str().unwrap()).collect();
    assert_eq!(users, ["alice", "bob"], "{all:?}");
    let hours = |v: &Value| usage_of(v).0 / 3600.0;
    assert!((all[0]["cpu_core_hours"].as_f64().unwrap() - hours(&burned)).abs() < 1e-9, "{all:?}");
    assert_eq!(all[0]["executions"], 1);
    for r in &all {
        assert!(r["reserved_core_hours"].as_f64() >= r["cpu_core_hours"].as_f64(), "{r}");
        assert!(r["reserved_memory_gib_hours"].as_f64() >= r["memory_gib_hours"].as_f64(), "{r}");
        assert!(r.get("execution_id").is_none(), "{r}");
    }
    assert_eq!(report(&m, ALICE, &format!("since={since}")), all[..1], "alice sees her row only");
    assert_eq!(report(&m, BOB, ""), all[1..], "bob his, over the last 30 days by default");
    // Per execution: bob sees his execution, never alice's.
    let mine = report(&m, BOB, "by=execution");
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!((mine[0]["execution_id"].as_u64(), mine[0]["user"].as_str()), (Some(sleeper), Some("bob")));
    assert_eq!(report(&m, ADMIN, "by=execution").len(), 2);
    // A span before they ran has nothing.
    assert_eq!(report(&m, ADMIN, "since=0&until=86400"), Vec::<Value>::new());
    // Bad parameters: stable codes.
    assert_error(&m.get("/api/0.6/usage?since=yesterday", ADMIN), 400, "invalid_period");
    assert_error(&m.get("/api/0.6/usage?since=200&until=100", ADMIN), 400, "invalid_period");
    assert_error(&m.get("/api/0.6/usage?until=-1", ADMIN), 400, "invalid_period");
    assert_error(&m.get("/api/0.6/usage?by=group", ADMIN), 400, "invalid_grouping");
    assert_error(&m.get("/api/0.6/usage?owner=alice", BOB), 400, "invalid_request");
    assert_error(&m.get("/api/0.6/usage?by=user&by=execution", BOB), 400, "invalid_request");
    assert_eq!(m.call("GET", "/api/0.6/usage", None, None).0, 401);

    // The client: a table with the efficiency, JSON and CSV.
    let table = cli(&m, ADMIN, &["--since", "1d"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("USER") && lines[0].contains("CPU EFF"), "{table}");
    assert!(lines[1].starts_with("alice") && lines[1].contains('%'), "{table}");
    assert!(lines[2].starts_with("bob"), "{table}");
    let json: Vec<Value> = serde_json::from_str(&cli(&m, BOB, &["--by", "execution", "--json"])).unwrap();
    assert_eq!(json, mine);
    let csv = cli(&m, ALICE, &["--by", "execution", "--csv", "--since", "2h"]);
    let mut rows = csv.lines();
    assert!(rows.next().unwrap().starts_with("user,execution_id,execution_name,executions,cpu_core_hours"), "{csv}");
    assert!(rows.next().unwrap().starts_with(&format!("alice,{burner},burn,1,")), "{csv}");
    assert_eq!(rows.next(), None, "alice's only: {csv}");
}
