//! The states the benchmarks start from: checkpoints and archives of many executions.

use super::*;

pub fn app() -> serde_json::Value {
    json!({
        "name": "bench", "version": 2, "will_end": true, "requires_binary": false, "priority": 512,
        "services": [{
            "name": "main", "docker_image": "zoe-test-busybox:latest", "monitor": true,
            "total_count": 1, "essential_count": 1, "startup_order": 0, "ports": [],
            "required_resources": {"memory": 67108864}, "command": "sleep 1"
        }]
    })
}

/// A state with zoeadmin, alice and `n` terminated executions of alice.
pub fn state_with(n: usize) -> State {
    states::with_ended("bench", "alice-pw", n, ExecutionStatus::Terminated, &app())
}

/// Ended executions a master keeps in its checkpoint by default (`--history-keep`).
pub const HISTORY_KEEP: usize = 500;

/// A state directory with `n` finished executions, all in the checkpoint.
pub fn prepare_dir(tag: &str, n: usize) -> PathBuf {
    prepare(tag, state_with(n))
}

pub fn prepare(tag: &str, state: State) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zoe-bench-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir).unwrap();
    let text = encode(&state).unwrap();
    store.write(1, &text).unwrap();
    dir
}

/// Archived executions per segment in a generated history (a master writes 100 to 1,000 per
/// segment; the run through the API averaged 236).
pub const SEGMENT: usize = 250;

/// A state directory with `n` ended executions of alice as a master leaves them: the newest
/// [`HISTORY_KEEP`] in the checkpoint, the others in archive segments of [`SEGMENT`], written by
/// the archive's own writer a segment at a time (a million need no more memory than a segment).
/// Execution `i` (id `2 + 2i`, its service `3 + 2i`) is named `job-<i % 10,000>`, was submitted
/// `n - i` minutes ago, ran 30 s and ended terminated, finished or in error in turn.
pub fn prepare_archived(tag: &str, n: usize) -> PathBuf {
    let state = state_with(0);
    let application = zoe_actors::description::app_description::parse_application(&app()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    write_archived(tag, state, n, |state, i| {
        let (id, service) = (state.gen_id(), state.gen_id());
        let name = format!("job-{}", i % 10_000);
        let scheduled = now - Duration::from_secs(60 * (n - i) as u64);
        Arc::new(Execution {
            id,
            name: name.clone(),
            owner: "alice".into(),
            owner_id: 1,
            status: [ExecutionStatus::Terminated, ExecutionStatus::Finished, ExecutionStatus::Error][i % 3],
            error: None,
            ending: None,
            time_scheduled: scheduled,
            time_started: Some(scheduled),
            time_finished: Some(scheduled + Duration::from_secs(30)),
            application: application.clone(),
            services: vec![Service {
                exit_code: Some(0),
                ..Service::new(service, format!("main-{name}-alice-bench"), "main", 0, true, ServiceStatus::Exited)
            }],
            proxy_secret: None,
            usage: Default::default(),
            usage_series: Default::default(),
        })
    })
}

/// A state directory holding `state` and `n` more executions made by `make` (given the state to
/// take ids from and the index): the newest [`HISTORY_KEEP`] in the checkpoint, the others in
/// archive segments of [`SEGMENT`], written a segment at a time.
pub fn write_archived(
    tag: &str,
    mut state: State,
    n: usize,
    mut make: impl FnMut(&mut State, usize) -> Arc<Execution>,
) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zoe-bench-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let archive = Archive::open(&dir).unwrap();
    let archived = n.saturating_sub(HISTORY_KEEP);
    let mut batch = Vec::with_capacity(SEGMENT);
    for i in 0..n {
        let e = make(&mut state, i);
        if i < archived {
            batch.push(e);
            if batch.len() == SEGMENT || i + 1 == archived {
                state.archived_segments += 1;
                archive.write("bench", state.archived_segments, &batch).unwrap();
                batch.clear();
            }
        } else {
            state.executions.insert(e.id, e);
        }
    }
    let store = Store::open(&dir).unwrap();
    store.write(1, &encode(&state).unwrap()).unwrap();
    dir
}

/// Bytes of the files in a directory.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).into_iter().flatten().flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()
}
