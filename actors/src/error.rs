//! Domain errors: every refusal has a stable snake_case code and a message that says what to fix.
//! The HTTP status of each code is decided in exactly one place, the root crate's `error.rs`.

use std::fmt;

/// Stable error codes. Clients and tests match on these, never on message text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The request body is not valid JSON.
    InvalidJson,
    /// The request is well-formed JSON but a field is missing or has the wrong type.
    InvalidRequest,
    /// The application description is invalid; the inner code says how (`missing_field`, ...).
    InvalidDescription(&'static str),
    /// A user or execution name is not a lowercase DNS label.
    InvalidName,
    /// A role other than admin, user or guest.
    InvalidRole,
    /// Missing or wrong credentials.
    Unauthorized,
    /// Too many failed logins for this user from this address; try later.
    TooManyFailedLogins,
    /// Too many requests of a kind (submissions, followed logs); try later.
    TooManyRequests,
    /// A browser said the request came from another site.
    CrossSiteRequest,
    /// A body that is not `application/json`.
    UnsupportedMediaType,
    /// The application description is larger than allowed.
    DescriptionTooLarge,
    /// The master is too busy to take this request now (password checks); try later.
    Busy,
    /// Only an administrator may do this.
    AdminOnly,
    NoSuchUser,
    NoSuchExecution,
    NoSuchService,
    /// No such endpoint.
    NotFound,
    UserExists,
    ExecutionNameInUse,
    UserHasActiveExecutions,
    LastAdmin,
    QuotaExceeded,
    /// The application needs more than the whole platform has.
    ExceedsCapacity,
    /// The execution cannot make that move from its current status.
    InvalidTransition,
    UnknownQuery,
    InvalidFilters,
    PayloadTooLarge,
    MethodNotAllowed,
    /// The change could not be made durable; it was not acknowledged.
    CheckpointFailed,
    /// A component (Docker, the state actor) is not available right now.
    Unavailable,
    Internal,
}

impl Code {
    /// The stable code string.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidJson => "invalid_json",
            Code::InvalidRequest => "invalid_request",
            Code::InvalidDescription(c) => c,
            Code::InvalidName => "invalid_name",
            Code::InvalidRole => "invalid_role",
            Code::Unauthorized => "unauthorized",
            Code::TooManyFailedLogins => "too_many_failed_logins",
            Code::TooManyRequests => "too_many_requests",
            Code::CrossSiteRequest => "cross_site_request",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::DescriptionTooLarge => "description_too_large",
            Code::Busy => "busy",
            Code::AdminOnly => "admin_only",
            Code::NoSuchUser => "no_such_user",
            Code::NoSuchExecution => "no_such_execution",
            Code::NoSuchService => "no_such_service",
            Code::NotFound => "not_found",
            Code::UserExists => "user_exists",
            Code::ExecutionNameInUse => "execution_name_in_use",
            Code::UserHasActiveExecutions => "user_has_active_executions",
            Code::LastAdmin => "last_admin",
            Code::QuotaExceeded => "quota_exceeded",
            Code::ExceedsCapacity => "exceeds_capacity",
            Code::InvalidTransition => "invalid_transition",
            Code::UnknownQuery => "unknown_query",
            Code::InvalidFilters => "invalid_filters",
            Code::PayloadTooLarge => "payload_too_large",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::CheckpointFailed => "checkpoint_failed",
            Code::Unavailable => "unavailable",
            Code::Internal => "internal",
        }
    }
}

/// A refusal: a stable code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoeError {
    pub code: Code,
    pub message: String,
    /// Seconds after which trying again may work, when that is known.
    pub retry_after: Option<u64>,
}

impl ZoeError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ZoeError { code, message: message.into(), retry_after: None }
    }

    /// The same refusal, saying when to try again.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }
}

impl fmt::Display for ZoeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code.as_str())
    }
}

impl std::error::Error for ZoeError {}

impl From<crate::app_description::DescriptionError> for ZoeError {
    /// The message names the field from the request's root: `application.services[2].name: ...`.
    fn from(e: crate::app_description::DescriptionError) -> Self {
        let path = if e.path == "application" { e.path } else { format!("application.{}", e.path) };
        ZoeError::new(Code::InvalidDescription(e.code), format!("{path}: {}", e.message))
    }
}
