//! The archive's index in memory: what listings filter on and where each archived execution's
//! text is, compact (about 70 bytes an execution), with no execution materialized.
//!
//! Each segment's index ([`SegmentIndex`]) holds fixed-size slots in id order, its owners and
//! names once each, and its services. Across segments, an [`IdTable`] finds the segment holding
//! an id without looking at the others (before it, finding one meant a binary search in every
//! segment, and adding a segment at start looked up each of its ids that way: quadratic, 98% of
//! a 40 s start with 500,000 archived executions).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::OffsetDateTime;

use super::usage::{DayRow, SlotUsage};
use super::{entry_digest, segment_path, FileMeta};
use crate::codec::LoadError;
use crate::model::{Execution, ExecutionStatus, Timestamp};

mod report;

/// A status as a small number: its place in [`ExecutionStatus::ALL`].
pub(super) fn status_code(s: ExecutionStatus) -> u8 {
    ExecutionStatus::ALL.iter().position(|x| *x == s).unwrap_or(0) as u8
}

pub(super) fn status_of(code: u8) -> Option<ExecutionStatus> {
    ExecutionStatus::ALL.get(code as usize).copied()
}

/// A time as Unix nanoseconds, saturating (years 1677 to 2262 are exact).
pub(super) fn nanos(t: Timestamp) -> i64 {
    t.unix_timestamp_nanos().clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// One archived execution in a segment's index: 40 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    pub id: u64,
    /// `time_scheduled`, Unix nanoseconds.
    pub scheduled: i64,
    /// Where its text is in the segment.
    pub offset: u64,
    pub len: u32,
    /// A digest of its text: a read checks that the segment did not change since it was indexed.
    pub digest: u32,
    /// Its name, in the segment's `names`.
    pub name_at: u32,
    pub name_len: u8,
    pub status: u8,
    /// Its owner, in the segment's `owners`.
    pub owner: u16,
}

/// An archived execution as the index knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub id: u64,
    pub owner_id: u64,
    pub owner: &'a str,
    pub name: &'a str,
    pub status: ExecutionStatus,
    pub time_scheduled: Timestamp,
}

/// The index of one segment.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentIndex {
    pub number: u64,
    /// The segment file as it was when indexed: a file that looks otherwise is checked again.
    pub(super) file: FileMeta,
    /// A digest of the whole segment.
    pub(super) digest: [u8; 32],
    /// In id order.
    pub(super) slots: Box<[Slot]>,
    /// (owner id, owner name), each once.
    pub(super) owners: Box<[(u64, Box<str>)]>,
    /// Every name, each once, one after the other.
    pub(super) names: Box<str>,
    /// Service ids in order, and the slot of the execution holding each.
    pub(super) service_ids: Box<[u64]>,
    pub(super) service_slots: Box<[u32]>,
    /// By slot: its run and usage totals.
    pub(super) usage: Box<[SlotUsage]>,
    /// The daily roll-up of its usage per owner, derived from `usage`.
    pub(super) days: Box<[DayRow]>,
    summary: Summary,
}

/// What lets a lookup or a listing pass a segment by without looking inside.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Summary {
    min_id: u64,
    max_id: u64,
    /// Bit `status_code` set for each status it holds.
    statuses: u8,
    max_scheduled: i64,
}

impl SegmentIndex {
    /// A segment's index from its parts, checked so that nothing read from it later can be out
    /// of bounds; the reason when it is not sound.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        number: u64,
        file: FileMeta,
        digest: [u8; 32],
        slots: Vec<Slot>,
        owners: Vec<(u64, Box<str>)>,
        names: Box<str>,
        mut services: Vec<(u64, u32)>,
        usage: Vec<SlotUsage>,
    ) -> Result<SegmentIndex, String> {
        if slots.is_empty() {
            return Err("a segment holds at least one execution".into());
        }
        if usage.len() != slots.len() {
            return Err("the usage of some executions is missing".into());
        }
        if let Some((s, _)) =
            slots.iter().zip(&usage).find(|(_, u)| !u.usage.is_sound() || (u.ran() && u.ended < u.started))
        {
            return Err(format!("execution {}: its usage is not sound", s.id));
        }
        if slots.windows(2).any(|w| w[0].id >= w[1].id) {
            return Err("executions are not in id order".into());
        }
        let mut summary = Summary { min_id: u64::MAX, max_scheduled: i64::MIN, ..Summary::default() };
        for s in &slots {
            let status = status_of(s.status).filter(|st| st.is_final());
            if status.is_none()
                || (s.owner as usize) >= owners.len()
                || names.get(s.name_at as usize..s.name_at as usize + s.name_len as usize).is_none()
                || s.offset.checked_add(u64::from(s.len)).is_none_or(|end| end > file.size)
            {
                return Err(format!("execution {}: its index entry is not sound", s.id));
            }
            summary.min_id = summary.min_id.min(s.id);
            summary.max_id = summary.max_id.max(s.id);
            summary.statuses |= 1 << s.status;
            summary.max_scheduled = summary.max_scheduled.max(s.scheduled);
        }
        services.sort_unstable();
        if services.windows(2).any(|w| w[0].0 == w[1].0) || services.iter().any(|(_, i)| *i as usize >= slots.len()) {
            return Err("a service id is used twice or points nowhere".into());
        }
        let (service_ids, service_slots) = services.into_iter().unzip::<_, _, Vec<_>, Vec<_>>();
        let owners_of: Vec<u16> = slots.iter().map(|s| s.owner).collect();
        let days = super::usage::days(&owners_of, &usage, |_| false).into();
        Ok(SegmentIndex {
            number,
            file,
            digest,
            slots: slots.into(),
            owners: owners.into(),
            names,
            service_ids: service_ids.into(),
            service_slots: service_slots.into(),
            usage: usage.into(),
            days,
            summary,
        })
    }

    /// The index of segment `number` holding `items` (each execution, where its text is in the
    /// segment, and that text's digest), in id order.
    pub(super) fn build<'a>(
        number: u64,
        file: FileMeta,
        digest: [u8; 32],
        items: impl Iterator<Item = (&'a Execution, u64, u32, u32)>,
    ) -> Result<SegmentIndex, String> {
        let mut owners: Vec<(u64, Box<str>)> = Vec::new();
        let mut owner_at: HashMap<(u64, &str), u16> = HashMap::new();
        let mut names = String::new();
        let mut name_at: HashMap<&str, u32> = HashMap::new();
        let mut slots = Vec::new();
        let mut services = Vec::new();
        let mut usage = Vec::new();
        for (e, offset, len, text_digest) in items {
            usage.push(SlotUsage::of(e));
            let owner = match owner_at.get(&(e.owner_id, e.owner.as_str())) {
                Some(i) => *i,
                None => {
                    let i = u16::try_from(owners.len()).map_err(|_| "a segment holds more than 65,535 owners")?;
                    owners.push((e.owner_id, e.owner.as_str().into()));
                    owner_at.insert((e.owner_id, e.owner.as_str()), i);
                    i
                }
            };
            let name_len =
                u8::try_from(e.name.len()).map_err(|_| format!("execution {}: its name is too long", e.id))?;
            let at = match name_at.get(e.name.as_str()) {
                Some(at) => *at,
                None => {
                    let at = u32::try_from(names.len()).map_err(|_| "the names of a segment exceed 4 GiB")?;
                    names.push_str(&e.name);
                    name_at.insert(e.name.as_str(), at);
                    at
                }
            };
            let i = u32::try_from(slots.len()).map_err(|_| "too many executions in one segment")?;
            services.extend(e.services.iter().map(|s| (s.id, i)));
            slots.push(Slot {
                id: e.id,
                scheduled: nanos(e.time_scheduled),
                offset,
                len,
                digest: text_digest,
                name_at: at,
                name_len,
                status: status_code(e.status),
                owner,
            });
        }
        SegmentIndex::new(number, file, digest, slots, owners, names.into(), services, usage)
    }

    /// Executions it holds.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The ids of the executions it holds, in order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots.iter().map(|s| s.id)
    }

    /// The execution at `i` (in id order).
    pub fn entry(&self, i: usize) -> Option<Entry<'_>> {
        self.slots.get(i).map(|s| self.entry_of(s))
    }

    pub(super) fn entry_of(&self, s: &Slot) -> Entry<'_> {
        let (owner_id, owner) = self.owners.get(s.owner as usize).map(|(id, n)| (*id, &**n)).unwrap_or((0, ""));
        Entry {
            id: s.id,
            owner_id,
            owner,
            name: self.name_of(s),
            status: status_of(s.status).unwrap_or(ExecutionStatus::Error),
            time_scheduled: OffsetDateTime::from_unix_timestamp_nanos(i128::from(s.scheduled))
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }
    }

    fn name_of(&self, s: &Slot) -> &str {
        self.names.get(s.name_at as usize..s.name_at as usize + s.name_len as usize).unwrap_or("")
    }

    fn find(&self, id: u64) -> Option<usize> {
        if id < self.summary.min_id || id > self.summary.max_id {
            return None;
        }
        self.slots.binary_search_by_key(&id, |s| s.id).ok()
    }

    fn find_service(&self, service_id: u64) -> Option<usize> {
        if self.service_ids.first().is_none_or(|first| service_id < *first)
            || self.service_ids.last().is_none_or(|last| service_id > *last)
        {
            return None;
        }
        let i = self.service_ids.binary_search(&service_id).ok()?;
        self.service_slots.get(i).map(|s| *s as usize)
    }

    /// The highest id it holds (executions and services).
    fn max_any(&self) -> u64 {
        self.summary.max_id.max(self.service_ids.last().copied().unwrap_or(0))
    }
}

/// An archived execution: its segment's index and its place there.
#[derive(Clone, Debug)]
pub struct Archived {
    pub segment: Arc<SegmentIndex>,
    index: usize,
}

impl Archived {
    pub fn entry(&self) -> Entry<'_> {
        match self.segment.slots.get(self.index) {
            Some(s) => self.segment.entry_of(s),
            // Never: an `Archived` is made only for a slot that exists.
            None => Entry {
                id: 0,
                owner_id: 0,
                owner: "",
                name: "",
                status: ExecutionStatus::Error,
                time_scheduled: OffsetDateTime::UNIX_EPOCH,
            },
        }
    }
}

/// Ids per chunk of the id table: ids share the bits above these.
const CHUNK_BITS: u32 = 12;
const CHUNK_MASK: u64 = (1 << CHUNK_BITS) - 1;

/// Where an id is: the low bits of the id, and the segment's place in [`ArchiveIndex`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Loc {
    segment: u32,
    low: u16,
}

/// Every archived execution id to the (newest) segment holding it: 8 bytes an id, in chunks of
/// ids that share their high bits, each shared between indexes until a new segment touches it.
#[derive(Clone, Debug, Default)]
struct IdTable {
    /// By chunk (the id's high bits), in order; in each, by the id's low bits.
    chunks: Vec<(u64, Arc<[Loc]>)>,
}

impl IdTable {
    fn get(&self, id: u64) -> Option<u32> {
        let c = self.chunks.binary_search_by_key(&(id >> CHUNK_BITS), |(k, _)| *k).ok()?;
        let locs = &self.chunks[c].1;
        let i = locs.binary_search_by_key(&((id & CHUNK_MASK) as u16), |l| l.low).ok()?;
        Some(locs[i].segment)
    }

    /// The table of these segments (in order: a later one holding an id again wins); calls
    /// `shadowed` with (segment place, id) for each id an older segment holds in vain.
    fn of(segments: &[Arc<SegmentIndex>], mut shadowed: impl FnMut(u32, u64)) -> IdTable {
        let mut chunks: BTreeMap<u64, Vec<Loc>> = BTreeMap::new();
        for (place, seg) in segments.iter().enumerate() {
            // Slots are in id order: one look-up per run of ids in the same chunk.
            let mut slots = seg.slots.iter().peekable();
            while let Some(first) = slots.next() {
                let key = first.id >> CHUNK_BITS;
                let locs = chunks.entry(key).or_default();
                locs.push(Loc { segment: place as u32, low: (first.id & CHUNK_MASK) as u16 });
                while let Some(s) = slots.next_if(|s| s.id >> CHUNK_BITS == key) {
                    locs.push(Loc { segment: place as u32, low: (s.id & CHUNK_MASK) as u16 });
                }
            }
        }
        let chunks = chunks
            .into_iter()
            .map(|(key, mut locs)| {
                // Stable: of two segments holding an id, the later stays last.
                locs.sort_by_key(|l| l.low);
                let mut kept: Vec<Loc> = Vec::with_capacity(locs.len());
                for l in locs {
                    match kept.last_mut() {
                        Some(last) if last.low == l.low => {
                            shadowed(last.segment, key << CHUNK_BITS | u64::from(l.low));
                            *last = l;
                        }
                        _ => kept.push(l),
                    }
                }
                (key, Arc::from(kept))
            })
            .collect();
        IdTable { chunks }
    }

    /// The same table with the ids of one more segment (at `place`, newer than all); calls
    /// `shadowed` with (segment place, id) for each id it takes over.
    fn with(&self, place: u32, seg: &SegmentIndex, mut shadowed: impl FnMut(u32, u64)) -> IdTable {
        let mut chunks = self.chunks.clone();
        let mut slots = seg.slots.iter().peekable();
        while let Some(first) = slots.next() {
            let key = first.id >> CHUNK_BITS;
            let mut new = vec![Loc { segment: place, low: (first.id & CHUNK_MASK) as u16 }];
            while let Some(s) = slots.next_if(|s| s.id >> CHUNK_BITS == key) {
                new.push(Loc { segment: place, low: (s.id & CHUNK_MASK) as u16 });
            }
            match chunks.binary_search_by_key(&key, |(k, _)| *k) {
                Ok(c) => {
                    let old = &chunks[c].1;
                    let mut merged = Vec::with_capacity(old.len() + new.len());
                    let (mut a, mut b) = (old.iter().copied().peekable(), new.into_iter().peekable());
                    loop {
                        match (a.peek(), b.peek()) {
                            (Some(x), Some(y)) if x.low < y.low => merged.push(*x),
                            (Some(x), Some(y)) if x.low == y.low => {
                                shadowed(x.segment, key << CHUNK_BITS | u64::from(x.low));
                                a.next();
                                continue;
                            }
                            (Some(x), None) => merged.push(*x),
                            (_, Some(y)) => {
                                merged.push(*y);
                                b.next();
                                continue;
                            }
                            (None, None) => break,
                        }
                        a.next();
                    }
                    chunks[c].1 = merged.into();
                }
                Err(c) => chunks.insert(c, (key, new.into())),
            }
        }
        IdTable { chunks }
    }

    #[cfg(test)]
    fn ids(&self) -> usize {
        self.chunks.iter().map(|(_, l)| l.len()).sum()
    }
}

/// Every segment's index: what the master keeps in memory of the archive. Cheap to clone (each
/// segment's index and each chunk of the id table is shared); a new segment makes a new
/// `ArchiveIndex`.
#[derive(Clone, Debug, Default)]
pub struct ArchiveIndex {
    dir: PathBuf,
    /// In segment order.
    pub(super) segments: Vec<Arc<SegmentIndex>>,
    ids: IdTable,
    /// By segment place: the ids a newer segment holds again (in order).
    pub(super) shadowed: Arc<HashMap<u32, Vec<u64>>>,
    /// Executions by status code, not counting shadowed entries.
    by_status: [usize; 8],
    max_id: Option<u64>,
    /// Segment places, the one with the highest id first: listings with a limit want the
    /// newest, and stop early.
    newest_first: Arc<[u32]>,
}

impl ArchiveIndex {
    /// An empty archive in `dir`.
    pub fn empty(dir: &Path) -> ArchiveIndex {
        ArchiveIndex { dir: dir.to_path_buf(), ..ArchiveIndex::default() }
    }

    /// The archive of these segments (in order).
    pub(super) fn of(dir: &Path, segments: Vec<SegmentIndex>) -> ArchiveIndex {
        let segments: Vec<Arc<SegmentIndex>> = segments.into_iter().map(Arc::new).collect();
        let mut shadowed: HashMap<u32, Vec<u64>> = HashMap::new();
        let ids = IdTable::of(&segments, |place, id| shadowed.entry(place).or_default().push(id));
        let mut by_status = [0; 8];
        for seg in &segments {
            for s in seg.slots.iter() {
                by_status[s.status as usize & 7] += 1;
            }
        }
        for (place, list) in shadowed.iter_mut() {
            list.sort_unstable();
            if let Some(seg) = segments.get(*place as usize) {
                for id in list.iter() {
                    if let Some(i) = seg.find(*id) {
                        by_status[seg.slots[i].status as usize & 7] -= 1;
                    }
                }
            }
        }
        let max_id = segments.iter().map(|s| s.max_any()).max();
        let mut newest_first: Vec<u32> = (0..segments.len() as u32).collect();
        newest_first.sort_by_key(|p| std::cmp::Reverse(segments[*p as usize].summary.max_id));
        ArchiveIndex {
            dir: dir.to_path_buf(),
            segments,
            ids,
            shadowed: Arc::new(shadowed),
            by_status,
            max_id,
            newest_first: newest_first.into(),
        }
    }

    /// The same archive with one more segment (numbered above every other).
    pub fn with_segment(&self, seg: Arc<SegmentIndex>) -> ArchiveIndex {
        let place = self.segments.len() as u32;
        let mut by_status = self.by_status;
        let mut shadowed: Option<HashMap<u32, Vec<u64>>> = None;
        let ids = self.ids.with(place, &seg, |old, id| {
            if let Some(i) = self.segments.get(old as usize).and_then(|s| s.find(id).map(|i| s.slots[i].status)) {
                by_status[i as usize & 7] -= 1;
            }
            let list = shadowed.get_or_insert_with(|| (*self.shadowed).clone()).entry(old).or_default();
            if let Err(at) = list.binary_search(&id) {
                list.insert(at, id);
            }
        });
        for s in seg.slots.iter() {
            by_status[s.status as usize & 7] += 1;
        }
        let mut newest_first = self.newest_first.to_vec();
        let at = newest_first.partition_point(|p| self.segments[*p as usize].summary.max_id >= seg.summary.max_id);
        newest_first.insert(at, place);
        let mut segments = self.segments.clone();
        let max_id = self.max_id.max(Some(seg.max_any()));
        segments.push(seg);
        ArchiveIndex {
            dir: self.dir.clone(),
            segments,
            ids,
            shadowed: shadowed.map(Arc::new).unwrap_or_else(|| self.shadowed.clone()),
            by_status,
            max_id,
            newest_first: newest_first.into(),
        }
    }

    /// The number of the newest segment (0: none).
    pub fn last_segment(&self) -> u64 {
        self.segments.last().map(|s| s.number).unwrap_or(0)
    }

    /// The segments' numbers.
    pub fn segment_numbers(&self) -> impl Iterator<Item = u64> + '_ {
        self.segments.iter().map(|s| s.number)
    }

    /// The index of segment `n`.
    pub fn segment(&self, n: u64) -> Option<&Arc<SegmentIndex>> {
        self.segments.iter().find(|s| s.number == n)
    }

    /// The highest id of an archived execution or service.
    pub fn max_id(&self) -> Option<u64> {
        self.max_id
    }

    /// Archived executions (each counted once).
    pub fn len(&self) -> usize {
        self.by_status.iter().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Archived executions with this status.
    pub fn count(&self, status: ExecutionStatus) -> usize {
        self.by_status[status_code(status) as usize & 7]
    }

    /// The archived execution with this id (the newest segment's, if two hold it).
    pub fn get(&self, id: u64) -> Option<Archived> {
        let seg = self.segments.get(self.ids.get(id)? as usize)?;
        seg.find(id).map(|index| Archived { segment: seg.clone(), index })
    }

    /// The archived execution holding the service with this id.
    pub fn get_by_service(&self, service_id: u64) -> Option<Archived> {
        self.segments
            .iter()
            .rev()
            .find_map(|s| s.find_service(service_id).map(|index| Archived { segment: s.clone(), index }))
    }

    /// Reads an archived execution from its segment, checking that its text is the one indexed.
    pub fn read(&self, a: &Archived) -> Result<Execution, LoadError> {
        let path = segment_path(&self.dir, a.segment.number);
        let Some(slot) = a.segment.slots.get(a.index) else {
            return Err(changed(&path, 0));
        };
        let mut buf = vec![0; slot.len as usize];
        File::open(&path)
            .and_then(|f| f.read_exact_at(&mut buf, slot.offset))
            .map_err(|err| LoadError::io(&path, &err))?;
        if entry_digest(&buf) != slot.digest {
            return Err(changed(&path, slot.id));
        }
        let text = std::str::from_utf8(&buf).map_err(|_| changed(&path, slot.id))?;
        let execution: Execution = ron::from_str(text).map_err(|_| changed(&path, slot.id))?;
        if execution.id != slot.id {
            return Err(changed(&path, slot.id));
        }
        Ok(execution)
    }

    /// The archived executions that match `filter` and that `skip` does not refuse, each once,
    /// in id order: with a `limit`, only the newest (highest ids) that many, and whether older
    /// ones match too. Segments that cannot match are passed by without a look inside, and with a
    /// limit the newest segments are looked at first, so a page of the newest costs little
    /// whatever the archive holds.
    pub fn select(&self, filter: &ArchiveFilter<'_>, limit: Option<usize>, skip: impl Fn(u64) -> bool) -> Picked {
        let statuses: u8 = if filter.statuses.is_empty() {
            u8::MAX
        } else {
            filter.statuses.iter().fold(0, |m, s| m | 1 << status_code(*s))
        };
        let since = filter.since.map(nanos);
        let before = filter.before.unwrap_or(u64::MAX);
        let limit = limit.map(|l| l.max(1));
        // (id, segment place, slot)
        let mut found: Vec<(u64, u32, u32)> = Vec::new();
        // With a limit, once that many are found: the lowest id kept. Matches below it only say
        // that there is more.
        let mut floor: Option<u64> = None;
        let mut more = false;
        for &place in self.newest_first.iter() {
            let Some(seg) = self.segments.get(place as usize) else { continue };
            let sum = &seg.summary;
            if sum.statuses & statuses == 0 || sum.min_id >= before || since.is_some_and(|t| sum.max_scheduled < t) {
                continue;
            }
            if more && floor.is_some_and(|f| sum.max_id < f) {
                // Nothing here can be among the newest, and there is more already.
                break;
            }
            // The owners of this segment that may be listed: none means nothing here may.
            let owners: Vec<bool> = seg
                .owners
                .iter()
                .map(|(id, name)| {
                    filter.visible_to.is_none_or(|v| v == *id) && filter.owner.is_none_or(|o| o == &**name)
                })
                .collect();
            if !owners.contains(&true) {
                continue;
            }
            let shadowed = self.shadowed.get(&place);
            for (i, s) in seg.slots.iter().enumerate() {
                if s.id >= before
                    || statuses & (1 << s.status) == 0
                    || !owners.get(s.owner as usize).copied().unwrap_or(false)
                    || since.is_some_and(|t| s.scheduled < t)
                    || filter.name.is_some_and(|n| n != seg.name_of(s))
                    || shadowed.is_some_and(|l| l.binary_search(&s.id).is_ok())
                    || skip(s.id)
                {
                    continue;
                }
                if floor.is_some_and(|f| s.id < f) {
                    more = true;
                    continue;
                }
                found.push((s.id, place, i as u32));
            }
            if let Some(l) = limit {
                if found.len() >= 2 * l {
                    keep_newest(&mut found, l);
                    more = true;
                    floor = found.iter().map(|f| f.0).min();
                }
            }
        }
        if let Some(l) = limit {
            if found.len() > l {
                keep_newest(&mut found, l);
                more = true;
            }
        }
        found.sort_unstable_by_key(|f| f.0);
        let items = found
            .into_iter()
            .filter_map(|(_, place, i)| {
                self.segments.get(place as usize).map(|s| Archived { segment: s.clone(), index: i as usize })
            })
            .collect();
        Picked { items, more }
    }

    /// Ids in the id table (each archived execution once).
    #[cfg(test)]
    fn table_len(&self) -> usize {
        self.ids.ids()
    }
}

/// Keeps the `n` highest ids of `found` (in no order).
fn keep_newest(found: &mut Vec<(u64, u32, u32)>, n: usize) {
    if found.len() > n {
        let cut = found.len() - n;
        found.select_nth_unstable_by_key(cut, |f| f.0);
        found.drain(..cut);
    }
}

/// What a listing of the archive asks for; everything empty is all of it.
#[derive(Clone, Debug, Default)]
pub struct ArchiveFilter<'a> {
    /// Only executions of the owner with this id (a caller who is not an administrator).
    pub visible_to: Option<u64>,
    /// Exactly this owner (a user name).
    pub owner: Option<&'a str>,
    /// Exactly this name.
    pub name: Option<&'a str>,
    /// Any of these statuses (none: any status).
    pub statuses: &'a [ExecutionStatus],
    /// Submitted at or after this time.
    pub since: Option<Timestamp>,
    /// Only ids below this one.
    pub before: Option<u64>,
}

/// The archived executions a listing returns.
#[derive(Clone, Debug, Default)]
pub struct Picked {
    /// In id order.
    pub items: Vec<Archived>,
    /// With a limit: older executions match too.
    pub more: bool,
}

fn changed(path: &Path, id: u64) -> LoadError {
    LoadError {
        file: Some(path.to_path_buf()),
        line: 0,
        column: 0,
        reason: format!(
            "execution {id} is not what the index says: the segment changed after the master indexed it (restart \
             the master: it re-indexes segments that changed, or names the place of the damage)"
        ),
    }
}

#[cfg(test)]
mod tests;
