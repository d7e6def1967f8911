//! The web interface through real HTTP on the real master: pages for each role, refusals as HTML
//! pages (401 with a browser prompt, 404 for what one may not see), CSRF and origin checks on
//! every form, validation errors next to their field, the admin forms; then a real browser
//! (headless Chromium through WebDriver) running an execution on the real Docker Engine and
//! saving screenshots of the main pages in `target/web-screenshots/`.
//!
//! The browser test needs Debian's `chromium` and `chromium-driver`, Docker and the image
//! `zoe-test-busybox:latest` (`tests/run.sh` prepares all three); it fails loudly without them.

#![allow(clippy::unwrap_used)] // a test fails by panicking, with the value in the message

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::browser::{screenshot_dir, start_driver, Browser};
use crate::common::docker::docker_deployment;
use crate::common::{app, headers_of, request_builder, temp_dir, unfollowing_agent, wait_until, Master, ADMIN};

const NO_DOCKER: &[&str] = &["--no-docker"];
pub(crate) const ALICE: (&str, &str) = ("alice", "alice-pw");
pub(crate) const BOB: (&str, &str) = ("bob", "bob-pw");

// ------------------------------------------------------------------------------------ helpers

/// A web page as the server sent it.
pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The anti-CSRF token of the page's forms.
    pub(crate) fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).unwrap_or_else(|| panic!("no CSRF token in the page:\n{}", self.body))
            + marker.len();
        self.body[start..].split('"').next().unwrap().to_string()
    }

    #[track_caller]
    pub(crate) fn assert_contains(&self, text: &str) {
        assert!(self.body.contains(text), "expected {text:?} in the page (HTTP {}):\n{}", self.status, self.body);
    }

    #[track_caller]
    pub(crate) fn assert_lacks(&self, text: &str) {
        assert!(!self.body.contains(text), "did not expect {text:?} in the page:\n{}", self.body);
    }
}

fn form_encode(fields: &[(&str, &str)]) -> String {
    let enc = zoe::percent::encode;
    fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// Sends a request without following redirects.
pub(crate) fn request(
    m: &Master,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
    form: Option<&[(&str, &str)]>,
    headers: &[(&str, &str)],
) -> Page {
    let agent = unfollowing_agent(Duration::from_secs(60));
    let url = format!("{}{path}", m.url);
    let mut req = request_builder(method, &url, auth);
    if form.is_some() {
        req = req.header("Content-Type", "application/x-www-form-urlencoded");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = form.map(form_encode).unwrap_or_default();
    let req = req.body(body.into_bytes()).unwrap();
    let mut resp = agent.run(req).unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = headers_of(&resp);
    let body = resp.body_mut().with_config().limit(16 << 20).read_to_string().unwrap_or_default();
    Page { status, headers, body }
}

pub(crate) fn get(m: &Master, path: &str, auth: (&str, &str)) -> Page {
    request(m, "GET", path, Some(auth), None, &[])
}

/// A page that must be served (200).
#[track_caller]
fn get_ok(m: &Master, path: &str, auth: (&str, &str)) -> Page {
    let page = get(m, path, auth);
    assert_eq!(page.status, 200, "GET {path}:\n{}", page.body);
    page
}

fn post(m: &Master, path: &str, auth: (&str, &str), form: &[(&str, &str)]) -> Page {
    request(m, "POST", path, Some(auth), Some(form), &[])
}

#[track_caller]
pub(crate) fn assert_redirect(p: &Page, to: &str) {
    assert_eq!(p.status, 303, "expected a 303 to {to}, got {}:\n{}", p.status, p.body);
    assert_eq!(p.header("location"), Some(to));
}

/// A master without Docker, with alice (user) and bob (guest).
pub(crate) fn master(tag: &str) -> Master {
    let m = Master::start_in(&temp_dir(tag), NO_DOCKER);
    m.create_user(ALICE.0, "user", ALICE.1);
    m.create_user(BOB.0, "guest", BOB.1);
    m
}

fn execution(m: &Master, id: u64) -> Value {
    let (s, e) = m.get(&format!("/api/0.6/execution/{id}"), ADMIN);
    assert_eq!(s, 200, "{e}");
    e
}

fn execution_count(m: &Master) -> usize {
    m.get("/api/0.6/execution", ADMIN).1.as_array().unwrap().len()
}

// ------------------------------------------------------------------------- plain HTTP tests

#[test]
fn pages_need_credentials_and_answer_html_with_the_version() {
    let m = master("web-auth");
    let home = request(&m, "GET", "/", None, None, &[]);
    assert_redirect(&home, "/executions");

    // Without credentials, a page is a detour by the sign-in page, which comes back to it.
    for (path, next) in [
        ("/executions", "/executions"),
        ("/executions/new?app=batch", "/executions/new%3Fapp%3Dbatch"),
        ("/admin/users", "/admin/users"),
        ("/executions/1", "/executions/1"),
    ] {
        let p = request(&m, "GET", path, None, None, &[]);
        assert_redirect(&p, &format!("/login?next={next}"));
        assert!(p.header("www-authenticate").is_none(), "{path}: no browser prompt");
    }
    // Wrong basic-auth credentials are refused as the API refuses them, with the prompt.
    let wrong = get(&m, "/executions", ("alice", "wrong"));
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.header("www-authenticate"), Some("Basic realm=\"zoe\""));
    assert!(wrong.header("content-type").unwrap_or("").starts_with("text/html"));
    wrong.assert_contains("Please sign in");
    wrong.assert_contains("href=\"/login\"");
    // A form without credentials cannot follow a detour: refused, with a way to sign in.
    let post = request(&m, "POST", "/executions/new", None, Some(&[("name", "x"), ("app", "batch")]), &[]);
    assert_eq!(post.status, 401);
    assert!(post.header("www-authenticate").is_none());
    post.assert_contains("href=\"/login\"");

    let p = get_ok(&m, "/executions", ALICE);
    assert!(p.header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(p.header("cache-control"), Some("no-store"));
    assert!(p.header("content-security-policy").unwrap().contains("frame-ancestors 'none'"));
    p.assert_contains("Your executions");
    p.assert_contains("No executions yet");
    p.assert_contains(&format!("Zoe {}", env!("CARGO_PKG_VERSION")));
    p.assert_contains("href=\"/executions/new\"");
    p.assert_lacks("/admin/users");

    let css = request(&m, "GET", "/static/zoe.css", None, None, &[]);
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    let js = request(&m, "GET", "/static/zoe.js", None, None, &[]);
    assert_eq!(js.status, 200);
    assert!(js.header("content-type").unwrap().starts_with("text/javascript"));

    let admin = get(&m, "/executions", ADMIN);
    admin.assert_contains("All executions");
    admin.assert_contains("href=\"/admin/users\"");
    admin.assert_contains("href=\"/admin/platform\"");
}

#[test]
fn users_see_their_own_executions_and_admins_see_all() {
    let m = master("web-scope");
    let mut evil = app("zoe-test-busybox:latest", Some("sleep 60"));
    evil["name"] = json!("<script>alert(1)</script>");
    let a = m.submit(ALICE, "alice-job", &evil);
    let a2 = m.submit(ALICE, "alice-two", &app("zoe-test-busybox:latest", None));
    let b = m.submit(BOB, "bob-job", &app("zoe-test-busybox:latest", None));

    let list = get_ok(&m, "/executions", ALICE);
    list.assert_contains("alice-job");
    list.assert_contains(&format!("href=\"/executions/{a}\""));
    list.assert_lacks("bob-job");
    list.assert_lacks("<th>Owner</th>");
    list.assert_lacks("<script>alert(1)</script>");
    list.assert_contains("&#60;script&#62;alert(1)&#60;/script&#62;");
    list.assert_contains("scheduled");
    list.assert_contains("in queue");
    list.assert_contains(&format!("action=\"/executions/{a}/terminate\""));
    // Waiting executions refresh the list by themselves.
    list.assert_contains("http-equiv=\"refresh\"");

    let all = get(&m, "/executions", ADMIN);
    all.assert_contains("<th>Owner</th>");
    all.assert_contains("alice-job");
    all.assert_contains("bob-job");

    let page = get_ok(&m, &format!("/executions/{a}"), ALICE);
    page.assert_contains("alice-job");
    page.assert_contains("Waiting in the queue");
    page.assert_contains("&#60;script&#62;");
    page.assert_lacks("<script>alert");
    page.assert_contains("<meta http-equiv=\"refresh\" content=\"2\">");
    page.assert_contains("No containers yet");
    let second = get(&m, &format!("/executions/{a2}"), ALICE);
    second.assert_contains("at position 2");

    // A guest looking at someone else's execution, or anything that does not exist: 404 pages.
    for (who, path) in [
        (BOB, format!("/executions/{a}")),
        (BOB, format!("/executions/{a}/services/{a}/log")),
        (ALICE, format!("/executions/{b}")),
        (ALICE, "/executions/999999".to_string()),
        (ALICE, "/executions/not-a-number".to_string()),
        (ALICE, format!("/executions/{a}/services/999999/log")),
    ] {
        let p = get(&m, &path, who);
        assert_eq!(p.status, 404, "{} {path}: {}", who.0, p.body);
        assert!(p.header("content-type").unwrap().starts_with("text/html"));
        p.assert_contains("Not found");
        p.assert_lacks("alice-job");
    }
    let bobs = get(&m, "/executions", BOB);
    bobs.assert_contains("bob-job");
    bobs.assert_lacks("alice-job");
}

#[test]
fn admin_pages_are_for_admins_only() {
    let m = master("web-admin-only");
    let id = m.submit(ALICE, "waiting", &app("zoe-test-busybox:latest", None));
    for who in [ALICE, BOB] {
        for path in ["/admin/users", "/admin/platform"] {
            let p = get(&m, path, who);
            assert_eq!(p.status, 404, "{} {path}", who.0);
            p.assert_contains("Not found");
        }
        let token = get(&m, "/executions/new", who).csrf();
        let p = post(
            &m,
            "/admin/users",
            who,
            &[("csrf", &token), ("name", "mallory"), ("role", "admin"), ("password", "x")],
        );
        assert_eq!(p.status, 404);
        let p = post(&m, "/admin/users/zoeadmin/role", who, &[("csrf", &token), ("role", "guest")]);
        assert_eq!(p.status, 404);
        let p = post(&m, "/admin/users/alice/delete", who, &[("csrf", &token)]);
        assert_eq!(p.status, 404);
    }
    assert_eq!(m.get("/api/0.6/user/mallory", ADMIN).0, 404);
    assert_eq!(m.get("/api/0.6/user/zoeadmin", ADMIN).1["role"], "admin");
    assert_eq!(m.get("/api/0.6/user/alice", ADMIN).0, 200);

    let platform = get_ok(&m, "/admin/platform", ADMIN);
    platform.assert_contains("Docker engine");
    platform.assert_contains("unreachable");
    platform.assert_contains("Memory reserved");
    platform.assert_contains("Queue");
    platform.assert_contains(&format!("href=\"/executions/{id}\">waiting</a>"));
    platform.assert_contains("1 waiting");
}

#[test]
fn every_post_needs_the_users_token_and_this_sites_origin() {
    let m = master("web-csrf");
    let token = get(&m, "/executions/new", ALICE).csrf();
    let bob_token = get(&m, "/executions/new", BOB).csrf();
    assert_ne!(token, bob_token);
    assert_eq!(token, get(&m, "/executions/new?app=batch", ALICE).csrf(), "one token per user");

    let send = |token: Option<&str>, headers: &[(&str, &str)]| {
        let mut fields = vec![("name", "csrf-test"), ("app", "batch")];
        if let Some(t) = token {
            fields.push(("csrf", t));
        }
        request(&m, "POST", "/executions/new", Some(ALICE), Some(&fields), headers)
    };
    let host = m.url.trim_start_matches("http://").to_string();
    // (what is wrong, the token sent, extra headers)
    type Case<'a> = (&'a str, Option<&'a str>, &'a [(&'a str, &'a str)]);
    let cases: [Case; 7] = [
        ("no token", None, &[]),
        ("a wrong token", Some("0123456789abcdef"), &[]),
        ("an empty token", Some(""), &[]),
        ("another user's token", Some(&bob_token), &[]),
        ("a foreign origin", Some(&token), &[("Origin", "http://evil.example")]),
        ("a null origin", Some(&token), &[("Origin", "null")]),
        ("a cross-site fetch", Some(&token), &[("Sec-Fetch-Site", "cross-site")]),
    ];
    for (what, token, headers) in cases {
        let p = send(token, headers);
        assert_eq!(p.status, 403, "a POST with {what} must be refused: {}", p.body);
        p.assert_contains("Request refused");
        assert_eq!(execution_count(&m), 0, "a POST with {what} changed something");
    }
    let origin = format!("http://{host}");
    let ok = send(Some(&token), &[("Origin", origin.as_str()), ("Sec-Fetch-Site", "same-origin")]);
    assert_eq!(ok.status, 303, "{}", ok.body);
    let location = ok.header("location").unwrap().to_string();
    let id: u64 = location.trim_start_matches("/executions/").parse().unwrap();
    let e = execution(&m, id);
    assert_eq!(e["name"], "csrf-test");
    assert_eq!(e["owner"], "alice");
    assert_eq!(e["application"]["name"], "batch");

    // Terminate and restart are checked the same way.
    let terminate = format!("/executions/{id}/terminate");
    assert_eq!(post(&m, &terminate, ALICE, &[]).status, 403);
    assert_eq!(post(&m, &terminate, ALICE, &[("csrf", &bob_token)]).status, 403);
    assert_eq!(post(&m, &terminate, BOB, &[("csrf", &bob_token)]).status, 404, "not bob's execution");
    assert_eq!(execution(&m, id)["status"], "scheduled");
    let done = post(&m, &terminate, ALICE, &[("csrf", &token), ("next", "/executions")]);
    assert_redirect(&done, "/executions");
    assert_eq!(execution(&m, id)["status"], "terminated");
    // `next` only leads to this interface.
    let again = post(&m, &terminate, ALICE, &[("csrf", &token), ("next", "https://evil.example/")]);
    assert_redirect(&again, &terminate.replace("/terminate", ""));

    let restart = format!("/executions/{id}/restart");
    assert_eq!(post(&m, &restart, ALICE, &[("csrf", "nope")]).status, 403);
    assert_eq!(execution_count(&m), 1);
    let restarted = post(&m, &restart, ALICE, &[("csrf", &token)]);
    assert_eq!(restarted.status, 303, "{}", restarted.body);
    let new_id: u64 = restarted.header("location").unwrap().trim_start_matches("/executions/").parse().unwrap();
    assert_ne!(new_id, id);
    let e = execution(&m, new_id);
    assert_eq!(e["name"], "csrf-test");
    assert_eq!(e["status"], "scheduled");
    assert_eq!(e["application"], execution(&m, id)["application"]);
    // The old one is kept; restarting it while the new one is active is a clear refusal.
    let conflict = post(&m, &restart, ALICE, &[("csrf", &token)]);
    assert_eq!(conflict.status, 409, "{}", conflict.body);
    conflict.assert_contains("already active");
    assert_eq!(execution_count(&m), 2);
}

#[test]
fn a_pasted_description_with_a_key_twice_or_an_escape_sequence_is_refused_next_to_it() {
    let m = master("web-edges");
    let token = get(&m, "/executions/new", ALICE).csrf();
    let text = app("zoe-test-busybox:latest", None)
        .to_string()
        .replace(r#""monitor":true"#, r#""monitor":false,"monitor":true"#);
    let p = post(&m, "/executions/new", ALICE, &[("csrf", &token), ("name", "twice"), ("description", &text)]);
    assert_eq!(p.status, 400, "{}", p.body);
    p.assert_contains(
        "id=\"description-error\"><code>application.services[0].monitor</code> this key appears more than once",
    );
    let spoof = app("zoe-test-busybox:latest", Some("echo \u{1b}]0;PWNED\u{7}")).to_string();
    let p = post(&m, "/executions/new", ALICE, &[("csrf", &token), ("name", "spoof"), ("description", &spoof)]);
    assert_eq!(p.status, 400, "{}", p.body);
    p.assert_contains("<code>application.services[0].command</code> must not contain control characters");
    assert_eq!(m.get("/api/0.6/execution", ALICE).1, json!([]));
}

#[test]
fn the_new_execution_form_shows_errors_next_to_their_field_and_keeps_the_input() {
    let m = master("web-form");
    let token = get(&m, "/executions/new", ALICE).csrf();

    let form = get(&m, "/executions/new", ALICE);
    form.assert_contains("Web server");
    form.assert_contains("Sleeper");
    form.assert_contains("Batch job");
    form.assert_contains("<textarea id=\"description\" name=\"description\"");

    let prefilled = get(&m, "/executions/new?app=sleeper", ALICE);
    prefilled.assert_contains(" selected>Sleeper</option>");
    prefilled.assert_contains("zoe-test-busybox:latest");
    prefilled.assert_contains("id=\"name\" name=\"name\" value=\"sleeper\"");

    let mut bad = app("zoe-test-busybox:latest", None);
    bad["services"][0]["ports"] =
        json!([{"name": "p", "protocol": "http", "port_number": "80", "is_main_endpoint": true, "expose": true}]);
    let text = serde_json::to_string_pretty(&bad).unwrap();
    let p = post(&m, "/executions/new", ALICE, &[("csrf", &token), ("name", "kept-name"), ("description", &text)]);
    assert_eq!(p.status, 400, "{}", p.body);
    p.assert_contains("id=\"description-error\"><code>application.services[0].ports[0].port_number</code> must be an integer, got a string");
    p.assert_contains("value=\"kept-name\"");
    p.assert_contains("&#34;port_number&#34;: &#34;80&#34;");

    let p = post(&m, "/executions/new", ALICE, &[("csrf", &token), ("name", "x"), ("description", "{\"name\": ")]);
    assert_eq!(p.status, 400);
    p.assert_contains("<code>application</code> this is not valid JSON (line 1");

    let mut typo = app("zoe-test-busybox:latest", None);
    typo["services"][0]["monitr"] = json!(true);
    let p = post(&m, "/executions/new", ALICE, &[("csrf", &token), ("name", "x"), ("description", &typo.to_string())]);
    assert_eq!(p.status, 400);
    p.assert_contains("<code>application.services[0].monitr</code>");

    let p = post(&m, "/executions/new", ALICE, &[("csrf", &token), ("name", "Bad_Name"), ("app", "batch")]);
    assert_eq!(p.status, 400);
    p.assert_contains("id=\"name-error\"><code>name</code>");
    p.assert_contains("value=\"Bad_Name\"");
    // The catalogue entry that was used is shown in the box.
    p.assert_contains("step $i");

    let p = post(&m, "/executions/new", ALICE, &[("csrf", &token), ("name", "empty")]);
    assert_eq!(p.status, 400);
    p.assert_contains("pick one from the catalogue");
    assert_eq!(execution_count(&m), 0);

    let ok = post(&m, "/executions/new", ALICE, &[("csrf", &token), ("name", "first"), ("app", "sleeper")]);
    assert_eq!(ok.status, 303, "{}", ok.body);
    let in_use = post(&m, "/executions/new", ALICE, &[("csrf", &token), ("name", "first"), ("app", "sleeper")]);
    assert_eq!(in_use.status, 409);
    in_use.assert_contains("id=\"name-error\"");
    in_use.assert_contains("already active");

    // A guest's quota is a message above the form.
    let bob_token = get(&m, "/executions/new", BOB).csrf();
    assert_eq!(
        post(&m, "/executions/new", BOB, &[("csrf", &bob_token), ("name", "one"), ("app", "batch")]).status,
        303
    );
    let quota = post(&m, "/executions/new", BOB, &[("csrf", &bob_token), ("name", "two"), ("app", "batch")]);
    assert_eq!(quota.status, 402);
    quota.assert_contains("id=\"form-error\"");
    quota.assert_contains("Quota exceeded");
}

#[test]
fn admins_create_change_and_delete_users_through_forms() {
    let m = master("web-users");
    let page = get_ok(&m, "/admin/users", ADMIN);
    page.assert_contains("alice");
    page.assert_contains("bob");
    let token = page.csrf();

    let created = post(
        &m,
        "/admin/users",
        ADMIN,
        &[("csrf", &token), ("name", "carol"), ("role", "user"), ("password", "carol pw")],
    );
    assert_redirect(&created, "/admin/users?created=carol");
    let (s, u) = m.get("/api/0.6/user/carol", ADMIN);
    assert_eq!((s, u["role"].as_str()), (200, Some("user")));
    assert_eq!(get(&m, "/executions", ("carol", "carol pw")).status, 200, "the new user can sign in");
    get(&m, "/admin/users?created=carol", ADMIN).assert_contains("User carol was created.");

    let dup =
        post(&m, "/admin/users", ADMIN, &[("csrf", &token), ("name", "carol"), ("role", "guest"), ("password", "x")]);
    assert_eq!(dup.status, 409);
    dup.assert_contains("id=\"form-error\"");
    dup.assert_contains("value=\"carol\"");
    let bad_role =
        post(&m, "/admin/users", ADMIN, &[("csrf", &token), ("name", "dave"), ("role", "king"), ("password", "x")]);
    assert_eq!(bad_role.status, 400);
    bad_role.assert_contains("king");
    let no_password =
        post(&m, "/admin/users", ADMIN, &[("csrf", &token), ("name", "dave"), ("role", "user"), ("password", "")]);
    assert_eq!(no_password.status, 400);
    let bad_name =
        post(&m, "/admin/users", ADMIN, &[("csrf", &token), ("name", "Dave!"), ("role", "user"), ("password", "x")]);
    assert_eq!(bad_name.status, 400);
    assert_eq!(m.get("/api/0.6/user/dave", ADMIN).0, 404);
    let forged = post(&m, "/admin/users", ADMIN, &[("name", "eve"), ("role", "admin"), ("password", "x")]);
    assert_eq!(forged.status, 403);
    assert_eq!(m.get("/api/0.6/user/eve", ADMIN).0, 404);

    let changed = post(&m, "/admin/users/carol/role", ADMIN, &[("csrf", &token), ("role", "guest")]);
    assert_redirect(&changed, "/admin/users?changed=carol");
    assert_eq!(m.get("/api/0.6/user/carol", ADMIN).1["role"], "guest");
    assert_eq!(post(&m, "/admin/users/carol/role", ADMIN, &[("role", "admin")]).status, 403);
    assert_eq!(m.get("/api/0.6/user/carol", ADMIN).1["role"], "guest");
    assert_eq!(post(&m, "/admin/users/nobody/role", ADMIN, &[("csrf", &token), ("role", "user")]).status, 404);

    let last_admin = post(&m, "/admin/users/zoeadmin/delete", ADMIN, &[("csrf", &token)]);
    assert_eq!(last_admin.status, 409, "{}", last_admin.body);
    last_admin.assert_contains("id=\"form-error\"");
    assert_eq!(post(&m, "/admin/users/carol/delete", ADMIN, &[]).status, 403);
    assert_eq!(m.get("/api/0.6/user/carol", ADMIN).0, 200);
    let deleted = post(&m, "/admin/users/carol/delete", ADMIN, &[("csrf", &token)]);
    assert_redirect(&deleted, "/admin/users?deleted=carol");
    assert_eq!(m.get("/api/0.6/user/carol", ADMIN).0, 404);
    assert_eq!(get(&m, "/executions", ("carol", "carol pw")).status, 401);
}

// -------------------------------------------------------------------------------- browser test

const WAIT: Duration = Duration::from_secs(60);

fn wait_api_status(m: &Master, id: u64, want: &str) -> Value {
    crate::common::wait_execution(m, ADMIN, id, WAIT.as_secs(), &format!("execution {id} never became {want}"), |e| {
        e["status"] == want
    })
}

#[test]
fn a_browser_runs_an_execution_from_the_catalogue_reads_its_log_and_terminates_it() {
    let started = Instant::now();
    let (deployment, _cleanup) = docker_deployment(format!("w{}", std::process::id() % 100_000));
    let dir = temp_dir("web-browser");
    let ws = dir.join("ws");
    let m = Master::start_in(
        &dir.join("state"),
        &["--deployment-name", &deployment, "--workspace-base-path", ws.to_str().unwrap(), "--stop-grace", "2"],
    );
    m.create_user(ALICE.0, "user", ALICE.1);
    m.create_user(BOB.0, "guest", BOB.1);
    let port = m.url.rsplit(':').next().unwrap().to_string();
    // Signed in with the browser's password prompt (basic auth), then at `path`; `sessions.rs`
    // signs in with the form.
    let open_as = |b: &Browser, who: (&str, &str), path: &str| {
        b.sign_in_basic(&m.url, who);
        b.goto(&format!("{}{path}", m.url));
    };

    // Some history for the pages to show: a job that ends and a web server that keeps running.
    let batch: Value = serde_json::from_str(include_str!("../../src/web/catalogue/batch.json")).unwrap();
    let web: Value = serde_json::from_str(include_str!("../../src/web/catalogue/web-server.json")).unwrap();
    let batch_id = m.submit(ALICE, "nightly", &batch);
    let web_id = m.submit(ALICE, "site", &web);
    wait_api_status(&m, batch_id, "finished");
    wait_api_status(&m, web_id, "running");

    let driver = start_driver();
    let b = Browser::open(&driver, 1280, 860);

    // Sign in with basic auth, then start a sleeper from the catalogue: picking it fills the
    // description box (JavaScript).
    open_as(&b, ALICE, "/executions");
    let list = b.wait_for("Your executions");
    assert!(list.contains("nightly") && list.contains("site"), "{list}");
    b.click("a.button.primary[href='/executions/new']");
    b.wait_for("Start execution");
    // A refused form says why next to the field, and keeps what was chosen.
    b.type_into("#name", "Bad Name");
    b.click("#app option[value='batch']");
    b.click("#start");
    let refused = b.wait_for("id=\"name-error\"");
    assert!(refused.contains("value=\"Bad Name\"") && refused.contains("step $i"), "{refused}");
    b.screenshot("new-execution-error");
    b.type_into("#name", "hello");
    // Uploading a file fills the box (JavaScript's FileReader) and forgets the catalogue choice.
    let upload = dir.join("uploaded.json");
    std::fs::write(&upload, r#"{"name": "from-a-file"}"#).unwrap();
    b.send_keys("#description-file", upload.to_str().unwrap());
    let filled = || b.property("#description", "value").as_str().unwrap_or("").contains("from-a-file");
    wait_until(10, filled, || "the uploaded file did not fill the box".into());
    assert_eq!(b.property("#app", "value"), "");
    b.click("#app option[value='sleeper']");
    let filled = b.property("#description", "value");
    assert!(filled.as_str().unwrap_or("").contains("echo started"), "the catalogue did not fill the box: {filled}");
    b.resize(1280, 1180);
    b.screenshot("new-execution");
    b.resize(1280, 860);
    b.click("#start");

    // The execution page refreshes itself until the execution runs.
    let page = b.wait_for("id=\"status\">running");
    let url = b.url();
    let id: u64 = url.rsplit('/').next().unwrap().parse().unwrap_or_else(|_| panic!("not an execution page: {url}"));
    assert!(page.contains("hello") && page.contains("sleeper"), "{page}");
    assert_eq!(execution(&m, id)["owner"], "alice");
    b.screenshot("execution");

    // Its service's log shows what the container printed.
    b.click("a.log-link");
    b.wait_for("hello from hello");
    let log_path = b.url().split(&port).nth(1).unwrap().to_string();
    assert!(log_path.starts_with(&format!("/executions/{id}/services/")), "{log_path}");
    let log = b.source();
    assert!(log.contains("started"), "{log}");
    b.screenshot("service-log");

    // The web server's page links to its port through the master's proxy (published on the host
    // it is not, by default).
    b.goto(&format!("http://127.0.0.1:{port}/executions/{web_id}"));
    let web_page = b.wait_for("id=\"status\">running");
    assert!(web_page.contains(&format!("class=\"endpoint\" href=\"/proxy/{web_id}/httpd/8080/")), "{web_page}");
    assert!(!web_page.contains("title=\"Published on the host\""), "{web_page}");
    // The link signs the browser in to the web server's own host, which serves the workspace.
    std::fs::write(ws.join(&deployment).join("alice").join("index.html"), "hello from the workspace\n").unwrap();
    b.goto(&format!("http://127.0.0.1:{port}/proxy/{web_id}/httpd/8080/"));
    b.wait_for("hello from the workspace");
    assert_eq!(b.url(), format!("http://8080-httpd-{web_id}.localhost:{port}/"), "on its own origin");
    b.screenshot("execution-web-server");

    // Terminate, with the confirmation dialog; the page follows it to its end.
    b.goto(&format!("http://127.0.0.1:{port}/executions/{id}"));
    b.wait_for("id=\"terminate\"");
    b.click("#terminate");
    b.accept_alert();
    let ended = b.wait_for("id=\"status\">terminated");
    assert_eq!(execution(&m, id)["status"], "terminated");
    assert!(ended.contains("terminated by alice") && ended.contains("class=\"log-link\""), "{ended}");
    // The log outlives the container.
    let kept = get(&m, &log_path, ALICE);
    kept.assert_contains("hello from hello");
    kept.assert_contains("kept when the container was removed");
    b.goto(&format!("http://127.0.0.1:{port}/executions"));
    let list = b.wait_for("terminated");
    assert!(list.contains("finished") && list.contains("running"), "{list}");
    let executions_png = b.screenshot("executions");
    b.resize(390, 844);
    b.screenshot("executions-phone");
    b.resize(1280, 860);

    // The administrator's pages.
    open_as(&b, ADMIN, "/admin/users");
    b.wait_for("New user");
    b.screenshot("admin-users");
    b.goto(&format!("{}/admin/platform", m.url));
    let platform = b.wait_for("Docker engine");
    assert!(platform.contains("healthy"), "{platform}");
    b.screenshot("admin-platform");

    // A guest cannot see alice's execution.
    open_as(&b, BOB, &format!("/executions/{id}"));
    let refused = b.wait_for("Not found");
    assert!(refused.contains("HTTP 404") && !refused.contains("hello from"), "{refused}");
    b.screenshot("not-found");
    assert_eq!(get(&m, &format!("/executions/{id}"), BOB).status, 404);

    // The README's screenshot is refreshed on request only, so that tests leave the tree clean.
    if std::env::var_os("ZOE_UPDATE_DOCS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(&executions_png, docs.join("executions-page.png")).unwrap();
    }
    eprintln!("browser test: {:.1} s; screenshots in {}", started.elapsed().as_secs_f64(), screenshot_dir().display());
}

#[test]
fn users_make_and_revoke_api_tokens_on_their_tokens_page() {
    let m = master("web-tokens");
    let page = get_ok(&m, "/tokens", ALICE);
    page.assert_contains("You have no API tokens.");
    let csrf = page.csrf();

    let made = post(&m, "/tokens", ALICE, &[("csrf", &csrf), ("name", "notebook"), ("days", "7")]);
    assert_eq!(made.status, 201, "{}", made.body);
    let marker = "<code id=\"made-token\">";
    let start = made.body.find(marker).unwrap() + marker.len();
    let token = made.body[start..].split('<').next().unwrap().to_string();
    assert!(token.starts_with("zoe_"), "{token}");
    let url = format!("{}/api/0.6/user/alice", m.url);
    let req = ureq::http::Request::builder().uri(&url).header("Authorization", format!("Bearer {token}"));
    let mut resp = m.agent.run(req.body(Vec::new()).unwrap()).unwrap();
    let (s, v) = (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap());
    assert_eq!(s, 200, "{v}");

    // The listing shows it, never the token again; bad input is refused on the page.
    let page = get(&m, "/tokens", ALICE);
    page.assert_contains("notebook");
    page.assert_lacks(&token);
    let bad = post(&m, "/tokens", ALICE, &[("csrf", &csrf), ("name", "Bad Name"), ("days", "7")]);
    assert_eq!(bad.status, 400);
    bad.assert_contains("id=\"form-error\"");
    let bad = post(&m, "/tokens", ALICE, &[("csrf", &csrf), ("name", "ok"), ("days", "0")]);
    assert_eq!(bad.status, 400);
    // Bob does not see, nor revoke, alice's.
    get(&m, "/tokens", BOB).assert_lacks("notebook");
    let bobs = get(&m, "/tokens", BOB).csrf();
    assert_eq!(post(&m, "/tokens/notebook/revoke", BOB, &[("csrf", &bobs)]).status, 404);

    let revoked = post(&m, "/tokens/notebook/revoke", ALICE, &[("csrf", &csrf)]);
    assert_redirect(&revoked, "/tokens?revoked=notebook");
    get(&m, "/tokens?revoked=notebook", ALICE).assert_contains("Token notebook was revoked.");
    assert_eq!(m.get("/api/0.6/token", ALICE).1, serde_json::json!([]));

    // The page's changes are in the audit record as the API's are: who, which token, not the token.
    let (status, events) = m.get("/api/0.6/audit", crate::common::ADMIN);
    assert_eq!(status, 200, "{events}");
    let token_events: Vec<(&str, &str, &str)> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"].as_str().unwrap().starts_with("token_"))
        .map(|e| (e["kind"].as_str().unwrap(), e["user"].as_str().unwrap(), e["detail"].as_str().unwrap()))
        .collect();
    assert_eq!(token_events, [("token_revoked", "alice", "notebook"), ("token_created", "alice", "notebook")]);
}
