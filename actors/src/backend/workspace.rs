//! Users' workspaces on the host: one directory per user, `<base>/<deployment>/<user>`, mounted
//! read-write at `/mnt/workspace` in each of the user's containers.
//!
//! A workspace belongs to its user's uid and to nobody else: it is created owned by that uid with
//! mode 0700, and since containers run as that uid with no capabilities, nothing written in it
//! can be owned by root, be setuid-root or be a device. A workspace left owned by root (by a
//! Zoe that still ran containers as root) is adopted: every file is given to the uid, set-id bits
//! are cleared and device, pipe and socket files are removed, without following any symbolic
//! link. A workspace owned by any other uid (a deleted user's, or someone's on the host) is
//! refused: an administrator must decide what happens to it.
//!
//! **Quota.** On one engine ([`prepare`]) a workspace is an ext4 file system image,
//! `<base>/<deployment>/<user>.ext4` (sparse: it takes on disk what is written in it), of the
//! quota's size, loop-mounted (`nosuid,nodev`) at the workspace's folder by the master, which
//! runs as root to drive Docker anyway. Writing past the quota fails in the container with "No
//! space left on device". The image is made at the first start (a folder that already holds
//! files is copied into it), mounted again when it is not (after a reboot), grown when the quota
//! was raised (online: `resize2fs`), and never mounted twice: a mount at the folder is reused,
//! and an image attached to a loop device that is mounted elsewhere is refused. A lowered quota
//! does not shrink an image (ext4 shrinks only unmounted); [`usage`] then shows it over quota.
//! On shared storage (a Swarm, [`prepare_folder`]) the storage must enforce the quota; Zoe
//! measures the use ([`usage`]) and refuses new executions of a user over it.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{lchown, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::description::units::show_bytes;
use crate::protocol::Workspace;
pub use crate::protocol::{Quotas, WorkspaceUse};

/// The smallest quota: ext4 needs some room for itself.
pub const MIN_QUOTA: u64 = 16 << 20;
/// Longest any one command on images may take (mkfs, mount, resize2fs, a copy).
const COMMAND_TIMEOUT: &str = "300";
/// How far [`usage`] walks a workspace that is not a file system of its own.
const WALK_MAX_ENTRIES: usize = 1_000_000;
const WALK_MAX_TIME: Duration = Duration::from_secs(10);

/// Makes sure the workspace exists and belongs to its uid alone (mode 0700) as a file system
/// image of its quota mounted at its folder (see the module documentation), and returns its
/// Docker bind (`host:container:rw`). Blocking: call it off the async threads.
pub fn prepare(ws: &Workspace) -> Result<String, String> {
    let host = absolute(&ws.host)?;
    let lock = path_lock(&host);
    let _held = crate::backend::client::lock(&lock);
    if ws.quota < MIN_QUOTA {
        return Err(format!(
            "the workspace quota {} is below the smallest, {}",
            show_bytes(ws.quota),
            show_bytes(MIN_QUOTA)
        ));
    }
    let image = image_of(&host)?;
    match mount_source(&host).map_err(|e| format!("cannot read the mount table: {e}"))? {
        Some(_) => {}
        None => {
            let check = Workspace { host: host.clone(), ..ws.clone() };
            prepare_folder(&check)?;
            if !image.exists() {
                create_image(&image, ws.quota, ws.uid)?;
                if let Err(e) = migrate(&host, &image) {
                    let _ = fs::remove_file(&image);
                    return Err(e);
                }
            }
            attach_guard(&image)?;
            run("mount", &[os("-o"), os("loop,nosuid,nodev"), image.as_os_str(), host.as_os_str()])
                .map_err(|e| format!("cannot mount the workspace image {}: {e}{}", image.display(), root_hint()))?;
            tracing::info!(workspace = %host.display(), quota = ws.quota, "workspace image mounted");
            let lost = host.join("lost+found");
            if fs::symlink_metadata(&lost).is_ok_and(|m| m.uid() == 0) {
                let _ = fs::remove_dir(&lost);
            }
        }
    }
    // The file system's own root: the user's, private.
    let check = Workspace { host: host.clone(), ..ws.clone() };
    prepare_folder(&check)?;
    grow(&image, &host, ws.quota)?;
    bind(&host, &ws.container)
}

/// Makes sure the workspace folder exists and belongs to its uid alone (mode 0700), with no
/// quota of Zoe's (shared storage enforces its own), and returns its Docker bind
/// (`host:container:rw`). Blocking: call it off the async threads.
pub fn prepare_folder(ws: &Workspace) -> Result<String, String> {
    let host = absolute(&ws.host)?;
    if let Some(parent) = host.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    match fs::create_dir(&host) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create the workspace {}: {e}", host.display())),
    }
    let meta = fs::symlink_metadata(&host).map_err(|e| format!("cannot read the workspace {}: {e}", host.display()))?;
    if !meta.file_type().is_dir() {
        return Err(format!(
            "the workspace {} is not a directory (a symbolic link or a file); an administrator must move it away",
            host.display()
        ));
    }
    match meta.uid() {
        uid if uid == ws.uid => {}
        0 => adopt(&host, ws.uid).map_err(|e| {
            format!("cannot give the workspace {} to uid {}: {e}{}", host.display(), ws.uid, needs_root(&e))
        })?,
        other => {
            return Err(format!(
                "the workspace {} belongs to uid {other}, not to this user's uid {}: it may be a deleted user's; \
                 an administrator must move it away or give it to uid {} (chown -R)",
                host.display(),
                ws.uid,
                ws.uid
            ))
        }
    }
    if meta.permissions().mode() & 0o7777 != 0o700 || meta.uid() != ws.uid {
        fs::set_permissions(&host, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make the workspace {} private: {e}", host.display()))?;
    }
    bind(&host, &ws.container)
}

/// How much of its quota the workspace at `host` uses. A file system of its own (Zoe's image,
/// or a per-user volume of shared storage) is asked (`statvfs`); a plain folder is walked
/// (allocated blocks, links not followed, at most a million entries or ten seconds: a lower
/// bound beyond). A workspace that does not exist yet uses nothing. Blocking.
pub fn usage(host: &Path, quota: u64) -> io::Result<WorkspaceUse> {
    let host = std::path::absolute(host)?;
    match fs::symlink_metadata(&host) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(io::Error::other(format!("{} is not a directory", host.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(WorkspaceUse { used: 0, quota, available: quota }),
        Err(e) => return Err(e),
    }
    if mount_source(&host)?.is_some() {
        let fs = statvfs(&host)?;
        let used = fs.total.saturating_sub(fs.free);
        return Ok(WorkspaceUse { used, quota, available: fs.available.min(quota.saturating_sub(used)) });
    }
    let used = walk_size(&host);
    Ok(WorkspaceUse { used, quota, available: quota.saturating_sub(used) })
}

/// How many more bytes can be written in the workspace at `host` (see [`usage`]). Blocking.
pub fn room_left(host: &Path, quota: u64) -> io::Result<u64> {
    usage(host, quota).map(|u| u.available)
}

/// The file system image of the workspace folder `host`: `<user>.ext4` beside it.
pub fn image_of(host: &Path) -> Result<PathBuf, String> {
    let name = host.file_name().ok_or_else(|| format!("the workspace path {} has no name", host.display()))?;
    let mut file = name.to_os_string();
    file.push(".ext4");
    Ok(host.with_file_name(file))
}

fn bind(host: &Path, container: &str) -> Result<String, String> {
    let host_str = host.to_str().ok_or_else(|| format!("the workspace path {} is not UTF-8", host.display()))?;
    if host_str.contains(':') || container.contains(':') {
        return Err(format!("the workspace path {host_str} or {container} contains a ':'"));
    }
    Ok(format!("{host_str}:{container}:rw"))
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("bad workspace path {}: {e}", path.display()))
}

fn needs_root(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::PermissionDenied {
        " (the master must run as root, or with CAP_CHOWN, to give workspaces to their users)"
    } else {
        ""
    }
}

fn root_hint() -> &'static str {
    " (the master must run as root, with loop devices, mount and e2fsprogs, to give workspaces their quota)"
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// One lock per workspace: two starts of a user never mount (or grow) at once.
fn path_lock(host: &Path) -> Arc<Mutex<()>> {
    static LOCKS: Mutex<Option<HashMap<PathBuf, Arc<Mutex<()>>>>> = Mutex::new(None);
    let mut locks = crate::backend::client::lock(&LOCKS);
    locks.get_or_insert_with(HashMap::new).entry(host.to_path_buf()).or_default().clone()
}

/// Runs a command under `timeout`; its error output when it fails.
fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<String, String> {
    run_allowing(program, args, 0)
}

/// As [`run`], with exit codes up to `ok` counting as success (e2fsck's 1: errors corrected).
fn run_allowing(program: &str, args: &[&std::ffi::OsStr], ok: i32) -> Result<String, String> {
    let out = Command::new("timeout")
        .args(["-k", "5", COMMAND_TIMEOUT, program])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.code().is_some_and(|c| c <= ok) {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!("{program} failed ({}): {}", out.status, err.trim()))
    }
}

/// A new sparse image of `size` bytes, an ext4 file system whose root belongs to `uid` (no
/// blocks reserved for root: the whole quota is the user's). Readable by root only.
fn create_image(image: &Path, size: u64, uid: u32) -> Result<(), String> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(image)
        .map_err(|e| format!("cannot create the workspace image {}: {e}", image.display()))?;
    let made = file
        .set_len(size)
        .and_then(|()| file.set_permissions(fs::Permissions::from_mode(0o600)))
        .map_err(|e| format!("cannot size the workspace image {}: {e}", image.display()))
        .and_then(|()| {
            let owner = format!("root_owner={uid}:{uid},lazy_itable_init=1,lazy_journal_init=1,nodiscard");
            run("mkfs.ext4", &[os("-q"), os("-F"), os("-m"), os("0"), os("-E"), os(&owner), image.as_os_str()])
                .map(|_| ())
                .map_err(|e| format!("cannot make the workspace file system: {e}{}", root_hint()))
        });
    if made.is_err() {
        let _ = fs::remove_file(image);
    }
    made?;
    tracing::info!(image = %image.display(), size, "workspace image created");
    Ok(())
}

/// Copies what a workspace folder already holds (one of an older Zoe, or files an administrator
/// put there before its first start) into its new image, then empties the folder. Nothing is
/// removed unless the whole copy succeeded; a folder holding more than the quota stays as it is.
fn migrate(host: &Path, image: &Path) -> Result<(), String> {
    let mut entries = fs::read_dir(host).map_err(|e| format!("cannot read the workspace {}: {e}", host.display()))?;
    if entries.next().is_none() {
        return Ok(());
    }
    let name = host.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let staging = host.with_file_name(format!(".{name}.moving"));
    let _ = run("umount", &[staging.as_os_str()]);
    let _ = fs::remove_dir(&staging);
    fs::create_dir(&staging).map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    let copied = run("mount", &[os("-o"), os("loop,nosuid,nodev"), image.as_os_str(), staging.as_os_str()])
        .and_then(|_| {
            let lost = staging.join("lost+found");
            let _ = fs::remove_dir(&lost);
            let mut from = host.as_os_str().to_os_string();
            from.push("/.");
            run("cp", &[os("-a"), &from, staging.as_os_str()])
        })
        .map_err(|e| {
            format!(
                "cannot move the files of the workspace {} into its image of the quota's size: {e}; if it holds \
                 more than the quota, an administrator must make room or raise the quota",
                host.display()
            )
        });
    let unmounted = run("umount", &[staging.as_os_str()]);
    let _ = fs::remove_dir(&staging);
    copied?;
    unmounted.map_err(|e| format!("cannot unmount {}: {e}", staging.display()))?;
    for entry in fs::read_dir(host).map_err(|e| format!("cannot read {}: {e}", host.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let gone = match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
        gone.map_err(|e| format!("cannot remove {} after copying it into the image: {e}", path.display()))?;
    }
    tracing::info!(workspace = %host.display(), "workspace files moved into its image");
    Ok(())
}

/// Refuses an image that a loop device already holds while that device is mounted (somewhere
/// else: a mount at the workspace itself was seen before); detaches such a device otherwise (a
/// leftover of an interrupted mount).
fn attach_guard(image: &Path) -> Result<(), String> {
    for dev in loops_of(image) {
        let source = dev.to_string_lossy().into_owned();
        if mounted_sources().map_err(|e| e.to_string())?.contains(&source) {
            return Err(format!(
                "the workspace image {} is mounted elsewhere (through {source}); it is never mounted twice: an \
                 administrator must unmount it",
                image.display()
            ));
        }
        run("losetup", &[os("-d"), dev.as_os_str()])
            .map_err(|e| format!("cannot release {source}, which holds the image {}: {e}", image.display()))?;
    }
    Ok(())
}

/// Grows the image mounted at `host` to `quota` when it is smaller (a raised quota): online
/// where the kernel lets the master (it needs CAP_SYS_RESOURCE), else unmounted, when none of
/// the user's containers holds it; otherwise it stays as it is until such a start.
fn grow(image: &Path, host: &Path, quota: u64) -> Result<(), String> {
    let Ok(meta) = fs::metadata(image) else { return Ok(()) };
    let old = meta.len();
    if old >= quota {
        return Ok(());
    }
    let Some(dev) = loops_of(image).into_iter().next() else {
        return Err(format!("the workspace image {} is not attached to a loop device", image.display()));
    };
    let failed = |e: String| format!("cannot grow the workspace file system of {}: {e}", host.display());
    let resize_file = |size: u64| {
        fs::OpenOptions::new()
            .write(true)
            .open(image)
            .and_then(|f| f.set_len(size))
            .map_err(|e| format!("cannot size the workspace image {}: {e}", image.display()))
    };
    resize_file(quota)?;
    let online = run("losetup", &[os("-c"), dev.as_os_str()]).and_then(|_| run("resize2fs", &[dev.as_os_str()]));
    let Err(refused) = online else {
        tracing::info!(workspace = %host.display(), quota, "workspace image grown online");
        return Ok(());
    };
    // Unmounted: possible only when nothing else holds the file system (a running container of
    // the user keeps it, and its loop device, alive).
    run("umount", &[host.as_os_str()]).map_err(failed)?;
    if !loops_of(image).is_empty() {
        let remounted = run("mount", &[os("-o"), os("nosuid,nodev"), dev.as_os_str(), host.as_os_str()]);
        let _ = resize_file(old).and_then(|()| run("losetup", &[os("-c"), dev.as_os_str()]));
        remounted.map_err(failed)?;
        tracing::info!(
            workspace = %host.display(),
            quota,
            reason = refused,
            "workspace image in use: grown at a start when none of its user's containers runs"
        );
        return Ok(());
    }
    let grown = run_allowing("e2fsck", &[os("-f"), os("-p"), image.as_os_str()], 1)
        .and_then(|_| run("resize2fs", &[image.as_os_str()]));
    let mounted = run("mount", &[os("-o"), os("loop,nosuid,nodev"), image.as_os_str(), host.as_os_str()]);
    grown.map_err(failed)?;
    mounted.map_err(|e| format!("cannot mount the workspace image {} again: {e}", image.display()))?;
    tracing::info!(workspace = %host.display(), quota, "workspace image grown");
    Ok(())
}

/// The loop devices whose backing file is `image`.
fn loops_of(image: &Path) -> Vec<PathBuf> {
    let want = fs::canonicalize(image).unwrap_or_else(|_| image.to_path_buf());
    let Ok(entries) = fs::read_dir("/sys/block") else { return Vec::new() };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("loop") {
            continue;
        }
        let Ok(backing) = fs::read_to_string(entry.path().join("loop/backing_file")) else { continue };
        if Path::new(backing.trim_end()) == want {
            out.push(Path::new("/dev").join(name));
        }
    }
    out
}

/// The source of the mount at exactly `dir`, if something is mounted there.
fn mount_source(dir: &Path) -> io::Result<Option<String>> {
    let table = fs::read_to_string("/proc/self/mountinfo")?;
    let want = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    Ok(table.lines().rev().find_map(|line| {
        let (point, source) = mountinfo_fields(line)?;
        (Path::new(&point) == want).then_some(source)
    }))
}

/// The sources of every mount.
fn mounted_sources() -> io::Result<Vec<String>> {
    let table = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(table.lines().filter_map(mountinfo_fields).map(|(_, source)| source).collect())
}

/// The mount point and the source of a line of `/proc/self/mountinfo` (`\040` and the like
/// decoded).
fn mountinfo_fields(line: &str) -> Option<(String, String)> {
    let mut fields = line.split(' ');
    let point = fields.nth(4)?;
    let mut rest = fields.skip_while(|f| *f != "-");
    rest.next()?;
    let _fstype = rest.next()?;
    let source = rest.next()?;
    Some((unescape(point), unescape(source)))
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A file system's figures, in bytes.
struct FsFigures {
    total: u64,
    free: u64,
    available: u64,
}

fn statvfs(path: &Path) -> io::Result<FsFigures> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` points to writable memory of the right
    // type; statvfs fills it completely when it returns 0.
    let r = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so `st` is initialised.
    let st = unsafe { st.assume_init() };
    let unit = st.f_frsize;
    Ok(FsFigures {
        total: st.f_blocks.saturating_mul(unit),
        free: st.f_bfree.saturating_mul(unit),
        available: st.f_bavail.saturating_mul(unit),
    })
}

/// The bytes allocated to the files under `dir` (links not followed, other file systems not
/// entered), bounded in entries and time.
fn walk_size(dir: &Path) -> u64 {
    let started = Instant::now();
    let device = fs::symlink_metadata(dir).map(|m| m.dev()).unwrap_or(0);
    let mut stack = vec![dir.to_path_buf()];
    let (mut total, mut seen) = (0u64, 0usize);
    while let Some(path) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        total = total.saturating_add(meta.blocks().saturating_mul(512));
        seen += 1;
        if seen >= WALK_MAX_ENTRIES || started.elapsed() > WALK_MAX_TIME {
            tracing::warn!(workspace = %dir.display(), seen, "workspace too large to measure whole: a lower bound");
            break;
        }
        if meta.is_dir() && meta.dev() == device {
            if let Ok(entries) = fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
    total
}

/// Gives a root-owned tree to `uid`: every directory and file is chowned (symbolic links
/// themselves, never their targets), set-id bits are cleared, and device, pipe and socket files
/// are removed. Iterative, so a deep tree cannot overflow the stack.
fn adopt(root: &Path, uid: u32) -> io::Result<()> {
    tracing::info!(workspace = %root.display(), uid, "giving a root-owned workspace to its user");
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path)?;
        let kind = meta.file_type();
        if kind.is_block_device() || kind.is_char_device() || kind.is_fifo() || kind.is_socket() {
            fs::remove_file(&path)?;
            continue;
        }
        lchown(&path, Some(uid), Some(uid))?;
        if kind.is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        if mode & 0o6000 != 0 {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o1777))?;
        }
        if kind.is_dir() {
            for entry in fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fresh folder for one test, removed when the test ends (on a failure, as far as it can
    /// be). These tests chown files, which needs root (as the master does); the suite runs as
    /// root.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let root = fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
            assert!(root, "the workspace tests need root: they give directories to other uids");
            Scratch(crate::testing::tempdir(&format!("ws-{tag}")))
        }
    }

    impl std::ops::Deref for Scratch {
        type Target = Path;

        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let removed = fs::remove_dir_all(&self.0);
            if !std::thread::panicking() {
                removed.unwrap();
            }
        }
    }

    #[test]
    fn a_new_workspace_is_private_to_its_uid() {
        let d = Scratch::new("new");
        let ws = Workspace { host: d.join("dev/alice"), container: "/mnt/workspace".into(), uid: 200_001, quota: 0 };
        let bind = prepare_folder(&ws).unwrap();
        assert_eq!(bind, format!("{}:/mnt/workspace:rw", d.join("dev/alice").display()));
        let m = fs::metadata(d.join("dev/alice")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.permissions().mode() & 0o7777), (200_001, 200_001, 0o700));
        // Loosened by hand: made private again.
        fs::set_permissions(d.join("dev/alice"), fs::Permissions::from_mode(0o777)).unwrap();
        prepare_folder(&ws).unwrap();
        assert_eq!(fs::metadata(d.join("dev/alice")).unwrap().permissions().mode() & 0o7777, 0o700);
    }

    #[test]
    fn a_root_owned_workspace_is_adopted_without_following_links() {
        let d = Scratch::new("adopt");
        let ws_dir = d.join("dev/bob");
        fs::create_dir_all(ws_dir.join("sub")).unwrap();
        let outside = d.join("outside");
        fs::write(&outside, "host file").unwrap();
        fs::write(ws_dir.join("sub/data"), "x").unwrap();
        fs::write(ws_dir.join("sx"), "binary").unwrap();
        fs::set_permissions(ws_dir.join("sx"), fs::Permissions::from_mode(0o4755)).unwrap();
        symlink(&outside, ws_dir.join("link")).unwrap();
        let fifo = ws_dir.join("pipe");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let ws = Workspace { host: ws_dir.clone(), container: "/mnt/workspace".into(), uid: 200_002, quota: 0 };
        prepare_folder(&ws).unwrap();
        for p in [ws_dir.clone(), ws_dir.join("sub"), ws_dir.join("sub/data"), ws_dir.join("sx")] {
            assert_eq!(fs::metadata(&p).unwrap().uid(), 200_002, "{}", p.display());
        }
        assert_eq!(fs::metadata(ws_dir.join("sx")).unwrap().permissions().mode() & 0o7777, 0o755, "set-id cleared");
        assert_eq!(fs::symlink_metadata(ws_dir.join("link")).unwrap().uid(), 200_002, "the link itself");
        assert_eq!(fs::metadata(&outside).unwrap().uid(), 0, "the link's target is untouched");
        assert!(!fifo.exists(), "special files are removed");
    }

    #[test]
    fn someone_elses_workspace_and_links_are_refused() {
        let d = Scratch::new("refuse");
        let ws_dir = d.join("dev/carol");
        fs::create_dir_all(&ws_dir).unwrap();
        lchown(&ws_dir, Some(200_009), Some(200_009)).unwrap();
        let ws = Workspace { host: ws_dir.clone(), container: "/mnt/workspace".into(), uid: 200_003, quota: 0 };
        let e = prepare_folder(&ws).unwrap_err();
        assert!(e.contains("belongs to uid 200009"), "{e}");
        let linked = d.join("dev/dave");
        symlink("/etc", &linked).unwrap();
        let e = prepare_folder(&Workspace { host: linked, container: "/mnt/workspace".into(), uid: 200_004, quota: 0 })
            .unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
        assert_eq!(fs::metadata("/etc").unwrap().uid(), 0);
    }

    fn mounted_at(dir: &Path) -> usize {
        let table = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let dir = fs::canonicalize(dir).unwrap();
        table.lines().filter_map(mountinfo_fields).filter(|(p, _)| Path::new(p) == dir).count()
    }

    fn unmount(dir: &Path) {
        while mounted_at(dir) > 0 {
            run("umount", &[dir.as_os_str()]).unwrap();
        }
    }

    #[test]
    fn a_workspace_is_an_image_of_its_quota_mounted_once_remounted_and_grown() {
        let d = Scratch::new("image");
        let host = d.join("dev/erin");
        // Files put there before the first start are moved into the image.
        fs::create_dir_all(host.join("in")).unwrap();
        fs::write(host.join("in/data.txt"), "input").unwrap();
        lchown(&host, Some(0), Some(0)).unwrap();
        let ws = Workspace { host: host.clone(), container: "/mnt/workspace".into(), uid: 200_005, quota: 32 << 20 };
        let bind = prepare(&ws).unwrap();
        assert_eq!(bind, format!("{}:/mnt/workspace:rw", host.display()));
        assert_eq!(mounted_at(&host), 1);
        assert!(d.join("dev/erin.ext4").is_file());
        assert_eq!(fs::read_to_string(host.join("in/data.txt")).unwrap(), "input");
        assert_eq!(fs::metadata(host.join("in/data.txt")).unwrap().uid(), 200_005, "adopted on the way");
        let m = fs::metadata(&host).unwrap();
        assert_eq!((m.uid(), m.permissions().mode() & 0o7777), (200_005, 0o700));
        assert!(!host.join("lost+found").exists());
        let u = usage(&host, ws.quota).unwrap();
        assert!(u.used < 4 << 20 && u.available > 24 << 20 && u.available <= 32 << 20, "{u:?}");
        // Full: the write stops at the quota.
        let mut f = fs::File::create(host.join("big")).unwrap();
        let chunk = vec![7u8; 1 << 20];
        let err =
            (0..64).find_map(|_| std::io::Write::write_all(&mut f, &chunk).err()).expect("no room past the quota");
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        drop(f);
        let full = usage(&host, ws.quota).unwrap();
        assert!(full.available < 1 << 20 && !full.over_quota(), "{full:?}");
        assert_eq!(room_left(&host, ws.quota).unwrap(), full.available);
        // Prepared again (another start): not mounted twice.
        prepare(&ws).unwrap();
        assert_eq!(mounted_at(&host), 1);
        // After a reboot (unmounted): mounted again, with what it held.
        unmount(&host);
        assert!(usage(&host, ws.quota).unwrap().used < 64 << 10, "the empty folder beneath");
        prepare(&ws).unwrap();
        assert_eq!(mounted_at(&host), 1);
        assert_eq!(fs::read_to_string(host.join("in/data.txt")).unwrap(), "input");
        // A raised quota grows it, online; a lowered one shows it over quota.
        let raised = Workspace { quota: 64 << 20, ..ws.clone() };
        prepare(&raised).unwrap();
        let u = usage(&host, raised.quota).unwrap();
        assert!(u.available > 24 << 20, "{u:?}");
        assert!(usage(&host, 16 << 20).unwrap().over_quota());
        // An image held by a loop device that is mounted elsewhere is never mounted again.
        unmount(&host);
        let other = d.join("elsewhere");
        fs::create_dir_all(&other).unwrap();
        run("mount", &[os("-o"), os("loop"), d.join("dev/erin.ext4").as_os_str(), other.as_os_str()]).unwrap();
        let e = prepare(&ws).unwrap_err();
        assert!(e.contains("mounted elsewhere"), "{e}");
        assert_eq!(mounted_at(&host), 0);
        unmount(&other);
        assert!(prepare(&Workspace { quota: 1 << 20, ..ws.clone() }).unwrap_err().contains("below the smallest"));
        unmount(&host);
    }

    #[test]
    fn a_folder_holding_more_than_the_quota_is_left_as_it_is() {
        let d = Scratch::new("toobig");
        let host = d.join("dev/fred");
        fs::create_dir_all(&host).unwrap();
        fs::write(host.join("big"), vec![1u8; 40 << 20]).unwrap();
        let ws = Workspace { host: host.clone(), container: "/mnt/workspace".into(), uid: 200_006, quota: 32 << 20 };
        let e = prepare(&ws).unwrap_err();
        assert!(e.contains("more than the quota"), "{e}");
        assert_eq!(mounted_at(&host), 0);
        assert_eq!(fs::metadata(host.join("big")).unwrap().len(), 40 << 20, "nothing lost");
        assert!(!d.join("dev/fred.ext4").exists());
        let u = usage(&host, ws.quota).unwrap();
        assert!(u.over_quota() && u.used >= 40 << 20 && u.available == 0, "a plain folder is walked: {u:?}");
    }

    #[test]
    fn mountinfo_lines_are_read_with_their_escapes() {
        let line = "36 35 98:0 / /mnt/with\\040space rw,noatime master:1 - ext4 /dev/loop3 rw,errors=continue";
        assert_eq!(mountinfo_fields(line), Some(("/mnt/with space".into(), "/dev/loop3".into())));
        let optional = "36 35 98:0 / /a rw shared:2 master:1 - tmpfs tmpfs rw";
        assert_eq!(mountinfo_fields(optional), Some(("/a".into(), "tmpfs".into())));
        assert_eq!(mountinfo_fields("nonsense"), None);
    }
}
