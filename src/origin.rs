//! Where a request comes from, as far as a browser tells: the host it was sent to, and whether
//! it was sent by a page of another site.
//!
//! A browser signed in to Zoe sends its cached basic-auth credentials with every request to
//! Zoe, including ones that a page of another site makes it send (a form posted with
//! `enctype=text/plain` can carry a JSON body). So every request whose `Sec-Fetch-Site` or
//! `Origin` says it comes from another site is refused, on the API as on the web pages, and API
//! bodies must be `application/json` (which a cross-site form cannot send without a CORS
//! preflight, which Zoe never grants).
//!
//! Forwarding headers (`Forwarded`, `X-Forwarded-Host`, `X-Forwarded-Proto`) are believed only
//! from the reverse proxies named in `--trusted-proxy`; from anyone else, the `Host` header is
//! the host.

use std::net::IpAddr;

use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, ResponseError};

use crate::error::{ApiError, HttpCode};
use crate::AppData;

/// The host (`name[:port]`, lowercase) the request was sent to.
pub fn request_host(req: &HttpRequest, trusted_proxies: &[IpAddr]) -> String {
    let from_proxy = req.peer_addr().is_some_and(|a| trusted_proxies.contains(&a.ip()));
    let host = if from_proxy {
        req.connection_info().host().to_string()
    } else {
        req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default().to_string()
    };
    host.to_ascii_lowercase()
}

/// The scheme the client used: the forwarded one from a trusted reverse proxy, else `https` when
/// the master serves TLS itself.
pub fn request_scheme(req: &HttpRequest, trusted_proxies: &[IpAddr], tls: bool) -> &'static str {
    let from_proxy = req.peer_addr().is_some_and(|a| trusted_proxies.contains(&a.ip()));
    let https = if from_proxy { req.connection_info().scheme() == "https" } else { tls };
    if https {
        "https"
    } else {
        "http"
    }
}

/// Whether a browser says this request was made by a page of another origin for something other
/// than a top-level navigation (a script's fetch, an image, a frame...): the fetch metadata
/// `Sec-Fetch-Site` is `cross-site` or `same-site` and `Sec-Fetch-Mode` or `Sec-Fetch-Dest` says
/// it is not a page opened in the window. Links from elsewhere still open Zoe's pages.
pub fn foreign_subresource(req: &HttpRequest) -> bool {
    let h = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let foreign = matches!(h("sec-fetch-site"), Some("cross-site" | "same-site"));
    let not_navigation =
        h("sec-fetch-mode").is_some_and(|m| m != "navigate") || h("sec-fetch-dest").is_some_and(|d| d != "document");
    foreign && not_navigation
}

/// Whether the request is for a service worker's script (`Service-Worker: script`, which
/// browsers send when a page registers one).
pub fn service_worker_script(req: &HttpRequest) -> bool {
    req.headers().get("service-worker").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"script"))
}

/// The name part of a `host[:port]` (`[v6]:port` included), and the port part if any.
pub fn split_host(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((name, after)) = rest.split_once(']') {
            return (name, after.strip_prefix(':'));
        }
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, Some(port)),
        _ => (host, None),
    }
}

/// Whether a browser's `Sec-Fetch-Site` and `Origin` headers, when present, say the request
/// comes from a page of this very origin (or from the user typing the address). Clients that are
/// not browsers send neither header and pass.
pub fn same_origin(req: &HttpRequest, trusted_proxies: &[IpAddr]) -> bool {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.to_str(), Ok("same-origin" | "none")) {
            return false;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https") && authority.eq_ignore_ascii_case(&request_host(req, trusted_proxies))
}

/// The values of the cookies named `name` in a request's `Cookie` headers.
pub fn cookie_values<'r>(req: &'r HttpRequest, name: &'r str) -> impl Iterator<Item = &'r str> {
    req.headers().get_all(header::COOKIE).filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).filter_map(
        move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v.trim())
        },
    )
}

/// Whether a content type is JSON: `application/json` or `application/<something>+json`, with
/// any parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The API's routes whose uploads are files (`PUT`, `application/octet-stream`): a browser
/// sends a `PUT` to another site only after a CORS preflight, which Zoe never grants, so bytes
/// there are as safe as JSON elsewhere.
pub const BYTE_UPLOADS: &str = "/api/0.6/workspace";

fn takes_bytes(req: &HttpRequest) -> bool {
    *req.method() == Method::PUT
        && req.path().strip_prefix(BYTE_UPLOADS).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn is_octet_stream(content_type: &str) -> bool {
    content_type.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/octet-stream")
}

/// Why an API request is refused before it reaches its handler, if it is.
pub fn check_api_request(req: &HttpRequest, trusted_proxies: &[IpAddr]) -> Result<(), ApiError> {
    if !same_origin(req, trusted_proxies) {
        return Err(ApiError::new(
            HttpCode::CrossSiteRequest,
            "this request was sent by a page of another web site; Zoe's API answers only its own pages and programs",
        ));
    }
    let has_body = req.headers().get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let with_body = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    if with_body && takes_bytes(req) {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !is_octet_stream(content_type) {
            return Err(ApiError::new(
                HttpCode::UnsupportedMediaType,
                "a file is uploaded as its bytes, sent with Content-Type: application/octet-stream",
            ));
        }
    } else if with_body && has_body {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !is_json(content_type) {
            let shown = if content_type.is_empty() {
                "none".to_string()
            } else {
                zoe_actors::description::naming::shorten(content_type, 64)
            };
            return Err(ApiError::new(
                HttpCode::UnsupportedMediaType,
                format!("the request body must be JSON, sent with Content-Type: application/json (it was {shown})"),
            ));
        }
    }
    Ok(())
}

/// Middleware of the API: refuses cross-site requests and bodies that are not JSON.
pub async fn api_guard(
    req: ServiceRequest,
    next: Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<BoxBody, impl actix_web::body::MessageBody>>, actix_web::Error> {
    let trusted = req.app_data::<web::Data<AppData>>().map(|d| d.config.trusted_proxy.clone()).unwrap_or_default();
    if let Err(e) = check_api_request(req.request(), &trusted) {
        let resp = e.error_response();
        return Ok(req.into_response(resp).map_into_left_body());
    }
    Ok(next.call(req).await?.map_into_right_body())
}

/// Registers `route` for `GET path` outside the API's scope, guarded as the API's routes are;
/// any other method is answered `method_not_allowed`.
pub fn get_only(cfg: &mut web::ServiceConfig, path: &str, route: actix_web::Route) {
    const ALLOWED: &[Method] = &[Method::GET];
    cfg.service(
        web::resource(path).wrap(actix_web::middleware::from_fn(api_guard)).route(route).default_service(web::to(
            |req: HttpRequest| async move { crate::error::method_not_allowed(&req, ALLOWED) },
        )),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn cross_site_requests_and_non_json_bodies_are_refused() {
        let ok = |r: TestRequest| check_api_request(&r.to_http_request(), &[]).map_err(|e| e.code);
        let api = || TestRequest::post().uri("/api/0.6/user").insert_header((header::HOST, "zoe.example:4850"));
        let json = || (header::CONTENT_TYPE, "application/json");
        let body = || (header::CONTENT_LENGTH, "2");
        assert_eq!(ok(api().insert_header(json()).insert_header(body())), Ok(()), "the 0.9.7 client");
        assert_eq!(
            ok(api().insert_header((header::CONTENT_TYPE, "application/json; charset=utf-8")).insert_header(body())),
            Ok(())
        );
        assert_eq!(ok(api().insert_header(body())), Err(HttpCode::UnsupportedMediaType.into()), "no content type");
        assert_eq!(
            ok(api().insert_header((header::CONTENT_TYPE, "text/plain")).insert_header(body())),
            Err(HttpCode::UnsupportedMediaType.into())
        );
        assert_eq!(ok(api()), Ok(()), "no body: nothing to check");
        let cross = (header::ORIGIN, "https://evil.example");
        let same = (header::ORIGIN, "http://zoe.example:4850");
        assert_eq!(
            ok(api().insert_header(json()).insert_header(body()).insert_header(cross)),
            Err(HttpCode::CrossSiteRequest.into())
        );
        assert_eq!(
            ok(TestRequest::get().insert_header(("sec-fetch-site", "cross-site"))),
            Err(HttpCode::CrossSiteRequest.into())
        );
        assert_eq!(
            ok(TestRequest::get().insert_header(("sec-fetch-site", "same-site"))),
            Err(HttpCode::CrossSiteRequest.into())
        );
        assert_eq!(ok(TestRequest::get().insert_header(("sec-fetch-site", "same-origin"))), Ok(()));
        assert_eq!(ok(api().insert_header(json()).insert_header(body()).insert_header(same)), Ok(()));
        // Files are uploaded as bytes, and only as bytes.
        let put = |path: &str| TestRequest::put().uri(path).insert_header(body());
        let bytes = || (header::CONTENT_TYPE, "application/octet-stream");
        assert_eq!(ok(put("/api/0.6/workspace/a.csv").insert_header(bytes())), Ok(()));
        assert_eq!(ok(put("/api/0.6/workspace/a.csv")), Err(HttpCode::UnsupportedMediaType.into()), "no type");
        assert_eq!(
            ok(put("/api/0.6/workspace/a.json").insert_header(json())),
            Err(HttpCode::UnsupportedMediaType.into())
        );
        assert_eq!(ok(put("/api/0.6/user/bob").insert_header(bytes())), Err(HttpCode::UnsupportedMediaType.into()));
        assert_eq!(ok(put("/api/0.6/workspaces").insert_header(bytes())), Err(HttpCode::UnsupportedMediaType.into()));
    }

    #[test]
    fn hosts_split_into_name_and_port() {
        assert_eq!(split_host("zoe.example:4850"), ("zoe.example", Some("4850")));
        assert_eq!(split_host("zoe.example"), ("zoe.example", None));
        assert_eq!(split_host("[::1]:4850"), ("::1", Some("4850")));
        assert_eq!(split_host("[::1]"), ("::1", None));
        assert_eq!(split_host("::1"), ("::1", None));
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let req = || {
            TestRequest::get()
                .peer_addr("10.1.2.3:5555".parse().unwrap())
                .insert_header((header::HOST, "internal:4850"))
                .insert_header(("x-forwarded-host", "zoe.example"))
                .insert_header((header::ORIGIN, "https://zoe.example"))
                .to_http_request()
        };
        assert_eq!(request_host(&req(), &[]), "internal:4850");
        assert!(!same_origin(&req(), &[]), "an unknown peer cannot claim another host");
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(request_host(&req(), &[proxy]), "zoe.example");
        assert!(same_origin(&req(), &[proxy]));
    }
}
