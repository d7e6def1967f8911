//! The authenticated reverse proxy: `/proxy/<execution-id>/<instance>/<port>/...` forwards to
//! that port of that instance of a running execution (HTTP, streamed both ways, and WebSocket),
//! so that a user's browser reaches a notebook or a Spark UI through the master alone.
//!
//! - Who: the same basic auth as the API; the owner and administrators only. Anyone else gets
//!   the 404 they get for the execution itself. Requests a browser marks as sent by another site
//!   are refused, as on the API.
//! - What: only ports the description exposes, of instances that run. The path is forwarded
//!   whole (applications are told their prefix: `ZOE_PROXY_PATH_<port>`, `{proxy_path}`), with
//!   the client's `Host` (Jupyter compares it with `Origin`), without the client's
//!   `Authorization` (Zoe's credentials never reach a container) and without hop-by-hop headers.
//! - Where: the container's address on its user's network (one engine: the master's host
//!   routes to it), or, on a Swarm, its host name on its user's overlay network, through that
//!   network's relay (`crate::dial`).
//! - How much: nothing is buffered whole; each user (not an administrator) has at most
//!   `max-proxy-connections` proxied requests and WebSockets open at once; connecting is bounded
//!   by a timeout, and so is the wait for the answer's head.
//!
//! Plain HTTP goes through hyper's HTTP/1 client (already in the tree through bollard). A
//! WebSocket is relayed as bytes after the upgrade: actix hands the client's bytes over as the
//! request payload and sends whatever the response body streams.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BoxBody, EitherBody, MessageBody, SizedStream};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::ResponseError;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::{Stream, StreamExt, TryStreamExt};
use http_body_util::{BodyStream, Either, Empty, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zoe_actors::views::{self, ProxyTarget};
use zoe_actors::Code;

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

/// Headers that belong to one connection, never forwarded (RFC 9110, section 7.6.1), and the
/// client's credentials for Zoe.
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

/// Registers the proxy's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(["/proxy/{execution}/{instance}/{port}", "/proxy/{execution}/{instance}/{port}/{rest:.*}"])
            .route(web::route().to(proxy)),
    );
}

/// Middleware: with `proxy-host`, that host serves `/proxy/` only, and `/proxy/` requests to any
/// other host are redirected there (before authentication: the redirect tells nothing).
pub async fn host_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<BoxBody, impl MessageBody>>, actix_web::Error> {
    let Some(data) = req.app_data::<web::Data<AppData>>().cloned() else {
        return Ok(next.call(req).await?.map_into_right_body());
    };
    let Some(apps) = data.config.proxy_host.as_deref() else {
        return Ok(next.call(req).await?.map_into_right_body());
    };
    let trusted = &data.config.trusted_proxy;
    let host = crate::origin::request_host(req.request(), trusted);
    let (name, port) = crate::origin::split_host(&host);
    let on_apps = name.eq_ignore_ascii_case(apps);
    let proxied = req.path().starts_with(PREFIX);
    let resp = match (on_apps, proxied) {
        (true, false) => ApiError::new(
            HttpCode::NotFound,
            format!(
                "{apps} serves only applications, under {PREFIX}; Zoe's API and pages are on the master's own address"
            ),
        )
        .error_response(),
        (false, true) => {
            let from_proxy = req.peer_addr().is_some_and(|a| trusted.contains(&a.ip()));
            let scheme = if from_proxy {
                req.connection_info().scheme().to_string()
            } else if data.config.tls_cert.is_some() {
                "https".to_string()
            } else {
                "http".to_string()
            };
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let target =
                req.uri().path_and_query().map_or_else(|| req.path().to_string(), |pq| pq.as_str().to_string());
            HttpResponse::TemporaryRedirect()
                .insert_header((header::LOCATION, format!("{scheme}://{apps}{port}{target}")))
                .finish()
        }
        _ => return Ok(next.call(req).await?.map_into_right_body()),
    };
    Ok(req.into_response(resp).map_into_left_body())
}

/// Whether a header may be forwarded (either way).
fn forwarded(name: &str) -> bool {
    !NOT_FORWARDED.iter().any(|h| name.eq_ignore_ascii_case(h))
}

fn bad_gateway(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(HttpCode::BadGateway, format!("the service did not answer the proxy: {what}"))
}

async fn proxy(
    req: HttpRequest,
    payload: web::Payload,
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
    let target = views::proxy_target(&data.reader.now(), &caller, id, &instance, port).map_err(|e| {
        let retry = e.code == Code::Unavailable;
        let e = ApiError::from(e);
        if retry {
            e.retry_after(2)
        } else {
            e
        }
    })?;
    // `/proxy/1/nb/8888` is the folder `/proxy/1/nb/8888/`, where the application lives.
    let base = zoe_actors::naming::proxy_path(id, &instance, port);
    if req.path().len() + 1 == base.len() {
        let query = req.query_string();
        let location = if query.is_empty() { base } else { format!("{base}?{query}") };
        return Ok(HttpResponse::PermanentRedirect().insert_header((header::LOCATION, location)).finish());
    }
    let place = Held { _place: data.limits.proxied(&caller)?, use_of: (data.activity.clone(), id) };
    place.touch();
    let stream = connect(&data, &target).await?;
    if is_websocket(&req) {
        websocket(&req, payload, stream, place).await
    } else {
        http(&req, payload, stream, place).await
    }
}

/// Whether the request asks to become a WebSocket.
fn is_websocket(req: &HttpRequest) -> bool {
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
async fn http(req: &HttpRequest, payload: web::Payload, stream: TcpStream, place: Held) -> ProxyResult {
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(bad_gateway)?;
    actix_web::rt::spawn(async move {
        let _ = conn.await;
    });
    let has_body = req.headers().contains_key(header::CONTENT_LENGTH)
        && req.headers().get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let body = if has_body {
        let frames = payload.map_ok(Frame::data).map_err(|e| io::Error::other(e.to_string()));
        Either::Right(StreamBody::new(frames))
    } else {
        Either::Left(Empty::<web::Bytes>::new())
    };
    let mut builder = hyper::Request::builder().method(req.method().as_str()).uri(path_and_query(req));
    for (name, value) in req.headers().iter().filter(|(n, _)| forwarded(n.as_str())) {
        builder = builder.header(name.as_str(), value.as_bytes());
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
        } else if forwarded(name.as_str()) {
            resp.append_header((name.as_str(), value.as_bytes()));
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
async fn websocket(req: &HttpRequest, payload: web::Payload, mut stream: TcpStream, place: Held) -> ProxyResult {
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method(), path_and_query(req));
    for (name, value) in req.headers().iter().filter(|(n, _)| forwarded(n.as_str())) {
        let Ok(value) = value.to_str() else { continue };
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
        } else if forwarded(h.name) {
            resp.append_header((h.name, h.value));
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
    let (from_service, mut to_service) = stream.into_split();
    // Client to service, until the client goes or the service stops reading.
    let (activity, id) = place.use_of.clone();
    actix_web::rt::spawn(async move {
        let mut payload = payload;
        while let Some(Ok(bytes)) = payload.next().await {
            activity.touch(id);
            if to_service.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to_service.shutdown().await;
    });
    // Service to client: what came with the head, then the rest, until the service closes.
    let first = futures_util::stream::once(async move { Ok::<_, io::Error>(web::Bytes::from(rest)) })
        .filter(|r| std::future::ready(r.as_ref().map_or(true, |b| !b.is_empty())));
    let following = futures_util::stream::unfold(Some(from_service), |state| async move {
        let mut from_service = state?;
        let mut chunk = vec![0u8; 16 * 1024];
        match from_service.read(&mut chunk).await {
            Ok(0) => None,
            Ok(n) => {
                chunk.truncate(n);
                Some((Ok(web::Bytes::from(chunk)), Some(from_service)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok(resp.streaming(hold(first.chain(following), place)))
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
