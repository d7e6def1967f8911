//! Turning a [`State`] into checkpoint text and back: pretty RON, format versions and the
//! validation every loaded checkpoint goes through.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::model::{
    is_token_hash, is_token_name, limits, Application, Execution, ExecutionStatus, Role, State, User,
    DIRECTORY_PASSWORD_HASH, FIRST_UID, FORMAT_VERSION, ID_LIMIT, MIN_UID, RESERVED_UIDS, UID_LIMIT,
};

/// Why a checkpoint could not be loaded, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// The file, when the text came from one.
    pub file: Option<PathBuf>,
    /// 1-based line and column of the problem (0 when it is not tied to a place).
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

/// The longest reason kept, in bytes: a message about a hostile file stays short.
const MAX_REASON: usize = 2048;

impl LoadError {
    pub(crate) fn at(line: usize, column: usize, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        if reason.len() > MAX_REASON {
            let mut end = MAX_REASON;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
            reason.push_str("... (shortened)");
        }
        LoadError { file: None, line, column, reason }
    }

    /// An error reading the file itself.
    pub fn io(path: &Path, e: &std::io::Error) -> Self {
        LoadError { file: Some(path.to_path_buf()), line: 0, column: 0, reason: e.to_string() }
    }

    /// The same error, attributed to `path`.
    pub fn in_file(mut self, path: &Path) -> Self {
        self.file = Some(path.to_path_buf());
        self
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}:", file.display())?;
        }
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.column)?;
        }
        write!(f, " {}", self.reason)
    }
}

impl std::error::Error for LoadError {}

pub(crate) fn pretty() -> ron::ser::PrettyConfig {
    ron::ser::PrettyConfig::new().indentor("    ").struct_names(false)
}

fn header(state: &State) -> String {
    format!(
        "// Zoe checkpoint of deployment \"{}\": the whole master state.\n\
         // Hand-edit with the master stopped, then run `zoe checkpoint verify`.\n",
        state.deployment_name
    )
}

/// The checkpoint text of `state`: a comment header, then pretty RON with stable field order.
pub fn encode(state: &State) -> Result<String, ron::Error> {
    Encoder::default().encode(state)
}

/// Encodes states again and again, re-using the text of every user and execution that has not
/// changed since the last call (same `Arc`). The text is what the pretty RON serializer writes,
/// except that each change is on one line.
#[derive(Default)]
pub struct Encoder {
    users: HashMap<u64, (Arc<User>, String)>,
    executions: HashMap<u64, (Arc<Execution>, String)>,
}

impl Encoder {
    pub fn encode(&mut self, state: &State) -> Result<String, ron::Error> {
        let State { format_version, deployment_name, next_id, next_uid, archived_segments, changes, users, executions } =
            state;
        let mut out = String::with_capacity(64 * 1024);
        out.push_str(&header(state));
        out.push_str(&format!(
            "(\n    format_version: {format_version},\n    deployment_name: {},\n    next_id: {next_id},\n    \
             next_uid: {next_uid},\n    archived_segments: {archived_segments},\n",
            ron::to_string(deployment_name)?
        ));
        if changes.is_empty() {
            out.push_str("    changes: [],\n");
        } else {
            out.push_str("    changes: [\n");
            for c in changes {
                out.push_str("        ");
                out.push_str(&ron::ser::to_string_pretty(c, one_line())?);
                out.push_str(",\n");
            }
            out.push_str("    ],\n");
        }
        cached_list(&mut out, "users", users, &mut self.users)?;
        cached_list(&mut out, "executions", executions, &mut self.executions)?;
        out.push_str(")\n");
        Ok(out)
    }
}

/// Pretty RON on one line: `(by: "alice", action: submit, ids: [3])`.
fn one_line() -> ron::ser::PrettyConfig {
    pretty().compact_structs(true).compact_arrays(true)
}

/// The pretty text of one list item, indented as an element of a top-level list, with its
/// trailing comma and newline.
pub(crate) fn list_item<T: serde::Serialize>(item: &T) -> Result<String, ron::Error> {
    let standalone = ron::ser::to_string_pretty(item, pretty())?;
    let mut text = String::with_capacity(standalone.len() + 256);
    for line in standalone.lines() {
        text.push_str("        ");
        text.push_str(line);
        text.push('\n');
    }
    text.pop();
    text.push_str(",\n");
    Ok(text)
}

fn cached_list<T: serde::Serialize>(
    out: &mut String,
    field: &str,
    items: &BTreeMap<u64, Arc<T>>,
    cache: &mut HashMap<u64, (Arc<T>, String)>,
) -> Result<(), ron::Error> {
    if items.is_empty() {
        out.push_str(&format!("    {field}: [],\n"));
        return Ok(());
    }
    out.push_str(&format!("    {field}: [\n"));
    for (id, item) in items {
        match cache.get(id) {
            Some((cached, text)) if Arc::ptr_eq(cached, item) => out.push_str(text),
            _ => {
                let text = list_item(item.as_ref())?;
                out.push_str(&text);
                cache.insert(*id, (item.clone(), text));
            }
        }
    }
    if cache.len() > items.len() {
        cache.retain(|id, _| items.contains_key(id));
    }
    out.push_str("    ],\n");
    Ok(())
}

/// Only the version, read first so the right model can parse the rest.
#[derive(Deserialize)]
struct VersionProbe {
    format_version: u32,
}

fn ron_error(e: &ron::error::SpannedError) -> LoadError {
    LoadError::at(e.span.start.line, e.span.start.col, e.code.to_string())
}

/// Parses checkpoint text of any known format version, upgrades it to the current model and
/// validates it.
pub fn decode(text: &str) -> Result<State, LoadError> {
    let probe: VersionProbe = ron::from_str(text).map_err(|e| ron_error(&e))?;
    let mut state: State = match probe.format_version {
        // Every known version is read by the current model: what an older one lacks reads as
        // its default. Version 6 has no API tokens; 5 no secrets (`proxy_secret`,
        // `secret_header`); 4 no waiting instances and no retries; 3 lacks `archived_segments`
        // and `changes` (no archive, no record); 1 lacks `Execution::ending` (`None`).
        1..=FORMAT_VERSION => ron::from_str(text).map_err(|e| ron_error(&e))?,
        v if v > FORMAT_VERSION => {
            return Err(LoadError::at(
                locate(text, &["format_version:".into()]).0,
                1,
                format!(
                    "format_version {v} was written by a newer Zoe; this one reads up to \
                     {FORMAT_VERSION}"
                ),
            ))
        }
        v => {
            return Err(LoadError::at(
                locate(text, &["format_version:".into()]).0,
                1,
                format!("unknown format_version {v}"),
            ))
        }
    };
    // Versions 1 and 2 lack uids, which are given now, in id order.
    if probe.format_version <= 2 {
        state.next_uid = FIRST_UID;
        let ids: Vec<u64> = state.users.keys().copied().collect();
        for id in ids {
            let uid = state.gen_uid();
            if let Some(u) = state.users.get_mut(&id) {
                Arc::make_mut(u).uid = uid;
            }
        }
    }
    state.format_version = FORMAT_VERSION;
    validate(&state).map_err(|(needles, reason)| {
        let (line, column) = locate(text, &needles);
        LoadError::at(line, column, reason)
    })?;
    Ok(state)
}

/// 1-based line and column of a place in checkpoint text: the first line (after the place of the
/// needle before it) that starts with each needle in turn, ignoring indentation; the place of
/// the last needle found, or (0, 0).
pub(crate) fn locate(text: &str, needles: &[String]) -> (usize, usize) {
    let mut found = (0, 0);
    let mut lines = text.lines().enumerate();
    for needle in needles {
        let hit = lines.by_ref().find(|(_, l)| l.trim_start().starts_with(needle.as_str()));
        match hit {
            Some((i, l)) => found = (i + 1, l.len() - l.trim_start().len() + 1),
            None => break,
        }
    }
    found
}

/// Whether `s` is a lowercase DNS label: 1 to 63 of `a-z`, `0-9`, `-`, not starting or ending
/// with `-`.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// The longest a value from a checkpoint is quoted in a message, in characters.
const MAX_QUOTED: usize = 64;

/// A value from a checkpoint as quoted in a message: Rust-escaped, and shortened (a 200 MB name
/// does not make a 400 MB message).
pub fn quoted(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED) {
        None => format!("{s:?}"),
        Some((i, _)) => format!("{:?}... ({} bytes)", &s[..i], s.len()),
    }
}

/// Why a state is invalid: where (needles for [`locate`]) and what.
pub type Invalid = (Vec<String>, String);

fn at_id(list: &str, id: u64) -> Vec<String> {
    vec![format!("{list}:"), format!("id: {id},")]
}

/// Checks everything that cannot be expressed in the types, and every limit the master relies
/// on: ids and uids (unique, with room to grow, not reserved), names, references, times,
/// statuses, services, and each application against the limits a submission keeps
/// ([`check_application`]). A state that passes can be served, changed and written again without
/// breaking the master. The error says where (to find the line) and what.
pub fn validate(state: &State) -> Result<(), Invalid> {
    let top = |field: &str, reason: String| (vec![format!("{field}:")], reason);
    if !is_dns_label(&state.deployment_name) {
        return Err(top(
            "deployment_name",
            format!("deployment_name {} is not a lowercase DNS label", quoted(&state.deployment_name)),
        ));
    }
    if state.next_id > ID_LIMIT {
        return Err(top("next_id", format!("next_id {} is above {ID_LIMIT}: ids would run out", state.next_id)));
    }
    if state.next_uid > UID_LIMIT {
        return Err(top(
            "next_uid",
            format!("next_uid {} is above {UID_LIMIT}: uids must stay below it", state.next_uid),
        ));
    }
    let mut ids = HashSet::new();
    let mut claim = |id: u64, what: &str, list: &str| -> Result<(), Invalid> {
        if id >= state.next_id {
            return Err((at_id(list, id), format!("{what} id {id} is not below next_id {}", state.next_id)));
        }
        if !ids.insert(id) {
            return Err((at_id(list, id), format!("{what} id {id} is used twice")));
        }
        Ok(())
    };
    let mut names = HashSet::new();
    let mut uids = HashSet::new();
    for (key, u) in &state.users {
        claim(*key, "user", "users")?;
        let field = |field: &str, reason: String| {
            let mut place = at_id("users", u.id);
            place.push(format!("{field}:"));
            (place, format!("user {}: {reason}", quoted(&u.name)))
        };
        let here = |reason: String| field("uid", reason);
        if u.uid < MIN_UID || u.uid >= state.next_uid {
            return Err(here(format!(
                "uid {} must be at least {MIN_UID} and below next_uid {}",
                u.uid, state.next_uid
            )));
        }
        if RESERVED_UIDS.contains(&u.uid) {
            return Err(here(format!("uid {} is reserved (nobody, or -1 of 16 bits)", u.uid)));
        }
        if !uids.insert(u.uid) {
            return Err(here(format!("uid {} is used twice", u.uid)));
        }
        if !is_dns_label(&u.name) {
            return Err(field("name", "the name is not a lowercase DNS label".into()));
        }
        if !names.insert(u.name.as_str()) {
            return Err(field("name", "the name is used twice".into()));
        }
        if !u.password_hash.starts_with("$argon2") && u.password_hash != DIRECTORY_PASSWORD_HASH {
            return Err(field("password_hash", "password_hash is not an argon2 PHC string".into()));
        }
        if u.tokens.len() > limits::MAX_TOKENS {
            return Err(field("tokens", format!("more than {} tokens", limits::MAX_TOKENS)));
        }
        let mut token_names = HashSet::new();
        for t in &u.tokens {
            let token = |reason: String| {
                let mut place = at_id("users", u.id);
                place.extend(["tokens:".to_string(), format!("name: {},", quoted(&t.name))]);
                (place, format!("user {}: token {}: {reason}", quoted(&u.name), quoted(&t.name)))
            };
            if !is_token_name(&t.name) {
                return Err(token(format!(
                    "the name is not a lowercase DNS label of at most {} bytes",
                    limits::MAX_TOKEN_NAME
                )));
            }
            if !token_names.insert(t.name.as_str()) {
                return Err(token("the name is used twice".into()));
            }
            if !is_token_hash(&t.hash) {
                return Err(token("hash is not 64 lowercase hex digits".into()));
            }
            if t.expires_at <= t.created_at {
                return Err(token("expires_at is not after created_at".into()));
            }
        }
    }
    if !state.users.values().any(|u| u.role == Role::Admin) {
        return Err((vec!["users:".into()], "there is no user with role admin".into()));
    }
    let mut active = BTreeSet::new();
    for (key, e) in &state.executions {
        claim(*key, "execution", "executions")?;
        let here = |reason: String| (at_id("executions", e.id), format!("execution {}: {reason}", e.id));
        let field = |field: &str, reason: String| {
            let mut place = at_id("executions", e.id);
            place.push(format!("{field}:"));
            (place, format!("execution {}: {reason}", e.id))
        };
        if !is_dns_label(&e.name) {
            return Err(here(format!("name {} is not a lowercase DNS label", quoted(&e.name))));
        }
        if !is_dns_label(&e.owner) {
            return Err(field("owner", format!("owner {} is not a lowercase DNS label", quoted(&e.owner))));
        }
        if e.owner_id >= state.next_id {
            return Err(field("owner_id", format!("owner_id {} is not below next_id", e.owner_id)));
        }
        if e.status.is_active() {
            match state.users.get(&e.owner_id) {
                Some(u) if u.name == e.owner => {}
                _ => {
                    return Err(here(format!(
                        "it is {} but its owner {} (id {}) does not exist",
                        e.status.as_str(),
                        quoted(&e.owner),
                        e.owner_id
                    )))
                }
            }
            if !active.insert((e.owner_id, e.name.as_str())) {
                return Err(here(format!(
                    "two active executions of {} are named {}",
                    quoted(&e.owner),
                    quoted(&e.name)
                )));
            }
        }
        if e.status.is_final() != e.time_finished.is_some() {
            return Err(field(
                "time_finished",
                format!(
                    "status {} {} time_finished",
                    e.status.as_str(),
                    if e.status.is_final() { "needs a" } else { "cannot have a" }
                ),
            ));
        }
        if matches!(e.status, ExecutionStatus::Running) && e.time_started.is_none() {
            return Err(field("time_started", "status running needs a time_started".into()));
        }
        match e.ending {
            None => {}
            Some(to) if e.status == ExecutionStatus::CleaningUp && ExecutionStatus::CleaningUp.can_move_to(to) => {}
            Some(to) => {
                return Err(field(
                    "ending",
                    format!(
                        "ending {} is only for a cleaning up execution, and one of scheduled, finished, terminated \
                         or error (it is {})",
                        to.as_str(),
                        e.status.as_str()
                    ),
                ))
            }
        }
        check_application(&e.application).map_err(|(mut place, reason)| {
            let mut at = at_id("executions", e.id);
            at.push("application:".into());
            at.append(&mut place);
            (at, format!("execution {}: {reason}", e.id))
        })?;
        check_services(e).map_err(|(service, reason)| {
            let mut at = at_id("executions", e.id);
            if let Some(id) = service {
                at.push(format!("id: {id},"));
            } else {
                // The execution's own list, after its application's.
                at.extend(["application:", "services:", "services:"].map(String::from));
            }
            (at, format!("execution {}: {reason}", e.id))
        })?;
        for s in &e.services {
            claim(s.id, "service", "executions")?;
        }
    }
    Ok(())
}

/// An execution's services against its description: each refers to an instance of a service of
/// the application (once); a starting or running execution has every instance.
fn check_services(e: &Execution) -> Result<(), (Option<u64>, String)> {
    let mut seen = HashSet::new();
    for s in &e.services {
        let here = |reason: String| (Some(s.id), format!("service {}: {reason}", s.id));
        let Some(d) = e.description_of(s) else {
            return Err(here(format!("service_name {} is not a service of its application", quoted(&s.service_name))));
        };
        if s.index >= d.total_count {
            return Err(here(format!(
                "index {} is not below the total_count {} of {}",
                s.index,
                d.total_count,
                quoted(&d.name)
            )));
        }
        if s.is_monitor != d.monitor {
            return Err(here(format!(
                "is_monitor {} differs from the description's monitor {}",
                s.is_monitor, d.monitor
            )));
        }
        if !seen.insert((s.service_name.as_str(), s.index)) {
            return Err(here(format!("instance {} of {} is there twice", s.index, quoted(&s.service_name))));
        }
    }
    if matches!(e.status, ExecutionStatus::Starting | ExecutionStatus::Running) {
        let instances: u64 = e.application.services.iter().map(|d| u64::from(d.total_count)).sum();
        if seen.len() as u64 != instances {
            return Err((
                None,
                format!(
                    "it is {} with {} service records, but its application has {instances} instances (one record each)",
                    e.status.as_str(),
                    seen.len()
                ),
            ));
        }
    }
    Ok(())
}

fn too_long(s: &str, max: usize) -> bool {
    s.chars().nth(max).is_some()
}

/// An application description against the limits a submission keeps ([`crate::limits`]): what
/// the master relies on (counts that bound allocations, finite resources, names that become
/// container names) and what no submission could have given. Says where, relative to the
/// application (needles for [`locate`]), and what.
pub fn check_application(app: &Application) -> Result<(), Invalid> {
    let top = |field: &str, reason: String| (vec![format!("{field}:")], reason);
    if app.version != limits::VERSION {
        return Err(top("version", format!("application version {} is not {}", app.version, limits::VERSION)));
    }
    if app.name.is_empty() || too_long(&app.name, limits::MAX_APP_NAME) || app.name.chars().any(char::is_control) {
        return Err(top(
            "name",
            format!(
                "application name {} must be 1 to {} printable characters",
                quoted(&app.name),
                limits::MAX_APP_NAME
            ),
        ));
    }
    if app.priority > limits::MAX_PRIORITY {
        return Err(top("priority", format!("priority {} is above {}", app.priority, limits::MAX_PRIORITY)));
    }
    if app.services.is_empty() || app.services.len() > limits::MAX_SERVICES {
        return Err(top(
            "services",
            format!("its application has {} services (1 to {})", app.services.len(), limits::MAX_SERVICES),
        ));
    }
    if !app.services.iter().any(|d| d.monitor) {
        return Err(top("services", "no service of its application is a monitor".into()));
    }
    let mut names = HashSet::new();
    for d in &app.services {
        let field = |field: &str, reason: String| {
            (
                vec!["services:".to_string(), format!("name: {:?}", d.name), format!("{field}:")],
                format!("service {}: {reason}", quoted(&d.name)),
            )
        };
        if !is_dns_label(&d.name) {
            return Err(field("name", "its name is not a lowercase DNS label".into()));
        }
        if !names.insert(d.name.as_str()) {
            return Err(field("name", "its name is used twice".into()));
        }
        let image = &d.docker_image;
        if image.is_empty()
            || too_long(image, limits::MAX_IMAGE)
            || image.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(field(
                "docker_image",
                format!(
                    "docker_image {} must be 1 to {} characters, without whitespace",
                    quoted(image),
                    limits::MAX_IMAGE
                ),
            ));
        }
        if d.total_count == 0 || d.total_count > limits::MAX_TOTAL_COUNT {
            return Err(field(
                "total_count",
                format!("total_count {} is not between 1 and {}", d.total_count, limits::MAX_TOTAL_COUNT),
            ));
        }
        if d.essential_count > d.total_count {
            return Err(field(
                "essential_count",
                format!("essential_count {} is above total_count {}", d.essential_count, d.total_count),
            ));
        }
        if d.startup_order > limits::MAX_STARTUP_ORDER {
            return Err(field(
                "startup_order",
                format!("startup_order {} is above {}", d.startup_order, limits::MAX_STARTUP_ORDER),
            ));
        }
        let r = &d.required_resources;
        if !(limits::MIN_MEMORY..=limits::MAX_MEMORY).contains(&r.memory) {
            return Err(field(
                "memory",
                format!("memory {} is not between {} and {} bytes", r.memory, limits::MIN_MEMORY, limits::MAX_MEMORY),
            ));
        }
        if let Some(cores) = r.cores {
            // Written so that a NaN fails too.
            if !(cores > 0.0 && cores <= limits::MAX_CORES) {
                return Err(field(
                    "cores",
                    format!("cores {cores} is not more than 0 and at most {}", limits::MAX_CORES),
                ));
            }
        }
        if d.ports.len() > limits::MAX_PORTS {
            return Err(field("ports", format!("{} ports, more than {}", d.ports.len(), limits::MAX_PORTS)));
        }
        for p in &d.ports {
            let bad_protocol = p.protocol.is_empty()
                || too_long(&p.protocol, limits::MAX_PROTOCOL)
                || !p.protocol.starts_with(|c: char| c.is_ascii_lowercase())
                || !p.protocol.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c));
            let bad_path = too_long(&p.path, limits::MAX_PORT_PATH)
                || !(p.path.is_empty() || p.path.starts_with('/'))
                || p.path.chars().any(|c| c.is_whitespace() || c.is_control());
            let bad_name =
                p.name.is_empty() || too_long(&p.name, limits::MAX_PORT_NAME) || p.name.chars().any(char::is_control);
            if bad_protocol || bad_path || bad_name || p.port_number == 0 {
                return Err(field(
                    "ports",
                    format!(
                        "port {} ({}, {} {}) is not one a submission could give",
                        p.port_number,
                        quoted(&p.name),
                        quoted(&p.protocol),
                        quoted(&p.path)
                    ),
                ));
            }
        }
        if d.environment.len() > limits::MAX_ENV_ENTRIES {
            return Err(field(
                "environment",
                format!("{} environment variables, more than {}", d.environment.len(), limits::MAX_ENV_ENTRIES),
            ));
        }
        for (name, value) in &d.environment {
            let well_formed = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !well_formed || too_long(name, limits::MAX_ENV_NAME) || too_long(value, limits::MAX_ENV_VALUE) {
                return Err(field(
                    "environment",
                    format!(
                        "environment variable {} must be a name of at most {} characters with a value of at most {}",
                        quoted(name),
                        limits::MAX_ENV_NAME,
                        limits::MAX_ENV_VALUE
                    ),
                ));
            }
        }
        if d.command.as_ref().is_some_and(|c| too_long(c, limits::MAX_COMMAND)) {
            return Err(field("command", format!("command is longer than {} characters", limits::MAX_COMMAND)));
        }
        if !d.volumes.is_empty() || !d.networks.is_empty() {
            return Err(field("volumes", "volumes and networks are not allowed in application descriptions".into()));
        }
        let named = |i: usize, n: &String| is_dns_label(n) && !d.datasets[..i].contains(n);
        if d.datasets.len() > limits::MAX_DATASETS || !d.datasets.iter().enumerate().all(|(i, n)| named(i, n)) {
            return Err(field(
                "datasets",
                format!("datasets must be at most {} distinct data set names (DNS labels)", limits::MAX_DATASETS),
            ));
        }
    }
    let containers: u64 = app.services.iter().map(|d| u64::from(d.total_count)).sum();
    if containers > limits::MAX_CONTAINERS {
        return Err(top(
            "services",
            format!("its application has {containers} containers in all, more than {}", limits::MAX_CONTAINERS),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod limits_tests;

/// Damaged and hostile checkpoint text never panics the loader: it is loaded or refused with a
/// reason.
#[cfg(test)]
mod properties;
