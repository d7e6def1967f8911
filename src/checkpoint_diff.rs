//! `zoe checkpoint diff`: a unified diff of two checkpoint texts that stays fast on large ones.
//!
//! Lines are interned (each distinct line becomes a number, so lines are compared as numbers).
//! Common lines at both ends are matched first; then lines that occur exactly once on each side
//! (in a checkpoint: every `id:` line, most names) are matched in order as anchors (patience
//! diff: the longest increasing subsequence), and the stretches between anchors are diffed the
//! same way, down to stretches without such lines, which go to Myers' algorithm. Myers' work is
//! bounded by a deadline, after which a stretch is shown as removed and added (a correct, larger
//! diff). `similar`'s own patience runs Myers over all the unique lines, which is quadratic when
//! thousands of them change (80,000 changed lines took minutes); this is linear in the size plus
//! the work between anchors.

use std::collections::HashMap;
use std::io::{self, Write};
use std::ops::Range;
use std::time::{Duration, Instant};

use similar::algorithms::{myers, Capture, Replace};
use similar::DiffOp;

/// Myers' algorithm stops looking for the smallest difference after this long in all.
const MYERS_TIME: Duration = Duration::from_secs(2);

/// Writes the unified diff (3 lines of context) from `old` to `new`, with these names.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str, out: &mut dyn Write) -> io::Result<()> {
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let ops = diff_lines(&a, &b);
    let groups = similar::group_diff_ops(ops, 3);
    if groups.is_empty() {
        return Ok(());
    }
    writeln!(out, "--- {old_name}")?;
    writeln!(out, "+++ {new_name}")?;
    for group in groups {
        let (Some(first), Some(last)) = (group.first(), group.last()) else { continue };
        let (o, n) = (first.old_range().start..last.old_range().end, first.new_range().start..last.new_range().end);
        writeln!(out, "@@ -{} +{} @@", header_range(&o), header_range(&n))?;
        for op in &group {
            match op.as_tag_tuple() {
                (similar::DiffTag::Equal, o, _) => lines(out, ' ', &a[o])?,
                (similar::DiffTag::Delete, o, _) => lines(out, '-', &a[o])?,
                (similar::DiffTag::Insert, _, n) => lines(out, '+', &b[n])?,
                (similar::DiffTag::Replace, o, n) => {
                    lines(out, '-', &a[o])?;
                    lines(out, '+', &b[n])?;
                }
            }
        }
    }
    Ok(())
}

/// `start,length` of a hunk as unified diffs write it (1-based; the line before when empty).
fn header_range(r: &Range<usize>) -> String {
    let len = r.end - r.start;
    let start = if len == 0 { r.start } else { r.start + 1 };
    format!("{start},{len}")
}

fn lines(out: &mut dyn Write, sign: char, lines: &[&str]) -> io::Result<()> {
    for l in lines {
        write!(out, "{sign}{l}")?;
        if !l.ends_with('\n') {
            writeln!(out, "\n\\ No newline at end of file")?;
        }
    }
    Ok(())
}

/// The operations that turn `a` into `b`, in order.
pub fn diff_lines<'t>(a: &[&'t str], b: &[&'t str]) -> Vec<DiffOp> {
    let mut ids: HashMap<&'t str, u32> = HashMap::new();
    let mut intern = |l: &'t str| {
        let n = ids.len() as u32;
        *ids.entry(l).or_insert(n)
    };
    let a: Vec<u32> = a.iter().map(|l| intern(l)).collect();
    let b: Vec<u32> = b.iter().map(|l| intern(l)).collect();
    diff_ids(&a, &b, Instant::now() + MYERS_TIME)
}

/// What is left to do, last first.
enum Task {
    Diff(Range<usize>, Range<usize>),
    Equal(usize, usize, usize),
}

fn diff_ids(a: &[u32], b: &[u32], deadline: Instant) -> Vec<DiffOp> {
    let mut ops = Vec::new();
    let mut tasks = vec![Task::Diff(0..a.len(), 0..b.len())];
    while let Some(task) = tasks.pop() {
        let (mut o, mut n) = match task {
            Task::Equal(old_index, new_index, len) => {
                ops.push(DiffOp::Equal { old_index, new_index, len });
                continue;
            }
            Task::Diff(o, n) => (o, n),
        };
        // Common ends.
        let head = a[o.clone()].iter().zip(&b[n.clone()]).take_while(|(x, y)| x == y).count();
        if head > 0 {
            ops.push(DiffOp::Equal { old_index: o.start, new_index: n.start, len: head });
            o.start += head;
            n.start += head;
        }
        let tail = a[o.clone()].iter().rev().zip(b[n.clone()].iter().rev()).take_while(|(x, y)| x == y).count();
        o.end -= tail;
        n.end -= tail;
        if tail > 0 {
            tasks.push(Task::Equal(o.end, n.end, tail));
        }
        if o.is_empty() || n.is_empty() {
            if !o.is_empty() {
                ops.push(DiffOp::Delete { old_index: o.start, old_len: o.len(), new_index: n.start });
            }
            if !n.is_empty() {
                ops.push(DiffOp::Insert { old_index: o.start, new_index: n.start, new_len: n.len() });
            }
            continue;
        }
        let anchors = anchors(a, o.clone(), b, n.clone());
        if anchors.is_empty() {
            // Removed lines before added ones, as unified diffs show them.
            let mut capture = Replace::new(Capture::new());
            // The hook of `Capture` cannot fail.
            let _ = myers::diff_deadline(&mut capture, a, o, b, n, Some(deadline));
            ops.extend(capture.into_inner().into_ops());
            continue;
        }
        // The stretches between anchors, last first (tasks run last in, first out).
        let mut end = (o.end, n.end);
        for (i, j) in anchors.into_iter().rev() {
            tasks.push(Task::Diff(i + 1..end.0, j + 1..end.1));
            tasks.push(Task::Equal(i, j, 1));
            end = (i, j);
        }
        tasks.push(Task::Diff(o.start..end.0, n.start..end.1));
    }
    ops
}

/// Lines that occur exactly once in `a[o]` and once in `b[n]`, matched in the same order: the
/// longest such sequence (patience sorting), as (index in a, index in b).
fn anchors(a: &[u32], o: Range<usize>, b: &[u32], n: Range<usize>) -> Vec<(usize, usize)> {
    // Per line: occurrences and place in a, occurrences and place in b.
    let mut seen: HashMap<u32, (u32, usize, u32, usize)> = HashMap::new();
    for i in o {
        let e = seen.entry(a[i]).or_insert((0, i, 0, 0));
        e.0 += 1;
    }
    for j in n {
        if let Some(e) = seen.get_mut(&b[j]) {
            e.2 += 1;
            e.3 = j;
        }
    }
    let mut pairs: Vec<(usize, usize)> =
        seen.into_values().filter(|(ca, _, cb, _)| *ca == 1 && *cb == 1).map(|(_, i, _, j)| (i, j)).collect();
    pairs.sort_unstable();
    // Longest increasing subsequence of the b indexes.
    let mut tops: Vec<usize> = Vec::new(); // index into `pairs` of the smallest end of each length
    let mut back: Vec<Option<usize>> = vec![None; pairs.len()];
    for (k, &(_, j)) in pairs.iter().enumerate() {
        let len = tops.partition_point(|&t| pairs[t].1 < j);
        back[k] = len.checked_sub(1).map(|l| tops[l]);
        if len == tops.len() {
            tops.push(k);
        } else {
            tops[len] = k;
        }
    }
    let mut out = Vec::with_capacity(tops.len());
    let mut k = tops.last().copied();
    while let Some(i) = k {
        out.push(pairs[i]);
        k = back[i];
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Applies `ops` to `a` and checks they use every line of each side once, in order.
    fn replay(a: &[&str], b: &[&str], ops: &[DiffOp]) -> Vec<String> {
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        for op in ops {
            let (tag, o, n) = op.as_tag_tuple();
            assert_eq!((o.start, n.start), (i, j), "{ops:?}");
            match tag {
                similar::DiffTag::Equal => {
                    assert_eq!(&a[o.clone()], &b[n.clone()]);
                    out.extend(a[o.clone()].iter().map(|s| s.to_string()));
                }
                _ => out.extend(b[n.clone()].iter().map(|s| s.to_string())),
            }
            (i, j) = (o.end, n.end);
        }
        assert_eq!((i, j), (a.len(), b.len()), "{ops:?}");
        out
    }

    #[test]
    fn a_small_diff_reads_as_unified_diffs_do() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nD\ne\nf\ng\nh\ni\n";
        let mut out = Vec::new();
        unified(old, new, "checkpoint 1", "checkpoint 2", &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "--- checkpoint 1\n+++ checkpoint 2\n@@ -1,8 +1,9 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n h\n+i\n"
        );
        let mut out = Vec::new();
        unified(old, old, "a", "b", &mut out).unwrap();
        assert!(out.is_empty(), "no difference, no output");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn the_operations_turn_one_text_into_the_other(
            a in prop::collection::vec(prop::sample::select(vec!["x", "y", "z", "id: 1", "id: 2", "id: 3", "w"]), 0..40),
            b in prop::collection::vec(prop::sample::select(vec!["x", "y", "z", "id: 1", "id: 2", "id: 4", "v"]), 0..40),
        ) {
            let ops = diff_lines(&a, &b);
            prop_assert_eq!(replay(&a, &b, &ops), b.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        }
    }
}
