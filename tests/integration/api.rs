//! The REST API through real HTTP, the real actors and real checkpoints (no Docker needed: the
//! master runs with `--no-docker`, so executions wait in the queue).

use serde_json::{json, Value};

use crate::common::{app, assert_error, temp_dir, Master, ADMIN};

const NO_DOCKER: &[&str] = &["--no-docker"];

fn master(tag: &str) -> Master {
    Master::start_in(&temp_dir(tag), NO_DOCKER)
}

#[test]
fn info_needs_credentials_and_answers_the_0_9_7_shape() {
    let m = master("info");
    let (s, v) = m.get("/api/0.6/info", ADMIN);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["api_version"], "0.6");
    assert_eq!(v["application_format_version"], 2);
    assert_eq!(v["deployment_name"], "test");
    assert!(v["version"].is_string());

    let (s, headers, v) = m.call_full("GET", "/api/0.6/info", None, None);
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["code"], "unauthorized");
    assert!(headers.iter().any(|(k, val)| k == "www-authenticate" && val == "Basic realm=\"zoe\""), "{headers:?}");
    assert_error(&m.get("/api/0.6/info", ("zoeadmin", "wrong")), 401, "unauthorized");
    assert_error(&m.get("/api/0.6/info", ("nobody", "x")), 401, "unauthorized");
    // A malformed Authorization header is a 401 too, not a 500.
    let (s, _, _) = m.call_full("GET", "/api/0.6/info", None, None);
    assert_eq!(s, 401);
}

#[test]
fn users_are_created_read_and_deleted_with_roles_enforced() {
    let m = master("users");
    let (s, v) = m.post("/api/0.6/user", ADMIN, &json!({"name": "alice", "role": "user", "password": "pw-a"}));
    assert_eq!(s, 201, "{v}");
    let u = &v["user"];
    assert_eq!(u["name"], "alice");
    assert_eq!(u["role"], "user");
    assert_eq!(u["owner"], "alice");
    assert_eq!(u["gateway_urls"], json!([]));
    assert!(u["id"].as_u64().is_some());
    assert!(!v.to_string().contains("argon2") && !v.to_string().contains("pw-a"), "{v}");

    m.create_user("bob", "user", "pw-b");
    m.create_user("gina", "guest", "pw-g");
    let alice = ("alice", "pw-a");

    // Bad input.
    let user = |body: Value| m.post("/api/0.6/user", ADMIN, &body);
    assert_error(&user(json!({"name": "alice", "role": "user", "password": "x"})), 409, "user_exists");
    assert_error(&user(json!({"name": "Alice_1", "role": "user", "password": "x"})), 400, "invalid_name");
    assert_error(&user(json!({"name": "carl", "role": "root", "password": "x"})), 400, "invalid_role");
    assert_error(&user(json!({"name": "carl", "role": "user"})), 400, "invalid_request");
    assert_error(&user(json!({"role": "user", "password": "x"})), 400, "invalid_request");
    assert_error(&user(json!({"name": 5, "role": "user", "password": "x"})), 400, "invalid_request");
    assert_error(&user(json!(["not", "an", "object"])), 400, "invalid_request");
    assert_error(&m.call("POST", "/api/0.6/user", Some(ADMIN), Some("{\"name\": ")), 400, "invalid_json");
    assert_error(&m.call("POST", "/api/0.6/user", Some(ADMIN), Some("")), 400, "invalid_json");
    // Only admins create users.
    assert_error(
        &m.post("/api/0.6/user", alice, &json!({"name": "carl", "role": "admin", "password": "x"})),
        403,
        "admin_only",
    );

    // Reading: yourself or, for admins, anyone; others' names are not even confirmed.
    let (s, v) = m.get("/api/0.6/user/alice", alice);
    assert_eq!((s, v["name"].as_str()), (200, Some("alice")));
    assert_eq!(m.get("/api/0.6/user/bob", ADMIN).0, 200);
    assert_error(&m.get("/api/0.6/user/bob", alice), 404, "no_such_user");
    assert_error(&m.get("/api/0.6/user/nobody", alice), 404, "no_such_user");
    assert_error(&m.get("/api/0.6/user/nobody", ADMIN), 404, "no_such_user");

    // Deleting.
    assert_error(&m.delete("/api/0.6/user/bob", alice), 404, "no_such_user");
    assert_error(&m.delete("/api/0.6/user/zoeadmin", ADMIN), 409, "last_admin");
    let id = m.submit(("bob", "pw-b"), "job", &app("img", None));
    assert_error(&m.delete("/api/0.6/user/bob", ADMIN), 409, "user_has_active_executions");
    assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), ("bob", "pw-b")).0, 204);
    assert_eq!(m.delete("/api/0.6/user/bob", ADMIN).0, 204);
    assert_error(&m.get("/api/0.6/user/bob", ADMIN), 404, "no_such_user");
    assert_error(&m.get("/api/0.6/info", ("bob", "pw-b")), 401, "unauthorized");
    // Users may delete themselves, as in 0.9.7.
    assert_eq!(m.delete("/api/0.6/user/gina", ("gina", "pw-g")).0, 204);
    // The deleted user's history stays, visible to the admin; a new "bob" does not inherit it.
    let (_, all) = m.get("/api/0.6/execution", ADMIN);
    assert!(all.as_array().unwrap().iter().any(|e| e["id"] == id && e["owner"] == "bob"), "{all}");
    m.create_user("bob", "user", "pw-b2");
    let (_, mine) = m.get("/api/0.6/execution", ("bob", "pw-b2"));
    assert_eq!(mine, json!([]));
    assert_error(&m.get(&format!("/api/0.6/execution/{id}"), ("bob", "pw-b2")), 404, "no_such_execution");
}

#[test]
fn executions_are_queued_listed_scoped_and_terminated() {
    let m = master("exec");
    m.create_user("alice", "user", "pa");
    m.create_user("bob", "user", "pb");
    m.create_user("gina", "guest", "pg");
    let (alice, bob, gina) = (("alice", "pa"), ("bob", "pb"), ("gina", "pg"));

    let a1 = m.submit(alice, "wc1", &app("zoe-test-busybox:latest", Some("sleep 1")));
    let b1 = m.submit(bob, "wc1", &app("zoe-test-busybox:latest", None));
    let (s, e) = m.get(&format!("/api/0.6/execution/{a1}"), alice);
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["name"], "wc1");
    assert_eq!(e["owner"], "alice");
    assert_eq!(e["status"], "scheduled");
    assert_eq!(e["queue_position"], 1);
    assert_eq!(e["error"], Value::Null);
    assert_eq!(e["services"], json!([]));
    assert_eq!(e["time_started"], Value::Null);
    assert!(e["time_scheduled"].as_str().unwrap().ends_with('Z'), "{e}");
    assert_eq!(e["application"]["services"][0]["command"], "sleep 1");
    let (_, e) = m.get(&format!("/api/0.6/execution/{b1}"), bob);
    assert_eq!(e["queue_position"], 2);

    // Scoping: others' executions do not exist for you; the admin sees all.
    assert_error(&m.get(&format!("/api/0.6/execution/{b1}"), alice), 404, "no_such_execution");
    assert_error(&m.delete(&format!("/api/0.6/execution/{b1}"), alice), 404, "no_such_execution");
    let (_, list) = m.get("/api/0.6/execution", alice);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let (_, list) = m.get("/api/0.6/execution", ADMIN);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let (_, list) = m.get("/api/0.6/execution?status=scheduled", ADMIN);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_error(&m.get("/api/0.6/execution?status=sleeping", ADMIN), 400, "invalid_request");

    // Names: DNS labels, unique among the owner's active executions.
    let submit =
        |auth, name: &str, app: Value| m.post("/api/0.6/execution", auth, &json!({"name": name, "application": app}));
    assert_error(&submit(alice, "wc1", app("img", None)), 409, "execution_name_in_use");
    assert_error(&submit(alice, "Word Count", app("img", None)), 400, "invalid_name");
    assert_error(&submit(alice, &"x".repeat(60), app("img", None)), 400, "too_long");
    assert_error(
        &m.post("/api/0.6/execution", alice, &json!({"application": app("img", None)})),
        400,
        "invalid_request",
    );
    assert_error(&m.post("/api/0.6/execution", alice, &json!({"name": "x"})), 400, "invalid_request");

    // Invalid descriptions are 400s that name the field, never 500s.
    let mut bad = app("img", None);
    bad["services"][0]["total_count"] = json!("3");
    let r = submit(alice, "bad", bad);
    assert_error(&r, 400, "wrong_type");
    assert!(r.1["message"].as_str().unwrap().contains("services[0].total_count"), "{}", r.1);
    let mut bad = app("img", None);
    bad["version"] = json!(1);
    assert_error(&submit(alice, "bad", bad), 400, "unsupported_version");
    let mut bad = app("img", Some("echo {nope}"));
    bad["services"][0]["monitor"] = json!(true);
    assert_error(&submit(alice, "bad", bad), 400, "unknown_template_variable");
    let mut bad = app("img", None);
    bad["services"][0]["volumes"] = json!([["/etc", "/host-etc", false]]);
    assert_error(&submit(alice, "bad", bad), 400, "volumes_not_allowed");
    let mut bad = app("img", None);
    bad["services"][0]["monitor"] = json!(false);
    assert_error(&submit(alice, "bad", bad), 400, "no_monitor");
    assert_error(&submit(alice, "bad", json!("not an object")), 400, "not_an_object");

    // Guests: one active execution.
    let g1 = m.submit(gina, "g1", &app("img", None));
    assert_error(&submit(gina, "g2", app("img", None)), 402, "quota_exceeded");

    // Terminating a queued execution ends it at once; again is a no-op; the record stays.
    assert_eq!(m.delete(&format!("/api/0.6/execution/{g1}"), gina).0, 204);
    assert_eq!(m.delete(&format!("/api/0.6/execution/{g1}"), gina).0, 204);
    let (_, e) = m.get(&format!("/api/0.6/execution/{g1}"), gina);
    assert_eq!(e["status"], "terminated");
    assert_eq!(e["queue_position"], Value::Null);
    assert!(e["time_finished"].is_string(), "{e}");
    // The name is free again; history keeps both records.
    let g2 = m.submit(gina, "g1", &app("img", None));
    assert_ne!(g1, g2);
    let (_, list) = m.get("/api/0.6/execution", gina);
    assert_eq!(list.as_array().unwrap().len(), 2);
    // The admin can terminate anyone's execution.
    assert_eq!(m.delete(&format!("/api/0.6/execution/{b1}"), ADMIN).0, 204);

    assert_error(&m.get("/api/0.6/execution/abc", alice), 404, "no_such_execution");
    assert_error(&m.get("/api/0.6/execution/999999", alice), 404, "no_such_execution");
    assert_error(&m.get("/api/0.6/service/999999", alice), 404, "no_such_service");
    assert_error(&m.get("/api/0.6/service/x", alice), 404, "no_such_service");
}

#[test]
fn query_filters_and_scopes_like_0_9_7_and_never_fails_with_500() {
    let m = master("query");
    m.create_user("alice", "user", "pa");
    m.create_user("bob", "guest", "pb");
    let alice = ("alice", "pa");
    let a1 = m.submit(alice, "one", &app("img", None));
    m.submit(alice, "two", &app("img", None));
    m.submit(("bob", "pb"), "one", &app("img", None));
    let q = |auth, body: Value| m.post("/api/0.6/query", auth, &body);

    let (s, v) = q(alice, json!({"what": "user", "filters": {}}));
    assert_eq!(s, 200);
    assert_eq!(v.as_array().unwrap().iter().map(|u| u["name"].clone()).collect::<Vec<_>>(), [json!("alice")]);
    let (_, v) = q(ADMIN, json!({"what": "user", "filters": {"role": "guest"}}));
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["name"], "bob");

    let (_, v) = q(alice, json!({"what": "execution", "filters": {"name": "one"}}));
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["id"], a1);
    let (_, v) = q(ADMIN, json!({"what": "execution", "filters": {"name": "one"}}));
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
    // 0.9.7 answered an admin's owner filter with a 500.
    let (s, v) = q(ADMIN, json!({"what": "execution", "filters": {"owner": "alice"}}));
    assert_eq!((s, v.as_array().unwrap().len()), (200, 2), "{v}");
    let (_, v) = q(ADMIN, json!({"what": "execution", "filters": {"id": a1}}));
    assert_eq!(v.as_array().unwrap().len(), 1);
    let (_, v) = q(ADMIN, json!({"what": "execution", "filters": {"id": a1.to_string()}}));
    assert_eq!(v, json!([]), "JSON types matter, as in 0.9.7");
    let (_, v) = q(ADMIN, json!({"what": "execution", "filters": {"no_such_attribute": 1}}));
    assert_eq!(v, json!([]));
    let (s, v) = q(alice, json!({"what": "service"}));
    assert_eq!((s, v), (200, json!([])));

    let (s, v) = q(alice, json!({"what": "stats_scheduler"}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["stats"]["count_waiting"], 3, "everyone's waiting executions are counted");
    assert_eq!(v["stats"]["waiting_list"], json!(["one", "two"]), "only alice's own are named");
    let (_, v) = q(ADMIN, json!({"what": "stats_scheduler"}));
    assert_eq!(v["stats"]["waiting_list"], json!(["one", "two", "one"]), "an administrator sees all");
    assert!(v["stats"]["timestamp"].as_f64().unwrap() > 1.7e9);
    let (s, v) = q(alice, json!({"what": "stats_swarm", "filters": {}}));
    assert_eq!(s, 200, "{v}");
    assert!(v["stats"]["nodes"].is_array(), "{v}");

    assert_error(&q(alice, json!({"filters": {}})), 400, "invalid_request");
    assert_error(&q(alice, json!({"what": "blob"})), 400, "unknown_query");
    assert_error(&q(alice, json!({"what": "user", "filters": [1]})), 400, "invalid_filters");
}

#[test]
fn http_edges_get_clear_json_errors() {
    let m = master("http");
    // Wrong method: 405 with Allow.
    let (s, headers, v) = m.call_full("PUT", "/api/0.6/execution", Some(ADMIN), None);
    assert_eq!(s, 405, "{v}");
    assert_eq!(v["code"], "method_not_allowed");
    assert!(headers.iter().any(|(k, val)| k == "allow" && val == "GET, POST"), "{headers:?}");
    // Unknown path.
    assert_error(&m.get("/api/0.6/nothing", ADMIN), 404, "not_found");
    assert_error(&m.get("/api/0.5/info", ADMIN), 404, "not_found");
    // A doubled slash (the 0.9.7 CLI sends one when ZOE_URL ends with /) and a trailing one.
    assert_eq!(m.get("//api/0.6/info", ADMIN).0, 200);
    assert_eq!(m.get("/api/0.6//info/", ADMIN).0, 200);
    // Huge bodies: 413 with a code, and the master keeps working.
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    assert_error(&m.call("POST", "/api/0.6/execution", Some(ADMIN), Some(&huge)), 413, "payload_too_large");
    // Deep nesting and non-UTF-8.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_error(&m.call("POST", "/api/0.6/query", Some(ADMIN), Some(&deep)), 400, "invalid_json");
    let url = format!("{}/api/0.6/query", m.url);
    let req = ureq::http::Request::builder()
        .method("POST")
        .uri(&url)
        .header("Authorization", "Basic em9lYWRtaW46YWRtaW4tc2VjcmV0")
        .header("Content-Type", "application/json")
        .body(vec![0xff, 0xfe, 0x7b])
        .unwrap();
    let resp = m.agent.run(req).unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // Header abuse: an enormous header, a garbage Authorization header.
    {
        use std::io::{Read, Write};
        let addr = m.url.trim_start_matches("http://").to_string();
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let head = format!("GET /api/0.6/info HTTP/1.1\r\nHost: x\r\nX-Junk: {}\r\n\r\n", "j".repeat(200_000));
        let _ = s.write_all(head.as_bytes());
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        let status: u16 = answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        assert!((400..500).contains(&status), "a 200 kB header gets a 4xx: {:.100}", answer);
    }
    for junk in ["Basic", "Basic !!!", "Bearer x", "Basic Zm9v", &format!("Basic {}", "A".repeat(10_000))] {
        let req = ureq::http::Request::builder()
            .method("GET")
            .uri(format!("{}/api/0.6/info", m.url))
            .header("Authorization", junk)
            .body(Vec::new())
            .unwrap();
        assert_eq!(m.agent.run(req).unwrap().status().as_u16(), 401, "{junk:.20}");
    }
    assert_eq!(m.get("/api/0.6/info", ADMIN).0, 200);
}

#[test]
fn failed_logins_are_throttled_per_user_and_address() {
    let dir = temp_dir("throttle");
    let m = Master::start_in(&dir, &["--no-docker", "--login-failures-max", "3", "--login-failures-window", "60"]);
    m.create_user("alice", "user", "right");
    for _ in 0..3 {
        assert_error(&m.get("/api/0.6/info", ("alice", "wrong")), 401, "unauthorized");
    }
    let (s, headers, v) = m.call_full("GET", "/api/0.6/info", Some(("alice", "right")), None);
    assert_eq!(s, 429, "even the right password waits out the window: {v}");
    assert_eq!(v["code"], "too_many_failed_logins");
    assert!(headers.iter().any(|(k, _)| k == "retry-after"));
    // Other users are not affected.
    assert_eq!(m.get("/api/0.6/info", ADMIN).0, 200);
}

#[test]
fn roles_and_passwords_change_through_put() {
    let m = master("put");
    m.create_user("alice", "user", "pa");
    m.create_user("bob", "user", "pb");
    let put = |auth, who: &str, body: Value| {
        m.call("PUT", &format!("/api/0.6/user/{who}"), Some(auth), Some(&body.to_string()))
    };
    // Users change their own password, not their role, and cannot see others.
    assert_eq!(put(("alice", "pa"), "alice", json!({"password": "pa2"})).0, 200);
    assert_error(&m.get("/api/0.6/info", ("alice", "pa")), 401, "unauthorized");
    assert_eq!(m.get("/api/0.6/info", ("alice", "pa2")).0, 200);
    assert_error(&put(("alice", "pa2"), "alice", json!({"role": "admin"})), 403, "admin_only");
    assert_error(&put(("alice", "pa2"), "bob", json!({"password": "x"})), 404, "no_such_user");
    // Admins change roles; the last admin stays one.
    let (s, v) = put(ADMIN, "bob", json!({"role": "admin"}));
    assert_eq!((s, v["role"].as_str()), (200, Some("admin")), "{v}");
    assert_eq!(m.get("/api/0.6/user/alice", ("bob", "pb")).0, 200, "bob is an admin now");
    assert_eq!(put(("bob", "pb"), "zoeadmin", json!({"role": "user"})).0, 200);
    assert_error(&put(("bob", "pb"), "bob", json!({"role": "guest"})), 409, "last_admin");
    assert_error(&put(("bob", "pb"), "alice", json!({"role": "king"})), 400, "invalid_role");
    assert_error(&put(("bob", "pb"), "alice", json!({"name": "eve"})), 400, "invalid_request");
    assert_error(&put(("bob", "pb"), "alice", json!({"password": ""})), 400, "invalid_request");
}

#[test]
fn health_readiness_and_metrics_need_no_credentials_and_count_requests() {
    let m = master("metrics");
    assert_eq!(m.call("GET", "/healthz", None, None), (200, Value::String("ok\n".into())));
    let (s, v) = m.call("GET", "/readyz", None, None);
    assert_eq!(s, 200);
    assert!(v.as_str().unwrap().contains("docker: disabled"), "{v}");
    m.create_user("alice", "user", "pa");
    m.submit(("alice", "pa"), "one", &app("img", None));
    assert_eq!(m.get("/api/0.6/execution/999", ("alice", "pa")).0, 404);
    let (s, v) = m.call("GET", "/metrics", None, None);
    assert_eq!(s, 200);
    let text = v.as_str().unwrap();
    for line in [
        "zoe_executions{status=\"scheduled\"} 1",
        "zoe_queue_length 1",
        "zoe_api_request_duration_seconds_count{endpoint=\"/api/0.6/user\",method=\"POST\",status=\"201\"} 1",
        "zoe_api_request_duration_seconds_count{endpoint=\"/api/0.6/execution/{id}\",method=\"GET\",status=\"404\"} 1",
        "zoe_checkpoint_failures_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    let written: f64 =
        text.lines().find_map(|l| l.strip_prefix("zoe_checkpoint_writes_total ")).unwrap().parse().unwrap();
    assert!(written >= 2.0, "{text}");
    assert!(!text.contains("alice"), "metrics reveal no names");
}

#[test]
fn a_config_file_is_read_and_the_environment_and_flags_win_over_it() {
    let dir = temp_dir("config");
    let file = dir.join("zoe.toml");
    std::fs::write(&file, "deployment-name = \"fromfile\"\nguest-max-active = 2\nguest-max-queued = 2\nmax-memory = \"1GiB\"\nmax-body-bytes = 100\n").unwrap();
    let m = Master::start_in(&dir, &["--no-docker", "--config", file.to_str().unwrap(), "--max-body-bytes", "4096"]);
    // The harness sets ZOE_DEPLOYMENT_NAME=test: the environment wins over the file.
    assert_eq!(m.get("/api/0.6/info", ADMIN).1["deployment_name"], "test");
    // The file's guest quota applies (2 instead of the default 1), and the submissions (about
    // 400 bytes each) pass because the flag's body limit wins over the file's 100 bytes.
    m.create_user("gina", "guest", "pg");
    m.submit(("gina", "pg"), "one", &app("img", None));
    m.submit(("gina", "pg"), "two", &app("img", None));
    assert_error(
        &m.post("/api/0.6/execution", ("gina", "pg"), &json!({"name": "three", "application": app("img", None)})),
        402,
        "quota_exceeded",
    );
    let (_, stats) = m.post("/api/0.6/query", ADMIN, &json!({"what": "stats_scheduler"}));
    assert_eq!(stats["stats"]["memory_total"], 1u64 << 30, "{stats}");
    drop(m);
    // An unknown key is refused with its name.
    std::fs::write(&file, "listen-prot = 1\n").unwrap();
    let err = Master::try_start_in(&dir, &["--no-docker", "--config", file.to_str().unwrap()]).err().unwrap();
    assert!(err.contains("unknown key \"listen-prot\""), "{err}");
    // A misspelt value is refused too, never silently taken as the default.
    for (line, word) in [("scheduler-policy = \"fifoo\"\n", "fifoo"), ("log-format = \"jsn\"\n", "jsn")] {
        std::fs::write(&file, line).unwrap();
        let err = Master::try_start_in(&dir, &["--no-docker", "--config", file.to_str().unwrap()]).err().unwrap();
        assert!(err.contains(word) && err.contains("unknown variant"), "{err}");
    }
    let err = Master::try_start_in(&dir, &["--no-docker", "--scheduler-policy", "sizes"]).err().unwrap();
    assert!(err.contains("sizes") && err.contains("possible values"), "{err}");
}

/// Every refusal of a bad request body, pinned as it is answered (status, code, message): the
/// bodies of `POST /user`, `PUT /user/{name}`, `POST /execution` and `POST /query` with wrong
/// types, unknown and missing fields, nulls, repeated keys and bad descriptions.
#[test]
fn bad_request_bodies_keep_their_answers() {
    let m = master("bodies");
    m.create_user("bob", "user", "pw-b");
    let long = "p".repeat(1025);
    let good_app = app("busybox", None);
    let mut bad_app = good_app.clone();
    bad_app["services"][0]["monitr"] = json!(true);
    let mut typo_app = good_app.clone();
    typo_app["services"][0]["total_count"] = json!("1");
    let cases: Vec<(&str, &str, String)> = vec![
        ("POST", "/api/0.6/user", "".into()),
        ("POST", "/api/0.6/user", "{\"name\": ".into()),
        ("POST", "/api/0.6/user", "[1]".into()),
        ("POST", "/api/0.6/user", "null".into()),
        ("POST", "/api/0.6/user", "{}".into()),
        ("POST", "/api/0.6/user", json!({"name": null, "role": "user", "password": "x"}).to_string()),
        ("POST", "/api/0.6/user", json!({"name": 5, "role": "user", "password": "x"}).to_string()),
        ("POST", "/api/0.6/user", json!({"name": "carl", "password": "x"}).to_string()),
        ("POST", "/api/0.6/user", json!({"name": "carl", "role": null, "password": "x"}).to_string()),
        ("POST", "/api/0.6/user", json!({"name": "carl", "role": 1, "password": "x"}).to_string()),
        ("POST", "/api/0.6/user", json!({"name": "carl", "role": "root", "password": "x"}).to_string()),
        ("POST", "/api/0.6/user", json!({"name": "carl", "role": "user"}).to_string()),
        ("POST", "/api/0.6/user", json!({"name": "carl", "role": "user", "password": ""}).to_string()),
        ("POST", "/api/0.6/user", json!({"name": "carl", "role": "user", "password": 5}).to_string()),
        ("POST", "/api/0.6/user", json!({"name": "carl", "role": "user", "password": long}).to_string()),
        ("POST", "/api/0.6/user", json!({"name": "Carl", "role": "user", "password": "x"}).to_string()),
        ("POST", "/api/0.6/user", json!({"name": "", "role": "user", "password": "x"}).to_string()),
        ("POST", "/api/0.6/user", r#"{"name": "carl", "role": "admin", "role": "user", "password": "x"}"#.into()),
        // Several mistakes: the first field of the body's order is answered.
        ("POST", "/api/0.6/user", json!({"name": "carl", "role": 5, "password": 5}).to_string()),
        ("POST", "/api/0.6/user", json!({"name": "carl", "password": 5}).to_string()),
        ("POST", "/api/0.6/user", json!({"name": 5, "role": "root"}).to_string()),
        ("PUT", "/api/0.6/user/bob", "{}".into()),
        ("PUT", "/api/0.6/user/bob", "[]".into()),
        ("PUT", "/api/0.6/user/bob", json!({"name": "x"}).to_string()),
        ("PUT", "/api/0.6/user/bob", json!({"role": "user", "extra": 1}).to_string()),
        ("PUT", "/api/0.6/user/bob", json!({"role": "king"}).to_string()),
        ("PUT", "/api/0.6/user/bob", json!({"role": ["user"]}).to_string()),
        ("PUT", "/api/0.6/user/bob", json!({"password": ""}).to_string()),
        ("PUT", "/api/0.6/user/bob", json!({"password": false}).to_string()),
        ("PUT", "/api/0.6/user/bob", json!({"role": null, "password": null}).to_string()),
        ("PUT", "/api/0.6/user/bob", r#"{"password": "a", "password": "b"}"#.into()),
        ("POST", "/api/0.6/execution", "{}".into()),
        ("POST", "/api/0.6/execution", "7".into()),
        ("POST", "/api/0.6/execution", json!({"application": good_app}).to_string()),
        ("POST", "/api/0.6/execution", json!({"name": 1, "application": good_app}).to_string()),
        ("POST", "/api/0.6/execution", json!({"name": "x"}).to_string()),
        ("POST", "/api/0.6/execution", json!({"name": "x", "application": null}).to_string()),
        ("POST", "/api/0.6/execution", json!({"name": "x", "application": 3}).to_string()),
        ("POST", "/api/0.6/execution", json!({"name": "x", "application": bad_app}).to_string()),
        ("POST", "/api/0.6/execution", json!({"name": "x", "application": typo_app}).to_string()),
        ("POST", "/api/0.6/execution", json!({"name": "Bad_Name", "application": good_app}).to_string()),
        ("POST", "/api/0.6/execution", json!({"name": "x".repeat(70), "application": good_app}).to_string()),
        ("POST", "/api/0.6/execution", r#"{"name": "x", "application": {"name": "a", "name": "b"}}"#.into()),
        ("POST", "/api/0.6/query", "{}".into()),
        ("POST", "/api/0.6/query", json!({"what": 1}).to_string()),
        ("POST", "/api/0.6/query", json!({"what": null}).to_string()),
        ("POST", "/api/0.6/query", json!({"what": "nothing"}).to_string()),
        ("POST", "/api/0.6/query", json!({"what": "execution", "filters": 1}).to_string()),
        ("POST", "/api/0.6/query", json!({"what": "execution", "filters": []}).to_string()),
        ("POST", "/api/0.6/query", json!({"what": "execution", "filters": {"nope": 1}}).to_string()),
        ("POST", "/api/0.6/query", r#"{"what": "execution", "what": "user"}"#.into()),
        ("POST", "/api/0.6/query", json!({"what": 1, "filters": 1}).to_string()),
        ("PUT", "/api/0.6/user/bob", json!({"role": 1, "password": 1}).to_string()),
        ("POST", "/api/0.6/execution", json!({"name": 1}).to_string()),
    ];
    let mut out = Vec::new();
    for (method, path, body) in cases {
        let (status, v) = m.call(method, path, Some(ADMIN), Some(&body));
        let shown = if body.len() > 120 { format!("{}... ({} bytes)", &body[..100], body.len()) } else { body };
        out.push(format!("{method} {path} {shown}\n    => {status} {} | {}", v["code"], v["message"]));
    }
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots"));
    settings.bind(|| insta::assert_snapshot!(out.join("\n")));
}
