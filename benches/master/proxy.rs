//! 8. The proxy against the services reached directly, and a plain relay of bytes.

use super::*;

/// One request over a fresh connection to `addr` with `Host: host` and `extra` header lines:
/// the status, the head, and the body (read in 256 KiB pieces; kept only with `keep`) with its
/// length.
pub fn raw_get(addr: &str, host: &str, path: &str, extra: &str, keep: bool) -> (u16, String, Vec<u8>, u64) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let _ = s.set_read_timeout(Some(Duration::from_secs(120)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut head = Vec::new();
    let mut in_head = true;
    let mut body = Vec::new();
    let mut n_body = 0u64;
    loop {
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        if in_head {
            head.extend_from_slice(&buf[..n]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                in_head = false;
                let rest = head.split_off(i + 4);
                n_body += rest.len() as u64;
                if keep {
                    body.extend_from_slice(&rest);
                }
            }
        } else {
            n_body += n as u64;
            if keep {
                body.extend_from_slice(&buf[..n]);
            }
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head, body, n_body)
}

/// A header of a response head.
pub fn header_of(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())
        })
        .expect("a header missing from the head")
}

/// Signs alice in to the application host of `link` (the master at `addr`) as a browser does:
/// the host and its cookie (`name=value`).
pub fn sign_in(addr: &str, link: &str) -> (String, String) {
    let (s, head, _, _) = raw_get(addr, addr, link, &format!("Authorization: {AUTH}\r\n"), false);
    assert_eq!(s, 303, "{head}");
    let location = header_of(&head, "location");
    let rest = location.split_once("://").map_or(location.as_str(), |(_, r)| r);
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (s, head, _, _) = raw_get(addr, host, path, "", false);
    assert_eq!(s, 303, "{head}");
    let cookie = header_of(&head, "set-cookie").split(';').next().unwrap_or_default().to_string();
    (host.to_string(), cookie)
}

/// Seconds to download `path` `times` times (to nowhere) from `addr` as `host`, with `extra`
/// headers; and the bytes.
pub fn download(addr: &str, host: &str, path: &str, extra: &str, times: usize) -> (f64, u64) {
    let t = Instant::now();
    let mut bytes = 0;
    for _ in 0..times {
        let (s, head, _, n) = raw_get(addr, host, path, extra, false);
        assert_eq!(s, 200, "{head}");
        bytes += n;
    }
    (t.elapsed().as_secs_f64(), bytes)
}

/// Round trips of 32 bytes over a WebSocket opened at `addr` as `host` (with `extra` headers),
/// to an echo service: each round trip's time in microseconds, sorted.
pub fn websocket_round_trips(addr: &str, host: &str, extra: &str, n: usize) -> Vec<f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap_or(0), 1, "the upgrade was cut: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    let msg = [b'x'; 32];
    let mut back = [0u8; 32];
    let mut times = Vec::with_capacity(n);
    for i in 0..n + 100 {
        let t = Instant::now();
        s.write_all(&msg).unwrap();
        s.read_exact(&mut back).unwrap();
        if i >= 100 {
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    times.sort_by(f64::total_cmp);
    times
}

/// Round trip times, directly and through the proxy.
pub type RoundTrips = (Vec<f64>, Vec<f64>);

/// A plain relay of bytes to `target` on a local port of its own (two threads per connection,
/// 256 KiB buffers, no HTTP): the floor of any proxy, for reference. Its address.
pub fn plain_relay(target: String) -> String {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    fn pump(mut from: TcpStream, mut to: TcpStream) {
        let mut buf = vec![0u8; 256 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(service) = TcpStream::connect(&target) else { continue };
            let _ = (client.set_nodelay(true), service.set_nodelay(true));
            let (Ok(c2), Ok(s2)) = (client.try_clone(), service.try_clone()) else { continue };
            std::thread::spawn(move || pump(client, service));
            std::thread::spawn(move || pump(s2, c2));
        }
    });
    addr
}

/// A relay of bytes like [`plain_relay`] that never sleeps: one thread per connection polls both
/// directions without blocking, so no byte waits for a thread to wake up. It burns a core while a
/// connection is open: not a design, a measure of what the wake-ups of a relay cost here. Its
/// address.
pub fn spinning_relay(target: String) -> String {
    use std::io::{ErrorKind, Read, Write};
    use std::net::{TcpListener, TcpStream};
    /// Moves what `from` has to `to`: `false` once `from` is done or `to` failed.
    fn pump(from: &mut TcpStream, to: &mut TcpStream, buf: &mut [u8], moved: &mut bool) -> bool {
        match from.read(buf) {
            Ok(0) => false,
            Ok(n) => {
                *moved = true;
                to.write_all(&buf[..n]).is_ok()
            }
            Err(e) => e.kind() == ErrorKind::WouldBlock,
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(service) = TcpStream::connect(&target) else { continue };
            std::thread::spawn(move || {
                let (mut c, mut s) = (client, service);
                for t in [&c, &s] {
                    let _ = (t.set_nodelay(true), t.set_nonblocking(true));
                }
                let mut buf = vec![0u8; 256 * 1024];
                let mut idle = Instant::now();
                loop {
                    let mut moved = false;
                    if !pump(&mut c, &mut s, &mut buf, &mut moved) || !pump(&mut s, &mut c, &mut buf, &mut moved) {
                        break;
                    }
                    if moved {
                        idle = Instant::now();
                    } else if idle.elapsed() > Duration::from_secs(5) {
                        break;
                    } else {
                        std::hint::spin_loop();
                    }
                }
            });
        }
    });
    addr
}

/// Round trips of a JupyterLab kernel (`apps/jupyter.json`; skipped without its image): `1`
/// executed 300 times over the kernel's WebSocket by `tests/clients/jupyter.py`, directly at the
/// container with the notebook's token and through the proxy with the host's cookie, twice in
/// turns; each round trip in microseconds, sorted.
pub fn jupyter_round_trips(agent: &ureq::Agent, addr: &str) -> Option<RoundTrips> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let app: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("apps/jupyter.json")).ok()?).ok()?;
    let image = app["services"][0]["docker_image"].as_str()?.to_string();
    if docker_cli(&["image", "inspect", "--format", "{{.Id}}", &image]).trim().is_empty() {
        println!("(no {image}: the JupyterLab round trips are left out; apps/build-images.sh builds it)");
        return None;
    }
    let body = json!({"name": "nb", "application": app}).to_string();
    let (s, v) = http(agent, "POST", &format!("http://{addr}/api/0.6/execution"), Some(body));
    assert_eq!(s, 201, "{v}");
    let id = v["execution_id"].as_u64().unwrap_or_default();
    let url = format!("http://{addr}/api/0.6/execution/{id}");
    wait_for(agent, &url, "running");
    let (_, e) = http(agent, "GET", &url, None);
    let (_, svc) = http(agent, "GET", &format!("http://{addr}/api/0.6/service/{}", e["services"][0]), None);
    let ip = svc["ip_address"].as_object().and_then(|m| m.values().next()).and_then(|v| v.as_str()).unwrap_or_default();
    let container = svc["name"].as_str().unwrap_or_default().to_string();
    let (host, cookie) = sign_in(addr, &format!("/proxy/{id}/notebook/8888/"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while raw_get(addr, &host, "/api/status", &format!("Cookie: {cookie}\r\n"), false).0 != 200 {
        assert!(Instant::now() < deadline, "the notebook never answered");
        std::thread::sleep(Duration::from_millis(500));
    }
    let secret = docker_cli(&["exec", &container, "printenv", "ZOE_PROXY_SECRET"]).trim().to_string();
    let client = root.join("tests/clients/jupyter.py");
    let run = |address: &str, host: &str, header: &str| -> Vec<f64> {
        let out = std::process::Command::new("python3")
            .arg(&client)
            .args(["round-trips", address, host, header, "300"])
            .output()
            .expect("python3");
        let mut v: Vec<f64> = serde_json::from_slice(&out.stdout).unwrap();
        v.sort_by(f64::total_cmp);
        v
    };
    let direct = format!("{ip}:8888");
    let (mut d, mut p) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        d.extend(run(&direct, &direct, &format!("Authorization: token {secret}")));
        p.extend(run(addr, &host, &format!("Cookie: {cookie}")));
    }
    d.sort_by(f64::total_cmp);
    p.sort_by(f64::total_cmp);
    http(agent, "DELETE", &url, None);
    wait_for(agent, &url, "terminated");
    Some((d, p))
}

/// The busybox echo server of the WebSocket round trips: a `101`, then every byte back.
/// (Braces are doubled: descriptions are templates.)
pub const WS_ECHO: &str = r#"while IFS= read -r l; do l="${{l%$(printf '\r')}}"; [ -z "$l" ] && break; done
printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'; exec cat
"#;

/// The proxy's overhead: a busybox httpd and an echo server in an execution, reached on their
/// application hosts (signed in with their cookies, as a browser is) and directly at the
/// containers' addresses, in turns.
pub fn proxy(secs: f64) {
    // A run cut short may have left its containers behind.
    docker_cli(&["rm", "-f", "web-proxy-alice-bench", "echo-proxy-alice-bench"]);
    let dir = prepare_dir("proxy", 0);
    let ws = dir.join("ws");
    let (child, addr) = master_process(
        &dir,
        &[
            "--deployment-name",
            "bench",
            "--stop-grace",
            "1",
            "--max-proxy-connections",
            "1000",
            "--workspace-base-path",
            ws.to_str().unwrap_or("ws"),
        ],
    );
    let agent = agent(Duration::from_secs(120));
    let ports = |port: u16| json!([{"name": "p", "protocol": "http", "port_number": port, "is_main_endpoint": true, "expose": true}]);
    let app = json!({
        "name": "proxy", "version": 2, "will_end": false, "requires_binary": false, "priority": 1,
        "services": [
            {"name": "web", "docker_image": "zoe-test-busybox:latest", "monitor": true, "total_count": 1,
             "essential_count": 1, "startup_order": 0, "required_resources": {"memory": 134217728, "cores": 1},
             "ports": ports(8080),
             "command": "sh -c 'd=$HOME/www && mkdir -p $d && echo hello > $d/small.txt && head -c 67108864 /dev/urandom > $d/large.bin && exec httpd -f -p 8080 -h $d'"},
            {"name": "echo", "docker_image": "zoe-test-busybox:latest", "monitor": false, "total_count": 1,
             "essential_count": 1, "startup_order": 0, "required_resources": {"memory": 33554432, "cores": 1},
             "ports": ports(9001), "environment": [["ECHO", WS_ECHO]],
             "command": "sh -c 'exec nc -ll -p 9001 -e sh -c \"$ECHO\"'"}
        ]
    });
    let body = json!({"name": "proxy", "application": app}).to_string();
    let (s, v) = http(&agent, "POST", &format!("http://{addr}/api/0.6/execution"), Some(body));
    assert_eq!(s, 201, "{v}");
    let id = v["execution_id"].as_u64().unwrap_or_default();
    let url = format!("http://{addr}/api/0.6/execution/{id}");
    wait_for(&agent, &url, "running");
    let (_, e) = http(&agent, "GET", &url, None);
    let ip_of = |sid: &serde_json::Value| {
        let (_, svc) = http(&agent, "GET", &format!("http://{addr}/api/0.6/service/{sid}"), None);
        let ip = svc["ip_address"].as_object().and_then(|m| m.values().next()).and_then(|v| v.as_str());
        (svc["service_name"].as_str().unwrap_or_default().to_string(), ip.unwrap_or_default().to_string())
    };
    let ips: std::collections::HashMap<String, String> =
        e["services"].as_array().map(|a| a.iter().map(ip_of).collect()).unwrap_or_default();
    let (web_direct, echo_direct) = (format!("{}:8080", ips["web"]), format!("{}:9001", ips["echo"]));
    // Until the files are there.
    let deadline = Instant::now() + Duration::from_secs(60);
    while agent.get(format!("http://{web_direct}/small.txt")).call().map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        assert!(Instant::now() < deadline, "httpd never served");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (web_host, web_cookie) = sign_in(&addr, &format!("/proxy/{id}/web/8080/"));
    let (echo_host, echo_cookie) = sign_in(&addr, &format!("/proxy/{id}/echo/9001/"));
    let web_headers = format!("Cookie: {web_cookie}\r\n");
    let echo_headers = format!("Cookie: {echo_cookie}\r\nOrigin: http://{echo_host}\r\n");
    let only = std::env::var("ZOE_BENCH_PROXY").unwrap_or_default();
    // The floor of any proxy on this machine: a plain relay of bytes (two threads, 256 KiB
    // buffers, no HTTP), to the same services.
    let (web_relay, echo_relay) = (plain_relay(web_direct.clone()), plain_relay(echo_direct.clone()));
    // And what a relay would take without its wake-ups (see `spinning_relay`).
    let echo_spinning = spinning_relay(echo_direct.clone());
    let (mut small, mut large, mut rtt) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..2 {
        if only.is_empty() || only == "small" {
            let host = format!("Host: {web_host}");
            let cookie = format!("Cookie: {web_cookie}");
            // (busybox httpd closes every connection; the plain relay, one thread per direction,
            // is not meant for that.)
            small.push([
                wrk(&format!("http://{web_direct}/small.txt"), 1, secs, &[]),
                (f64::NAN, f64::NAN, f64::NAN),
                wrk(&format!("http://{addr}/small.txt"), 1, secs, &[&host, &cookie]),
            ]);
        }
        if only.is_empty() || only == "large" {
            let (d, n) = download(&web_direct, &web_direct, "/large.bin", "", 4);
            let (r, _) = download(&web_relay, &web_relay, "/large.bin", "", 4);
            let (p, m) = download(&addr, &web_host, "/large.bin", &web_headers, 4);
            assert_eq!(n, m, "the same bytes both ways");
            large.push([n as f64 / d / 1e6, n as f64 / r / 1e6, m as f64 / p / 1e6]);
        }
        if only.is_empty() || only == "websocket" {
            let d = websocket_round_trips(&echo_direct, &echo_direct, "", 2000);
            let r = websocket_round_trips(&echo_relay, &echo_relay, "", 2000);
            let p = websocket_round_trips(&addr, &echo_host, &echo_headers, 2000);
            let spin = websocket_round_trips(&echo_spinning, &echo_spinning, "", 2000);
            rtt.push([d, r, p, spin]);
        }
    }
    let mean = |v: &[f64]| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
    let pct =
        |v: &[f64], q: f64| if v.is_empty() { f64::NAN } else { v[((v.len() as f64 * q) as usize).min(v.len() - 1)] };
    // Each figure for the three paths: directly, the plain relay, the proxy.
    let three = |f: &dyn Fn(usize) -> f64| [f(0), f(1), f(2)];
    let rps = three(&|i| mean(&small.iter().map(|r| r[i].0).collect::<Vec<_>>()));
    let p50 = three(&|i| mean(&small.iter().map(|r| r[i].1).collect::<Vec<_>>()));
    let p99 = three(&|i| mean(&small.iter().map(|r| r[i].2).collect::<Vec<_>>()));
    let mbs = three(&|i| mean(&large.iter().map(|l| l[i]).collect::<Vec<_>>()));
    let ws_mean = three(&|i| mean(&rtt.iter().map(|r| mean(&r[i])).collect::<Vec<_>>()));
    let ws50 = three(&|i| mean(&rtt.iter().map(|r| pct(&r[i], 0.5)).collect::<Vec<_>>()));
    let ws99 = three(&|i| mean(&rtt.iter().map(|r| pct(&r[i], 0.99)).collect::<Vec<_>>()));
    println!(
        "\nproxy: busybox httpd and echo in containers, directly at their addresses, through a plain relay of bytes \
         (the floor of any proxy) and through the master's proxy on their application hosts (wrk 1 thread, 16 \
         connections; mean of 2 alternating runs):\n"
    );
    println!("| | directly | a plain relay | through the proxy | proxy / directly |");
    println!("|---|---|---|---|---|");
    println!("| small file (6 B): requests/s | {:.0} | | {:.0} | {:.2}x |", rps[0], rps[2], rps[2] / rps[0]);
    println!("| small file: p50, p99 ms | {:.2}, {:.2} | | {:.2}, {:.2} | |", p50[0], p99[0], p50[2], p99[2]);
    println!(
        "| 64 MiB file, one client: MB/s | {:.0} | {:.0} | {:.0} | {:.2}x |",
        mbs[0],
        mbs[1],
        mbs[2],
        mbs[2] / mbs[0]
    );
    println!(
        "| WebSocket round trip (32 B), mean µs | {:.0} | {:.0} | {:.0} | {:.2}x |",
        ws_mean[0],
        ws_mean[1],
        ws_mean[2],
        ws_mean[2] / ws_mean[0]
    );
    println!(
        "| WebSocket round trip: p50, p99 µs | {:.0}, {:.0} | {:.0}, {:.0} | {:.0}, {:.0} | {:.2}x at p50 |",
        ws50[0],
        ws99[0],
        ws50[1],
        ws99[1],
        ws50[2],
        ws99[2],
        ws50[2] / ws50[0]
    );
    let spin = |q: f64| mean(&rtt.iter().map(|r| pct(&r[3], q)).collect::<Vec<_>>());
    println!(
        "| WebSocket round trip, a relay that never sleeps (spins): p50, p99 µs | | {:.0}, {:.0} | | |",
        spin(0.5),
        spin(0.99)
    );
    http(&agent, "DELETE", &url, None);
    wait_for(&agent, &url, "terminated");
    if only.is_empty() || only == "jupyter" {
        if let Some((d, p)) = jupyter_round_trips(&agent, &addr) {
            let (jd, jp) = (mean(&d) / 1000.0, mean(&p) / 1000.0);
            let (jd50, jp50) = (pct(&d, 0.5) / 1000.0, pct(&p, 0.5) / 1000.0);
            println!(
                "| JupyterLab kernel: execute `1`, WebSocket round trip, mean ms | {jd:.2} | | {jp:.2} | {:.2}x |",
                jp / jd
            );
            println!("| JupyterLab kernel: p50 ms | {jd50:.2} | | {jp50:.2} | {:.2}x |", jp50 / jd50);
        }
    }
    println!("\n(goals: small files and the 64 MiB download at least 0.9x, WebSocket round trips at most 1.2x)");
    stop(child);
    // The user's network outlives the execution (it goes with the user): leave nothing behind.
    docker_cli(&["network", "rm", "alice-bench"]);
    let _ = std::fs::remove_dir_all(&dir);
}
