//! The edges a hostile user tries once the core holds: documents that mean two things (a key
//! given twice, a parameter given twice, floods of parameters), text that would drive the
//! terminal of whoever reads it back (escape sequences, carriage returns), and responses a
//! browser could take for another type than they say (`nosniff` on every response).

use serde_json::{json, Value};

use crate::common::{app, temp_dir, unfollowing_agent, Master, ADMIN};

const ALICE: (&str, &str) = ("alice", "pa");

/// A tenant's command that would set the admin's terminal title, move the cursor up, erase the
/// line and write a line of its own.
const SPOOF: &str = "\u{1b}]0;PWNED\u{7}\u{1b}[1A\u{1b}[2K\rzoe: all good";

/// One request with exactly these headers and body: status, response headers, body as JSON.
fn send(
    m: &Master,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, Value) {
    use base64::Engine;
    let mut req = ureq::http::Request::builder().method(method).uri(format!("{}{path}", m.url));
    if let Some((u, p)) = auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        req = req.header("Authorization", format!("Basic {token}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    // Redirects are answers too: not followed.
    let agent = unfollowing_agent(std::time::Duration::from_secs(30));
    let mut resp = agent.run(req.body(body.as_bytes().to_vec()).unwrap()).unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A JSON body sent as it is written (a `Value` cannot hold a key twice).
fn post_raw(m: &Master, path: &str, auth: (&str, &str), body: &str) -> (u16, Value) {
    let (s, _, v) = send(m, "POST", path, Some(auth), &[("Content-Type", "application/json")], body);
    (s, v)
}

#[track_caller]
fn refused(resp: &(u16, Value), status: u16, code: &str, message_starts: &str) {
    assert_eq!((resp.0, resp.1["code"].as_str()), (status, Some(code)), "{resp:?}");
    let message = resp.1["message"].as_str().unwrap_or_default();
    assert!(message.starts_with(message_starts), "{message_starts:?} in {message:?}");
}

#[test]
fn a_key_given_twice_anywhere_in_a_body_is_refused_with_its_path() {
    let m = Master::start_in(&temp_dir("dupkeys"), &["--no-docker"]);
    m.create_user("alice", "user", ALICE.1);
    // An administrator whom a reviewer reading the first value would see, a user for serde.
    let body = r#"{"name": "mallory", "role": "admin", "role": "user", "password": "pm"}"#;
    refused(&post_raw(&m, "/api/0.6/user", ADMIN, body), 400, "duplicate_key", "role: this key appears more than once");
    assert_eq!(m.get("/api/0.6/user/mallory", ADMIN).0, 404, "nothing was created");
    let body = r#"{"password": "a", "password": "b"}"#;
    let (s, _, v) = send(&m, "PUT", "/api/0.6/user/alice", Some(ALICE), &[("Content-Type", "application/json")], body);
    refused(&(s, v), 400, "duplicate_key", "password: ");
    assert_eq!(m.get("/api/0.6/info", ALICE).0, 200, "the password did not change");

    // An image of a registry that is not allowed, then an allowed one: not read as either.
    let description = app("busybox:latest", None).to_string();
    let twice = description.replace(
        r#""docker_image":"busybox:latest""#,
        r#""docker_image":"evil.example:5000/probe","docker_image":"busybox:latest""#,
    );
    assert_ne!(twice, description);
    let body = format!(r#"{{"name": "e1", "application": {twice}}}"#);
    refused(
        &post_raw(&m, "/api/0.6/execution", ALICE, &body),
        400,
        "duplicate_key",
        "application.services[0].docker_image: this key appears more than once",
    );
    // The same in a map of query filters, and at the top.
    let body = r#"{"what": "execution", "filters": {"name": "a", "name": "b"}}"#;
    refused(&post_raw(&m, "/api/0.6/query", ALICE, body), 400, "duplicate_key", "filters.name: ");
    let body = r#"{"what": "user", "what": "execution"}"#;
    refused(&post_raw(&m, "/api/0.6/query", ALICE, body), 400, "duplicate_key", "what: ");
    // An environment variable set twice (a list of pairs, where the last would win in Docker).
    let mut doubled = app("busybox:latest", None);
    doubled["services"][0]["environment"] = json!([["MODE", "safe"], ["MODE", "unsafe"]]);
    let resp = m.post("/api/0.6/execution", ALICE, &json!({"name": "e2", "application": doubled}));
    refused(&resp, 400, "duplicate_key", "application.services[0].environment[1][0]: environment variable MODE");
    // The same keys in different objects are fine; nothing refused was queued.
    let ok = json!({"name": "e3", "application": app("busybox:latest", None)});
    assert_eq!(m.post("/api/0.6/execution", ALICE, &ok).0, 201);
    let (s, list) = m.get("/api/0.6/execution", ALICE);
    assert_eq!((s, list.as_array().map(Vec::len)), (200, Some(1)), "{list}");
    // Deep nesting is still refused by the parser's own limit.
    let deep = format!("{{\"what\": {}{}}}", "[".repeat(200), "]".repeat(200));
    assert_eq!(post_raw(&m, "/api/0.6/query", ALICE, &deep).1["code"], "invalid_json");
}

#[test]
fn a_single_value_parameter_given_twice_or_a_flood_of_parameters_is_refused() {
    let m = Master::start_in(&temp_dir("dupparams"), &["--no-docker"]);
    m.create_user("alice", "user", ALICE.1);
    let get = |path: &str| m.get(path, ALICE);
    refused(&get("/api/0.6/execution?limit=1&limit=5"), 400, "invalid_filters", "limit is given more than once");
    refused(&get("/api/0.6/execution?owner=alice&name=x&owner=bob"), 400, "invalid_filters", "owner is given");
    assert_eq!(get("/api/0.6/execution?status=running&status=scheduled&limit=3").0, 200, "status may repeat");
    let flood = |n: usize| format!("/api/0.6/execution?{}", vec!["status=running"; n].join("&"));
    assert_eq!(get(&flood(32)).0, 200);
    refused(&get(&flood(33)), 400, "invalid_filters", "the query has 33 parameters; at most 32");
    refused(&get(&flood(3000)), 400, "invalid_filters", "the query has 3000 parameters");
    refused(&get("/api/0.6/service/1/logs?tail=1&tail=500"), 400, "invalid_filters", "tail is given more than once");
    refused(&get("/api/0.6/service/1/logs?follow=false&follow=true"), 400, "invalid_filters", "follow is given");
}

#[test]
fn control_characters_are_refused_in_commands_and_environment_values() {
    let m = Master::start_in(&temp_dir("controls"), &["--no-docker"]);
    m.create_user("alice", "user", ALICE.1);
    let submit = |name: &str, command: &str, env: Value| {
        let mut a = app("busybox:latest", Some(command));
        a["services"][0]["environment"] = env;
        m.post("/api/0.6/execution", ALICE, &json!({"name": name, "application": a}))
    };
    refused(
        &submit("spoof", SPOOF, json!([])),
        400,
        "control_character",
        "application.services[0].command: must not contain control characters other than tab and newline; \
         character 1 is U+001B",
    );
    refused(
        &submit("cr", "true", json!([["A", "ok\roverwritten"]])),
        400,
        "control_character",
        "application.services[0].environment[0][1]: ",
    );
    // Tabs and newlines are text.
    assert_eq!(submit("script", "sh -c 'echo one\n\techo two'", json!([["A", "two\nlines"]])).0, 201);
    let (_, list) = m.get("/api/0.6/execution", ALICE);
    let names: Vec<&str> = list.as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["script"]);
    // A C1 control (an 8-bit CSI, which some terminals obey) is one too.
    let refusal = m.post(
        "/api/0.6/execution",
        ALICE,
        &json!({"name": "spoof2", "application": app("busybox:latest", Some("echo \u{9b}2J"))}),
    );
    refused(&refusal, 400, "control_character", "application.services[0].command: ");
}

/// A request and the status it should get: method, path, credentials, headers, body, status.
type Case<'a> = (&'a str, String, Option<(&'a str, &'a str)>, Vec<(&'a str, &'a str)>, String, u16);

#[test]
fn every_response_says_nosniff_errors_included() {
    let m = Master::start_in(&temp_dir("nosniff"), &["--no-docker", "--max-body-bytes", "4096"]);
    m.create_user("alice", "user", ALICE.1);
    let id = m.submit(ALICE, "mine", &app("busybox:latest", None));
    let json = ("Content-Type", "application/json");
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let exec = format!("/api/0.6/execution/{id}");
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(5000));
    let cases: Vec<Case> = vec![
        ("GET", "/healthz".into(), None, vec![], String::new(), 200),
        ("GET", "/readyz".into(), None, vec![], String::new(), 200),
        ("GET", "/metrics".into(), None, vec![], String::new(), 200),
        ("GET", "/api/0.6/openapi.json".into(), None, vec![], String::new(), 200),
        ("GET", "/api/0.6/info".into(), Some(ALICE), vec![], String::new(), 200),
        ("GET", "/api/0.6/info".into(), None, vec![], String::new(), 401),
        ("GET", "/api/0.6/info".into(), Some(("alice", "wrong")), vec![], String::new(), 401),
        ("GET", "/api/0.6/execution".into(), Some(ALICE), vec![], String::new(), 200),
        ("GET", exec.clone(), Some(ALICE), vec![], String::new(), 200),
        ("GET", "/api/0.6/execution/99999".into(), Some(ALICE), vec![], String::new(), 404),
        ("GET", "/api/0.6/execution?limit=0".into(), Some(ALICE), vec![], String::new(), 400),
        ("GET", "/api/0.6/user/alice".into(), Some(ALICE), vec![], String::new(), 200),
        ("GET", "/api/0.6/service/1/logs".into(), Some(ALICE), vec![], String::new(), 404),
        ("PATCH", exec.clone(), Some(ALICE), vec![], String::new(), 405),
        ("GET", "/api/0.6/nowhere".into(), Some(ALICE), vec![], String::new(), 404),
        ("POST", "/api/0.6/query".into(), Some(ALICE), vec![json], r#"{"what": "user"}"#.into(), 200),
        ("POST", "/api/0.6/query".into(), Some(ALICE), vec![json], "{".into(), 400),
        ("POST", "/api/0.6/query".into(), Some(ALICE), vec![("Content-Type", "text/plain")], "{}".into(), 415),
        (
            "POST",
            "/api/0.6/query".into(),
            Some(ALICE),
            vec![json, ("Origin", "https://evil.example")],
            "{}".into(),
            403,
        ),
        ("POST", "/api/0.6/query".into(), Some(ALICE), vec![json], big, 413),
        ("GET", "/".into(), Some(ALICE), vec![], String::new(), 303),
        ("GET", "/executions".into(), Some(ALICE), vec![], String::new(), 200),
        ("GET", format!("/executions/{id}"), Some(ALICE), vec![], String::new(), 200),
        ("GET", "/executions".into(), None, vec![], String::new(), 303),
        ("GET", "/executions".into(), Some(("alice", "wrong")), vec![], String::new(), 401),
        ("GET", "/login".into(), None, vec![], String::new(), 200),
        ("POST", "/login".into(), None, vec![form], "username=alice&password=wrong".into(), 401),
        ("POST", "/login".into(), None, vec![form, ("Origin", "https://evil.example")], String::new(), 403),
        ("POST", "/login".into(), None, vec![form], format!("username=alice&password={}", ALICE.1), 303),
        ("GET", format!("/proxy/{id}/main/80/"), Some(ALICE), vec![], String::new(), 404),
        ("GET", "/proxy/99999/main/80/".into(), Some(ALICE), vec![], String::new(), 404),
    ];
    for (method, path, auth, headers, body, want) in &cases {
        let (s, h, v) = send(&m, method, path, *auth, headers, body);
        assert_eq!(s, *want, "{method} {path}: {v}");
        let nosniff: Vec<&str> =
            h.iter().filter(|(k, _)| k == "x-content-type-options").map(|(_, v)| v.as_str()).collect();
        assert_eq!(nosniff, ["nosniff"], "{method} {path} ({s}): {h:?}");
    }
}
