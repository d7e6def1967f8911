//! The credentials file of `zoe login`: `$XDG_CONFIG_HOME/zoe/credentials` (default
//! `~/.config/zoe/credentials`), JSON with the server, the user, and an API token and its name.
//! Written atomically with mode 0600 (its folder 0700); a file that others can read is refused,
//! as ssh refuses such a key. Later commands use its token when no password is given.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::client::CliError;

/// What `zoe login` keeps.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    /// The master, as the client normalizes it (`http://host:port`).
    pub url: String,
    pub user: String,
    /// The token's name (what `zoe logout` revokes).
    pub name: String,
    pub token: String,
}

/// Where the file is: under `$XDG_CONFIG_HOME` when it is an absolute path, else `~/.config`.
pub fn path() -> Result<PathBuf, CliError> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".config")))
        .ok_or_else(|| CliError::Usage("neither XDG_CONFIG_HOME nor HOME is set: no place for credentials".into()))?;
    Ok(base.join("zoe").join("credentials"))
}

/// The saved credentials, if there are any; a file that others may read is refused.
pub fn load() -> Result<Option<Saved>, CliError> {
    let path = path()?;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CliError::Usage(format!("cannot read {}: {e}", path.display()))),
    };
    let mode = std::fs::metadata(&path).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    if mode.permissions().mode() & 0o077 != 0 {
        return Err(CliError::Usage(format!(
            "{} can be read by others: its token is refused; chmod 600 it, or zoe logout and zoe login again",
            path.display()
        )));
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| CliError::Usage(format!("{} is not a credentials file of zoe login: {e}", path.display())))
}

/// Writes the credentials: a temporary file of mode 0600 in the same folder, synced, renamed.
pub fn save(saved: &Saved) -> Result<PathBuf, CliError> {
    let path = path()?;
    let fail = |e: std::io::Error| CliError::Usage(format!("cannot write {}: {e}", path.display()));
    let dir = path.parent().ok_or_else(|| CliError::Usage("no folder for the credentials".into()))?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(fail)?;
    let tmp = dir.join(format!(".credentials.{}.tmp", std::process::id()));
    let text = serde_json::to_string_pretty(saved).map_err(|e| CliError::Usage(e.to_string()))?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(format!("{text}\n").as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .and_then(|()| std::fs::File::open(dir)?.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    Ok(path)
}

/// Deletes the file; says whether there was one.
pub fn remove() -> Result<bool, CliError> {
    let path = path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::Usage(format!("cannot delete {}: {e}", path.display()))),
    }
}
