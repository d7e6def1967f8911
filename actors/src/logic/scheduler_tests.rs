use super::*;
use crate::logic::access::Caller;
use crate::logic::outcomes;
use crate::logic::transitions::{begin_grow, begin_start, begin_start_with, create_user, set_status, submit_execution};
use crate::protocol::StartedContainer;
use crate::testing::{at, describe, insta_settings, starts};
use serde_json::json;
use std::sync::Arc;
use zoe_checkpoints::ServiceStatus;

pub(super) const MIB: u64 = 1 << 20;

pub(super) fn app(memory_mib: u64, cores: Option<f64>, priority: u32) -> Application {
    let mut res = json!({"memory": memory_mib * MIB});
    if let Some(c) = cores {
        res["cores"] = json!(c);
    }
    crate::description::app_description::parse_application(&json!({
        "name": "a", "version": 2, "will_end": true, "requires_binary": false, "priority": priority,
        "services": [{"name": "main", "docker_image": "img", "monitor": true, "total_count": 1,
                      "essential_count": 1, "startup_order": 0, "ports": [], "required_resources": res}]
    }))
    .unwrap()
}

pub(super) struct World {
    pub(super) s: State,
    pub(super) cfg: SchedulerConfig,
    pub(super) nodes: Option<Vec<Node>>,
    pub(super) log: String,
}

impl World {
    pub(super) fn new(policy: Policy) -> World {
        let mut s = crate::testing::admin_state();
        let admin = crate::testing::admin();
        for (name, role) in [("alice", Role::User), ("gina", Role::Guest)] {
            create_user(&mut s, &admin, name, role, "$argon2id$".into(), at(0)).unwrap();
        }
        // Memory decides in these scenarios: a service without cores reserves a quarter of
        // one (`quotas_of_each_kind` shows the default cores counting).
        let cfg = SchedulerConfig {
            policy,
            aging: Duration::from_secs(100),
            default_cores: 0.25,
            ..SchedulerConfig::default()
        };
        World {
            s,
            cfg,
            nodes: Some(vec![Node { name: "engine".into(), capacity: Resources { memory: 1024 * MIB, cores: 4.0 } }]),
            log: String::new(),
        }
    }

    pub(super) fn caller(&self, name: &str) -> Caller {
        let u = self.s.user_by_name(name).unwrap();
        Caller { id: u.id, name: name.into(), role: u.role }
    }

    pub(super) fn submit(&mut self, who: &str, name: &str, app: Application, t: i64) -> Result<u64, ZoeError> {
        let c = self.caller(who);
        let r = submit_execution(&mut self.s, &c, name, app, &self.cfg, self.nodes.as_deref(), at(t));
        self.log.push_str(&format!(
            "t+{t} submit {name} by {who}: {}\n",
            match &r {
                Ok(id) => format!("id {id}"),
                Err(e) => format!("{} {}", e.code.as_str(), e.message),
            }
        ));
        self.step_state(t);
        r
    }

    /// One round of the scheduler's own ([`round`]), carried out with the back end answering at
    /// once: every start and every growth works; with `containers`, it reports each container
    /// it started (else none). Returns what the round decided.
    pub(super) fn apply_round(&mut self, t: i64, containers: bool) -> Round {
        let r = round(&self.s, &self.cfg, self.nodes.as_deref(), at(t));
        for st in &r.start {
            let app = self.s.executions[&st.id].application.clone();
            begin_start_with(&mut self.s, st.id, |svc, i| st.starts_now(&app, svc, i), at(t)).unwrap();
            let started = if containers { self.pending_containers(st.id) } else { Vec::new() };
            outcomes::started(&mut self.s, st.id, &started, at(t));
        }
        for (id, services) in &r.grow {
            begin_grow(&mut self.s, *id, services).unwrap();
            let started = if containers { self.pending_containers(*id) } else { Vec::new() };
            outcomes::instances_started(&mut self.s, *id, &started);
        }
        r
    }

    /// One scheduling round (see [`World::apply_round`]): the executions it started.
    pub(super) fn round(&mut self, t: i64) -> Vec<u64> {
        let ids: Vec<u64> = self.apply_round(t, false).start.iter().map(|st| st.id).collect();
        let names: Vec<&str> = ids.iter().map(|id| self.s.executions[id].name.as_str()).collect();
        self.log
            .push_str(&format!("t+{t} round: started {names:?}, reserved {:?}\n", reserved(&self.s, self.cfg.elastic)));
        self.step_state(t);
        ids
    }

    /// Containers for the services being started, as the back end reports them.
    pub(super) fn pending_containers(&self, id: u64) -> Vec<StartedContainer> {
        crate::testing::containers_of(&self.s.executions[&id], |s| s.status == ServiceStatus::Pending)
    }

    pub(super) fn end(&mut self, id: u64, t: i64) {
        begin_cleanup_done(&mut self.s, id, t);
        self.log.push_str(&format!("t+{t} {} finished\n", self.s.executions[&id].name));
        self.step_state(t);
    }

    /// The state after a step, one line: every execution's status and queue position.
    pub(super) fn step_state(&mut self, t: i64) {
        let pos = queue_positions(&self.s, &self.cfg, self.nodes.as_deref(), at(t));
        let line: Vec<String> = self
            .s
            .executions
            .values()
            .map(|e| match pos.get(&e.id) {
                Some(p) => format!("{}={}#{p}", e.name, e.status.as_str()),
                None => format!("{}={}", e.name, e.status.as_str()),
            })
            .collect();
        self.log.push_str(&format!("      state: {}\n", line.join(" ")));
    }

    pub(super) fn snapshot(&self, name: &str) {
        let text = format!("{}---\n{}", self.log, describe(&self.s));
        insta_settings().bind(|| insta::assert_snapshot!(name.to_string(), text));
    }
}

fn begin_cleanup_done(s: &mut State, id: u64, t: i64) {
    crate::logic::transitions::begin_cleanup(s, id, ExecutionStatus::Finished, "", at(t)).unwrap();
    outcomes::removed(s, id, None, at(t));
}

#[test]
fn fits_and_does_not_fit_then_starts_when_room_is_made() {
    let mut w = World::new(Policy::Fifo);
    let a = w.submit("alice", "big", app(600, Some(2.0), 1), 0).unwrap();
    w.submit("alice", "second", app(600, None, 1), 1).unwrap();
    assert_eq!(w.round(2), vec![a]);
    assert!(w.round(3).is_empty(), "600 + 600 MiB does not fit in 1024");
    assert_eq!(queue_positions(&w.s, &w.cfg, w.nodes.as_deref(), at(3)).into_values().collect::<Vec<_>>(), vec![1]);
    w.end(a, 10);
    assert_eq!(w.round(10).len(), 1);
    // Never fits: refused at submit, saying by how much.
    let e = w.submit("alice", "huge", app(2048, None, 1), 11).unwrap_err();
    assert_eq!(e.code, Code::ExceedsCapacity);
    assert!(e.message.contains("1 GiB more"), "{e}");
    let e = w.submit("alice", "cpu", app(10, Some(8.0), 1), 12).unwrap_err();
    assert!(e.message.contains("4 more"), "{e}");
    w.snapshot("fits_and_does_not_fit");
}

#[test]
fn on_several_nodes_every_container_must_fit_on_one_node() {
    let mut w = World::new(Policy::Fifo);
    let node = |name: &str| Node { name: name.into(), capacity: Resources { memory: 512 * MIB, cores: 2.0 } };
    w.nodes = Some(vec![node("n1"), node("n2")]);
    // 600 MiB fits in the 1 GiB of the two nodes together, but on neither: refused.
    let e = w.submit("alice", "wide", app(600, None, 1), 0).unwrap_err();
    assert_eq!(e.code, Code::ExceedsCapacity);
    assert!(e.message.contains("the largest node has 512 MiB"), "{e}");
    // Two containers of 400 MiB go one on each node.
    let mut pair = app(400, None, 1);
    pair.services[0].total_count = 2;
    pair.services[0].essential_count = 2;
    let two = w.submit("alice", "pair", pair, 1).unwrap();
    assert_eq!(w.round(1), vec![two]);
    w.end(two, 2);
    // Two of 300 MiB run, one on each node (the back end says where)...
    let a = w.submit("alice", "a", app(300, None, 1), 3).unwrap();
    let b = w.submit("alice", "b", app(300, None, 1), 3).unwrap();
    assert_eq!(w.round(3), vec![a, b]);
    for (id, n) in [(a, "n1"), (b, "n2")] {
        Arc::make_mut(w.s.executions.get_mut(&id).unwrap()).services[0].node = Some(n.into());
    }
    // ...so 400 MiB waits although 424 MiB are free in total: 212 on each node.
    let c = w.submit("alice", "c", app(400, None, 1), 4).unwrap();
    assert!(w.round(4).is_empty());
    assert_eq!(placement::free_per_node(w.nodes.as_deref().unwrap(), &w.s, true)[0].memory, 212 * MIB);
    w.end(a, 5);
    assert_eq!(w.round(5), vec![c], "it starts once a node has room");
    w.snapshot("several_nodes");
}

#[test]
fn a_large_execution_at_the_head_fifo_versus_size() {
    for policy in [Policy::Fifo, Policy::Size] {
        let mut w = World::new(policy);
        let hog = w.submit("alice", "hog", app(700, None, 1), 0).unwrap();
        w.round(0);
        w.submit("alice", "large", app(800, None, 1), 1).unwrap();
        w.submit("alice", "small-1", app(100, None, 1), 2).unwrap();
        w.submit("alice", "small-2", app(100, None, 1), 3).unwrap();
        let started = w.round(4);
        match policy {
            // Strict order: nothing passes the large one.
            Policy::Fifo => assert!(started.is_empty()),
            // Smallest first: both small ones run now; the large one waits for room.
            _ => assert_eq!(started.len(), 2),
        }
        w.end(hog, 20);
        w.round(20);
        w.snapshot(&format!("large_at_head_{}", policy.as_str()));
    }
}

#[test]
fn aging_ends_starvation() {
    // With `size`, a stream of small executions would keep a large one waiting forever;
    // after the aging time it goes first and nothing overtakes it.
    let mut w = World::new(Policy::Size);
    let large = w.submit("alice", "large", app(900, None, 1), 0).unwrap();
    let mut t = 0;
    let mut running = Vec::new();
    let mut large_started = None;
    for i in 0..40 {
        t = i * 10;
        if let Some(id) = running.pop() {
            w.end(id, t);
        }
        w.submit("alice", &format!("small-{i}"), app(200, None, 1), t).unwrap();
        let started = w.round(t);
        if started.contains(&large) {
            large_started = Some(t);
            break;
        }
        running.extend(started);
    }
    let at_t = large_started.expect("the large execution never started");
    // Its share is 900/1024 and a small one's 200/1024: it must wait about 0.68 of the aging
    // time (100 s) to outrank a fresh small execution.
    assert!((60..=100).contains(&at_t), "started at t+{at_t}");
    let _ = t;
    w.snapshot("aging_ends_starvation");
}

#[test]
fn priority_orders_and_ages() {
    let mut w = World::new(Policy::Priority);
    w.nodes = Some(vec![Node { name: "engine".into(), capacity: Resources { memory: 100 * MIB, cores: 1.0 } }]);
    let blocker = w.submit("alice", "blocker", app(100, None, 0), 0).unwrap();
    w.round(0);
    w.submit("alice", "low-old", app(100, None, 10), 1).unwrap();
    w.submit("alice", "high-new", app(100, None, 900), 50).unwrap();
    let pos = queue_positions(&w.s, &w.cfg, w.nodes.as_deref(), at(50));
    let name_at = |p: usize| pos.iter().find(|(_, v)| **v == p).map(|(id, _)| w.s.executions[id].name.clone());
    assert_eq!(name_at(1).as_deref(), Some("high-new"));
    // Later, low-old has waited long enough to outrank a fresh high-priority execution
    // (10 + 1024 * 140/100 > 900), though not high-new, which has been waiting too.
    w.submit("alice", "high-late", app(100, None, 900), 141).unwrap();
    let pos = queue_positions(&w.s, &w.cfg, w.nodes.as_deref(), at(141));
    let mut order: Vec<(usize, String)> = pos.iter().map(|(id, p)| (*p, w.s.executions[id].name.clone())).collect();
    order.sort();
    let order: Vec<String> = order.into_iter().map(|(_, n)| n).collect();
    assert_eq!(order, ["high-new", "low-old", "high-late"]);
    w.end(blocker, 141);
    w.round(141);
    w.snapshot("priority_orders_and_ages");
}

#[test]
fn a_failing_start_does_not_block_the_queue() {
    let mut w = World::new(Policy::Fifo);
    let bad = w.submit("alice", "bad", app(500, None, 1), 0).unwrap();
    let next = w.submit("alice", "next", app(500, None, 1), 1).unwrap();
    let third = w.submit("alice", "third", app(500, None, 1), 2).unwrap();
    let ids = starts(&w.s, &w.cfg, w.nodes.as_deref(), at(3));
    assert_eq!(ids, vec![bad, next]);
    for id in ids {
        begin_start(&mut w.s, id, at(3)).unwrap();
    }
    outcomes::start_failed(&mut w.s, bad, "image \"x\" is not present on this engine", false, at(4));
    outcomes::started(&mut w.s, next, &[], at(4));
    w.log.push_str("t+4 bad failed to start, next started\n");
    assert_eq!(w.round(5), vec![third], "the failure freed its reservation and the queue moved on");
    w.snapshot("failing_start_does_not_block");
}

#[test]
fn starts_in_flight_are_bounded() {
    let mut w = World::new(Policy::Fifo);
    w.cfg.max_starting = 2;
    let ids: Vec<u64> = (0..5).map(|i| w.submit("alice", &format!("e{i}"), app(10, None, 1), i).unwrap()).collect();
    let first = starts(&w.s, &w.cfg, w.nodes.as_deref(), at(5));
    assert_eq!(first, ids[..2], "two at once, in queue order");
    for id in &first {
        begin_start(&mut w.s, *id, at(5)).unwrap();
    }
    w.log.push_str("t+5 e0 and e1 starting\n");
    w.step_state(5);
    assert!(starts(&w.s, &w.cfg, w.nodes.as_deref(), at(6)).is_empty(), "nothing more while two are starting");
    let containers = w.pending_containers(ids[0]);
    outcomes::started(&mut w.s, ids[0], &containers, at(7));
    w.log.push_str("t+7 e0 running\n");
    w.step_state(7);
    assert_eq!(starts(&w.s, &w.cfg, w.nodes.as_deref(), at(7)), ids[2..3], "one more once one is running");
    w.snapshot("starts_in_flight_are_bounded");
}

#[test]
fn a_start_that_may_work_later_goes_back_to_its_place() {
    let mut w = World::new(Policy::Fifo);
    w.cfg.max_starting = 1;
    let slow = w.submit("alice", "slow", app(10, None, 1), 0).unwrap();
    let next = w.submit("alice", "next", app(10, None, 1), 1).unwrap();
    assert_eq!(starts(&w.s, &w.cfg, w.nodes.as_deref(), at(2)), vec![slow]);
    begin_start(&mut w.s, slow, at(2)).unwrap();
    let f = outcomes::start_failed(&mut w.s, slow, "Docker did not answer within 30 s", true, at(32));
    assert!(f.changed);
    w.log.push_str("t+32 slow failed to start (Docker too slow): back to the queue\n");
    w.step_state(32);
    let e = &w.s.executions[&slow];
    assert_eq!((e.status, e.time_started, e.services.len()), (ExecutionStatus::Scheduled, None, 0));
    assert_eq!(queue_positions(&w.s, &w.cfg, w.nodes.as_deref(), at(33))[&slow], 1, "it keeps its place");
    assert_eq!(queue_positions(&w.s, &w.cfg, w.nodes.as_deref(), at(33))[&next], 2);
    w.snapshot("transient_failure_requeues");
}

#[test]
fn what_a_service_may_use_is_what_it_reserves() {
    let mut given = app(10, Some(1.5), 1);
    default_cores(&mut given, 0.5);
    assert_eq!(given.services[0].required_resources.cores, Some(1.5), "given cores stay");
    let mut none = app(10, None, 1);
    default_cores(&mut none, 0.5);
    assert_eq!(none.services[0].required_resources.cores, Some(0.5), "the default, written in");
    assert_eq!(reservation(&none).cores, 0.5);
    // A description an older master accepted (any positive number): Docker's smallest limit.
    let mut tiny = app(10, Some(1.0), 1);
    tiny.services[0].required_resources.cores = Some(1e-300);
    default_cores(&mut tiny, 0.5);
    assert_eq!(tiny.services[0].required_resources.cores, Some(0.01));
}

#[test]
fn quotas_of_each_kind() {
    let mut w = World::new(Policy::Fifo);
    w.cfg.quotas.insert(
        Role::User,
        Quota {
            max_active: Some(4),
            max_queued: Some(3),
            max_memory: Some(300 * MIB),
            max_cores: Some(1.5),
            max_runtime: None,
        },
    );
    w.submit("alice", "one", app(100, Some(1.0), 1), 0).unwrap();
    let mem = w.submit("alice", "two", app(250, None, 1), 1).unwrap_err();
    assert!(mem.code == Code::QuotaExceeded && mem.message.contains("memory"), "{mem}");
    let cores = w.submit("alice", "two", app(10, Some(1.0), 1), 2).unwrap_err();
    assert!(cores.code == Code::QuotaExceeded && cores.message.contains("cores"), "{cores}");
    // A service without cores reserves the default ones and counts against the quota too:
    // no number of them adds up to more than the quota.
    w.cfg.default_cores = 1.0;
    let defaulted = w.submit("alice", "two", app(10, None, 1), 2).unwrap_err();
    assert!(defaulted.code == Code::QuotaExceeded && defaulted.message.contains("cores"), "{defaulted}");
    w.cfg.default_cores = 0.1;
    w.submit("alice", "two", app(10, None, 1), 3).unwrap();
    assert_eq!(w.s.executions.values().last().unwrap().application.services[0].required_resources.cores, Some(0.1));
    w.submit("alice", "three", app(10, None, 1), 4).unwrap();
    let queued = w.submit("alice", "four", app(10, None, 1), 5).unwrap_err();
    assert!(queued.code == Code::QuotaExceeded && queued.message.contains("3 execution(s) waiting"), "{queued}");
    w.round(5);
    w.submit("alice", "four", app(10, None, 1), 6).unwrap();
    let active = w.submit("alice", "five", app(10, None, 1), 7).unwrap_err();
    assert!(active.code == Code::QuotaExceeded && active.message.contains("4 active"), "{active}");
    w.submit("gina", "g1", app(10, None, 1), 8).unwrap();
    let guest = w.submit("gina", "g2", app(10, None, 1), 9).unwrap_err();
    assert_eq!(guest.code, Code::QuotaExceeded);
    w.snapshot("quotas_of_each_kind");
}

#[test]
fn the_running_time_limit_counts_from_the_start() {
    let mut w = World::new(Policy::Fifo);
    w.cfg.quotas.insert(
        Role::Guest,
        Quota { max_active: Some(1), max_runtime: Some(Duration::from_secs(60)), ..Quota::default() },
    );
    let id = w.submit("gina", "g1", app(10, None, 1), 0).unwrap();
    // Queued for 100 s: the limit does not count waiting.
    assert!(overdue(&w.s, &w.cfg, at(100)).is_empty());
    w.round(100);
    assert!(overdue(&w.s, &w.cfg, at(159)).is_empty());
    let over = overdue(&w.s, &w.cfg, at(160));
    assert_eq!(over.len(), 1);
    assert_eq!(over[0].0, id);
    assert!(over[0].1.contains("60 s limit of role guest"), "{}", over[0].1);
    let _ = set_status;
}

#[test]
fn the_queue_survives_a_restart_in_order() {
    let mut w = World::new(Policy::Fifo);
    w.nodes = Some(vec![Node { name: "engine".into(), capacity: Resources { memory: 100 * MIB, cores: 1.0 } }]);
    let first = w.submit("alice", "first", app(100, None, 1), 0).unwrap();
    w.submit("alice", "second", app(100, None, 1), 1).unwrap();
    w.submit("alice", "third", app(100, None, 1), 2).unwrap();
    w.round(3);
    let text = zoe_checkpoints::encode(&w.s).unwrap();
    let mut restored = zoe_checkpoints::decode(&text).unwrap();
    assert_eq!(restored, w.s);
    // After a restart the running one is checked, and the others keep their places.
    let pos = queue_positions(&restored, &w.cfg, w.nodes.as_deref(), at(4));
    let mut names: Vec<(usize, String)> =
        pos.iter().map(|(id, p)| (*p, restored.executions[id].name.clone())).collect();
    names.sort();
    assert_eq!(names, vec![(1, "second".to_string()), (2, "third".to_string())]);
    begin_cleanup_done(&mut restored, first, 5);
    let next = starts(&restored, &w.cfg, w.nodes.as_deref(), at(5));
    assert_eq!(next.len(), 1);
    assert_eq!(restored.executions[&next[0]].name, "second");
}
