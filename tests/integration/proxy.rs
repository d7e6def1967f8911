//! The proxy on the real Docker Engine: `/proxy/<execution>/<instance>/<port>/` on Zoe's origin
//! signs the caller in to the port's own host (`<port>-<instance>-<id>.localhost`), which serves
//! the service (HTTP both ways, large bodies streamed, WebSocket relayed), forwards what the
//! application needs (its secret included) and never the caller's credentials, and refuses
//! others, wrong passwords, other sites and origins, Zoe's credentials, other hosts' cookies and
//! tickets, service workers, ports that are not exposed, services that do not run, and more
//! connections than a user may hold.
//!
//! Needs Docker and `zoe-test-busybox:latest`; fails loudly without them.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::apps::{addr, basic, enter, send, sign_in, split_url};
use crate::common::docker::{application, docker_master_with, exec_in, service, wait_status};
use crate::common::{assert_error, Master, ADMIN};

const ALICE: (&str, &str) = ("alice", "pa");
const BOB: (&str, &str) = ("bob", "pb");

/// An echo server in busybox sh, one process per connection (`nc -ll -e`): a WebSocket upgrade
/// gets a `101` and then every byte back; any other request gets its own head as the body, with
/// two cookies: one for the parent domain, one in the name of the application host's own.
/// (Braces are doubled: descriptions are templates.)
const ECHO: &str = r#"h=""
while IFS= read -r l; do
  l="${{l%$(printf '\r')}}"
  [ -z "$l" ] && break
  h="$h$l
"
done
case "$h" in
  *[Uu]pgrade:\ websocket*) printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Echo: yes\r\n\r\n'; exec cat ;;
esac
printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: t=1; Domain=localhost; Path=/\r\nSet-Cookie: zoe-app=chosen-by-the-service\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' "${{#h}}" "$h"
"#;

/// Retries `f` until it gives `status` (a service may take a moment to listen), for 10 s.
fn until(status: u16, mut f: impl FnMut() -> crate::common::apps::Response) -> crate::common::apps::Response {
    let polled = crate::common::poll(Duration::from_secs(10), Duration::from_millis(100), || {
        let r = f();
        if r.status == status {
            Ok(r)
        } else {
            Err(r)
        }
    });
    polled.unwrap_or_else(|last| last)
}

#[test]
fn applications_live_on_hosts_of_their_own_reached_through_zoe_for_their_owner_only() {
    let (m, _cleanup, dep) = docker_master_with("proxy", &["--max-proxy-connections", "2"]);
    m.create_user("alice", "user", "pa");
    m.create_user("bob", "user", "pb");
    let files = service(
        "files",
        true,
        1,
        0,
        // The application is at the root of its own host.
        "sh -c 'd=$HOME/www && mkdir -p $d && head -c 8388608 /dev/urandom > $d/big.bin && \
         echo hello > $d/index.html && exec httpd -f -p 8080 -h $d'",
        json!([{"name": "site", "protocol": "http", "port_number": 8080, "path": "/index.html", "is_main_endpoint": true, "expose": true},
               {"name": "hidden", "protocol": "http", "port_number": 9999, "is_main_endpoint": false, "expose": false}]),
    );
    let mut echo = service(
        "echo",
        false,
        1,
        0,
        "sh -c 'exec nc -ll -p 9001 -e sh -c \"$ECHO\"'",
        json!([{"name": "echo", "protocol": "http", "port_number": 9001, "is_main_endpoint": false, "expose": true,
                "secret_header": "X-Zoe-Secret: s={secret}"}]),
    );
    echo["environment"] = json!([["ECHO", ECHO]]);
    let id = m.submit(ALICE, "px", &application(vec![files, echo]));
    let e = wait_status(&m, ALICE, id, &["running", "error"], 60);
    assert_eq!(e["status"], "running", "{e}");
    let services: Vec<Value> =
        e["services"].as_array().unwrap().iter().map(|s| m.get(&format!("/api/0.6/service/{s}"), ALICE).1).collect();
    let by_name = |n: &str| services.iter().find(|s| s["service_name"] == n).unwrap().clone();
    let files = by_name("files");
    assert_eq!(by_name("echo")["ports"][0]["proxy_url"], format!("/proxy/{id}/echo/9001/"));

    // The service's JSON links each exposed port through Zoe; the container is at the root of
    // its own host, and exposed ports are not published on the host by default.
    let base = format!("/proxy/{id}/files/8080/");
    assert_eq!(files["ports"][0]["proxy_url"], format!("{base}index.html"), "{files}");
    assert_eq!(files["ports"][1]["proxy_url"], Value::Null, "a port that is not exposed has no proxy");
    assert_eq!(files["ports"][0]["host_endpoint"], Value::Null, "publish-ports is off by default: {files}");
    let (ok, env) = exec_in(files["name"].as_str().unwrap(), "echo $ZOE_PROXY_PATH_8080");
    assert!(ok && env.trim() == "/", "{env}");

    // The link on Zoe sends the owner, with a one-time ticket, to the port's own host, which
    // signs the browser in with a cookie of its own and serves the page there.
    let port = m.url.rsplit(':').next().unwrap().to_string();
    let files_host = format!("8080-files-{id}.localhost:{port}");
    let r = enter(&m, Some(ALICE), &format!("{base}index.html"), "");
    assert_eq!(r.status, 303, "{}", r.head);
    let location = r.header("location").unwrap();
    assert!(location.starts_with(&format!("http://{files_host}/.zoe/sign-in?ticket=")), "{location}");
    assert!(location.ends_with("&next=/index.html"), "{location}");
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let alice = sign_in(&m, ALICE, &format!("{base}index.html"));
    assert_eq!((alice.host.as_str(), alice.next.as_str()), (files_host.as_str(), "/index.html"));
    assert!(alice.cookie.starts_with("zoe-app="), "{alice:?}");
    let r = until(200, || alice.get("/index.html"));
    assert_eq!((r.status, r.text().as_str()), (200, "hello\n"), "{}", r.head);
    // A tenant's file is never taken for another type than it says.
    assert_eq!(r.header("x-content-type-options").as_deref(), Some("nosniff"), "{}", r.head);
    let set = sign_in(&m, ADMIN, &base);
    assert_eq!(set.next, "/");
    assert_eq!(set.get("/index.html").status, 200, "an administrator too");
    // `/8080` is the folder `/8080/`: the root; the query goes along.
    let r = enter(&m, Some(ALICE), &format!("/proxy/{id}/files/8080?a=1"), "");
    assert!(r.header("location").unwrap().ends_with("&next=/%3Fa%3D1"), "{}", r.head);

    // 8 MiB come through whole (streamed, with their length).
    let r = alice.get("/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length").as_deref(), Some("8388608"), "{}", r.head);
    let ws = m.state_dir.join("ws").join(&dep).join("alice");
    assert_eq!(r.body, std::fs::read(ws.join("www/big.bin")).unwrap(), "the bytes the service wrote");

    // The ticket was for one use, on its own host only; Zoe's credentials are not accepted on an
    // application host, nor its cookie by Zoe or by another application host.
    let a = addr(&m);
    for (what, r) in [
        ("a used ticket", send(&a, &files_host, "GET", &alice.sign_in, "", b"")),
        ("no cookie", send(&a, &files_host, "GET", "/index.html", "", b"")),
        ("Zoe's credentials", send(&a, &files_host, "GET", "/index.html", &basic(ALICE), b"")),
        ("a made-up cookie", send(&a, &files_host, "GET", "/index.html", "Cookie: zoe-app=made-up\r\n", b"")),
    ] {
        assert_eq!(r.status, 401, "{what}: {}", r.head);
        assert!(r.text().contains("sign_in_required"), "{what}: {}", r.text());
        assert!(r.header("www-authenticate").is_none(), "{what}: no password prompt on an application host");
    }
    let echo_host = format!("9001-echo-{id}.localhost:{port}");
    let r = send(&a, &echo_host, "GET", "/", &format!("Cookie: {}\r\n", alice.cookie), b"");
    assert_eq!(r.status, 401, "the files host's cookie on the echo host: {}", r.head);
    let fresh = enter(&m, Some(ALICE), &base, "").header("location").unwrap();
    let r = send(&a, &echo_host, "GET", &split_url(&fresh).1, "", b"");
    assert_eq!(r.status, 401, "the files host's ticket on the echo host: {}", r.head);
    let (s, v) = m.call("GET", "/api/0.6/user/alice", None, None);
    assert_eq!(s, 401, "{v}");
    let r = send(&a, &a, "GET", "/api/0.6/user/alice", &format!("Cookie: {}\r\n", alice.cookie), b"");
    assert_eq!(r.status, 401, "Zoe accepts no application cookie: {}", r.head);
    // Nothing of Zoe is served on an application host: its paths go to the application.
    for path in ["/api/0.6/user/alice", "/executions", "/metrics"] {
        let r = alice.get(path);
        assert_eq!(r.status, 404, "{path}: {}", r.head);
        assert!(!r.text().contains("no_such") && !r.text().contains("zoe"), "{path}: {}", r.text());
    }

    // What the application sees: the path and query as sent, its own host, the browser's
    // cookies but not the host's own, never the caller's credentials, and its secret.
    let echo = sign_in(&m, ALICE, &format!("/proxy/{id}/echo/9001/"));
    let r = until(200, || {
        echo.request("GET", "/a/b?x=1&y=%20", &format!("Cookie: c=1\r\n{}X-Zoe-Secret: forged\r\n", basic(ALICE)), b"")
    });
    let seen = r.text();
    assert_eq!(r.status, 200, "{seen}");
    assert!(seen.starts_with("GET /a/b?x=1&y=%20 HTTP/1.1\n"), "{seen}");
    let lower = seen.to_ascii_lowercase();
    assert!(lower.contains(&format!("host: {echo_host}\n")), "{seen}");
    assert!(lower.contains("cookie: c=1\n"), "{seen}");
    assert!(!lower.contains("zoe-app"), "the host's cookie reached the service: {seen}");
    assert!(!lower.contains("authorization"), "Zoe's credentials reached the container: {seen}");
    let (ok, secret) = exec_in(by_name("echo")["name"].as_str().unwrap(), "echo $ZOE_PROXY_SECRET");
    let secret = secret.trim().to_string();
    assert!(ok && secret.len() == 64, "{secret}");
    assert!(lower.contains(&format!("x-zoe-secret: s={secret}\n")), "the proxy adds the secret: {seen}");
    assert!(!lower.contains("forged"), "{seen}");
    // The secret is shown to nobody.
    for path in [format!("/api/0.6/execution/{id}"), format!("/api/0.6/service/{}", by_name("echo")["id"])] {
        assert!(!m.get(&path, ADMIN).1.to_string().contains(&secret), "{path}");
    }
    assert!(!m.log_text().contains(&secret), "the master's log");
    // A service's cookies stay on its host, and cannot replace the host's own.
    let cookies = r.headers("set-cookie");
    assert_eq!(cookies, ["t=1; Path=/"], "{}", r.head);

    // Refusals on Zoe: another user and a guessed id get what they get for the execution (404),
    // a wrong password 401, no credentials a detour by the sign-in page, another site 403, a
    // port that is not exposed or an unknown instance 404, anything but opening the link 405.
    let r = enter(&m, Some(BOB), &format!("{base}index.html"), "");
    assert!(r.status == 404 && r.text().contains("no_such_execution"), "{}", r.text());
    assert_eq!(enter(&m, Some(ALICE), &format!("/proxy/{}/files/8080/", id + 100), "").status, 404);
    assert_eq!(enter(&m, Some(("alice", "wrong")), &base, "").status, 401);
    let r = enter(&m, None, &base, "");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").unwrap(), format!("/login?next={base}"));
    let r = enter(&m, Some(ALICE), &base, "Origin: https://evil.example\r\n");
    assert!(r.status == 403 && r.text().contains("cross_site_request"), "{}", r.text());
    for path in
        [format!("/proxy/{id}/files/9999/"), format!("/proxy/{id}/nothing/8080/"), format!("/proxy/{id}/files/x/")]
    {
        let r = enter(&m, Some(ALICE), &path, "");
        assert!(r.status == 404 && r.text().contains("no_such_service"), "{path}: {}", r.text());
    }
    let r = send(&a, &a, "POST", &base, &basic(ALICE), b"x");
    assert_eq!(r.status, 405, "{}", r.head);

    // The guard of application hosts: changes and WebSockets only from the host's own pages.
    let neighbour = format!("Origin: http://8080-files-{}.localhost:{port}\r\n", id + 1);
    for (what, headers) in [
        ("another origin", neighbour.clone()),
        ("a null origin", "Origin: null\r\n".to_string()),
        ("a page of the same site", "Sec-Fetch-Site: same-site\r\n".to_string()),
        ("another site", "Sec-Fetch-Site: cross-site\r\n".to_string()),
    ] {
        let r = echo.request("POST", "/change", &headers, b"x=1");
        assert_eq!(r.status, 403, "a POST from {what}: {}", r.head);
        assert!(r.text().contains("cross_site_request"), "{what}: {}", r.text());
        let (_, head) = echo.open_socket("/ws", &headers);
        assert!(head.starts_with("HTTP/1.1 403"), "a WebSocket from {what}: {head}");
    }
    let own = format!("Origin: {}\r\nSec-Fetch-Site: same-origin\r\n", echo.origin());
    let r = echo.request("POST", "/change", &own, b"x=1");
    assert!(r.status == 200 && r.text().starts_with("POST /change HTTP/1.1"), "{}", r.text());
    // Service workers: refused on every host.
    let sw = "Service-Worker: script\r\n";
    let r = echo.request("GET", "/sw.js", sw, b"");
    assert!(r.status == 403 && r.text().contains("service_worker_refused"), "{}", r.text());
    let r = send(&a, &a, "GET", "/static/zoe.js", &format!("{}{sw}", basic(ALICE)), b"");
    assert!(r.status == 403 && r.text().contains("service_worker_refused"), "{}", r.text());

    // A WebSocket is relayed both ways (its Origin is its own host's); a user holds at most 2
    // proxied connections at once.
    let origin = format!("Origin: {}\r\n", echo.origin());
    let (mut one, head) = echo.open_socket("/ws", &origin);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_ascii_lowercase().contains("x-echo: yes"), "{head}");
    for msg in ["ping 1\n", "a longer message, twice over\n"] {
        one.write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0u8; msg.len()];
        one.read_exact(&mut back).unwrap();
        assert_eq!(String::from_utf8_lossy(&back), msg);
    }
    let (_two, head) = echo.open_socket("/ws", &origin);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let r = alice.get("/index.html");
    assert_eq!(r.status, 429, "a third connection: {}", r.head);
    assert_eq!(set.get("/index.html").status, 200, "administrators are not counted");
    drop(one);
    let r = until(200, || alice.get("/index.html"));
    assert_eq!(r.status, 200, "a closed WebSocket gives its place back");

    // Once terminated, nothing is reachable, and the cookies die.
    assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), ALICE).0, 204);
    wait_status(&m, ALICE, id, &["terminated"], 60);
    let r = enter(&m, Some(ALICE), &base, "");
    assert!(r.status == 503 && r.text().contains("no longer running"), "{}", r.text());
    let r = until(401, || alice.get("/index.html"));
    assert!(r.status == 401 && r.text().contains("sign_in_required"), "the cookie outlived its execution: {}", r.head);
    assert_error(&m.get("/api/0.6/execution/0", BOB), 404, "no_such_execution");
}

/// A master answers on any host name, including ones that name no application: under
/// `apps-domain`, nothing of Zoe; elsewhere, Zoe, which refuses other origins' scripts and frames.
#[test]
fn zoe_serves_nothing_under_the_apps_domain_and_only_pages_to_other_origins() {
    let m =
        Master::start_in(&crate::common::temp_dir("appsdomain"), &["--no-docker", "--apps-domain", "apps.zoe.test"]);
    let a = addr(&m);
    let port = m.url.rsplit(':').next().unwrap().to_string();
    for host in [format!("x.apps.zoe.test:{port}"), format!("8888-nb-1.apps.zoe.test:{port}")] {
        let r = send(&a, &host, "GET", "/api/0.6/info", &basic(ADMIN), b"");
        assert!(r.status == 401 && r.text().contains("sign_in_required"), "{host}: {}", r.text());
    }
    let r = send(&a, &a, "GET", "/api/0.6/info", &basic(ADMIN), b"");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
    assert!(r.header("content-security-policy").unwrap_or_default().contains("frame-ancestors 'none'"), "{}", r.head);
    // A script or a frame of another origin gets nothing; a link from elsewhere opens the page.
    let r = send(
        &a,
        &a,
        "GET",
        "/api/0.6/info",
        &format!("{}Sec-Fetch-Site: same-site\r\nSec-Fetch-Mode: cors\r\n", basic(ADMIN)),
        b"",
    );
    assert!(r.status == 403 && r.text().contains("cross_site_request"), "{}", r.text());
    let frame =
        format!("{}Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: iframe\r\n", basic(ADMIN));
    assert_eq!(send(&a, &a, "GET", "/executions", &frame, b"").status, 403);
    let link = format!(
        "{}Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\n",
        basic(ADMIN)
    );
    assert_eq!(send(&a, &a, "GET", "/executions", &link, b"").status, 200);
    // `proxy-host` is gone.
    let e =
        Master::try_start_in(&crate::common::temp_dir("proxyhost"), &["--no-docker", "--proxy-host", "apps.zoe.test"])
            .err();
    assert!(e.unwrap_or_default().contains("--proxy-host"), "the old setting is refused");
}
