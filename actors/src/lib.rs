//! Zoe's actors and domain logic: the state actor (the single writer of the state), the back
//! ends that run containers ([`backend`]: the Docker actor for one engine), the protocol between
//! them, and the pure functions they use: application description validation, naming, state
//! transitions, start plans and scheduling.
//!
//! Nothing here knows about HTTP.

pub mod backend;
pub mod description;
pub mod error;
pub mod logic;
pub mod protocol;
pub mod relay;
pub mod state_actor;
pub mod workspace;

#[cfg(test)]
mod testing;

/// The single-engine back end under its older path: [`backend::engine`].
pub use backend::engine as docker_actor;
pub use error::{Code, ZoeError};
pub use logic::transitions::Caller;
