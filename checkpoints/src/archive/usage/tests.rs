use std::sync::Arc;

use time::OffsetDateTime;

use super::*;
use crate::archive::tests::ended;
use crate::archive::{Archive, ArchiveIndex};
use crate::model::{ExecutionStatus, UsagePoint, UsageSeries};

fn cpu(seconds: f64) -> Usage {
    Usage {
        cpu_seconds: seconds,
        memory_byte_seconds: seconds * 2.0,
        memory_peak_bytes: 7,
        reserved_core_seconds: seconds * 4.0,
        reserved_memory_byte_seconds: seconds * 8.0,
    }
}

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

/// An ended execution of `owner` (id `owner_id`) that ran `[start, end)` and used `usage`.
fn ran(id: u64, owner: &str, owner_id: u64, start: i64, end: i64, usage: Usage) -> Arc<Execution> {
    let mut e = (*ended(id, owner, ExecutionStatus::Finished)).clone();
    e.owner_id = owner_id;
    e.time_scheduled = at(start - 1);
    e.time_started = Some(at(start));
    e.time_finished = Some(at(end));
    e.usage = usage;
    e.usage_series = UsageSeries { step: 15, memory_bytes: 1, points: vec![UsagePoint(end, 15, 1.0, 1)] };
    Arc::new(e)
}

#[test]
fn a_share_is_the_part_of_the_run_in_the_span() {
    let u = cpu(100.0);
    assert_eq!(share(&u, 0, 100, 50, 150).cpu_seconds, 50.0);
    assert_eq!(share(&u, 0, 100, 0, 100), u, "all of it");
    assert_eq!(share(&u, 0, 100, -10, 1000), u);
    assert_eq!(share(&u, 0, 100, 100, 200), Usage::default(), "after it");
    assert_eq!(share(&u, 10, 10, 10, 11), u, "a run of no time is one second long");
    assert_eq!(share(&u, 0, 100, 25, 50).reserved_core_seconds, 100.0);
    assert_eq!(share(&u, 0, 100, 25, 50).memory_peak_bytes, 7, "the peak is kept");
}

#[test]
fn the_daily_roll_up_splits_a_run_across_day_boundaries() {
    // Noon of day 10 to noon of day 12: a quarter, a half, a quarter; one started, then
    // continuing.
    let noon = 10 * DAY + DAY / 2;
    let long = SlotUsage { started: noon, ended: noon + 2 * DAY, usage: cpu(48.0) };
    let short = SlotUsage { started: 11 * DAY + 60, ended: 11 * DAY + 120, usage: cpu(1.0) };
    let never = SlotUsage { started: NEVER, ended: NEVER, usage: Usage::default() };
    let rows = days(&[0, 1, 0], &[long, short, never], |_| false);
    let got: Vec<(i64, u16, u32, u32, f64)> =
        rows.iter().map(|r| (r.day, r.owner, r.started, r.continuing, r.usage.cpu_seconds)).collect();
    assert_eq!(got, [(10, 0, 1, 0, 12.0), (11, 0, 0, 1, 24.0), (11, 1, 1, 0, 1.0), (12, 0, 0, 1, 12.0)]);
    // A run ending exactly at midnight does not touch the next day.
    let rows = days(&[0], &[SlotUsage { started: DAY, ended: 2 * DAY, usage: cpu(1.0) }], |_| false);
    assert_eq!(rows.len(), 1);
}

#[test]
fn reports_from_the_archive_survive_its_index_file_and_drop_the_series() {
    let d = crate::tempdir("archive-usage");
    let a = Archive::open(&d).unwrap();
    let noon = 20 * DAY + DAY / 2;
    let batch = [
        ran(4, "alice", 1, noon, noon + DAY, cpu(24.0)),
        ran(6, "bob", 2, noon, noon + 3600, cpu(1.0)),
        ran(8, "alice", 1, 22 * DAY, 22 * DAY + 60, cpu(2.0)),
    ];
    let seg = a.write("dev", 1, &batch).unwrap().0;
    let written = ArchiveIndex::empty(a.dir()).with_segment(seg);
    // The segment keeps the totals, not the series.
    let text = a.read(1).unwrap();
    assert!(text.contains("cpu_seconds: 24.0") && !text.contains("usage_series"), "{text}");
    let back = written.read(&written.get(4).unwrap()).unwrap();
    assert_eq!((back.usage, back.usage_series.points.len()), (cpu(24.0), 0));
    // The same figures from the index as written, as read back from its file, and as rebuilt
    // from the segment's text.
    let upto = a.list().unwrap().len() as u64;
    let from_file = a.index("dev", upto, |_| {}).unwrap();
    std::fs::remove_file(a.index_path()).unwrap();
    let rebuilt = a.index("dev", upto, |_| {}).unwrap();
    for index in [&written, &from_file, &rebuilt] {
        let all = index.usage_by_owner(0, 100, None);
        assert_eq!(all[&1].0, "alice");
        assert_eq!((all[&1].1.executions, all[&1].1.usage.cpu_seconds), (2, 26.0));
        assert_eq!((all[&2].1.executions, all[&2].1.usage.cpu_seconds), (1, 1.0));
        // Day 21 only: half of alice's long run, which began the day before, and none of bob's.
        let day21 = index.usage_by_owner(21, 22, None);
        assert_eq!((day21[&1].1.executions, day21[&1].1.usage.cpu_seconds), (1, 12.0));
        assert!(!day21.contains_key(&2));
        assert_eq!(index.usage_by_owner(0, 100, Some(2)).keys().copied().collect::<Vec<_>>(), [2], "bob's only");
        let mut seen = Vec::new();
        index.usage_by_execution(21 * DAY, 23 * DAY, None, |e, u| seen.push((e.id, e.owner.to_string(), u.usage)));
        assert_eq!(seen, [(4, "alice".to_string(), cpu(24.0)), (8, "alice".to_string(), cpu(2.0))]);
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn an_execution_in_two_segments_counts_once() {
    let d = crate::tempdir("archive-usage-twice");
    let a = Archive::open(&d).unwrap();
    let first = a.write("dev", 1, &[ran(4, "alice", 1, DAY, DAY + 10, cpu(5.0))]).unwrap().0;
    let second = a.write("dev", 2, &[ran(4, "alice", 1, DAY, DAY + 10, cpu(5.0))]).unwrap().0;
    let index = ArchiveIndex::empty(a.dir()).with_segment(first).with_segment(second);
    let all = index.usage_by_owner(0, 10, None);
    assert_eq!((all[&1].1.executions, all[&1].1.usage.cpu_seconds), (1, 5.0));
    let mut n = 0;
    index.usage_by_execution(0, 10 * DAY, None, |_, _| n += 1);
    assert_eq!(n, 1);
    std::fs::remove_dir_all(&d).unwrap();
}
