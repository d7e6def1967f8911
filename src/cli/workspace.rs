//! `zoe ws`: the files of one's workspace over the API (`/api/0.6/workspace/<path>`): `ls`,
//! `get` and `put` (a folder recursively, each file streamed between disk and network, never
//! whole in memory, with a progress line on a terminal) and `rm`; `--user` reaches another
//! user's workspace (administrators).
//!
//! The server and its listings are not trusted with the local disk: `get` writes only below the
//! folder it was given. A listed name that is not one plain file name (`..`, `a/b`, `/etc/x`,
//! empty: the workspace paths' own [`check_name`]) is refused and reported, entries listed as symbolic links are not made, a local folder
//! on the way must be a real folder (not a link to elsewhere), and each file is written under a
//! fresh temporary name (`O_EXCL`, so never through an existing link) and then renamed into
//! place, so an interrupted download leaves no half file under the real name.

use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::json;
use zoe_actors::description::units::show_bytes;

use super::bulk::Broke;
use super::client::{CliError, Client};
use super::output::{show, table};
use super::progress::Progress;
use crate::files::path::check_name;
use crate::files::{Entry, Kind};
use crate::percent::encode;

/// Deepest folder nesting `get` follows (a server answering an endless tree is cut off).
const MAX_DEPTH: usize = 64;

/// `zoe ws`: the workspace's files.
#[derive(Args, Clone, Debug)]
pub struct WsArgs {
    /// Another user's workspace (administrators only).
    #[arg(long = "user", value_name = "NAME", global = true)]
    pub owner: Option<String>,

    #[command(subcommand)]
    pub command: WsCommand,
}

/// The `zoe ws` subcommands. Paths in the workspace are relative to its root (a leading `/` is
/// the root too).
#[derive(Subcommand, Clone, Debug)]
pub enum WsCommand {
    /// List a folder of the workspace (default: its root), or show one file.
    Ls {
        #[arg(value_name = "PATH", default_value = "")]
        path: String,
    },
    /// Download a file, or a folder with everything in it, into LOCAL: a folder that exists
    /// gets it inside, under its own name; otherwise LOCAL is its new name (default: the
    /// current folder). Existing files are replaced.
    Get {
        #[arg(value_name = "PATH")]
        path: String,
        #[arg(value_name = "LOCAL")]
        local: Option<PathBuf>,
    },
    /// Upload a file, or a folder with everything in it (symbolic links inside it are
    /// skipped), to PATH (default: its own name at the root; a PATH ending in `/` gets it
    /// inside, under its own name). Existing files are replaced.
    Put {
        #[arg(value_name = "LOCAL")]
        local: PathBuf,
        #[arg(value_name = "PATH")]
        path: Option<String>,
    },
    /// Remove a file or an empty folder (with --recursive, a folder and everything in it).
    Rm {
        #[arg(value_name = "PATH")]
        path: String,
        /// Remove a folder and everything in it.
        #[arg(long, short)]
        recursive: bool,
    },
}

/// Runs one `zoe ws` command; returns what it prints on stdout.
pub fn run(c: &Client, json: bool, args: WsArgs) -> Result<String, CliError> {
    let ws = Remote { c, owner: args.owner };
    match args.command {
        WsCommand::Ls { path } => ls(&ws, json, &path),
        WsCommand::Get { path, local } => get(&ws, json, &path, local),
        WsCommand::Put { local, path } => put(&ws, json, &local, path.as_deref()),
        WsCommand::Rm { path, recursive } => rm(&ws, json, &path, recursive),
    }
}

/// A workspace on the server.
struct Remote<'a> {
    c: &'a Client,
    owner: Option<String>,
}

impl Remote<'_> {
    /// The API path of a workspace path: its segments percent-encoded, then the query.
    fn url(&self, path: &str, recursive: bool) -> String {
        let segments: Vec<String> = segments(path).iter().map(|s| encode(s)).collect();
        let mut query = Vec::new();
        if let Some(o) = &self.owner {
            query.push(format!("user={}", encode(o)));
        }
        if recursive {
            query.push("recursive=true".to_string());
        }
        let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
        format!("/workspace/{}{query}", segments.join("/"))
    }

    /// The listing of the folder at `path`.
    fn list(&self, path: &str) -> Result<Vec<Entry>, CliError> {
        Client::typed(self.c.get(&self.url(path, false))?)
    }

    /// What `path` is, from its folder's listing (the root is a folder); `None` when it is not
    /// listed there.
    fn stat(&self, path: &str) -> Result<Option<Entry>, CliError> {
        let segs = segments(path);
        let Some((name, parent)) = segs.split_last() else {
            let mtime = time::OffsetDateTime::UNIX_EPOCH;
            return Ok(Some(Entry { name: String::new(), kind: Kind::Dir, size: 0, mtime }));
        };
        Ok(self.list(&parent.join("/"))?.into_iter().find(|e| e.name == *name))
    }

    /// `path`'s entry; when it is not listed, the server's own refusal of it (not found).
    fn entry(&self, path: &str) -> Result<Entry, CliError> {
        if let Some(e) = self.stat(path)? {
            return Ok(e);
        }
        // The server says why, in its words and with its code.
        self.c.download(&self.url(path, false))?;
        Err(CliError::Refused { code: "not_found".into(), message: format!("{} is not in the workspace", show(path)) })
    }
}

/// The segments of a workspace path, without empty ones (`/a//b/` is `a/b`).
fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// A workspace path joined to a name in it.
fn join(path: &str, name: &str) -> String {
    let segs = segments(path);
    if segs.is_empty() {
        name.to_string()
    } else {
        format!("{}/{name}", segs.join("/"))
    }
}

fn pretty(v: &impl Serialize) -> Result<String, CliError> {
    serde_json::to_string_pretty(v)
        .map(|s| crate::escape::json_controls(&s).into_owned() + "\n")
        .map_err(|e| CliError::Failed(format!("cannot print JSON: {e}")))
}

/// `ws ls`: the folder's entries (folders marked with a `/`), or the one entry of a file.
fn ls(ws: &Remote, json: bool, path: &str) -> Result<String, CliError> {
    let entry = ws.entry(path)?;
    let entries = if entry.kind == Kind::Dir { ws.list(path)? } else { vec![entry] };
    if json {
        return pretty(&entries);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let (kind, name) = match e.kind {
                Kind::File => ("file", e.name.clone()),
                Kind::Dir => ("dir", format!("{}/", e.name)),
                Kind::Link => ("link", e.name.clone()),
                Kind::Other => ("other", e.name.clone()),
            };
            let size = if e.kind == Kind::File { show_bytes(e.size) } else { "-".into() };
            vec![kind.to_string(), size, super::output::short_time(Some(&e.mtime)), name]
        })
        .collect();
    Ok(table(&["TYPE", "SIZE", "MODIFIED", "NAME"], &rows))
}

/// What a transfer moved, and what it left out.
#[derive(Default, Serialize)]
struct Moved {
    files: u64,
    bytes: u64,
    /// Entries not transferred, each with why.
    skipped: Vec<String>,
}

impl Moved {
    fn skip(&mut self, what: String) {
        eprintln!("zoe: {}", crate::escape::controls(&what));
        self.skipped.push(what);
    }

    /// The summary printed, and the failure when something was refused (exit 1).
    fn report(self, json: bool, verb: &str, place: &str, started: Instant) -> Result<String, CliError> {
        let secs = started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { show_bytes((self.bytes as f64 / secs) as u64) } else { "-".into() };
        let files = if self.files == 1 { "1 file".to_string() } else { format!("{} files", self.files) };
        let summary = format!("{verb} {files}, {}, {place} in {secs:.1} s ({rate}/s)", show_bytes(self.bytes));
        if !self.skipped.is_empty() {
            let n = self.skipped.len();
            return Err(CliError::Failed(format!("{summary}; {n} left out (see above)")));
        }
        if json {
            return pretty(&json!({"files": self.files, "bytes": self.bytes}));
        }
        Ok(format!("{summary}\n"))
    }
}

/// `ws get`.
fn get(ws: &Remote, json: bool, path: &str, local: Option<PathBuf>) -> Result<String, CliError> {
    let started = Instant::now();
    let entry = ws.entry(path)?;
    let name = segments(path).last().map_or("workspace", |n| n).to_string();
    let local = match local {
        Some(l) if l.is_dir() => l.join(&name),
        Some(l) => l,
        None => PathBuf::from(&name),
    };
    let mut moved = Moved::default();
    match entry.kind {
        Kind::Dir => get_folder(ws, path, &local, 0, &mut moved)?,
        Kind::File => get_file(ws, path, &local, entry.size, &mut moved)?,
        Kind::Link | Kind::Other => {
            return Err(CliError::Refused {
                code: "not_a_file".into(),
                message: format!("{} is a symbolic link, pipe or socket, which is not downloaded", show(path)),
            })
        }
    }
    moved.report(json, "Downloaded", &format!("into {}", show(&local.display().to_string())), started)
}

/// Downloads the folder `path` into the local folder `local` (made if needed), recursively.
fn get_folder(ws: &Remote, path: &str, local: &Path, depth: usize, moved: &mut Moved) -> Result<(), CliError> {
    if depth > MAX_DEPTH {
        moved.skip(format!("{path}: folders nested deeper than {MAX_DEPTH} are not downloaded"));
        return Ok(());
    }
    local_folder(local)?;
    for e in ws.list(path)? {
        let name = e.name.as_str();
        if check_name(name).is_err() {
            moved.skip(format!("{path}: the server listed an entry named {name:?}, which is not a file name"));
            continue;
        }
        let (remote, target) = (join(path, name), local.join(name));
        match e.kind {
            Kind::Dir => get_folder(ws, &remote, &target, depth + 1, moved)?,
            Kind::File => get_file(ws, &remote, &target, e.size, moved)?,
            Kind::Link | Kind::Other => {
                moved.skip(format!("{remote} is a symbolic link, pipe or socket, which is not downloaded"))
            }
        }
    }
    Ok(())
}

/// Makes the local folder `dir`, or checks that it is one: a folder, not a link to elsewhere.
fn local_folder(dir: &Path) -> Result<(), CliError> {
    let failed = |e: std::io::Error| CliError::Failed(format!("cannot make the folder {}: {e}", dir.display()));
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(CliError::Failed(format!("{} exists and is not a folder; nothing written in it", dir.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(dir).map_err(failed),
        Err(e) => Err(failed(e)),
    }
}

/// Downloads the file `path` (listed with `size` bytes) as the local file `target`: into a new
/// temporary file beside it, then renamed into place.
fn get_file(ws: &Remote, path: &str, target: &Path, size: u64, moved: &mut Moved) -> Result<(), CliError> {
    let download = ws.c.download(&ws.url(path, false))?;
    let length = download.length();
    let progress = Progress::new(path, length.unwrap_or(size));
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.zoe-part-{}", std::process::id()));
    let cannot_write = |e: std::io::Error| CliError::Failed(format!("cannot write {}: {e}", temp.display()));
    let wrote = (|| -> Result<u64, CliError> {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&temp).map_err(cannot_write)?;
        let done = download.copy_to(&mut file, &|done| progress.update(done)).map_err(|e| match e {
            Broke::Network(e) => CliError::Connection(format!("the download of {} broke off: {e}", show(path))),
            Broke::Disk(e) => cannot_write(e),
        })?;
        progress.finish(done);
        if length.is_some_and(|l| l != done) {
            return Err(CliError::Connection(format!("the download of {} ended early", show(path))));
        }
        std::fs::rename(&temp, target)
            .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", target.display())))?;
        Ok(done)
    })();
    match wrote {
        Ok(done) => {
            moved.files += 1;
            moved.bytes += done;
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// `ws put`.
fn put(ws: &Remote, json: bool, local: &Path, path: Option<&str>) -> Result<String, CliError> {
    let started = Instant::now();
    let meta =
        std::fs::metadata(local).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", local.display())))?;
    let absolute = std::path::absolute(local).unwrap_or_else(|_| local.to_path_buf());
    let name = absolute
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .next_back()
        .ok_or_else(|| CliError::Usage(format!("{} has no name to upload it under: give PATH", local.display())))?;
    let target = match path {
        None => name,
        Some(p) if p.ends_with('/') => join(p, &name),
        Some(p) => segments(p).join("/"),
    };
    if target.is_empty() {
        return Err(CliError::Usage("PATH names the workspace's root: give a file or folder name".into()));
    }
    let mut moved = Moved::default();
    if meta.is_dir() {
        put_folder(ws, local, &target, &mut moved)?;
    } else if meta.is_file() {
        put_file(ws, local, &target, meta.len(), &mut moved)?;
    } else {
        return Err(CliError::Usage(format!("{} is neither a file nor a folder", local.display())));
    }
    moved.report(json, "Uploaded", &format!("to {}", show(&target)), started)
}

/// Uploads everything in the local folder `dir` below the workspace path `path`, in name order.
fn put_folder(ws: &Remote, dir: &Path, path: &str, moved: &mut Moved) -> Result<(), CliError> {
    let unreadable = |e: std::io::Error| CliError::Usage(format!("cannot read {}: {e}", dir.display()));
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).map_err(unreadable)?.collect::<Result<_, _>>().map_err(unreadable)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let local = e.path();
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            moved.skip(format!("{}: not UTF-8, so not uploaded", local.display()));
            continue;
        };
        let meta = std::fs::symlink_metadata(&local)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", local.display())))?;
        let remote = join(path, &name);
        if meta.is_dir() {
            put_folder(ws, &local, &remote, moved)?;
        } else if meta.is_file() {
            put_file(ws, &local, &remote, meta.len(), moved)?;
        } else {
            moved.skip(format!(
                "{}: not a plain file nor a folder (a symbolic link?), so not uploaded",
                local.display()
            ));
        }
    }
    Ok(())
}

fn put_file(ws: &Remote, local: &Path, path: &str, len: u64, moved: &mut Moved) -> Result<(), CliError> {
    let progress = Progress::new(path, len);
    ws.c.upload(&ws.url(path, false), local, len, &|done| progress.update(done))?;
    progress.finish(len);
    moved.files += 1;
    moved.bytes += len;
    Ok(())
}

/// `ws rm`.
fn rm(ws: &Remote, json: bool, path: &str, recursive: bool) -> Result<String, CliError> {
    if segments(path).is_empty() {
        return Err(CliError::Usage("refusing to remove the workspace's root: name what to remove".into()));
    }
    ws.c.delete(&ws.url(path, recursive))?;
    Ok(if json { String::new() } else { format!("Removed {}\n", show(&segments(path).join("/"))) })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests;
