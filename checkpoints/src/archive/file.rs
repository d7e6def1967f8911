//! The archive's index on disk: `<state-dir>/archive/index`, one file read in one pass at start,
//! so that a start reads neither the segments nor thousands of small files.
//!
//! It is derived data, in binary (nobody edits it; it is rebuilt from the segments when missing
//! or wrong): a header (`ZOEAIDX`, its format, the deployment), then one record per segment,
//! each with its length in front and a checksum behind. A record holds the segment file's size,
//! modification and change times and inode as they were when it was indexed, a digest of the
//! whole segment, and the segment's index (see [`super::index`]). New segments append their
//! record; a start that re-indexed anything writes the file anew. A torn or damaged record (a
//! crash while appending) ends what is read: the segments it and the rest covered are indexed
//! again.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::index::{SegmentIndex, Slot};
use super::usage::SlotUsage;
use super::{checksum, FileMeta};
use crate::model::Usage;

/// The index file's name in the archive directory.
pub(super) const INDEX_FILE: &str = "index";
const MAGIC: &[u8; 8] = b"ZOEAIDX\n";
/// The format of the index file; another one is rebuilt.
const FORMAT: u32 = 2;
/// A record longer than this is damage, not a segment's index.
const MAX_RECORD: usize = 1 << 30;
/// Bytes of a slot on disk.
const SLOT_BYTES: usize = 40;
/// Bytes of a slot's usage on disk.
const USAGE_BYTES: usize = 56;

fn header(deployment: &str) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&(deployment.len() as u32).to_le_bytes());
    out.extend_from_slice(deployment.as_bytes());
    out
}

/// A segment's record: its length, its body, the body's checksum.
pub(super) fn record(seg: &SegmentIndex) -> Vec<u8> {
    let names = seg.names.as_bytes();
    let mut body = Vec::with_capacity(
        96 + seg.owners.len() * 80
            + seg.slots.len() * (SLOT_BYTES + USAGE_BYTES)
            + seg.service_ids.len() * 12
            + names.len(),
    );
    let FileMeta { size, mtime_ns, ctime_ns, ino } = seg.file;
    body.extend_from_slice(&seg.number.to_le_bytes());
    body.extend_from_slice(&size.to_le_bytes());
    body.extend_from_slice(&mtime_ns.to_le_bytes());
    body.extend_from_slice(&ctime_ns.to_le_bytes());
    body.extend_from_slice(&ino.to_le_bytes());
    body.extend_from_slice(&seg.digest);
    for n in [seg.slots.len(), seg.service_ids.len(), seg.owners.len(), names.len()] {
        body.extend_from_slice(&(n as u32).to_le_bytes());
    }
    for (id, name) in seg.owners.iter() {
        body.extend_from_slice(&id.to_le_bytes());
        body.extend_from_slice(&(name.len() as u32).to_le_bytes());
        body.extend_from_slice(name.as_bytes());
    }
    for s in seg.slots.iter() {
        body.extend_from_slice(&s.id.to_le_bytes());
        body.extend_from_slice(&s.scheduled.to_le_bytes());
        body.extend_from_slice(&s.offset.to_le_bytes());
        body.extend_from_slice(&s.len.to_le_bytes());
        body.extend_from_slice(&s.digest.to_le_bytes());
        body.extend_from_slice(&s.name_at.to_le_bytes());
        body.extend_from_slice(&[s.name_len, s.status]);
        body.extend_from_slice(&s.owner.to_le_bytes());
    }
    for (id, slot) in seg.service_ids.iter().zip(seg.service_slots.iter()) {
        body.extend_from_slice(&id.to_le_bytes());
        body.extend_from_slice(&slot.to_le_bytes());
    }
    body.extend_from_slice(names);
    for u in seg.usage.iter() {
        body.extend_from_slice(&u.started.to_le_bytes());
        body.extend_from_slice(&u.ended.to_le_bytes());
        let x = &u.usage;
        for f in [x.cpu_seconds, x.memory_byte_seconds] {
            body.extend_from_slice(&f.to_le_bytes());
        }
        body.extend_from_slice(&x.memory_peak_bytes.to_le_bytes());
        for f in [x.reserved_core_seconds, x.reserved_memory_byte_seconds] {
            body.extend_from_slice(&f.to_le_bytes());
        }
    }
    let mut out = Vec::with_capacity(body.len() + 12);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&checksum(&body).to_le_bytes());
    out
}

/// Reads little-endian numbers off the front of a record's body.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }

    fn f64(&mut self) -> Option<f64> {
        self.array().map(f64::from_le_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|b| b[0])
    }

    fn count(&mut self, each: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        // A count that the rest cannot hold is damage (and must not allocate).
        (n.saturating_mul(each) <= self.0.len()).then_some(n)
    }
}

/// A record's body as a segment's index, if it is sound.
fn parse(body: &[u8]) -> Option<SegmentIndex> {
    let mut c = Cursor(body);
    let number = c.u64()?;
    let file = FileMeta { size: c.u64()?, mtime_ns: c.i64()?, ctime_ns: c.i64()?, ino: c.u64()? };
    let digest = c.array::<32>()?;
    let slots = c.count(SLOT_BYTES)?;
    let services = c.count(12)?;
    let owners = c.count(12)?;
    let names_len = c.count(1)?;
    let owners = (0..owners)
        .map(|_| {
            let id = c.u64()?;
            let len = c.u32()? as usize;
            let name = std::str::from_utf8(c.take(len)?).ok()?;
            Some((id, Box::from(name)))
        })
        .collect::<Option<Vec<_>>>()?;
    let slots = (0..slots)
        .map(|_| {
            Some(Slot {
                id: c.u64()?,
                scheduled: c.i64()?,
                offset: c.u64()?,
                len: c.u32()?,
                digest: c.u32()?,
                name_at: c.u32()?,
                name_len: c.u8()?,
                status: c.u8()?,
                owner: c.u16()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let services = (0..services).map(|_| Some((c.u64()?, c.u32()?))).collect::<Option<Vec<_>>>()?;
    let names = std::str::from_utf8(c.take(names_len)?).ok()?;
    if c.0.len() != slots.len() * USAGE_BYTES {
        return None;
    }
    let usage = (0..slots.len())
        .map(|_| {
            let (started, ended) = (c.i64()?, c.i64()?);
            let (cpu_seconds, memory_byte_seconds) = (c.f64()?, c.f64()?);
            let memory_peak_bytes = c.u64()?;
            let (reserved_core_seconds, reserved_memory_byte_seconds) = (c.f64()?, c.f64()?);
            let usage = Usage {
                cpu_seconds,
                memory_byte_seconds,
                memory_peak_bytes,
                reserved_core_seconds,
                reserved_memory_byte_seconds,
            };
            Some(SlotUsage { started, ended, usage })
        })
        .collect::<Option<Vec<_>>>()?;
    SegmentIndex::new(number, file, digest, slots, owners, names.into(), services, usage).ok()
}

/// What the index file holds: each segment's index by number, and whether the file was whole
/// and of this deployment (if not, it is written anew).
pub(super) fn read(path: &Path, deployment: &str) -> (HashMap<u64, SegmentIndex>, bool) {
    let mut found = HashMap::new();
    let Ok(file) = File::open(path) else { return (found, false) };
    let mut r = BufReader::with_capacity(1 << 20, file);
    let expected = header(deployment);
    let mut head = vec![0; expected.len()];
    if r.read_exact(&mut head).is_err() || head != expected {
        return (found, false);
    }
    let mut body = Vec::new();
    loop {
        match io::BufRead::fill_buf(&mut r) {
            Ok([]) => return (found, true),
            Ok(_) => {}
            Err(_) => return (found, false),
        }
        let mut len = [0; 4];
        if r.read_exact(&mut len).is_err() {
            return (found, false);
        }
        let len = u32::from_le_bytes(len) as usize;
        let mut sum = [0; 8];
        if len > MAX_RECORD {
            return (found, false);
        }
        body.resize(len, 0);
        if r.read_exact(&mut body).is_err()
            || r.read_exact(&mut sum).is_err()
            || checksum(&body) != u64::from_le_bytes(sum)
        {
            return (found, false);
        }
        match parse(&body) {
            Some(seg) => {
                if found.insert(seg.number, seg).is_some() {
                    // Twice: the later one stands, and the file is written anew.
                    return (found, false);
                }
            }
            None => return (found, false),
        }
    }
}

fn open_private(path: &Path, append: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    if append {
        o.append(true).create(true);
    } else {
        o.write(true).create(true).truncate(true);
    }
    let f = o.mode(0o600).open(path)?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// Writes the index file anew with these segments. Not atomic, and it need not be: a file cut
/// short by a crash is read up to the cut, and what it lacks is indexed again.
pub(super) fn write<'a>(
    path: &Path,
    deployment: &str,
    segments: impl Iterator<Item = &'a SegmentIndex>,
) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, open_private(path, false)?);
    w.write_all(&header(deployment))?;
    for seg in segments {
        w.write_all(&record(seg))?;
    }
    w.into_inner().map_err(|e| e.into_error())?.sync_data()
}

/// Adds the record of a new segment at the end of the index file (creating it if needed). On
/// failure the file is cut back to where it was, so that a later record is not lost behind a
/// torn one.
pub(super) fn append(path: &Path, deployment: &str, seg: &SegmentIndex) -> io::Result<()> {
    let mut f = open_private(path, true)?;
    let was = f.metadata()?.len();
    let mut bytes = if was == 0 { header(deployment) } else { Vec::new() };
    bytes.extend_from_slice(&record(seg));
    let written = f.write_all(&bytes).and_then(|()| f.sync_data());
    if written.is_err() {
        let _ = f.set_len(was);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(number: u64) -> SegmentIndex {
        let slot = Slot {
            id: number * 10,
            scheduled: -5,
            offset: 3,
            len: 4,
            digest: 0xdead_beef,
            name_at: 1,
            name_len: 2,
            status: 6,
            owner: 1,
        };
        let file = FileMeta { size: 100, mtime_ns: 1, ctime_ns: 2, ino: 3 };
        let owners = vec![(4, "bob".into()), (5, "alice".into())];
        let usage = Usage {
            cpu_seconds: 1.5,
            memory_byte_seconds: 2e9,
            memory_peak_bytes: 3 << 20,
            reserved_core_seconds: 4.0,
            reserved_memory_byte_seconds: 5e9,
        };
        let usage = vec![SlotUsage { started: 100, ended: 90_000, usage }];
        SegmentIndex::new(number, file, [7; 32], vec![slot], owners, "xab".into(), vec![(number * 10 + 1, 0)], usage)
            .unwrap()
    }

    #[test]
    fn records_read_back_and_damage_ends_what_is_read() {
        let dir = std::env::temp_dir().join(format!("zoe-index-file-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(INDEX_FILE);
        assert_eq!(read(&path, "dev"), (HashMap::new(), false), "missing");
        write(&path, "dev", [seg(1), seg(2)].iter()).unwrap();
        append(&path, "dev", &seg(3)).unwrap();
        let (found, whole) = read(&path, "dev");
        assert!(whole);
        assert_eq!(found.len(), 3);
        assert_eq!(found[&2], seg(2));
        assert_eq!(read(&path, "prod"), (HashMap::new(), false), "another deployment's");
        // A torn last record: the others are read, and the file is to be written anew.
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let (found, whole) = read(&path, "dev");
        assert!(!whole);
        assert_eq!(found.keys().copied().collect::<std::collections::BTreeSet<_>>(), [1, 2].into());
        // A flipped byte in the middle record: its checksum fails, what follows is not trusted.
        let mut flipped = bytes.clone();
        let at = header("dev").len() + record(&seg(1)).len() + 20;
        flipped[at] ^= 1;
        fs::write(&path, &flipped).unwrap();
        let (found, whole) = read(&path, "dev");
        assert!(!whole && found.len() == 1 && found.contains_key(&1));
        // Nothing in a sound checksum with unsound contents is taken either.
        let mut body = record(&seg(1))[4..].to_vec();
        body.truncate(body.len() - 8);
        assert!(parse(&body).is_some());
        body[157] = 9; // the slot's status
        assert!(parse(&body).is_none());
        assert!(parse(&body[..50]).is_none());
        fs::remove_dir_all(&dir).unwrap();
    }
}
