//! The checkpoint directory: numbered RON files, written atomically, listed, loaded, pruned.
//!
//! Layout: `<state-dir>/checkpoints/0000000042.ron`. Numbers only grow. A file is written to a
//! temporary name in the same directory, fsynced, renamed into place, and the directory fsynced:
//! a crash leaves either the old set of files or the new one, never a torn checkpoint.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::codec::{self, LoadError};
use crate::model::State;

/// Digits in a checkpoint file name.
const DIGITS: usize = 10;
const EXT: &str = "ron";
const TMP_PREFIX: &str = ".tmp-";

/// A checkpoint directory.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

/// One checkpoint file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointFile {
    pub number: u64,
    pub path: PathBuf,
    pub size: u64,
}

/// Checkpoints hold password hashes: the state directory and everything in it is for the
/// master's user alone (directories 0700, files 0600).
const PRIVATE_DIR: u32 = 0o700;
const PRIVATE_FILE: u32 = 0o600;

/// Creates `dir` (and its parents) if needed, and makes it private to the master's user.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let perms = fs::metadata(dir)?.permissions();
    if perms.mode() & 0o7777 != PRIVATE_DIR {
        fs::set_permissions(dir, fs::Permissions::from_mode(PRIVATE_DIR))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` durably and atomically: temp file in the same directory (mode 0600),
/// fsync, rename, fsync the directory. The one place in Zoe that does this.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!("{TMP_PREFIX}{file_name}"));
    {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(PRIVATE_FILE).open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(PRIVATE_FILE))?;
        f.write_all(bytes)?;
        f.sync_data()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

impl Store {
    /// Opens (creating if needed) `<state_dir>/checkpoints` and removes leftover temporary files
    /// of writes that a crash interrupted (they were never acknowledged).
    pub fn open(state_dir: &Path) -> io::Result<Store> {
        let dir = state_dir.join("checkpoints");
        private_dir(state_dir)?;
        private_dir(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(Store { dir })
    }

    /// The directory holding the checkpoint files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of checkpoint `number`.
    pub fn path(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{number:0DIGITS$}.{EXT}"))
    }

    /// Every checkpoint file, oldest first. Other files in the directory are ignored.
    pub fn list(&self) -> io::Result<Vec<CheckpointFile>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(number) = parse_file_name(&name.to_string_lossy()) else {
                continue;
            };
            out.push(CheckpointFile { number, path: entry.path(), size: entry.metadata()?.len() });
        }
        out.sort_by_key(|c| c.number);
        Ok(out)
    }

    /// The number of the newest checkpoint, if any.
    pub fn newest(&self) -> io::Result<Option<u64>> {
        Ok(self.list()?.last().map(|c| c.number))
    }

    /// The text of checkpoint `number`.
    pub fn read(&self, number: u64) -> io::Result<String> {
        fs::read_to_string(self.path(number))
    }

    /// Reads, parses, upgrades and validates checkpoint `number`.
    pub fn load(&self, number: u64) -> Result<State, LoadError> {
        let path = self.path(number);
        let text = fs::read_to_string(&path).map_err(|e| LoadError::io(&path, &e))?;
        codec::decode(&text).map_err(|e| e.in_file(&path))
    }

    /// Writes `text` as checkpoint `number`, durably.
    pub fn write(&self, number: u64, text: &str) -> io::Result<()> {
        write_atomic(&self.path(number), text.as_bytes())
    }

    /// Removes all but the newest `keep` checkpoints (at least one is always kept).
    pub fn prune(&self, keep: usize) -> io::Result<usize> {
        let files = self.list()?;
        let excess = files.len().saturating_sub(keep.max(1));
        for f in &files[..excess] {
            fs::remove_file(&f.path)?;
        }
        Ok(excess)
    }

    /// Takes the state directory's lock, held by a running master: `Ok(None)` when another
    /// process holds it. Released when the returned file is dropped.
    pub fn try_lock(state_dir: &Path) -> io::Result<Option<File>> {
        private_dir(state_dir)?;
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(PRIVATE_FILE)
            .open(state_dir.join("master.lock"))?;
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

fn parse_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".ron")?;
    if stem.len() != DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("zoe-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn write_list_read_prune() {
        let d = tempdir("wlrp");
        let s = Store::open(&d).unwrap();
        assert_eq!(s.newest().unwrap(), None);
        for n in 1..=5 {
            s.write(n, &format!("text {n}")).unwrap();
        }
        fs::write(s.dir().join("notes.txt"), "ignored").unwrap();
        assert_eq!(s.list().unwrap().iter().map(|c| c.number).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert_eq!(s.read(3).unwrap(), "text 3");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!((mode(&d), mode(s.dir()), mode(&s.path(3))), (0o700, 0o700, 0o600), "hashes are private");
        assert_eq!(s.path(42).file_name().unwrap(), "0000000042.ron");
        assert_eq!(s.prune(2).unwrap(), 3);
        assert_eq!(s.list().unwrap().iter().map(|c| c.number).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(s.prune(0).unwrap(), 1, "the newest is always kept");
        assert_eq!(s.newest().unwrap(), Some(5));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn open_removes_interrupted_temp_files() {
        let d = tempdir("tmp");
        let s = Store::open(&d).unwrap();
        fs::write(s.dir().join(".tmp-0000000007.ron"), "torn").unwrap();
        let s = Store::open(&d).unwrap();
        assert!(s.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(s.dir()).unwrap().count(), 0);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn lock_is_exclusive() {
        let d = tempdir("lock");
        let held = Store::try_lock(&d).unwrap();
        assert!(held.is_some());
        assert!(Store::try_lock(&d).unwrap().is_none());
        drop(held);
        assert!(Store::try_lock(&d).unwrap().is_some());
        fs::remove_dir_all(&d).unwrap();
    }
}
