//! Every API endpoint by every kind of caller: what each may do, and that refusals never leak
//! whether someone else's object exists. Passwords and hashes never appear in any response.
//!
//! The attacks of hostile tenants are in `tenants` (against the host and the engine),
//! `requests` (against the HTTP side), `edges` (ambiguous documents, terminal spoofing, content
//! sniffing) and `origins` (their pages, in a browser, against Zoe and their neighbours).

mod edges;
mod origins;
mod requests;
mod tenants;

use serde_json::{json, Value};

use crate::common::{app, temp_dir, Master, ADMIN};

const OWNER: (&str, &str) = ("owner", "pw-owner");
const OTHER: (&str, &str) = ("other", "pw-other");
const GUEST: (&str, &str) = ("guest", "pw-guest");
const WRONG: (&str, &str) = ("owner", "not-the-password");

#[test]
fn every_endpoint_by_every_role() {
    let m = Master::start_in(&temp_dir("security"), &["--no-docker", "--login-failures-max", "1000"]);
    m.create_user("owner", "user", OWNER.1);
    m.create_user("other", "user", OTHER.1);
    m.create_user("guest", "guest", GUEST.1);
    let exec = m.submit(OWNER, "mine", &app("img", None));
    let callers: [(&str, Option<(&str, &str)>); 6] = [
        ("admin", Some(ADMIN)),
        ("owner", Some(OWNER)),
        ("other", Some(OTHER)),
        ("guest", Some(GUEST)),
        ("wrong", Some(WRONG)),
        ("none", None),
    ];
    let new_exec = |n: &str| json!({"name": n, "application": app("img", None)}).to_string();
    // (method, path, body, expected status for admin, owner, other, guest, wrong password, none)
    let table: Vec<(&str, String, Option<String>, [u16; 6])> = vec![
        ("GET", "/api/0.6/info".into(), None, [200, 200, 200, 200, 401, 401]),
        ("GET", "/api/0.6/user/owner".into(), None, [200, 200, 404, 404, 401, 401]),
        ("GET", "/api/0.6/user/nobody".into(), None, [404, 404, 404, 404, 401, 401]),
        (
            "PUT",
            "/api/0.6/user/owner".into(),
            Some(json!({"password": OWNER.1}).to_string()),
            [200, 200, 404, 404, 401, 401],
        ),
        (
            "PUT",
            "/api/0.6/user/owner".into(),
            Some(json!({"role": "admin"}).to_string()),
            [200, 403, 404, 404, 401, 401],
        ),
        (
            "POST",
            "/api/0.6/user".into(),
            Some(json!({"name": "x", "role": "user", "password": "p"}).to_string()),
            [201, 403, 403, 403, 401, 401],
        ),
        ("GET", "/api/0.6/execution".into(), None, [200, 200, 200, 200, 401, 401]),
        ("GET", format!("/api/0.6/execution/{exec}"), None, [200, 200, 404, 404, 401, 401]),
        ("GET", "/api/0.6/execution/999999".into(), None, [404, 404, 404, 404, 401, 401]),
        ("DELETE", format!("/api/0.6/execution/{exec}"), None, [204, 204, 404, 404, 401, 401]),
        ("GET", "/api/0.6/service/999999".into(), None, [404, 404, 404, 404, 401, 401]),
        ("GET", "/api/0.6/service/999999/logs".into(), None, [404, 404, 404, 404, 401, 401]),
        ("POST", "/api/0.6/query".into(), Some(json!({"what": "user"}).to_string()), [200, 200, 200, 200, 401, 401]),
        ("DELETE", "/api/0.6/user/other".into(), None, [204, 404, 204, 404, 401, 401]),
    ];
    let mut failures = Vec::new();
    for (method, path, body, expected) in &table {
        for ((who, auth), want) in callers.iter().zip(expected) {
            // State-changing rows run on fresh objects for each caller.
            let path = path.clone();
            if method == &"DELETE" && path.starts_with("/api/0.6/user/") {
                m.call(
                    "POST",
                    "/api/0.6/user",
                    Some(ADMIN),
                    Some(&json!({"name": "other", "role": "user", "password": OTHER.1}).to_string()),
                );
            }
            let body = if method == &"POST" && path.ends_with("/user") {
                let _ = m.call("DELETE", "/api/0.6/user/x", Some(ADMIN), None);
                body.clone()
            } else {
                body.clone()
            };
            let (status, headers, v) = m.call_full(method, &path, *auth, body.as_deref());
            if status != *want {
                failures.push(format!("{method} {path} as {who}: {status}, expected {want}: {v}"));
            }
            if status == 401 && !headers.iter().any(|(k, _)| k == "www-authenticate") {
                failures.push(format!("{method} {path} as {who}: 401 without WWW-Authenticate"));
            }
            if body.as_deref().is_some_and(|b| b.contains("\"role\":\"admin\"")) && status == 200 {
                // Undo a promotion, so that the next caller meets the same world.
                m.call("PUT", "/api/0.6/user/owner", Some(ADMIN), Some(&json!({"role": "user"}).to_string()));
            }
            let text = v.to_string();
            if text.contains("argon2") || text.contains("pw-") {
                failures.push(format!("{method} {path} as {who}: a password or hash in the response"));
            }
        }
    }
    // Submitting: everyone authenticated may; the guest only once.
    for ((who, auth), want) in callers.iter().zip([201, 201, 201, 201, 401, 401]) {
        let (status, _, v) = m.call_full("POST", "/api/0.6/execution", *auth, Some(&new_exec(&format!("sub-{who}"))));
        if status != want {
            failures.push(format!("POST /execution as {who}: {status}, expected {want}: {v}"));
        }
    }
    assert_eq!(m.call("POST", "/api/0.6/execution", Some(GUEST), Some(&new_exec("again"))).0, 402);
    // The executions list and queries only show one's own.
    let (_, list) = m.get("/api/0.6/execution", OTHER);
    assert!(list.as_array().unwrap().iter().all(|e| e["owner"] == "other"), "{list}");
    let (_, users) = m.post("/api/0.6/query", GUEST, &json!({"what": "user"}));
    assert_eq!(users.as_array().unwrap().iter().map(|u| u["name"].clone()).collect::<Vec<Value>>(), [json!("guest")]);
    let (_, execs) = m.post("/api/0.6/query", GUEST, &json!({"what": "execution", "filters": {"owner": "owner"}}));
    assert_eq!(execs, json!([]), "filters cannot widen what one sees");
    assert!(failures.is_empty(), "{} refusals wrong:\n{}", failures.len(), failures.join("\n"));
    // The log of the master holds no passwords either.
    let log = m.log_text();
    assert!(!log.contains("pw-owner") && !log.contains("admin-secret"), "{log}");
}

#[test]
fn hostile_descriptions_cannot_reach_the_host_or_other_users() {
    let m = Master::start_in(&temp_dir("hostile"), &["--no-docker"]);
    m.create_user("owner", "user", OWNER.1);
    let base = app("img", None);
    let with = |path: &[&str], v: Value| {
        let mut a = base.clone();
        let mut cur = &mut a;
        for k in &path[..path.len() - 1] {
            cur = match k.parse::<usize>() {
                Ok(i) => &mut cur[i],
                Err(_) => &mut cur[*k],
            };
        }
        cur[path[path.len() - 1]] = v;
        m.post("/api/0.6/execution", OWNER, &json!({"name": "h", "application": a}))
    };
    let cases = [
        (with(&["services", "0", "volumes"], json!([["/", "/host", false]])), "volumes_not_allowed"),
        (with(&["services", "0", "networks"], json!(["other-test"])), "networks_not_allowed"),
        (with(&["services", "0", "privileged"], json!(true)), "unknown_field"),
        (with(&["services", "0", "name"], json!("a;rm -rf /")), "invalid_name"),
        (with(&["services", "0", "name"], json!("../../etc")), "invalid_name"),
        (with(&["services", "0", "docker_image"], json!("img --privileged")), "invalid_name"),
        (with(&["services", "0", "environment"], json!([["LD_PRELOAD=x", "y"]])), "invalid_name"),
        (with(&["services", "0", "total_count"], json!(100000)), "out_of_range"),
        (with(&["services", "0", "required_resources", "memory"], json!(1u64 << 50)), "out_of_range"),
        (with(&["services", "0", "command"], json!("echo {user_name.__class__}")), "unknown_template_variable"),
    ];
    for ((status, v), code) in cases {
        assert_eq!((status, v["code"].as_str()), (400, Some(code)), "{v}");
    }
    // Execution names that would inject into Docker names, labels or paths.
    for name in ["a/b", "a b", "a\nb", "-a", "A", "a.b", "a_b", "", "ä"] {
        let (s, v) = m.post("/api/0.6/execution", OWNER, &json!({"name": name, "application": base}));
        assert_eq!((s, v["code"].as_str()), (400, Some("invalid_name")), "{name:?}: {v}");
    }
    let (_, list) = m.get("/api/0.6/execution", OWNER);
    assert_eq!(list, json!([]), "nothing was stored");
}
