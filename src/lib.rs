//! The `zoe` binary's library: configuration, the HTTP API and its authentication, the master's
//! start-up, and the command-line tools. The domain lives in the `zoe-actors` crate and the
//! persisted state in `zoe-checkpoints`.

use std::sync::Arc;

use actix::Addr;
use zoe_actors::logic::reader::Reader;
use zoe_actors::protocol::BackendHandle;
use zoe_actors::state_actor::StateActor;

pub mod api;
pub mod apps;
pub mod audit;
pub mod auth;
pub mod body;
pub mod checkpoint_cmd;
pub mod checkpoint_diff;
pub mod cli;
pub mod config;
pub mod datasets;
pub mod dial;
pub mod error;
pub mod escape;
pub mod file_answers;
pub mod files;
pub mod headers;
pub mod idle;
pub mod keyed;
pub mod ldap;
pub mod limits;
pub mod listing;
pub mod logs;
pub mod master;
pub mod observability;
pub mod openapi;
pub mod origin;
pub mod passwords;
pub mod paths;
pub mod percent;
pub mod proxy;
pub mod relay_cmd;
pub mod requests;
pub mod responses;
pub mod sampler;
pub mod simulate_cmd;
pub mod tls;
pub mod usage;
pub mod web;
pub mod web_sessions;
pub mod workspaces;

/// What every HTTP handler can reach.
pub struct AppData {
    /// Where changes are sent, one message each.
    pub state: Addr<StateActor>,
    /// Where reads are made: the newest durable state, without a message.
    pub reader: Reader,
    /// The container back end, for streaming logs; `None` with `--no-docker`.
    pub backend: Option<BackendHandle>,
    pub auth: Arc<auth::Auth>,
    /// Per-user submission rate and followed logs.
    pub limits: Arc<limits::Limits>,
    pub config: Arc<config::MasterConfig>,
    /// API latency, for `/metrics`.
    pub metrics: Arc<observability::ApiMetrics>,
    /// Use of executions through the proxy, and what idle culling has left them.
    pub activity: Arc<idle::Activity>,
    /// Users' workspaces: their use of the quota.
    pub workspaces: Arc<workspaces::Workspaces>,
    /// How the proxy reaches services.
    pub dialer: Arc<dial::Dialer>,
    /// The application hosts: their domain, tickets and cookies.
    pub apps: Arc<apps::Apps>,
    /// The administrator's data sets and their sizes.
    pub datasets: Arc<datasets::Datasets>,
}
