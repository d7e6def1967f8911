//! Zoe's actors and domain logic: the state actor (the single writer of the state), the Docker
//! actor (the only code that talks to Docker), and the pure functions they use: application
//! description validation, naming, state transitions and scheduling.
//!
//! Nothing here knows about HTTP.

pub mod app_description;
pub mod naming;
pub mod outcomes;
pub mod plan;
pub mod scheduler;
pub mod simulator;
pub mod template;
pub mod docker_actor;
pub mod error;
pub mod state_actor;
pub mod transitions;
pub mod views;

#[cfg(test)]
mod testing;

pub use error::{Code, ZoeError};
pub use transitions::Caller;
