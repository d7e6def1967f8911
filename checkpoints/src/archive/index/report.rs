//! The archive's part of the usage reports: sums of the segments' daily roll-ups, and the
//! archived executions of a span (see [`crate::archive::usage`]).

use std::collections::BTreeMap;

use super::{ArchiveIndex, Entry, SegmentIndex};
use crate::archive::usage::{days, SlotUsage, Sum, DAY};

impl SegmentIndex {
    /// Adds its owners' usage over days `[from, to)` to `out` (by owner id, with the name).
    fn usage_by_owner(&self, from: i64, to: i64, owner: Option<u64>, out: &mut BTreeMap<u64, (String, Sum)>) {
        let start = self.days.partition_point(|r| r.day < from);
        for r in self.days[start..].iter().take_while(|r| r.day < to) {
            let Some((id, name)) = self.owners.get(r.owner as usize) else { continue };
            if owner.is_some_and(|o| o != *id) {
                continue;
            }
            let n = u64::from(r.started) + if r.day == from { u64::from(r.continuing) } else { 0 };
            out.entry(*id).or_insert_with(|| (name.to_string(), Sum::default())).1.add(n, &r.usage);
        }
    }
}

impl ArchiveIndex {
    /// The usage of archived executions over days `[from, to)` (see [`DAY`]) per owner (by id,
    /// with the owner's name), only `owner`'s if given: a sum of daily roll-up rows.
    pub fn usage_by_owner(&self, from: i64, to: i64, owner: Option<u64>) -> BTreeMap<u64, (String, Sum)> {
        let mut out = BTreeMap::new();
        for (place, seg) in self.segments.iter().enumerate() {
            match self.shadowed.get(&(place as u32)) {
                // Some of its executions are a newer segment's: its roll-up without them.
                Some(ids) => {
                    let mut seg = (**seg).clone();
                    let owners: Vec<u16> = seg.slots.iter().map(|s| s.owner).collect();
                    let slots = seg.slots.clone();
                    seg.days = days(&owners, &seg.usage, |i| ids.binary_search(&slots[i].id).is_ok()).into();
                    seg.usage_by_owner(from, to, owner, &mut out);
                }
                None => seg.usage_by_owner(from, to, owner, &mut out),
            }
        }
        out
    }

    /// Each archived execution (once) whose run overlaps `[from, to)` (Unix seconds), only
    /// `owner`'s if given, with its run and usage totals.
    pub fn usage_by_execution(
        &self,
        from: i64,
        to: i64,
        owner: Option<u64>,
        mut each: impl FnMut(Entry<'_>, &SlotUsage),
    ) {
        for (place, seg) in self.segments.iter().enumerate() {
            let (first, last) = seg.days.first().zip(seg.days.last()).map_or((0, -1), |(a, b)| (a.day, b.day));
            if last < first || (last + 1) * DAY <= from || first * DAY >= to {
                continue;
            }
            let shadowed = self.shadowed.get(&(place as u32));
            for (slot, u) in seg.slots.iter().zip(seg.usage.iter()) {
                if !u.ran() || shadowed.is_some_and(|ids| ids.binary_search(&slot.id).is_ok()) {
                    continue;
                }
                let (s, e) = u.run();
                if e <= from || s >= to {
                    continue;
                }
                let entry = seg.entry_of(slot);
                if owner.is_some_and(|o| o != entry.owner_id) {
                    continue;
                }
                each(entry, u);
            }
        }
    }
}
