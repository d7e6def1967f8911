//! What only the value as written can tell, checked while it is read ([`super::reader`]): the
//! range of each count and size (a `u32` cannot hold the `-1` or `1e300` a message must quote),
//! the version, and the length of each list, before its entries are read.
//!
//! Each rule is found by the name of the field, which is unique across the format's objects.

use serde_json::{Map, Number, Value};
use zoe_checkpoints::model::limits::{
    MAX_CORES, MAX_DATASETS, MAX_ENV_ENTRIES, MAX_MEMORY, MAX_PORTS, MAX_PRIORITY, MAX_SERVICES, MAX_STARTUP_ORDER,
    MAX_TOTAL_COUNT, MIN_CORES, MIN_MEMORY, VERSION,
};

/// A refusal: its code and message (the reader gives it its path).
pub(super) type Refusal = (&'static str, String);

/// The fields of a port in the order of the format (the model keeps `path` before
/// `is_main_endpoint`, the order of its checkpoints).
const PORT_FIELDS: &[&str] =
    &["name", "protocol", "port_number", "is_main_endpoint", "path", "expose", "secret_header"];

/// An object of the format by its type's name: how messages call it, and its fields in the order
/// of the format.
pub(super) fn object(name: &str, fields: &'static [&'static str]) -> (&'static str, &'static [&'static str]) {
    match name {
        "Application" => ("the application description", fields),
        "ServiceDescription" => ("a service", fields),
        "Resources" => ("required_resources", fields),
        "PortDescription" => ("a port", PORT_FIELDS),
        _ => ("an object", fields),
    }
}

fn between(
    i: i128,
    n: &Number,
    min: impl Into<i128> + Copy + std::fmt::Display,
    max: impl Into<i128> + Copy + std::fmt::Display,
) -> Result<(), Refusal> {
    if i >= min.into() && i <= max.into() {
        Ok(())
    } else {
        Err(("out_of_range", format!("must be between {min} and {max}, got {n}")))
    }
}

/// An integral number: `2` or `2.0`. Values beyond the range of `i128` saturate, which is far
/// outside every range checked.
pub(super) fn integral(n: &Number) -> Option<i128> {
    if let Some(i) = n.as_i64() {
        return Some(i128::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Some(i128::from(u));
    }
    let f = n.as_f64()?;
    // `as` saturates, and the values in question have no fraction, so nothing is lost that
    // matters for a range check.
    (f.is_finite() && f.fract() == 0.0).then_some(f as i128)
}

/// An integer field, `i` as read and `n` as written; `siblings` are the other fields of its object.
pub(super) fn integer(field: &str, i: i128, n: &Number, siblings: Option<&Map<String, Value>>) -> Result<(), Refusal> {
    match field {
        "version" if i != i128::from(VERSION) => Err((
            "unsupported_version",
            format!("this version of Zoe supports only version 2 of the application description format, got {n}"),
        )),
        "priority" => between(i, n, 0, MAX_PRIORITY),
        "total_count" => between(i, n, 1, MAX_TOTAL_COUNT),
        "startup_order" => between(i, n, 0, MAX_STARTUP_ORDER),
        "port_number" => between(i, n, 1u16, u16::MAX),
        // `total_count` comes first in the format: when it is here, it has been read.
        "essential_count" => {
            let total = siblings.and_then(|m| m.get("total_count")).and_then(Value::as_number).and_then(integral);
            match total {
                Some(total) if i < 0 || i > total => {
                    Err(("out_of_range", format!("must be between 0 and total_count ({total}), got {n}")))
                }
                _ => Ok(()),
            }
        }
        "memory" if i < i128::from(MIN_MEMORY) || i > i128::from(MAX_MEMORY) => Err((
            "out_of_range",
            format!("must be between {MIN_MEMORY} (6 MiB, Docker's minimum) and {MAX_MEMORY} (1 TiB) bytes, got {n}"),
        )),
        _ => Ok(()),
    }
}

/// A number field (with a fraction allowed): `f` as read and `n` as written.
pub(super) fn number(field: &str, f: f64, n: &Number) -> Result<(), Refusal> {
    // Written so that a NaN would fail too.
    if field == "cores" && !(MIN_CORES..=MAX_CORES).contains(&f) {
        return Err((
            "out_of_range",
            format!("must be at least {MIN_CORES} (Docker's smallest CPU limit) and at most {MAX_CORES}, got {n}"),
        ));
    }
    Ok(())
}

/// A list field of `len` entries, before they are read.
pub(super) fn list(field: &str, len: usize) -> Result<(), Refusal> {
    let most = |max: usize, what: &str| {
        if len > max {
            Err(("out_of_range", format!("must contain at most {max} {what}, got {len}")))
        } else {
            Ok(())
        }
    };
    match field {
        "services" if len == 0 => Err(("out_of_range", "must contain at least one service".to_string())),
        "services" => most(MAX_SERVICES, "services"),
        "ports" => most(MAX_PORTS, "ports"),
        "environment" => most(MAX_ENV_ENTRIES, "variables"),
        "datasets" => most(MAX_DATASETS, "data sets"),
        "volumes" if len > 0 => Err((
            "volumes_not_allowed",
            "host path volumes are not allowed in application descriptions; use the workspace mounted at \
             /mnt/workspace"
                .to_string(),
        )),
        "networks" if len > 0 => Err((
            "networks_not_allowed",
            "extra Docker networks are not allowed in application descriptions; every service joins its \
             owner's network"
                .to_string(),
        )),
        _ => Ok(()),
    }
}
