//! Parsing and validation of a JSON application description (format version 2, see section 4
//! of the 0.9.7 reference) into the typed model, [`Application`] of `zoe_checkpoints`: the one
//! definition of the description, which the checkpoints store, the views show and the OpenAPI
//! document describes (its `ToSchema`).
//!
//! Unlike 0.9.7, which coerced values with Python's `bool()` and `int()` (so `"false"` was
//! true) and silently dropped unknown keys, this parser is strict:
//!
//! - booleans must be JSON booleans, integers JSON numbers without a fraction, strings JSON
//!   strings;
//! - unknown keys are rejected, which catches typos such as `monitr`;
//! - names, sizes, counts and template variables are checked up front, so that a description
//!   that is accepted can be started.
//!
//! Two steps: serde reads the document into the typed model ([`reader`], with the checks that
//! need the value as written, [`limits`]), then one pass checks the rules over the typed value
//! ([`validate`]). Each step takes the fields in the order of the format and list entries in list
//! order; the first violation is returned as a [`DescriptionError`] with a path such as
//! `services[2].ports[0].port_number`, a stable code from [`CODES`] and a message that says what
//! to fix. A mistake of type or shape anywhere (a wrong type, an unknown or missing field, a
//! number out of range) is answered before a broken rule (a bad name, a duplicate). Nothing here
//! panics, whatever the input.
//!
//! [`check_host_names`] checks, once the execution, owner and deployment names are known, that
//! every container host name fits in one DNS label.

use serde::Deserialize;
use serde_json::Value;
use zoe_checkpoints::model::Application;

mod errors;
mod limits;
mod reader;
mod validate;

pub use errors::{DescriptionError, CODES};
pub use validate::{check_datasets, check_host_names, check_registries, registry_of};

/// Parses and validates an application description.
pub fn parse_application(v: &Value) -> Result<Application, DescriptionError> {
    let app = Application::deserialize(reader::Reader::root(v)).map_err(reader::Error::into_description_error)?;
    validate::application(&app)?;
    Ok(app)
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
