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

#[cfg(test)]
mod testing;

pub use error::{Code, ZoeError};
pub use logic::transitions::Caller;
