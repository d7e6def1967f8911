//! Parsing and validation of a JSON application description (format version 2, see section 4
//! of the 0.9.7 reference) into the typed [`Application`] model.
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
//! The first violation found, in document order (fields in the order of the format, list
//! entries in list order), is returned as a [`DescriptionError`] with a path such as
//! `services[2].ports[0].port_number`, a stable code from [`CODES`] and a message that says what
//! to fix. Nothing here panics, whatever the input.
//!
//! [`check_host_names`] checks, once the execution, owner and deployment names are known, that
//! every container host name fits in one DNS label.

use serde_json::{Map, Number, Value};
use zoe_checkpoints::model::{limits, Application, PortDescription, Resources, ServiceDescription};

use crate::description::{naming, template};

/// The path of the whole document in errors.
const ROOT: &str = "application";

/// The only supported format version.
const VERSION: i128 = limits::VERSION as i128;
// The limits a description keeps are the model's: the loader checks them too.
use zoe_checkpoints::model::limits::{
    MAX_APP_NAME, MAX_COMMAND, MAX_CONTAINERS, MAX_CORES, MAX_ENV_ENTRIES, MAX_ENV_NAME, MAX_ENV_VALUE, MAX_IMAGE,
    MAX_MEMORY, MAX_PORTS, MAX_PORT_NAME, MAX_PORT_PATH, MAX_PRIORITY, MAX_PROTOCOL, MAX_SERVICES, MAX_STARTUP_ORDER,
    MAX_TOTAL_COUNT, MIN_CORES, MIN_MEMORY,
};
/// The longest a user-supplied value is quoted in a message or a path, in characters.
const MAX_QUOTED: usize = 64;

const TOP_FIELDS: &[&str] = &["name", "version", "will_end", "requires_binary", "priority", "services"];
const SERVICE_FIELDS: &[&str] = &[
    "name",
    "docker_image",
    "monitor",
    "total_count",
    "essential_count",
    "startup_order",
    "ports",
    "required_resources",
    "environment",
    "command",
    "volumes",
    "networks",
];
const RESOURCE_FIELDS: &[&str] = &["memory", "cores"];
const PORT_FIELDS: &[&str] =
    &["name", "protocol", "port_number", "is_main_endpoint", "path", "expose", "secret_header"];
const MAX_SECRET_HEADER: usize = 256;
/// Headers a port's `secret_header` may not name: they belong to the connection, to the
/// browser's own state, or to what the proxy itself decides.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "cookie",
    "origin",
    "forwarded",
];

/// Every error code, stable (clients may match on them):
///
/// - `not_an_object`: the document, a service, a port or `required_resources` is not a JSON
///   object;
/// - `missing_field`: a required field is absent;
/// - `unknown_field`: a field that the format does not have (often a typo);
/// - `wrong_type`: a value of the wrong JSON type (a string for an integer, a number with a
///   fraction for an integer, ...), or an environment entry that is not a `[name, value]` pair;
/// - `out_of_range`: a number outside its range, or a list with too few or too many entries
///   (no services, more than 64 services, 32 ports, 256 environment entries, 256 containers);
/// - `invalid_name`: a string whose form is not allowed: a service name that is not a lowercase
///   DNS label, an empty or non-printable display name, an image reference with whitespace, an
///   environment variable name, a protocol, a URL path;
/// - `duplicate_service_name`: two services with the same name;
/// - `no_monitor`: no service has `monitor: true`;
/// - `unsupported_version`: `version` is not 2;
/// - `unknown_template_variable`: an environment value or a command uses a variable that does
///   not exist, or has a malformed template (a lone brace, `{}`);
/// - `too_long`: a string longer than its limit, or a container host name longer than a DNS
///   label ([`check_host_names`]);
/// - `control_character`: a command or an environment value holds a control character other than
///   tab and newline (an escape sequence would reach the terminal of whoever reads it back);
/// - `duplicate_key`: two environment variables of a service have the same name;
/// - `volumes_not_allowed`: a service asks for host path volumes;
/// - `networks_not_allowed`: a service asks for extra Docker networks;
/// - `invalid_secret_header`: a port's `secret_header` that is not `Name: value` with `{secret}`
///   in the value, names a header the proxy must decide itself, or is on a port that is not
///   exposed;
/// - `registry_not_allowed`: an image names a registry that is not on the master's allow-list
///   ([`check_registries`]).
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

type Res<T> = Result<T, DescriptionError>;

fn fail<T>(path: &str, code: &'static str, message: impl Into<String>) -> Res<T> {
    Err(DescriptionError { path: path.to_string(), code, message: message.into() })
}

/// Parses and validates an application description.
pub fn parse_application(v: &Value) -> Result<Application, DescriptionError> {
    let top = Obj::new(v, ROOT.to_string(), "the application description", TOP_FIELDS)?;

    let (v, path) = top.req("name")?;
    let name = display_string(v, &path, MAX_APP_NAME)?.to_string();

    let (v, path) = top.req("version")?;
    let version = int_value(v, &path)?;
    if version != VERSION {
        return fail(
            &path,
            "unsupported_version",
            format!(
                "this version of Zoe supports only version 2 of the application description \
                 format, got {}",
                number_text(v)
            ),
        );
    }

    let (v, path) = top.req("will_end")?;
    let will_end = bool_value(v, &path)?;
    let (v, path) = top.req("requires_binary")?;
    let requires_binary = bool_value(v, &path)?;
    let (v, path) = top.req("priority")?;
    let priority = int_in(v, &path, 0, MAX_PRIORITY)?;

    let (v, services_path) = top.req("services")?;
    let list = array_value(v, &services_path)?;
    if list.is_empty() {
        return fail(&services_path, "out_of_range", "must contain at least one service");
    }
    if list.len() > MAX_SERVICES {
        return fail(
            &services_path,
            "out_of_range",
            format!("must contain at most {MAX_SERVICES} services, got {}", list.len()),
        );
    }
    let mut services: Vec<ServiceDescription> = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let service = parse_service(v, index_path(&services_path, i), &services)?;
        services.push(service);
    }

    if !services.iter().any(|s| s.monitor) {
        return fail(
            &services_path,
            "no_monitor",
            "at least one service must have \"monitor\": true (the execution ends when a \
             monitor service ends)",
        );
    }
    let containers: u64 = services.iter().map(|s| u64::from(s.total_count)).sum();
    if containers > MAX_CONTAINERS {
        return fail(
            &services_path,
            "out_of_range",
            format!(
                "the application would start {containers} containers (the sum of total_count), \
                 more than the limit of {MAX_CONTAINERS}"
            ),
        );
    }

    Ok(Application { name, version: 2, will_end, requires_binary, priority, services })
}

/// Parses one service; `earlier` are the services before it, for the uniqueness of names.
fn parse_service(v: &Value, path: String, earlier: &[ServiceDescription]) -> Res<ServiceDescription> {
    let obj = Obj::new(v, path, "a service", SERVICE_FIELDS)?;

    let (v, path) = obj.req("name")?;
    let name = string_value(v, &path)?;
    if let Err(message) = naming::check_dns_label("service name", name) {
        return fail(&path, "invalid_name", message);
    }
    if let Some(j) = earlier.iter().position(|s| s.name == name) {
        return fail(
            &path,
            "duplicate_service_name",
            format!(
                "service name \"{name}\" is already used by {}; service names must be unique \
                 in an application",
                index_path("services", j)
            ),
        );
    }

    let (v, path) = obj.req("docker_image")?;
    let docker_image = string_value(v, &path)?;
    if docker_image.is_empty() {
        return fail(&path, "invalid_name", "must not be empty");
    }
    check_length(docker_image, &path, MAX_IMAGE)?;
    if docker_image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return fail(
            &path,
            "invalid_name",
            format!("image reference \"{}\" must not contain whitespace or control characters", quote(docker_image)),
        );
    }

    let (v, path) = obj.req("monitor")?;
    let monitor = bool_value(v, &path)?;
    let (v, path) = obj.req("total_count")?;
    let total_count = int_in(v, &path, 1, MAX_TOTAL_COUNT)?;
    let (v, path) = obj.req("essential_count")?;
    let essential_count = int_value(v, &path)?;
    if essential_count < 0 || essential_count > i128::from(total_count) {
        return fail(
            &path,
            "out_of_range",
            format!("must be between 0 and total_count ({total_count}), got {}", number_text(v)),
        );
    }
    let essential_count = u32::try_from(essential_count).unwrap_or(total_count);
    let (v, path) = obj.req("startup_order")?;
    let startup_order = int_in(v, &path, 0, MAX_STARTUP_ORDER)?;

    let (v, ports_path) = obj.req("ports")?;
    let list = array_value(v, &ports_path)?;
    if list.len() > MAX_PORTS {
        return fail(
            &ports_path,
            "out_of_range",
            format!("must contain at most {MAX_PORTS} ports, got {}", list.len()),
        );
    }
    let ports =
        list.iter().enumerate().map(|(i, v)| parse_port(v, index_path(&ports_path, i))).collect::<Res<Vec<_>>>()?;

    let (v, path) = obj.req("required_resources")?;
    let required_resources = parse_resources(v, path)?;

    let environment = match obj.opt("environment") {
        None => Vec::new(),
        Some((v, path)) => parse_environment(v, &path)?,
    };

    let command = match obj.opt("command") {
        None | Some((Value::Null, _)) => None,
        Some((v, path)) => {
            let command = string_value(v, &path)?;
            check_length(command, &path, MAX_COMMAND)?;
            check_controls(command, &path)?;
            check_template(command, &path)?;
            if let Err(e) = shell_words::split(command) {
                return fail(
                    &path,
                    "invalid_command",
                    format!("cannot be split into words like a shell would ({e}); check its quotes"),
                );
            }
            Some(command.to_string())
        }
    };

    if let Some((v, path)) = obj.opt("volumes") {
        if !array_value(v, &path)?.is_empty() {
            return fail(
                &path,
                "volumes_not_allowed",
                "host path volumes are not allowed in application descriptions; use the \
                 workspace mounted at /mnt/workspace",
            );
        }
    }
    if let Some((v, path)) = obj.opt("networks") {
        if !array_value(v, &path)?.is_empty() {
            return fail(
                &path,
                "networks_not_allowed",
                "extra Docker networks are not allowed in application descriptions; every \
                 service joins its owner's network",
            );
        }
    }

    Ok(ServiceDescription {
        name: name.to_string(),
        docker_image: docker_image.to_string(),
        monitor,
        total_count,
        essential_count,
        startup_order,
        ports,
        required_resources,
        environment,
        command,
        volumes: Vec::new(),
        networks: Vec::new(),
    })
}

fn parse_resources(v: &Value, path: String) -> Res<Resources> {
    let obj = Obj::new(v, path, "required_resources", RESOURCE_FIELDS)?;

    let (v, path) = obj.req("memory")?;
    let memory = int_value(v, &path)?;
    if memory < i128::from(MIN_MEMORY) || memory > i128::from(MAX_MEMORY) {
        return fail(
            &path,
            "out_of_range",
            format!(
                "must be between {MIN_MEMORY} (6 MiB, Docker's minimum) and {MAX_MEMORY} \
                 (1 TiB) bytes, got {}",
                number_text(v)
            ),
        );
    }
    let memory = u64::try_from(memory).unwrap_or(MIN_MEMORY);

    let cores = match obj.opt("cores") {
        None | Some((Value::Null, _)) => None,
        Some((v, path)) => {
            let Some(cores) = v.as_f64() else {
                return fail(&path, "wrong_type", format!("must be a number, got {}", kind(v)));
            };
            // Written so that a NaN would fail too.
            if !(MIN_CORES..=MAX_CORES).contains(&cores) {
                return fail(
                    &path,
                    "out_of_range",
                    format!(
                        "must be at least {MIN_CORES} (Docker's smallest CPU limit) and at most {MAX_CORES}, got {}",
                        number_text(v)
                    ),
                );
            }
            Some(cores)
        }
    };

    Ok(Resources { memory, cores })
}

fn parse_environment(v: &Value, path: &str) -> Res<Vec<(String, String)>> {
    let list = array_value(v, path)?;
    if list.len() > MAX_ENV_ENTRIES {
        return fail(
            path,
            "out_of_range",
            format!("must contain at most {MAX_ENV_ENTRIES} variables, got {}", list.len()),
        );
    }
    let mut out = Vec::with_capacity(list.len());
    let list_path = path;
    for (i, entry) in list.iter().enumerate() {
        let path = index_path(list_path, i);
        let pair = match entry {
            Value::Array(pair) if pair.len() == 2 => pair,
            Value::Array(pair) => {
                return fail(
                    &path,
                    "wrong_type",
                    format!("must be a [name, value] pair of strings, got an array of {} elements", pair.len()),
                )
            }
            other => {
                return fail(
                    &path,
                    "wrong_type",
                    format!("must be a [name, value] pair of strings, got {}", kind(other)),
                )
            }
        };
        let (name_value, value_value) = (&pair[0], &pair[1]);

        let name_path = index_path(&path, 0);
        let name = string_value(name_value, &name_path)?;
        check_length(name, &name_path, MAX_ENV_NAME)?;
        if !is_env_name(name) {
            return fail(
                &name_path,
                "invalid_name",
                format!(
                    "environment variable name \"{}\" must be a letter or '_' followed by \
                     letters, digits or '_' ([A-Za-z_][A-Za-z0-9_]*)",
                    quote(name)
                ),
            );
        }

        if let Some(j) = out.iter().position(|(n, _)| n == name) {
            return fail(
                &name_path,
                "duplicate_key",
                format!(
                    "environment variable {name} is already set by {}; set each variable once",
                    index_path(list_path, j)
                ),
            );
        }

        let value_path = index_path(&path, 1);
        let value = string_value(value_value, &value_path)?;
        check_length(value, &value_path, MAX_ENV_VALUE)?;
        check_controls(value, &value_path)?;
        check_template(value, &value_path)?;

        out.push((name.to_string(), value.to_string()));
    }
    Ok(out)
}

fn parse_port(v: &Value, path: String) -> Res<PortDescription> {
    let obj = Obj::new(v, path, "a port", PORT_FIELDS)?;

    let (v, path) = obj.req("name")?;
    let name = display_string(v, &path, MAX_PORT_NAME)?.to_string();

    let (v, path) = obj.req("protocol")?;
    let protocol = string_value(v, &path)?;
    check_length(protocol, &path, MAX_PROTOCOL)?;
    let mut chars = protocol.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c));
    if !well_formed {
        return fail(
            &path,
            "invalid_name",
            format!(
                "protocol \"{}\" must be a lowercase URL scheme such as \"http\" \
                 ([a-z][a-z0-9+.-]*)",
                quote(protocol)
            ),
        );
    }

    let (v, path) = obj.req("port_number")?;
    let port_number = int_in(v, &path, 1u16, u16::MAX)?;
    let (v, path) = obj.req("is_main_endpoint")?;
    let is_main_endpoint = bool_value(v, &path)?;

    let url_path = match obj.opt("path") {
        None => "",
        Some((v, path)) => {
            let s = string_value(v, &path)?;
            check_length(s, &path, MAX_PORT_PATH)?;
            if !(s.is_empty() || s.starts_with('/')) {
                return fail(
                    &path,
                    "invalid_name",
                    format!("URL path \"{}\" must be empty or start with '/'", quote(s)),
                );
            }
            if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return fail(
                    &path,
                    "invalid_name",
                    format!("URL path \"{}\" must not contain whitespace or control characters", quote(s)),
                );
            }
            s
        }
    };

    let expose = match obj.opt("expose") {
        None => false,
        Some((v, path)) => bool_value(v, &path)?,
    };

    let secret_header = match obj.opt("secret_header") {
        None | Some((Value::Null, _)) => None,
        Some((v, path)) => {
            let text = string_value(v, &path)?;
            check_length(text, &path, MAX_SECRET_HEADER)?;
            if let Err(why) = check_secret_header(text) {
                return fail(&path, "invalid_secret_header", why);
            }
            if !expose {
                return fail(
                    &path,
                    "invalid_secret_header",
                    "only an exposed port (\"expose\": true) is reached through the proxy, which adds this header",
                );
            }
            Some(text.to_string())
        }
    };

    Ok(PortDescription {
        name,
        protocol: protocol.to_string(),
        port_number,
        path: url_path.to_string(),
        is_main_endpoint,
        expose,
        secret_header,
    })
}

/// Checks a port's `secret_header`: `Name: value`, the name an HTTP token that the proxy does
/// not decide itself, the value printable ASCII with `{secret}` in it.
fn check_secret_header(text: &str) -> Result<(), String> {
    let shape =
        "must be a header line \"Name: value\" with {secret} in the value, e.g. \"Authorization: token {secret}\"";
    let Some((name, value)) = text.split_once(':') else {
        return Err(format!("\"{}\" {shape}", quote(text)));
    };
    let (name, value) = (name.trim(), value.trim());
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) || name.len() > 64 {
        return Err(format!("header name \"{}\" {shape}", quote(name)));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("proxy-") || lower.starts_with("sec-") {
        return Err(format!(
            "header {name} is decided by the proxy and the browser; pick another (e.g. Authorization)"
        ));
    }
    if !value.contains("{secret}") || !value.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
        return Err(format!("header value \"{}\" {shape}", quote(value)));
    }
    Ok(())
}

/// Checks that every container host name of `app`, for this execution, owner and deployment,
/// fits in one DNS label ([`naming::MAX_HOST_NAME`]).
///
/// The longest name of a service is that of its last instance, so that is the one checked.
pub fn check_host_names(
    app: &Application,
    execution_name: &str,
    owner: &str,
    deployment: &str,
) -> Result<(), DescriptionError> {
    for (i, service) in app.services.iter().enumerate() {
        let total = service.total_count.max(1);
        let name = naming::container_name(&service.name, total - 1, total, execution_name, owner, deployment);
        if name.len() > naming::MAX_HOST_NAME {
            return fail(
                &format!("{}.name", index_path("services", i)),
                "too_long",
                format!(
                    "the container host name \"{name}\" would be {} characters long, more than \
                     the limit of {}; use a shorter service or execution name",
                    name.len(),
                    naming::MAX_HOST_NAME
                ),
            );
        }
    }
    Ok(())
}

/// The registry an image reference names, if any. As Docker reads references, the part before
/// the first `/` is a registry when it has a `.` or a `:` or is `localhost`; otherwise the image
/// is local, or on Docker Hub under its bare name.
pub fn registry_of(image: &str) -> Option<&str> {
    let (first, _) = image.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

/// Refuses images that name a registry not on `allowed` (`host` or `host:port`, compared
/// without case). The engine would connect to whatever address an image names, so without this a
/// description could make it probe any host and port.
pub fn check_registries(app: &Application, allowed: &[String]) -> Res<()> {
    for (i, service) in app.services.iter().enumerate() {
        let Some(registry) = registry_of(&service.docker_image) else { continue };
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(registry)) {
            return fail(
                &format!("{}.docker_image", index_path("services", i)),
                "registry_not_allowed",
                format!(
                    "image \"{}\" names the registry {}, which this Zoe does not allow; use an image \
                     of the engine or one of the allowed registries ({})",
                    quote(&service.docker_image),
                    quote(registry),
                    if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") }
                ),
            );
        }
    }
    Ok(())
}

/// An object of the description, with its path, checked for unknown fields.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    /// Checks that `v` is an object (`what` names it in the message) with only `allowed` keys.
    fn new(v: &'a Value, path: String, what: &str, allowed: &[&str]) -> Res<Obj<'a>> {
        let Value::Object(map) = v else {
            return fail(&path, "not_an_object", format!("{what} must be a JSON object, got {}", kind(v)));
        };
        if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            let hint = closest(key, allowed).map(|s| format!(" (did you mean \"{s}\"?)")).unwrap_or_default();
            return fail(
                &field_path(&path, &quote(key)),
                "unknown_field",
                format!("unknown field \"{}\"{hint}; allowed fields: {}", quote(key), allowed.join(", ")),
            );
        }
        Ok(Obj { map, path })
    }

    /// A required field and its path.
    fn req(&self, key: &str) -> Res<(&'a Value, String)> {
        let path = field_path(&self.path, key);
        match self.map.get(key) {
            Some(v) => Ok((v, path)),
            None => fail(&path, "missing_field", format!("missing required field \"{key}\"")),
        }
    }

    /// An optional field and its path.
    fn opt(&self, key: &str) -> Option<(&'a Value, String)> {
        self.map.get(key).map(|v| (v, field_path(&self.path, key)))
    }
}

fn field_path(parent: &str, key: &str) -> String {
    if parent == ROOT {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn index_path(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// The JSON type of `v`, as told to users: `got a string`.
fn kind(v: &Value) -> &'static str {
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

/// A number as written, for messages; other values by their type.
fn number_text(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        other => kind(other).to_string(),
    }
}

fn bool_value(v: &Value, path: &str) -> Res<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => fail(path, "wrong_type", format!("must be a boolean (true or false), got {}", kind(other))),
    }
}

fn string_value<'a>(v: &'a Value, path: &str) -> Res<&'a str> {
    match v {
        Value::String(s) => Ok(s),
        other => fail(path, "wrong_type", format!("must be a string, got {}", kind(other))),
    }
}

fn array_value<'a>(v: &'a Value, path: &str) -> Res<&'a Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        other => fail(path, "wrong_type", format!("must be an array, got {}", kind(other))),
    }
}

/// An integer: a JSON number without a fraction (`2` or `2.0`). Values beyond the range of
/// `i128` saturate, which is far outside every range checked here.
fn int_value(v: &Value, path: &str) -> Res<i128> {
    let Value::Number(n) = v else {
        return fail(path, "wrong_type", format!("must be an integer, got {}", kind(v)));
    };
    match integral(n) {
        Some(i) => Ok(i),
        None => fail(path, "wrong_type", format!("must be an integer, got a number with a fraction ({n})")),
    }
}

fn integral(n: &Number) -> Option<i128> {
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

/// An integer in `min..=max`.
fn int_in<T>(v: &Value, path: &str, min: T, max: T) -> Res<T>
where
    T: Copy + Into<i128> + TryFrom<i128> + std::fmt::Display,
{
    let n = int_value(v, path)?;
    if n >= min.into() && n <= max.into() {
        if let Ok(t) = T::try_from(n) {
            return Ok(t);
        }
    }
    fail(path, "out_of_range", format!("must be between {min} and {max}, got {}", number_text(v)))
}

/// A display name: a non-empty string of printable characters, at most `max` long.
fn display_string<'a>(v: &'a Value, path: &str, max: usize) -> Res<&'a str> {
    let s = string_value(v, path)?;
    if s.is_empty() {
        return fail(path, "invalid_name", "must not be empty");
    }
    check_length(s, path, max)?;
    if s.chars().any(char::is_control) {
        return fail(
            path,
            "invalid_name",
            "must contain only printable characters (no newlines, tabs or other control \
             characters)",
        );
    }
    Ok(s)
}

fn check_length(s: &str, path: &str, max: usize) -> Res<()> {
    let len = s.chars().count();
    if len > max {
        return fail(path, "too_long", format!("must be at most {max} characters long, got {len}"));
    }
    Ok(())
}

/// Refuses control characters other than tab and newline: escape sequences and carriage returns
/// in a command or a variable come back in errors, logs and listings that people read in a
/// terminal.
fn check_controls(s: &str, path: &str) -> Res<()> {
    match s.chars().enumerate().find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\n')) {
        None => Ok(()),
        Some((i, c)) => fail(
            path,
            "control_character",
            format!(
                "must not contain control characters other than tab and newline; character {} is U+{:04X}",
                i + 1,
                u32::from(c)
            ),
        ),
    }
}

fn check_template(s: &str, path: &str) -> Res<()> {
    template::check(s).or_else(|message| fail(path, "unknown_template_variable", message))
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `s` shortened for quoting in a message or path, with its control characters escaped.
fn quote(s: &str) -> String {
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

/// The allowed key closest to a misspelt `key`, if one is close enough to be a likely typo.
fn closest<'k>(key: &str, allowed: &[&'k str]) -> Option<&'k str> {
    if key.chars().count() > MAX_QUOTED {
        return None;
    }
    let key = key.to_ascii_lowercase();
    allowed
        .iter()
        .map(|a| (edit_distance(&key, a), *a))
        .filter(|(d, a)| *d <= 2 && *d < a.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb { diagonal } else { 1 + diagonal.min(above).min(row[j]) };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The Spark example: a master, three workers and a Jupyter notebook as the monitor.
    fn spark() -> Value {
        json!({
            "name": "Spark + Jupyter",
            "version": 2,
            "will_end": false,
            "requires_binary": false,
            "priority": 512,
            "services": [
                {
                    "name": "spark-master",
                    "docker_image": "zoerepo/spark-master:2.1",
                    "monitor": false,
                    "total_count": 1,
                    "essential_count": 1,
                    "startup_order": 0,
                    "ports": [{
                        "name": "Spark master web interface",
                        "protocol": "http",
                        "port_number": 8080,
                        "is_main_endpoint": false
                    }],
                    "required_resources": {"memory": 536870912},
                    "environment": [],
                    "command": null,
                    "volumes": [],
                    "networks": []
                },
                {
                    "name": "spark-worker",
                    "docker_image": "zoerepo/spark-worker:2.1",
                    "monitor": false,
                    "total_count": 3,
                    "essential_count": 1,
                    "startup_order": 1,
                    "ports": [],
                    "required_resources": {"memory": 4294967296_u64, "cores": 2},
                    "environment": [
                        ["SPARK_MASTER_IP", "spark-master-{execution_name}-{user_name}-{deployment_name}"],
                        ["SPARK_WORKER_CORES", "2"]
                    ]
                },
                {
                    "name": "jupyter",
                    "docker_image": "zoerepo/spark-jupyter-notebook:2.1",
                    "monitor": true,
                    "total_count": 1,
                    "essential_count": 1,
                    "startup_order": 2,
                    "ports": [
                        {
                            "name": "Spark application web interface",
                            "protocol": "http",
                            "port_number": 4040,
                            "is_main_endpoint": false
                        },
                        {
                            "name": "Jupyter Notebook interface",
                            "protocol": "http",
                            "port_number": 8888,
                            "path": "/tree",
                            "is_main_endpoint": true,
                            "expose": true
                        }
                    ],
                    "required_resources": {"memory": 4294967296_u64, "cores": 0.5},
                    "environment": [["NB_USER", "{user_name}"]],
                    "command": "start-notebook.sh --NotebookApp.base_url=/{execution_id}/{{x}}"
                }
            ]
        })
    }

    fn port(name: &str, number: u16, main: bool, path: &str, expose: bool) -> PortDescription {
        PortDescription {
            name: name.to_string(),
            protocol: "http".to_string(),
            port_number: number,
            path: path.to_string(),
            is_main_endpoint: main,
            expose,
            secret_header: None,
        }
    }

    fn expected_spark() -> Application {
        Application {
            name: "Spark + Jupyter".to_string(),
            version: 2,
            will_end: false,
            requires_binary: false,
            priority: 512,
            services: vec![
                ServiceDescription {
                    name: "spark-master".to_string(),
                    docker_image: "zoerepo/spark-master:2.1".to_string(),
                    monitor: false,
                    total_count: 1,
                    essential_count: 1,
                    startup_order: 0,
                    ports: vec![port("Spark master web interface", 8080, false, "", false)],
                    required_resources: Resources { memory: 536_870_912, cores: None },
                    environment: vec![],
                    command: None,
                    volumes: vec![],
                    networks: vec![],
                },
                ServiceDescription {
                    name: "spark-worker".to_string(),
                    docker_image: "zoerepo/spark-worker:2.1".to_string(),
                    monitor: false,
                    total_count: 3,
                    essential_count: 1,
                    startup_order: 1,
                    ports: vec![],
                    required_resources: Resources { memory: 4_294_967_296, cores: Some(2.0) },
                    environment: vec![
                        (
                            "SPARK_MASTER_IP".to_string(),
                            "spark-master-{execution_name}-{user_name}-{deployment_name}".to_string(),
                        ),
                        ("SPARK_WORKER_CORES".to_string(), "2".to_string()),
                    ],
                    command: None,
                    volumes: vec![],
                    networks: vec![],
                },
                ServiceDescription {
                    name: "jupyter".to_string(),
                    docker_image: "zoerepo/spark-jupyter-notebook:2.1".to_string(),
                    monitor: true,
                    total_count: 1,
                    essential_count: 1,
                    startup_order: 2,
                    ports: vec![
                        port("Spark application web interface", 4040, false, "", false),
                        port("Jupyter Notebook interface", 8888, true, "/tree", true),
                    ],
                    required_resources: Resources { memory: 4_294_967_296, cores: Some(0.5) },
                    environment: vec![("NB_USER".to_string(), "{user_name}".to_string())],
                    command: Some("start-notebook.sh --NotebookApp.base_url=/{execution_id}/{{x}}".to_string()),
                    volumes: vec![],
                    networks: vec![],
                },
            ],
        }
    }

    /// The value at a path of `/`-separated keys and indices.
    fn at<'v>(v: &'v mut Value, path: &str) -> &'v mut Value {
        let mut v = v;
        for part in path.split('/') {
            v = match part.parse::<usize>() {
                Ok(i) => &mut v[i],
                Err(_) => &mut v[part],
            };
        }
        v
    }

    /// The Spark example with the value at `path` set to `value`.
    fn with(path: &str, value: Value) -> Value {
        let mut doc = spark();
        *at(&mut doc, path) = value;
        doc
    }

    /// The Spark example with the key at `path` removed.
    fn without(path: &str) -> Value {
        let mut doc = spark();
        let (parent, key) = path.rsplit_once('/').unwrap_or(("", path));
        let obj = if parent.is_empty() { &mut doc } else { at(&mut doc, parent) };
        if let Some(map) = obj.as_object_mut() {
            map.remove(key);
        }
        doc
    }

    /// Parses, expecting an error, and returns its path and code.
    fn error(doc: &Value) -> (String, &'static str) {
        match parse_application(doc) {
            Ok(app) => panic!("expected an error, parsed {app:?}"),
            Err(e) => {
                assert!(CODES.contains(&e.code), "{}", e.code);
                (e.path, e.code)
            }
        }
    }

    fn message(doc: &Value) -> String {
        parse_application(doc).err().map(|e| e.message).unwrap_or_default()
    }

    #[test]
    fn spark_example_parses() {
        assert_eq!(parse_application(&spark()), Ok(expected_spark()));
    }

    #[test]
    fn minimal_description_gets_defaults() {
        let doc = json!({
            "name": "x", "version": 2.0, "will_end": true, "requires_binary": true, "priority": 0,
            "services": [{
                "name": "a", "docker_image": "alpine", "monitor": true, "total_count": 1,
                "essential_count": 0, "startup_order": 0,
                "ports": [{"name": "p", "protocol": "tcp", "port_number": 1, "is_main_endpoint": false}],
                "required_resources": {"memory": MIN_MEMORY, "cores": null}
            }]
        });
        let app = parse_application(&doc);
        let Ok(app) = app else { panic!("{app:?}") };
        assert!(app.will_end && app.requires_binary);
        let s = &app.services[0];
        assert_eq!(s.environment, vec![]);
        assert_eq!(s.command, None);
        assert_eq!(s.required_resources.cores, None);
        assert_eq!(s.ports[0].path, "");
        assert!(!s.ports[0].expose);
    }

    #[test]
    fn display_is_path_and_message() {
        let e = parse_application(&with("services/0/total_count", json!(0)));
        assert_eq!(
            e.err().map(|e| e.to_string()),
            Some("services[0].total_count: must be between 1 and 64, got 0".to_string())
        );
    }

    #[test]
    fn not_an_object() {
        for doc in [json!(null), json!([]), json!("x"), json!(1), json!(true)] {
            assert_eq!(error(&doc), ("application".into(), "not_an_object"));
        }
        assert_eq!(error(&with("services/1", json!([]))), ("services[1]".into(), "not_an_object"));
        assert_eq!(error(&with("services/2/ports/1", json!("8888"))), ("services[2].ports[1]".into(), "not_an_object"));
        assert_eq!(
            error(&with("services/0/required_resources", json!(512))),
            ("services[0].required_resources".into(), "not_an_object")
        );
    }

    #[test]
    fn missing_fields() {
        for key in TOP_FIELDS {
            assert_eq!(error(&without(key)), (key.to_string(), "missing_field"));
        }
        for key in &SERVICE_FIELDS[..8] {
            assert_eq!(error(&without(&format!("services/1/{key}"))), (format!("services[1].{key}"), "missing_field"));
        }
        for key in &PORT_FIELDS[..4] {
            assert_eq!(
                error(&without(&format!("services/2/ports/1/{key}"))),
                (format!("services[2].ports[1].{key}"), "missing_field")
            );
        }
        assert_eq!(
            error(&without("services/0/required_resources/memory")),
            ("services[0].required_resources.memory".into(), "missing_field")
        );
        assert_eq!(message(&without("services/0/docker_image")), "missing required field \"docker_image\"");
    }

    #[test]
    fn optional_fields_may_be_absent() {
        for path in [
            "services/0/environment",
            "services/0/command",
            "services/0/volumes",
            "services/0/networks",
            "services/1/required_resources/cores",
            "services/2/ports/1/path",
            "services/2/ports/1/expose",
        ] {
            assert!(parse_application(&without(path)).is_ok(), "{path}");
        }
    }

    #[test]
    fn unknown_fields_are_rejected_with_a_hint() {
        let mut doc = spark();
        if let Some(s) = doc["services"][2].as_object_mut() {
            let monitor = s.remove("monitor").unwrap_or(Value::Null);
            s.insert("monitr".into(), monitor);
        }
        let e = parse_application(&doc).err();
        let Some(e) = e else { panic!("accepted a typo") };
        assert_eq!((e.path.as_str(), e.code), ("services[2].monitr", "unknown_field"));
        assert!(e.message.starts_with("unknown field \"monitr\" (did you mean \"monitor\"?)"));
        assert!(e.message.contains("allowed fields: name, docker_image, monitor"));

        assert_eq!(error(&with("extra", json!(1))), ("extra".into(), "unknown_field"));
        assert_eq!(
            error(&with("services/0/required_resources/gpus", json!(1))),
            ("services[0].required_resources.gpus".into(), "unknown_field")
        );
        assert_eq!(
            error(&with("services/2/ports/0/exposed", json!(true))),
            ("services[2].ports[0].exposed".into(), "unknown_field")
        );
        // No hint when nothing is close.
        let m = message(&with("zzzzzzzz", json!(1)));
        assert!(!m.contains("did you mean"), "{m}");
        // 0.9.7 services had a `version` key in format 1; it is not part of format 2.
        assert_eq!(error(&with("services/0/version", json!(2))), ("services[0].version".into(), "unknown_field"));
    }

    #[test]
    fn unknown_field_is_reported_before_missing_ones() {
        let mut doc = spark();
        if let Some(s) = doc["services"][0].as_object_mut() {
            s.remove("docker_image");
            s.insert("image".into(), json!("x"));
        }
        assert_eq!(error(&doc), ("services[0].image".into(), "unknown_field"));
    }

    #[test]
    fn wrong_types_everywhere() {
        let bools = [
            "will_end",
            "requires_binary",
            "services/0/monitor",
            "services/2/ports/1/is_main_endpoint",
            "services/2/ports/1/expose",
        ];
        let ints = [
            "version",
            "priority",
            "services/0/total_count",
            "services/0/essential_count",
            "services/0/startup_order",
            "services/2/ports/1/port_number",
            "services/0/required_resources/memory",
        ];
        let strings = [
            "name",
            "services/0/name",
            "services/0/docker_image",
            "services/0/command",
            "services/2/ports/1/name",
            "services/2/ports/1/protocol",
            "services/2/ports/1/path",
            "services/1/environment/0/0",
            "services/1/environment/0/1",
        ];
        let arrays =
            ["services", "services/0/ports", "services/0/environment", "services/0/volumes", "services/0/networks"];
        let to_path = |p: &str| {
            let mut out = String::new();
            for part in p.split('/') {
                match part.parse::<usize>() {
                    Ok(i) => out.push_str(&format!("[{i}]")),
                    Err(_) if out.is_empty() => out.push_str(part),
                    Err(_) => out.push_str(&format!(".{part}")),
                }
            }
            out
        };
        let check = |paths: &[&str], bad: &[Value], expected: &str| {
            for p in paths {
                for v in bad {
                    let doc = with(p, v.clone());
                    assert_eq!(error(&doc), (to_path(p), "wrong_type"), "{p} = {v}");
                    let m = message(&doc);
                    assert!(m.starts_with(expected), "{p} = {v}: {m}");
                }
            }
        };
        check(
            &bools,
            &[json!("false"), json!("true"), json!(0), json!(1), json!(null), json!([])],
            "must be a boolean",
        );
        check(&ints, &[json!("2"), json!(2.5), json!(true), json!(null), json!([2]), json!({})], "must be an integer");
        // `command` may be null; every other string may not.
        check(&strings, &[json!(1), json!(false), json!([]), json!({"a": 1})], "must be a string");
        check(&strings[..3], &[json!(null)], "must be a string");
        check(&arrays, &[json!("x"), json!(1), json!({}), json!(null)], "must be an array");
        assert_eq!(message(&with("services/0/total_count", json!("1"))), "must be an integer, got a string");
        assert_eq!(message(&with("priority", json!(1.5))), "must be an integer, got a number with a fraction (1.5)");
        assert_eq!(
            error(&with("services/1/required_resources/cores", json!("2"))),
            ("services[1].required_resources.cores".into(), "wrong_type")
        );
    }

    #[test]
    fn integral_floats_are_integers() {
        let app = parse_application(&with("services/0/total_count", json!(2.0)));
        assert_eq!(app.map(|a| a.services[0].total_count), Ok(2));
    }

    #[test]
    fn out_of_range() {
        let huge = json!(1e300);
        let beyond_u64: Value = serde_json::from_str("18446744073709551616").unwrap_or_default();
        let cases: Vec<(&str, Vec<Value>)> = vec![
            ("priority", vec![json!(-1), json!(1025), huge.clone()]),
            ("services/0/total_count", vec![json!(0), json!(65), json!(-3)]),
            ("services/1/essential_count", vec![json!(-1), json!(4)]),
            ("services/0/startup_order", vec![json!(-1), json!(1001)]),
            ("services/2/ports/1/port_number", vec![json!(0), json!(65536), json!(-8888), beyond_u64.clone()]),
            (
                "services/0/required_resources/memory",
                vec![
                    json!(MIN_MEMORY - 1),
                    json!(MAX_MEMORY + 1),
                    json!(0),
                    json!(-1),
                    json!(i64::MIN),
                    json!(u64::MAX),
                    beyond_u64,
                    huge,
                ],
            ),
            (
                "services/1/required_resources/cores",
                vec![json!(0), json!(-1), json!(0.0), json!(256.5), json!(1e300), json!(1e-300), json!(0.0099)],
            ),
        ];
        for (p, values) in cases {
            for v in values {
                let (path, code) = error(&with(p, v.clone()));
                assert_eq!(code, "out_of_range", "{p} = {v}");
                assert_eq!(path.replace(['[', ']', '.'], "/").replace("//", "/"), p, "{v}");
            }
        }
        assert!(parse_application(&with("services/1/essential_count", json!(3))).is_ok());
        assert!(parse_application(&with("services/1/required_resources/cores", json!(256))).is_ok());
        assert!(parse_application(&with("services/1/required_resources/cores", json!(0.01))).is_ok());
        assert_eq!(
            message(&with("services/1/required_resources/cores", json!(1e-300))),
            "must be at least 0.01 (Docker's smallest CPU limit) and at most 256, got 1e-300"
        );
        assert!(parse_application(&with("services/0/required_resources/memory", json!(MAX_MEMORY))).is_ok());
        assert_eq!(
            message(&with("services/1/essential_count", json!(4))),
            "must be between 0 and total_count (3), got 4"
        );
        assert!(message(&with("services/0/required_resources/memory", json!(1024))).contains("6 MiB"));
    }

    #[test]
    fn list_sizes() {
        assert_eq!(error(&with("services", json!([]))), ("services".into(), "out_of_range"));
        let service = spark()["services"][2].clone();
        let many: Vec<Value> = (0..65)
            .map(|i| {
                let mut s = service.clone();
                s["name"] = json!(format!("s{i}"));
                s
            })
            .collect();
        assert_eq!(error(&with("services", json!(many))), ("services".into(), "out_of_range"));
        let port = spark()["services"][2]["ports"][0].clone();
        assert_eq!(
            error(&with("services/2/ports", json!(vec![port; 33]))),
            ("services[2].ports".into(), "out_of_range")
        );
        // (Each variable named once: a name set twice is refused, see `environment_entries`.)
        let env = |n: usize| (0..n).map(|i| json!([format!("A{i}"), "b"])).collect::<Vec<_>>();
        assert!(parse_application(&with("services/2/environment", json!(env(256)))).is_ok());
        assert_eq!(
            error(&with("services/2/environment", json!(env(257)))),
            ("services[2].environment".into(), "out_of_range")
        );
    }

    #[test]
    fn too_many_containers() {
        let service = spark()["services"][2].clone();
        let five: Vec<Value> = (0..5)
            .map(|i| {
                let mut s = service.clone();
                s["name"] = json!(format!("s{i}"));
                s["total_count"] = json!(if i == 4 { 1 } else { 64 });
                s
            })
            .collect();
        assert_eq!(error(&with("services", json!(five))), ("services".into(), "out_of_range"));
        let m = message(&with("services", json!(five)));
        assert!(m.contains("257 containers"), "{m}");
        let four: Vec<Value> = five[..4].to_vec();
        assert!(parse_application(&with("services", json!(four))).is_ok());
    }

    #[test]
    fn service_names() {
        for bad in ["", "Spark", "spark_master", "-a", "a-", "a.b", &"a".repeat(64)] {
            assert_eq!(
                error(&with("services/1/name", json!(bad))),
                ("services[1].name".into(), "invalid_name"),
                "{bad}"
            );
        }
        assert!(message(&with("services/1/name", json!("Spark")))
            .starts_with("service name \"Spark\": must be a lowercase DNS label"));
        assert_eq!(
            error(&with("services/2/name", json!("spark-master"))),
            ("services[2].name".into(), "duplicate_service_name")
        );
        assert!(message(&with("services/2/name", json!("spark-master"))).contains("services[0]"));
    }

    #[test]
    fn display_names() {
        assert_eq!(error(&with("name", json!(""))), ("name".into(), "invalid_name"));
        assert_eq!(error(&with("name", json!("a\nb"))), ("name".into(), "invalid_name"));
        assert_eq!(error(&with("name", json!("é".repeat(129)))), ("name".into(), "too_long"));
        assert!(parse_application(&with("name", json!("é".repeat(128)))).is_ok());
        assert_eq!(
            error(&with("services/2/ports/0/name", json!(""))),
            ("services[2].ports[0].name".into(), "invalid_name")
        );
        assert_eq!(
            error(&with("services/2/ports/0/name", json!("x".repeat(129)))),
            ("services[2].ports[0].name".into(), "too_long")
        );
    }

    #[test]
    fn docker_images() {
        for bad in ["", "alpine latest", " alpine", "alpine\n", "a\u{0}b"] {
            assert_eq!(
                error(&with("services/0/docker_image", json!(bad))),
                ("services[0].docker_image".into(), "invalid_name"),
                "{bad:?}"
            );
        }
        assert_eq!(
            error(&with("services/0/docker_image", json!("a".repeat(256)))),
            ("services[0].docker_image".into(), "too_long")
        );
        assert!(parse_application(&with("services/0/docker_image", json!("a".repeat(255)))).is_ok());
    }

    #[test]
    fn ports() {
        for good in ["http", "https", "tcp", "svn+ssh", "a1.b-c"] {
            assert!(parse_application(&with("services/2/ports/0/protocol", json!(good))).is_ok());
        }
        for bad in ["", "HTTP", "1http", "ht tp", "http:", "é"] {
            assert_eq!(
                error(&with("services/2/ports/0/protocol", json!(bad))),
                ("services[2].ports[0].protocol".into(), "invalid_name"),
                "{bad}"
            );
        }
        assert_eq!(
            error(&with("services/2/ports/0/protocol", json!("a".repeat(17)))),
            ("services[2].ports[0].protocol".into(), "too_long")
        );
        for bad in ["tree", "a/b", "/a b", "/\t"] {
            assert_eq!(
                error(&with("services/2/ports/0/path", json!(bad))),
                ("services[2].ports[0].path".into(), "invalid_name"),
                "{bad}"
            );
        }
        assert_eq!(
            error(&with("services/2/ports/0/path", json!(format!("/{}", "a".repeat(1024))))),
            ("services[2].ports[0].path".into(), "too_long")
        );
        assert!(parse_application(&with("services/2/ports/0/path", json!(""))).is_ok());
    }

    #[test]
    fn no_monitor() {
        let doc = with("services/2/monitor", json!(false));
        assert_eq!(error(&doc), ("services".into(), "no_monitor"));
    }

    #[test]
    fn versions() {
        for v in [json!(1), json!(3), json!(0), json!(-2), json!(1e300), json!(u64::MAX)] {
            assert_eq!(error(&with("version", v.clone())), ("version".into(), "unsupported_version"), "{v}");
        }
        assert!(message(&with("version", json!(1))).ends_with("got 1"));
        assert_eq!(error(&with("version", json!("2"))), ("version".into(), "wrong_type"));
    }

    #[test]
    fn version_1_description_is_rejected_by_version() {
        // A 0.9.7 format 1 description: no total_count, essential_count or startup_order.
        let doc = json!({
            "name": "aml-lab", "version": 1, "will_end": false, "requires_binary": false,
            "priority": 512,
            "services": [{"name": "spark-master", "docker_image": "x", "monitor": true,
                          "ports": [], "required_resources": {"memory": 536870912}}]
        });
        assert_eq!(error(&doc), ("version".into(), "unsupported_version"));
    }

    #[test]
    fn template_errors_have_paths() {
        assert_eq!(
            error(&with("services/1/environment/0/1", json!("{name_prefix}-master"))),
            ("services[1].environment[0][1]".into(), "unknown_template_variable")
        );
        let m = message(&with("services/1/environment/1/1", json!("{user_id}")));
        assert!(m.contains("{user_id}") && m.contains("{execution_name}"), "{m}");
        for bad in ["{", "}", "{}", "x{index"] {
            assert_eq!(
                error(&with("services/2/command", json!(bad))),
                ("services[2].command".into(), "unknown_template_variable"),
                "{bad}"
            );
        }
        assert_eq!(
            error(&with("services/2/command", json!("run {nope}"))),
            ("services[2].command".into(), "unknown_template_variable")
        );
    }

    #[test]
    fn environment_entries() {
        for bad in [json!("A=b"), json!(["A"]), json!(["A", "b", "c"]), json!([]), json!({"A": "b"})] {
            assert_eq!(
                error(&with("services/1/environment/1", bad.clone())),
                ("services[1].environment[1]".into(), "wrong_type"),
                "{bad}"
            );
        }
        for bad in ["", "1A", "A-B", "A B", "É"] {
            assert_eq!(
                error(&with("services/1/environment/1/0", json!(bad))),
                ("services[1].environment[1][0]".into(), "invalid_name"),
                "{bad}"
            );
        }
        assert!(parse_application(&with("services/1/environment/1/0", json!("_a1"))).is_ok());
        assert_eq!(
            error(&with("services/1/environment/1/1", json!(2))),
            ("services[1].environment[1][1]".into(), "wrong_type")
        );
        assert_eq!(
            error(&with("services/1/environment/1/1", json!("x".repeat(4097)))),
            ("services[1].environment[1][1]".into(), "too_long")
        );
        assert!(parse_application(&with("services/1/environment/1/1", json!("x".repeat(4096)))).is_ok());
        assert_eq!(
            error(&with("services/2/command", json!("x".repeat(4097)))),
            ("services[2].command".into(), "too_long")
        );
    }

    #[test]
    fn control_characters_are_refused_in_commands_and_environment_values() {
        // A tenant's command that would drive the terminal of an administrator reading it back:
        // set the window title, move the cursor up, erase the line, return to its start.
        let spoof = "\u{1b}]0;PWNED\u{7}\u{1b}[1A\u{1b}[2K\rzoe: all good";
        let doc = with("services/2/command", json!(spoof));
        assert_eq!(error(&doc), ("services[2].command".into(), "control_character"));
        assert!(message(&doc).ends_with("character 1 is U+001B"), "{}", message(&doc));
        for (bad, at) in
            [("a\rb", "character 2 is U+000D"), ("\u{7f}", "U+007F"), ("x\u{9b}2J", "U+009B"), ("\0", "U+0000")]
        {
            let doc = with("services/1/environment/0/1", json!(bad));
            assert_eq!(error(&doc), ("services[1].environment[0][1]".into(), "control_character"), "{bad:?}");
            assert!(message(&doc).ends_with(at), "{}", message(&doc));
        }
        // Tabs and newlines are text: a script in a command, a multi-line value.
        assert!(parse_application(&with("services/2/command", json!("sh -c 'echo a\n\techo b'"))).is_ok());
        assert!(parse_application(&with("services/1/environment/0/1", json!("line 1\nline 2\tend"))).is_ok());
        // Messages that quote what was sent show its control characters escaped.
        let doc = with("services/0/docker_image", json!("\u{1b}[2Jimg"));
        assert!(message(&doc).contains("\"\\u{1b}[2Jimg\""), "{}", message(&doc));
    }

    #[test]
    fn an_environment_variable_set_twice_is_refused() {
        let doc = with("services/1/environment", json!([["A", "1"], ["B", "2"], ["A", "3"]]));
        assert_eq!(error(&doc), ("services[1].environment[2][0]".into(), "duplicate_key"));
        assert!(message(&doc).contains("already set by services[1].environment[0]"), "{}", message(&doc));
        // The same name in two services is fine.
        let mut doc = with("services/2/environment", json!([["A", "1"]]));
        *at(&mut doc, "services/1/environment") = json!([["A", "2"]]);
        assert!(parse_application(&doc).is_ok(), "{:?}", parse_application(&doc));
    }

    #[test]
    fn volumes_and_networks() {
        let doc = with("services/0/volumes", json!([["/etc", "/mnt/etc", true]]));
        assert_eq!(error(&doc), ("services[0].volumes".into(), "volumes_not_allowed"));
        assert!(message(&doc).contains("/mnt/workspace"));
        assert_eq!(
            error(&with("services/0/networks", json!(["host"]))),
            ("services[0].networks".into(), "networks_not_allowed")
        );
    }

    #[test]
    fn first_error_in_document_order() {
        let mut doc = spark();
        doc["priority"] = json!(-1);
        doc["services"][1]["total_count"] = json!(0);
        doc["services"][0]["ports"][0]["port_number"] = json!(0);
        assert_eq!(error(&doc), ("priority".into(), "out_of_range"));
        doc["priority"] = json!(1);
        assert_eq!(error(&doc), ("services[0].ports[0].port_number".into(), "out_of_range"));
        doc["services"][0]["ports"][0]["port_number"] = json!(1);
        assert_eq!(error(&doc), ("services[1].total_count".into(), "out_of_range"));
    }

    #[test]
    fn host_names() {
        let app = expected_spark();
        assert_eq!(check_host_names(&app, "lab", "alice", "prod"), Ok(()));
        // "spark-worker-2-" is 15 characters, "-alice-prod" 11, so 37 are left for the execution.
        let fits = "e".repeat(37);
        assert_eq!(check_host_names(&app, &fits, "alice", "prod"), Ok(()));
        let too_long = "e".repeat(38);
        let e = check_host_names(&app, &too_long, "alice", "prod").err();
        let Some(e) = e else { panic!("accepted a 64-character host name") };
        assert_eq!((e.path.as_str(), e.code), ("services[1].name", "too_long"));
        let composed = format!("spark-worker-2-{too_long}-alice-prod");
        assert!(e.message.contains(&format!("\"{composed}\"")), "{}", e.message);
        assert!(e.message.contains("64 characters") && e.message.contains("63"), "{}", e.message);
    }

    #[test]
    fn every_code_is_produced() {
        let mut doc = spark();
        doc["services"][2]["environment"] = json!([["A", "{x}"]]);
        let mut produced = vec![
            error(&json!([])).1,
            error(&without("name")).1,
            error(&with("nme", json!("x"))).1,
            error(&with("will_end", json!("no"))).1,
            error(&with("priority", json!(2000))).1,
            error(&with("services/0/name", json!("A"))).1,
            error(&with("services/1/name", json!("jupyter"))).1,
            error(&with("services/2/monitor", json!(false))).1,
            error(&with("version", json!(1))).1,
            error(&doc).1,
            error(&with("name", json!("x".repeat(200)))).1,
            error(&with("services/0/volumes", json!([["/a", "/b", false]]))).1,
            error(&with("services/0/networks", json!(["x"]))).1,
            error(&with("services/0/command", json!("sh -c 'unclosed"))).1,
            error(&with("services/2/ports/1/secret_header", json!("Authorization token"))).1,
            error(&with("services/0/command", json!("echo \u{1b}[2J"))).1,
            error(&with("services/1/environment", json!([["A", "1"], ["A", "2"]]))).1,
        ];
        let remote = parse_application(&with("services/0/docker_image", json!("evil.example/x"))).unwrap();
        produced.push(check_registries(&remote, &[]).unwrap_err().code);
        produced.sort_unstable();
        let mut codes = CODES.to_vec();
        codes.sort_unstable();
        assert_eq!(produced, codes);
    }

    #[test]
    fn a_secret_header_is_a_header_line_with_the_secret_on_an_exposed_port() {
        let ok = parse_application(&with("services/2/ports/1/secret_header", json!("Authorization: token {secret}")))
            .unwrap();
        let port = &ok.services[2].ports[1];
        assert_eq!(port.secret_header.as_deref(), Some("Authorization: token {secret}"));
        assert_eq!(port.secret_header_with("s3"), Some(("Authorization".into(), "token s3".into())));
        assert!(ok.needs_secret(|t| template::uses(t, "proxy_secret")));
        let plain = parse_application(&spark()).unwrap();
        assert!(!plain.needs_secret(|t| template::uses(t, "proxy_secret")));
        let by_template =
            parse_application(&with("services/2/environment", json!([["TOKEN", "{proxy_secret}"]]))).unwrap();
        assert!(by_template.needs_secret(|t| template::uses(t, "proxy_secret")), "{{proxy_secret}} alone");
        for (bad, says) in [
            ("Authorization token {secret}", "Name: value"),
            ("Authorization: token", "{secret}"),
            ("Bad Name: {secret}", "header name"),
            ("Host: {secret}", "decided by the proxy"),
            ("Cookie: a={secret}", "decided by the proxy"),
            ("Proxy-Authorization: {secret}", "decided by the proxy"),
            ("Sec-WebSocket-Key: {secret}", "decided by the proxy"),
            ("X-Token: {secret}\r\nHost: evil", "header value"),
        ] {
            let (path, code) = error(&with("services/2/ports/1/secret_header", json!(bad)));
            assert_eq!((path.as_str(), code), ("services[2].ports[1].secret_header", "invalid_secret_header"), "{bad}");
            let e = parse_application(&with("services/2/ports/1/secret_header", json!(bad))).unwrap_err();
            assert!(e.message.contains(says), "{bad}: {}", e.message);
        }
        // Port 0 of service 2 is not exposed: the proxy never reaches it.
        let e = parse_application(&with("services/2/ports/0/secret_header", json!("X-Token: {secret}"))).unwrap_err();
        assert_eq!(e.code, "invalid_secret_header");
        assert!(e.message.contains("exposed"), "{}", e.message);
    }

    #[test]
    fn garbage_never_panics() {
        let garbage = [
            json!(null),
            json!(true),
            json!(-1),
            json!(0),
            json!(1.5),
            json!(-1e300),
            json!(1e300),
            json!(i64::MIN),
            json!(u64::MAX),
            serde_json::from_str::<Value>("123456789012345678901234567890").unwrap_or_default(),
            json!(""),
            json!("{"),
            json!("x".repeat(10_000)),
            json!([]),
            json!([[[[[]]]]]),
            json!({}),
            json!({"name": {"name": [null]}}),
        ];
        // Every value of the Spark example, replaced by every kind of garbage.
        fn paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
            let child = |k: &str| {
                if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}/{k}")
                }
            };
            match v {
                Value::Object(m) => {
                    for (k, v) in m {
                        out.push(child(k));
                        paths(v, &child(k), out);
                    }
                }
                Value::Array(a) => {
                    for (i, v) in a.iter().enumerate() {
                        out.push(child(&i.to_string()));
                        paths(v, &child(&i.to_string()), out);
                    }
                }
                _ => {}
            }
        }
        let mut all = Vec::new();
        paths(&spark(), "", &mut all);
        assert!(all.len() > 60, "{}", all.len());
        for p in &all {
            for g in &garbage {
                let result = parse_application(&with(p, g.clone()));
                if let Err(e) = result {
                    assert!(CODES.contains(&e.code));
                    assert!(!e.path.is_empty());
                }
            }
        }
        for g in &garbage {
            assert!(parse_application(g).is_err());
        }
    }

    #[test]
    fn huge_unknown_key_gives_short_path_and_message() {
        let key = "k".repeat(100_000);
        let e = parse_application(&with(&key, json!(1))).err();
        let Some(e) = e else { panic!("accepted") };
        assert_eq!(e.code, "unknown_field");
        assert!(e.path.len() < 100 && e.message.len() < 400);
    }

    #[test]
    fn images_naming_a_registry_need_the_allow_list() {
        for (image, registry) in [
            ("busybox", None),
            ("busybox:1.36", None),
            ("library/busybox", None),
            ("zoe-spark:4.0", None),
            ("127.0.0.1:24851/probe/img", Some("127.0.0.1:24851")),
            ("registry.example.org/team/app:1", Some("registry.example.org")),
            ("localhost/x", Some("localhost")),
            ("[::1]:5000/x", Some("[::1]:5000")),
        ] {
            assert_eq!(registry_of(image), registry, "{image}");
        }
        let mut v = spark();
        v["services"][1]["docker_image"] = json!("127.0.0.1:24851/probe/img");
        let app = parse_application(&v).unwrap();
        let e = check_registries(&app, &[]).unwrap_err();
        assert_eq!((e.code, e.path.as_str()), ("registry_not_allowed", "services[1].docker_image"));
        assert!(e.message.contains("127.0.0.1:24851") && e.message.contains("(none)"), "{e}");
        assert!(check_registries(&app, &["registry.example.org".into()]).is_err());
        check_registries(&app, &["127.0.0.1:24851".into()]).unwrap();
        check_registries(&parse_application(&spark()).unwrap(), &[]).unwrap();
    }
}

/// Hostile input: arbitrary JSON, and valid descriptions with parts replaced by arbitrary JSON,
/// never panic, and every rejection carries one of the documented codes.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
            ".{0,40}".prop_map(Value::String),
            prop::sample::select(vec!["{x}", "{{", "}", "{index}", "a b 'c", "main", "-", "", "\u{0}"])
                .prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "name",
                        "version",
                        "will_end",
                        "requires_binary",
                        "priority",
                        "services",
                        "docker_image",
                        "monitor",
                        "total_count",
                        "essential_count",
                        "startup_order",
                        "ports",
                        "required_resources",
                        "memory",
                        "cores",
                        "environment",
                        "command",
                        "volumes",
                        "networks",
                        "port_number",
                        "protocol",
                        "is_main_endpoint",
                        "expose",
                        "path",
                        "secret_header",
                        "other",
                    ])
                    .prop_map(str::to_string),
                    inner,
                    0..8,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn valid() -> Value {
        json!({
            "name": "spark", "version": 2, "will_end": false, "requires_binary": false, "priority": 1,
            "services": [{
                "name": "main", "docker_image": "img", "monitor": true, "total_count": 2,
                "essential_count": 1, "startup_order": 0, "required_resources": {"memory": 67108864, "cores": 1},
                "ports": [{"name": "ui", "protocol": "http", "port_number": 8080, "is_main_endpoint": true}],
                "environment": [["A", "{index}"]], "command": "run {execution_name}"
            }]
        })
    }

    /// Every place in a JSON value, as a list of steps.
    fn places(v: &Value, here: Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(here.clone());
        match v {
            Value::Object(m) => m.iter().for_each(|(k, c)| {
                let mut p = here.clone();
                p.push(k.clone());
                places(c, p, out)
            }),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| {
                let mut p = here.clone();
                p.push(i.to_string());
                places(c, p, out)
            }),
            _ => {}
        }
    }

    fn replace(v: &mut Value, path: &[String], with: Value) {
        match path.split_first() {
            None => *v = with,
            Some((k, rest)) => {
                let child = match v {
                    Value::Object(m) => m.get_mut(k),
                    Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
                    _ => None,
                };
                if let Some(c) = child {
                    replace(c, rest, with);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_json_never_panics(v in any_json()) {
            if let Err(e) = parse_application(&v) {
                prop_assert!(CODES.contains(&e.code), "undocumented code {}", e.code);
                prop_assert!(!e.message.is_empty());
            }
        }

        #[test]
        fn a_valid_description_with_any_part_replaced_never_panics(pick in any::<prop::sample::Index>(), with in any_json()) {
            let mut v = valid();
            let mut all = Vec::new();
            places(&v, Vec::new(), &mut all);
            let path = all[pick.index(all.len())].clone();
            replace(&mut v, &path, with);
            match parse_application(&v) {
                Ok(app) => {
                    // What is accepted is what the master can run: it validates again.
                    let again = serde_json::to_value(&app).unwrap();
                    prop_assert_eq!(parse_application(&again), Ok(app));
                }
                Err(e) => prop_assert!(CODES.contains(&e.code), "undocumented code {}", e.code),
            }
        }
    }
}
