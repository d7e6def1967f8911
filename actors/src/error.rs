//! Domain errors: every refusal has a stable snake_case code and a message that says what to fix.
//! The HTTP status of each code is decided in exactly one place, the root crate's `error.rs`.

use std::fmt;

/// Stable error codes of the domain: refusals about Zoe's users, executions and state. Clients
/// and tests match on these, never on message text. (Refusals about a request itself, such as
/// bad JSON, are the HTTP layer's.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The application description is invalid; the inner code says how (`missing_field`, ...).
    InvalidDescription(&'static str),
    /// A user or execution name is not a lowercase DNS label.
    InvalidName,
    /// Missing or wrong credentials, or a caller that no longer exists.
    Unauthorized,
    /// Only an administrator may do this.
    AdminOnly,
    NoSuchUser,
    NoSuchExecution,
    NoSuchService,
    UserExists,
    ExecutionNameInUse,
    UserHasActiveExecutions,
    LastAdmin,
    QuotaExceeded,
    /// The application needs more than the whole platform has.
    ExceedsCapacity,
    /// The execution cannot make that move from its current status.
    InvalidTransition,
    /// The user signs in through the directory (LDAP): their password is changed there.
    DirectoryUser,
    /// Every uid a user could be given is taken (a hand-edited `next_uid` near its limit).
    NoUidLeft,
    /// A token name that is not a lowercase DNS label of at most 32 bytes.
    InvalidTokenName,
    /// A token lifetime outside 1..=3650 days.
    InvalidExpiresDays,
    /// A usage report's `since` or `until` is not a Unix time in seconds, or `since` is not
    /// before `until`.
    InvalidPeriod,
    /// A usage report grouped by something other than `user` or `execution`.
    InvalidGrouping,
    /// The user has a token of that name already.
    TokenExists,
    /// The user has the most tokens a user may have.
    TooManyTokens,
    NoSuchToken,
    /// The change could not be made durable; it was not acknowledged (and is undone).
    CheckpointFailed,
    /// The state disk's free space is under `state-min-free`: changes are refused before Zoe
    /// fills it.
    InsufficientStorage,
    /// A component (the back end, the state actor) is not available right now.
    Unavailable,
    /// An archived execution could not be read from its segment (a damaged or edited file).
    ArchiveUnreadable,
    /// Zoe failed itself (an answer it could not write); the message says what, for its log.
    Internal,
}

impl Code {
    /// The stable code string.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidDescription(c) => c,
            Code::InvalidName => "invalid_name",
            Code::Unauthorized => "unauthorized",
            Code::AdminOnly => "admin_only",
            Code::NoSuchUser => "no_such_user",
            Code::NoSuchExecution => "no_such_execution",
            Code::NoSuchService => "no_such_service",
            Code::UserExists => "user_exists",
            Code::ExecutionNameInUse => "execution_name_in_use",
            Code::UserHasActiveExecutions => "user_has_active_executions",
            Code::LastAdmin => "last_admin",
            Code::QuotaExceeded => "quota_exceeded",
            Code::ExceedsCapacity => "exceeds_capacity",
            Code::InvalidTransition => "invalid_transition",
            Code::NoUidLeft => "no_uid_left",
            Code::DirectoryUser => "directory_user",
            Code::InvalidTokenName => "invalid_token_name",
            Code::InvalidExpiresDays => "invalid_expires_days",
            Code::InvalidPeriod => "invalid_period",
            Code::InvalidGrouping => "invalid_grouping",
            Code::TokenExists => "token_exists",
            Code::TooManyTokens => "too_many_tokens",
            Code::NoSuchToken => "no_such_token",
            Code::CheckpointFailed => "checkpoint_failed",
            Code::InsufficientStorage => "insufficient_storage",
            Code::Unavailable => "unavailable",
            Code::ArchiveUnreadable => "archive_unreadable",
            Code::Internal => "internal",
        }
    }
}

/// A refusal: a stable code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoeError {
    pub code: Code,
    pub message: String,
}

impl ZoeError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ZoeError { code, message: message.into() }
    }
}

impl fmt::Display for ZoeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code.as_str())
    }
}

impl std::error::Error for ZoeError {}

impl From<crate::description::app_description::DescriptionError> for ZoeError {
    /// The message names the field from the request's root: `application.services[2].name: ...`.
    fn from(e: crate::description::app_description::DescriptionError) -> Self {
        let path = if e.path == "application" { e.path } else { format!("application.{}", e.path) };
        ZoeError::new(Code::InvalidDescription(e.code), format!("{path}: {}", e.message))
    }
}
