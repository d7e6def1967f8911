//! Signing in and out: `GET /login` (the form), `POST /login` (a session cookie, then back to
//! the page that sent the browser here), `POST /logout`.
//!
//! The password is verified by the very path of basic auth ([`crate::auth::Auth::verify`]):
//! local users and the directory, the credential cache, the failed-login throttling and the
//! audit record. `GET /login?prompt=basic` asks for the browser's own password prompt instead
//! (HTTP basic auth, as before sessions). A refusal says nothing of whether the name exists. A sign-in form posted by a
//! page of another site (`Origin`, `Sec-Fetch-Site`) is refused: it would sign the browser in as
//! someone else (login CSRF). Sessions themselves are [`crate::web_sessions`].

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::page::{render, sentence, Layout, PageResult, Posted, WebError};
use crate::auth::Via;
use crate::error::{ApiError, ErrorCode, HttpCode};
use crate::web_sessions::{clear_cookie, set_cookie};
use crate::AppData;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(form))
        .route("/login", web::post().to(sign_in))
        .route("/logout", web::post().to(sign_out));
}

/// Where a browser goes when `next` says nothing usable.
const HOME: &str = "/executions";

/// The longest `next` kept.
const MAX_NEXT: usize = 2048;

/// `next` if it is a path of this site (`/...`; not `//host`, no backslash, no spaces nor
/// control characters, which browsers drop or turn into slashes), else the executions.
pub fn local_next(next: &str) -> &str {
    let b = next.as_bytes();
    let local = b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/' | b'\\'))
        && next.len() <= MAX_NEXT
        && b.iter().all(|c| c.is_ascii_graphic() && *c != b'\\');
    if local {
        next
    } else {
        HOME
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    next: String,
    username: String,
    error: String,
    /// How long a session lasts, in words.
    hours: String,
    /// The same page with the browser's password prompt.
    prompt_href: String,
}

fn page(data: &AppData, next: &str, username: String, error: String) -> LoginPage {
    LoginPage {
        layout: Layout::anonymous(data.config.deployment_name.clone()),
        next: local_next(next).to_string(),
        username,
        error,
        hours: super::rows::duration_words(data.auth.sessions.lifetime().as_secs()),
        prompt_href: format!("/login?prompt=basic&next={}", crate::percent::encode_path(local_next(next))),
    }
}

#[derive(serde::Deserialize, Default)]
struct FormQuery {
    #[serde(default)]
    next: String,
    /// `basic`: sign in with the browser's own password prompt (HTTP basic auth) instead.
    #[serde(default)]
    prompt: String,
}

/// The sign-in page; with `?prompt=basic`, the browser's password prompt instead: the page
/// answers 401 with `WWW-Authenticate` until the browser sends basic-auth credentials, then
/// goes on to `next` (the browser then sends them with every request to Zoe, as before web
/// sessions: for people and tools that prefer it).
async fn form(req: HttpRequest, data: web::Data<AppData>, q: web::Query<FormQuery>) -> HttpResponse {
    if q.prompt != "basic" {
        return render(&page(&data, &q.next, String::new(), String::new()), StatusCode::OK);
    }
    match data.auth.authenticate(&data, &req).await {
        Ok(_) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, local_next(&q.next)))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        Err(e) => {
            let status = crate::error::status_of(e.code);
            let message = if e.code == ErrorCode::Zoe(zoe_actors::Code::Unauthorized) {
                String::new()
            } else {
                sentence(&e.message)
            };
            let mut resp = render(&page(&data, &q.next, String::new(), message), status);
            if status == StatusCode::UNAUTHORIZED {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static(crate::error::REALM));
            }
            resp
        }
    }
}

#[derive(serde::Deserialize, Default)]
struct SignInForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

fn https(req: &HttpRequest, data: &AppData) -> bool {
    crate::origin::request_scheme(req, &data.config.trusted_proxy, data.config.tls_cert.is_some()) == "https"
}

async fn sign_in(req: HttpRequest, data: web::Data<AppData>, body: web::Payload) -> PageResult {
    let anonymous = || Layout::anonymous(data.config.deployment_name.clone());
    if !crate::origin::same_origin(&req, &data.config.trusted_proxy) {
        return Err(WebError::new(
            ApiError::new(
                HttpCode::CrossSiteRequest,
                "This sign-in form was sent from another web site. Open Zoe's own sign-in page and try again.",
            ),
            anonymous(),
        ));
    }
    let body = crate::body::read_limited(body, data.config.max_body_bytes, "form")
        .await
        .map_err(|e| WebError::new(e, anonymous()))?;
    let text = String::from_utf8_lossy(&body);
    let f = web::Query::<SignInForm>::from_query(&text).map(web::Query::into_inner).unwrap_or_default();
    let username = f.username.trim().to_string();
    if username.is_empty() || f.password.is_empty() {
        let p = page(&data, &f.next, username, "Enter your user name and password.".into());
        return Ok(render(&p, StatusCode::UNAUTHORIZED));
    }
    match data.auth.verify(&data, &req, username.clone(), f.password, Via::Form).await {
        Ok(caller) => {
            let cookie = data.auth.begin_session(&data, caller);
            Ok(HttpResponse::SeeOther()
                .insert_header((header::LOCATION, local_next(&f.next)))
                .insert_header((header::SET_COOKIE, set_cookie(&cookie, https(&req, &data))))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish())
        }
        Err(e) => {
            let status = crate::error::status_of(e.code);
            // The same words for a wrong password and a name nobody has.
            let message = if e.code == ErrorCode::Zoe(zoe_actors::Code::Unauthorized) {
                "Wrong user name or password.".to_string()
            } else {
                sentence(&e.message)
            };
            let mut resp = render(&page(&data, &f.next, username, message), status);
            if let Some(secs) = e.retry_after {
                resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
            }
            Ok(resp)
        }
    }
}

/// Ends this browser's session and forgets its cookie. (A browser that sends basic auth keeps
/// sending it: only closing it forgets that.)
async fn sign_out(
    req: HttpRequest,
    data: web::Data<AppData>,
    // The form carries nothing but its token.
    Posted { user: _, form: _ }: Posted<serde::de::IgnoredAny>,
) -> HttpResponse {
    data.auth.end_sessions(&data, &req);
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .insert_header((header::SET_COOKIE, clear_cookie(https(&req, &data))))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_site_are_places_to_go_next() {
        for ok in ["/executions", "/executions/4?x=1&y=%2F", "/admin/users", "/"] {
            assert_eq!(local_next(ok), ok);
        }
        for bad in [
            "",
            "executions",
            "//evil.example/",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example/",
            "/\t/evil.example",
            "/ /evil.example",
            "/a\r\nSet-Cookie: x",
            "/é",
            "javascript:alert(1)",
        ] {
            assert_eq!(local_next(bad), HOME, "{bad:?}");
        }
        assert_eq!(local_next(&format!("/{}", "a".repeat(MAX_NEXT))), HOME);
    }
}
