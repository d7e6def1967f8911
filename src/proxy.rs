//! The proxy to users' web applications: what their application hosts (the `apps` module) send
//! on to a service.
//!
//! - **Forwarding** ([`forward`]): to the service (one engine:
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
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::{Stream, StreamExt, TryStreamExt};
use http_body_util::{BodyStream, Either, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zoe_actors::logic::views::ProxyTarget;
use zoe_actors::Caller;

use crate::error::{ApiError, HttpCode};
use crate::idle::Activity;
use crate::limits::Place;
use crate::AppData;

/// How long connecting to a service may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a service may take to begin its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);
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

/// Whether a header may be forwarded (either way).
fn forwarded(name: &str) -> bool {
    !NOT_FORWARDED.iter().any(|h| name.eq_ignore_ascii_case(h))
}

fn bad_gateway(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(HttpCode::BadGateway, format!("the service did not answer the proxy: {what}"))
}

/// The cookies of the application host, which a service never sees nor sets.
pub struct HostCookies<'a> {
    /// The name of this request's cookie, taken out of the forwarded `Cookie` header.
    pub name: &'a str,
    /// Every name the host's cookie may have: a service's `Set-Cookie` of one is dropped.
    pub reserved: [&'a str; 2],
}

/// Forwards a request of an application host to its service (execution `execution`), for
/// `caller`.
pub async fn forward(
    req: &HttpRequest,
    payload: Payload,
    data: &AppData,
    (caller, execution): (&Caller, u64),
    target: &ProxyTarget,
    cookies: &HostCookies<'_>,
) -> ProxyResult {
    let place = Held { _place: data.limits.proxied(caller)?, use_of: (data.activity.clone(), execution) };
    place.touch();
    let headers = Outgoing { target, cookies };
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
    /// The application host's own cookies, which the service never sees.
    cookies: &'a HostCookies<'a>,
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
                let kept = without_cookie(value.as_bytes(), self.cookies.name)?;
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
fn set_cookie_from_service(value: &[u8], ours: &HostCookies<'_>) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(value);
    let mut parts = text.split(';');
    let first = parts.next().unwrap_or_default();
    let name = first.split_once('=').map_or(first, |(k, _)| k).trim();
    if name == ours.name || ours.reserved.contains(&name) {
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
fn response_header(name: &str, value: &[u8], cookies: &HostCookies<'_>) -> Option<Vec<u8>> {
    if !forwarded(name) {
        return None;
    }
    if name.eq_ignore_ascii_case("set-cookie") {
        return set_cookie_from_service(value, cookies);
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
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(bad_gateway)?;
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
        } else if let Some(v) = response_header(name.as_str(), value.as_bytes(), out.cookies) {
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

/// A WebSocket: the upgrade request goes through hyper's HTTP/1 client as any other; after the
/// service's `101`, hyper hands the connection over (with whatever the service sent after its
/// head) and the bytes of both directions are copied until either side closes.
async fn websocket(
    req: &HttpRequest,
    payload: Payload,
    stream: TcpStream,
    out: &Outgoing<'_>,
    place: Held,
) -> ProxyResult {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(bad_gateway)?;
    actix_web::rt::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut builder = hyper::Request::builder().method(req.method().as_str()).uri(path_and_query(req));
    for (name, value) in out.of(req) {
        builder = builder.header(name, value.as_ref());
    }
    let request = builder
        .header(hyper::header::CONNECTION, "Upgrade")
        .header(hyper::header::UPGRADE, "websocket")
        .body(Empty::<web::Bytes>::new())
        .map_err(|e| ApiError::new(HttpCode::InvalidRequest, e.to_string()))?;
    let mut answer = match tokio::time::timeout(ANSWER_TIMEOUT, sender.send_request(request)).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return Err(bad_gateway(e)),
        Err(_) => return Err(bad_gateway(format!("no answer within {} s", ANSWER_TIMEOUT.as_secs()))),
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).map_err(bad_gateway)?;
    let mut resp = HttpResponse::build(status);
    for (name, value) in answer.headers() {
        if name == hyper::header::CONTENT_LENGTH {
            continue;
        }
        if let Some(v) = response_header(name.as_str(), value.as_bytes(), out.cookies) {
            resp.append_header((name.as_str(), v));
        }
    }
    if status != StatusCode::SWITCHING_PROTOCOLS {
        // Refused (Jupyter: a bad origin or token): pass the refusal on, body bounded.
        let mut body = Vec::new();
        let mut frames = BodyStream::new(answer.into_body());
        while body.len() < MAX_REFUSAL_BODY {
            match tokio::time::timeout(CONNECT_TIMEOUT, frames.next()).await {
                Ok(Some(Ok(frame))) => body.extend_from_slice(frame.data_ref().map_or(&[][..], |d| d.as_ref())),
                _ => break,
            }
        }
        body.truncate(MAX_REFUSAL_BODY);
        return Ok(resp.body(body));
    }
    let stream = TokioIo::new(hyper::upgrade::on(&mut answer).await.map_err(bad_gateway)?);
    resp.upgrade("websocket");
    // Both directions are driven by the response's own stream, in the client connection's task:
    // no hop through another task for each message (WebSocket round trips are about latency).
    let relay = Relay { stream, payload: Some(payload), buf: web::BytesMut::new(), use_of: place.use_of.clone() };
    let relayed = futures_util::stream::unfold(Some(relay), |state| async move {
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
    Ok(resp.streaming(hold(relayed, place)))
}

/// Both directions of a relayed WebSocket.
struct Relay {
    /// The connection to the service, handed over by hyper after the upgrade.
    stream: TokioIo<hyper::upgrade::Upgraded>,
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
