//! Zoe's actors and domain logic. Nothing here knows about HTTP. The folders are the layers, each
//! using only those below it:
//!
//! - [`state_actor`]: the single writer of Zoe's state (an actor: it owns the state, writes the
//!   checkpoints on a thread of its own and talks to a back end). The top layer.
//! - [`logic`]: pure functions, no I/O, `now` passed in: transitions, outcomes, the scheduler and
//!   placement, start plans, the history, the views and the reader that serves them, the
//!   simulator. Tested fast, without Docker.
//! - [`backend`]: everything that does I/O with Docker or the host: the back-end actors (one
//!   Docker Engine, a Swarm), their Docker client, configuration and logs, and users' workspaces.
//! - [`description`]: the application description's language (validation, templates, naming,
//!   units, strict JSON), pure; everybody uses it.
//!
//! And at the ground, used by the layers above:
//!
//! - [`protocol`]: the commands and outcomes between the state actor and the back ends.
//! - [`relay`]: the wire protocol between the master and a Swarm network's relay (the handshake
//!   over a stream the caller brings, and the key derivation; no sockets of its own).
//! - [`error`]: domain errors and their stable codes.
//! - [`backoff`]: the pauses after failures (doubling up to a ceiling), for back ends and the
//!   state actor alike.
//!
//! Test helpers (`testing`) are a `cfg(test)` module: they are not part of the library.

pub mod backend;
pub mod backoff;
pub mod description;
pub mod error;
pub mod logic;
pub mod protocol;
pub mod relay;
pub mod state_actor;

#[cfg(test)]
mod testing;

pub use error::{Code, ZoeError};
pub use logic::access::Caller;
