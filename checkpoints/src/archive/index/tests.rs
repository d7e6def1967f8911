use super::*;
use crate::archive::usage::SlotUsage;
use crate::model::Usage;

fn seg(number: u64, ids: &[(u64, u8)]) -> SegmentIndex {
    let slots = ids
        .iter()
        .map(|(id, status)| Slot {
            id: *id,
            scheduled: *id as i64 * 1_000_000_000,
            offset: 0,
            len: 0,
            digest: 0,
            name_at: 0,
            name_len: 1,
            status: *status,
            owner: (*id % 2) as u16,
        })
        .collect();
    let owners = vec![(1, "alice".into()), (2, "bob".into())];
    let file = FileMeta { size: 10, ..FileMeta::default() };
    let services = ids.iter().enumerate().map(|(i, (id, _))| (id + 1, i as u32)).collect();
    let usage = ids.iter().map(|_| SlotUsage { started: 0, ended: 10, usage: Default::default() }).collect();
    SegmentIndex::new(number, file, [0; 32], slots, owners, "x".into(), services, usage).unwrap()
}

const FIN: u8 = 4;
const TERM: u8 = 5;

#[test]
fn the_id_table_finds_the_newest_segment_across_chunks_and_counts_each_once() {
    // Ids on both sides of a chunk boundary (4096), one held again by a later segment.
    let a = seg(1, &[(10, FIN), (4095, FIN), (4096, FIN), (9000, TERM)]);
    let b = seg(2, &[(4096, TERM), (20_000, FIN)]);
    let at_start = ArchiveIndex::of(Path::new("/x"), vec![a.clone(), b.clone()]);
    let grown = ArchiveIndex::empty(Path::new("/x")).with_segment(Arc::new(a)).with_segment(Arc::new(b));
    for index in [&at_start, &grown] {
        assert_eq!(index.get(4096).unwrap().segment.number, 2);
        assert_eq!(index.get(4095).unwrap().segment.number, 1);
        assert_eq!(index.get(20_000).unwrap().entry().status, ExecutionStatus::Finished);
        assert!(index.get(11).is_none() && index.get(4097).is_none() && index.get(1 << 40).is_none());
        assert_eq!((index.len(), index.table_len()), (5, 5));
        assert_eq!((index.count(ExecutionStatus::Finished), index.count(ExecutionStatus::Terminated)), (3, 2));
        assert_eq!(index.max_id(), Some(20_001));
        assert_eq!(index.get_by_service(9001).unwrap().entry().id, 9000);
        let all = index.select(&ArchiveFilter::default(), None, |_| false);
        assert_eq!(all.items.iter().map(|a| a.entry().id).collect::<Vec<_>>(), [10, 4095, 4096, 9000, 20_000]);
    }
}

#[test]
fn a_limited_selection_reads_the_newest_first_and_says_when_there_is_more() {
    let index = ArchiveIndex::of(
        Path::new("/x"),
        vec![seg(1, &[(1, FIN), (3, TERM), (40, FIN)]), seg(2, &[(5, FIN), (7, FIN)]), seg(3, &[(9, TERM), (11, FIN)])],
    );
    let ids = |p: &Picked| p.items.iter().map(|a| a.entry().id).collect::<Vec<_>>();
    let any = ArchiveFilter::default();
    let p = index.select(&any, Some(2), |_| false);
    assert_eq!((ids(&p), p.more), (vec![11, 40], true));
    let p = index.select(&ArchiveFilter { before: Some(11), ..any.clone() }, Some(3), |_| false);
    assert_eq!((ids(&p), p.more), (vec![5, 7, 9], true));
    let p = index.select(&ArchiveFilter { before: Some(5), ..any.clone() }, Some(2), |_| false);
    assert_eq!((ids(&p), p.more), (vec![1, 3], false), "the last page says there is no more");
    let term = [ExecutionStatus::Terminated];
    let p = index.select(&ArchiveFilter { statuses: &term, ..any.clone() }, Some(1), |_| false);
    assert_eq!((ids(&p), p.more), (vec![9], true));
    // Odd ids are bob's, even ones alice's.
    let p = index.select(&ArchiveFilter { owner: Some("bob"), ..any.clone() }, None, |_| false);
    assert_eq!(ids(&p), [1, 3, 5, 7, 9, 11]);
    let p = index.select(&ArchiveFilter { owner: Some("alice"), ..any.clone() }, None, |id| id == 40);
    assert_eq!(ids(&p), Vec::<u64>::new());
    let p = index.select(&ArchiveFilter { visible_to: Some(2), ..any.clone() }, None, |id| id == 9);
    assert_eq!(ids(&p), [1, 3, 5, 7, 11], "skip leaves out what the checkpoint holds");
    let late = OffsetDateTime::from_unix_timestamp(9).unwrap();
    let p = index.select(&ArchiveFilter { since: Some(late), ..any.clone() }, None, |_| false);
    assert_eq!(ids(&p), [9, 11, 40]);
    let p = index.select(&ArchiveFilter { name: Some("y"), ..any }, None, |_| false);
    assert!(p.items.is_empty() && !p.more);
}

#[test]
fn unsound_parts_are_refused() {
    let file = FileMeta { size: 10, ..FileMeta::default() };
    let slot =
        Slot { id: 1, scheduled: 0, offset: 0, len: 5, digest: 0, name_at: 0, name_len: 1, status: FIN, owner: 0 };
    let owners = || vec![(1, Box::<str>::from("alice"))];
    let ran = SlotUsage { started: 0, ended: 10, usage: Default::default() };
    let with_usage = |slots: Vec<Slot>, services, usage| {
        SegmentIndex::new(1, file, [0; 32], slots, owners(), "x".into(), services, usage)
    };
    let make = |slots: Vec<Slot>, services| {
        let usage = vec![ran; slots.len()];
        with_usage(slots, services, usage)
    };
    assert!(make(vec![slot], vec![]).is_ok());
    let negative = Usage { cpu_seconds: -1.0, ..Usage::default() };
    for bad in [
        vec![],
        vec![ran, ran],
        vec![SlotUsage { usage: negative, ..ran }],
        vec![SlotUsage { usage: Usage { reserved_core_seconds: f64::NAN, ..Usage::default() }, ..ran }],
        vec![SlotUsage { started: 10, ended: 9, ..ran }],
    ] {
        assert!(with_usage(vec![slot], vec![], bad.clone()).is_err(), "{bad:?}");
    }
    for bad in [
        Slot { len: 11, ..slot },
        Slot { name_len: 2, ..slot },
        Slot { owner: 1, ..slot },
        Slot { status: 2, ..slot },
        Slot { status: 9, ..slot },
    ] {
        assert!(make(vec![bad], vec![]).is_err(), "{bad:?}");
    }
    assert!(make(vec![slot, slot], vec![]).is_err(), "ids in order, once");
    assert!(make(vec![slot], vec![(5, 1)]).is_err(), "a service of no execution");
    assert!(make(vec![], vec![]).is_err());
}
