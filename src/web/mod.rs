//! The web interface (being written).

use actix_web::web;

/// Registers the web pages.
pub fn configure(_cfg: &mut web::ServiceConfig) {}
