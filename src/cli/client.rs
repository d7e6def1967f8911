//! The HTTP side of the command-line client: the server address and credentials, Basic
//! authentication, timeouts, a short retry on connection failures, and the mapping of every
//! failure to a [`CliError`] with its exit code.
//!
//! Redirects are not followed blindly: Zoe's API never redirects, so a redirect means a proxy in
//! between or a wrong address. One that stays on the server's own origin (scheme, host and port)
//! is followed (a few times at most; for a request with a body only when it keeps the method,
//! 307 and 308); one to anywhere else is not, and the command fails saying where it was sent
//! (exit code 5), so that no other host's answer is ever printed as Zoe's.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde::de::DeserializeOwned;
use serde_json::Value;
use zoe_actors::logic::views::QueryWhat;

use super::bulk;

/// Base path of the REST API.
const API: &str = "/api/0.6";
/// Time allowed for a whole request (not for `logs --follow`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed to open the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pauses between attempts when the server cannot be reached: 3 attempts in all.
const RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(500), Duration::from_millis(1000)];
/// Largest response body read into memory.
const MAX_BODY: u64 = 256 * 1024 * 1024;
/// Redirects within the server's origin followed at most, per request.
const MAX_REDIRECTS: u32 = 3;
/// A transfer of a workspace file that makes no progress for this long fails: the master's own
/// limit for a stalled transfer.
use crate::files::stream::STALL;
const USER_AGENT: &str = concat!("zoe-cli/", env!("CARGO_PKG_VERSION"));

/// Exit codes, documented in `zoe --help`.
pub mod exit {
    /// The server refused (an error status with its message and code), the description is
    /// invalid, or the execution ended before running (`start --wait`).
    pub const REFUSED: u8 = 1;
    /// The command line is wrong: unknown flag, missing argument, missing server or
    /// credentials, unreadable file.
    pub const USAGE: u8 = 2;
    /// The server could not be reached or did not answer in time.
    pub const CONNECTION: u8 = 3;
    /// `start --wait --timeout`: gave up waiting; the execution is still there.
    pub const GAVE_UP: u8 = 4;
    /// The server redirected the request to another origin (host, port or scheme), which the
    /// client does not follow.
    pub const REDIRECTED: u8 = 5;
}

/// Why a command failed; printed as `zoe: <message>` on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A refusal with a stable code: from the server, or from the local description check.
    #[error("{message} ({code})")]
    Refused { code: String, message: String },
    /// Another failure after the server answered (an execution that ended before running, an
    /// answer that is not Zoe's).
    #[error("{0}")]
    Failed(String),
    /// A mistake on the command line or in the environment.
    #[error("{0}")]
    Usage(String),
    /// No answer from the server.
    #[error("{0}")]
    Connection(String),
    /// Gave up waiting.
    #[error("{0}")]
    GaveUp(String),
    /// Sent elsewhere by a redirect that was not followed.
    #[error("{0}")]
    Redirected(String),
}

impl CliError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Refused { .. } | CliError::Failed(_) => exit::REFUSED,
            CliError::Usage(_) => exit::USAGE,
            CliError::Connection(_) => exit::CONNECTION,
            CliError::GaveUp(_) => exit::GAVE_UP,
            CliError::Redirected(_) => exit::REDIRECTED,
        }
    }
}

/// Where the server is and who is asking.
#[derive(Clone, Debug)]
pub struct Connection {
    /// `http://host:port` or `https://host:port`, without a trailing slash.
    pub url: String,
    pub user: String,
    pub password: String,
    /// An API token (of `zoe login`): sent as `Authorization: Bearer` instead of the password.
    pub token: Option<String>,
    /// PEM file of the certificate authorities trusted for `https://` instead of the built-in
    /// ones.
    pub ca_file: Option<PathBuf>,
}

impl Connection {
    /// Picks each setting from its flag, else from its environment variable; the first one
    /// missing is a usage error that names it.
    pub fn resolve(
        url: Option<String>,
        user: Option<String>,
        password: Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Connection, CliError> {
        let pick = |flag: Option<String>, var: &str, what: &str, name: &str| {
            flag.or_else(|| env(var))
                .filter(|v| !v.is_empty())
                .ok_or_else(|| CliError::Usage(format!("no {what} given: set {var} or pass --{name}")))
        };
        let url = pick(url, "ZOE_URL", "server", "url")?;
        let user = pick(user, "ZOE_USER", "user name", "user")?;
        let password = pick(password, "ZOE_PASS", "password", "password")?;
        Ok(Connection { url: normalize_url(&url)?, user, password, token: None, ca_file: None })
    }
}

/// `host:4850`, `http://host:4850/`, `http://host:4850/api/0.6` all become
/// `http://host:4850`; `https://` is kept.
pub fn normalize_url(raw: &str) -> Result<String, CliError> {
    let raw = raw.trim();
    let url = if raw.contains("://") { raw.to_string() } else { format!("http://{raw}") };
    let Some(scheme) = ["http://", "https://"].into_iter().find(|s| url.starts_with(s)) else {
        return Err(CliError::Usage(format!("server URL {raw:?} is not supported: use http:// or https://")));
    };
    let mut url = url.trim_end_matches('/');
    if let Some(base) = url.strip_suffix(API) {
        url = base.trim_end_matches('/');
    }
    if url.len() <= scheme.len() {
        return Err(CliError::Usage(format!("server URL {raw:?} has no host")));
    }
    Ok(url.to_string())
}

/// An HTTP method of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// How long a request may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Limit {
    /// All of it within [`REQUEST_TIMEOUT`].
    Whole,
    /// A transfer of a workspace file: the answer starts within [`REQUEST_TIMEOUT`], then it
    /// takes as long as it takes, but fails when no byte moves for [`STALL`].
    Transfer,
    /// An endless stream (`logs --follow`): only the answer's start is timed.
    Endless,
}

/// What a request carries.
#[derive(Clone, Copy)]
enum Sent<'a> {
    Nothing,
    /// A JSON document.
    Json(&'a [u8]),
    /// The first `len` bytes of a file, read as they are sent (`Content-Length: len`); `sent`
    /// is told how many bytes went so far.
    File {
        path: &'a Path,
        len: u64,
        sent: &'a dyn Fn(u64),
    },
}

/// A client of one Zoe master.
pub struct Client {
    conn: Connection,
    authorization: String,
    agent: ureq::Agent,
    /// The master over plain HTTP without a proxy: workspace files go without ureq ([`bulk`]).
    plain: Option<bulk::Plain>,
    /// A transfer that moves nothing for this long fails ([`STALL`]).
    stall: Duration,
}

impl Client {
    /// A client of `conn`; fails when its `--ca-file` cannot be read. With `--ca-file`, the
    /// server's certificate is checked by [`crate::tls::PinnedOrSigned`]: signed by an authority
    /// of the file, or exactly one of its certificates (a self-signed one, pinned).
    pub fn new(conn: Connection) -> Result<Client, CliError> {
        use ureq::unversioned::transport::{ConnectProxyConnector, Connector, TcpConnector};
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", conn.user, conn.password));
        let tls = ureq::tls::TlsConfig::builder().unversioned_rustls_crypto_provider(crate::tls::provider());
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .user_agent(USER_AGENT)
            .tls_config(tls.build())
            .build();
        let agent = match &conn.ca_file {
            None => config.into(),
            Some(path) => {
                let certs = crate::tls::load_certs(path, "the CA file").map_err(CliError::Usage)?;
                let tls = crate::tls::client_config(certs).map_err(CliError::Usage)?;
                let connector = ().chain(ConnectProxyConnector::default()).chain(TcpConnector::default());
                let connector = connector.chain(crate::tls::connector::RustlsWith(tls));
                ureq::Agent::with_parts(config, connector, ureq::unversioned::resolver::DefaultResolver::default())
            }
        };
        let authorization = match &conn.token {
            Some(bearer) => format!("Bearer {bearer}"),
            None => format!("Basic {token}"),
        };
        let plain = bulk::Plain::of(&conn.url, agent.config().proxy().is_some());
        Ok(Client { conn, authorization, agent, plain, stall: STALL })
    }

    /// The master's URL (`https://host:port`), for links through its proxy.
    pub fn master_url(&self) -> &str {
        &self.conn.url
    }

    /// `GET <path>`: the JSON answer.
    pub fn get(&self, path: &str) -> Result<Value, CliError> {
        self.json(Method::Get, path, None)
    }

    /// `POST <path>` with a JSON body: the JSON answer.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.json(Method::Post, path, Some(body))
    }

    /// `PUT <path>` with a JSON body: the JSON answer.
    pub fn put(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.json(Method::Put, path, Some(body))
    }

    /// `DELETE <path>`; the answer has no body.
    pub fn delete(&self, path: &str) -> Result<(), CliError> {
        self.send(Method::Delete, path, Sent::Nothing, Limit::Whole).map(drop)
    }

    /// `GET <path>` of something that may be large (a workspace file): the answer, its body
    /// not read yet. Its transfer is not timed as a whole, but fails when it stalls (see
    /// [`Limit::Transfer`]).
    pub fn download(&self, path: &str) -> Result<Download, CliError> {
        let stall = self.stall;
        if let Some(plain) = &self.plain {
            let target = format!("{API}{path}");
            if let bulk::Outcome::Done(body) = bulk::get(plain, &target, &self.headers(), REQUEST_TIMEOUT) {
                return Ok(Download { body: Received::Plain(body), stall });
            }
        }
        let resp = self.send(Method::Get, path, Sent::Nothing, Limit::Transfer)?;
        Ok(Download { body: Received::General(resp), stall })
    }

    /// `PUT <path>` with the first `len` bytes of the file at `local`, streamed from disk with
    /// `Content-Length: len` as `application/octet-stream`; `sent` is told the bytes sent so
    /// far. A file that turns out shorter than `len` fails the request.
    pub fn upload(&self, path: &str, local: &Path, len: u64, sent: &dyn Fn(u64)) -> Result<(), CliError> {
        // Opened once here for a clear error; each attempt opens it again.
        let file =
            std::fs::File::open(local).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", local.display())))?;
        if let Some(plain) = &self.plain {
            let target = format!("{API}{path}");
            match bulk::put(plain, &target, &self.headers(), &file, len, self.stall, sent) {
                Ok(bulk::Outcome::Declined) => {}
                Ok(bulk::Outcome::Done(a)) if (200..300).contains(&a.status) => return Ok(()),
                Ok(bulk::Outcome::Done(a)) => return Err(self.refusal(Method::Put, path, a.status, &a.text)),
                Err(bulk::Broke::Disk(e)) => {
                    return Err(CliError::Failed(format!("cannot read {}: {e}", local.display())))
                }
                Err(bulk::Broke::Network(e)) => {
                    return Err(CliError::Connection(format!("the upload to {} broke off: {e}", self.conn.url)))
                }
            }
        }
        self.send(Method::Put, path, Sent::File { path: local, len, sent }, Limit::Transfer).map(drop)
    }

    /// The headers of every request but its body's.
    fn headers(&self) -> [(&str, &str); 2] {
        [("Authorization", &self.authorization), ("User-Agent", USER_AGENT)]
    }

    /// `POST /query`: `what` with `filters`.
    pub fn query(&self, what: QueryWhat, filters: Value) -> Result<Value, CliError> {
        self.post("/query", &serde_json::json!({"what": what, "filters": filters}))
    }

    /// The answer read as the API's typed view `T`.
    pub fn typed<T: DeserializeOwned>(answer: Value) -> Result<T, CliError> {
        serde_json::from_value(answer)
            .map_err(|e| CliError::Failed(format!("the server's answer does not have the expected shape: {e}")))
    }

    /// `GET <path>` and copy the body to `out` as it arrives, flushing after each piece, with
    /// its control characters escaped when `escape` (see [`crate::escape::StreamEscaper`]). With
    /// `endless` there is no overall time limit (for a followed log). Stops quietly when `out`
    /// is closed (a pipe into `head`).
    pub fn stream(&self, path: &str, endless: bool, escape: bool, out: &mut dyn Write) -> Result<(), CliError> {
        let limit = if endless { Limit::Endless } else { Limit::Whole };
        let resp = self.send(Method::Get, path, Sent::Nothing, limit)?;
        let mut reader = resp.into_body().into_reader();
        let mut buf = vec![0u8; 16 * 1024];
        let mut escaper = crate::escape::StreamEscaper::default();
        let mut escaped = Vec::new();
        loop {
            let n = match reader.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(CliError::Connection(format!("the log stream from {} broke off: {e}", self.conn.url)))
                }
            };
            escaped.clear();
            let piece: &[u8] = match (escape, n) {
                (false, _) => &buf[..n],
                (true, 0) => {
                    escaper.finish(&mut escaped);
                    &escaped
                }
                (true, _) => {
                    escaper.feed(&buf[..n], &mut escaped);
                    &escaped
                }
            };
            match out.write_all(piece).and_then(|()| out.flush()) {
                Ok(()) if n > 0 => {}
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(CliError::Failed(format!("cannot write the log: {e}"))),
            }
        }
    }

    fn json(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        let body = body.map(|b| b.to_string().into_bytes());
        let sent = body.as_deref().map_or(Sent::Nothing, Sent::Json);
        let mut resp = self.send(method, path, sent, Limit::Whole)?;
        let text = read_text(&mut resp)
            .map_err(|e| CliError::Connection(format!("reading the answer of {}: {e}", self.conn.url)))?;
        serde_json::from_str(&text).map_err(|e| {
            CliError::Failed(format!(
                "{} {path} answered something that is not JSON ({e}): {}",
                method.as_str(),
                excerpt(&text)
            ))
        })
    }

    /// Sends one request, retrying only when it could not reach the server; returns the
    /// response when its status is a success, the server's refusal otherwise.
    fn send(
        &self,
        method: Method,
        path: &str,
        body: Sent,
        limit: Limit,
    ) -> Result<ureq::http::Response<ureq::Body>, CliError> {
        let mut url = format!("{}{API}{path}", self.conn.url);
        let mut redirects = 0;
        let mut resp = loop {
            let resp = self.send_once(method, &url, body, limit)?;
            if !resp.status().is_redirection() {
                break resp;
            }
            let location = resp.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_string);
            let status = resp.status().as_u16();
            let target = location.as_deref().and_then(|l| resolve(&url, l));
            let keeps_method = method == Method::Get || matches!(status, 307 | 308);
            match target {
                Some(t) if origin(&t).eq_ignore_ascii_case(origin(&self.conn.url)) && keeps_method => {
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        return Err(CliError::Redirected(format!(
                            "{} {path}: more than {MAX_REDIRECTS} redirects on {}; not followed further",
                            method.as_str(),
                            self.conn.url
                        )));
                    }
                    url = t;
                }
                _ => return Err(self.redirected(method, path, status, location.as_deref(), target.as_deref())),
            }
        };
        if resp.status().is_success() {
            return Ok(resp);
        }
        let text = read_text(&mut resp).unwrap_or_default();
        Err(self.refusal(method, path, resp.status().as_u16(), &text))
    }

    /// The failure of a request answered `status` with the body `text`: the server's refusal
    /// with its message and code, or an answer that is not Zoe's.
    fn refusal(&self, method: Method, path: &str, status: u16, text: &str) -> CliError {
        let parsed: Option<Value> = serde_json::from_str(text).ok();
        let field = |k: &str| parsed.as_ref().and_then(|v| v.get(k)).and_then(Value::as_str);
        let shown = ureq::http::StatusCode::from_u16(status).map_or_else(|_| status.to_string(), |s| s.to_string());
        match (field("message"), field("code")) {
            (Some(message), code) => CliError::Refused {
                code: code.map(str::to_string).unwrap_or_else(|| format!("http_{status}")),
                message: message.to_string(),
            },
            (None, _) => CliError::Refused {
                code: format!("http_{status}"),
                message: format!(
                    "{} {path} answered {shown} without a Zoe error (is {} a Zoe master?): {}",
                    method.as_str(),
                    self.conn.url,
                    excerpt(text)
                ),
            },
        }
    }

    /// Sends one request to `url`, retrying only when it could not reach the server.
    fn send_once(
        &self,
        method: Method,
        url: &str,
        body: Sent,
        limit: Limit,
    ) -> Result<ureq::http::Response<ureq::Body>, CliError> {
        let mut pauses = RETRY_PAUSES.iter();
        let mut attempts = 1;
        loop {
            match self.attempt(method, url, body, limit) {
                Ok(resp) => return Ok(resp),
                Err(e) => match (retryable(method, &e), pauses.next()) {
                    (true, Some(pause)) => {
                        std::thread::sleep(*pause);
                        attempts += 1;
                    }
                    _ => return Err(self.transport_error(&e, attempts)),
                },
            }
        }
    }

    /// The failure of a request redirected where the client does not follow.
    fn redirected(
        &self,
        method: Method,
        path: &str,
        status: u16,
        location: Option<&str>,
        target: Option<&str>,
    ) -> CliError {
        let m = method.as_str();
        let Some(location) = location else {
            return CliError::Redirected(format!(
                "{m} {path} was answered {status} (a redirect) by {} without saying where to; is it a Zoe master?",
                self.conn.url
            ));
        };
        let shown = zoe_actors::description::naming::shorten(location, 200);
        let check = "Zoe's API does not redirect: check the server address (--url, ZOE_URL)";
        match target {
            Some(t) if origin(t).eq_ignore_ascii_case(origin(&self.conn.url)) => CliError::Redirected(format!(
                "{m} {path} was redirected ({status}) to {shown} on the same server, which would change the \
                 request's method; not followed. {check}"
            )),
            Some(t) => {
                // The host name alone, without user info or port.
                let host = |u: &str| {
                    let authority = origin(u).split_once("://").map_or("", |(_, a)| a);
                    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                    crate::origin::split_host(authority).0.to_ascii_lowercase()
                };
                let place = if host(t) == host(&self.conn.url) {
                    "another scheme or port of the same host"
                } else {
                    "another host"
                };
                CliError::Redirected(format!(
                    "{m} {path} was redirected ({status}) by {} to {shown}, {place}; not followed, nothing was sent \
                     there. {check}",
                    self.conn.url
                ))
            }
            None => CliError::Redirected(format!(
                "{m} {path} was redirected ({status}) by {} to {shown}; not followed. {check}",
                self.conn.url
            )),
        }
    }

    fn attempt(
        &self,
        method: Method,
        url: &str,
        body: Sent,
        limit: Limit,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let req = ureq::http::Request::builder()
            .method(method.as_str())
            .uri(url)
            .header("Authorization", &self.authorization);
        match body {
            Sent::Nothing | Sent::Json(_) => {
                let (req, bytes) = match body {
                    Sent::Json(b) => (req.header("Content-Type", "application/json"), b.to_vec()),
                    _ => (req, Vec::new()),
                };
                let req = req.body(bytes).map_err(ureq::Error::Http)?;
                self.agent.run(self.limited(req, limit))
            }
            Sent::File { path, len, sent } => {
                let file = std::fs::File::open(path)?;
                let mut reader = Counted { inner: file.take(len), count: 0, len, sent };
                let req = req
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Length", len.to_string())
                    .body(ureq::SendBody::from_reader(&mut reader))
                    .map_err(ureq::Error::Http)?;
                self.agent.run(self.limited(req, limit))
            }
        }
    }

    /// `req` with the time limits of `limit`.
    fn limited<S: ureq::AsSendBody>(&self, req: ureq::http::Request<S>, limit: Limit) -> ureq::http::Request<S> {
        let (global, answer) = match limit {
            Limit::Whole => (Some(REQUEST_TIMEOUT), None),
            // Without an overall limit, the answer must still start in time.
            Limit::Transfer | Limit::Endless => (None, Some(REQUEST_TIMEOUT)),
        };
        let stall = matches!(limit, Limit::Transfer).then_some(self.stall);
        let req = self.agent.configure_request(req).timeout_global(global).timeout_recv_response(answer);
        req.timeout_per_read(stall).timeout_per_write(stall).build()
    }

    fn transport_error(&self, e: &ureq::Error, attempts: u32) -> CliError {
        let url = &self.conn.url;
        let tries = if attempts > 1 { format!(" (tried {attempts} times)") } else { String::new() };
        match e {
            ureq::Error::BadUri(m) => CliError::Usage(format!("bad server URL {url}: {m}")),
            ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => {
                CliError::Connection(format!("cannot connect to {url}: timed out{tries}"))
            }
            ureq::Error::Timeout(ureq::Timeout::PerRead | ureq::Timeout::PerWrite) => {
                CliError::Connection(format!("the transfer with {url} stalled: nothing moved for {:?}", self.stall))
            }
            ureq::Error::Timeout(_) => {
                CliError::Connection(format!("no answer from {url} within {} s", REQUEST_TIMEOUT.as_secs()))
            }
            ureq::Error::HostNotFound => {
                CliError::Connection(format!("cannot connect to {url}: host not found{tries}"))
            }
            ureq::Error::ConnectionFailed => CliError::Connection(format!("cannot connect to {url}{tries}")),
            ureq::Error::Io(io) => match crate::tls::certificate_error(io) {
                Some(why) => {
                    let hint = if self.conn.ca_file.is_some() {
                        "is --ca-file the authority that signed the master's certificate, or that certificate itself?"
                    } else {
                        "pass the master's certificate authority with --ca-file (or ZOE_CA_FILE)"
                    };
                    CliError::Connection(format!(
                        "cannot connect to {url}: the server's TLS certificate is not trusted ({why}); {hint}"
                    ))
                }
                None if before_sending(io) => CliError::Connection(format!("cannot connect to {url}: {io}{tries}")),
                None => CliError::Connection(format!("cannot reach {url}: {io}{tries}")),
            },
            other => CliError::Connection(format!("request to {url} failed: {other}{tries}")),
        }
    }
}

/// A download's answer, its body not read yet.
pub struct Download {
    body: Received,
    stall: Duration,
}

enum Received {
    /// Over plain HTTP, without ureq ([`bulk`]).
    Plain(bulk::Body),
    /// Through ureq (TLS, a proxy), which fails a read that waits longer than the stall limit.
    General(ureq::http::Response<ureq::Body>),
}

impl Download {
    /// The body's length, when the answer says it.
    pub fn length(&self) -> Option<u64> {
        match &self.body {
            Received::Plain(body) => Some(body.length),
            Received::General(resp) => {
                resp.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
            }
        }
    }

    /// Writes the body into `file` as it arrives, `got` told the bytes so far; fails when no
    /// byte came for [`STALL`]. Returns the bytes written: fewer than [`Download::length`] when
    /// the connection ended early.
    pub fn copy_to(self, file: &mut std::fs::File, got: &dyn Fn(u64)) -> Result<u64, bulk::Broke> {
        let resp = match self.body {
            Received::Plain(body) => return body.copy_to(file, self.stall, got),
            Received::General(resp) => resp,
        };
        let mut reader = resp.into_body().into_reader();
        bulk::pour(&mut reader, file, 0, u64::MAX, got).map_err(|e| match e {
            bulk::Broke::Network(e) => {
                // ureq's reader says a timeout as another error that holds ureq's.
                let ureq_timeout = e.get_ref().and_then(|inner| inner.downcast_ref::<ureq::Error>());
                let e = match ureq_timeout {
                    Some(ureq::Error::Timeout(_)) => std::io::Error::from(std::io::ErrorKind::TimedOut),
                    _ => e,
                };
                bulk::Broke::Network(bulk::stalled(e, self.stall))
            }
            disk => disk,
        })
    }
}

/// A file being sent: counts its bytes for the progress, and fails when it ends before the
/// length announced (a file truncated while it is sent).
struct Counted<'a, R> {
    inner: R,
    count: u64,
    len: u64,
    sent: &'a dyn Fn(u64),
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && self.count < self.len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the file ended after {} of its {} bytes (did it change while it was sent?)",
                    self.count, self.len
                ),
            ));
        }
        self.count += n as u64;
        (self.sent)(self.count);
        Ok(n)
    }
}

/// The origin of an absolute URL: `scheme://authority`.
fn origin(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    let end = url[after..].find(['/', '?', '#']).map_or(url.len(), |i| after + i);
    &url[..end]
}

/// Where a `Location` sends a request made to `base`: an absolute URL, or a path on `base`'s
/// origin; `None` for anything else.
fn resolve(base: &str, location: &str) -> Option<String> {
    let location = location.trim();
    let lower = location.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        Some(location.to_string())
    } else if let Some(rest) = location.strip_prefix("//") {
        base.split_once("://").map(|(scheme, _)| format!("{scheme}://{rest}"))
    } else if location.starts_with('/') {
        Some(format!("{}{location}", origin(base)))
    } else {
        None
    }
}

/// Whether an I/O error means the connection was never made.
fn before_sending(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | AddrNotAvailable | NetworkUnreachable | HostUnreachable)
}

/// Whether to try again: when the request cannot have reached the server, or, for a `GET`
/// (which changes nothing), when the connection broke before any answer. Never after an HTTP
/// answer, and never after a timeout waiting for one.
fn retryable(method: Method, e: &ureq::Error) -> bool {
    match e {
        ureq::Error::ConnectionFailed
        | ureq::Error::HostNotFound
        | ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => true,
        ureq::Error::Io(io) if crate::tls::certificate_error(io).is_some() => false,
        ureq::Error::Io(io) => before_sending(io) || method == Method::Get,
        _ => false,
    }
}

fn read_text(resp: &mut ureq::http::Response<ureq::Body>) -> Result<String, ureq::Error> {
    resp.body_mut().with_config().limit(MAX_BODY).read_to_string()
}

/// The start of a body, on one line, for an error message.
fn excerpt(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        return "(empty body)".to_string();
    }
    let mut s: String = one_line.chars().take(200).collect();
    if s.len() < one_line.len() {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized() {
        for raw in ["http://h:1", "http://h:1/", "h:1", "http://h:1//", "http://h:1/api/0.6/"] {
            assert_eq!(normalize_url(raw).ok().as_deref(), Some("http://h:1"), "{raw}");
        }
        assert_eq!(normalize_url("https://h:1/api/0.6/").ok().as_deref(), Some("https://h:1"));
        assert!(matches!(normalize_url("ftp://h"), Err(CliError::Usage(_))));
        assert!(matches!(normalize_url("https://"), Err(CliError::Usage(_))));
        assert!(matches!(normalize_url("http://"), Err(CliError::Usage(_))));
    }

    #[test]
    fn redirects_are_resolved_against_the_origin() {
        let base = "http://zoe.example:4850/api/0.6/info";
        assert_eq!(origin(base), "http://zoe.example:4850");
        assert_eq!(origin("https://h"), "https://h");
        assert_eq!(origin("http://h?x=1"), "http://h");
        assert_eq!(resolve(base, "/api/0.6/x").as_deref(), Some("http://zoe.example:4850/api/0.6/x"));
        assert_eq!(resolve(base, "//evil.example/x").as_deref(), Some("http://evil.example/x"));
        assert_eq!(resolve(base, "HTTPS://evil.example/").as_deref(), Some("HTTPS://evil.example/"));
        assert_eq!(resolve(base, "info2"), None);
        assert_eq!(resolve(base, "javascript:alert(1)"), None);
    }

    #[test]
    fn flags_win_and_the_first_missing_setting_is_named() {
        let env = |k: &str| match k {
            "ZOE_URL" => Some("http://env:1".to_string()),
            "ZOE_USER" => Some("envuser".to_string()),
            _ => None,
        };
        let c = Connection::resolve(None, Some("flaguser".into()), Some("p".into()), env);
        let c = c.as_ref().map(|c| (c.url.as_str(), c.user.as_str()));
        assert_eq!(c.ok(), Some(("http://env:1", "flaguser")));
        let e = Connection::resolve(None, None, None, env).err();
        let e = e.as_ref().map(|e| (e.to_string(), e.exit_code()));
        let want = "no password given: set ZOE_PASS or pass --password".to_string();
        assert_eq!(e, Some((want, exit::USAGE)));
    }

    /// A server that takes one connection after another: reads each request's head, answers
    /// it with `head` and then stays silent without reading, the connection open until the
    /// test ends.
    fn silent_after(head: &'static str) -> String {
        use std::io::BufRead;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let _ = conn.write_all(head.as_bytes());
                held.push(conn);
            }
        });
        url
    }

    fn stalling_client(url: &str, plain: bool) -> Client {
        let conn = Connection { url: url.into(), user: "u".into(), password: "p".into(), token: None, ca_file: None };
        let mut c = Client::new(conn).unwrap();
        assert!(c.plain.is_some(), "a plain http:// URL without a proxy goes the plain way");
        if !plain {
            c.plain = None;
        }
        c.stall = Duration::from_millis(300);
        c
    }

    #[test]
    fn a_stalled_download_fails_whichever_way_it_goes() {
        let url = silent_after("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc");
        for plain in [true, false] {
            let c = stalling_client(&url, plain);
            let path = std::env::temp_dir().join(format!("zoe-client-stall-{plain}-{}", std::process::id()));
            let mut file = std::fs::File::create(&path).unwrap();
            let started = std::time::Instant::now();
            let download = c.download("/workspace/f").unwrap();
            assert_eq!(download.length(), Some(1000));
            let copied = download.copy_to(&mut file, &|_| {});
            let Err(bulk::Broke::Network(e)) = copied else { panic!("plain {plain}: {copied:?}") };
            assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "plain {plain}: {e}");
            assert!(started.elapsed() < Duration::from_secs(10), "plain {plain}: {:?}", started.elapsed());
            assert_eq!(std::fs::read(&path).unwrap(), b"abc", "plain {plain}");
            let _ = std::fs::remove_file(path);
        }
    }

    #[test]
    fn a_stalled_upload_fails_whichever_way_it_goes() {
        // The server never reads the body: once the sockets' buffers are full, nothing moves.
        let url = silent_after("");
        let path = std::env::temp_dir().join(format!("zoe-client-stall-up-{}", std::process::id()));
        std::fs::write(&path, vec![0u8; 64 << 20]).unwrap();
        for plain in [true, false] {
            let c = stalling_client(&url, plain);
            let started = std::time::Instant::now();
            let sent = c.upload("/workspace/f", &path, 64 << 20, &|_| {});
            let Err(CliError::Connection(message)) = &sent else { panic!("plain {plain}: {sent:?}") };
            assert!(message.contains("nothing moved for 300ms"), "plain {plain}: {message}");
            assert!(started.elapsed() < Duration::from_secs(10), "plain {plain}: {:?}", started.elapsed());
        }
        let _ = std::fs::remove_file(path);
    }
}
