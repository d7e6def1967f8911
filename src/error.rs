//! Domain errors to HTTP, in exactly one place: every error code has one status, and every error
//! body is `{"message": ..., "code": ...}` (0.9.7 clients read `message`).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use zoe_actors::{Code, ZoeError};

/// The realm of the `WWW-Authenticate` header.
pub const REALM: &str = "Basic realm=\"zoe\"";

/// A [`ZoeError`] on its way to an HTTP client.
#[derive(Debug)]
pub struct ApiError(pub ZoeError);

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError(ZoeError::new(code, message))
    }
}

impl From<ZoeError> for ApiError {
    fn from(e: ZoeError) -> Self {
        ApiError(e)
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        ApiError::new(Code::Unavailable, format!("the state actor is not available: {e}"))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The HTTP status of each error code.
pub fn status_of(code: Code) -> StatusCode {
    match code {
        Code::InvalidJson
        | Code::InvalidRequest
        | Code::InvalidDescription(_)
        | Code::InvalidName
        | Code::InvalidRole
        | Code::UnknownQuery
        | Code::InvalidFilters
        | Code::ExceedsCapacity => StatusCode::BAD_REQUEST,
        Code::Unauthorized => StatusCode::UNAUTHORIZED,
        Code::QuotaExceeded => StatusCode::PAYMENT_REQUIRED,
        Code::AdminOnly | Code::CrossSiteRequest => StatusCode::FORBIDDEN,
        Code::NoSuchUser | Code::NoSuchExecution | Code::NoSuchService | Code::NotFound => StatusCode::NOT_FOUND,
        Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Code::UserExists
        | Code::ExecutionNameInUse
        | Code::UserHasActiveExecutions
        | Code::LastAdmin
        | Code::InvalidTransition => StatusCode::CONFLICT,
        Code::PayloadTooLarge | Code::DescriptionTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Code::TooManyFailedLogins | Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        Code::CheckpointFailed | Code::Unavailable | Code::Busy => StatusCode::SERVICE_UNAVAILABLE,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON error body.
pub fn body(e: &ZoeError) -> serde_json::Value {
    serde_json::json!({"message": e.message, "code": e.code.as_str()})
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(self.0.code)
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        if self.0.code == Code::Unauthorized {
            resp.insert_header((header::WWW_AUTHENTICATE, REALM));
        }
        if let Some(secs) = self.0.retry_after {
            resp.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        resp.json(body(&self.0))
    }
}
