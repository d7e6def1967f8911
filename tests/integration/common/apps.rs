//! A client of application hosts without a browser: it signs in through Zoe's `/proxy/...` link as
//! a browser does (the redirect with a one-time ticket, the host's cookie), then talks to the
//! application's host (`<port>-<instance>-<id>.localhost:<port>`) on the master's own address,
//! with that `Host` header. Raw HTTP/1.1, one connection per request, so that every header sent
//! and received is the test's to choose and see.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;

use super::Master;

/// An answer: status, head (as sent) and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers(name).into_iter().next()
    }

    /// Every value of a header.
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `Authorization: Basic ...` for a user.
pub fn basic((u, p): (&str, &str)) -> String {
    format!("Authorization: Basic {}\r\n", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
}

/// The master's `address:port`.
pub fn addr(m: &Master) -> String {
    m.url.trim_start_matches("http://").to_string()
}

/// Sends one request (`Connection: close`) to `addr` with `Host: host`; `extra` are more header
/// lines, each ending with `\r\n`.
pub fn send(addr: &str, host: &str, method: &str, path: &str, extra: &str, body: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let length = if body.is_empty() && matches!(method, "GET" | "HEAD") {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}{length}Connection: close\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4).unwrap_or_else(|| {
        panic!("no response head for {method} {path} on {host}: {:?}", String::from_utf8_lossy(&all))
    });
    let head = String::from_utf8_lossy(&all[..end]).to_string();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Response { status, head, body: all[end..].to_vec() }
}

/// `GET <entry>` on Zoe's origin (a `/proxy/...` link), as `who` if anyone, with `extra` headers.
pub fn enter(m: &Master, who: Option<(&str, &str)>, entry: &str, extra: &str) -> Response {
    let a = addr(m);
    let auth = who.map(basic).unwrap_or_default();
    send(&a, &a, "GET", entry, &format!("{auth}{extra}"), b"")
}

/// Splits `http://host/path?query` into the host and the path with its query.
pub fn split_url(url: &str) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    (host.to_string(), if path.is_empty() { "/".to_string() } else { path.to_string() })
}

/// A browser-less visitor signed in to one application host.
#[derive(Clone, Debug)]
pub struct AppClient {
    /// The master's address, where the application host is served too.
    pub addr: String,
    /// The application host, `<label>.<apps-domain>:<port>`.
    pub host: String,
    /// `name=value` of the host's cookie.
    pub cookie: String,
    /// Where the sign-in sent the visitor (the path and query asked for on Zoe).
    pub next: String,
    /// The sign-in link (with its ticket, used up).
    pub sign_in: String,
    /// Every host the sign-in went through (the execution's other exposed ports after this
    /// one's), with the cookie each gave.
    pub chain: Vec<(String, String)>,
}

/// Follows `entry` on Zoe's origin as `who` and signs in on the application host it sends to,
/// then on the execution's other hosts the sign-in goes through, back to the first; panics
/// unless every step works.
pub fn sign_in(m: &Master, who: (&str, &str), entry: &str) -> AppClient {
    let r = enter(m, Some(who), entry, "");
    assert_eq!(r.status, 303, "GET {entry} as {}: {}{}", who.0, r.head, r.text());
    let location = r.header("location").unwrap();
    let (first, first_path) = split_url(&location);
    let a = addr(m);
    let (mut host, mut path) = (first.clone(), first_path.clone());
    let mut chain = Vec::new();
    loop {
        assert!(path.starts_with("/.zoe/sign-in?ticket="), "{host}{path}");
        let s = send(&a, &host, "GET", &path, "", b"");
        assert_eq!(s.status, 303, "the sign-in on {host}: {}{}", s.head, s.text());
        let set = s.header("set-cookie").unwrap_or_else(|| panic!("no cookie from the sign-in: {}", s.head));
        chain.push((host.clone(), set.split(';').next().unwrap().trim().to_string()));
        let to = s.header("location").unwrap();
        if to.starts_with('/') {
            assert_eq!(chain.len(), 1, "only a sign-in alone ends on its own host: {to}");
            return AppClient { addr: a, host, cookie: chain[0].1.clone(), next: to, sign_in: first_path, chain };
        }
        (host, path) = split_url(&to);
        if !path.starts_with("/.zoe/sign-in") {
            assert_eq!(host, first, "a chain ends on its first host");
            assert!(chain.len() > 1 && chain.len() <= 16, "{chain:?}");
            let cookie = chain[0].1.clone();
            return AppClient { addr: a, host, cookie, next: path, sign_in: first_path, chain };
        }
    }
}

impl AppClient {
    /// The same visitor on another host its sign-in went through.
    pub fn on(&self, host: &str) -> AppClient {
        let (_, cookie) = self.chain.iter().find(|(h, _)| h == host).unwrap_or_else(|| panic!("{host}: {self:?}"));
        AppClient { host: host.to_string(), cookie: cookie.clone(), ..self.clone() }
    }

    /// A request with this visitor's cookie, plus `extra` headers.
    pub fn request(&self, method: &str, path: &str, extra: &str, body: &[u8]) -> Response {
        send(&self.addr, &self.host, method, path, &format!("Cookie: {}\r\n{extra}", self.cookie), body)
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, "", b"")
    }

    /// The origin of the application host, as a browser writes it in `Origin`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.host)
    }

    /// Opens a WebSocket on the application host; returns the connection after the answer's head,
    /// and the head.
    pub fn open_socket(&self, path: &str, extra: &str) -> (TcpStream, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\n{extra}Connection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            self.host, self.cookie
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
}
