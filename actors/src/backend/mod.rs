//! The back ends: the code that runs containers for Zoe, and the only code that talks to Docker
//! or touches the host's files for them (users' workspaces).
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
//! - [`workspace`]: users' workspaces on the host (folders, and on one engine the file system
//!   images that hold their quota), prepared before a start and measured for the views.
//! - `client`: the connection to one Docker API endpoint, shared by every back end: API version
//!   negotiation, bounded and timed calls, reachability tracking, and the errors of calls.
//! - `logs`: reading container logs, shared by every back end: log tails kept on disk, log
//!   streams.
//!
//! The labels below mark what Zoe owns on an engine; every back end uses them.

/// The protocol's command handlers of a back-end actor: each hands its message to the actor's
/// shared `inner` (an `Arc` with `start_execution`, `remove_execution`, `remove_network`,
/// `request_reconcile`, `service_logs`, and the method named for `RemoveContainers`), so that the
/// actor itself never waits. Defined before the back ends' modules, which use it.
macro_rules! command_handlers {
    // A command that answers nothing: handed to `inner`'s method in a task of its own.
    (@spawn $actor:ty, $message:ident => $method:ident) => {
        impl actix::Handler<crate::protocol::$message> for $actor {
            type Result = ();

            fn handle(&mut self, msg: crate::protocol::$message, _ctx: &mut Self::Context) {
                let inner = self.inner.clone();
                actix::spawn(async move { inner.$method(msg).await });
            }
        }
    };
    ($actor:ty, remove_containers: $remove_containers:ident) => {
        command_handlers!(@spawn $actor, StartExecution => start_execution);
        command_handlers!(@spawn $actor, RemoveExecution => remove_execution);
        command_handlers!(@spawn $actor, RemoveContainers => $remove_containers);
        command_handlers!(@spawn $actor, RemoveNetwork => remove_network);

        impl actix::Handler<crate::protocol::Reconcile> for $actor {
            type Result = ();

            fn handle(&mut self, _msg: crate::protocol::Reconcile, _ctx: &mut Self::Context) {
                crate::backend::shared::Reconciles::request_reconcile(&self.inner);
            }
        }

        impl actix::Handler<crate::protocol::ServiceLogs> for $actor {
            type Result = actix::ResponseFuture<Result<crate::protocol::LogStream, String>>;

            fn handle(&mut self, msg: crate::protocol::ServiceLogs, _ctx: &mut Self::Context) -> Self::Result {
                let inner = self.inner.clone();
                Box::pin(async move { inner.service_logs(msg).await })
            }
        }
    };
}

pub(crate) mod client;
pub mod config;
pub mod engine;
pub(crate) mod logs;
pub(crate) mod shared;
pub mod swarm;
pub mod workspace;

pub use config::{DockerConfig, RelaySettings, TlsFiles};

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

// Containers get them (and others) from `crate::logic::plan`; networks get the first two from the
// back end that creates them.

/// The deployment a container or network belongs to.
pub(crate) const LABEL_DEPLOYMENT: &str = "zoe.deployment_name";
/// The user who owns a container or network.
pub(crate) const LABEL_OWNER: &str = "zoe.owner";
/// The execution a container belongs to.
pub(crate) const LABEL_EXECUTION_ID: &str = "zoe.execution.id";
/// The service a container runs.
pub(crate) const LABEL_SERVICE_ID: &str = "zoe.service.id";
