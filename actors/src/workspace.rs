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

use std::fs;
use std::io;
use std::os::unix::fs::{lchown, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::protocol::Workspace;

/// Makes sure the workspace exists, belongs to its uid alone (mode 0700), and returns its
/// Docker bind (`host:container:rw`). Blocking: call it off the async threads.
pub fn prepare(ws: &Workspace) -> Result<String, String> {
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
    let host_str = host.to_str().ok_or_else(|| format!("the workspace path {} is not UTF-8", host.display()))?;
    if host_str.contains(':') || ws.container.contains(':') {
        return Err(format!("the workspace path {host_str} or {} contains a ':'", ws.container));
    }
    Ok(format!("{host_str}:{}:rw", ws.container))
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

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("zoe-ws-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// These tests chown files, which needs root (as the master does); the suite runs as root.
    fn require_root() {
        let root = fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
        assert!(root, "the workspace tests need root: they give directories to other uids");
    }

    #[test]
    fn a_new_workspace_is_private_to_its_uid() {
        require_root();
        let d = tempdir("new");
        let ws = Workspace { host: d.join("dev/alice"), container: "/mnt/workspace".into(), uid: 200_001 };
        let bind = prepare(&ws).unwrap();
        assert_eq!(bind, format!("{}:/mnt/workspace:rw", d.join("dev/alice").display()));
        let m = fs::metadata(d.join("dev/alice")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.permissions().mode() & 0o7777), (200_001, 200_001, 0o700));
        // Loosened by hand: made private again.
        fs::set_permissions(d.join("dev/alice"), fs::Permissions::from_mode(0o777)).unwrap();
        prepare(&ws).unwrap();
        assert_eq!(fs::metadata(d.join("dev/alice")).unwrap().permissions().mode() & 0o7777, 0o700);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_root_owned_workspace_is_adopted_without_following_links() {
        require_root();
        let d = tempdir("adopt");
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
        let ws = Workspace { host: ws_dir.clone(), container: "/mnt/workspace".into(), uid: 200_002 };
        prepare(&ws).unwrap();
        for p in [ws_dir.clone(), ws_dir.join("sub"), ws_dir.join("sub/data"), ws_dir.join("sx")] {
            assert_eq!(fs::metadata(&p).unwrap().uid(), 200_002, "{}", p.display());
        }
        assert_eq!(fs::metadata(ws_dir.join("sx")).unwrap().permissions().mode() & 0o7777, 0o755, "set-id cleared");
        assert_eq!(fs::symlink_metadata(ws_dir.join("link")).unwrap().uid(), 200_002, "the link itself");
        assert_eq!(fs::metadata(&outside).unwrap().uid(), 0, "the link's target is untouched");
        assert!(!fifo.exists(), "special files are removed");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn someone_elses_workspace_and_links_are_refused() {
        require_root();
        let d = tempdir("refuse");
        let ws_dir = d.join("dev/carol");
        fs::create_dir_all(&ws_dir).unwrap();
        lchown(&ws_dir, Some(200_009), Some(200_009)).unwrap();
        let ws = Workspace { host: ws_dir.clone(), container: "/mnt/workspace".into(), uid: 200_003 };
        let e = prepare(&ws).unwrap_err();
        assert!(e.contains("belongs to uid 200009"), "{e}");
        let linked = d.join("dev/dave");
        symlink("/etc", &linked).unwrap();
        let e = prepare(&Workspace { host: linked, container: "/mnt/workspace".into(), uid: 200_004 }).unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
        assert_eq!(fs::metadata("/etc").unwrap().uid(), 0);
        fs::remove_dir_all(&d).unwrap();
    }
}
