//! The state actor with a real checkpoint directory and a back end that records what it is
//! asked: a checkpoint that cannot be written undoes its requests, keeps what the back end
//! reported, and sends nothing; the next one that can be written carries on.
//!
//! A write is made to fail by putting a file where the next checkpoint goes (a number is written
//! once), the same path as a full disk (the writer reports an error).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::json;
use zoe_checkpoints::{encode, Archive, ArchiveIndex, ExecutionStatus, Role, Store};

use super::{CreateUser, Durable, StateActor, StateConfig, SubmitExecution};
use crate::error::Code;
use crate::logic::reader::Reader;
use crate::protocol::*;
use crate::testing::{admin, admin_state};

/// What the back end was asked, in order.
#[derive(Default)]
struct Recorder {
    asked: Arc<Mutex<Vec<String>>>,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

/// Handlers that write down what they were asked, as `what(message)` says it.
macro_rules! records {
    ($($message:ty => $what:expr;)*) => {$(
        impl Handler<$message> for Recorder {
            type Result = ();
            fn handle(&mut self, m: $message, _: &mut Context<Self>) {
                self.asked.lock().unwrap().push($what(m));
            }
        }
    )*};
}

records! {
    StartExecution => |m: StartExecution| format!("start {}", m.execution_id);
    RemoveExecution => |m: RemoveExecution| format!("remove {}", m.execution_id);
    RemoveContainers => |m: RemoveContainers| format!("remove containers {:?}", m.names_or_ids);
    RemoveNetwork => |m: RemoveNetwork| format!("remove network {}", m.network);
}

impl Handler<Reconcile> for Recorder {
    type Result = ();
    fn handle(&mut self, _: Reconcile, _: &mut Context<Self>) {}
}

impl Handler<ServiceLogs> for Recorder {
    type Result = Result<LogStream, String>;
    fn handle(&mut self, _: ServiceLogs, _: &mut Context<Self>) -> Self::Result {
        Err("no logs here".into())
    }
}

impl Handler<SampleContainers> for Recorder {
    type Result = Vec<Option<crate::protocol::Stats>>;
    fn handle(&mut self, m: SampleContainers, _: &mut Context<Self>) -> Self::Result {
        vec![None; m.containers.len()]
    }
}

impl Handler<FindRelay> for Recorder {
    type Result = Result<String, String>;
    fn handle(&mut self, _: FindRelay, _: &mut Context<Self>) -> Self::Result {
        Err("no relays here".to_string())
    }
}

fn tempdir(tag: &str) -> PathBuf {
    crate::testing::tempdir(&format!("state-actor-{tag}"))
}

fn platform() -> PlatformInfo {
    crate::testing::one_engine(("test", "test"), ("n", "n"), 64 << 30, 16)
}

fn submit(name: &str) -> SubmitExecution {
    let app = crate::description::app_description::parse_application(&json!({
        "name": "app", "version": 2, "will_end": true, "requires_binary": false, "priority": 1,
        "services": [{"name": "main", "docker_image": "img", "monitor": true, "total_count": 1,
                      "essential_count": 1, "startup_order": 0, "ports": [],
                      "required_resources": {"memory": 67108864}}]
    }))
    .unwrap();
    SubmitExecution { caller: admin(), name: name.into(), application: app }
}

fn create_user(name: &str) -> CreateUser {
    CreateUser { caller: admin(), name: name.into(), role: Role::User, password_hash: "$argon2id$x".into() }
}

/// Waits (at most 5 s) until `cond` holds.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < Duration::from_secs(5), "timed out waiting for {what}");
        actix::clock::sleep(Duration::from_millis(20)).await;
    }
}

/// A checkpoint directory holding checkpoint 1 (the admin state), the actor's durable start
/// over it, and settings with `state_min_free`.
fn on_disk(tag: &str, state_min_free: u64) -> (PathBuf, Store, Durable, StateConfig) {
    let dir = tempdir(tag);
    let store = Store::open(&dir).unwrap();
    store.write(1, &encode(&admin_state()).unwrap()).unwrap();
    let archive = Archive::open(&dir).unwrap();
    let durable = Durable { store: store.clone(), seq: 1, archive, index: ArchiveIndex::empty(&dir.join("archive")) };
    let config = StateConfig {
        keep_checkpoints: 100,
        scheduler: Default::default(),
        plan: Default::default(),
        allowed_registries: vec![],
        history: Default::default(),
        state_min_free,
    };
    (dir, store, durable, config)
}

/// The actor over `durable`, with a back end that records what it is asked (the list it writes
/// to) and has reported its platform.
async fn launch_recorded(durable: Durable, config: StateConfig) -> (Addr<StateActor>, Reader, Arc<Mutex<Vec<String>>>) {
    let recorder = Recorder::default();
    let asked = recorder.asked.clone();
    let backend = BackendHandle::of(&recorder.start());
    let launched = StateActor::launch_with(admin_state(), durable, config, Some(backend), Context::new());
    let (state, reader) = (launched.state, launched.reader);
    state.send(BackendEvent::Platform(platform())).await.unwrap();
    (state, reader, asked)
}

fn published(reader: &Reader) -> Arc<zoe_checkpoints::State> {
    reader.now().state.clone()
}

/// The back end's report that the first service of execution `id` runs, in container `c1`; that
/// service's id.
async fn report_started(state: &Addr<StateActor>, reader: &Reader, id: u64) -> u64 {
    let service_id = published(reader).executions[&id].services[0].id;
    let started = StartedContainer {
        service_id,
        docker_id: "c1".into(),
        ip_address: BTreeMap::new(),
        host_endpoints: BTreeMap::new(),
        node: None,
    };
    state.send(BackendEvent::ExecutionStarted { execution_id: id, containers: vec![started] }).await.unwrap();
    service_id
}

#[test]
fn a_checkpoint_that_cannot_be_written_undoes_its_requests_keeps_the_facts_and_sends_nothing() {
    let (dir, store, durable, config) = on_disk("rollback", 0);
    actix::System::new().block_on(async move {
        let block = |n: u64| std::fs::write(store.path(n), "in the way").unwrap();
        let unblock = |n: u64| std::fs::remove_file(store.path(n)).unwrap();
        let (state, reader, asked) = launch_recorded(durable, config).await;

        // A refused submission: 503, not in memory (the same name is free), no container started.
        block(2);
        let e = state.send(submit("nb")).await.unwrap().unwrap_err();
        assert_eq!(e.code, Code::CheckpointFailed, "{e}");
        assert!(reader.storage.failing(), "readers see that checkpoints fail");
        let e = state.send(create_user("bob")).await.unwrap().unwrap_err();
        assert_eq!(e.code, Code::CheckpointFailed, "{e}");
        actix::clock::sleep(Duration::from_millis(300)).await;
        assert!(asked.lock().unwrap().is_empty(), "nothing reached the back end: {:?}", asked.lock().unwrap());

        // Space again: the same changes go through (bob is not "already registered"), the
        // execution gets the same id (the refused one left no trace), and starts only now.
        unblock(2);
        state.send(create_user("bob")).await.unwrap().unwrap();
        let id = state.send(submit("nb")).await.unwrap().unwrap();
        assert_eq!(id, 2, "bob took id 1, the refused submission's: it never existed");
        until("the start", || asked.lock().unwrap().contains(&format!("start {id}"))).await;
        assert!(!reader.storage.failing());
        let numbers: Vec<u64> = store.list().unwrap().iter().map(|f| f.number).collect();
        assert_eq!(numbers, [1, 2, 3, 4], "failed numbers are tried again, not skipped");

        // What the back end reports while checkpoints fail is kept through the rollback; the
        // request made meanwhile is not.
        let next = store.newest().unwrap().unwrap() + 1;
        block(next);
        report_started(&state, &reader, id).await;
        let e = state.send(create_user("carol")).await.unwrap().unwrap_err();
        assert_eq!(e.code, Code::CheckpointFailed, "{e}");
        assert_eq!(published(&reader).executions[&id].status, ExecutionStatus::Starting, "not durable yet");
        unblock(next);
        // The fact waits for the back-off (no request asks), then is written.
        until("the fact on disk", || {
            published(&reader).executions.get(&id).is_some_and(|e| e.status == ExecutionStatus::Running)
        })
        .await;
        let s = published(&reader);
        assert!(s.user_by_name("carol").is_none() && s.user_by_name("bob").is_some());
        assert_eq!(store.load(next).unwrap().executions[&id].status, ExecutionStatus::Running);
        System::current().stop();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn changes_are_refused_with_insufficient_storage_under_state_min_free_but_terminations_pass() {
    // A minimum free space larger than any disk has.
    let (dir, store, durable, config) = on_disk("minfree", u64::MAX - 1);
    actix::System::new().block_on(async move {
        let launched = StateActor::launch_with(admin_state(), durable, config, None, Context::new());
        let (state, reader) = (launched.state, launched.reader);
        until("a measure", || reader.storage.free() != u64::MAX).await;
        assert!(reader.storage.low());
        let e = state.send(create_user("bob")).await.unwrap().unwrap_err();
        assert_eq!(e.code, Code::InsufficientStorage, "{e}");
        assert!(e.message.contains("state-min-free"), "{e}");
        let e = state.send(submit("nb")).await.unwrap().unwrap_err();
        assert_eq!(e.code, Code::InsufficientStorage, "{e}");
        let e = state.send(super::TerminateExecution { caller: admin(), id: 99 }).await.unwrap().unwrap_err();
        assert_eq!(e.code, Code::NoSuchExecution, "terminations are not refused for space: {e}");
        assert_eq!(store.newest().unwrap(), Some(1), "nothing was written");
        System::current().stop();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn measured_usage_is_read_at_once_and_written_with_the_next_checkpoint_not_one_a_round() {
    let (dir, store, durable, config) = on_disk("usage", 0);
    actix::System::new().block_on(async move {
        let (state, reader, asked) = launch_recorded(durable, config).await;
        let id = state.send(submit("nb")).await.unwrap().unwrap();
        until("the start", || asked.lock().unwrap().contains(&format!("start {id}"))).await;
        let service_id = report_started(&state, &reader, id).await;
        until("running", || published(&reader).executions[&id].status == ExecutionStatus::Running).await;
        let written = store.newest().unwrap().unwrap();
        let t0 = published(&reader).executions[&id].time_started.unwrap();
        for round in 1..=3_i64 {
            let stats = crate::protocol::Stats { cpu_ns: round as u64 * 1_000_000_000, memory: Some(1 << 20) };
            let sample =
                crate::logic::usage::ExecutionSample { execution_id: id, services: vec![(service_id, Some(stats))] };
            let at = t0 + time::Duration::seconds(round * 10);
            state.send(super::RecordUsage { at, step: 10, executions: vec![sample] }).await.unwrap();
        }
        // Readers see the newest round at once; the durable state has none of it, and no
        // checkpoint was written for the rounds.
        let p = reader.now();
        let e = p.metered(&p.state.executions[&id]);
        assert_eq!((e.usage.cpu_seconds, e.usage_series.points.len()), (3.0, 3));
        assert_eq!(e.status, ExecutionStatus::Running);
        assert!(p.state.executions[&id].usage.is_zero());
        assert_eq!(store.newest().unwrap(), Some(written), "no checkpoint a round");
        // The next checkpoint (any change) takes them to disk; readers then read them from it.
        state.send(create_user("bob")).await.unwrap().unwrap();
        let newest = store.newest().unwrap().unwrap();
        assert!(newest > written);
        let on_disk = store.load(newest).unwrap();
        assert_eq!(on_disk.executions[&id].usage.cpu_seconds, 3.0);
        assert_eq!(on_disk.executions[&id].services[0].cpu_ns, 3_000_000_000, "the counter, for a restart");
        let p = reader.now();
        assert!(p.metered.is_empty(), "nothing newer than the checkpoint");
        assert_eq!(p.state.executions[&id].usage.cpu_seconds, 3.0);
        System::current().stop();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
