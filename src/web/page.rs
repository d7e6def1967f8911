//! What every page needs: the signed-in user and the page frame ([`WebUser`], [`Layout`]),
//! HTML error pages ([`WebError`]), rendering, form bodies and their CSRF protection.

use std::sync::OnceLock;

use actix::{Handler, Message};
use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use argon2::password_hash::rand_core::{OsRng, RngCore};
use askama::Template;
use blake2::{Blake2s256, Digest};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use zoe_actors::state_actor::StateActor;
use zoe_actors::{Caller, Code, ZoeError};

use crate::auth::{has_authorization, sign_in_path, Signed};
use crate::error::{ApiError, ErrorCode, HttpCode};
use crate::AppData;

/// The Zoe version shown in every footer.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The frame around every page: who is signed in, the navigation, the footer.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The signed-in user; empty on pages shown before signing in.
    pub user: String,
    pub role: &'static str,
    pub is_admin: bool,
    /// The anti-CSRF token every form of this user carries.
    pub csrf: String,
    pub deployment: String,
    pub version: &'static str,
    /// The section highlighted in the navigation.
    pub section: &'static str,
}

impl Layout {
    pub fn anonymous(deployment: String) -> Self {
        Layout {
            user: String::new(),
            role: "",
            is_admin: false,
            csrf: String::new(),
            deployment,
            version: VERSION,
            section: "",
        }
    }

    /// The same frame with another section highlighted.
    pub fn at(&self, section: &'static str) -> Layout {
        Layout { section, ..self.clone() }
    }
}

/// Extractor: the caller of a page, authenticated with HTTP basic auth like the API; refusals
/// are HTML pages.
pub struct WebUser {
    pub caller: Caller,
    pub layout: Layout,
}

fn deployment_of(req: &HttpRequest) -> String {
    req.app_data::<web::Data<AppData>>().map(|d| d.config.deployment_name.clone()).unwrap_or_default()
}

impl FromRequest for WebUser {
    type Error = WebError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let signed = Signed::from_request(req, payload);
        let deployment = deployment_of(req);
        let req = req.clone();
        Box::pin(async move {
            match signed.await {
                Ok(Signed(caller)) => {
                    let layout = Layout {
                        user: caller.name.clone(),
                        role: caller.role.as_str(),
                        is_admin: caller.is_admin(),
                        csrf: csrf_token(&caller),
                        deployment,
                        version: VERSION,
                        section: "",
                    };
                    Ok(WebUser { caller, layout })
                }
                Err(e) => {
                    let mut refusal = WebError::new(e, Layout::anonymous(deployment));
                    // Without credentials (none, or a session that ended), a page is a detour
                    // by the sign-in page; a form is refused (what it held cannot follow).
                    if refusal.status == StatusCode::UNAUTHORIZED && !has_authorization(&req) {
                        refusal.prompt = false;
                        if matches!(*req.method(), actix_web::http::Method::GET | actix_web::http::Method::HEAD) {
                            refusal.location = Some(sign_in_path(&req));
                        }
                    }
                    Err(refusal)
                }
            }
        })
    }
}

/// Sends one change to the state actor; a state actor that does not answer is a refusal like
/// any other (`unavailable`).
pub async fn tell<M, T>(data: &AppData, msg: M) -> Result<T, ApiError>
where
    M: Message<Result = Result<T, ZoeError>> + Send + 'static,
    T: Send + 'static,
    StateActor: Handler<M>,
{
    Ok(data.state.send(msg).await??)
}

impl WebUser {
    /// Sends one message to the state actor; a refusal becomes an error page.
    pub async fn ask<M, T>(&self, data: &AppData, msg: M) -> Result<T, WebError>
    where
        M: Message<Result = Result<T, ZoeError>> + Send + 'static,
        T: Send + 'static,
        StateActor: Handler<M>,
    {
        tell(data, msg).await.map_err(|e| self.error(e))
    }

    /// An error page inside this user's frame.
    pub fn error(&self, e: impl Into<ApiError>) -> WebError {
        WebError::new(e.into(), self.layout.clone())
    }

    /// The error page for a page this user may not see: the same 404 as for a missing one.
    pub fn not_found(&self, what: &str) -> WebError {
        self.error(ApiError::new(HttpCode::NotFound, format!("There is no {what} here.")))
    }

    /// Checks a state-changing request: the form's token must be this user's, and a browser
    /// must not say the request came from another site.
    pub fn check_post(&self, req: &HttpRequest, token: &str) -> Result<(), WebError> {
        let forbidden = |why: &str| WebError {
            status: StatusCode::FORBIDDEN,
            title: "Request refused".into(),
            message: format!("{why} Go back, reload the page and try again."),
            layout: Box::new(self.layout.clone()),
            retry_after: None,
            prompt: false,
            location: None,
        };
        let trusted = req.app_data::<web::Data<AppData>>().map(|d| d.config.trusted_proxy.clone()).unwrap_or_default();
        if !crate::origin::same_origin(req, &trusted) {
            return Err(forbidden("This form was sent from another web site."));
        }
        if !bool::from(token.as_bytes().ct_eq(self.layout.csrf.as_bytes())) {
            return Err(forbidden("This form is out of date or was not made by this Zoe."));
        }
        Ok(())
    }
}

/// The per-process key of the CSRF tokens: tokens die with the master, which only means that
/// forms opened before a restart must be reloaded.
fn csrf_secret() -> &'static [u8; 32] {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    SECRET.get_or_init(|| {
        let mut s = [0u8; 32];
        OsRng.fill_bytes(&mut s);
        s
    })
}

/// The anti-CSRF token of a user: a keyed digest of their id and name. It cannot be computed
/// without the secret, and changes when the user is deleted and created again.
pub fn csrf_token(caller: &Caller) -> String {
    let mut h = Blake2s256::new();
    h.update(csrf_secret());
    h.update(b"zoe-web-csrf");
    h.update(caller.id.to_le_bytes());
    h.update((caller.name.len() as u64).to_le_bytes());
    h.update(caller.name.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The token every posted form carries.
#[derive(serde::Deserialize)]
struct Token {
    #[serde(default)]
    csrf: String,
}

/// Extractor: a form posted by the signed-in user (an `application/x-www-form-urlencoded` body
/// within the configured size), refused unless it carries the user's token and comes from this
/// site; refusals are HTML pages.
pub struct Posted<T> {
    pub user: WebUser,
    pub form: T,
}

impl<T: DeserializeOwned + 'static> FromRequest for Posted<T> {
    type Error = WebError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = WebUser::from_request(req, payload);
        let body = web::Payload::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let user = user.await?;
            let Some(data) = req.app_data::<web::Data<AppData>>().cloned() else {
                return Err(user.error(ApiError::new(HttpCode::Internal, "the page has no state to read")));
            };
            let body = body.await.map_err(|e| user.error(ApiError::new(HttpCode::InvalidRequest, e.to_string())))?;
            let text = read_body(&user, &data, body).await?;
            let token: Token = parse_form(&user, &text)?;
            user.check_post(&req, &token.csrf)?;
            let form = parse_form(&user, &text)?;
            Ok(Posted { user, form })
        })
    }
}

async fn read_body(user: &WebUser, data: &AppData, payload: web::Payload) -> Result<String, WebError> {
    let body =
        crate::body::read_limited(payload, data.config.max_body_bytes, "form").await.map_err(|e| user.error(e))?;
    String::from_utf8(body.to_vec())
        .map_err(|_| user.error(ApiError::new(HttpCode::InvalidRequest, "The form is not valid UTF-8 text.")))
}

fn parse_form<T: DeserializeOwned>(user: &WebUser, text: &str) -> Result<T, WebError> {
    // A form body has the syntax of a query string.
    web::Query::<T>::from_query(text)
        .map(web::Query::into_inner)
        .map_err(|e| user.error(ApiError::new(HttpCode::InvalidRequest, format!("The form is incomplete: {e}"))))
}

/// Renders a page with the headers every page gets.
pub fn render(page: &impl Template, status: StatusCode) -> HttpResponse {
    match page.render() {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((header::X_FRAME_OPTIONS, "DENY"))
            .insert_header((header::REFERRER_POLICY, "same-origin"))
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
            ))
            .body(html),
        Err(e) => {
            tracing::error!("cannot render a page: {e}");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body(format!("Zoe could not render this page: {e}"))
        }
    }
}

/// POST/redirect/GET: where to go after a change.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish()
}

/// A refusal shown as an HTML page, in the frame of the user who asked.
#[derive(Debug)]
pub struct WebError {
    pub status: StatusCode,
    pub title: String,
    pub message: String,
    /// Boxed: errors travel in `Result`s and should stay small.
    pub layout: Box<Layout>,
    /// `Retry-After` seconds, when trying again later may work.
    pub retry_after: Option<u64>,
    /// Whether a 401 asks the browser for basic-auth credentials (`WWW-Authenticate`): when it
    /// sent wrong ones; without any, the way in is the sign-in page.
    pub prompt: bool,
    /// Where to send the browser instead of showing the page (303): the sign-in page.
    pub location: Option<String>,
}

impl WebError {
    pub fn new(e: ApiError, layout: Layout) -> Self {
        let status = crate::error::status_of(e.code);
        let (title, message) = match e.code {
            ErrorCode::Zoe(Code::Unauthorized) => {
                ("Please sign in", "This page needs your Zoe user name and password: sign in again.".to_string())
            }
            ErrorCode::Zoe(Code::NoSuchExecution | Code::NoSuchService | Code::NoSuchUser)
            | ErrorCode::Http(HttpCode::NotFound) => ("Not found", e.message),
            ErrorCode::Http(HttpCode::TooManyFailedLogins) => ("Too many failed sign-ins", e.message),
            ErrorCode::Zoe(Code::QuotaExceeded) => ("Quota exceeded", e.message),
            ErrorCode::Zoe(Code::CheckpointFailed | Code::Unavailable | Code::InsufficientStorage)
            | ErrorCode::Http(HttpCode::Busy) => ("Zoe is not available right now", e.message),
            _ if status == StatusCode::CONFLICT => ("That cannot be done now", e.message),
            _ if status.is_client_error() => ("That did not work", e.message),
            _ => ("Something went wrong", e.message),
        };
        WebError {
            status,
            title: title.into(),
            message: sentence(&message),
            layout: Box::new(layout),
            retry_after: e.retry_after,
            prompt: true,
            location: None,
        }
    }
}

/// A domain message as a sentence: a capital first letter and a full stop.
pub fn sentence(message: &str) -> String {
    let message = message.trim();
    let mut chars = message.chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    let mut out: String = first.to_uppercase().chain(chars).collect();
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

impl std::fmt::Display for WebError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.title, self.message)
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: &'a Layout,
    status: u16,
    title: &'a str,
    message: &'a str,
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        if self.location.is_some() {
            StatusCode::SEE_OTHER
        } else {
            self.status
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(location) = &self.location {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, location.as_str()))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish();
        }
        let page = ErrorPage {
            layout: &self.layout,
            status: self.status.as_u16(),
            title: &self.title,
            message: &self.message,
        };
        let mut resp = render(&page, self.status);
        let headers = resp.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED && self.prompt {
            headers.insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static(crate::error::REALM));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        resp
    }
}

pub type PageResult = Result<HttpResponse, WebError>;

pub use super::rows::show_duration;
pub use zoe_actors::description::units::show_bytes;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_per_user() {
        let a = Caller { id: 1, name: "alice".into(), role: zoe_checkpoints::Role::User };
        let b = Caller { id: 2, name: "alice".into(), role: zoe_checkpoints::Role::User };
        assert_eq!(csrf_token(&a), csrf_token(&a));
        assert_ne!(csrf_token(&a), csrf_token(&b));
    }

    #[test]
    fn messages_read_as_sentences() {
        assert_eq!(sentence("no such execution: 7"), "No such execution: 7.");
        assert_eq!(sentence("Done."), "Done.");
        assert_eq!(sentence(""), "");
    }
}
