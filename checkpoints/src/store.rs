//! The checkpoint directory: numbered RON files, written atomically, listed, loaded, pruned.
//!
//! Layout: `<state-dir>/checkpoints/0000000042.ron`. Numbers only grow, and a number is written
//! once: a file is written under a temporary name in the same directory, fsynced, then linked to
//! its number only if no file has that number yet (create-exclusive), and the directory fsynced.
//! A crash leaves either the old set of files or the new one, never a torn checkpoint; a failed
//! write (a full disk) leaves nothing behind; two writers can never overwrite each other's
//! checkpoint, even if the lock ([`StateLock`]) were somehow defeated.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::codec::{self, LoadError};
use crate::model::{Action, Change, State};

/// Digits in a checkpoint file name.
const DIGITS: usize = 10;
const EXT: &str = "ron";
/// Temporary files start with this (checkpoints and archive segments alike).
pub const TMP_PREFIX: &str = ".tmp-";

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

/// Temporary files of this process get distinct names, so that no two writes share one.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to a new temporary file next to `path` (mode 0600) and fsyncs it. On any
/// failure the temporary file is removed: a full disk leaves nothing behind.
fn write_temp(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let n = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("{TMP_PREFIX}{file_name}.{}.{n}", std::process::id()));
    let mut f = OpenOptions::new().write(true).create_new(true).mode(PRIVATE_FILE).open(&tmp)?;
    let written = f
        .set_permissions(fs::Permissions::from_mode(PRIVATE_FILE))
        .and_then(|()| f.write_all(bytes))
        .and_then(|()| f.sync_data());
    drop(f);
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

/// Writes `bytes` to `path` durably and atomically, replacing any file there: temp file in the
/// same directory (mode 0600), fsync, rename, fsync the directory. For files derived from others
/// (indexes); checkpoints and segments use [`write_new`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_temp(path, bytes)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path)
}

/// Writes `bytes` as the new file `path`, durably and atomically, and only if no file is there
/// yet (`AlreadyExists` otherwise): temp file, fsync, hard link to `path` (which never replaces a
/// file), remove the temp name, fsync the directory. The one place in Zoe that writes a
/// checkpoint; nothing is left behind when it fails.
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_temp(path, bytes)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    if let Err(e) = linked {
        return Err(if e.kind() == io::ErrorKind::AlreadyExists {
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} already exists: a number is written once (is another process writing here?)",
                    path.display()
                ),
            )
        } else {
            e
        });
    }
    if let Err(e) = sync_dir(path) {
        // Not known to be durable: not written, so that the number is free for the next try.
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(())
}

/// Bytes free for the master's user on the file system holding `dir`.
pub fn free_space(dir: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(dir).map_err(io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The lock of a state directory: one master (or one `zoe checkpoint revert`) at a time. It is
/// the kernel's lock (`flock`) on the directory itself, held while this value lives and released
/// by the kernel when the process ends, however it ends; no file stands for it, so deleting a
/// file cannot defeat it.
#[derive(Debug)]
pub struct StateLock {
    _dir: File,
}

impl StateLock {
    /// Takes the lock of `state_dir` (created if needed): `Ok(None)` when another process holds
    /// it.
    pub fn try_take(state_dir: &Path) -> io::Result<Option<StateLock>> {
        private_dir(state_dir)?;
        let dir = File::open(state_dir)?;
        match dir.try_lock() {
            Ok(()) => Ok(Some(StateLock { _dir: dir })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// Removes the temporary files left in `dir` by writes that a crash interrupted (they were never
/// acknowledged). Only with the state directory's lock held: a running master's writes use them.
pub fn remove_temp_files(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            fs::remove_file(entry.path())?;
            n += 1;
        }
    }
    Ok(n)
}

impl Store {
    /// Opens (creating if needed) `<state_dir>/checkpoints`. Reading only: leftover temporary
    /// files are removed by [`Store::remove_temp_files`], with the lock held.
    pub fn open(state_dir: &Path) -> io::Result<Store> {
        let dir = state_dir.join("checkpoints");
        private_dir(state_dir)?;
        private_dir(&dir)?;
        Ok(Store { dir })
    }

    /// Removes temporary files of checkpoint writes a crash interrupted (with the lock held).
    pub fn remove_temp_files(&self) -> io::Result<usize> {
        remove_temp_files(&self.dir)
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

    /// The newest checkpoint below `below` that loads, if any (for hints: where to go back to).
    pub fn newest_loadable(&self, below: u64) -> Option<u64> {
        let files = self.list().ok()?;
        files.iter().rev().map(|f| f.number).filter(|n| *n < below).find(|n| self.load(*n).is_ok())
    }

    /// The checkpoint that checkpoint `number` is a copy of, if its `changes` record a revert
    /// (read from the lines before its users; nothing for a damaged or unreadable file).
    pub fn reverts_to(&self, number: u64) -> Option<u64> {
        let text = self.read(number).ok()?;
        text.lines()
            .take_while(|l| !l.trim_start().starts_with("users:"))
            .filter(|l| l.contains("revert"))
            .filter_map(|l| ron::from_str::<Change>(l.trim().trim_end_matches(',')).ok())
            .find(|c| c.action == Action::Revert)
            .and_then(|c| c.ids.first().copied())
    }

    /// Writes `text` as checkpoint `number`, durably; never over an existing checkpoint.
    pub fn write(&self, number: u64, text: &str) -> io::Result<()> {
        write_new(&self.path(number), text.as_bytes())
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

    /// Free bytes on the file system of the checkpoints.
    pub fn free_space(&self) -> io::Result<u64> {
        free_space(&self.dir)
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
        crate::tempdir(&format!("store-{tag}"))
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
    fn interrupted_temp_files_are_removed_only_when_asked() {
        let d = tempdir("tmp");
        let s = Store::open(&d).unwrap();
        fs::write(s.dir().join(".tmp-0000000007.ron.12.0"), "torn").unwrap();
        let s = Store::open(&d).unwrap();
        assert_eq!(fs::read_dir(s.dir()).unwrap().count(), 1, "opening to read removes nothing");
        assert_eq!(s.remove_temp_files().unwrap(), 1);
        assert!(s.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(s.dir()).unwrap().count(), 0);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_number_is_written_once_and_a_failed_write_leaves_nothing() {
        let d = tempdir("excl");
        let s = Store::open(&d).unwrap();
        s.write(1, "first").unwrap();
        let e = s.write(1, "second").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
        assert!(e.to_string().contains("0000000001.ron already exists"), "{e}");
        assert_eq!(s.read(1).unwrap(), "first", "never overwritten");
        assert_eq!(fs::read_dir(s.dir()).unwrap().count(), 1, "no temporary file left");
        // An index may be replaced; its temporary file does not stay either.
        let idx = s.dir().join("x.idx");
        write_atomic(&idx, b"a").unwrap();
        write_atomic(&idx, b"b").unwrap();
        assert_eq!(fs::read(&idx).unwrap(), b"b");
        assert!(write_atomic(&s.dir().join("missing/x"), b"c").is_err());
        assert_eq!(fs::read_dir(s.dir()).unwrap().count(), 2);
        assert!(s.free_space().unwrap() > 0);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_lock_is_the_kernel_s_on_the_directory_and_deleting_files_does_not_defeat_it() {
        let d = tempdir("lock");
        let held = StateLock::try_take(&d).unwrap();
        assert!(held.is_some());
        assert!(StateLock::try_take(&d).unwrap().is_none());
        for entry in fs::read_dir(&d).unwrap() {
            fs::remove_file(entry.unwrap().path()).unwrap();
        }
        assert!(StateLock::try_take(&d).unwrap().is_none(), "no file to delete stands for the lock");
        drop(held);
        assert!(StateLock::try_take(&d).unwrap().is_some());
        fs::remove_dir_all(&d).unwrap();
    }
}
