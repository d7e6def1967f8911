//! A folder of a workspace as a tar archive (POSIX ustar, with pax records for long names, large
//! sizes and large ids), written as it is walked: nothing is held whole in memory.
//!
//! The walk follows no symbolic link: each name is opened in its folder's descriptor with
//! `RESOLVE_NO_SYMLINKS`, and links are stored as links (their target's text), so an archive
//! holds only what is inside the workspace. Pipes and sockets are left out. A file that grows or
//! shrinks while it is read is cut or padded to the size its header says (the archive stays
//! well-formed).

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{names_in, read_at, EXACT};

const BLOCK: usize = 512;
/// Largest size an ustar header holds (11 octal digits).
const MAX_OCTAL_SIZE: u64 = 0o77_777_777_777;
/// Largest id an ustar header holds (7 octal digits).
const MAX_OCTAL_ID: u32 = 0o7_777_777;
/// How much of a file is read at once.
const CHUNK: usize = 1 << 20;

/// Writes the tree of the folder `top` (a descriptor of it), named `top_name` in the archive,
/// and the archive's end.
pub fn write_tree(top: OwnedFd, top_name: &str, out: &mut dyn Write) -> io::Result<()> {
    let st = rustix::fs::fstat(&top)?;
    let mut buf = vec![0u8; CHUNK];
    let top_path = format!("{top_name}/").into_bytes();
    header(out, &top_path, b'5', &st, 0, b"")?;
    // Each level: its folder, its path in the archive, and the names left to write.
    let mut stack: Vec<(OwnedFd, Vec<u8>, Vec<Vec<u8>>)> = Vec::new();
    let mut names = names_in(&top)?;
    names.reverse();
    stack.push((top, top_path, names));
    while let Some((dir, prefix, names)) = stack.last_mut() {
        let Some(raw) = names.pop() else {
            stack.pop();
            continue;
        };
        let name = OsStr::from_bytes(&raw);
        let mut path = prefix.clone();
        path.extend_from_slice(&raw);
        let st = match rustix::fs::statat(&*dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
                let sub = match rustix::fs::openat2(&*dir, name, flags, Mode::empty(), EXACT) {
                    Ok(fd) => fd,
                    // Gone, or swapped for a link meanwhile: left out.
                    Err(Errno::NOENT | Errno::LOOP | Errno::XDEV | Errno::NOTDIR) => continue,
                    Err(e) => return Err(e.into()),
                };
                let st = rustix::fs::fstat(&sub)?;
                path.push(b'/');
                header(out, &path, b'5', &st, 0, b"")?;
                let mut names = names_in(&sub)?;
                names.reverse();
                stack.push((sub, path, names));
            }
            FileType::RegularFile => {
                let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
                let file = match rustix::fs::openat2(&*dir, name, flags, Mode::empty(), EXACT) {
                    Ok(fd) => std::fs::File::from(fd),
                    Err(Errno::NOENT | Errno::LOOP | Errno::XDEV) => continue,
                    Err(e) => return Err(e.into()),
                };
                let st = rustix::fs::fstat(&file)?;
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    continue;
                }
                let size = u64::try_from(st.st_size).unwrap_or(0);
                header(out, &path, b'0', &st, size, b"")?;
                copy_exactly(&file, size, &mut buf, out)?;
            }
            FileType::Symlink => {
                let target = match rustix::fs::readlinkat(&*dir, name, Vec::new()) {
                    Ok(t) => t.into_bytes(),
                    Err(Errno::NOENT | Errno::INVAL) => continue,
                    Err(e) => return Err(e.into()),
                };
                header(out, &path, b'2', &st, 0, &target)?;
            }
            _ => {}
        }
    }
    out.write_all(&[0u8; 2 * BLOCK])?;
    out.flush()
}

/// Writes `size` bytes of `file` and the padding to a whole block: zeros past its end if it
/// shrank, nothing past `size` if it grew.
fn copy_exactly(file: &std::fs::File, size: u64, buf: &mut [u8], out: &mut dyn Write) -> io::Result<()> {
    let mut done = 0u64;
    while done < size {
        let want = usize::try_from((size - done).min(buf.len() as u64)).unwrap_or(buf.len());
        let mut got = read_at(file, &mut buf[..want], done)?;
        if got == 0 {
            buf[..want].fill(0);
            got = want;
        }
        out.write_all(&buf[..got])?;
        done += got as u64;
    }
    let rest = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
    out.write_all(&[0u8; BLOCK][..rest])
}

/// Writes the header of one entry (and a pax header before it when needed).
fn header(out: &mut dyn Write, path: &[u8], kind: u8, st: &rustix::fs::Stat, size: u64, link: &[u8]) -> io::Result<()> {
    let (uid, gid) = (st.st_uid, st.st_gid);
    let mut pax = Vec::new();
    if path.len() > 100 {
        record(&mut pax, b"path", path);
    }
    if link.len() > 100 {
        record(&mut pax, b"linkpath", link);
    }
    if size > MAX_OCTAL_SIZE {
        record(&mut pax, b"size", size.to_string().as_bytes());
    }
    if uid > MAX_OCTAL_ID {
        record(&mut pax, b"uid", uid.to_string().as_bytes());
    }
    if gid > MAX_OCTAL_ID {
        record(&mut pax, b"gid", gid.to_string().as_bytes());
    }
    if !pax.is_empty() {
        let mut h = [0u8; BLOCK];
        fill(&mut h, b"././@PaxHeader", b'x', 0o644, 0, 0, pax.len() as u64, 0, b"");
        out.write_all(&h)?;
        out.write_all(&pax)?;
        let rest = (BLOCK - pax.len() % BLOCK) % BLOCK;
        out.write_all(&[0u8; BLOCK][..rest])?;
    }
    let mode = (st.st_mode & 0o777) as u64;
    let mtime = u64::try_from(st.st_mtime).unwrap_or(0);
    let mut h = [0u8; BLOCK];
    let short = &path[..path.len().min(100)];
    let short_link = &link[..link.len().min(100)];
    fill(
        &mut h,
        short,
        kind,
        mode,
        u64::from(uid.min(MAX_OCTAL_ID)),
        u64::from(gid.min(MAX_OCTAL_ID)),
        size.min(MAX_OCTAL_SIZE),
        mtime.min(MAX_OCTAL_SIZE),
        short_link,
    );
    out.write_all(&h)
}

/// One pax record: `<length> <key>=<value>\n`, its length counting itself.
fn record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[allow(clippy::too_many_arguments)]
fn fill(h: &mut [u8; BLOCK], name: &[u8], kind: u8, mode: u64, uid: u64, gid: u64, size: u64, mtime: u64, link: &[u8]) {
    h[..name.len()].copy_from_slice(name);
    octal(&mut h[100..108], mode);
    octal(&mut h[108..116], uid);
    octal(&mut h[116..124], gid);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    octal(&mut h[148..155], sum);
    h[155] = b' ';
}

/// `value` in octal, zero-padded, NUL-terminated, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    let text = text.as_bytes();
    field[..digits].copy_from_slice(&text[text.len() - digits..]);
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        let mut out = Vec::new();
        record(&mut out, b"path", b"a");
        assert_eq!(out, b"9 path=a\n", "9 bytes, the length included");
        let mut out = Vec::new();
        let long = vec![b'x'; 95];
        record(&mut out, b"path", &long);
        // 3 digits + ' ' + "path=" + 95 + '\n' = 105.
        assert!(out.starts_with(b"105 path="), "{}", String::from_utf8_lossy(&out));
        assert_eq!(out.len(), 105);
    }

    #[test]
    fn octal_fields_are_padded_and_terminated() {
        let mut f = [0xffu8; 8];
        octal(&mut f, 0o644);
        assert_eq!(&f, b"0000644\0");
    }
}
