//! Turning a [`State`] into checkpoint text and back: pretty RON, format versions and the
//! validation every loaded checkpoint goes through.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::{ExecutionStatus, Role, State, FORMAT_VERSION};

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

impl LoadError {
    fn at(line: usize, column: usize, reason: impl Into<String>) -> Self {
        LoadError { file: None, line, column, reason: reason.into() }
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

/// The checkpoint text of `state`: a comment header, then pretty RON with stable field order.
pub fn encode(state: &State) -> Result<String, ron::Error> {
    let mut out = String::with_capacity(4096);
    out.push_str(&format!(
        "// Zoe checkpoint of deployment \"{}\": the whole master state.\n\
         // Hand-edit with the master stopped, then run `zoe checkpoint verify`.\n",
        state.deployment_name
    ));
    let cfg = ron::ser::PrettyConfig::new().indentor("    ").struct_names(false);
    out.push_str(&ron::ser::to_string_pretty(state, cfg)?);
    out.push('\n');
    Ok(out)
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
    let state: State = match probe.format_version {
        FORMAT_VERSION => ron::from_str(text).map_err(|e| ron_error(&e))?,
        v if v > FORMAT_VERSION => {
            return Err(LoadError::at(
                locate(text, "format_version").0,
                1,
                format!(
                    "format_version {v} was written by a newer Zoe; this one reads up to \
                     {FORMAT_VERSION}"
                ),
            ))
        }
        v => {
            return Err(LoadError::at(
                locate(text, "format_version").0,
                1,
                format!("unknown format_version {v}"),
            ))
        }
    };
    validate(&state).map_err(|(needle, reason)| {
        let (line, column) = needle.map(|n| locate(text, &n)).unwrap_or((0, 0));
        LoadError::at(line, column, reason)
    })?;
    Ok(state)
}

/// 1-based line and column of the first occurrence of `needle`, or (0, 0).
fn locate(text: &str, needle: &str) -> (usize, usize) {
    text.lines()
        .enumerate()
        .find_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1)))
        .unwrap_or((0, 0))
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

type Invalid = (Option<String>, String);

fn invalid(id: Option<u64>, reason: String) -> Invalid {
    (id.map(|i| format!("id: {i},")), reason)
}

/// Checks everything that cannot be expressed in the types: ids, names, references, times.
/// The error carries a text to look for (to find the line) and the reason.
pub fn validate(state: &State) -> Result<(), Invalid> {
    if !is_dns_label(&state.deployment_name) {
        return Err((
            Some("deployment_name".into()),
            format!("deployment_name {:?} is not a lowercase DNS label", state.deployment_name),
        ));
    }
    let mut ids = HashSet::new();
    let mut claim = |id: u64, what: &str| -> Result<(), Invalid> {
        if id >= state.next_id {
            return Err(invalid(
                Some(id),
                format!("{what} id {id} is not below next_id {}", state.next_id),
            ));
        }
        if !ids.insert(id) {
            return Err(invalid(Some(id), format!("{what} id {id} is used twice")));
        }
        Ok(())
    };
    let mut names = HashSet::new();
    for (key, u) in &state.users {
        claim(*key, "user")?;
        if !is_dns_label(&u.name) {
            return Err(invalid(Some(u.id), format!("user name {:?} is not a lowercase DNS label", u.name)));
        }
        if !names.insert(u.name.as_str()) {
            return Err(invalid(Some(u.id), format!("user name {:?} is used twice", u.name)));
        }
        if !u.password_hash.starts_with("$argon2") {
            return Err(invalid(
                Some(u.id),
                format!("user {:?}: password_hash is not an argon2 PHC string", u.name),
            ));
        }
    }
    if !state.users.values().any(|u| u.role == Role::Admin) {
        return Err((Some("users".into()), "there is no user with role admin".into()));
    }
    let mut active = BTreeSet::new();
    for (key, e) in &state.executions {
        claim(*key, "execution")?;
        let here = |reason: String| invalid(Some(e.id), format!("execution {}: {reason}", e.id));
        if !is_dns_label(&e.name) {
            return Err(here(format!("name {:?} is not a lowercase DNS label", e.name)));
        }
        if e.owner_id >= state.next_id {
            return Err(here(format!("owner_id {} is not below next_id", e.owner_id)));
        }
        if e.status.is_active() {
            match state.users.get(&e.owner_id) {
                Some(u) if u.name == e.owner => {}
                _ => {
                    return Err(here(format!(
                        "it is {} but its owner {:?} (id {}) does not exist",
                        e.status.as_str(),
                        e.owner,
                        e.owner_id
                    )))
                }
            }
            if !active.insert((e.owner_id, e.name.as_str())) {
                return Err(here(format!(
                    "two active executions of {:?} are named {:?}",
                    e.owner, e.name
                )));
            }
        }
        if e.status.is_final() != e.time_finished.is_some() {
            return Err(here(format!(
                "status {} {} time_finished",
                e.status.as_str(),
                if e.status.is_final() { "needs a" } else { "cannot have a" }
            )));
        }
        if matches!(e.status, ExecutionStatus::Running) && e.time_started.is_none() {
            return Err(here("status running needs a time_started".into()));
        }
        if e.application.services.is_empty() {
            return Err(here("its application has no services".into()));
        }
        for s in &e.services {
            claim(s.id, "service")?;
        }
    }
    Ok(())
}
