//! Why a description was refused: the [`DescriptionError`], its stable [`CODES`], and the words
//! every message shares (the JSON type of a value, a quoted value, a "did you mean" hint).

use serde_json::Value;

/// The path of the whole document in errors.
pub(super) const ROOT: &str = "application";

/// The longest a user-supplied value is quoted in a message or a path, in characters.
const MAX_QUOTED: usize = 64;

/// Every error code, stable (clients may match on them):
///
/// - `not_an_object`: the document, a service, a port or `required_resources` is not a JSON
///   object;
/// - `missing_field`: a required field is absent;
/// - `unknown_field`: a field that the format does not have (often a typo);
/// - `wrong_type`: a value of the wrong JSON type (a string for an integer, a number with a
///   fraction for an integer, ...), or an environment entry that is not a `[name, value]` pair;
/// - `out_of_range`: a number outside its range, or a list with too few or too many entries
///   (no services, more than 64 services, 32 ports, 256 environment entries, 16 data sets, 256
///   containers);
/// - `invalid_name`: a string whose form is not allowed: a service name that is not a lowercase
///   DNS label, an empty or non-printable display name, an image reference with whitespace, an
///   environment variable name, a protocol, a URL path, a data set name that is not a lowercase
///   DNS label;
/// - `duplicate_service_name`: two services with the same name;
/// - `no_monitor`: no service has `monitor: true`;
/// - `unsupported_version`: `version` is not 2;
/// - `unknown_template_variable`: an environment value or a command uses a variable that does
///   not exist, or has a malformed template (a lone brace, `{}`);
/// - `too_long`: a string longer than its limit, or a container host name longer than a DNS
///   label ([`super::check_host_names`]);
/// - `control_character`: a command or an environment value holds a control character other than
///   tab and newline (an escape sequence would reach the terminal of whoever reads it back);
/// - `duplicate_key`: two environment variables of a service have the same name;
/// - `volumes_not_allowed`: a service asks for host path volumes;
/// - `networks_not_allowed`: a service asks for extra Docker networks;
/// - `invalid_secret_header`: a port's `secret_header` that is not `Name: value` with `{secret}`
///   in the value, names a header the proxy must decide itself, or is on a port that is not
///   exposed;
/// - `registry_not_allowed`: an image names a registry that is not on the master's allow-list
///   ([`super::check_registries`]);
/// - `duplicate_dataset`: a service names the same data set twice;
/// - `unknown_dataset`: a service names a data set the master does not have
///   ([`super::check_datasets`]).
pub const CODES: &[&str] = &[
    "not_an_object",
    "missing_field",
    "unknown_field",
    "wrong_type",
    "out_of_range",
    "invalid_name",
    "duplicate_service_name",
    "no_monitor",
    "unsupported_version",
    "unknown_template_variable",
    "too_long",
    "volumes_not_allowed",
    "networks_not_allowed",
    "invalid_command",
    "registry_not_allowed",
    "invalid_secret_header",
    "control_character",
    "duplicate_key",
    "duplicate_dataset",
    "unknown_dataset",
];

/// Why an application description was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DescriptionError {
    /// Where: `application` for the whole document, else a path such as
    /// `services[2].ports[0].port_number`.
    pub path: String,
    /// What kind of problem, one of [`CODES`].
    pub code: &'static str,
    /// What to fix, in plain words.
    pub message: String,
}

pub(super) type Res<T> = Result<T, DescriptionError>;

pub(super) fn fail<T>(path: &str, code: &'static str, message: impl Into<String>) -> Res<T> {
    Err(DescriptionError { path: path.to_string(), code, message: message.into() })
}

/// The path of field `key` of the object at `parent`.
pub(super) fn field_path(parent: &str, key: &str) -> String {
    if parent == ROOT {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// The path of entry `i` of the list at `parent`.
pub(super) fn index_path(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// The JSON type of `v`, as told to users: `got a string`.
pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `s` shortened for quoting in a message or path, with its control characters escaped.
pub(super) fn quote(s: &str) -> String {
    let mut out = String::new();
    for c in crate::description::naming::shorten(s, MAX_QUOTED).chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The refusal of an unknown `key` among `allowed` fields, with a hint when a field is close.
pub(super) fn unknown_field(parent: &str, key: &str, allowed: &[&str]) -> DescriptionError {
    let hint = closest(key, allowed).map(|s| format!(" (did you mean \"{s}\"?)")).unwrap_or_default();
    DescriptionError {
        path: field_path(parent, &quote(key)),
        code: "unknown_field",
        message: format!("unknown field \"{}\"{hint}; allowed fields: {}", quote(key), allowed.join(", ")),
    }
}

/// The allowed key closest to a misspelt `key`, if one is close enough to be a likely typo.
fn closest<'k>(key: &str, allowed: &[&'k str]) -> Option<&'k str> {
    if key.chars().count() > MAX_QUOTED {
        return None;
    }
    let key = key.to_ascii_lowercase();
    allowed
        .iter()
        .map(|a| (strsim::levenshtein(&key, a), *a))
        .filter(|(d, a)| *d <= 2 && *d < a.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}
