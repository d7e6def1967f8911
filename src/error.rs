//! Refusals to HTTP, in exactly one place: every error code has one status, and every error body
//! is `{"message": ..., "code": ...}` (0.9.7 clients read `message`).
//!
//! Two families of codes: the domain's ([`Code`], refusals about Zoe's users and executions,
//! decided by the actors crate) and the HTTP layer's own ([`HttpCode`], about the request itself:
//! its JSON, its size, its origin, the caller's pace).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use zoe_actors::{Code, ZoeError};

/// The realm of the `WWW-Authenticate` header.
pub const REALM: &str = "Basic realm=\"zoe\"";

/// Refusals that only the HTTP layer makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HttpCode {
    /// The request body is not valid JSON.
    InvalidJson,
    /// A JSON object of the request body names a key twice (which value counts would be a
    /// guess).
    DuplicateKey,
    /// The request is well-formed JSON but a field is missing or has the wrong type, or a query
    /// parameter is malformed.
    InvalidRequest,
    /// A new password shorter than `min-password-length`.
    PasswordTooShort,
    /// A role other than admin, user or guest.
    InvalidRole,
    /// `POST /query` asked for something that is not a query.
    UnknownQuery,
    /// `POST /query` filters that are not an object.
    InvalidFilters,
    /// No such endpoint.
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    /// The application description is larger than allowed.
    DescriptionTooLarge,
    /// A body that is not `application/json`.
    UnsupportedMediaType,
    /// Too many failed logins for this user from this address, or from this address.
    TooManyFailedLogins,
    /// Too many requests of a kind (submissions, followed logs); try later.
    TooManyRequests,
    /// A browser said the request came from another site (or, on an application's host, from
    /// another origin).
    CrossSiteRequest,
    /// A request on an application's host without a valid sign-in (its cookie, or a fresh
    /// ticket from Zoe): open the application through its link on Zoe.
    SignInRequired,
    /// A request for a service worker's script, which no host of Zoe's serves.
    ServiceWorkerRefused,
    /// The master is too busy to take this request now (password checks); try later.
    Busy,
    /// The directory (LDAP) that verifies this user's password cannot be reached or does not
    /// answer; try later. (Never a 401: the password may well be right.)
    AuthUnavailable,
    /// A proxied service could not be reached or did not answer.
    BadGateway,
    /// A workspace path that is not a plain relative path (`..`, `.`, an encoded `/`, NUL).
    InvalidPath,
    /// A workspace path that leads out of the workspace (through a symbolic link).
    OutsideWorkspace,
    /// Nothing at this workspace path.
    NoSuchFile,
    /// A workspace path of the wrong kind (a folder to write over, a folder not empty, a link
    /// to write through, a file to list).
    PathConflict,
    /// An upload that does not fit in the room left in the workspace.
    WorkspaceFull,
    /// A `Range` outside the file.
    RangeNotSatisfiable,
    /// An upload whose body was cut short.
    UploadIncomplete,
    Internal,
}

impl HttpCode {
    /// The stable code string.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpCode::InvalidJson => "invalid_json",
            HttpCode::DuplicateKey => "duplicate_key",
            HttpCode::InvalidRequest => "invalid_request",
            HttpCode::InvalidRole => "invalid_role",
            HttpCode::PasswordTooShort => "password_too_short",
            HttpCode::UnknownQuery => "unknown_query",
            HttpCode::InvalidFilters => "invalid_filters",
            HttpCode::NotFound => "not_found",
            HttpCode::MethodNotAllowed => "method_not_allowed",
            HttpCode::PayloadTooLarge => "payload_too_large",
            HttpCode::DescriptionTooLarge => "description_too_large",
            HttpCode::UnsupportedMediaType => "unsupported_media_type",
            HttpCode::TooManyFailedLogins => "too_many_failed_logins",
            HttpCode::TooManyRequests => "too_many_requests",
            HttpCode::CrossSiteRequest => "cross_site_request",
            HttpCode::SignInRequired => "sign_in_required",
            HttpCode::ServiceWorkerRefused => "service_worker_refused",
            HttpCode::Busy => "busy",
            HttpCode::AuthUnavailable => "auth_unavailable",
            HttpCode::BadGateway => "bad_gateway",
            HttpCode::InvalidPath => "invalid_path",
            HttpCode::OutsideWorkspace => "outside_workspace",
            HttpCode::NoSuchFile => "no_such_file",
            HttpCode::PathConflict => "path_conflict",
            HttpCode::WorkspaceFull => "workspace_full",
            HttpCode::RangeNotSatisfiable => "range_not_satisfiable",
            HttpCode::UploadIncomplete => "upload_incomplete",
            HttpCode::Internal => "internal",
        }
    }
}

/// The code of a refusal: the domain's or the HTTP layer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Zoe(Code),
    Http(HttpCode),
}

impl ErrorCode {
    /// The stable code string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Zoe(c) => c.as_str(),
            ErrorCode::Http(c) => c.as_str(),
        }
    }
}

impl From<Code> for ErrorCode {
    fn from(c: Code) -> Self {
        ErrorCode::Zoe(c)
    }
}

impl From<HttpCode> for ErrorCode {
    fn from(c: HttpCode) -> Self {
        ErrorCode::Http(c)
    }
}

/// A refusal on its way to an HTTP client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    /// What to fix, in plain words.
    pub message: String,
    /// Seconds after which trying again may work (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: impl Into<ErrorCode>, message: impl Into<String>) -> Self {
        ApiError { code: code.into(), message: message.into(), retry_after: None }
    }

    /// The same refusal, saying when to try again.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// Whether this is the domain's `code`.
    pub fn is(&self, code: Code) -> bool {
        self.code == ErrorCode::Zoe(code)
    }
}

impl From<ZoeError> for ApiError {
    fn from(e: ZoeError) -> Self {
        ApiError::new(e.code, e.message)
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        ApiError::new(Code::Unavailable, format!("the state actor is not available: {e}"))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code.as_str())
    }
}

/// The HTTP status of each error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Zoe(code) => match code {
            Code::InvalidDescription(_)
            | Code::InvalidName
            | Code::ExceedsCapacity
            | Code::InvalidTokenName
            | Code::InvalidExpiresDays => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::QuotaExceeded => StatusCode::PAYMENT_REQUIRED,
            Code::AdminOnly => StatusCode::FORBIDDEN,
            Code::NoSuchUser | Code::NoSuchExecution | Code::NoSuchService | Code::NoSuchToken => StatusCode::NOT_FOUND,
            Code::UserExists
            | Code::ExecutionNameInUse
            | Code::UserHasActiveExecutions
            | Code::LastAdmin
            | Code::NoUidLeft
            | Code::DirectoryUser
            | Code::TokenExists
            | Code::TooManyTokens
            | Code::InvalidTransition => StatusCode::CONFLICT,
            Code::CheckpointFailed | Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
            Code::ArchiveUnreadable | Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        },
        ErrorCode::Http(code) => match code {
            HttpCode::InvalidJson
            | HttpCode::DuplicateKey
            | HttpCode::InvalidRequest
            | HttpCode::InvalidRole
            | HttpCode::PasswordTooShort
            | HttpCode::UnknownQuery
            | HttpCode::InvalidFilters
            | HttpCode::InvalidPath
            | HttpCode::UploadIncomplete => StatusCode::BAD_REQUEST,
            HttpCode::OutsideWorkspace => StatusCode::FORBIDDEN,
            HttpCode::NoSuchFile => StatusCode::NOT_FOUND,
            HttpCode::PathConflict => StatusCode::CONFLICT,
            HttpCode::WorkspaceFull => StatusCode::INSUFFICIENT_STORAGE,
            HttpCode::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            HttpCode::CrossSiteRequest | HttpCode::ServiceWorkerRefused => StatusCode::FORBIDDEN,
            HttpCode::SignInRequired => StatusCode::UNAUTHORIZED,
            HttpCode::NotFound => StatusCode::NOT_FOUND,
            HttpCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            HttpCode::PayloadTooLarge | HttpCode::DescriptionTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HttpCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            HttpCode::TooManyFailedLogins | HttpCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            HttpCode::Busy | HttpCode::AuthUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            HttpCode::BadGateway => StatusCode::BAD_GATEWAY,
            HttpCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        },
    }
}

/// Every error body: `{"message", "code"}`; its OpenAPI schema too.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({"message": "no such execution: 42", "code": "no_such_execution"}))]
pub struct ErrorBody {
    /// For people; may change.
    pub message: String,
    /// For programs; stable (see the README's error table).
    pub code: &'static str,
}

/// The answer to a method that `allowed` does not list: 405, with an `Allow` header.
pub fn method_not_allowed(req: &actix_web::HttpRequest, allowed: &[actix_web::http::Method]) -> HttpResponse {
    let allow = allowed.iter().map(actix_web::http::Method::as_str).collect::<Vec<_>>().join(", ");
    let e = ApiError::new(
        HttpCode::MethodNotAllowed,
        format!("{} is not allowed on {}; use {allow}", req.method(), req.path()),
    );
    HttpResponse::MethodNotAllowed().insert_header((header::ALLOW, allow)).json(body(&e))
}

/// The JSON error body of `e`.
pub fn body(e: &ApiError) -> ErrorBody {
    ErrorBody { message: e.message.clone(), code: e.code.as_str() }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(self.code)
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        if self.is(Code::Unauthorized) {
            resp.insert_header((header::WWW_AUTHENTICATE, REALM));
        }
        if let Some(secs) = self.retry_after {
            resp.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        resp.json(body(self))
    }
}
