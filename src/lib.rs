//! The `zoe` binary's library: configuration, the HTTP API and its authentication, the master's
//! start-up, and the command-line tools. The domain lives in the `zoe-actors` crate and the
//! persisted state in `zoe-checkpoints`.

use std::sync::Arc;

use actix::Addr;
use zoe_actors::docker_actor::DockerActor;
use zoe_actors::state_actor::StateActor;

pub mod api;
pub mod auth;
pub mod checkpoint_cmd;
pub mod cli;
pub mod config;
pub mod error;
pub mod master;
pub mod observability;
pub mod openapi;
pub mod simulate_cmd;
pub mod tls;
pub mod web;

/// What every HTTP handler can reach.
pub struct AppData {
    pub state: Addr<StateActor>,
    /// The container back end, for streaming logs; `None` with `--no-docker`.
    pub docker: Option<Addr<DockerActor>>,
    pub auth: Arc<auth::Auth>,
    pub config: Arc<config::MasterConfig>,
    /// API latency, for `/metrics`.
    pub metrics: Arc<observability::ApiMetrics>,
}
