//! The proxy to users' web applications.
//!
//! - **Entry** ([`enter`]): `/proxy/<execution-id>/<instance>/<port>/<rest>` on Zoe's origin is
//!   the link everyone uses (`proxy_url`, the web page, the CLI). It checks the caller (the same
//!   basic auth as the API; the owner and administrators, anyone else gets the 404 they get for
//!   the execution), that the port is exposed and runs, and sends the browser, with a one-time
//!   ticket, to the port's own host (`crate::apps`), which signs it in and serves `/<rest>`.
//!   Nothing proxied is ever served on Zoe's origin.
//! - **Forwarding** ([`forward`], called by the application hosts): to the service (one engine:
//!   the container's address on its user's network, which the master's host routes to; a Swarm:
//!   its host name on its user's overlay network, through that network's relay: `crate::dial`),
//!   path and query as sent, with the client's `Host` (Jupyter compares it with
//!   `Origin`), without the client's `Authorization` and hop-by-hop headers and without the
//!   application host's cookie (Zoe's credentials never reach a container), plus the port's
//!   `secret_header` when it has one. A service's `Set-Cookie` loses any `Domain` attribute.
//! - **How much:** nothing is buffered whole; each user (not an administrator) has at most
//!   `max-proxy-connections` proxied requests and WebSockets open at once; connecting is bounded
//!   by a timeout, and so is the wait for the answer's head.
//!
//! Plain HTTP goes through hyper's HTTP/1 client (already in the tree through bollard). A
//! WebSocket is relayed as bytes after the upgrade: actix hands the client's bytes over as the
//! request payload and sends whatever the response body streams.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::dev::Payload;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::{Stream, StreamExt, TryStreamExt};
use http_body_util::{BodyStream, Either, Empty, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zoe_actors::logic::views::{self, ProxyTarget};
use zoe_actors::Code;

use crate::apps::sessions::Grant;
use crate::auth::Authed;
use crate::error::{ApiError, HttpCode};
use crate::idle::Activity;
use crate::limits::Place;
use crate::AppData;

/// The prefix of every proxied path.
pub const PREFIX: &str = "/proxy/";
/// How long connecting to a service may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a service may take to begin its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);
/// The largest response head a service may send to a WebSocket upgrade.
const MAX_UPGRADE_HEAD: usize = 64 * 1024;
/// The largest body of a refused upgrade that is passed on.
const MAX_REFUSAL_BODY: usize = 64 * 1024;
/// The room made for each read from a WebSocket's service.
const WEBSOCKET_READ: usize = 16 * 1024;

/// Headers that belong to one connection, never forwarded (RFC 9110, section 7.6.1), and
/// credentials for Zoe, which the application host accepts none of.
const NOT_FORWARDED: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "authorization",
];

type ProxyResult = Result<HttpResponse, ApiError>;

/// Registers the entry on Zoe's origin.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(["/proxy/{execution}/{instance}/{port}", "/proxy/{execution}/{instance}/{port}/{rest:.*}"])
            .route(web::route().to(enter)),
    );
}

/// Whether a header may be forwarded (either way).
fn forwarded(name: &str) -> bool {
    !NOT_FORWARDED.iter().any(|h| name.eq_ignore_ascii_case(h))
}

fn bad_gateway(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(HttpCode::BadGateway, format!("the service did not answer the proxy: {what}"))
}

/// `/proxy/<id>/<instance>/<port>/<rest>` on Zoe's origin: after the usual checks, a redirect
/// to the port's own host with a one-time ticket for this caller.
async fn enter(
    req: HttpRequest,
    data: web::Data<AppData>,
    Authed(caller): Authed,
    path: web::Path<(String, String, String)>,
) -> ProxyResult {
    if !crate::origin::same_origin(&req, &data.config.trusted_proxy) {
        return Err(ApiError::new(
            HttpCode::CrossSiteRequest,
            "this request was sent by a page of another web site; Zoe's proxy answers only its own pages and programs",
        ));
    }
    let (execution, instance, port) = path.into_inner();
    let no_execution = || ApiError::new(Code::NoSuchExecution, format!("no such execution: {execution}"));
    let id: u64 = execution.parse().map_err(|_| no_execution())?;
    let port: u16 = port
        .parse()
        .map_err(|_| ApiError::new(Code::NoSuchService, format!("{port:?} is not a port number (1 to 65535)")))?;
    views::proxy_target(&data.reader.now(), &caller, id, &instance, port).map_err(|e| {
        let retry = e.code == Code::Unavailable;
        let e = ApiError::from(e);
        if retry {
            e.retry_after(2)
        } else {
            e
        }
    })?;
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Err(ApiError::new(
            HttpCode::MethodNotAllowed,
            "this is the link that opens an application (GET): requests to the application go to its own host",
        ));
    }
    // What follows `/proxy/<id>/<instance>/<port>` is the page wanted on the application host.
    let base = zoe_actors::description::naming::proxy_path(id, &instance, port);
    let rest = req.uri().path().get(base.len() - 1..).unwrap_or("/");
    let rest = if rest.is_empty() { "/" } else { rest };
    let next = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let label = zoe_actors::description::naming::app_host_label(id, &instance, port);
    let trusted = &data.config.trusted_proxy;
    let zoe_host = crate::origin::request_host(&req, trusted);
    let (_, client_port) = crate::origin::split_host(&zoe_host);
    let scheme = crate::origin::request_scheme(&req, trusted, data.config.tls_cert.is_some());
    let host = data.apps.host(&label, client_port);
    let grant = Grant { caller, execution: id, instance, port, label };
    let ticket = data.apps.sessions.ticket(grant, std::time::Instant::now());
    let location = format!(
        "{scheme}://{host}{}?ticket={ticket}&next={}",
        crate::apps::SIGN_IN_PATH,
        crate::apps::encode_query_value(&next)
    );
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .finish())
}

/// Forwards a request of an application host to its service, for the caller of `grant`.
pub async fn forward(
    req: &HttpRequest,
    payload: Payload,
    data: &AppData,
    grant: &Grant,
    target: &ProxyTarget,
    cookie: &str,
) -> ProxyResult {
    let place = Held { _place: data.limits.proxied(&grant.caller)?, use_of: (data.activity.clone(), grant.execution) };
    place.touch();
    let headers = Outgoing { target, cookie };
    let stream = connect(data, target).await?;
    if is_websocket(req) {
        websocket(req, payload, stream, &headers, place).await
    } else {
        http(req, payload, stream, &headers, place).await
    }
}

/// What the forwarded request's headers lose and gain.
struct Outgoing<'a> {
    target: &'a ProxyTarget,
    /// The name of the application host's own cookie, which the service never sees.
    cookie: &'a str,
}

impl Outgoing<'_> {
    /// The request's headers as the service gets them.
    fn of<'r>(&'r self, req: &'r HttpRequest) -> impl Iterator<Item = (&'r str, std::borrow::Cow<'r, [u8]>)> {
        let secret = self.target.secret_header.as_ref();
        let client = req.headers().iter().filter_map(move |(name, value)| {
            let n = name.as_str();
            if !forwarded(n) || secret.is_some_and(|(s, _)| n.eq_ignore_ascii_case(s)) {
                return None;
            }
            if name == header::COOKIE {
                let kept = without_cookie(value.as_bytes(), self.cookie)?;
                return Some((n, kept));
            }
            Some((n, std::borrow::Cow::Borrowed(value.as_bytes())))
        });
        client.chain(secret.map(|(n, v)| (n.as_str(), std::borrow::Cow::Borrowed(v.as_bytes()))))
    }
}

/// A `Cookie` header without the cookies named `name` (`None` when nothing is left).
fn without_cookie<'v>(value: &'v [u8], name: &str) -> Option<std::borrow::Cow<'v, [u8]>> {
    let text = std::str::from_utf8(value).ok()?;
    let ours = |pair: &str| pair.trim().split_once('=').is_some_and(|(k, _)| k == name);
    if !text.split(';').any(ours) {
        return Some(std::borrow::Cow::Borrowed(value));
    }
    let kept: Vec<&str> = text.split(';').filter(|p| !ours(p)).map(str::trim).filter(|p| !p.is_empty()).collect();
    (!kept.is_empty()).then(|| std::borrow::Cow::Owned(kept.join("; ").into_bytes()))
}

/// A service's `Set-Cookie` as the browser gets it: without a `Domain` attribute (a cookie for
/// the parent domain would reach the neighbours' hosts), and none that would replace the
/// application host's own cookie.
fn set_cookie_from_service(value: &[u8], ours: &str) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(value);
    let mut parts = text.split(';');
    let first = parts.next().unwrap_or_default();
    let name = first.split_once('=').map_or(first, |(k, _)| k).trim();
    if name == ours || name == crate::apps::cookie_name(true) || name == crate::apps::cookie_name(false) {
        return None;
    }
    let mut out = first.to_string();
    for attr in parts {
        let key = attr.split_once('=').map_or(attr, |(k, _)| k).trim();
        if !key.eq_ignore_ascii_case("domain") {
            out.push(';');
            out.push_str(attr);
        }
    }
    Some(out.into_bytes())
}

/// A response header of the service as the browser gets it, if at all.
fn response_header(name: &str, value: &[u8], cookie: &str) -> Option<Vec<u8>> {
    if !forwarded(name) {
        return None;
    }
    if name.eq_ignore_ascii_case("set-cookie") {
        return set_cookie_from_service(value, cookie);
    }
    Some(value.to_vec())
}

/// Whether the request asks to become a WebSocket.
pub fn is_websocket(req: &HttpRequest) -> bool {
    req.head().upgrade()
        && req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// A connection to the service (see `crate::dial`: directly, or through a Swarm's relay).
async fn connect(data: &AppData, target: &ProxyTarget) -> Result<TcpStream, ApiError> {
    data.dialer.connect(target).await
}

/// The path and query as the client sent them.
fn path_and_query(req: &HttpRequest) -> String {
    req.uri().path_and_query().map_or_else(|| req.path().to_string(), |pq| pq.as_str().to_string())
}

/// A plain HTTP request: forwarded through hyper, both bodies streamed.
async fn http(req: &HttpRequest, payload: Payload, stream: TcpStream, out: &Outgoing<'_>, place: Held) -> ProxyResult {
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(bad_gateway)?;
    actix_web::rt::spawn(async move {
        let _ = conn.await;
    });
    let has_body = req.headers().get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let body = if has_body {
        let frames = payload.map_ok(Frame::data).map_err(|e| io::Error::other(e.to_string()));
        Either::Right(StreamBody::new(frames))
    } else {
        Either::Left(Empty::<web::Bytes>::new())
    };
    let mut builder = hyper::Request::builder().method(req.method().as_str()).uri(path_and_query(req));
    for (name, value) in out.of(req) {
        builder = builder.header(name, value.as_ref());
    }
    let request = builder.body(body).map_err(|e| ApiError::new(HttpCode::InvalidRequest, e.to_string()))?;
    let answer = match tokio::time::timeout(ANSWER_TIMEOUT, sender.send_request(request)).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return Err(bad_gateway(e)),
        Err(_) => return Err(bad_gateway(format!("no answer within {} s", ANSWER_TIMEOUT.as_secs()))),
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).map_err(bad_gateway)?;
    let mut resp = HttpResponse::build(status);
    let mut length = None;
    for (name, value) in answer.headers() {
        if name == hyper::header::CONTENT_LENGTH {
            length = value.to_str().ok().and_then(|v| v.parse::<u64>().ok());
        } else if let Some(v) = response_header(name.as_str(), value.as_bytes(), out.cookie) {
            resp.append_header((name.as_str(), v));
        }
    }
    // The place is held until the body is sent or its client goes.
    let body = hold(
        BodyStream::new(answer.into_body())
            .try_filter_map(|frame| async move { Ok(frame.into_data().ok()) })
            .map_err(io::Error::other),
        place,
    );
    Ok(match length {
        Some(n) => resp.body(SizedStream::new(n, body)),
        None => resp.streaming(body),
    })
}

/// A WebSocket: the upgrade request is sent as is, and after the service's `101` the bytes of
/// both directions are copied until either side closes.
async fn websocket(
    req: &HttpRequest,
    payload: Payload,
    mut stream: TcpStream,
    out: &Outgoing<'_>,
    place: Held,
) -> ProxyResult {
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method(), path_and_query(req));
    for (name, value) in out.of(req) {
        let Ok(value) = std::str::from_utf8(&value) else { continue };
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    stream.write_all(head.as_bytes()).await.map_err(bad_gateway)?;

    // The answer's head, and whatever came after it.
    let mut buf = Vec::with_capacity(4096);
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_UPGRADE_HEAD {
            return Err(bad_gateway("its answer's head is too large"));
        }
        let mut chunk = [0u8; 4096];
        let n = match tokio::time::timeout(ANSWER_TIMEOUT, stream.read(&mut chunk)).await {
            Ok(Ok(0)) => return Err(bad_gateway("it closed the connection")),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(bad_gateway(e)),
            Err(_) => return Err(bad_gateway(format!("no answer within {} s", ANSWER_TIMEOUT.as_secs()))),
        };
        buf.extend_from_slice(&chunk[..n]);
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed.parse(&buf[..end]).map_err(bad_gateway)?;
    let status = parsed.code.and_then(|c| StatusCode::from_u16(c).ok()).ok_or_else(|| bad_gateway("no status"))?;
    let mut resp = HttpResponse::build(status);
    let mut length = 0usize;
    for h in parsed.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        } else if let Some(v) = response_header(h.name, h.value, out.cookie) {
            resp.append_header((h.name, v));
        }
    }
    let rest = buf.split_off(end);
    if status != StatusCode::SWITCHING_PROTOCOLS {
        // Refused (Jupyter: a bad origin or token): pass the refusal on, body bounded.
        let mut body = rest;
        let want = length.min(MAX_REFUSAL_BODY);
        while body.len() < want {
            let mut chunk = vec![0u8; want - body.len()];
            match tokio::time::timeout(CONNECT_TIMEOUT, stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => body.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        body.truncate(want);
        return Ok(resp.body(body));
    }
    resp.upgrade("websocket");
    // Both directions are driven by the response's own stream, in the client connection's task:
    // no hop through another task for each message (WebSocket round trips are about latency).
    let relay = Relay { stream, payload: Some(payload), buf: web::BytesMut::new(), use_of: place.use_of.clone() };
    let first = futures_util::stream::once(async move { Ok::<_, io::Error>(web::Bytes::from(rest)) })
        .filter(|r| std::future::ready(r.as_ref().map_or(true, |b| !b.is_empty())));
    let following = futures_util::stream::unfold(Some(relay), |state| async move {
        let mut r = state?;
        loop {
            if r.buf.capacity() - r.buf.len() < 4096 {
                r.buf.reserve(WEBSOCKET_READ);
            }
            tokio::select! {
                biased;
                // Client to service, until the client goes.
                item = next_or_pending(&mut r.payload) => match item {
                    Some(Ok(bytes)) => {
                        r.use_of.0.touch(r.use_of.1);
                        if r.stream.write_all(&bytes).await.is_err() {
                            return None;
                        }
                    }
                    _ => {
                        r.payload = None;
                        let _ = r.stream.shutdown().await;
                    }
                },
                // Service to client, until the service closes.
                read = r.stream.read_buf(&mut r.buf) => match read {
                    Ok(0) => return None,
                    Ok(_) => {
                        let chunk = r.buf.split().freeze();
                        return Some((Ok(chunk), Some(r)));
                    }
                    Err(e) => return Some((Err(e), None)),
                },
            }
        }
    });
    Ok(resp.streaming(hold(first.chain(following), place)))
}

/// Both directions of a relayed WebSocket.
struct Relay {
    /// The connection to the service.
    stream: TcpStream,
    /// What the client sends, until it stops.
    payload: Option<Payload>,
    /// What the service sent, not yet passed on.
    buf: web::BytesMut,
    use_of: (Arc<Activity>, u64),
}

/// The next item of a stream that may be gone (then never).
async fn next_or_pending(payload: &mut Option<Payload>) -> Option<Result<web::Bytes, actix_web::error::PayloadError>> {
    match payload {
        Some(p) => p.next().await,
        None => std::future::pending().await,
    }
}

/// A proxied connection's place (given back when dropped), and the execution it uses.
struct Held {
    _place: Place,
    use_of: (Arc<Activity>, u64),
}

impl Held {
    /// The execution was used now (for idle culling).
    fn touch(&self) {
        self.use_of.0.touch(self.use_of.1);
    }
}

/// A stream that keeps `place` until it ends or is dropped, and counts each chunk as use.
fn hold<S: Stream + 'static>(s: S, place: Held) -> impl Stream<Item = S::Item> {
    futures_util::stream::unfold((Box::pin(s), place), |(mut s, place)| async move {
        let item = s.next().await?;
        place.touch();
        Some((item, (s, place)))
    })
}
