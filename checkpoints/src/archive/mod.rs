//! The archive: ended executions moved out of the checkpoints, so that a change costs the same
//! whatever the history.
//!
//! Layout: `<state-dir>/archive/0000000007.ron` is segment 7, pretty RON like a checkpoint, with
//! a header (format, deployment, number) and the executions it holds, in id order. A segment is
//! written once, atomically, and never changed: the archive only grows, one segment at a time,
//! numbered from 1 without a gap. A checkpoint says how many segments it needs
//! (`archived_segments`): the segments on disk are exactly 1 to that number, except those a crash
//! left just after it (see [`check_numbers`] and [`foreign_execution`]).
//!
//! `archive/index` is the index of every segment (see [`file`]): what listings filter on, where
//! each execution's text is in its segment, and a digest of that text and of the whole segment.
//! A start reads it in one pass and looks at each segment file's size, times and inode only: a
//! segment that looks changed is read again, and indexed again unless its digest says it is the
//! same; one whose record is missing is indexed from its text. A hand edit made while the master
//! runs is caught when the execution is read (its digest differs) and the next start re-indexes
//! the segment, or refuses it with the place of the damage.
//!
//! The master keeps the index in memory ([`ArchiveIndex`]) and reads an execution's text from
//! its segment when asked. An execution found both in the checkpoint and in a segment (a crash
//! between writing a segment and the checkpoint that drops its executions, or a revert) is the
//! checkpoint's, and one found in two segments is the newer segment's: nothing is lost, nothing
//! is counted twice.

mod file;
mod index;
pub mod usage;

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use blake2::digest::consts::{U32, U4, U8};
use blake2::{Blake2b, Digest};
use serde::{Deserialize, Serialize};

pub use index::{ArchiveFilter, ArchiveIndex, Archived, Entry, Picked, SegmentIndex};

use crate::codec::{is_dns_label, list_item, LoadError};
use crate::model::{Execution, State};
use crate::store::{private_dir, write_atomic};

/// The format of archive segments.
pub const SEGMENT_FORMAT: u32 = 1;
/// Digits in a segment's file name.
const DIGITS: usize = 10;

/// A segment file as written: the header, then the executions.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    pub format_version: u32,
    pub deployment_name: String,
    /// Its number, which is also its file name.
    pub segment: u64,
    /// Ended executions, in id order.
    pub executions: Vec<Execution>,
}

/// What a segment file looked like when it was indexed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileMeta {
    pub size: u64,
    /// Modification and change times, Unix nanoseconds: any write changes them (and the change
    /// time cannot be set back by hand).
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
}

impl FileMeta {
    pub fn of(m: &fs::Metadata) -> FileMeta {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        FileMeta {
            size: m.len(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
        }
    }
}

/// A digest of a whole segment.
fn segment_digest(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(&Blake2b::<U32>::digest(bytes));
    out
}

/// A digest of one execution's text in its segment.
fn entry_digest(bytes: &[u8]) -> u32 {
    let mut out = [0; 4];
    out.copy_from_slice(&Blake2b::<U4>::digest(bytes));
    u32::from_le_bytes(out)
}

/// The checksum of a record of the index file.
fn checksum(bytes: &[u8]) -> u64 {
    let mut out = [0; 8];
    out.copy_from_slice(&Blake2b::<U8>::digest(bytes));
    u64::from_le_bytes(out)
}

/// The path of segment `n` in `dir`.
pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:0DIGITS$}.ron"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".ron")?;
    (stem.len() == DIGITS && stem.bytes().all(|b| b.is_ascii_digit())).then(|| stem.parse().ok()).flatten()
}

/// A per-segment index file of an older Zoe (`0000000007.idx`), replaced by `archive/index`.
fn is_old_index(name: &str) -> bool {
    name.strip_suffix(".idx").is_some_and(|stem| stem.len() == DIGITS && stem.bytes().all(|b| b.is_ascii_digit()))
}

/// One segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFile {
    pub number: u64,
    pub path: PathBuf,
    pub size: u64,
    pub meta: FileMeta,
}

/// What [`Archive::index`] tells as it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexNote {
    /// `done` segments of `total` are indexed, `reindexed` of them from their text; they hold
    /// `executions`.
    Progress {
        done: usize,
        total: usize,
        reindexed: usize,
        executions: usize,
    },
    Info(String),
    Warning(String),
}

/// What is wrong with the numbers of the segment files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Segment `n`, which the state needs, is not there.
    Missing(u64),
    /// Segment `missing` is not there, and the state does not need it: the segments after it
    /// are not this state's (a stray file, or one from another state directory).
    Stray { missing: u64, strays: Vec<u64> },
}

/// Checks the numbers of the segment files (in order) for a state that needs segments 1 to
/// `needed`: they must be 1 to some n at least `needed`, without a gap. Returns n.
pub fn check_numbers(numbers: &[u64], needed: u64) -> Result<u64, LayoutError> {
    match numbers.iter().zip(1u64..).find(|(n, want)| **n != *want) {
        Some((_, missing)) if missing <= needed => Err(LayoutError::Missing(missing)),
        Some((_, missing)) => {
            Err(LayoutError::Stray { missing, strays: numbers.iter().copied().filter(|n| *n > missing).collect() })
        }
        None if (numbers.len() as u64) < needed => Err(LayoutError::Missing(numbers.len() as u64 + 1)),
        None => Ok(numbers.len() as u64),
    }
}

/// A segment past those `state` needs is one the master wrote just before a crash, before the
/// checkpoint that would have needed it: each execution it holds is in the state too, or was
/// created after it (an id from `next_id` on). The first (segment, execution) that is neither,
/// if any: that segment is not this state's.
pub fn foreign_execution(index: &ArchiveIndex, state: &State) -> Option<(u64, u64)> {
    index.segment_numbers().filter(|n| *n > state.archived_segments).find_map(|n| {
        let seg = index.segment(n)?;
        seg.ids().find(|id| *id < state.next_id && !state.executions.contains_key(id)).map(|id| (n, id))
    })
}

/// The archive directory.
#[derive(Clone, Debug)]
pub struct Archive {
    dir: PathBuf,
}

impl Archive {
    /// Opens (creating if needed) `<state_dir>/archive`. Temporary files of writes a crash
    /// interrupted are removed by the master, with the lock held
    /// ([`crate::store::remove_temp_files`]): a running master's writes use them.
    pub fn open(state_dir: &Path) -> io::Result<Archive> {
        let dir = state_dir.join("archive");
        private_dir(&dir)?;
        Ok(Archive { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, n: u64) -> PathBuf {
        segment_path(&self.dir, n)
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join(file::INDEX_FILE)
    }

    /// Every segment file, in number order.
    pub fn list(&self) -> io::Result<Vec<SegmentFile>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(number) = parse_segment_name(&entry.file_name().to_string_lossy()) {
                let meta = FileMeta::of(&entry.metadata()?);
                out.push(SegmentFile { number, path: entry.path(), size: meta.size, meta });
            }
        }
        out.sort_by_key(|s| s.number);
        Ok(out)
    }

    /// Writes segment `n` holding `executions` (ended, in any order), then adds it to the index
    /// file; returns its index, and a warning when only the index file could not be written to
    /// (the next start indexes the segment again). The segment is durable before this returns.
    /// Writing the same segment again (a retry after a failure that came after the segment was
    /// on disk) finds it there, the same, and is not an error.
    pub fn write(
        &self,
        deployment: &str,
        n: u64,
        executions: &[Arc<Execution>],
    ) -> Result<(Arc<SegmentIndex>, Option<String>), String> {
        // The usage series stay behind: the archive keeps the totals (see `model::usage`).
        let stripped: Vec<Execution> = executions
            .iter()
            .map(|e| {
                let mut e = (**e).clone();
                e.usage_series = Default::default();
                e
            })
            .collect();
        let mut sorted: Vec<&Execution> = stripped.iter().collect();
        sorted.sort_by_key(|e| e.id);
        let (text, places) = encode_segment(deployment, n, &sorted).map_err(|e| format!("cannot encode: {e}"))?;
        let path = self.path(n);
        if path.exists() {
            if fs::read(&path).ok().as_deref() != Some(text.as_bytes()) {
                return Err(format!("{} already exists; segments are never rewritten", path.display()));
            }
        } else {
            write_atomic(&path, text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        let meta = fs::metadata(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let items = sorted.into_iter().zip(places).map(|(e, (offset, len))| {
            let digest = entry_digest(&text.as_bytes()[offset as usize..offset as usize + len as usize]);
            (e, offset, len, digest)
        });
        let index = SegmentIndex::build(n, FileMeta::of(&meta), segment_digest(text.as_bytes()), items)
            .map_err(|e| format!("cannot index {}: {e}", path.display()))?;
        let warning = file::append(&self.index_path(), deployment, &index).err().map(|e| {
            format!(
                "cannot add archive segment {n} to {} (the next start indexes it again): {e}",
                self.index_path().display()
            )
        });
        Ok((Arc::new(index), warning))
    }

    /// Reads, parses and checks segment `n` whole.
    pub fn load(&self, n: u64, deployment: &str) -> Result<Segment, LoadError> {
        let path = self.path(n);
        let text = fs::read_to_string(&path).map_err(|e| LoadError::io(&path, &e))?;
        decode_segment(&text, n, deployment).map_err(|e| e.in_file(&path))
    }

    /// The text of segment `n`.
    pub fn read(&self, n: u64) -> io::Result<String> {
        fs::read_to_string(self.path(n))
    }

    /// The index of segments 1 to `upto` (which must all be there), from the index file: a
    /// segment whose file looks changed since it was indexed is read again (and indexed again
    /// unless its digest is the same), and one the index file lacks is indexed from its text; the
    /// index file is then written anew. `notes` hears how far it is, and what it did.
    pub fn index(
        &self,
        deployment: &str,
        upto: u64,
        mut notes: impl FnMut(IndexNote),
    ) -> Result<ArchiveIndex, LoadError> {
        let files: Vec<SegmentFile> =
            self.list().map_err(|e| LoadError::io(&self.dir, &e))?.into_iter().filter(|f| f.number <= upto).collect();
        if let Some((_, missing)) = files.iter().map(|f| f.number).zip(1..).find(|(n, want)| n != want) {
            return Err(LoadError::io(&self.path(missing), &io::Error::from(io::ErrorKind::NotFound)));
        }
        if (files.len() as u64) < upto {
            let missing = self.path(files.len() as u64 + 1);
            return Err(LoadError::io(&missing, &io::Error::from(io::ErrorKind::NotFound)));
        }
        let ipath = self.index_path();
        let (mut known, whole) = file::read(&ipath, deployment);
        let mut rewrite = !whole;
        let total = files.len();
        let mut segments: Vec<Option<SegmentIndex>> = Vec::with_capacity(total);
        // Segments to read again: their place, and what the index file said of them.
        let mut jobs = Vec::new();
        for (i, f) in files.iter().enumerate() {
            match known.remove(&f.number) {
                Some(seg) if seg.file == f.meta => segments.push(Some(seg)),
                stale => {
                    segments.push(None);
                    jobs.push((i, stale));
                }
            }
        }
        let mut done = total - jobs.len();
        let mut executions: usize = segments.iter().flatten().map(|s| s.len()).sum();
        let mut reindexed = 0;
        notes(IndexNote::Progress { done, total, reindexed, executions });
        if !jobs.is_empty() {
            rewrite = true;
            // Parsing is the slow part: on every core, each taking the next segment.
            let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 4);
            let jobs = std::sync::Mutex::new(jobs.into_iter());
            let failed = std::sync::atomic::AtomicBool::new(false);
            let (tx, rx) = std::sync::mpsc::channel();
            let mut first_error = None;
            std::thread::scope(|scope| {
                for _ in 0..workers {
                    let (tx, jobs, failed, files) = (tx.clone(), &jobs, &failed, &files);
                    scope.spawn(move || loop {
                        let next = jobs.lock().ok().and_then(|mut j| j.next());
                        let Some((i, stale)) = next else { break };
                        if failed.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        let result = reread(&files[i], stale, deployment);
                        failed.fetch_or(result.is_err(), std::sync::atomic::Ordering::Relaxed);
                        if tx.send((i, result)).is_err() {
                            break;
                        }
                    });
                }
                drop(tx);
                for (i, result) in rx {
                    match result {
                        Ok((seg, parsed)) => {
                            done += 1;
                            reindexed += usize::from(parsed);
                            executions += seg.len();
                            segments[i] = Some(seg);
                            notes(IndexNote::Progress { done, total, reindexed, executions });
                        }
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
            });
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        let segments: Vec<SegmentIndex> = segments.into_iter().flatten().collect();
        if rewrite || !known.is_empty() {
            match file::write(&ipath, deployment, segments.iter()) {
                Ok(()) if reindexed > 0 => notes(IndexNote::Info(format!(
                    "archive: {reindexed} of {total} segments indexed from their text; {} written",
                    ipath.display()
                ))),
                Ok(()) => {}
                Err(e) => notes(IndexNote::Warning(format!(
                    "cannot write {} (the next start indexes the archive again): {e}",
                    ipath.display()
                ))),
            }
        }
        // The per-segment index files of an older Zoe: replaced by the index file.
        let old: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map_err(|e| LoadError::io(&self.dir, &e))?
            .filter_map(|e| e.ok())
            .filter(|e| is_old_index(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        if !old.is_empty() {
            let removed = old.iter().filter(|p| fs::remove_file(p).is_ok()).count();
            notes(IndexNote::Info(format!(
                "archive: removed {removed} index files of an older Zoe (now in {})",
                ipath.display()
            )));
        }
        Ok(ArchiveIndex::of(&self.dir, segments))
    }
}

fn segment_header(deployment: &str, n: u64) -> String {
    format!(
        "// Zoe archive segment {n} of deployment \"{deployment}\": ended executions moved out of the checkpoints.\n\
         // Written once and never changed; `zoe checkpoint verify` checks it.\n"
    )
}

/// A segment's text, and where each execution's text is in it.
fn encode_segment(
    deployment: &str,
    n: u64,
    executions: &[&Execution],
) -> Result<(String, Vec<(u64, u32)>), ron::Error> {
    let mut out = segment_header(deployment, n);
    out.push_str(&format!(
        "(\n    format_version: {SEGMENT_FORMAT},\n    deployment_name: {},\n    segment: {n},\n    executions: [\n",
        ron::to_string(deployment)?
    ));
    let mut places = Vec::with_capacity(executions.len());
    for e in executions {
        let item = list_item(*e)?;
        // The execution's own text, without the trailing ",\n".
        let len = item.len() - 2;
        places.push((out.len() as u64, len as u32));
        out.push_str(&item);
    }
    out.push_str("    ],\n)\n");
    Ok((out, places))
}

/// Reads a segment whose index is missing, or whose file looks changed since it was indexed:
/// returns its index, and whether it had to be parsed (not if its digest is the same as when it
/// was indexed: a file touched, copied or restored).
fn reread(f: &SegmentFile, stale: Option<SegmentIndex>, deployment: &str) -> Result<(SegmentIndex, bool), LoadError> {
    let bytes = fs::read(&f.path).map_err(|e| LoadError::io(&f.path, &e))?;
    let digest = segment_digest(&bytes);
    if let Some(mut seg) = stale.filter(|s| s.digest == digest && s.file.size == f.meta.size) {
        seg.file = f.meta;
        return Ok((seg, false));
    }
    let text =
        String::from_utf8(bytes).map_err(|e| LoadError::at(0, 0, format!("not UTF-8 text: {e}")).in_file(&f.path))?;
    let seg = index_segment(&text, f.number, deployment, f.meta, digest).map_err(|e| e.in_file(&f.path))?;
    Ok((seg, true))
}

/// Parses and checks a segment's text, and indexes it. Each execution's text is found by the
/// layout Zoe writes (an execution per list item, `        (` to `        ),`, one after the
/// other) and parsed once, as is the rest; any surprise and the whole text is parsed as one, for
/// the place of the damage.
fn index_segment(
    text: &str,
    n: u64,
    deployment: &str,
    file: FileMeta,
    digest: [u8; 32],
) -> Result<SegmentIndex, LoadError> {
    let whole = || match decode_segment(text, n, deployment) {
        Err(e) => e,
        Ok(_) => LoadError::at(0, 0, "the segment is not laid out as Zoe writes segments"),
    };
    let (places, end) = item_places(text).ok_or_else(whole)?;
    let start = places.first().map(|(offset, _)| *offset).ok_or_else(whole)?;
    // The text around the executions, as a segment with none.
    let rest: Segment = ron::from_str(&format!("{}{}", &text[..start], &text[end..])).map_err(|_| whole())?;
    if !rest.executions.is_empty() {
        return Err(whole());
    }
    let mut segment = Segment { executions: Vec::with_capacity(places.len()), ..rest };
    for (offset, len) in &places {
        segment.executions.push(ron::from_str(&text[*offset..offset + len]).map_err(|_| whole())?);
    }
    check_segment(text, &segment, n, deployment)?;
    let items =
        segment.executions.iter().zip(places).map(|(e, (offset, len))| {
            (e, offset as u64, len as u32, entry_digest(&text.as_bytes()[offset..offset + len]))
        });
    SegmentIndex::build(n, file, digest, items).map_err(|e| LoadError::at(0, 0, e))
}

/// Where each execution's text is in a segment laid out as Zoe writes them, and where the list
/// ends (its `    ],` line).
fn item_places(text: &str) -> Option<(Vec<(usize, usize)>, usize)> {
    const LIST: &str = "\n    executions: [\n";
    const OPEN: &str = "        (\n";
    const CLOSE: &str = "\n        ),\n";
    let mut at = text.find(LIST)? + LIST.len();
    let mut places = Vec::new();
    while !text[at..].starts_with("    ],\n") {
        if !text[at..].starts_with(OPEN) {
            return None;
        }
        let end = at + text[at..].find(CLOSE)? + CLOSE.len() - 2;
        if end - at > u32::MAX as usize {
            return None;
        }
        places.push((at, end - at));
        at = end + 2;
    }
    Some((places, at))
}

/// Parses a segment's text and checks it: its header, and that it holds only ended executions
/// with sound names and ids.
pub fn decode_segment(text: &str, n: u64, deployment: &str) -> Result<Segment, LoadError> {
    let segment: Segment =
        ron::from_str(text).map_err(|e| LoadError::at(e.span.start.line, e.span.start.col, e.code.to_string()))?;
    check_segment(text, &segment, n, deployment)?;
    Ok(segment)
}

/// Checks a parsed segment (`text` is where the place of a problem is found).
fn check_segment(text: &str, segment: &Segment, n: u64, deployment: &str) -> Result<(), LoadError> {
    let at = |needle: &str, reason: String| {
        let (line, column) =
            text.lines().enumerate().find_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1))).unwrap_or((0, 0));
        LoadError::at(line, column, reason)
    };
    if segment.format_version != SEGMENT_FORMAT {
        return Err(at(
            "format_version",
            format!(
                "segment format_version {} is not {SEGMENT_FORMAT}, the one this Zoe reads",
                segment.format_version
            ),
        ));
    }
    if segment.segment != n {
        return Err(at("segment:", format!("the file of segment {n} says it is segment {}", segment.segment)));
    }
    if segment.deployment_name != deployment {
        return Err(at(
            "deployment_name",
            format!("segment of deployment {:?}, not {deployment:?}", segment.deployment_name),
        ));
    }
    if segment.executions.is_empty() {
        return Err(at("executions", "a segment holds at least one execution".into()));
    }
    let mut ids = HashSet::new();
    let mut last = None;
    for e in &segment.executions {
        let here = |reason: String| at(&format!("id: {},", e.id), format!("execution {}: {reason}", e.id));
        if last.is_some_and(|l| l >= e.id) {
            return Err(here("executions are not in id order".into()));
        }
        last = Some(e.id);
        if !e.status.is_final() || e.time_finished.is_none() {
            return Err(here(format!("it is {}; only ended executions are archived", e.status.as_str())));
        }
        if !is_dns_label(&e.name) || !is_dns_label(&e.owner) {
            return Err(here(format!("name {:?} or owner {:?} is not a lowercase DNS label", e.name, e.owner)));
        }
        if e.application.services.is_empty() {
            return Err(here("its application has no services".into()));
        }
        crate::codec::check_application(&e.application).map_err(|(_, reason)| here(reason))?;
        for id in std::iter::once(e.id).chain(e.services.iter().map(|s| s.id)) {
            if !ids.insert(id) {
                return Err(here(format!("id {id} is used twice")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use time::macros::datetime;

    fn tempdir(tag: &str) -> PathBuf {
        crate::tempdir(&format!("archive-{tag}"))
    }

    pub(super) fn ended(id: u64, owner: &str, status: ExecutionStatus) -> Arc<Execution> {
        Arc::new(Execution {
            id,
            name: format!("run-{id}"),
            owner: owner.into(),
            owner_id: 1,
            status,
            error: Some("a \"quoted\"\n)\n        ),\nline".into()),
            ending: None,
            time_scheduled: datetime!(2026-11-25 08:00:00 UTC),
            time_started: Some(datetime!(2026-11-25 08:00:01 UTC)),
            time_finished: Some(datetime!(2026-11-25 08:00:02.25 UTC)),
            application: Application {
                name: "app".into(),
                version: 2,
                will_end: true,
                requires_binary: false,
                priority: 1,
                services: vec![ServiceDescription {
                    name: "main".into(),
                    docker_image: "img".into(),
                    monitor: true,
                    total_count: 1,
                    essential_count: 1,
                    startup_order: 0,
                    ports: vec![],
                    required_resources: Resources { memory: 64 << 20, cores: None },
                    environment: vec![],
                    command: None,
                    volumes: vec![],
                    networks: vec![],
                    datasets: vec![],
                }],
            },
            services: vec![Service {
                exit_code: Some(0),
                ..Service::new(id + 1, format!("main-run-{id}-{owner}-dev"), "main", 0, true, ServiceStatus::Exited)
            }],
            proxy_secret: None,
            usage: Default::default(),
            usage_series: Default::default(),
        })
    }

    /// An archive in a fresh folder, with one segment: alice's execution 2, finished.
    fn archive_of_one(tag: &str) -> (PathBuf, Archive) {
        let d = tempdir(tag);
        let a = Archive::open(&d).unwrap();
        a.write("dev", 1, &[ended(2, "alice", ExecutionStatus::Finished)]).unwrap();
        (d, a)
    }

    fn index_of(a: &Archive) -> (ArchiveIndex, Vec<IndexNote>) {
        let mut notes = Vec::new();
        let upto = a.list().unwrap().len() as u64;
        let index = a.index("dev", upto, |n| notes.push(n)).unwrap();
        notes.retain(|n| !matches!(n, IndexNote::Progress { .. }));
        (index, notes)
    }

    fn ids_of(index: &ArchiveIndex) -> Vec<u64> {
        index.select(&ArchiveFilter::default(), None, |_| false).items.iter().map(|a| a.entry().id).collect()
    }

    #[test]
    fn segments_are_written_once_indexed_and_read_back_one_execution_at_a_time() {
        let d = tempdir("rw");
        let a = Archive::open(&d).unwrap();
        let batch = [ended(10, "alice", ExecutionStatus::Finished), ended(4, "bob", ExecutionStatus::Error)];
        let idx = a.write("dev", 1, &batch).unwrap().0;
        assert_eq!(idx.ids().collect::<Vec<_>>(), [4, 10], "id order");
        // The same segment again (a retry) is no error; another one under its number is.
        assert!(a.write("dev", 1, &batch).is_ok());
        assert!(a.write("dev", 1, &batch[..1]).unwrap_err().contains("never rewritten"));
        let mode = fs::metadata(a.path(1)).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        let index = ArchiveIndex::empty(a.dir()).with_segment(idx.clone());
        for e in &batch {
            assert_eq!(&index.read(&index.get(e.id).unwrap()).unwrap(), e.as_ref());
            assert_eq!(index.get_by_service(e.id + 1).unwrap().entry().id, e.id);
            let entry = index.get(e.id).unwrap();
            let entry = entry.entry();
            assert_eq!((entry.owner, entry.name, entry.status), (e.owner.as_str(), e.name.as_str(), e.status));
        }
        assert!(index.get(5).is_none() && index.get_by_service(10).is_none());
        assert_eq!((index.len(), index.count(ExecutionStatus::Error), index.max_id()), (2, 1, Some(11)));
        // The index file holds what was made while writing; without it, the segments are indexed
        // from their text, the same, and it is written again.
        let (again, notes) = index_of(&a);
        assert_eq!(again.segment(1), index.segment(1));
        assert!(notes.is_empty(), "{notes:?}");
        fs::remove_file(a.index_path()).unwrap();
        fs::write(a.dir().join("0000000001.idx"), "an index of an older Zoe").unwrap();
        let (rebuilt, notes) = index_of(&a);
        assert_eq!(rebuilt.segment(1), index.segment(1));
        assert_eq!(notes.len(), 2, "indexed again, and the old index file removed: {notes:?}");
        assert!(a.index_path().exists() && !a.dir().join("0000000001.idx").exists());
        assert_eq!(index_of(&a).1, [], "then fast again");
        assert_eq!(a.load(1, "dev").unwrap().executions.len(), 2);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_newer_segment_holding_an_execution_again_wins_and_it_is_counted_once() {
        let d = tempdir("dup");
        let a = Archive::open(&d).unwrap();
        let first = a
            .write("dev", 1, &[ended(2, "alice", ExecutionStatus::Error), ended(6, "alice", ExecutionStatus::Finished)])
            .unwrap()
            .0;
        let second = a.write("dev", 2, &[ended(6, "alice", ExecutionStatus::Terminated)]).unwrap().0;
        let grown = ArchiveIndex::empty(a.dir()).with_segment(first).with_segment(second);
        let (at_start, _) = index_of(&a);
        for index in [grown, at_start] {
            assert_eq!(index.len(), 2);
            assert_eq!((index.count(ExecutionStatus::Finished), index.count(ExecutionStatus::Terminated)), (0, 1));
            assert_eq!(index.get(6).unwrap().segment.number, 2);
            assert_eq!(ids_of(&index), [2, 6]);
            assert_eq!(index.last_segment(), 2);
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn damaged_or_foreign_segments_are_refused_with_a_reason() {
        let (d, a) = archive_of_one("bad");
        let text = a.read(1).unwrap();
        assert!(decode_segment(&text, 1, "dev").is_ok());
        let refused = |t: &str, n: u64, dep: &str| decode_segment(t, n, dep).unwrap_err().reason;
        assert!(refused(&text, 2, "dev").contains("says it is segment 1"));
        assert!(refused(&text, 1, "prod").contains("deployment"));
        assert!(refused(&text.replace("status: finished", "status: running"), 1, "dev").contains("only ended"));
        assert!(refused(&text.replace("id: 3,", "id: 2,"), 1, "dev").contains("used twice"));
        assert!(refused(&text[..text.len() / 2], 1, "dev").len() > 3);
        let e = decode_segment(&text.replace("format_version: 1", "format_version: 7"), 1, "dev").unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_segment_edited_by_hand_is_caught_when_read_and_indexed_again_at_start() {
        let (d, a) = archive_of_one("edit");
        let (index, _) = index_of(&a);
        let text = a.read(1).unwrap();
        // The same size, another name: a running master finds that the text is not the one it
        // indexed, and says that a restart helps.
        let edited = text.replace("run-2", "run-9");
        assert_eq!(edited.len(), text.len());
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(a.path(1), &edited).unwrap();
        let err = index.read(&index.get(2).unwrap()).unwrap_err();
        assert!(err.reason.contains("changed after the master indexed it") && err.reason.contains("restart"), "{err}");
        // The restart indexes it again: listings and reads agree with the file.
        let (index, notes) = index_of(&a);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(index.get(2).unwrap().entry().name, "run-9");
        assert_eq!(&*index.read(&index.get(2).unwrap()).unwrap().name, "run-9");
        // Touched but the same text: read and compared, not indexed again.
        fs::write(a.path(1), &edited).unwrap();
        let (_, notes) = index_of(&a);
        assert_eq!(notes, [], "the same digest");
        // An edit that breaks it stops the start, with its place.
        let broken = edited.replace("status: finished", "status: finishex");
        let line = broken.lines().position(|l| l.contains("finishex")).unwrap() + 1;
        fs::write(a.path(1), &broken).unwrap();
        let err = a.index("dev", 1, |_| {}).unwrap_err();
        assert_eq!((err.file.as_deref(), err.line), (Some(a.path(1).as_path()), line), "{err}");
        // Sound RON, but not laid out as Zoe writes segments: refused too (its places would be
        // guesses).
        fs::write(
            a.path(1),
            edited.replace("        (\n            id: 2,", "        // a note\n        (\n            id: 2,"),
        )
        .unwrap();
        assert!(decode_segment(&a.read(1).unwrap(), 1, "dev").is_ok());
        let err = a.index("dev", 1, |_| {}).unwrap_err();
        assert!(err.reason.contains("not laid out as Zoe writes"), "{err}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn segment_numbers_are_one_to_n_without_a_gap_and_crash_leftovers_are_told_apart() {
        assert_eq!(check_numbers(&[], 0), Ok(0));
        assert_eq!(check_numbers(&[1, 2, 3], 2), Ok(3));
        assert_eq!(check_numbers(&[1, 2], 3), Err(LayoutError::Missing(3)));
        assert_eq!(check_numbers(&[1, 3], 3), Err(LayoutError::Missing(2)));
        assert_eq!(check_numbers(&[1, 2, 5, 6], 2), Err(LayoutError::Stray { missing: 3, strays: vec![5, 6] }));
        assert_eq!(check_numbers(&[4], 0), Err(LayoutError::Stray { missing: 1, strays: vec![4] }));

        let (d, a) = archive_of_one("stray");
        a.write("dev", 2, &[ended(4, "alice", ExecutionStatus::Finished), ended(8, "alice", ExecutionStatus::Error)])
            .unwrap();
        let (index, _) = index_of(&a);
        let mut state = State::new("dev");
        state.next_id = 8;
        state.archived_segments = 1;
        // Segment 2 holds 4, which the state neither holds nor was about to create.
        assert_eq!(foreign_execution(&index, &state), Some((2, 4)));
        // Written just before a crash: what it holds is in the state, or newer than it.
        state.executions.insert(4, ended(4, "alice", ExecutionStatus::Running));
        assert_eq!(foreign_execution(&index, &state), None);
        state.archived_segments = 2;
        state.executions.clear();
        assert_eq!(foreign_execution(&index, &state), None, "needed");
        fs::remove_dir_all(&d).unwrap();
    }
}
