//! The confinement with real files and real links (as root, as the master runs: files are given
//! to another uid).

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;

const UID: u32 = 200_777;

/// A fresh folder with a workspace `ws` in it and a neighbour's `other` beside it, and a
/// host file `host.txt` outside both.
fn setup(tag: &str) -> (PathBuf, Workspace) {
    let root = std::env::temp_dir().join(format!("zoe-files-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("ws")).unwrap();
    fs::create_dir_all(root.join("other")).unwrap();
    fs::write(root.join("other/secret"), "the neighbour's").unwrap();
    fs::write(root.join("host.txt"), "host").unwrap();
    let ws = Workspace::open(&root.join("ws"), UID).unwrap();
    (root, ws)
}

fn p(s: &str) -> WsPath {
    WsPath::parse(s).unwrap()
}

fn write(ws: &Workspace, path: &str, bytes: &[u8]) -> Result<u64, FileError> {
    let mut up = ws.create(&p(path), u64::MAX)?;
    up.write(bytes)?;
    up.commit()
}

fn read(ws: &Workspace, path: &str) -> Result<Vec<u8>, FileError> {
    match ws.open_read(&p(path))? {
        Opened::File { file, .. } => {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut &file, &mut out).unwrap();
            Ok(out)
        }
        Opened::Dir(_) => panic!("{path} is a folder"),
    }
}

fn is_outside(r: Result<impl std::fmt::Debug, FileError>) -> bool {
    matches!(r, Err(FileError::Outside(_)))
}

#[test]
fn files_and_folders_are_written_for_the_user_with_no_partial_file_left() {
    let (root, ws) = setup("write");
    assert_eq!(write(&ws, "a/b/c.txt", b"hello").unwrap(), 5);
    assert_eq!(fs::read(root.join("ws/a/b/c.txt")).unwrap(), b"hello");
    for (path, mode) in [("ws/a", 0o755), ("ws/a/b", 0o755), ("ws/a/b/c.txt", 0o644)] {
        let m = fs::metadata(root.join(path)).unwrap();
        assert_eq!((m.uid(), m.gid(), m.permissions().mode() & 0o7777), (UID, UID, mode), "{path}");
    }
    // Replaced whole.
    write(&ws, "a/b/c.txt", b"hi").unwrap();
    assert_eq!(read(&ws, "a/b/c.txt").unwrap(), b"hi");
    // Over the limit: refused, nothing left (not even the temporary file).
    let mut up = ws.create(&p("a/big"), 10).unwrap();
    up.write(b"12345").unwrap();
    assert!(matches!(up.write(b"678901"), Err(FileError::Full(_))));
    drop(up);
    // Dropped before its commit (a client gone): nothing left either.
    let mut up = ws.create(&p("a/cut"), u64::MAX).unwrap();
    up.write(b"partial").unwrap();
    drop(up);
    let names: Vec<String> = ws.list(&p("a")).unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["b"]);
    // Folders are not written over, nor written under a file.
    assert!(matches!(write(&ws, "a/b", b"x"), Err(FileError::Conflict(_))));
    assert!(matches!(write(&ws, "a/b/c.txt/d", b"x"), Err(FileError::Conflict(_))));
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn links_out_are_refused_for_every_operation_with_nothing_touched_outside() {
    let (root, ws) = setup("links");
    let w = root.join("ws");
    symlink("/etc", w.join("etc")).unwrap();
    symlink(root.join("host.txt"), w.join("host")).unwrap();
    symlink("../other", w.join("neighbour")).unwrap();
    symlink("../../other/secret", w.join("deep")).unwrap();
    fs::create_dir(w.join("sub")).unwrap();
    symlink("../../other", w.join("sub/up2")).unwrap();
    // Inside: followed.
    fs::write(w.join("real.txt"), "inside").unwrap();
    symlink("real.txt", w.join("alias")).unwrap();
    symlink("../sub", w.join("sub/self")).unwrap();
    assert_eq!(read(&ws, "alias").unwrap(), b"inside");
    assert!(ws.list(&p("sub/self")).is_ok());
    let before = fs::read("/etc/hostname").unwrap_or_default();
    for path in ["etc/hostname", "host", "neighbour/secret", "deep", "sub/up2/secret"] {
        assert!(is_outside(read(&ws, path)), "read {path}");
        assert!(is_outside(write(&ws, path, b"owned")), "write {path}");
        assert!(is_outside(ws.create(&p(&format!("{path}/new/file")), 9).map(|_| ())), "mkdir under {path}");
    }
    for path in ["etc", "neighbour", "sub/up2"] {
        assert!(is_outside(ws.list(&p(path))), "list {path}");
        assert!(is_outside(ws.tar(&p(path), &mut Vec::new())), "tar {path}");
        assert!(is_outside(ws.remove(&p(&format!("{path}/secret")), false)), "remove in {path}");
    }
    // Written through an inside link: refused too (a link is never written through).
    assert!(matches!(write(&ws, "alias", b"x"), Err(FileError::Conflict(_))));
    // Nothing outside was touched.
    assert_eq!(fs::read(root.join("other/secret")).unwrap(), b"the neighbour's");
    assert_eq!(fs::read(root.join("host.txt")).unwrap(), b"host");
    assert_eq!(fs::read("/etc/hostname").unwrap_or_default(), before);
    assert!(!Path::new("/etc/new").exists());
    assert_eq!(fs::read_dir(root.join("other")).unwrap().count(), 1);
    // Removing a link removes the link, never what it points to; recursively too.
    ws.remove(&p("neighbour"), false).unwrap();
    ws.remove(&p("sub"), true).unwrap();
    assert!(!w.join("neighbour").exists() && !w.join("sub").exists());
    assert_eq!(fs::read(root.join("other/secret")).unwrap(), b"the neighbour's");
    // A listing shows links as links.
    let listing = ws.list(&WsPath::root()).unwrap();
    let etc = listing.iter().find(|e| e.name == "etc").unwrap();
    assert_eq!(etc.kind, Kind::Link);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn walks_follow_no_link_and_keep_links_as_links() {
    let (root, ws) = setup("walks");
    let w = root.join("ws");
    fs::create_dir_all(w.join("t/a/b")).unwrap();
    fs::write(w.join("t/a/b/f"), "1").unwrap();
    symlink(root.join("other"), w.join("t/a/out")).unwrap();
    let mut archive = Vec::new();
    ws.tar(&p("t"), &mut archive).unwrap();
    let listed = tar_list(&archive);
    assert_eq!(listed, ["t/", "t/a/", "t/a/b/", "t/a/b/f", "t/a/out"], "{listed:?}");
    ws.remove(&p("t"), true).unwrap();
    assert!(!w.join("t").exists());
    assert_eq!(fs::read(root.join("other/secret")).unwrap(), b"the neighbour's");
    // Not empty, not recursive: refused.
    fs::create_dir_all(w.join("full/x")).unwrap();
    assert!(matches!(ws.remove(&p("full"), false), Err(FileError::Conflict(_))));
    assert!(matches!(ws.remove(&WsPath::root(), true), Err(FileError::Conflict(_))));
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_pipe_is_refused_without_blocking() {
    let (root, ws) = setup("pipe");
    let fifo = root.join("ws/pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    assert!(matches!(ws.open_read(&p("pipe")), Err(FileError::Conflict(_))));
    assert!(matches!(write(&ws, "pipe", b"x"), Err(FileError::Conflict(_))));
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn archives_are_read_back_by_tar_with_long_names_and_links() {
    let (root, ws) = setup("tar");
    let long = "n".repeat(120);
    write(&ws, &format!("d/{long}/{long}.txt"), b"long name").unwrap();
    write(&ws, "d/empty", b"").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    write(&ws, "d/big.bin", &big).unwrap();
    symlink("big.bin", root.join("ws/d/link")).unwrap();
    let mut archive = Vec::new();
    ws.tar(&p("d"), &mut archive).unwrap();
    let out = root.join("out");
    fs::create_dir(&out).unwrap();
    fs::write(root.join("d.tar"), &archive).unwrap();
    let st = std::process::Command::new("tar").arg("-xf").arg(root.join("d.tar")).arg("-C").arg(&out).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    assert_eq!(fs::read(out.join(format!("d/{long}/{long}.txt"))).unwrap(), b"long name");
    assert_eq!(fs::read(out.join("d/big.bin")).unwrap(), big);
    assert_eq!(fs::read(out.join("d/empty")).unwrap(), b"");
    assert_eq!(fs::read_link(out.join("d/link")).unwrap(), Path::new("big.bin"));
    fs::remove_dir_all(&root).unwrap();
}

/// The names in a tar archive, by `tar -t`.
fn tar_list(archive: &[u8]) -> Vec<String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("tar")
        .arg("-t")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(archive).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect()
}

#[test]
fn parts_are_written_in_order_as_one_file_and_count_against_the_limit_together() {
    let (root, ws) = setup("parts");
    // More parts than one `writev` takes (1,024), of sizes that do not line up.
    let parts: Vec<Vec<u8>> = (0..1500u32).map(|i| vec![(i % 251) as u8; (i as usize * 37) % 5000]).collect();
    let whole: Vec<u8> = parts.concat();
    let mut up = ws.create(&p("parts.bin"), u64::MAX).unwrap();
    let mut slices: Vec<io::IoSlice<'_>> = parts.iter().map(|x| io::IoSlice::new(x)).collect();
    up.write_parts(&mut slices).unwrap();
    assert_eq!(up.commit().unwrap(), whole.len() as u64);
    assert!(fs::read(root.join("ws/parts.bin")).unwrap() == whole, "the parts, in order, and nothing else");
    // The limit holds over the parts together: refused, nothing of it written.
    let mut up = ws.create(&p("over.bin"), 10).unwrap();
    let err = up.write_parts(&mut [io::IoSlice::new(b"123456"), io::IoSlice::new(b"78901")]);
    assert!(matches!(err, Err(FileError::Full(_))), "{err:?}");
    drop(up);
    assert!(!root.join("ws/over.bin").exists());
    let _ = fs::remove_dir_all(&root);
}
