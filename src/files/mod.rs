//! Files of a user's workspace, reached by the master (root) for the API and the web pages,
//! confined to that workspace by the kernel.
//!
//! Every path is resolved beneath the workspace's root folder by `openat2(2)` with
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: `..`, absolute symbolic links and relative ones that
//! climb out fail in the kernel (`EXDEV`), whatever a container did to the tree meanwhile, so a
//! link a container made towards `/etc` or another user's workspace leads nowhere. Links that stay
//! inside are followed. What is changed (a new file, a folder, a removal) is changed through a
//! descriptor of its folder, by one name, never by a path the kernel could resolve again: a
//! folder swapped for a link between two calls is not followed either. Walks (a removal of a
//! tree, an archive) follow no link at all.
//!
//! Files and folders made here belong to the workspace's user (uid and gid), mode 0644 and 0755,
//! as a container's own files are (the workspace's root, 0700, keeps them private). An upload is
//! written to a hidden temporary name beside its file and renamed over it when complete, so a
//! failure (a full workspace, a client gone) leaves no partial file.
//!
//! Everything here blocks: call it off the async threads ([`stream`] has the async side).

pub mod path;
pub mod stream;
pub mod tar;

use std::ffi::{CStr, OsStr};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

pub use path::{BadPath, WsPath};

/// Mode of the files written here.
pub const FILE_MODE: u32 = 0o644;
/// Mode of the folders made here.
pub const DIR_MODE: u32 = 0o755;
/// Prefix of uploads under way (hidden; removed when they fail).
pub const UPLOAD_PREFIX: &str = ".zoe-upload-";

/// Why a file operation is refused or failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileError {
    /// The path's text is not a workspace path (`..`, `.`, a hidden `/`...).
    InvalidPath(String),
    /// The path leads out of the workspace (through a symbolic link).
    Outside(String),
    /// Nothing at this path.
    NotFound(String),
    /// The path is of the wrong kind for this (a folder to write over, a file to list, a
    /// folder not empty, a link to write through, a pipe...).
    Conflict(String),
    /// The workspace has no room for this (its quota, or its disk).
    Full(String),
    /// The upload's body was cut short (the client went away or sent less than it said).
    Incomplete(String),
    /// Anything else (an I/O error): the master's fault or the host's.
    Io(String),
}

impl FileError {
    fn io(what: &str, path: &WsPath, e: Errno) -> FileError {
        match e {
            Errno::XDEV | Errno::LOOP => FileError::Outside(format!(
                "{path} leads out of the workspace (a symbolic link to somewhere else); it is not followed"
            )),
            Errno::NOENT => FileError::NotFound(format!("no such file or folder in the workspace: {path}")),
            Errno::NOTDIR => FileError::NotFound(format!(
                "no such file or folder in the workspace: {path} (a name on the way is a file)"
            )),
            Errno::ISDIR => FileError::Conflict(format!("{path} is a folder")),
            Errno::NOTEMPTY | Errno::EXIST => {
                FileError::Conflict(format!("{path} is a folder that is not empty (remove it with recursive=true)"))
            }
            Errno::NOSPC | Errno::DQUOT | Errno::FBIG => {
                FileError::Full(format!("the workspace is full: no room to write {path}"))
            }
            Errno::NXIO | Errno::ACCESS | Errno::PERM => {
                FileError::Conflict(format!("{path} cannot be {what}: it is not a regular file or folder"))
            }
            e => FileError::Io(format!("cannot {what} {path}: {}", io::Error::from(e))),
        }
    }
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (FileError::InvalidPath(m)
        | FileError::Outside(m)
        | FileError::NotFound(m)
        | FileError::Conflict(m)
        | FileError::Full(m)
        | FileError::Incomplete(m)
        | FileError::Io(m)) = self;
        f.write_str(m)
    }
}

impl From<FileError> for crate::error::ApiError {
    fn from(e: FileError) -> Self {
        use crate::error::HttpCode;
        let code = match &e {
            FileError::InvalidPath(_) => HttpCode::InvalidPath,
            FileError::Outside(_) => HttpCode::OutsideWorkspace,
            FileError::NotFound(_) => HttpCode::NoSuchFile,
            FileError::Conflict(_) => HttpCode::PathConflict,
            FileError::Full(_) => HttpCode::WorkspaceFull,
            FileError::Incomplete(_) => HttpCode::UploadIncomplete,
            FileError::Io(m) => {
                tracing::error!(error = %m, "workspace file operation failed");
                HttpCode::Internal
            }
        };
        crate::error::ApiError::new(code, e.to_string())
    }
}

impl From<BadPath> for FileError {
    fn from(e: BadPath) -> Self {
        FileError::InvalidPath(e.0)
    }
}

/// The kind of an entry, as listings show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = FileKind)]
pub enum Kind {
    File,
    Dir,
    /// A symbolic link (never followed by listings); or a pipe or socket a container made.
    Link,
    Other,
}

/// One entry of a folder (also what `zoe ws` reads).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Entry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Bytes (of a link: of its target's path).
    pub size: u64,
    /// Last modification, RFC 3339 in UTC.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub mtime: time::OffsetDateTime,
}

/// What a path holds, opened for reading.
pub enum Opened {
    /// A regular file, with its size and modification time.
    File { file: std::fs::File, size: u64, mtime: time::OffsetDateTime },
    /// A folder.
    Dir(OwnedFd),
}

/// One user's workspace: its root folder, opened, and the owner of what is written there.
pub struct Workspace {
    root: OwnedFd,
    uid: u32,
}

const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);
/// One name, never through a link.
pub(crate) const EXACT: ResolveFlags = BENEATH.union(ResolveFlags::NO_SYMLINKS);

impl Workspace {
    /// Opens the workspace folder `root` (which must be a folder, not a link) whose files
    /// belong to `uid` (and the group of the same number).
    pub fn open(root: &Path, uid: u32) -> io::Result<Workspace> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let root = rustix::fs::open(root, flags, Mode::empty())?;
        Ok(Workspace { root, uid })
    }

    /// Resolves `path` beneath the root with `flags`; retried when the kernel saw a rename race.
    fn resolve(&self, path: &WsPath, flags: OFlags, what: &str) -> Result<OwnedFd, FileError> {
        let rel = path.relative();
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(&self.root, rel.as_str(), flags | OFlags::CLOEXEC, Mode::empty(), BENEATH) {
                Err(Errno::AGAIN) if tries < 8 => tries += 1,
                other => return other.map_err(|e| FileError::io(what, path, e)),
            }
        }
    }

    /// The folder holding `path`, opened, and the last name of `path` (refused for the root).
    fn parent_of(&self, path: &WsPath, what: &str) -> Result<(OwnedFd, String), FileError> {
        let name = path
            .name()
            .ok_or_else(|| FileError::Conflict(format!("the workspace's root folder itself cannot be {what}")))?;
        let dir = self.resolve(&path.parent(), OFlags::RDONLY | OFlags::DIRECTORY, what)?;
        Ok((dir, name.to_string()))
    }

    /// Opens what is at `path` for reading: a regular file or a folder (links inside the
    /// workspace are followed, others refused; pipes and sockets refused).
    pub fn open_read(&self, path: &WsPath) -> Result<Opened, FileError> {
        // Non-blocking: a pipe a container made opens at once (and is refused below).
        let fd = self.resolve(path, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY, "read")?;
        let st = rustix::fs::fstat(&fd).map_err(|e| FileError::io("read", path, e))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {
                let size = u64::try_from(st.st_size).unwrap_or(0);
                Ok(Opened::File { file: std::fs::File::from(fd), size, mtime: time_of(st.st_mtime) })
            }
            FileType::Directory => Ok(Opened::Dir(fd)),
            _ => Err(FileError::Conflict(format!("{path} is not a regular file or folder (a pipe or a socket)"))),
        }
    }

    /// The entries of the folder at `path`, sorted by name (links shown, not followed).
    pub fn list(&self, path: &WsPath) -> Result<Vec<Entry>, FileError> {
        match self.open_read(path)? {
            Opened::Dir(fd) => list_fd(&fd, path),
            Opened::File { .. } => Err(FileError::Conflict(format!("{path} is a file, not a folder"))),
        }
    }

    /// What is at `path` itself (a link is described, not followed).
    pub fn stat(&self, path: &WsPath) -> Result<Entry, FileError> {
        let Some(name) = path.name() else {
            let st = rustix::fs::fstat(&self.root).map_err(|e| FileError::io("read", path, e))?;
            return Ok(entry_of("", &st));
        };
        let (dir, _) = self.parent_of(path, "read")?;
        let st =
            rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| FileError::io("read", path, e))?;
        Ok(entry_of(name, &st))
    }

    /// Starts writing the file `path` (replacing a file there when done), making its missing
    /// folders; at most `limit` bytes may be written. Refused when `path` is a folder or a
    /// link (a link is never written through: it could lead out).
    pub fn create(&self, path: &WsPath, limit: u64) -> Result<Upload, FileError> {
        let name = path.name().ok_or_else(|| FileError::Conflict("the workspace's root is a folder".into()))?;
        let dir = self.make_dirs(&path.parent())?;
        self.check_target(&dir, name, path)?;
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        for _ in 0..16 {
            let temp = format!(
                "{UPLOAD_PREFIX}{}-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed),
                time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_007
            );
            match rustix::fs::openat2(&dir, temp.as_str(), flags, Mode::from_raw_mode(0o600), EXACT) {
                Ok(fd) => {
                    let upload = Upload {
                        file: Some(std::fs::File::from(fd)),
                        dir,
                        temp,
                        name: name.to_string(),
                        path: path.clone(),
                        written: 0,
                        limit,
                    };
                    let file = upload.file.as_ref().ok_or_else(|| FileError::Io("no file".into()))?;
                    own(file, self.uid, FILE_MODE).map_err(|e| FileError::io("write", path, e))?;
                    return Ok(upload);
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(FileError::io("write", path, e)),
            }
        }
        Err(FileError::Io(format!("cannot find a temporary name to write {path}")))
    }

    /// Refuses to write over a folder or a link.
    fn check_target(&self, dir: &OwnedFd, name: &str, path: &WsPath) -> Result<(), FileError> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(FileError::io("write", path, e)),
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => Ok(()),
                FileType::Directory => Err(FileError::Conflict(format!("{path} is a folder"))),
                FileType::Symlink => {
                    // Where does it lead? Out: say so; inside: still not written through.
                    match rustix::fs::openat2(
                        &self.root,
                        path.relative().as_str(),
                        OFlags::PATH,
                        Mode::empty(),
                        BENEATH,
                    ) {
                        Err(Errno::XDEV) | Err(Errno::LOOP) => Err(FileError::io("write", path, Errno::XDEV)),
                        _ => Err(FileError::Conflict(format!(
                            "{path} is a symbolic link; links are not written through: remove it first"
                        ))),
                    }
                }
                _ => Err(FileError::Conflict(format!("{path} is not a regular file (a pipe or a socket)"))),
            },
        }
    }

    /// Opens the folder `path`, making it and its missing parents (owned by the user).
    pub fn make_dirs(&self, path: &WsPath) -> Result<OwnedFd, FileError> {
        let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY;
        let mut current = rustix::fs::openat(&self.root, ".", dir_flags | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| FileError::io("open", path, e))?;
        let mut so_far = WsPath::root();
        for name in path.names() {
            so_far = so_far.join(name)?;
            // Through the root (links inside are followed, outside refused)...
            match self.resolve(&so_far, dir_flags, "make") {
                Ok(fd) => current = fd,
                Err(FileError::NotFound(_)) => {
                    // ...or made here, by its name in the folder just opened, and opened by that
                    // name without following anything (it may have been swapped for a link).
                    match rustix::fs::mkdirat(&current, name.as_str(), Mode::from_raw_mode(0o700)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(FileError::io("make", &so_far, e)),
                    }
                    let fd =
                        rustix::fs::openat2(&current, name.as_str(), dir_flags | OFlags::CLOEXEC, Mode::empty(), EXACT)
                            .map_err(|e| match e {
                                Errno::NOTDIR => FileError::Conflict(format!("{so_far} is a file, not a folder")),
                                e => FileError::io("make", &so_far, e),
                            })?;
                    own(&fd, self.uid, DIR_MODE).map_err(|e| FileError::io("make", &so_far, e))?;
                    current = fd;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(current)
    }

    /// Removes the file, link or empty folder at `path`; with `recursive`, a folder and
    /// everything in it (links removed, never followed).
    pub fn remove(&self, path: &WsPath, recursive: bool) -> Result<(), FileError> {
        let (dir, name) = self.parent_of(path, "removed")?;
        let st = rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| FileError::io("remove", path, e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty())
                .map_err(|e| FileError::io("remove", path, e));
        }
        if recursive {
            let sub = rustix::fs::openat2(
                &dir,
                name.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                EXACT,
            )
            .map_err(|e| FileError::io("remove", path, e))?;
            empty_tree(sub, path)?;
        }
        rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::REMOVEDIR).map_err(|e| FileError::io("remove", path, e))
    }

    /// Writes the folder at `path` as a tar archive to `out` (see [`tar`]); links are stored as
    /// links, never followed.
    pub fn tar(&self, path: &WsPath, out: &mut dyn Write) -> Result<(), FileError> {
        let fd = match self.open_read(path)? {
            Opened::Dir(fd) => fd,
            Opened::File { .. } => return Err(FileError::Conflict(format!("{path} is a file, not a folder"))),
        };
        let top = path.name().unwrap_or("workspace").to_string();
        tar::write_tree(fd, &top, out).map_err(|e| FileError::Io(format!("cannot archive {path}: {e}")))
    }
}

/// Gives what `fd` is to `uid` (and its group) with `mode`.
fn own(fd: impl AsFd, uid: u32, mode: u32) -> Result<(), Errno> {
    rustix::fs::fchown(&fd, Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(uid)))?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
}

/// A time of the file system, in UTC.
fn time_of(secs: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn entry_of(name: &str, st: &rustix::fs::Stat) -> Entry {
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Kind::File,
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Link,
        _ => Kind::Other,
    };
    Entry { name: name.to_string(), kind, size: u64::try_from(st.st_size).unwrap_or(0), mtime: time_of(st.st_mtime) }
}

/// The names in the folder `fd` (without `.` and `..`).
pub(crate) fn names_in(fd: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(fd)? {
        let entry = entry?;
        let name: &CStr = entry.file_name();
        let bytes = name.to_bytes();
        if bytes != b"." && bytes != b".." {
            names.push(bytes.to_vec());
        }
    }
    names.sort();
    Ok(names)
}

fn list_fd(fd: &OwnedFd, path: &WsPath) -> Result<Vec<Entry>, FileError> {
    let names = names_in(fd).map_err(|e| FileError::Io(format!("cannot list {path}: {e}")))?;
    let mut out = Vec::with_capacity(names.len());
    for raw in names {
        let os = OsStr::from_bytes(&raw);
        match rustix::fs::statat(fd, os, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => out.push(entry_of(&String::from_utf8_lossy(&raw), &st)),
            // Gone meanwhile (a container removed it).
            Err(Errno::NOENT) => {}
            Err(e) => return Err(FileError::io("list", path, e)),
        }
    }
    Ok(out)
}

/// Empties the folder `top` (a descriptor of it), depth first, following no link.
fn empty_tree(top: OwnedFd, path: &WsPath) -> Result<(), FileError> {
    /// A folder being emptied: the subfolders left, and the one being emptied below it.
    struct Level {
        dir: OwnedFd,
        todo: Vec<Vec<u8>>,
        current: Option<Vec<u8>>,
    }
    let fail = |e: Errno| FileError::io("remove", path, e);
    // Removes the folder's files and links; its subfolders' names are left to do.
    let level = |dir: OwnedFd| -> Result<Level, FileError> {
        let mut todo = Vec::new();
        for raw in names_in(&dir).map_err(|e| FileError::Io(format!("cannot remove {path}: {e}")))? {
            match rustix::fs::unlinkat(&dir, OsStr::from_bytes(&raw), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(Errno::ISDIR) => todo.push(raw),
                Err(e) => return Err(fail(e)),
            }
        }
        Ok(Level { dir, todo, current: None })
    };
    let mut stack = vec![level(top)?];
    while let Some(top) = stack.last_mut() {
        if let Some(raw) = top.todo.pop() {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
            match rustix::fs::openat2(&top.dir, OsStr::from_bytes(&raw), flags, Mode::empty(), EXACT) {
                Ok(sub) => {
                    top.current = Some(raw);
                    let next = level(sub)?;
                    stack.push(next);
                }
                Err(Errno::NOENT) => {}
                Err(e) => return Err(fail(e)),
            }
        } else {
            stack.pop();
            if let Some(parent) = stack.last_mut() {
                if let Some(raw) = parent.current.take() {
                    match rustix::fs::unlinkat(&parent.dir, OsStr::from_bytes(&raw), AtFlags::REMOVEDIR) {
                        Ok(()) | Err(Errno::NOENT) => {}
                        Err(e) => return Err(fail(e)),
                    }
                }
            }
        }
    }
    Ok(())
}

/// A file being written: complete it with [`Upload::commit`]; dropped before, it is removed.
pub struct Upload {
    file: Option<std::fs::File>,
    dir: OwnedFd,
    temp: String,
    name: String,
    path: WsPath,
    written: u64,
    limit: u64,
}

impl Upload {
    /// Appends `bytes`; refused past the limit or when the disk is full (the upload is then
    /// dead: drop it).
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), FileError> {
        self.write_parts(&mut [io::IoSlice::new(bytes)])
    }

    /// Appends `parts` in order, as [`Upload::write`] does their concatenation: the network's
    /// chunks go to the disk as they came, one `writev` for up to 1,024 of them, without being
    /// copied together first.
    pub fn write_parts(&mut self, parts: &mut [io::IoSlice<'_>]) -> Result<(), FileError> {
        let mut left: usize = parts.iter().map(|p| p.len()).sum();
        self.written += left as u64;
        if self.written > self.limit {
            return Err(self.full());
        }
        let file = self.file.as_mut().ok_or_else(|| FileError::Io("the upload is closed".into()))?;
        let mut parts = parts;
        while left > 0 {
            let wrote = match file.write_vectored(parts) {
                Ok(0) => Err(io::Error::from(io::ErrorKind::WriteZero)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
                other => other,
            };
            match wrote {
                Ok(n) => {
                    left -= n;
                    io::IoSlice::advance_slices(&mut parts, n)
                }
                Err(e) => {
                    return Err(match e.raw_os_error().map(Errno::from_raw_os_error) {
                        Some(errno) => FileError::io("write", &self.path, errno),
                        None => FileError::Io(format!("cannot write {}: {e}", self.path)),
                    })
                }
            }
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn full(&self) -> FileError {
        FileError::Full(format!(
            "the workspace is full: {} does not fit in the {} bytes left of its quota",
            self.path, self.limit
        ))
    }

    /// Puts the written file in its place (replacing a file of that name).
    pub fn commit(mut self) -> Result<u64, FileError> {
        // Closed: ext4 reserves the blocks of each write at once, so a full disk showed there.
        self.file.take();
        rustix::fs::renameat(&self.dir, self.temp.as_str(), &self.dir, self.name.as_str())
            .map_err(|e| FileError::io("write", &self.path, e))?;
        self.temp.clear();
        Ok(self.written)
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.file.take();
        if !self.temp.is_empty() {
            let _ = rustix::fs::unlinkat(&self.dir, self.temp.as_str(), AtFlags::empty());
        }
    }
}

/// Reads up to `buf.len()` bytes at `offset` (fewer only at the end of the file).
pub fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match std::os::unix::fs::FileExt::read_at(file, &mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests;
