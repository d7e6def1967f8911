//! Zoe's integration tests: one test binary (one link step), one module per area.
//! They use the real actors, real HTTP, real files and the real Docker Engine.

// Test code: a panic is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod analytics;
mod api;
mod audit;
mod checkpoints;
mod cli;
mod common;
mod datasets;
mod directory;
mod docker;
mod elastic;
mod files;
mod fuzz;
mod history;
mod lifecycle;
mod load;
mod passwords;
mod proxy;
mod security;
mod sessions;
mod starts;
mod state_disk;
mod swarm;
mod tls;
mod tokens;
mod web;
mod workspace_clients;
