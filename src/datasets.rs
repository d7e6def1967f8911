//! Data sets: folders of the master's host (on a Swarm, of every node: shared storage) that an
//! administrator names with the `dataset NAME=HOSTPATH` setting, and that a service of a
//! description asks for by name (`"datasets": ["NAME"]`), mounted read-only at
//! `/mnt/datasets/NAME`. A user never gives a host path: only the configured names are accepted
//! (`unknown_dataset` otherwise, at submission).
//!
//! `GET /api/0.6/datasets` lists the names; administrators also see each folder and its size.
//! A size is a walk of the folder, bounded ([`WALK_TIME`] and [`WALK_ENTRIES`] for all data sets
//! at once; past a bound it is a lower bound, marked `complete: false`), made off the async
//! threads one at a time, and kept for [`FRESH`].

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zoe_actors::logic::access;
use zoe_actors::logic::plan::DATASETS_MOUNT;

use crate::auth::Authed;
use crate::error::ApiError;
use crate::responses::ReadRefusals;
use crate::AppData;

/// How long a measured size is shown before it is measured again.
pub const FRESH: Duration = Duration::from_secs(600);
/// The longest one measurement (of every stale data set) walks.
pub const WALK_TIME: Duration = Duration::from_secs(10);
/// The most entries (files, folders, links) one measurement looks at.
pub const WALK_ENTRIES: u64 = 1_000_000;
/// How long a listing waits for a measurement (its own, or one under way) before it answers
/// with what it has.
const WAIT: Duration = Duration::from_secs(15);

/// The configured data sets, by name.
pub type Folders = BTreeMap<String, PathBuf>;

/// Reads the `dataset` settings (`NAME=HOSTPATH` each) and checks each folder: NAME a lowercase
/// DNS label given once, HOSTPATH an absolute path of an existing folder.
pub fn parse(settings: &[String]) -> Result<Folders, String> {
    let mut folders = Folders::new();
    // An empty setting (`ZOE_DATASETS=`, or a trailing comma) names nothing.
    for setting in settings.iter().filter(|s| !s.trim().is_empty()) {
        let Some((name, path)) = setting.split_once('=') else {
            return Err(format!("--dataset {setting:?} must be NAME=HOSTPATH (e.g. imagenet=/srv/data/imagenet)"));
        };
        let (name, path) = (name.trim(), Path::new(path.trim()));
        if !zoe_checkpoints::is_dns_label(name) {
            return Err(format!(
                "--dataset {setting:?}: the name {name:?} must be a lowercase DNS label (a-z, 0-9, '-', at most 63)"
            ));
        }
        if !path.is_absolute() {
            return Err(format!("--dataset {setting:?}: the host path must be absolute"));
        }
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("--dataset {setting:?}: {} is not a folder", path.display())),
            Err(e) => return Err(format!("--dataset {setting:?}: cannot use {}: {e}", path.display())),
        }
        if folders.insert(name.to_string(), path.to_path_buf()).is_some() {
            return Err(format!("--dataset: the name {name:?} is given twice"));
        }
    }
    Ok(folders)
}

/// Refuses a data set folder that holds, or lies inside, one of `private` (named by what they
/// are: the state directory, the deployment's workspaces): it would show every user what is not
/// theirs, or what they must not read.
pub fn check_apart(folders: &Folders, private: &[(&str, &Path)]) -> Result<(), String> {
    for (name, folder) in folders {
        let folder = std::fs::canonicalize(folder).map_err(|e| format!("--dataset {name}: {e}"))?;
        for (what, path) in private {
            let path = std::fs::canonicalize(path)
                .or_else(|_| std::path::absolute(path))
                .map_err(|e| format!("--dataset {name}: {what} {}: {e}", path.display()))?;
            if folder.starts_with(&path) || path.starts_with(&folder) {
                return Err(format!(
                    "--dataset {name}: {} overlaps the {what} {}; a data set is readable by every user",
                    folder.display(),
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

/// A data set as `GET /datasets` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "imagenet", "mount": "/mnt/datasets/imagenet"}))]
pub struct DatasetView {
    /// What a service names in its `datasets`.
    pub name: String,
    /// Where its services see it, read-only.
    pub mount: String,
    /// The folder on the host (administrators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    /// Its size (administrators only; absent until first measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<DatasetSize>,
}

/// The size of a data set, as a bounded walk found it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DatasetSize {
    /// Bytes of its regular files (what services see: other file systems mounted beneath it are
    /// not counted, nor followed links).
    pub bytes: u64,
    /// Its regular files.
    pub files: u64,
    /// Whether the walk saw all of it; `false`: it stopped at its bound (time or entries) or at
    /// an unreadable folder, and the figures are lower bounds.
    pub complete: bool,
    /// When it was measured.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub measured_at: time::OffsetDateTime,
}

/// The deployment's data sets and their measured sizes.
pub struct Datasets {
    folders: Folders,
    sizes: Mutex<BTreeMap<String, (Instant, DatasetSize)>>,
    /// Held by the measurement under way (by its thread, even past a listing's patience).
    measuring: Arc<tokio::sync::Mutex<()>>,
}

impl Datasets {
    pub fn new(folders: Folders) -> Self {
        Datasets { folders, sizes: Mutex::default(), measuring: Arc::default() }
    }

    /// Name to host folder.
    pub fn folders(&self) -> &Folders {
        &self.folders
    }

    /// The listing; with the folders and sizes for an administrator (measuring the stale ones
    /// first, within [`WAIT`]).
    pub async fn list(&self, admin: bool) -> Vec<DatasetView> {
        let sizes = if admin { self.sizes().await } else { BTreeMap::new() };
        self.folders
            .iter()
            .map(|(name, host)| DatasetView {
                name: name.clone(),
                mount: format!("{DATASETS_MOUNT}/{name}"),
                host_path: admin.then(|| host.display().to_string()),
                size: sizes.get(name).copied(),
            })
            .collect()
    }

    /// The sizes known, once the stale ones are measured (or [`WAIT`] has passed).
    async fn sizes(&self) -> BTreeMap<String, DatasetSize> {
        if !self.stale().is_empty() {
            if let Ok(turn) = tokio::time::timeout(WAIT, self.measuring.clone().lock_owned()).await {
                // Another listing may have measured them while this one waited.
                let stale = self.stale();
                if !stale.is_empty() {
                    let walking = tokio::task::spawn_blocking(move || {
                        let _turn = turn;
                        measure(&stale, WALK_TIME, WALK_ENTRIES)
                    });
                    match tokio::time::timeout(WAIT, walking).await {
                        Ok(Ok(measured)) => {
                            let now = Instant::now();
                            self.lock().extend(measured.into_iter().map(|(name, size)| (name, (now, size))));
                        }
                        Ok(Err(e)) => tracing::warn!(error = %e, "measuring the data sets failed"),
                        Err(_) => tracing::warn!("measuring the data sets takes too long; sizes shown later"),
                    }
                }
            }
        }
        self.lock().iter().map(|(name, (_, size))| (name.clone(), *size)).collect()
    }

    /// The data sets whose size is unknown or older than [`FRESH`].
    fn stale(&self) -> Vec<(String, PathBuf)> {
        let sizes = self.lock();
        self.folders
            .iter()
            .filter(|(name, _)| sizes.get(*name).is_none_or(|(at, _)| at.elapsed() >= FRESH))
            .map(|(name, path)| (name.clone(), path.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Instant, DatasetSize)>> {
        self.sizes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Walks these folders, one after the other, within `time` and `entries` for them all.
pub fn measure(folders: &[(String, PathBuf)], time: Duration, entries: u64) -> Vec<(String, DatasetSize)> {
    let deadline = Instant::now() + time;
    let mut left = entries;
    folders
        .iter()
        .map(|(name, path)| {
            let (bytes, files, complete) = walk(path, deadline, &mut left);
            let size = DatasetSize { bytes, files, complete, measured_at: time::OffsetDateTime::now_utc() };
            if !complete {
                tracing::info!(dataset = name, bytes, files, "the data set's size is a lower bound (walk bounded)");
            }
            (name.clone(), size)
        })
        .collect()
}

/// Bytes and regular files under `root`, without following links nor entering other file
/// systems; stops at `deadline` or when `left` entries have been seen (then not complete).
fn walk(root: &Path, deadline: Instant, left: &mut u64) -> (u64, u64, bool) {
    let Ok(top) = std::fs::metadata(root) else { return (0, 0, false) };
    let device = top.dev();
    let (mut bytes, mut files, mut complete) = (0u64, 0u64, true);
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(list) = std::fs::read_dir(&folder) else {
            complete = false;
            continue;
        };
        for entry in list {
            if *left == 0 || Instant::now() >= deadline {
                return (bytes, files, false);
            }
            *left -= 1;
            // A directory entry's metadata is the link's own, never its target's.
            let Ok((path, meta)) = entry.and_then(|e| Ok((e.path(), e.metadata()?))) else {
                complete = false;
                continue;
            };
            if meta.is_file() {
                bytes = bytes.saturating_add(meta.len());
                files += 1;
            } else if meta.is_dir() && meta.dev() == device {
                folders.push(path);
            }
        }
    }
    (bytes, files, complete)
}

/// `GET /api/0.6/datasets`.
#[utoipa::path(
    get,
    path = "/api/0.6/datasets",
    tag = "platform",
    responses(
        (status = 200, description = "The data sets services may name, by name; administrators also see each one's host folder and size (a bounded walk, kept ten minutes)", body = [DatasetView]),
        ReadRefusals,
    ),
)]
pub async fn list_datasets(data: web::Data<AppData>, Authed(caller): Authed) -> Result<HttpResponse, ApiError> {
    access::check_caller(&data.reader.now().state, &caller)?;
    Ok(HttpResponse::Ok().json(data.datasets.list(caller.is_admin()).await))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("zoe-datasets-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn settings_name_existing_absolute_folders_once() {
        let dir = scratch("parse");
        let file = dir.join("file");
        std::fs::write(&file, "x").unwrap();
        let d = dir.display();
        let ok = parse(&[format!("corpus={d}"), format!(" images = {d}/ ")]).unwrap();
        assert_eq!(ok.keys().collect::<Vec<_>>(), ["corpus", "images"]);
        assert_eq!(ok["corpus"], dir);
        for (setting, why) in [
            (format!("{d}"), "must be NAME=HOSTPATH"),
            (format!("Corpus={d}"), "lowercase DNS label"),
            (format!("a_b={d}"), "lowercase DNS label"),
            (format!("={d}"), "lowercase DNS label"),
            ("corpus=relative/path".to_string(), "must be absolute"),
            (format!("corpus={d}/missing"), "cannot use"),
            (format!("corpus={}", file.display()), "is not a folder"),
        ] {
            let err = parse(std::slice::from_ref(&setting)).unwrap_err();
            assert!(err.contains(why) && !err.contains('\n'), "{setting}: {err}");
        }
        let err = parse(&[format!("corpus={d}"), "corpus=/tmp".to_string()]).unwrap_err();
        assert!(err.contains("given twice"), "{err}");
        assert!(parse(&[]).unwrap().is_empty());
        assert!(parse(&[String::new(), " ".into()]).unwrap().is_empty());
    }

    #[test]
    fn a_data_set_lies_apart_from_the_state_and_the_workspaces() {
        let dir = scratch("apart");
        for sub in ["state/checkpoints", "data", "ws"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let (state, workspaces) = (dir.join("state"), dir.join("ws/dev"));
        let private = [("state directory", state.as_path()), ("workspaces folder", workspaces.as_path())];
        let folders = |sub: &str| Folders::from([("d".to_string(), dir.join(sub))]);
        assert_eq!(check_apart(&folders("data"), &private), Ok(()));
        for (sub, what) in [
            ("", "state directory"),
            ("state/checkpoints", "state directory"),
            ("state/../state", "state directory"),
            ("ws", "workspaces folder"),
        ] {
            let err = check_apart(&folders(sub), &private).unwrap_err();
            assert!(err.contains(what), "{sub}: {err}");
        }
    }

    #[test]
    fn a_size_counts_files_without_following_links_and_stops_at_its_bounds() {
        let dir = scratch("walk");
        let data = dir.join("data");
        std::fs::create_dir_all(data.join("a/b")).unwrap();
        std::fs::write(data.join("one"), vec![0u8; 1000]).unwrap();
        std::fs::write(data.join("a/two"), vec![0u8; 20]).unwrap();
        std::fs::write(data.join("a/b/three"), vec![0u8; 3]).unwrap();
        // A big file outside, and links to it and to its folder: not counted.
        std::fs::write(dir.join("outside"), vec![0u8; 100_000]).unwrap();
        std::os::unix::fs::symlink(dir.join("outside"), data.join("link")).unwrap();
        std::os::unix::fs::symlink(&dir, data.join("a/up")).unwrap();
        let folders = [("d".to_string(), data.clone())];
        let [(_, size)] = measure(&folders, Duration::from_secs(10), 1000).try_into().unwrap();
        assert_eq!((size.bytes, size.files, size.complete), (1023, 3, true));
        // Seven entries in all: fewer allowed, a lower bound.
        let [(_, size)] = measure(&folders, Duration::from_secs(10), 4).try_into().unwrap();
        assert!(!size.complete && size.bytes < 1023, "{size:?}");
        let [(_, size)] = measure(&folders, Duration::ZERO, 1000).try_into().unwrap();
        assert_eq!((size.bytes, size.complete), (0, false));
        // The bound is shared: the second data set gets what the first left.
        let two = [("d".to_string(), data.clone()), ("e".to_string(), data)];
        let sizes = measure(&two, Duration::from_secs(10), 10);
        assert!(sizes[0].1.complete && !sizes[1].1.complete, "{sizes:?}");
        let missing = [("m".to_string(), dir.join("missing"))];
        assert!(!measure(&missing, Duration::from_secs(1), 10)[0].1.complete);
    }
}
