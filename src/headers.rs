//! Headers every response of the master carries, whatever answered: the API's JSON, logs in
//! plain text, errors, `/metrics`, web pages and proxied responses.
//!
//! `X-Content-Type-Options: nosniff`: a browser takes each response for the type it says and
//! never guesses another from its bytes. A tenant's log or a proxied file sent as `text/plain`
//! but written to look like HTML or a script is not run as one.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, X_CONTENT_TYPE_OPTIONS};
use actix_web::middleware::Next;

/// Middleware, outermost: `X-Content-Type-Options: nosniff` on every response. Refusals come
/// here as responses too: handlers' and extractors' errors are made responses by actix, and
/// Zoe's middleware answer their refusals themselves (`origin::api_guard`, `apps::split`).
pub async fn nosniff(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    res.headers_mut().insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(res)
}
