//! The rules over a description once it is read and typed, that serde cannot say: the form and
//! length of names and strings, unique names, templates, commands, the secret header, a monitor,
//! the total of containers; and, once an execution is named, its host names and registries.
//! Checked in the order of the format, so the first refusal is the one it puts first.

use zoe_checkpoints::model::limits::{
    MAX_APP_NAME, MAX_COMMAND, MAX_CONTAINERS, MAX_ENV_NAME, MAX_ENV_VALUE, MAX_IMAGE, MAX_PORT_NAME, MAX_PORT_PATH,
    MAX_PROTOCOL,
};
use zoe_checkpoints::model::{Application, PortDescription, ServiceDescription};

use super::errors::{fail, field_path, index_path, quote, Res, ROOT};
use crate::description::{naming, template};

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

/// Checks every rule of a description read by [`super::reader`].
pub(super) fn application(app: &Application) -> Res<()> {
    display_string(&app.name, &field_path(ROOT, "name"), MAX_APP_NAME)?;
    let services_path = field_path(ROOT, "services");
    for (i, service) in app.services.iter().enumerate() {
        check_service(service, &index_path(&services_path, i), &app.services[..i])?;
    }
    if !app.services.iter().any(|s| s.monitor) {
        return fail(
            &services_path,
            "no_monitor",
            "at least one service must have \"monitor\": true (the execution ends when a \
             monitor service ends)",
        );
    }
    let containers: u64 = app.services.iter().map(|s| u64::from(s.total_count)).sum();
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
    Ok(())
}

/// Checks one service; `earlier` are the services before it, for the uniqueness of names.
fn check_service(service: &ServiceDescription, path: &str, earlier: &[ServiceDescription]) -> Res<()> {
    let name = &service.name;
    let name_path = field_path(path, "name");
    if let Err(message) = naming::check_dns_label("service name", name) {
        return fail(&name_path, "invalid_name", message);
    }
    if let Some(j) = earlier.iter().position(|s| s.name == *name) {
        return fail(
            &name_path,
            "duplicate_service_name",
            format!(
                "service name \"{name}\" is already used by {}; service names must be unique \
                 in an application",
                index_path("services", j)
            ),
        );
    }

    let image = &service.docker_image;
    let image_path = field_path(path, "docker_image");
    if image.is_empty() {
        return fail(&image_path, "invalid_name", "must not be empty");
    }
    check_length(image, &image_path, MAX_IMAGE)?;
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return fail(
            &image_path,
            "invalid_name",
            format!("image reference \"{}\" must not contain whitespace or control characters", quote(image)),
        );
    }

    let ports_path = field_path(path, "ports");
    for (i, port) in service.ports.iter().enumerate() {
        check_port(port, &index_path(&ports_path, i))?;
    }

    let env_path = field_path(path, "environment");
    for (i, (name, value)) in service.environment.iter().enumerate() {
        let entry_path = index_path(&env_path, i);
        let name_path = index_path(&entry_path, 0);
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
        if let Some(j) = service.environment[..i].iter().position(|(n, _)| n == name) {
            return fail(
                &name_path,
                "duplicate_key",
                format!(
                    "environment variable {name} is already set by {}; set each variable once",
                    index_path(&env_path, j)
                ),
            );
        }
        let value_path = index_path(&entry_path, 1);
        check_length(value, &value_path, MAX_ENV_VALUE)?;
        check_controls(value, &value_path)?;
        check_template(value, &value_path)?;
    }

    let datasets_path = field_path(path, "datasets");
    for (i, dataset) in service.datasets.iter().enumerate() {
        let entry_path = index_path(&datasets_path, i);
        if let Err(message) = naming::check_dns_label("data set name", dataset) {
            return fail(&entry_path, "invalid_name", message);
        }
        if let Some(j) = service.datasets[..i].iter().position(|d| d == dataset) {
            return fail(
                &entry_path,
                "duplicate_dataset",
                format!("data set \"{dataset}\" is already named by {}; name each once", index_path(&datasets_path, j)),
            );
        }
    }

    if let Some(command) = &service.command {
        let path = field_path(path, "command");
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
    }
    Ok(())
}

fn check_port(port: &PortDescription, path: &str) -> Res<()> {
    display_string(&port.name, &field_path(path, "name"), MAX_PORT_NAME)?;

    let protocol = &port.protocol;
    let protocol_path = field_path(path, "protocol");
    check_length(protocol, &protocol_path, MAX_PROTOCOL)?;
    let mut chars = protocol.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c));
    if !well_formed {
        return fail(
            &protocol_path,
            "invalid_name",
            format!(
                "protocol \"{}\" must be a lowercase URL scheme such as \"http\" \
                 ([a-z][a-z0-9+.-]*)",
                quote(protocol)
            ),
        );
    }

    let url = &port.path;
    let url_path = field_path(path, "path");
    check_length(url, &url_path, MAX_PORT_PATH)?;
    if !(url.is_empty() || url.starts_with('/')) {
        return fail(&url_path, "invalid_name", format!("URL path \"{}\" must be empty or start with '/'", quote(url)));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return fail(
            &url_path,
            "invalid_name",
            format!("URL path \"{}\" must not contain whitespace or control characters", quote(url)),
        );
    }

    if let Some(text) = &port.secret_header {
        let path = field_path(path, "secret_header");
        check_length(text, &path, MAX_SECRET_HEADER)?;
        if let Err(why) = check_secret_header(text) {
            return fail(&path, "invalid_secret_header", why);
        }
        if !port.expose {
            return fail(
                &path,
                "invalid_secret_header",
                "only an exposed port (\"expose\": true) is reached through the proxy, which adds this header",
            );
        }
    }
    Ok(())
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

/// A display name: a non-empty string of printable characters, at most `max` long.
fn display_string(s: &str, path: &str, max: usize) -> Res<()> {
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
    Ok(())
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

/// Checks that every container host name of `app`, for this execution, owner and deployment,
/// fits in one DNS label ([`naming::MAX_HOST_NAME`]).
///
/// The longest name of a service is that of its last instance, so that is the one checked.
pub fn check_host_names(app: &Application, execution_name: &str, owner: &str, deployment: &str) -> Res<()> {
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

/// Refuses data sets that the master does not have (`known` tells which it has): a service is
/// given only what an administrator configured, never a host path of a user's choosing.
pub fn check_datasets(app: &Application, known: impl Fn(&str) -> bool) -> Res<()> {
    for (i, service) in app.services.iter().enumerate() {
        for (j, dataset) in service.datasets.iter().enumerate() {
            if !known(dataset) {
                return fail(
                    &index_path(&format!("{}.datasets", index_path("services", i)), j),
                    "unknown_dataset",
                    format!(
                        "this Zoe has no data set \"{}\"; GET /api/0.6/datasets lists those it has",
                        quote(dataset)
                    ),
                );
            }
        }
    }
    Ok(())
}
