//! The pure logic: functions of the state and their arguments, with no I/O, no clock (`now` is
//! passed in) and no randomness. The state actor calls them to decide and to answer; the HTTP side
//! reads through the [`reader`] and the [`views`]; the simulator runs the scheduler's own
//! functions on a simulated clock.
//!
//! - [`access`]: who may see what, the one rule of transitions and views alike.
//! - [`transitions`]: the changes a request makes to the state (submit, start, terminate, users).
//! - [`tokens`]: API tokens, made, listed, revoked and recognised.
//! - [`outcomes`]: the changes a back end's outcomes and events make.
//! - [`scheduler`]: which queued executions start, in which order, and which overstayed.
//! - [`placement`]: whether instances fit on the nodes of a platform (first-fit decreasing).
//! - [`quota`]: the owners' quotas and their one rule (below the scheduler).
//! - [`resources`]: memory and cores, and which executions hold them (below both of the above).
//! - [`plan`]: the start and removal plans handed to a back end.
//! - [`history`]: executions as readers see them, of the newest checkpoint and of the archive.
//! - [`views`]: what the API and the web pages show of the state.
//! - [`reader`]: the published state that reads are served from, without queuing behind changes.
//! - [`simulator`]: `zoe simulate`, the scheduler on a trace of submissions.
//! - [`usage`]: what a round of container samples adds to executions' usage.

pub mod access;
pub mod directory;
pub mod history;
pub mod outcomes;
pub mod placement;
pub mod plan;
pub mod quota;
pub mod reader;
pub mod resources;
pub mod scheduler;
pub mod simulator;
pub mod tokens;
pub mod transitions;
pub mod usage;
pub mod views;

#[cfg(test)]
mod load_properties;
