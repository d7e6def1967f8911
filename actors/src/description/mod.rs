//! The application description's language: what a user may write and what it means. Pure
//! functions, no I/O, no state; every other layer (the logic, the back ends, the HTTP side) uses
//! them.
//!
//! - [`app_description`]: parsing and validation of a JSON application description into the
//!   typed model, with the field path of each error.
//! - [`template`]: the template variables of environment values and commands.
//! - [`naming`]: the naming rules of every Docker-visible name (DNS labels).
//! - [`units`]: sizes in bytes, shown to and read from people.
//! - [`strict_json`]: JSON read strictly (a repeated key is refused), for every document Zoe reads.

pub mod app_description;
pub mod naming;
pub mod strict_json;
pub mod template;
pub mod units;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod pinned_errors;
