//! The archive: ended executions moved out of the checkpoints, so that a change costs the same
//! whatever the history.
//!
//! Layout: `<state-dir>/archive/0000000007.ron` is segment 7, pretty RON like a checkpoint, with
//! a header (format, deployment, number) and the executions it holds, in id order. A segment is
//! written once, atomically, and never changed: the archive only grows, one segment at a time.
//! Next to it, `0000000007.idx` is its index (one line per execution: what listings filter on and
//! where its text is in the segment). The index is derived: it is rebuilt from the segment when it
//! is missing or does not match the segment's size.
//!
//! The master keeps the indexes in memory ([`ArchiveIndex`]) and reads an execution's text from
//! its segment when asked. A checkpoint says how many segments it needs (`archived_segments`);
//! an execution found both in the checkpoint and in a segment (a crash between writing a segment
//! and the checkpoint that drops its executions, or a revert) is the checkpoint's, and one found
//! in two segments is the newer segment's: nothing is lost, nothing is counted twice.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::codec::{is_dns_label, list_item, LoadError};
use crate::model::{Execution, ExecutionStatus, Timestamp};
use crate::store::{private_dir, write_atomic};

/// The format of archive segments.
pub const SEGMENT_FORMAT: u32 = 1;
/// Digits in a segment's file name.
const DIGITS: usize = 10;
const TMP_PREFIX: &str = ".tmp-";
/// The first line of an index that is not a comment: `index <format> <deployment> <segment>
/// <segment bytes> <entries>`.
const INDEX_TAG: &str = "index";

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

/// One archived execution in memory: what listings filter on and where its text is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: u64,
    pub owner_id: u64,
    pub owner: Arc<str>,
    pub name: Box<str>,
    pub status: ExecutionStatus,
    pub time_scheduled: Timestamp,
    pub time_finished: Timestamp,
    /// Byte offset and length of its text in the segment.
    pub offset: u64,
    pub len: u32,
}

/// The index of one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentIndex {
    pub number: u64,
    /// The segment file's size (an index made for another size is stale).
    pub bytes: u64,
    /// In id order.
    pub entries: Vec<Entry>,
    /// Service id to the index of its execution in `entries`, in service id order.
    services: Vec<(u64, u32)>,
}

impl SegmentIndex {
    fn new(number: u64, bytes: u64, mut entries: Vec<Entry>, mut services: Vec<(u64, u32)>) -> SegmentIndex {
        entries.sort_by_key(|e| e.id);
        services.sort_unstable();
        SegmentIndex { number, bytes, entries, services }
    }

    fn find(&self, id: u64) -> Option<usize> {
        self.entries.binary_search_by_key(&id, |e| e.id).ok()
    }

    fn find_service(&self, service_id: u64) -> Option<usize> {
        let i = self.services.binary_search_by_key(&service_id, |(s, _)| *s).ok()?;
        Some(self.services[i].1 as usize)
    }

    /// The highest id it holds (executions and services).
    fn max_id(&self) -> Option<u64> {
        let e = self.entries.last().map(|e| e.id);
        let s = self.services.last().map(|(s, _)| *s);
        e.max(s)
    }
}

/// An archived execution: its segment's index and its place there.
#[derive(Clone, Debug)]
pub struct Archived {
    pub segment: Arc<SegmentIndex>,
    index: usize,
}

impl Archived {
    pub fn entry(&self) -> &Entry {
        &self.segment.entries[self.index]
    }
}

/// Every segment's index: what the master keeps in memory of the archive. Cheap to clone (each
/// segment's index is shared); a new segment makes a new `ArchiveIndex`.
#[derive(Clone, Debug, Default)]
pub struct ArchiveIndex {
    dir: PathBuf,
    /// In segment order.
    segments: Vec<Arc<SegmentIndex>>,
    /// (segment, id) of entries a newer segment holds again.
    shadowed: Arc<HashSet<(u64, u64)>>,
    /// Executions by status, not counting shadowed entries.
    by_status: HashMap<ExecutionStatus, usize>,
    max_id: Option<u64>,
}

impl ArchiveIndex {
    /// An empty archive in `dir`.
    pub fn empty(dir: &Path) -> ArchiveIndex {
        ArchiveIndex { dir: dir.to_path_buf(), ..ArchiveIndex::default() }
    }

    /// The same archive with one more segment (numbered above every other).
    pub fn with_segment(&self, seg: Arc<SegmentIndex>) -> ArchiveIndex {
        let mut next = self.clone();
        let mut shadowed = None;
        for e in &seg.entries {
            if let Some(old) = self.get(e.id) {
                *next.by_status.entry(old.entry().status).or_default() -= 1;
                shadowed.get_or_insert_with(|| (*self.shadowed).clone()).insert((old.segment.number, e.id));
            }
            *next.by_status.entry(e.status).or_default() += 1;
        }
        if let Some(s) = shadowed {
            next.shadowed = Arc::new(s);
        }
        next.max_id = next.max_id.max(seg.max_id());
        next.segments.push(seg);
        next
    }

    /// The number of the newest segment (0: none).
    pub fn last_segment(&self) -> u64 {
        self.segments.last().map(|s| s.number).unwrap_or(0)
    }

    /// The segments' numbers.
    pub fn segment_numbers(&self) -> impl Iterator<Item = u64> + '_ {
        self.segments.iter().map(|s| s.number)
    }

    /// The highest id of an archived execution or service.
    pub fn max_id(&self) -> Option<u64> {
        self.max_id
    }

    /// Archived executions (each counted once).
    pub fn len(&self) -> usize {
        self.by_status.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Archived executions with this status.
    pub fn count(&self, status: ExecutionStatus) -> usize {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    /// The archived execution with this id (the newest segment's, if two hold it).
    pub fn get(&self, id: u64) -> Option<Archived> {
        self.segments.iter().rev().find_map(|s| s.find(id).map(|index| Archived { segment: s.clone(), index }))
    }

    /// The archived execution holding the service with this id.
    pub fn get_by_service(&self, service_id: u64) -> Option<Archived> {
        self.segments
            .iter()
            .rev()
            .find_map(|s| s.find_service(service_id).map(|index| Archived { segment: s.clone(), index }))
    }

    /// Every archived execution once, segment by segment (not in id order).
    pub fn entries(&self) -> impl Iterator<Item = (&Arc<SegmentIndex>, usize)> + '_ {
        self.segments.iter().flat_map(move |s| {
            (0..s.entries.len())
                .filter(move |i| self.shadowed.is_empty() || !self.shadowed.contains(&(s.number, s.entries[*i].id)))
                .map(move |i| (s, i))
        })
    }

    /// An entry as an [`Archived`].
    pub fn archived(segment: &Arc<SegmentIndex>, index: usize) -> Archived {
        Archived { segment: segment.clone(), index }
    }

    /// Reads an archived execution from its segment.
    pub fn read(&self, a: &Archived) -> Result<Execution, LoadError> {
        let path = segment_path(&self.dir, a.segment.number);
        let e = a.entry();
        let mut buf = vec![0; e.len as usize];
        File::open(&path)
            .and_then(|f| f.read_exact_at(&mut buf, e.offset))
            .map_err(|err| LoadError::io(&path, &err))?;
        let text = std::str::from_utf8(&buf).map_err(|_| stale(&path, e.id))?;
        let execution: Execution = ron::from_str(text).map_err(|_| stale(&path, e.id))?;
        if execution.id != e.id {
            return Err(stale(&path, e.id));
        }
        Ok(execution)
    }
}

fn stale(path: &Path, id: u64) -> LoadError {
    LoadError {
        file: Some(path.to_path_buf()),
        line: 0,
        column: 0,
        reason: format!(
            "execution {id} is not where the index says; the segment was changed after it was written \
             (restart the master to re-index it)"
        ),
    }
}

/// The path of segment `n` in `dir`.
pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:0DIGITS$}.ron"))
}

fn index_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:0DIGITS$}.idx"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".ron")?;
    (stem.len() == DIGITS && stem.bytes().all(|b| b.is_ascii_digit())).then(|| stem.parse().ok()).flatten()
}

/// One segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFile {
    pub number: u64,
    pub path: PathBuf,
    pub size: u64,
}

/// The archive directory.
#[derive(Clone, Debug)]
pub struct Archive {
    dir: PathBuf,
}

impl Archive {
    /// Opens (creating if needed) `<state_dir>/archive`, and removes temporary files of writes a
    /// crash interrupted.
    pub fn open(state_dir: &Path) -> io::Result<Archive> {
        let dir = state_dir.join("archive");
        private_dir(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(Archive { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, n: u64) -> PathBuf {
        segment_path(&self.dir, n)
    }

    /// Every segment file, in number order.
    pub fn list(&self) -> io::Result<Vec<SegmentFile>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(number) = parse_segment_name(&entry.file_name().to_string_lossy()) {
                out.push(SegmentFile { number, path: entry.path(), size: entry.metadata()?.len() });
            }
        }
        out.sort_by_key(|s| s.number);
        Ok(out)
    }

    /// Writes segment `n` holding `executions` (ended, in any order), then its index; returns
    /// the index, and a warning when only the index could not be written (the next start
    /// rebuilds it). The segment is durable before this returns.
    pub fn write(
        &self,
        deployment: &str,
        n: u64,
        executions: &[Arc<Execution>],
    ) -> Result<(Arc<SegmentIndex>, Option<String>), String> {
        let mut sorted: Vec<&Execution> = executions.iter().map(|e| e.as_ref()).collect();
        sorted.sort_by_key(|e| e.id);
        let (text, places) = encode_segment(deployment, n, &sorted).map_err(|e| format!("cannot encode: {e}"))?;
        let path = self.path(n);
        if path.exists() {
            return Err(format!("{} already exists; segments are never rewritten", path.display()));
        }
        write_atomic(&path, text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let index = index_of(n, text.len() as u64, sorted.into_iter().zip(places));
        let warning = write_atomic(&index_path(&self.dir, n), index_text(deployment, &index).as_bytes())
            .err()
            .map(|e| format!("cannot write the index of archive segment {n} (the next start rebuilds it): {e}"));
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

    /// Every segment's index, rebuilding (and rewriting) those missing or stale. `notes` hears
    /// about each rebuild.
    pub fn index(&self, deployment: &str, mut notes: impl FnMut(String)) -> Result<ArchiveIndex, LoadError> {
        let mut archive = ArchiveIndex::empty(&self.dir);
        for f in self.list().map_err(|e| LoadError::io(&self.dir, &e))? {
            let ipath = index_path(&self.dir, f.number);
            let read = fs::read_to_string(&ipath).ok().and_then(|t| parse_index(&t, deployment, f.number, f.size));
            let index = match read {
                Some(i) => i,
                None => {
                    let text = fs::read_to_string(&f.path).map_err(|e| LoadError::io(&f.path, &e))?;
                    let (index, _) = index_segment(&text, f.number, deployment).map_err(|e| e.in_file(&f.path))?;
                    notes(format!("archive segment {} re-indexed ({} executions)", f.number, index.entries.len()));
                    if let Err(e) = write_atomic(&ipath, index_text(deployment, &index).as_bytes()) {
                        notes(format!("cannot write {}: {e}", ipath.display()));
                    }
                    index
                }
            };
            archive = archive.with_segment(Arc::new(index));
        }
        Ok(archive)
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

fn index_of<'a>(n: u64, bytes: u64, items: impl Iterator<Item = (&'a Execution, (u64, u32))>) -> SegmentIndex {
    let mut owners: HashMap<&str, Arc<str>> = HashMap::new();
    let mut entries = Vec::new();
    let mut services = Vec::new();
    for (i, (e, (offset, len))) in items.enumerate() {
        let owner = owners.entry(e.owner.as_str()).or_insert_with(|| e.owner.as_str().into()).clone();
        entries.push(Entry {
            id: e.id,
            owner_id: e.owner_id,
            owner,
            name: e.name.as_str().into(),
            status: e.status,
            time_scheduled: e.time_scheduled,
            time_finished: e.time_finished.unwrap_or(e.time_scheduled),
            offset,
            len,
        });
        services.extend(e.services.iter().map(|s| (s.id, i as u32)));
    }
    // Entries come in id order; services point at their positions.
    SegmentIndex::new(n, bytes, entries, services)
}

fn index_text(deployment: &str, index: &SegmentIndex) -> String {
    let mut services: HashMap<u32, Vec<u64>> = HashMap::new();
    for (s, i) in &index.services {
        services.entry(*i).or_default().push(*s);
    }
    let mut out = format!(
        "# Zoe archive index, derived from segment {:0DIGITS$}.ron; rebuilt when missing or stale. Columns:\n\
         # id owner_id owner status time_scheduled_ns time_finished_ns offset length name service_ids\n\
         {INDEX_TAG} {SEGMENT_FORMAT} {deployment} {} {} {}\n",
        index.number,
        index.number,
        index.bytes,
        index.entries.len()
    );
    for (i, e) in index.entries.iter().enumerate() {
        let svc = services.get(&(i as u32)).map(|v| v.iter().map(u64::to_string).collect::<Vec<_>>().join(","));
        let _ = writeln!(
            out,
            "{} {} {} {} {} {} {} {} {} {}",
            e.id,
            e.owner_id,
            e.owner,
            e.status.as_str(),
            e.time_scheduled.unix_timestamp_nanos(),
            e.time_finished.unix_timestamp_nanos(),
            e.offset,
            e.len,
            e.name,
            svc.as_deref().unwrap_or("-")
        );
    }
    out
}

/// An index file's contents, if it is well formed and made for this very segment.
fn parse_index(text: &str, deployment: &str, n: u64, bytes: u64) -> Option<SegmentIndex> {
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let head: Vec<&str> = lines.next()?.split(' ').collect();
    let expected = [INDEX_TAG, &SEGMENT_FORMAT.to_string(), deployment, &n.to_string(), &bytes.to_string()];
    if head.len() != 6 || head[..5] != expected {
        return None;
    }
    let count: usize = head[5].parse().ok()?;
    let mut owners: HashMap<&str, Arc<str>> = HashMap::new();
    let mut entries = Vec::with_capacity(count);
    let mut services = Vec::new();
    let time = |s: &str| s.parse::<i128>().ok().and_then(|ns| OffsetDateTime::from_unix_timestamp_nanos(ns).ok());
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 10 {
            return None;
        }
        let status = ExecutionStatus::parse(f[3]).filter(|s| s.is_final())?;
        let i = entries.len() as u32;
        if f[9] != "-" {
            for s in f[9].split(',') {
                services.push((s.parse().ok()?, i));
            }
        }
        entries.push(Entry {
            id: f[0].parse().ok()?,
            owner_id: f[1].parse().ok()?,
            owner: owners.entry(f[2]).or_insert_with(|| f[2].into()).clone(),
            name: f[8].into(),
            status,
            time_scheduled: time(f[4])?,
            time_finished: time(f[5])?,
            offset: f[6].parse().ok()?,
            len: f[7].parse().ok()?,
        });
    }
    if entries.len() != count || entries.windows(2).any(|w| w[0].id >= w[1].id) {
        return None;
    }
    Some(SegmentIndex::new(n, bytes, entries, services))
}

/// Parses and checks a segment's text, and indexes it.
fn index_segment(text: &str, n: u64, deployment: &str) -> Result<(SegmentIndex, Segment), LoadError> {
    let segment = decode_segment(text, n, deployment)?;
    // Find each execution's text again: it starts at the line `        (` before its `id:` line
    // and ends before the `        ),` that closes it. Parse what was found to be sure.
    let mut places = Vec::with_capacity(segment.executions.len());
    let mut from = 0;
    for e in &segment.executions {
        let (offset, len) = find_item(text, from, e.id)
            .ok_or_else(|| LoadError::at(0, 0, format!("execution {} is not laid out as Zoe writes segments", e.id)))?;
        let parsed: Result<Execution, _> = ron::from_str(&text[offset..offset + len]);
        if parsed.as_ref().ok() != Some(e) {
            return Err(LoadError::at(0, 0, format!("execution {} is not laid out as Zoe writes segments", e.id)));
        }
        places.push((offset as u64, len as u32));
        from = offset + len;
    }
    let index = index_of(n, text.len() as u64, segment.executions.iter().zip(places));
    Ok((index, segment))
}

/// The byte range of the list item holding execution `id`, searching from `from`.
fn find_item(text: &str, from: usize, id: u64) -> Option<(usize, usize)> {
    const OPEN: &str = "\n        (\n";
    const CLOSE: &str = "\n        ),\n";
    let start = from + text[from..].find(OPEN)? + 1;
    let body = start + OPEN.len() - 1;
    if !text[body..].trim_start().starts_with(&format!("id: {id},")) {
        return None;
    }
    let end = body + text[body..].find(CLOSE)? + CLOSE.len() - 2;
    Some((start, end - start))
}

/// Parses a segment's text and checks it: its header, and that it holds only ended executions
/// with sound names and ids.
pub fn decode_segment(text: &str, n: u64, deployment: &str) -> Result<Segment, LoadError> {
    let segment: Segment =
        ron::from_str(text).map_err(|e| LoadError::at(e.span.start.line, e.span.start.col, e.code.to_string()))?;
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
        for id in std::iter::once(e.id).chain(e.services.iter().map(|s| s.id)) {
            if !ids.insert(id) {
                return Err(here(format!("id {id} is used twice")));
            }
        }
    }
    Ok(segment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use std::collections::BTreeMap;
    use time::macros::datetime;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("zoe-archive-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn ended(id: u64, owner: &str, status: ExecutionStatus) -> Arc<Execution> {
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
                    required_resources: Resources { memory: 1 << 20, cores: None },
                    environment: vec![],
                    command: None,
                    volumes: vec![],
                    networks: vec![],
                }],
            },
            services: vec![Service {
                id: id + 1,
                name: format!("main-run-{id}-{owner}-dev"),
                service_name: "main".into(),
                index: 0,
                is_monitor: true,
                status: ServiceStatus::Exited,
                docker_id: None,
                exit_code: Some(0),
                oom_killed: false,
                ip_address: BTreeMap::new(),
                ports: vec![],
                node: None,
                retries: 0,
            }],
            proxy_secret: None,
        })
    }

    #[test]
    fn segments_are_written_once_indexed_and_read_back_one_execution_at_a_time() {
        let d = tempdir("rw");
        let a = Archive::open(&d).unwrap();
        let batch = [ended(10, "alice", ExecutionStatus::Finished), ended(4, "bob", ExecutionStatus::Error)];
        let idx = a.write("dev", 1, &batch).unwrap().0;
        assert_eq!(idx.entries.iter().map(|e| e.id).collect::<Vec<_>>(), [4, 10], "id order");
        assert!(a.write("dev", 1, &batch).unwrap_err().contains("never rewritten"));
        let mode = fs::metadata(a.path(1)).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        let index = ArchiveIndex::empty(a.dir()).with_segment(idx.clone());
        for e in &batch {
            assert_eq!(&index.read(&index.get(e.id).unwrap()).unwrap(), e.as_ref());
            assert_eq!(index.get_by_service(e.id + 1).unwrap().entry().id, e.id);
        }
        assert!(index.get(5).is_none() && index.get_by_service(10).is_none());
        assert_eq!((index.len(), index.count(ExecutionStatus::Error), index.max_id()), (2, 1, Some(11)));
        // The index on disk reads back as the one made while writing; a missing or stale one is
        // rebuilt from the segment, the same.
        let again = a.index("dev", |_| {}).unwrap();
        assert_eq!(again.segments, index.segments);
        fs::remove_file(index_path(a.dir(), 1)).unwrap();
        let mut notes = Vec::new();
        let rebuilt = a.index("dev", |n| notes.push(n)).unwrap();
        assert_eq!(rebuilt.segments, index.segments);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(index_path(a.dir(), 1).exists(), "rewritten");
        fs::write(index_path(a.dir(), 1), "index 1 dev 1 12 2\n").unwrap();
        assert_eq!(a.index("dev", |_| {}).unwrap().segments, index.segments, "stale: another size");
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
        let index = ArchiveIndex::empty(a.dir()).with_segment(first).with_segment(second);
        assert_eq!(index.len(), 2);
        assert_eq!((index.count(ExecutionStatus::Finished), index.count(ExecutionStatus::Terminated)), (0, 1));
        assert_eq!(index.get(6).unwrap().segment.number, 2);
        let mut ids: Vec<u64> = index.entries().map(|(s, i)| s.entries[i].id).collect();
        ids.sort();
        assert_eq!(ids, [2, 6]);
        assert_eq!(index.last_segment(), 2);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn damaged_or_foreign_segments_are_refused_with_a_reason() {
        let d = tempdir("bad");
        let a = Archive::open(&d).unwrap();
        a.write("dev", 1, &[ended(2, "alice", ExecutionStatus::Finished)]).unwrap();
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
        // A hand-edited segment whose size changed is re-indexed; an index that points at the
        // wrong place is caught when reading.
        fs::write(a.path(1), text.replace("run-2", "run-two")).unwrap();
        let index = a.index("dev", |_| {}).unwrap();
        assert_eq!(&*index.read(&index.get(2).unwrap()).unwrap().name, "run-two");
        let mut moved = (*index.get(2).unwrap().segment).clone();
        moved.entries[0].offset += 1;
        let wrong = ArchiveIndex::empty(a.dir()).with_segment(Arc::new(moved));
        assert!(wrong.read(&wrong.get(2).unwrap()).unwrap_err().reason.contains("not where the index says"));
        fs::remove_dir_all(&d).unwrap();
    }
}
