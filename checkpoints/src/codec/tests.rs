use super::*;
use crate::model::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use time::macros::datetime;

/// A state with a bit of everything: users of each role, a running execution with
/// services, ports and IPs, and a finished one.
pub(crate) fn sample_state() -> State {
    let mut s = State::new("prod");
    s.archived_segments = 2;
    s.changes = vec![
        Change::new("alice", Action::Submit, vec![3]),
        Change::new("zoe", Action::Start, vec![3]),
        Change::new("zoe", Action::Archive, vec![2]),
    ];
    // Ids 0, 1 and 2, uids FIRST_UID to FIRST_UID + 2.
    for (name, role) in [("zoeadmin", Role::Admin), ("alice", Role::User), ("gina", Role::Guest)] {
        let hash = format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ${name}");
        s.add_user(name, role, hash, datetime!(2026-11-25 08:00:00 UTC));
    }
    s.next_id = 9;
    let application = Application {
        name: "notebook".into(),
        version: 2,
        will_end: false,
        requires_binary: false,
        priority: 512,
        services: vec![ServiceDescription {
            name: "jupyter".into(),
            docker_image: "zoe-test-busybox:latest".into(),
            monitor: true,
            total_count: 1,
            essential_count: 1,
            startup_order: 0,
            ports: vec![PortDescription {
                name: "Jupyter Notebook interface".into(),
                protocol: "http".into(),
                port_number: 8888,
                path: "/".into(),
                is_main_endpoint: true,
                expose: true,
                secret_header: Some("Authorization: token {secret}".into()),
            }],
            required_resources: Resources { memory: 268435456, cores: Some(1.5) },
            environment: vec![("NB_USER".into(), "{user_name}".into())],
            command: Some("httpd -f -p 8888".into()),
            volumes: vec![],
            networks: vec![],
            datasets: vec![],
        }],
    };
    let running = Execution {
        id: 3,
        name: "nb".into(),
        owner: "alice".into(),
        owner_id: 1,
        status: ExecutionStatus::Running,
        error: None,
        ending: None,
        time_scheduled: datetime!(2026-11-25 08:01:00 UTC),
        time_started: Some(datetime!(2026-11-25 08:01:02.5 UTC)),
        time_finished: None,
        application: application.clone(),
        services: vec![Service {
            docker_id: Some("15ce0f0e3b6c".into()),
            ip_address: BTreeMap::from([("alice-prod".into(), "172.18.0.2".into())]),
            ports: vec![ServicePort {
                host_endpoint: Some("127.0.0.1:32768".into()),
                ..ServicePort::of(&application.services[0].ports[0])
            }],
            ..Service::new(4, "jupyter-nb-alice-prod".into(), "jupyter", 0, true, ServiceStatus::Running)
        }],
        proxy_secret: Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into()),
        usage: Default::default(),
        usage_series: Default::default(),
    };
    let mut done = running.clone();
    done.proxy_secret = None;
    done.id = 5;
    done.name = "old".into();
    done.owner = "gina".into();
    done.owner_id = 2;
    done.status = ExecutionStatus::Finished;
    done.time_finished = Some(datetime!(2026-11-25 08:30:00 UTC));
    done.services[0].id = 6;
    done.services[0].status = ServiceStatus::Exited;
    done.services[0].exit_code = Some(0);
    s.executions.insert(3, Arc::new(running));
    s.executions.insert(5, Arc::new(done));
    s
}

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"));
    s.set_prepend_module_to_snapshot(true);
    s
}

#[test]
fn encode_is_pretty_stable_and_round_trips() {
    let s = sample_state();
    let text = encode(&s).unwrap();
    settings().bind(|| insta::assert_snapshot!("sample_checkpoint", text));
    assert_eq!(decode(&text).unwrap(), s);
    assert_eq!(encode(&decode(&text).unwrap()).unwrap(), text, "encoding is stable");
}

/// What the pretty RON serializer writes for the state, with the header.
fn serde_text(s: &State) -> String {
    format!("{}{}\n", header(s), ron::ser::to_string_pretty(s, pretty()).unwrap())
}

#[test]
fn the_caching_encoder_writes_what_the_serializer_writes() {
    let mut enc = Encoder::default();
    let mut s = State::new("dev");
    assert_eq!(enc.encode(&s).unwrap(), serde_text(&s), "empty lists");
    s = sample_state();
    s.changes.clear();
    assert_eq!(enc.encode(&s).unwrap(), serde_text(&s));
    // Change one execution, remove a user: the cache must notice both.
    Arc::make_mut(s.executions.get_mut(&3).unwrap()).error = Some("a \"quoted\"\nline".into());
    s.users.remove(&2);
    s.executions.remove(&5);
    assert_eq!(enc.encode(&s).unwrap(), serde_text(&s));
    assert_eq!(enc.executions.len(), 1);
    assert_eq!(enc.users.len(), 2);
    // Changes are one per line, and read back.
    s.changes = vec![Change::new("alice", Action::Submit, vec![3, 7]), Change::new("zoe", Action::Archive, vec![])];
    let text = enc.encode(&s).unwrap();
    assert!(text.contains("        (by: \"alice\", action: submit, ids: [3, 7]),\n"), "{text}");
    assert!(text.contains("        (by: \"zoe\", action: archive, ids: []),\n"), "{text}");
    assert_eq!(decode(&text).unwrap().changes, s.changes);
}

#[test]
fn changes_by_the_same_person_of_the_same_kind_merge() {
    let mut c = Vec::new();
    record_change(&mut c, "alice", Action::Submit, &[3]);
    record_change(&mut c, "alice", Action::Submit, &[5, 3]);
    record_change(&mut c, "bob", Action::Submit, &[7]);
    record_change(&mut c, "alice", Action::Submit, &[9]);
    assert_eq!(
        c,
        [
            Change::new("alice", Action::Submit, vec![3, 5]),
            Change::new("bob", Action::Submit, vec![7]),
            Change::new("alice", Action::Submit, vec![9])
        ]
    );
}

#[test]
fn every_fixture_checkpoint_still_loads() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/checkpoints");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let state = decode(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(state.format_version, FORMAT_VERSION, "{} is upgraded", path.display());
        assert!(!state.users.is_empty());
        n += 1;
    }
    assert!(n >= 1, "no fixtures in {dir}");
}

fn err_of(text: &str) -> LoadError {
    decode(text).unwrap_err()
}

#[test]
fn damage_is_reported_with_line_column_and_reason() {
    let text = encode(&sample_state()).unwrap();
    let e = err_of(&text[..text.len() / 2]);
    assert!(e.line > 0 && e.column > 0, "{e}");
    let e = err_of(&text.replace("role: guest,", "role: superuser,"));
    let line = text.lines().position(|l| l.contains("role: guest,")).unwrap() + 1;
    assert_eq!(e.line, line, "{e}");
    assert!(e.reason.contains("superuser"), "{e}");
    let e = err_of(&text.replace(&format!("format_version: {FORMAT_VERSION},"), "format_version: 99,"));
    assert!(e.reason.contains("newer Zoe"), "{e}");
    let e =
        err_of(&text.replace("stutus", "x").replace("status: running,", "status: running,\n            colour: blue,"));
    assert!(e.reason.contains("colour"), "unknown fields are refused: {e}");
}

#[test]
fn semantic_damage_is_refused_with_the_place() {
    let text = encode(&sample_state()).unwrap();
    // Each damage (what is replaced, by what) and what the refusal says.
    let damages = [
        // A duplicated id.
        ("id: 6,", "id: 4,", "used twice"),
        // An id at or above next_id.
        ("next_id: 9,", "next_id: 5,", "not below next_id"),
        // An active execution whose owner is gone.
        ("owner_id: 1,", "owner_id: 7,", "does not exist"),
        // A uid used twice, or one of the system's.
        ("uid: 200001,", "uid: 200000,", "uid 200000 is used twice"),
        ("uid: 200001,", "uid: 0,", "must be at least 1000"),
        // A bad name.
        ("name: \"alice\"", "name: \"Alice\"", "DNS"),
        // No admin left.
        ("role: admin,", "role: user,", "admin"),
        // A final execution without an end time.
        ("time_finished: Some(\"2026-11-25T08:30:00Z\"),", "time_finished: None,", "time_finished"),
    ];
    for (from, to, says) in damages {
        let e = err_of(&text.replace(from, to));
        assert!(e.reason.contains(says), "{e}");
    }
    // The place is the damaged execution's.
    let e = err_of(&text.replace("owner_id: 1,", "owner_id: 7,"));
    let line = text.lines().position(|l| l.contains("id: 3,")).unwrap() + 1;
    assert_eq!(e.line, line, "{e}");
}

#[test]
fn tokens_are_kept_as_hashes_and_checked_on_load() {
    let mut s = sample_state();
    let token = |name: &str, hash: String| crate::Token {
        name: name.into(),
        hash,
        created_at: datetime!(2026-11-25 08:00:00 UTC),
        expires_at: datetime!(2026-12-25 08:00:00 UTC),
        last_used: None,
    };
    Arc::make_mut(s.users.get_mut(&1).unwrap()).tokens =
        vec![token("laptop", crate::token_hash("zoe_1_secret")), token("ci", crate::token_hash("zoe_1_other"))];
    let text = encode(&s).unwrap();
    assert!(!text.contains("zoe_1_secret"), "{text}");
    assert_eq!(decode(&text).unwrap(), s, "round trip");
    let dup = text.replace("name: \"ci\"", "name: \"laptop\"");
    assert!(err_of(&dup).reason.contains("token \"laptop\": the name is used twice"), "{}", err_of(&dup));
    let hash = crate::token_hash("zoe_1_other");
    let bad = text.replace(&hash, "not-a-hash");
    let e = err_of(&bad);
    assert!(e.reason.contains("hash is not 64 lowercase hex digits") && e.line > 0, "{e}");
    let bad = text.replace("name: \"ci\"", "name: \"Not A Label\"");
    assert!(err_of(&bad).reason.contains("lowercase DNS label"), "{}", err_of(&bad));
}

#[test]
fn measured_usage_round_trips_one_point_a_line_and_is_checked_on_load() {
    let plain = encode(&sample_state()).unwrap();
    assert!(!plain.contains("usage"), "nothing measured, nothing written: format 7 as before");
    let mut s = sample_state();
    let e = Arc::make_mut(s.executions.get_mut(&3).unwrap());
    e.usage = Usage {
        cpu_seconds: 12.5,
        memory_byte_seconds: 3e9,
        memory_peak_bytes: 64 << 20,
        reserved_core_seconds: 30.0,
        reserved_memory_byte_seconds: 4e9,
    };
    e.usage_series =
        UsageSeries { step: 15, memory_bytes: 1 << 20, points: vec![UsagePoint(1_795_000_015, 15, 0.5, 1 << 20)] };
    e.services[0].cpu_ns = 12_500_000_000;
    let text = encode(&s).unwrap();
    assert!(text.contains("                (1795000015, 15, 0.5, 1048576),\n"), "{text}");
    assert!(text.contains("cpu_ns: 12500000000,"), "{text}");
    assert_eq!(decode(&text).unwrap(), s);
    s.changes.clear();
    assert_eq!(Encoder::default().encode(&s).unwrap(), serde_text(&s));
    for (from, to) in [("cpu_seconds: 12.5,", "cpu_seconds: -1.0,"), ("(1795000015, 15, 0.5,", "(1795000015, 15, NaN,")]
    {
        let e = err_of(&text.replace(from, to));
        assert!(e.reason.contains("usage"), "{e}");
    }
}
