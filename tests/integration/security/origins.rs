//! Hostile tenants' pages in a real browser (headless Chromium) against Zoe and against their
//! neighbours. On an earlier Zoe, every proxied page ran on Zoe's own origin (or, with
//! `proxy-host`, on one origin shared by all tenants): an administrator opening Bob's page gave
//! Bob's scripts the administrator's access to Zoe, a service worker registered by Bob's page
//! answered in Zoe's place, and Bob's page read and drove Alice's applications. Now each port of
//! each execution has an origin of its own, and the proxy guards them.
//!
//! Each attack runs twice: with the default `apps-domain` (`localhost`: every application host is
//! a site of its own for the browser) and with `apps.localhost` (all application hosts on one
//! site, as in a deployment with `apps.zoe.example`: cookies set for the parent domain reach the
//! neighbours, and the browser sends `SameSite=Lax` cookies along with their requests).

use std::path::Path;

use serde_json::json;

use crate::common::apps::{enter, sign_in};
use crate::common::browser::{start_driver, Browser, Driver};
use crate::common::docker::{application, docker_master_with, service, wait_status};
use crate::common::{wait_until, Master, ADMIN};

const ALICE: (&str, &str) = ("alice", "alice-pw");
const BOB: (&str, &str) = ("bob", "bob-pw");

/// Alice's application: answers every request with her page (which holds a secret, and on load
/// posts to its own application, as pages do) and writes the request line of each to `hits.log`
/// in her workspace. Run by `nc -ll -e sh`, one shell per connection.
const ALICE_SERVER: &str = r#"read -r first
while IFS= read -r l; do l="${l%$(printf '\r')}"; [ -z "$l" ] && break; done
echo "${first%$(printf '\r')}" >> /mnt/workspace/hits.log
b=$(cat /mnt/workspace/index.html)
printf 'HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' "${#b}" "$b"
"#;

const ALICE_PAGE: &str = r#"<!doctype html><html><body><p id="secret">alice-secret-42</p>
<script>fetch('/record?by=alice-own', {method: 'POST', body: 'x=1'}).then(() => document.title = 'posted');</script>
</body></html>"#;

/// Bob's page: every attack in turn, each outcome on a line of `#out`, then `attacks-done`.
const BOB_PAGE: &str = r#"<!doctype html><html><body><pre id="out"></pre>
<form id="f" method="POST" target="sink" action="ALICE_ORIGIN/record?by=bob-form"><input name="_xsrf" value="tossed"></form>
<iframe name="sink" id="sink"></iframe>
<script>
const out = [];
const log = (k, v) => out.push(k + '=' + v);
async function attempt(name, f) {
  try { log(name, await f()); } catch (e) { log(name, 'error:' + e.name); }
}
const wait = (ms) => new Promise(r => setTimeout(r, ms));
(async () => {
  // Cookie tossing: a cookie for the parent domain, in the name of the application hosts' own
  // (a valid one, of Bob's own host), and a known _xsrf for the neighbours' Jupyter.
  document.cookie = 'zoe-app=BOB_COOKIE; domain=APPS_DOMAIN; path=/';
  document.cookie = '_xsrf=tossed; domain=APPS_DOMAIN; path=/';
  log('cookies-visible', document.cookie.includes('tossed'));
  // Zoe, with the visitor's credentials: read the lists, create an administrator.
  await attempt('zoe-read', async () => {
    const r = await fetch('ZOE_ORIGIN/api/0.6/execution', {credentials: 'include'});
    return 'status:' + r.status + ':' + (await r.text()).slice(0, 300);
  });
  await attempt('zoe-read-no-cors', async () => {
    const r = await fetch('ZOE_ORIGIN/api/0.6/user/zoeadmin', {credentials: 'include', mode: 'no-cors'});
    return 'type:' + r.type;
  });
  await attempt('zoe-create', async () => {
    const r = await fetch('ZOE_ORIGIN/api/0.6/user', {method: 'POST', credentials: 'include',
      headers: {'Content-Type': 'application/json'}, body: JSON.stringify({name: 'evil', role: 'admin', password: 'pw'})});
    return 'status:' + r.status;
  });
  await attempt('zoe-create-no-cors', async () => {
    const r = await fetch('ZOE_ORIGIN/api/0.6/user', {method: 'POST', credentials: 'include', mode: 'no-cors',
      headers: {'Content-Type': 'text/plain'}, body: JSON.stringify({name: 'evil2', role: 'admin', password: 'pw'})});
    return 'type:' + r.type;
  });
  // Zoe's API on this page's own origin: that is Bob's application, not Zoe.
  await attempt('own-origin-api', async () => {
    const r = await fetch('/api/0.6/user/zoeadmin');
    return 'status:' + r.status;
  });
  // A service worker for the whole origin.
  log('sw-api', 'serviceWorker' in navigator);
  await attempt('sw', async () => {
    const reg = await navigator.serviceWorker.register('/sw.js', {scope: '/'});
    return 'registered:' + reg.scope;
  });
  // Alice's application: read it, frame it, post to it.
  await attempt('alice-read', async () => {
    const r = await fetch('ALICE_ORIGIN/', {credentials: 'include'});
    return 'status:' + r.status + ':' + await r.text();
  });
  await attempt('alice-frame', () => new Promise(res => {
    const f = document.createElement('iframe');
    f.src = 'ALICE_ORIGIN/';
    f.onload = () => { try { res('read:' + f.contentDocument.body.innerText); } catch (e) { res('error:' + e.name); } };
    document.body.appendChild(f);
    setTimeout(() => res('timeout'), 5000);
  }));
  await attempt('alice-post', async () => {
    const r = await fetch('ALICE_ORIGIN/record?by=bob-fetch', {method: 'POST', credentials: 'include', mode: 'no-cors', body: '_xsrf=tossed'});
    return 'type:' + r.type;
  });
  document.getElementById('f').submit();
  await wait(1500);
  document.getElementById('out').textContent = out.join('\n') + '\nattacks-' + 'done';
})();
</script></body></html>"#;

/// `navigator.serviceWorker.register` fetches this with `Service-Worker: script`.
const BOB_WORKER: &str = "self.addEventListener('fetch', e => e.respondWith(new Response('owned by bob')));";

fn chown(path: &Path, uid: u64) {
    let out = std::process::Command::new("chown").args(["-R", &format!("{uid}:{uid}")]).arg(path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A workspace of `who` with `files`, owned by them.
fn workspace(m: &Master, dep: &str, who: (&str, &str), files: &[(&str, &str)]) {
    let uid = m.get(&format!("/api/0.6/user/{}", who.0), ADMIN).1["uid"].as_u64().unwrap();
    let ws = m.state_dir.join("ws").join(dep).join(who.0);
    for (name, text) in files {
        let path = ws.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    chown(&ws, uid);
}

/// Reads Alice's log of requests.
fn hits(m: &Master, dep: &str) -> String {
    std::fs::read_to_string(m.state_dir.join("ws").join(dep).join("alice").join("hits.log")).unwrap_or_default()
}

fn attacks(driver: &Driver, domain: &str) {
    let tag = if domain == "localhost" { "origins" } else { "originsite" };
    let (m, _cleanup, dep) = docker_master_with(tag, &["--apps-domain", domain]);
    m.create_user("alice", "user", ALICE.1);
    m.create_user("bob", "user", BOB.1);
    let port = m.url.rsplit(':').next().unwrap().to_string();
    workspace(&m, &dep, ALICE, &[("index.html", ALICE_PAGE), ("serve.sh", ALICE_SERVER)]);
    // Bob's page needs his cookie, made once his application runs: written again below.
    workspace(&m, &dep, BOB, &[("www/evil.html", "not yet"), ("www/sw.js", BOB_WORKER)]);
    let ports =
        json!([{"name": "web", "protocol": "http", "port_number": 8080, "is_main_endpoint": true, "expose": true}]);
    let a = m.submit(
        ALICE,
        "site",
        &application(vec![service("site", true, 1, 0, "nc -ll -p 8080 -e sh /mnt/workspace/serve.sh", ports.clone())]),
    );
    let b = m.submit(
        BOB,
        "evil",
        &application(vec![service("evil", true, 1, 0, "httpd -f -p 8080 -h /mnt/workspace/www", ports)]),
    );
    for (who, id) in [(ALICE, a), (BOB, b)] {
        assert_eq!(wait_status(&m, who, id, &["running", "error"], 60)["status"], "running");
    }
    let zoe = format!("http://127.0.0.1:{port}");
    let alice_origin = format!("http://8080-site-{a}.{domain}:{port}");
    let (alice_link, bob_link) = (format!("/proxy/{a}/site/8080/"), format!("/proxy/{b}/evil/8080/"));
    // Bob signs in to his own application host: his cookie is what he tosses at the neighbours.
    let bob = sign_in(&m, BOB, &bob_link);
    let bob_cookie = bob.cookie.strip_prefix("zoe-app=").unwrap().to_string();
    let page = BOB_PAGE
        .replace("ZOE_ORIGIN", &zoe)
        .replace("ALICE_ORIGIN", &alice_origin)
        .replace("BOB_COOKIE", &bob_cookie)
        .replace("APPS_DOMAIN", domain);
    workspace(&m, &dep, BOB, &[("www/evil.html", &page)]);
    let served = || bob.get("/evil.html").text().contains("attacks-' + 'done'");
    wait_until(10, served, || "Bob's page is not served".into());

    // The administrator, signed in to Zoe, uses Alice's application (her page posts to it, as
    // pages of their own application do), then opens Bob's page.
    let admin = Browser::open(driver, 1000, 700);
    admin.sign_in_basic(&format!("http://127.0.0.1:{port}"), ADMIN);
    admin.goto(&format!("http://127.0.0.1:{port}/executions"));
    admin.wait_for("Executions");
    admin.goto(&format!("{zoe}{alice_link}"));
    admin.wait_for("alice-secret-42");
    assert_eq!(admin.url(), format!("{alice_origin}/"), "Alice's application on its own origin");
    wait_until(
        10,
        || hits(&m, &dep).contains("POST /record?by=alice-own"),
        || format!("Alice's own page could not post to her application: {}", hits(&m, &dep)),
    );
    admin.goto(&format!("{zoe}{bob_link}evil.html"));
    let source = admin.wait_for("attacks-done");
    assert!(admin.url().starts_with(&format!("http://8080-evil-{b}.{domain}:{port}/")), "{}", admin.url());
    let out = source.split("<pre id=\"out\">").nth(1).unwrap().split("</pre>").next().unwrap().to_string();
    let line = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k} in {out}"))
            .to_string()
    };
    eprintln!("apps-domain {domain}: what Bob's page could do:\n{out}");

    // Nothing of Zoe: no list read, no administrator made.
    assert_eq!(line("zoe-read"), "error:TypeError", "{out}");
    assert!(!out.contains("\"owner\"") && !out.contains("zoeadmin\","), "Zoe's data reached Bob's page: {out}");
    assert_eq!(line("zoe-create"), "error:TypeError", "{out}");
    for name in ["evil", "evil2"] {
        assert_eq!(m.get(&format!("/api/0.6/user/{name}"), ADMIN).0, 404, "{name} was created: {out}");
    }
    assert_eq!(line("own-origin-api"), "status:404", "Bob's origin serves Bob's application only: {out}");
    // No service worker: the browser has the API, and the script is refused.
    assert_eq!(line("sw-api"), "true", "{out}");
    assert!(line("sw").starts_with("error:"), "a service worker was registered: {out}");
    // Nothing of Alice's read, nothing posted to her application.
    assert!(!out.contains("alice-secret-42"), "Bob's page read Alice's application: {out}");
    assert!(line("alice-read").starts_with("error:"), "{out}");
    let log = hits(&m, &dep);
    assert!(!log.contains("bob"), "Bob's page reached Alice's application: {log}");

    // Zoe still serves its own pages to the administrator, and Alice's application still knows
    // the administrator (whatever cookie Bob's page left for the parent domain).
    admin.goto(&format!("{zoe}/executions"));
    let zoe_page = admin.wait_for("Executions");
    assert!(!zoe_page.contains("owned by bob"), "{zoe_page}");
    admin.goto(&format!("{alice_origin}/"));
    admin.wait_for("alice-secret-42");

    // Bob's own browser, with his cookie tossed to the parent domain, gets nothing of Alice's
    // host: a cookie is valid on its own host only.
    let bob_browser = Browser::open(driver, 1000, 700);
    bob_browser.sign_in_basic(&format!("http://127.0.0.1:{port}"), BOB);
    bob_browser.goto(&format!("http://127.0.0.1:{port}/executions"));
    bob_browser.wait_for("Executions");
    bob_browser.goto(&format!("{zoe}{bob_link}evil.html"));
    let bob_out = bob_browser.wait_for("attacks-done");
    if domain != "localhost" {
        assert!(bob_out.contains("cookies-visible=true"), "the tossed cookies were set: {bob_out}");
    }
    bob_browser.goto(&format!("{alice_origin}/"));
    let refused = bob_browser.wait_for("sign_in_required");
    assert!(!refused.contains("alice-secret-42"), "{refused}");
    assert_eq!(enter(&m, Some(BOB), &alice_link, "").status, 404, "and Zoe does not send him there");
    assert!(!hits(&m, &dep).contains("bob"), "{}", hits(&m, &dep));
}

#[test]
fn hostile_pages_reach_neither_zoe_nor_their_neighbours_applications() {
    let driver = start_driver();
    for domain in ["localhost", "apps.localhost"] {
        attacks(&driver, domain);
    }
}
