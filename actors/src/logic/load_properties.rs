//! Property: whatever a careless or hostile operator makes of a checkpoint (or an archive segment),
//! the loader either refuses it with a place (`line:col`) or loads a state that serves every
//! read of the API, takes changes, and survives a restart (written and read back the same). So
//! nothing that loads can abort the master later.
//!
//! The checkpoint mutated holds a bit of everything: users of each role, a running execution with
//! an elastic worker waiting, a queued one, one being cleaned up and ended ones. Mutations are
//! the edits people make: a number replaced by an extreme (`4000000000`, `u64::MAX`, `NaN`,
//! `-1`...), a word swapped for another (statuses, roles, `Some`/`None`), a line deleted,
//! duplicated or moved, text typed anywhere.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Map};
use zoe_checkpoints::archive::{decode_segment, Archive};
use zoe_checkpoints::{decode, encode, ArchiveIndex, Role, State};

use crate::logic::access::Caller;
use crate::logic::history::ListFilter;
use crate::logic::reader::{Counters, JsonCache, Platform, Published};
use crate::logic::scheduler::{self, SchedulerConfig};
use crate::logic::transitions;
use crate::logic::views::{self, QueryWhat};
use crate::protocol::StartedContainer;
use crate::testing::{admin, admin_state, at};

fn app(workers: u32) -> zoe_checkpoints::Application {
    crate::description::app_description::parse_application(&json!({
        "name": "spark", "version": 2, "will_end": false, "requires_binary": false, "priority": 7,
        "services": [
            {"name": "master", "docker_image": "m:1", "monitor": true, "total_count": 1, "essential_count": 1,
             "startup_order": 0, "required_resources": {"memory": 67108864, "cores": 0.5},
             "ports": [{"name": "ui", "protocol": "http", "port_number": 8080, "is_main_endpoint": true, "expose": true}],
             "environment": [["MODE", "{execution_name}"]], "command": "run --fast"},
            {"name": "worker", "docker_image": "w:1", "monitor": false, "total_count": workers, "essential_count": 1,
             "startup_order": 1, "ports": [], "required_resources": {"memory": 33554432}}
        ]
    }))
    .unwrap()
}

fn platform() -> Platform {
    Platform::of(crate::testing::one_engine(("t", "t"), ("n", "n"), 1 << 32, 4))
}

fn caller_of(s: &State, name: &str) -> Caller {
    let u = s.user_by_name(name).unwrap();
    Caller { id: u.id, name: u.name.clone(), role: u.role }
}

/// The checkpoint text mutated.
fn sample() -> String {
    let mut s = admin_state();
    let cfg = SchedulerConfig::default();
    for (n, role) in [("alice", Role::User), ("gina", Role::Guest)] {
        transitions::create_user(&mut s, &admin(), n, role, "$argon2id$x".into(), at(1)).unwrap();
    }
    let alice = caller_of(&s, "alice");
    let run = transitions::submit_execution(&mut s, &alice, "run", app(2), &cfg, None, at(2)).unwrap();
    transitions::begin_start_with(&mut s, run, |name, i| name == "master" || i == 0, at(3)).unwrap();
    let containers: Vec<StartedContainer> = s.executions[&run]
        .services
        .iter()
        .filter(|sv| sv.status == zoe_checkpoints::ServiceStatus::Pending)
        .map(|sv| StartedContainer {
            service_id: sv.id,
            docker_id: format!("c{}", sv.id),
            ip_address: BTreeMap::from([("alice-dev".into(), "10.0.0.2".into())]),
            host_endpoints: BTreeMap::from([("8080/tcp".into(), "127.0.0.1:32768".into())]),
            node: None,
        })
        .collect();
    crate::logic::outcomes::started(&mut s, run, &containers, at(4));
    transitions::submit_execution(&mut s, &alice, "queued", app(1), &cfg, None, at(5)).unwrap();
    let gina = caller_of(&s, "gina");
    let gone = transitions::submit_execution(&mut s, &gina, "gone", app(1), &cfg, None, at(6)).unwrap();
    transitions::begin_start(&mut s, gone, at(7)).unwrap();
    transitions::terminate_execution(&mut s, &gina, gone, at(8)).unwrap();
    let done = transitions::submit_execution(&mut s, &admin(), "done", app(1), &cfg, None, at(9)).unwrap();
    transitions::terminate_execution(&mut s, &admin(), done, at(10)).unwrap();
    encode(&s).unwrap()
}

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "3",
    "65534",
    "4000000000",
    "4294967295",
    "4294967296",
    "2147483648",
    "18446744073709551615",
    "9223372036854775807",
    "1e300",
    "1e-300",
    "NaN",
    "inf",
    "-inf",
    "0.0",
    "-0.5",
];

/// Words that replace a word of the same kind: identifiers (statuses, roles), options,
/// strings, booleans.
const IDENTS: &[&str] = &[
    "scheduled",
    "starting",
    "running",
    "cleaning_up",
    "finished",
    "terminated",
    "error",
    "pending",
    "waiting",
    "exited",
    "removed",
    "lost",
    "admin",
    "user",
    "guest",
    "submit",
    "revert",
];
const OPTIONS: &[&str] =
    &["None", "Some(0)", "Some(finished)", "Some(running)", "Some(\"x\")", "Some(1e300)", "Some(NaN)", "Some(-1.0)"];
const STRINGS: &[&str] =
    &["\"\"", "\"zoeadmin\"", "\"alice\"", "\"gina\"", "\"Alice\"", "\"a b\"", "\"master\"", "\"worker\"", "\"run\""];

fn same_kind(current: &str, pick: usize) -> Option<&'static str> {
    let from = |list: &[&'static str]| list[pick % list.len()];
    if current.starts_with('"') {
        Some(from(STRINGS))
    } else if current == "true" || current == "false" {
        Some(if current == "true" { "false" } else { "true" })
    } else if current == "None" || current.starts_with("Some(") {
        Some(from(OPTIONS))
    } else if current.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !current.is_empty() {
        Some(from(IDENTS))
    } else {
        None
    }
}

/// Fields people edit by hand, whose values the master computes with.
const FIELDS: &[&str] = &[
    "next_id",
    "next_uid",
    "archived_segments",
    "uid",
    "id",
    "owner_id",
    "total_count",
    "essential_count",
    "startup_order",
    "memory",
    "cores",
    "priority",
    "port_number",
    "index",
    "retries",
    "exit_code",
    "version",
];

#[derive(Clone, Debug)]
enum Edit {
    /// Occurrence `n` (modulo their number) of field `name` gets this value.
    Field(&'static str, usize, &'static str),
    /// The number at the end of line `line % n` (if any) becomes this.
    Number(prop::sample::Index, &'static str),
    /// The value of the line (after `name: `, before its comma) becomes another of its kind.
    Word(prop::sample::Index, usize),
    Delete(prop::sample::Index),
    Duplicate(prop::sample::Index),
    Move(prop::sample::Index, prop::sample::Index),
    Insert(prop::sample::Index, &'static str),
}

fn edit() -> impl Strategy<Value = Edit> {
    let index = any::<prop::sample::Index>;
    prop_oneof![
        6 => (prop::sample::select(FIELDS), any::<usize>(), prop::sample::select(NUMBERS))
            .prop_map(|(f, n, v)| Edit::Field(f, n, v)),
        3 => (index(), prop::sample::select(NUMBERS)).prop_map(|(i, v)| Edit::Number(i, v)),
        4 => (index(), any::<usize>()).prop_map(|(i, v)| Edit::Word(i, v)),
        1 => index().prop_map(Edit::Delete),
        1 => index().prop_map(Edit::Duplicate),
        1 => (index(), index()).prop_map(|(a, b)| Edit::Move(a, b)),
        1 => (index(), prop::sample::select(vec!["(", ")", ",", "]", "//", "\u{0}", "é", "id: 3,", "ending: Some(running),"]))
            .prop_map(|(i, v)| Edit::Insert(i, v)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for e in edits {
        let n = lines.len().max(1);
        match e {
            Edit::Field(name, k, v) => {
                let key = format!("{name}: ");
                let hits: Vec<usize> = (0..lines.len()).filter(|i| lines[*i].trim_start().starts_with(&key)).collect();
                if hits.is_empty() {
                    continue;
                }
                let l = &mut lines[hits[k % hits.len()]];
                let start = l.find(&key).unwrap_or(0) + key.len();
                let end = l.rfind(',').filter(|e| *e >= start).unwrap_or(l.len());
                let value = if l[start..end].starts_with("Some(") { format!("Some({v})") } else { v.to_string() };
                l.replace_range(start..end, &value);
            }
            Edit::Number(i, v) => {
                let l = &mut lines[i.index(n)];
                let Some(end) = l.rfind(',') else { continue };
                let start = l[..end].rfind([' ', '(', '[']).map_or(0, |p| p + 1);
                if l[start..end].chars().next().is_some_and(|c| c.is_ascii_digit() || c == '-') {
                    l.replace_range(start..end, v);
                }
            }
            Edit::Word(i, pick) => {
                let l = &mut lines[i.index(n)];
                let Some(colon) = l.find(": ") else { continue };
                let end = l.rfind(',').filter(|e| *e > colon).unwrap_or(l.len());
                if let Some(v) = same_kind(&l[colon + 2..end], *pick) {
                    l.replace_range(colon + 2..end, v);
                }
            }
            Edit::Delete(i) => {
                lines.remove(i.index(n));
            }
            Edit::Duplicate(i) => {
                let l = lines[i.index(n)].clone();
                lines.insert(i.index(n), l);
            }
            Edit::Move(a, b) => {
                let l = lines.remove(a.index(n));
                lines.insert(b.index(n - 1).min(lines.len()), l);
            }
            Edit::Insert(i, v) => {
                let l = &mut lines[i.index(n)];
                let mut at = i.index(l.len() + 1);
                while !l.is_char_boundary(at) {
                    at -= 1;
                }
                l.insert_str(at, v);
            }
        }
    }
    lines.join("\n") + "\n"
}

/// Every read the API makes, for every user, over a loaded state.
fn serve(state: &Arc<State>) {
    let p = Published::new(state.clone(), Arc::default(), platform(), Counters::default(), true);
    let cfg = SchedulerConfig::default();
    let now = at(100);
    let _ = views::metrics(&p, &cfg);
    let _ = scheduler::round(&p.state, &cfg, p.platform.nodes(), now);
    for u in state.users.values() {
        let c = Caller { id: u.id, name: u.name.clone(), role: u.role };
        let _ = views::get_user(&p, &c, &u.name).unwrap();
        let _ = views::users(&p, &c);
        let list = views::list_executions(&p, &cfg, &c, &ListFilter::default(), now).unwrap();
        list.render(&p, &JsonCache::default(), 0..list.selection.items.len()).unwrap();
        for e in state.executions.values() {
            let _ = views::get_execution(&p, &cfg, &c, e.id, now).map(|one| one.json(&JsonCache::default()).unwrap());
            for s in &e.services {
                let _ = views::get_service(&p, &c, s.id);
            }
        }
        for what in [QueryWhat::StatsScheduler, QueryWhat::StatsSwarm, QueryWhat::Execution, QueryWhat::Service] {
            let _ = views::query(&p, &cfg, &c, what, &Map::new(), now);
        }
        let _ = views::platform_overview(&p, &cfg, &c, now);
    }
}

/// A change and a restart: a submission started by the scheduler, written and read back.
fn change_and_restart(state: &State) {
    let mut s = state.clone();
    let cfg = SchedulerConfig::default();
    let Some(a) = s.users.values().find(|u| u.role == Role::Admin).map(|u| Caller {
        id: u.id,
        name: u.name.clone(),
        role: u.role,
    }) else {
        return;
    };
    let nodes = platform().nodes().map(<[_]>::to_vec);
    if let Ok(id) = transitions::submit_execution(&mut s, &a, "new-one", app(2), &cfg, nodes.as_deref(), at(101)) {
        let _ = transitions::begin_start(&mut s, id, at(102));
    }
    let _ = transitions::create_user(&mut s, &a, "newcomer", Role::User, "$argon2id$y".into(), at(103));
    let text = encode(&s).unwrap();
    let back = decode(&text).unwrap_or_else(|e| panic!("the master would write what it cannot load: {e}"));
    assert_eq!(back, s);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn an_edited_checkpoint_is_refused_with_a_place_or_serves_changes_and_survives_a_restart(
        edits in prop::collection::vec(edit(), 1..4)
    ) {
        let text = apply(&sample(), &edits);
        match decode(&text) {
            Err(e) => {
                prop_assert!(e.line > 0 && e.column > 0, "refused without a place: {e}");
                prop_assert!(!e.reason.is_empty());
            }
            Ok(state) => {
                let state = Arc::new(state);
                serve(&state);
                let again = decode(&encode(&state).unwrap()).unwrap();
                prop_assert_eq!(&again, state.as_ref(), "survives a restart");
                change_and_restart(&state);
            }
        }
    }

    #[test]
    fn an_edited_segment_is_refused_or_serves_its_executions(edits in prop::collection::vec(edit(), 1..4)) {
        let text = apply(segment_text(), &edits);
        match decode_segment(&text, 1, "dev") {
            Err(e) => prop_assert!(!e.reason.is_empty()),
            Ok(segment) => {
                for e in &segment.executions {
                    serde_json::to_vec(&views::execution_view(e, None)).unwrap();
                    for s in &e.services {
                        serde_json::to_vec(&views::service_view(e, s)).unwrap();
                    }
                }
            }
        }
    }
}

/// A segment holding the sample's ended executions (written once, read for every case).
fn segment_text() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        let s = decode(&sample()).unwrap();
        let ended: Vec<_> = s.executions.values().filter(|e| e.status.is_final()).cloned().collect();
        let dir = std::env::temp_dir().join(format!("zoe-load-properties-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let archive = Archive::open(&dir).unwrap();
        archive.write("dev", 1, &ended).unwrap();
        let text = archive.read(1).unwrap();
        let _ = ArchiveIndex::empty(archive.dir());
        let _ = std::fs::remove_dir_all(&dir);
        text
    })
}

#[test]
fn the_sample_loads_serves_and_holds_each_kind_of_execution() {
    let text = sample();
    let s = Arc::new(decode(&text).unwrap());
    serve(&s);
    change_and_restart(&s);
    let statuses: Vec<&str> = s.executions.values().map(|e| e.status.as_str()).collect();
    assert_eq!(statuses, ["running", "scheduled", "cleaning up", "terminated"]);
    assert!(text.contains("status: waiting,"), "an elastic worker waits");
    assert!(decode_segment(segment_text(), 1, "dev").is_ok());
}
