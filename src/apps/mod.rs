//! Application hosts: every exposed port of every execution is served on a host name of its own,
//! `<port>-<instance>-<execution-id>.<apps-domain>`
//! (`zoe_actors::description::naming::app_host_label`), on the master's own listener. Tenants'
//! pages never share an origin with Zoe or with each other (design rule 12), so a page served by
//! one execution can neither act with its visitor's credentials for Zoe nor read or drive another
//! execution's applications.
//!
//! [`split`] is the outermost middleware: a request for an application host never reaches
//! Zoe's routes (nothing of Zoe is served there), and one for any other host is Zoe's.
//!
//! - **Sign-in.** `/proxy/<id>/<instance>/<port>/<rest>` on Zoe's origin (see [`entry`])
//!   authenticates the caller as every Zoe request is, then redirects the browser to
//!   `<host>/.zoe/sign-in?ticket=...&next=/<rest>` with a one-time ticket ([`sessions`]). The
//!   application host exchanges the ticket for a cookie of its own (host-only, `HttpOnly`,
//!   `SameSite=Lax`; `Secure` with the `__Host-` prefix under TLS) and redirects to the clean
//!   URL. Zoe's credentials are never accepted on an application host, and Zoe accepts no cookie
//!   at all.
//! - **The guard.** On an application host, a request with an unsafe method, or a WebSocket
//!   upgrade, that a browser marks as coming from another origin is refused before it reaches the
//!   service: executions share a site, so a neighbour's page could otherwise send credentialed
//!   requests. A service's `Set-Cookie` loses its `Domain` attribute. A request for a service
//!   worker's script is refused on every host, Zoe's and the applications'.
//! - **Zoe's origin** answers no browser request for a subresource from another origin (a
//!   script's fetch, an image, a frame: only pages opened in the window), and forbids framing.

pub mod entry;
pub mod sessions;

use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use zoe_actors::logic::views;
use zoe_actors::Code;

use crate::error::{ApiError, HttpCode};
use crate::AppData;
use sessions::{Grant, Sessions};

/// The path, on every application host, that exchanges a ticket for a cookie. Applications
/// cannot use it.
pub const SIGN_IN_PATH: &str = "/.zoe/sign-in";

/// The application hosts of a master: their domain and who may use them.
pub struct Apps {
    /// `apps-domain`, lowercase, without a trailing dot.
    pub domain: String,
    pub sessions: Sessions,
}

impl Apps {
    pub fn new(domain: &str) -> Self {
        Apps {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            sessions: Sessions::new(sessions::Bounds::default()),
        }
    }

    /// The application host label of a host name (without its port), if it is under the
    /// domain. Any name under the domain is an application host, one that names no application
    /// included: none of them serves Zoe.
    pub fn label_of<'h>(&self, name: &'h str) -> Option<&'h str> {
        let label = name.strip_suffix(self.domain.as_str())?.strip_suffix('.')?;
        (!label.is_empty()).then_some(label)
    }

    /// The host (`name[:port]`) of an application host label, on the port the client used.
    pub fn host(&self, label: &str, port: Option<&str>) -> String {
        match port {
            Some(p) => format!("{label}.{}:{p}", self.domain),
            None => format!("{label}.{}", self.domain),
        }
    }
}

/// The name of the cookie of application hosts: with the `__Host-` prefix under TLS, which makes
/// browsers refuse it from anywhere but the host itself.
pub fn cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-zoe-app"
    } else {
        "zoe-app"
    }
}

/// Checks a configured `apps-domain`: one or more lowercase DNS labels separated by dots.
pub fn check_domain(domain: &str) -> Result<(), String> {
    let d = domain.trim_end_matches('.');
    let ok = !d.is_empty() && d.len() <= 200 && d.split('.').all(zoe_checkpoints::is_dns_label);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "apps-domain {:?} must be a lowercase DNS name (labels of a-z, 0-9 and '-' separated by dots), e.g. \
             localhost or apps.zoe.example",
            zoe_actors::description::naming::shorten(domain, 64)
        ))
    }
}

/// Middleware, outermost: requests for application hosts are served here and never reach Zoe's
/// routes; Zoe's own are guarded and passed on.
pub async fn split(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<BoxBody, impl MessageBody>>, actix_web::Error> {
    let Some(data) = req.app_data::<web::Data<AppData>>().cloned() else {
        return Ok(next.call(req).await?.map_into_right_body());
    };
    let host = crate::origin::request_host(req.request(), &data.config.trusted_proxy);
    let (name, _) = crate::origin::split_host(&host);
    if let Some(label) = data.apps.label_of(name) {
        let label = label.to_string();
        let (http, payload) = req.into_parts();
        let resp = match serve(&http, payload, &data, &label).await {
            Ok(r) => r,
            Err(e) => e.error_response(),
        };
        return Ok(ServiceResponse::new(http, resp).map_into_left_body());
    }
    if let Err(e) = guard_zoe(req.request()) {
        return Ok(req.into_response(e.error_response()).map_into_left_body());
    }
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, header::HeaderValue::from_static("frame-ancestors 'none'"));
    }
    headers.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
    headers.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        header::HeaderValue::from_static("same-origin"),
    );
    Ok(res.map_into_right_body())
}

/// What Zoe's own origin refuses before routing: service worker scripts, and requests a browser
/// made for a page of another origin other than opening a page.
fn guard_zoe(req: &HttpRequest) -> Result<(), ApiError> {
    if crate::origin::service_worker_script(req) {
        return Err(service_worker_refused());
    }
    if crate::origin::foreign_subresource(req) {
        return Err(ApiError::new(
            HttpCode::CrossSiteRequest,
            "this request was made by a page of another web site; Zoe answers only its own pages and programs",
        ));
    }
    Ok(())
}

fn service_worker_refused() -> ApiError {
    ApiError::new(
        HttpCode::ServiceWorkerRefused,
        "service workers are refused on every host of Zoe: a page cannot install one to answer in place of a server",
    )
}

fn sign_in_required(label: &str) -> ApiError {
    let place = match zoe_actors::description::naming::parse_app_host_label(label) {
        Some((id, port)) => format!("port {port} of execution {id}"),
        None => "an application".to_string(),
    };
    ApiError::new(
        HttpCode::SignInRequired,
        format!(
            "this is {place}, on a host of its own: open it through its link on Zoe (/proxy/...), which signs this \
             browser in; Zoe's own credentials are not accepted here"
        ),
    )
}

/// Whether the client reached the master with HTTPS.
pub fn is_https(req: &HttpRequest, data: &AppData) -> bool {
    crate::origin::request_scheme(req, &data.config.trusted_proxy, data.config.tls_cert.is_some()) == "https"
}

/// A request for an application host.
async fn serve(req: &HttpRequest, payload: Payload, data: &AppData, label: &str) -> Result<HttpResponse, ApiError> {
    if crate::origin::service_worker_script(req) {
        return Err(service_worker_refused());
    }
    let https = is_https(req, data);
    if req.path() == SIGN_IN_PATH {
        return sign_in(req, data, label, https);
    }
    // Neighbours share the site: what can change something must come from this very origin.
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if (!safe || crate::proxy::is_websocket(req)) && !crate::origin::same_origin(req, &data.config.trusted_proxy) {
        return Err(ApiError::new(
            HttpCode::CrossSiteRequest,
            "this request was made by a page of another origin; an application accepts changes and WebSockets only \
             from its own pages",
        ));
    }
    let name = cookie_name(https);
    let grant = data
        .apps
        .sessions
        .session(crate::origin::cookie_values(req, name), label, Instant::now())
        .ok_or_else(|| sign_in_required(label))?;
    let target = views::proxy_target(&data.reader.now(), &grant.caller, grant.execution, &grant.instance, grant.port)
        .map_err(|e| match e.code {
        // A deleted or changed user: their cookies are theirs no more (and no basic-auth
        // prompt here, where Zoe's credentials are never accepted).
        Code::Unauthorized => sign_in_required(label),
        Code::Unavailable => ApiError::from(e).retry_after(2),
        _ => ApiError::from(e),
    })?;
    let cookies = crate::proxy::HostCookies { name, reserved: [cookie_name(true), cookie_name(false)] };
    crate::proxy::forward(req, payload, data, (&grant.caller, grant.execution), &target, &cookies).await
}

/// `?ticket=...&next=...` of a sign-in.
#[derive(serde::Deserialize)]
struct SignIn {
    ticket: String,
    #[serde(default)]
    next: Option<String>,
}

/// Exchanges a ticket for this host's cookie and sends the browser on to the page it wanted.
fn sign_in(req: &HttpRequest, data: &AppData, label: &str, https: bool) -> Result<HttpResponse, ApiError> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Err(ApiError::new(HttpCode::MethodNotAllowed, format!("{SIGN_IN_PATH} is a link: GET only")));
    }
    let q = web::Query::<SignIn>::from_query(req.query_string())
        .map_err(|_| ApiError::new(HttpCode::InvalidRequest, format!("{SIGN_IN_PATH} needs ?ticket=...")))?;
    let (cookie, _) = data.apps.sessions.exchange(&q.ticket, label, Instant::now()).ok_or_else(|| {
        ApiError::new(
            HttpCode::SignInRequired,
            "this sign-in link was already used, is more than a minute old, or is for another application: open the \
             application through its link on Zoe again",
        )
    })?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, local_path(q.next.as_deref())))
        .insert_header((header::SET_COOKIE, set_cookie(cookie_name(https), &cookie, https)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .finish())
}

/// The `Set-Cookie` value of an application host's cookie: for this host only (no `Domain`),
/// every path, not for scripts, not sent with requests that other sites make (except opening a
/// page), and `Secure` under TLS.
pub fn set_cookie(name: &str, value: &str, https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure}")
}

/// A path on this host to go to after signing in: `next` if it is one (`/...`, not `//host`),
/// else `/`.
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.starts_with("/\\") && !p.contains(['\r', '\n']) => {
            p.to_string()
        }
        _ => "/".to_string(),
    }
}

/// Forgets, every few seconds, the tickets and cookies that are no longer of use: expired ones,
/// and cookies of executions that no longer run or of users who changed.
pub fn spawn_sweeper(data: web::Data<AppData>) {
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            data.auth.sweep_sessions(&data);
            let p = data.reader.now();
            data.apps.sessions.sweep(Instant::now(), |g: &Grant| {
                let running = p.state.executions.get(&g.execution).is_some_and(|e| e.status.is_active());
                running && zoe_actors::logic::access::check_caller(&p.state, &g.caller).is_ok()
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_hosts_are_the_names_under_the_domain() {
        let apps = Apps::new("Apps.Localhost.");
        assert_eq!(apps.domain, "apps.localhost");
        assert_eq!(apps.label_of("8888-nb-12.apps.localhost"), Some("8888-nb-12"));
        assert_eq!(apps.label_of("x.apps.localhost"), Some("x"), "an application host naming nothing");
        assert_eq!(apps.label_of("apps.localhost"), None, "the domain itself");
        assert_eq!(apps.label_of("8888-nb-12.evilapps.localhost"), None);
        assert_eq!(apps.label_of("127.0.0.1"), None);
        assert_eq!(apps.host("8888-nb-12", Some("4850")), "8888-nb-12.apps.localhost:4850");
        assert!(check_domain("localhost").is_ok() && check_domain("apps.zoe.example").is_ok());
        for bad in ["", "Apps", "a..b", "a_b.example", "-a.example", "*.example", "127.0.0.1:80"] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_cookie_is_for_this_host_only_and_the_next_page_is_on_it() {
        assert_eq!(set_cookie(cookie_name(false), "v", false), "zoe-app=v; Path=/; HttpOnly; SameSite=Lax");
        assert_eq!(
            set_cookie(cookie_name(true), "v", true),
            "__Host-zoe-app=v; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        assert_eq!(local_path(Some("/lab?x=1")), "/lab?x=1");
        for bad in [
            None,
            Some(""),
            Some("//evil.example/"),
            Some("/\\evil.example"),
            Some("https://evil.example/"),
            Some("/a\r\nSet-Cookie: x"),
        ] {
            assert_eq!(local_path(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn cookies_of_one_name_are_all_found() {
        let req = actix_web::test::TestRequest::get()
            .insert_header((header::COOKIE, "zoe-app=tossed; _xsrf=1"))
            .append_header((header::COOKIE, "zoe-app=mine"))
            .to_http_request();
        assert_eq!(crate::origin::cookie_values(&req, "zoe-app").collect::<Vec<_>>(), ["tossed", "mine"]);
        assert_eq!(crate::origin::cookie_values(&req, "__Host-zoe-app").count(), 0);
    }
}
