//! The entry to an application: `/proxy/<execution-id>/<instance>/<port>/<rest>` on Zoe's origin
//! is the link everyone uses (`proxy_url`, the web page, the CLI). It checks the caller (the
//! session cookie of Zoe's pages, or the same credentials as the API; the owner and administrators, anyone else gets the 404 they get for the
//! execution), that the port is exposed and runs, and sends the browser, with a one-time ticket,
//! to the port's own host, which signs it in and serves `/<rest>` (see [`super`]). Nothing
//! proxied is ever served on Zoe's origin.

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};
use zoe_actors::logic::views;
use zoe_actors::Code;

use super::sessions::Grant;
use crate::auth::{has_authorization, sign_in_path, Signed};
use crate::error::{ApiError, HttpCode};
use crate::AppData;

/// The prefix of every entry's path.
pub const PREFIX: &str = "/proxy/";

/// Registers the entry on Zoe's origin.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(["/proxy/{execution}/{instance}/{port}", "/proxy/{execution}/{instance}/{port}/{rest:.*}"])
            .route(web::route().to(enter)),
    );
}

/// `/proxy/<id>/<instance>/<port>/<rest>` on Zoe's origin: after the usual checks, a redirect
/// to the port's own host with a one-time ticket for this caller.
async fn enter(
    req: HttpRequest,
    data: web::Data<AppData>,
    signed: Result<Signed, ApiError>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let caller = match signed {
        Ok(Signed(caller)) => caller,
        // A browser without credentials (nor a live session) signs in on Zoe's page first.
        Err(e) if e.is(Code::Unauthorized) && !has_authorization(&req) && *req.method() == Method::GET => {
            let location = sign_in_path(&req);
            return Ok(HttpResponse::SeeOther()
                .insert_header((header::LOCATION, location))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish());
        }
        Err(e) => return Err(e),
    };
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
    let location =
        format!("{scheme}://{host}{}?ticket={ticket}&next={}", super::SIGN_IN_PATH, crate::percent::encode_path(&next));
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .finish())
}
