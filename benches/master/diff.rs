//! 9. `zoe checkpoint diff` of two large checkpoints that differ everywhere.

use super::*;

/// `zoe checkpoint diff` of two checkpoints of 20,000 executions, every one changed in 4 lines.
pub fn diff() {
    let before = state_with(20_000);
    let mut after = before.clone();
    for e in after.executions.values_mut() {
        let e = Arc::make_mut(e);
        e.name = format!("{}-renamed", e.name);
        e.status = ExecutionStatus::Error;
        e.error = Some("edited".into());
        e.time_started = e.time_finished;
    }
    let dir = prepare("diff", before.clone());
    let store = Store::open(&dir).unwrap();
    let (a, b) = (encode(&before).unwrap_or_default(), encode(&after).unwrap_or_default());
    store.write(2, &b).unwrap();
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.split_inclusive('\n').collect(), b.split_inclusive('\n').collect());
    let changed: usize = zoe::checkpoint_diff::diff_lines(&la, &lb)
        .iter()
        .filter(|op| op.tag() != similar::DiffTag::Equal)
        .map(|op| op.new_range().len())
        .sum();
    let state_dir = zoe::checkpoint_cmd::StateDir { state_dir: dir.clone() };
    let t = Instant::now();
    let mut out = Vec::new();
    let cmd = zoe::checkpoint_cmd::CheckpointCmd::Diff { a: 1, b: Some(2) };
    zoe::checkpoint_cmd::run_to(cmd, &state_dir, &mut out).unwrap();
    println!(
        "\n`zoe checkpoint diff` of two checkpoints of 20,000 executions ({:.1} MB each), {changed} lines changed: \
         {:.2} s, {:.1} MB of diff",
        a.len() as f64 / 1e6,
        t.elapsed().as_secs_f64(),
        out.len() as f64 / 1e6
    );
    if std::env::var("ZOE_BENCH_DIFF_BEFORE").is_ok() {
        let t = Instant::now();
        let old = similar::TextDiff::from_lines(&a, &b).unified_diff().context_radius(3).to_string();
        println!(
            "the same diff as made before (Myers, no deadline): {:.2} s, {:.1} MB",
            t.elapsed().as_secs_f64(),
            old.len() as f64 / 1e6
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
