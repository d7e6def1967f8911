//! The authenticated proxy on the real Docker Engine: `/proxy/<execution>/<instance>/<port>/`
//! reaches a service's exposed port (HTTP both ways, large bodies streamed, WebSocket relayed),
//! forwards what the application needs and never the caller's credentials, and refuses others,
//! wrong passwords, other sites, ports that are not exposed, services that do not run, and more
//! connections than a user may hold.
//!
//! Needs Docker and `zoe-test-busybox:latest`; fails loudly without them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::common::docker::{application, docker_master_with, exec_in, service, wait_status};
use crate::common::{assert_error, Master, ADMIN};

const ALICE: (&str, &str) = ("alice", "pa");
const BOB: (&str, &str) = ("bob", "pb");

/// An echo server in busybox sh, one process per connection (`nc -ll -e`): a WebSocket upgrade
/// gets a `101` and then every byte back; any other request gets its own head as the body.
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
printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' "${{#h}}" "$h"
"#;

/// One request over a fresh connection, `Connection: close`: status, head and body.
fn raw(m: &Master, request: &str) -> (u16, String, Vec<u8>) {
    let addr = m.url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.replace("HOST", addr).as_bytes()).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
    let head = String::from_utf8_lossy(&all[..end]).to_string();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head, all[end..].to_vec())
}

fn basic((u, p): (&str, &str)) -> String {
    format!("Authorization: Basic {}\r\n", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
}

fn get(path: &str, who: Option<(&str, &str)>, extra: &str) -> String {
    let auth = who.map(basic).unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: HOST\r\n{auth}{extra}Connection: close\r\n\r\n")
}

/// Opens a WebSocket through the proxy; returns the connection after the `101` and the head.
fn open_socket(m: &Master, path: &str, who: (&str, &str)) -> (TcpStream, String) {
    let addr = m.url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{}Connection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        basic(who)
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "the proxy closed during the upgrade: {head:?}");
        head.push(byte[0]);
    }
    (s, String::from_utf8_lossy(&head).to_string())
}

#[test]
fn the_proxy_reaches_exposed_ports_of_running_services_for_their_owner_only() {
    let (m, _cleanup, dep) = docker_master_with("proxy", &["--max-proxy-connections", "2"]);
    m.create_user("alice", "user", "pa");
    m.create_user("bob", "user", "pb");
    let files = service(
        "files",
        true,
        1,
        0,
        // The proxy forwards the whole path: the files go under the prefix Zoe tells.
        "sh -c 'd=$HOME/www$ZOE_PROXY_PATH_8080 && mkdir -p $d && head -c 8388608 /dev/urandom > $d/big.bin && \
         echo hello > $d/index.html && exec httpd -f -p 8080 -h $HOME/www'",
        json!([{"name": "site", "protocol": "http", "port_number": 8080, "path": "/index.html", "is_main_endpoint": true, "expose": true},
               {"name": "hidden", "protocol": "http", "port_number": 9999, "is_main_endpoint": false, "expose": false}]),
    );
    let mut echo = service(
        "echo",
        false,
        1,
        0,
        "sh -c 'exec nc -ll -p 9001 -e sh -c \"$ECHO\"'",
        json!([{"name": "echo", "protocol": "http", "port_number": 9001, "is_main_endpoint": false, "expose": true}]),
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

    // The service's JSON says where the proxy serves each exposed port; the container knows it.
    let base = format!("/proxy/{id}/files/8080/");
    assert_eq!(files["ports"][0]["proxy_url"], format!("{base}index.html"), "{files}");
    assert_eq!(files["ports"][1]["proxy_url"], Value::Null, "a port that is not exposed has no proxy");
    let (ok, env) = exec_in(files["name"].as_str().unwrap(), "echo $ZOE_PROXY_PATH_8080");
    assert!(ok && env.trim() == base, "{env}");

    // The owner gets the page; an administrator too; `/8080` is the folder `/8080/`.
    std::thread::sleep(Duration::from_millis(500));
    let (s, _, body) = raw(&m, &get(&format!("{base}index.html"), Some(ALICE), ""));
    assert_eq!((s, String::from_utf8_lossy(&body).as_ref()), (200, "hello\n"));
    assert_eq!(raw(&m, &get(&format!("{base}index.html"), Some(ADMIN), "")).0, 200);
    // A tenant's file is never taken for another type than it says.
    let (_, head, _) = raw(&m, &get(&format!("{base}index.html"), Some(ALICE), ""));
    assert!(head.to_ascii_lowercase().contains("x-content-type-options: nosniff\r\n"), "{head}");
    let (s, head, _) = raw(&m, &get(&format!("/proxy/{id}/files/8080?a=1"), Some(ALICE), ""));
    assert_eq!(s, 308, "{head}");
    assert!(head.to_ascii_lowercase().contains(&format!("location: {base}?a=1\r\n")), "{head}");

    // 8 MiB come through whole (streamed, with their length).
    let (s, head, body) = raw(&m, &get(&format!("{base}big.bin"), Some(ALICE), ""));
    assert_eq!(s, 200);
    assert!(head.to_ascii_lowercase().contains("content-length: 8388608"), "{head}");
    let ws = m.state_dir.join("ws").join(&dep).join("alice");
    let written = ws.join(format!("www/proxy/{id}/files/8080/big.bin"));
    assert_eq!(body, std::fs::read(written).unwrap(), "the bytes the service wrote");

    // What the application sees: the path and query as sent, the browser's Host and cookies,
    // never the caller's credentials.
    let (s, _, body) = raw(&m, &get(&format!("/proxy/{id}/echo/9001/a/b?x=1&y=%20"), Some(ALICE), "Cookie: c=1\r\n"));
    let seen = String::from_utf8_lossy(&body).to_string();
    assert_eq!(s, 200, "{seen}");
    assert!(seen.starts_with(&format!("GET /proxy/{id}/echo/9001/a/b?x=1&y=%20 HTTP/1.1\n")), "{seen}");
    let host = m.url.trim_start_matches("http://");
    assert!(seen.to_ascii_lowercase().contains(&format!("host: {host}\n")), "{seen}");
    assert!(seen.contains("Cookie: c=1\n") || seen.contains("cookie: c=1\n"), "{seen}");
    assert!(!seen.to_ascii_lowercase().contains("authorization"), "Zoe's credentials reached the container: {seen}");

    // Refusals: another user and a guessed id get what they get for the execution (404), a wrong
    // password and no password 401, another site 403, a port that is not exposed or an unknown
    // instance 404.
    let (s, _, body) = raw(&m, &get(&format!("{base}index.html"), Some(BOB), ""));
    assert_eq!(s, 404);
    assert!(String::from_utf8_lossy(&body).contains("no_such_execution"));
    assert_eq!(raw(&m, &get(&format!("/proxy/{}/files/8080/", id + 100), Some(ALICE), "")).0, 404);
    assert_eq!(raw(&m, &get(&format!("{base}index.html"), Some(("alice", "wrong")), "")).0, 401);
    assert_eq!(raw(&m, &get(&format!("{base}index.html"), None, "")).0, 401);
    let (s, _, body) = raw(&m, &get(&format!("{base}index.html"), Some(ALICE), "Origin: https://evil.example\r\n"));
    assert_eq!(s, 403);
    assert!(String::from_utf8_lossy(&body).contains("cross_site_request"));
    for path in
        [format!("/proxy/{id}/files/9999/"), format!("/proxy/{id}/nothing/8080/"), format!("/proxy/{id}/files/x/")]
    {
        let (s, _, body) = raw(&m, &get(&path, Some(ALICE), ""));
        assert_eq!(s, 404, "{path}");
        assert!(String::from_utf8_lossy(&body).contains("no_such_service"), "{path}");
    }

    // A WebSocket is relayed both ways; a user holds at most 2 proxied connections at once.
    let (mut one, head) = open_socket(&m, &format!("/proxy/{id}/echo/9001/ws"), ALICE);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_ascii_lowercase().contains("x-echo: yes"), "{head}");
    for msg in ["ping 1\n", "a longer message, twice over\n"] {
        one.write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0u8; msg.len()];
        one.read_exact(&mut back).unwrap();
        assert_eq!(String::from_utf8_lossy(&back), msg);
    }
    let (_two, head) = open_socket(&m, &format!("/proxy/{id}/echo/9001/ws"), ALICE);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (s, head, _) = raw(&m, &get(&format!("{base}index.html"), Some(ALICE), ""));
    assert_eq!(s, 429, "a third connection: {head}");
    assert_eq!(raw(&m, &get(&format!("{base}index.html"), Some(ADMIN), "")).0, 200, "administrators are not counted");
    drop(one);
    let mut freed = false;
    for _ in 0..50 {
        if raw(&m, &get(&format!("{base}index.html"), Some(ALICE), "")).0 == 200 {
            freed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(freed, "a closed WebSocket gives its place back");

    // Once terminated, nothing is reachable.
    assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), ALICE).0, 204);
    wait_status(&m, ALICE, id, &["terminated"], 60);
    let (s, _, body) = raw(&m, &get(&format!("{base}index.html"), Some(ALICE), ""));
    assert_eq!(s, 503);
    assert!(String::from_utf8_lossy(&body).contains("no longer running"));
    assert_error(&m.get("/api/0.6/execution/0", BOB), 404, "no_such_execution");
}

/// `req` with its `Host` header set to `host`.
fn on_host(req: &str, host: &str) -> String {
    req.replacen("Host: HOST", &format!("Host: {host}"), 1)
}

#[test]
fn with_a_proxy_host_proxied_pages_live_on_another_origin_than_zoe() {
    let (m, _cleanup, _) = docker_master_with("proxyhost", &["--proxy-host", "apps.zoe.test"]);
    m.create_user("alice", "user", "pa");
    let files = service(
        "files",
        true,
        1,
        0,
        "sh -c 'd=$HOME/www$ZOE_PROXY_PATH_8080 && mkdir -p $d && echo hello > $d/index.html && exec httpd -f -p 8080 -h $HOME/www'",
        json!([{"name": "site", "protocol": "http", "port_number": 8080, "is_main_endpoint": true, "expose": true}]),
    );
    let id = m.submit(ALICE, "px", &application(vec![files]));
    assert_eq!(wait_status(&m, ALICE, id, &["running", "error"], 60)["status"], "running");
    let port = m.url.rsplit(':').next().unwrap().to_string();
    let apps = format!("apps.zoe.test:{port}");
    let page = format!("/proxy/{id}/files/8080/index.html?a=1");

    // On the master's address, the proxy sends the browser to the applications' host first,
    // without asking who it is.
    let (s, head, _) = raw(&m, &get(&page, None, ""));
    assert_eq!(s, 307, "{head}");
    assert!(head.to_ascii_lowercase().contains(&format!("location: http://{apps}{page}\r\n")), "{head}");
    // There, with the user's credentials, the page.
    let mut served = false;
    for _ in 0..50 {
        let (s, _, body) = raw(&m, &on_host(&get(&page, Some(ALICE), ""), &apps));
        if s == 200 {
            assert_eq!(String::from_utf8_lossy(&body), "hello\n");
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served, "the page was never served on the applications' host");
    // That host serves nothing of Zoe: a script of a proxied page cannot read Zoe's pages or use
    // its API as its visitor (same origin), and Zoe refuses its cross-origin requests.
    for path in ["/api/0.6/user/alice", "/executions", "/metrics"] {
        let (s, _, body) = raw(&m, &on_host(&get(path, Some(ALICE), ""), &apps));
        assert_eq!(s, 404, "{path}");
        assert!(String::from_utf8_lossy(&body).contains("serves only applications"), "{path}");
    }
    let attack = format!(
        "POST /api/0.6/user HTTP/1.1\r\nHost: HOST\r\n{}Origin: http://{apps}\r\nContent-Type: application/json\r\n\
         Content-Length: 49\r\nConnection: close\r\n\r\n{{\"name\":\"evil\",\"role\":\"admin\",\"password\":\"pw\"}}",
        basic(ADMIN)
    );
    let (s, _, body) = raw(&m, &attack);
    assert_eq!(s, 403, "{}", String::from_utf8_lossy(&body));
    assert_eq!(m.get("/api/0.6/user/evil", ADMIN).0, 404, "no admin was made");
}
