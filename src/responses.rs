//! The error responses the API's operations share, for the OpenAPI document: one type per
//! refusal, and the sets an operation names in its `#[utoipa::path(responses(..))]`. An
//! operation that lists `401` (every set here does) needs basic auth, which the document adds.

use std::collections::BTreeMap;

use utoipa::openapi::response::Response;
use utoipa::openapi::RefOr;
use utoipa::IntoResponses;

use crate::error::ErrorBody;

/// The refusals every authenticated operation can give.
#[derive(IntoResponses)]
pub enum AuthRefusals {
    /// `unauthorized`: missing or wrong credentials (with `WWW-Authenticate`)
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// `too_many_failed_logins` (with `Retry-After`)
    #[response(status = 429)]
    Throttled(ErrorBody),
}

/// A read the state actor did not answer.
#[derive(IntoResponses)]
pub enum Unavailable {
    /// `unavailable`: the state actor does not answer
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// A change that was not saved.
#[derive(IntoResponses)]
pub enum Unsaved {
    /// `checkpoint_failed`, `unavailable`: the change was not saved
    #[response(status = 503)]
    Unsaved(ErrorBody),
}

/// A change that would grow the state while its disk is low.
#[derive(IntoResponses)]
pub enum LowStorage {
    /// `insufficient_storage`: the state disk is under `state-min-free`
    #[response(status = 507)]
    LowStorage(ErrorBody),
}

/// A request body over the limit.
#[derive(IntoResponses)]
pub enum TooLarge {
    /// `payload_too_large`
    #[response(status = 413)]
    TooLarge(ErrorBody),
}

/// A user named in the path or in `?user=` that does not exist, or that the caller may not see.
#[derive(IntoResponses)]
pub enum NoSuchUser {
    /// `no_such_user`
    #[response(status = 404)]
    NoSuchUser(ErrorBody),
}

/// What only administrators may do.
#[derive(IntoResponses)]
pub enum AdminOnly {
    /// `admin_only`
    #[response(status = 403)]
    AdminOnly(ErrorBody),
}

/// A workspace path that a symbolic link leads out of the workspace.
#[derive(IntoResponses)]
pub enum OutsideWorkspace {
    /// `outside_workspace`: the path leads out of the workspace (a symbolic link)
    #[response(status = 403)]
    OutsideWorkspace(ErrorBody),
}

/// A workspace transfer that cannot start now.
#[derive(IntoResponses)]
pub enum WorkspaceBusy {
    /// `busy`: too many transfers at once (with `Retry-After`); `unavailable`: the workspace cannot be prepared
    #[response(status = 503)]
    WorkspaceBusy(ErrorBody),
}

/// A set of responses made of others, whose statuses do not overlap.
macro_rules! response_set {
    ($(#[$doc:meta])* $name:ident = $($part:ty),+) => {
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                let mut all = BTreeMap::new();
                $(all.extend(<$part>::responses());)+
                all
            }
        }
    };
}

response_set!(
    /// What an operation that reads can refuse.
    ReadRefusals = AuthRefusals, Unavailable
);
response_set!(
    /// What a change that does not grow the state (a termination) can refuse.
    ChangeRefusals = AuthRefusals, Unsaved
);
response_set!(
    /// What a change that grows the state can refuse.
    GrowthRefusals = AuthRefusals, Unsaved, LowStorage
);
