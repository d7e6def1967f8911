//! Web sessions through real HTTP on the real master: the sign-in form and its refusals (no word
//! on whether a name exists, no open redirect, no sign-in posted by another site), the cookie's
//! attributes, the pages it opens and the API and application hosts it does not, sign-out, the
//! end of a session with its user's deletion, role or password, its expiry, its bound, and the
//! audit record; then a real browser (headless Chromium) signing in, using a page, signing out
//! and seeing its session expire.

#![allow(clippy::unwrap_used)] // a test fails by panicking, with the value in the message

use std::time::Duration;

use serde_json::json;

use crate::common::apps::{addr, send};
use crate::common::browser::{start_driver, Browser};
use crate::common::{temp_dir, Master, ADMIN};
use crate::web::{assert_redirect, get, master, request, Page, ALICE};

/// Posts the sign-in form (from this site, as a browser does).
fn sign_in_form(m: &Master, name: &str, password: &str, next: &str, headers: &[(&str, &str)]) -> Page {
    let fields = [("username", name), ("password", password), ("next", next)];
    request(m, "POST", "/login", None, Some(&fields), headers)
}

/// The session cookie a sign-in set: (its name, its value, the whole `Set-Cookie`).
fn session_cookie(p: &Page) -> (String, String, String) {
    let set = p.header("set-cookie").unwrap_or_else(|| panic!("no Set-Cookie ({}):\n{}", p.status, p.body));
    let (pair, _) = set.split_once(';').unwrap();
    let (name, value) = pair.split_once('=').unwrap();
    (name.to_string(), value.to_string(), set.to_string())
}

/// Signs `who` in; the `Cookie` header value of their session.
fn signed_in(m: &Master, who: (&str, &str)) -> String {
    let p = sign_in_form(m, who.0, who.1, "/executions", &[]);
    assert_redirect(&p, "/executions");
    let (name, value, _) = session_cookie(&p);
    format!("{name}={value}")
}

fn with_cookie(m: &Master, method: &str, path: &str, cookie: &str, form: Option<&[(&str, &str)]>) -> Page {
    request(m, method, path, None, form, &[("Cookie", cookie)])
}

#[track_caller]
fn assert_signed_out(m: &Master, cookie: &str, why: &str) {
    let p = with_cookie(m, "GET", "/executions", cookie, None);
    assert_eq!(p.status, 303, "{why}: the session still opens pages:\n{}", p.body);
    assert_eq!(p.header("location"), Some("/login?next=/executions"), "{why}");
}

#[test]
fn a_sign_in_sets_a_session_cookie_for_the_pages_only_and_sign_out_ends_it() {
    let m = master("sessions-basics");
    let form = request(&m, "GET", "/login?next=/tokens", None, None, &[]);
    assert_eq!(form.status, 200);
    form.assert_contains("<form method=\"post\" action=\"/login\"");
    form.assert_contains("name=\"next\" value=\"/tokens\"");
    form.assert_lacks("id=\"sign-out\"");

    // Wrong password, unknown name, empty fields: the same refusal, no cookie, no prompt.
    let wrong = sign_in_form(&m, "alice", "wrong", "/tokens", &[]);
    let unknown = sign_in_form(&m, "nobody-here", "wrong", "/tokens", &[]);
    for p in [&wrong, &unknown] {
        assert_eq!(p.status, 401, "{}", p.body);
        p.assert_contains("Wrong user name or password.");
        assert!(p.header("set-cookie").is_none() && p.header("www-authenticate").is_none());
        p.assert_contains("name=\"next\" value=\"/tokens\"");
    }
    assert_eq!(wrong.body.replace("alice", "X"), unknown.body.replace("nobody-here", "X"), "the same page");
    assert_eq!(sign_in_form(&m, "alice", "", "/", &[]).status, 401);

    // The right one: a cookie for this host, every path, not for scripts, not sent by other
    // sites' requests (plain HTTP here: no Secure, no __Host-), and back to the page wanted.
    let ok = sign_in_form(&m, ALICE.0, ALICE.1, "/tokens", &[]);
    assert_redirect(&ok, "/tokens");
    let (name, value, set) = session_cookie(&ok);
    assert_eq!(name, "zoe-session");
    assert_eq!(value.len(), 43, "256 random bits");
    assert_eq!(set, format!("zoe-session={value}; Path=/; HttpOnly; SameSite=Lax"));
    assert_eq!(ok.header("cache-control"), Some("no-store"));
    let cookie = format!("zoe-session={value}");

    // It opens the pages, with the sign-out button and the user's forms working.
    let page = with_cookie(&m, "GET", "/tokens", &cookie, None);
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_contains("You have no API tokens.");
    page.assert_contains("action=\"/logout\"");
    page.assert_contains("id=\"sign-out\"");
    let csrf = page.csrf();
    let made = with_cookie(&m, "POST", "/tokens", &cookie, Some(&[("csrf", &csrf), ("name", "nb"), ("days", "1")]));
    assert_eq!(made.status, 201, "{}", made.body);
    // ...and the /proxy/ entry (an execution that does not exist: the API's 404, not a sign-in).
    let entry = with_cookie(&m, "GET", "/proxy/99/web/8080/", &cookie, None);
    assert_eq!(entry.status, 404, "{}", entry.body);
    // Not the API: it takes basic auth and tokens, answers 401 JSON and never redirects.
    let api = with_cookie(&m, "GET", "/api/0.6/execution", &cookie, None);
    assert_eq!(api.status, 401, "{}", api.body);
    assert!(api.body.contains("\"unauthorized\""), "{}", api.body);
    let api_post = request(
        &m,
        "POST",
        "/api/0.6/token",
        None,
        None,
        &[("Cookie", cookie.as_str()), ("Content-Type", "application/json")],
    );
    assert_eq!(api_post.status, 401);
    // Without credentials, the entry too goes by the sign-in page.
    assert_redirect(
        &request(&m, "GET", "/proxy/99/web/8080/x?y=1", None, None, &[]),
        "/login?next=/proxy/99/web/8080/x%3Fy%3D1",
    );
    // Not a made-up or altered cookie.
    assert_signed_out(&m, "zoe-session=AAAA", "a made-up cookie");
    assert_signed_out(&m, &format!("zoe-session={}x", value), "an altered cookie");
    // Not two session cookies at once (one may have been tossed by a sibling host's page).
    let other = signed_in(&m, ALICE);
    assert_signed_out(&m, &format!("{cookie}; {other}"), "two session cookies");
    assert_eq!(with_cookie(&m, "GET", "/executions", &cookie, None).status, 200);

    // Basic auth still opens the pages.
    assert_eq!(get(&m, "/executions", ALICE).status, 200);

    // Sign-out is a form with the user's token, from this site.
    assert_eq!(with_cookie(&m, "POST", "/logout", &cookie, Some(&[])).status, 403);
    let forged = request(
        &m,
        "POST",
        "/logout",
        None,
        Some(&[("csrf", &csrf)]),
        &[("Cookie", cookie.as_str()), ("Origin", "http://evil.example")],
    );
    assert_eq!(forged.status, 403);
    assert_eq!(with_cookie(&m, "GET", "/executions", &cookie, None).status, 200, "still signed in");
    let out = with_cookie(&m, "POST", "/logout", &cookie, Some(&[("csrf", &csrf)]));
    assert_redirect(&out, "/login");
    assert_eq!(out.header("set-cookie"), Some("zoe-session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"));
    assert_signed_out(&m, &cookie, "signed out");
    assert_eq!(with_cookie(&m, "GET", "/executions", &other, None).status, 200, "another session stays");

    // The audit record has the sign-ins through the page and the failures, never a password.
    let (status, events) = m.get("/api/0.6/audit", ADMIN);
    assert_eq!(status, 200);
    let seen: Vec<(String, String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"].as_str().unwrap().starts_with("sign_in"))
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_string();
            (s("kind"), s("user"), s("detail"))
        })
        .collect();
    let has = |kind: &str, user: &str, detail: &str| {
        seen.iter().any(|(k, u, d)| (k.as_str(), u.as_str(), d.as_str()) == (kind, user, detail))
    };
    assert!(has("sign_in", "alice", "sign-in page"), "{seen:?}");
    assert!(has("sign_in_failed", "alice", ""), "{seen:?}");
    assert!(has("sign_in_failed", "nobody-here", ""), "{seen:?}");
    assert!(!events.to_string().contains(ALICE.1), "no password in the audit record");
}

#[test]
fn no_open_redirect_no_sign_in_posted_by_another_site_and_forms_need_their_token() {
    let m = master("sessions-hostile");
    // `next` leads only to this site.
    for (next, to) in [
        ("//evil.example/", "/executions"),
        ("https://evil.example/", "/executions"),
        ("/\\evil.example", "/executions"),
        ("/\t/evil.example", "/executions"),
        ("", "/executions"),
        ("/executions/new?app=batch", "/executions/new?app=batch"),
    ] {
        let p = sign_in_form(&m, ALICE.0, ALICE.1, next, &[]);
        assert_redirect(&p, to);
    }
    // A sign-in form posted by a page of another site (or a sibling host: an application's) is
    // refused before any password is looked at: it would sign the browser in as someone else.
    for forged in [
        ("Origin", "http://evil.example"),
        ("Origin", "null"),
        ("Sec-Fetch-Site", "cross-site"),
        ("Sec-Fetch-Site", "same-site"),
    ] {
        let p = sign_in_form(&m, ALICE.0, ALICE.1, "/executions", &[forged]);
        assert_eq!(p.status, 403, "{forged:?}: {}", p.body);
        assert!(p.header("set-cookie").is_none(), "{forged:?}");
    }
    let origin = m.url.clone();
    let same = sign_in_form(&m, ALICE.0, ALICE.1, "/", &[("Origin", &origin), ("Sec-Fetch-Site", "same-origin")]);
    assert_redirect(&same, "/");

    // A form posted with the session cookie from another site, or without the user's token, is
    // refused (a browser that still sent the Lax cookie along with a cross-site POST included).
    let cookie = signed_in(&m, ALICE);
    let csrf = with_cookie(&m, "GET", "/executions/new", &cookie, None).csrf();
    let submit = |extra: &[(&str, &str)], token: &str| {
        let mut headers = vec![("Cookie", cookie.as_str())];
        headers.extend_from_slice(extra);
        request(
            &m,
            "POST",
            "/executions/new",
            None,
            Some(&[("csrf", token), ("name", "forged"), ("app", "batch")]),
            &headers,
        )
    };
    assert_eq!(submit(&[("Origin", "http://evil.example")], &csrf).status, 403);
    assert_eq!(submit(&[("Sec-Fetch-Site", "cross-site")], &csrf).status, 403);
    assert_eq!(submit(&[], "").status, 403);
    assert_eq!(m.get("/api/0.6/execution", ADMIN).1, json!([]));
    let ok = submit(&[("Origin", &origin)], &csrf);
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(m.get("/api/0.6/execution", ADMIN).1[0]["owner"], "alice");

    // The session cookie is nothing on an application host: its own cookie only, and a sign-in
    // through Zoe's link.
    let port = m.url.rsplit(':').next().unwrap();
    let app_host = format!("8080-web-1.localhost:{port}");
    let on_app_host =
        |path: &str, cookie: &str| send(&addr(&m), &app_host, "GET", path, &format!("Cookie: {cookie}\r\n"), b"");
    let p = on_app_host("/", &cookie);
    assert_eq!(p.status, 401, "{}", p.text());
    assert!(p.text().contains("sign_in_required"), "{}", p.text());
    assert!(p.header("www-authenticate").is_none());
    let p = on_app_host("/executions", &cookie);
    assert_eq!(p.status, 401, "Zoe's pages are not served there: {}", p.text());
    let p = on_app_host("/", &cookie.replace("zoe-session=", "zoe-app="));
    assert_eq!(p.status, 401, "nor is it an application host's cookie: {}", p.text());
}

#[test]
fn a_session_ends_with_its_users_deletion_role_or_password_and_is_bounded() {
    let m = master("sessions-end");
    m.create_user("carol", "user", "carol-password");
    let carol = ("carol", "carol-password");
    let put = |body: serde_json::Value| {
        let (s, v) = m.call("PUT", "/api/0.6/user/carol", Some(ADMIN), Some(&body.to_string()));
        assert_eq!(s, 200, "{v}");
    };

    let c = signed_in(&m, carol);
    assert_eq!(with_cookie(&m, "GET", "/executions", &c, None).status, 200);
    put(json!({"role": "guest"}));
    assert_signed_out(&m, &c, "a role change");
    put(json!({"role": "user"}));
    assert_signed_out(&m, &c, "a role change, even undone");

    let c = signed_in(&m, carol);
    put(json!({"password": "carol-new-password"}));
    assert_signed_out(&m, &c, "a password change");
    let carol = ("carol", "carol-new-password");

    let (c1, c2) = (signed_in(&m, carol), signed_in(&m, carol));
    let (s, v) = m.delete("/api/0.6/user/carol", ADMIN);
    assert_eq!(s, 204, "{v}");
    assert_signed_out(&m, &c1, "the user's deletion");
    m.create_user("carol", "user", carol.1);
    assert_signed_out(&m, &c2, "a new user of the same name and password");

    // At most 32 sessions per user: the oldest go first; others' stay.
    let alice = signed_in(&m, ALICE);
    let first = signed_in(&m, carol);
    let newest: Vec<String> = (0..32).map(|_| signed_in(&m, carol)).collect();
    assert_signed_out(&m, &first, "the oldest of 33");
    for c in [&newest[0], &newest[31], &alice] {
        assert_eq!(with_cookie(&m, "GET", "/executions", c, None).status, 200);
    }
}

#[test]
fn sessions_expire_after_session_hours() {
    let dir = temp_dir("sessions-expire");
    let bad = Master::try_start_in(&dir.join("bad"), &["--no-docker", "--session-hours", "0"]).err().unwrap();
    assert!(bad.contains("--session-hours must be more than 0"), "{bad}");
    // A thousandth of an hour: 3.6 seconds.
    let m = Master::start_in(&dir.join("state"), &["--no-docker", "--session-hours", "0.001"]);
    m.create_user(ALICE.0, "user", ALICE.1);
    let c = signed_in(&m, ALICE);
    assert_eq!(with_cookie(&m, "GET", "/executions", &c, None).status, 200);
    std::thread::sleep(Duration::from_millis(4000));
    assert_signed_out(&m, &c, "an expired session");
}

// -------------------------------------------------------------------------------- browser test

#[test]
fn a_browser_signs_in_uses_a_page_signs_out_and_its_session_expires() {
    // Sessions of 18 seconds (0.005 hours).
    let m = Master::start_in(&temp_dir("sessions-browser"), &["--no-docker", "--session-hours", "0.005"]);
    m.create_user(ALICE.0, "user", ALICE.1);
    let base = m.url.clone();
    let driver = start_driver();
    let b = Browser::open(&driver, 1100, 800);

    // A page asked for without a session sends the browser to the sign-in page, and back.
    b.goto(&format!("{base}/tokens"));
    b.wait_for("Sign in to Zoe");
    assert_eq!(b.url(), format!("{base}/login?next=/tokens"));
    b.type_into("#username", ALICE.0);
    b.type_into("#password", "wrong");
    b.click("#sign-in");
    let refused = b.wait_for("Wrong user name or password.");
    assert!(refused.contains("value=\"alice\""), "{refused}");
    b.screenshot("sign-in-refused");
    b.type_into("#password", ALICE.1);
    b.click("#sign-in");
    b.wait_for("You have no API tokens.");
    assert_eq!(b.url(), format!("{base}/tokens"));
    // The cookie is not for scripts.
    assert_eq!(b.cmd("POST", "/execute/sync", Some(json!({"script": "return document.cookie", "args": []}))), "");

    // Use a page: make a token through its form.
    b.type_into("#token-name", "from-browser");
    b.click("#new-token button[type=submit]");
    b.wait_for("id=\"made-token\"");
    assert_eq!(m.get("/api/0.6/token", ALICE).1[0]["name"], "from-browser");
    b.screenshot("signed-in");

    // Sign out: back to the sign-in page, and the pages need signing in again.
    b.click("#sign-out");
    b.wait_for("Sign in to Zoe");
    assert_eq!(b.url(), format!("{base}/login"));
    b.goto(&format!("{base}/executions"));
    b.wait_for("Sign in to Zoe");
    assert_eq!(b.url(), format!("{base}/login?next=/executions"));

    // Sign in again; the session expires by itself.
    b.type_into("#username", ALICE.0);
    b.type_into("#password", ALICE.1);
    b.click("#sign-in");
    b.wait_for("Your executions");
    std::thread::sleep(Duration::from_secs(19));
    b.goto(&format!("{base}/executions/new"));
    b.wait_for("Sign in to Zoe");
    assert_eq!(b.url(), format!("{base}/login?next=/executions/new"));
}
