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
