//! The back ends: the code that runs containers for Zoe, and the only code that talks to Docker.
//!
//! A back end never touches Zoe's state. It speaks the back-end protocol of [`crate::protocol`]:
//! the state actor sends it commands (start an execution, remove one, remove orphan containers or
//! a network, take an inventory) and receives their outcomes, and whatever happens to containers
//! on their own, as [`crate::protocol::BackendEvent`] messages. The guarantees every back end
//! gives are listed there.
//!
//! - [`engine`]: one Docker Engine (the [`DockerActor`]).
//! - [`swarm`]: a Docker Swarm mode cluster, through one of its managers (the [`SwarmActor`]).
//! - [`config`]: what both read: the endpoint (and TLS), bounds, limits.
//! - `client`: the connection to one Docker API endpoint, shared by every back end: API version
//!   negotiation, bounded and timed calls, reachability tracking, and the errors of calls.
//! - `logs`: reading container logs, shared by every back end: log tails kept on disk, log
//!   streams.
//!
//! The labels below mark what Zoe owns on an engine; every back end uses them.

pub(crate) mod client;
pub mod config;
pub mod engine;
pub(crate) mod logs;
pub(crate) mod shared;
pub mod swarm;

pub use config::{DockerConfig, TlsFiles};

/// The back end a master runs, and its configuration.
#[derive(Debug, Clone)]
pub enum Backend {
    /// One Docker Engine.
    Engine(DockerConfig),
    /// A Docker Swarm mode cluster, through a manager.
    Swarm(DockerConfig),
}
pub use engine::DockerActor;
pub use swarm::SwarmActor;

// Containers get them (and others) from `crate::plan`; networks get the first two from the back
// end that creates them.

/// The deployment a container or network belongs to.
pub(crate) const LABEL_DEPLOYMENT: &str = "zoe.deployment_name";
/// The user who owns a container or network.
pub(crate) const LABEL_OWNER: &str = "zoe.owner";
/// The execution a container belongs to.
pub(crate) const LABEL_EXECUTION_ID: &str = "zoe.execution.id";
/// The service a container runs.
pub(crate) const LABEL_SERVICE_ID: &str = "zoe.service.id";
