//! Zoe's integration tests: one test binary (one link step), one module per area.
//! They use the real actors, real HTTP, real files and the real Docker Engine.

mod api;
mod checkpoints;
mod cli;
mod common;
mod docker;
mod fuzz;
mod lifecycle;
mod load;
mod security;
mod tls;
mod web;
