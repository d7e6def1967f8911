use super::*;
use crate::logic::history::ListFilter;
use crate::logic::reader::{Counters, JsonCache, Platform};
use crate::logic::transitions::{begin_start, create_user, submit_execution};
use crate::testing::{at, insta_settings};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use zoe_checkpoints::{Role, State};

fn caller(s: &State, name: &str) -> Caller {
    let u = &s.users[&s.user_by_name(name).unwrap().id];
    Caller { id: u.id, name: u.name.clone(), role: u.role }
}

/// zoeadmin, alice (a running execution with a port, a queued one) and bob (one queued).
fn published() -> Published {
    let mut s = crate::testing::admin_state();
    let admin = caller(&s, "zoeadmin");
    for n in ["alice", "bob"] {
        create_user(&mut s, &admin, n, Role::User, "$argon2id$".into(), at(1)).unwrap();
    }
    let app = crate::description::app_description::parse_application(&json!({
        "name": "web", "version": 2, "will_end": false, "requires_binary": false, "priority": 1,
        "services": [{"name": "main", "docker_image": "img", "monitor": true, "total_count": 1, "essential_count": 1,
                      "startup_order": 0, "required_resources": {"memory": 33554432},
                      "ports": [{"name": "ui", "protocol": "http", "port_number": 80, "is_main_endpoint": true, "expose": true}]}]
    }))
    .unwrap();
    let cfg = SchedulerConfig::default();
    let alice = caller(&s, "alice");
    let bob = caller(&s, "bob");
    let run = submit_execution(&mut s, &alice, "run", app.clone(), &cfg, None, at(2)).unwrap();
    begin_start(&mut s, run, at(3)).unwrap();
    crate::logic::outcomes::started(&mut s, run, &[], at(4));
    submit_execution(&mut s, &bob, "theirs", app.clone(), &cfg, None, at(5)).unwrap();
    submit_execution(&mut s, &alice, "mine", app, &cfg, None, at(6)).unwrap();
    let platform = Platform::of(crate::testing::one_engine(("host-1", "20.10"), ("ENGINE1", "host-1"), 1 << 34, 8));
    Published::new(Arc::new(s), Arc::default(), platform, Counters::default(), true)
}

#[test]
fn the_views_have_the_0_9_7_shapes_and_read_back() {
    let p = published();
    let cfg = SchedulerConfig::default();
    let (admin, alice) = (caller(&p.state, "zoeadmin"), caller(&p.state, "alice"));
    // The executions as the API writes them: the listing's JSON, and each execution's own.
    let cache = JsonCache::default();
    let listing = list_executions(&p, &cfg, &alice, &ListFilter::default(), at(10)).unwrap();
    let text = [b"[".as_slice(), &listing.render(&p, &cache, 0..listing.selection.items.len()).unwrap(), b"]"].concat();
    let executions: Vec<Value> = serde_json::from_slice(&text).unwrap();
    for e in &executions {
        let one = get_execution(&p, &cfg, &alice, e["id"].as_u64().unwrap(), at(10)).unwrap().json(&cache).unwrap();
        assert_eq!(&serde_json::from_slice::<Value>(&one).unwrap(), e);
    }
    let service = get_service(&p, &alice, executions[0]["services"][0].as_u64().unwrap()).unwrap();
    let answer = json!({
        "user": get_user(&p, &alice, "alice").unwrap(),
        "executions": executions,
        "service": service,
        "stats_scheduler": query(&p, &cfg, &alice, QueryWhat::StatsScheduler, &Map::new(), at(10)).unwrap(),
        "stats_swarm (a user)": query(&p, &cfg, &alice, QueryWhat::StatsSwarm, &Map::new(), at(10)).unwrap(),
        "stats_swarm (an admin)": query(&p, &cfg, &admin, QueryWhat::StatsSwarm, &Map::new(), at(10)).unwrap(),
    });
    insta_settings().bind(|| insta::assert_json_snapshot!("views", answer));
    // What the API writes is what the client and the pages read.
    let back: Vec<ExecutionView> = serde_json::from_value(answer["executions"].clone()).unwrap();
    assert_eq!(back, listing.views(&p).unwrap());
    let back: ServiceView = serde_json::from_value(answer["service"].clone()).unwrap();
    assert_eq!(back, service);
    // A port as the API writes it, to the byte: the checkpoint's port inline, then `proxy_url`.
    assert_eq!(
        serde_json::to_string(&service.ports[0]).unwrap(),
        r#"{"name":"ui","protocol":"http","port_number":80,"path":"","is_main_endpoint":true,"expose":true,"host_endpoint":null,"proxy_url":"/proxy/3/main/80/"}"#
    );
    let back: QueryAnswer = serde_json::from_value(answer["stats_swarm (an admin)"].clone()).unwrap();
    assert!(matches!(back, QueryAnswer::Platform(s) if s.stats.nodes.len() == 1));
}

#[test]
fn callers_see_only_their_own_and_a_gone_caller_nothing() {
    let p = published();
    let cfg = SchedulerConfig::default();
    let (admin, alice, bob) = (caller(&p.state, "zoeadmin"), caller(&p.state, "alice"), caller(&p.state, "bob"));
    let theirs = list_executions(&p, &cfg, &bob, &ListFilter::default(), at(10)).unwrap().views(&p).unwrap();
    assert_eq!(theirs.len(), 1);
    let id = theirs[0].id;
    assert_eq!(get_execution(&p, &cfg, &alice, id, at(10)).unwrap_err().code, Code::NoSuchExecution);
    assert_eq!(get_execution(&p, &cfg, &admin, id, at(10)).unwrap().queue_position, Some(1));
    assert_eq!(get_user(&p, &alice, "bob").unwrap_err().code, Code::NoSuchUser);
    let filters = json!({"owner": "bob"}).as_object().unwrap().clone();
    let found = query(&p, &cfg, &alice, QueryWhat::Execution, &filters, at(10)).unwrap();
    assert_eq!(found, QueryAnswer::Executions(vec![]), "filters cannot widen what one sees");
    let found = query(&p, &cfg, &admin, QueryWhat::Execution, &filters, at(10)).unwrap();
    assert!(matches!(found, QueryAnswer::Executions(l) if l.len() == 1));
    let gone = Caller { id: 99, name: "carol".into(), role: Role::Admin };
    assert_eq!(list_executions(&p, &cfg, &gone, &ListFilter::default(), at(10)).unwrap_err().code, Code::Unauthorized);
    let creds = credentials(&p, "alice").unwrap();
    assert_eq!((creds.id, creds.name.as_str()), (alice.id, "alice"));
    assert!(credentials(&p, "carol").is_none());
    let m = metrics(&p, &cfg);
    assert_eq!((m.queue_length, m.memory_reserved), (2, 33554432));
}

#[test]
fn a_view_that_cannot_be_written_is_an_internal_error_and_is_not_cached() {
    // JSON objects have string keys: this map cannot be written.
    let unwritable = std::collections::HashMap::from([((1u8, 2u8), 3u8)]);
    let e = to_json(&unwritable).unwrap_err();
    assert_eq!((e.code, e.code.as_str()), (Code::Internal, "internal"), "{e}");
    let p = published();
    let e = p.state.executions.values().next().unwrap();
    let cache = JsonCache::default();
    assert!(cache.get_or_make(e, || to_json(&unwritable)).is_err());
    assert_eq!(cache.get_or_make(e, || Ok::<_, ZoeError>(b"{}".to_vec())).unwrap().as_ref(), b"{}");
}
