//! Elastic scheduling, step by step: whole-state snapshots after every step of the scheduler and
//! of the back end's (simulated) answers.

use super::tests::{app, World, MIB};
use super::*;
use crate::logic::outcomes;
use crate::testing::at;
use serde_json::json;
use zoe_checkpoints::ServiceStatus;

/// A monitor of `monitor_mib` and `workers` workers of `worker_mib`, `essential` of them
/// essential.
fn spark(monitor_mib: u64, worker_mib: u64, workers: u32, essential: u32) -> Application {
    crate::description::app_description::parse_application(&json!({
        "name": "spark", "version": 2, "will_end": true, "requires_binary": false, "priority": 1,
        "services": [
            {"name": "master", "docker_image": "img", "monitor": true, "total_count": 1, "essential_count": 1,
             "startup_order": 0, "ports": [], "required_resources": {"memory": monitor_mib * MIB}},
            {"name": "worker", "docker_image": "img", "monitor": false, "total_count": workers,
             "essential_count": essential, "startup_order": 1, "ports": [],
             "required_resources": {"memory": worker_mib * MIB}}
        ]
    }))
    .unwrap()
}

impl World {
    /// One round of the scheduler with the back end answering at once: every start and every
    /// growth works. Returns what the round decided.
    fn step(&mut self, t: i64) -> Round {
        let r = self.apply_round(t, true);
        let name = |id: &u64| self.s.executions[id].name.clone();
        let starts: Vec<String> = r.start.iter().map(|st| name(&st.id)).collect();
        let grows: Vec<String> = r.grow.iter().map(|(id, s)| format!("{} +{}", name(id), s.len())).collect();
        self.log.push_str(&format!(
            "t+{t} round: started {starts:?}, grew {grows:?}, reserved {} MiB\n",
            reserved(&self.s, self.cfg.elastic).memory / MIB
        ));
        self.elastic_state(t);
        r
    }

    /// The state after a step, one line per active execution: its instances.
    fn elastic_state(&mut self, t: i64) {
        self.step_state(t);
        for e in self.s.executions.values().filter(|e| e.status.is_active() && !e.services.is_empty()) {
            let line: Vec<String> = e
                .services
                .iter()
                .map(|s| {
                    let tag = if e.is_essential(s) { "" } else { "~" };
                    format!("{tag}{}#{}={}", s.service_name, s.index, s.status.as_str())
                })
                .collect();
            self.log.push_str(&format!("      {}: {}\n", e.name, line.join(" ")));
        }
    }

    fn exit(&mut self, id: u64, service: &str, index: u32, code: i64, t: i64) {
        let sid = self.service(id, service, index);
        outcomes::exited(&mut self.s, id, sid, code, false, at(t));
        self.log.push_str(&format!("t+{t} {service}#{index} of {} exited with {code}\n", self.s.executions[&id].name));
        self.elastic_state(t);
    }

    fn service(&self, id: u64, service: &str, index: u32) -> u64 {
        self.s.executions[&id].services.iter().find(|s| s.service_name == service && s.index == index).unwrap().id
    }

    fn status_of(&self, id: u64, service: &str, index: u32) -> ServiceStatus {
        let sid = self.service(id, service, index);
        self.s.executions[&id].services.iter().find(|s| s.id == sid).unwrap().status
    }
}

/// A world of 1024 MiB where `name`, an execution of `mib` MiB, runs from t+0, and `job` was
/// submitted at t+1 and scheduled in that round: a monitor of 100 MiB and four workers of
/// 100 MiB, one of them essential (500 MiB in all, 200 essential). Gives the round's decision.
fn job_beside(name: &str, mib: u64) -> (World, u64, u64, Round) {
    let mut w = World::new(Policy::Fifo);
    let other = w.submit("alice", name, app(mib, None, 1), 0).unwrap();
    w.step(0);
    let job = w.submit("alice", "job", spark(100, 100, 4, 1), 1).unwrap();
    let r = w.step(1);
    (w, other, job, r)
}

#[test]
fn admitted_on_its_essential_instances_and_grown_when_another_execution_ends() {
    // A blocker holds 600 MiB; 424 MiB are free: the job starts with its essentials and two
    // elastic workers.
    let (mut w, blocker, job, r) = job_beside("blocker", 600);
    assert_eq!(r.start.len(), 1);
    assert_eq!(r.start[0].elastic_now, Some(vec![("worker".to_string(), 1), ("worker".to_string(), 2)]));
    assert_eq!(w.s.executions[&job].status, ExecutionStatus::Running);
    assert_eq!(w.status_of(job, "worker", 3), ServiceStatus::Waiting);
    assert_eq!(reserved(&w.s, true).memory, 1000 * MIB, "what runs is reserved, not what waits");
    let view = crate::logic::views::instances(&w.s.executions[&job]);
    assert_eq!((view.essential.running, view.elastic.running, view.elastic.waiting), (2, 2, 1));
    // Nothing more fits: the round changes nothing.
    assert_eq!(w.step(2), Round::default());
    // The blocker ends: the last worker starts.
    w.end(blocker, 10);
    let r = w.step(10);
    assert_eq!(r.grow.len(), 1);
    assert_eq!(w.status_of(job, "worker", 3), ServiceStatus::Running);
    assert_eq!(reserved(&w.s, true).memory, 500 * MIB);
    w.snapshot("elastic_admission_and_growth");
}

#[test]
fn the_queue_comes_before_growth() {
    // A job running on its essentials with three workers waiting, and a queued execution that
    // does not fit: freed room goes to the queued one, not to the workers.
    let (mut w, hog, job, _) = job_beside("hog", 700);
    assert_eq!(w.status_of(job, "worker", 1), ServiceStatus::Running);
    assert_eq!(w.status_of(job, "worker", 2), ServiceStatus::Waiting);
    let big = w.submit("alice", "big", app(600, None, 1), 2).unwrap();
    w.end(hog, 3);
    // 1024 - 300 = 724 free: big (600) starts first; the 124 MiB left take one worker.
    let r = w.step(3);
    assert_eq!(r.start.iter().map(|s| s.id).collect::<Vec<_>>(), vec![big]);
    assert_eq!(r.grow, vec![(job, vec![w.service(job, "worker", 2)])]);
    // While a queued execution waits for room, nothing grows into it.
    w.submit("alice", "wide", app(300, None, 1), 4).unwrap();
    w.exit(job, "worker", 1, 1, 5);
    let r = w.step(5);
    assert!(r.start.is_empty() && r.grow.is_empty(), "{r:?}");
    assert_eq!(w.status_of(job, "worker", 1), ServiceStatus::Exited);
    w.snapshot("elastic_queue_before_growth");
}

#[test]
fn an_elastic_instance_that_dies_does_not_end_the_execution_and_starts_again() {
    let mut w = World::new(Policy::Fifo);
    let job = w.submit("alice", "job", spark(100, 100, 3, 1), 0).unwrap();
    w.step(0);
    // A worker fails: the execution goes on, and the next round starts it again.
    w.exit(job, "worker", 2, 137, 1);
    assert_eq!(w.s.executions[&job].status, ExecutionStatus::Running);
    let r = w.step(1);
    assert_eq!(r.grow, vec![(job, vec![w.service(job, "worker", 2)])]);
    assert_eq!(w.status_of(job, "worker", 2), ServiceStatus::Running);
    // Lost with its node: the same.
    let sid = w.service(job, "worker", 1);
    outcomes::lost(&mut w.s, job, sid, "node-2", at(2));
    w.log.push_str("t+2 worker#1 of job lost with node-2\n");
    assert_eq!(w.s.executions[&job].status, ExecutionStatus::Running);
    w.step(2);
    assert_eq!(w.status_of(job, "worker", 1), ServiceStatus::Running);
    // A worker that keeps failing is started again at most MAX_RETRIES times.
    for t in 3..3 + i64::from(placement::MAX_RETRIES) {
        w.exit(job, "worker", 2, 1, t);
        w.step(t);
    }
    assert_eq!(
        w.status_of(job, "worker", 2),
        ServiceStatus::Exited,
        "given up after {} retries",
        placement::MAX_RETRIES
    );
    let e = &w.s.executions[&job];
    assert_eq!(e.services.iter().find(|s| s.service_name == "worker" && s.index == 2).unwrap().retries, 3);
    // One that exits with 0 has done its work: not started again, and it holds nothing.
    w.exit(job, "worker", 1, 0, 10);
    assert_eq!(w.step(10), Round::default());
    assert_eq!(reserved(&w.s, true).memory, 200 * MIB, "the master and the essential worker");
    // The monitor's end still ends the execution.
    w.exit(job, "master", 0, 0, 11);
    assert_eq!(w.s.executions[&job].status, ExecutionStatus::CleaningUp);
    w.snapshot("elastic_death_and_restart");
}

#[test]
fn rigid_mode_reserves_everything_up_front_as_before() {
    let mut w = World::new(Policy::Fifo);
    w.cfg.elastic = false;
    let blocker = w.submit("alice", "blocker", app(600, None, 1), 0).unwrap();
    w.step(0);
    let job = w.submit("alice", "job", spark(100, 100, 4, 1), 1).unwrap();
    // 500 MiB do not fit in 424: it waits, whole.
    assert_eq!(w.step(1), Round::default());
    w.end(blocker, 10);
    let r = w.step(10);
    assert_eq!(r.start, vec![Start { id: job, elastic_now: None }]);
    assert!(w.s.executions[&job].services.iter().all(|s| s.status == ServiceStatus::Running));
    // A dead worker is not started again and keeps its reservation until the end.
    w.exit(job, "worker", 3, 1, 11);
    assert_eq!(w.step(11), Round::default());
    assert_eq!(reserved(&w.s, false).memory, 500 * MIB);
    // Submission checks the whole: 1100 MiB never fit, though its essentials would.
    let e = w.submit("alice", "huge", spark(100, 200, 5, 1), 12).unwrap_err();
    assert_eq!(e.code, Code::ExceedsCapacity);
    w.cfg.elastic = true;
    w.submit("alice", "huge", spark(100, 200, 5, 1), 13).unwrap();
    w.snapshot("rigid_mode");
}

#[test]
fn growth_stays_within_the_owners_quota_and_elastic_admission_checks() {
    let mut w = World::new(Policy::Fifo);
    w.cfg.quotas.insert(Role::User, Quota { max_memory: Some(350 * MIB), ..Quota::default() });
    // 500 MiB in all but 200 essential: admitted; it grows to 300 of the user's 350.
    let job = w.submit("alice", "job", spark(100, 100, 4, 1), 0).unwrap();
    w.step(0);
    let v = crate::logic::views::instances(&w.s.executions[&job]);
    assert_eq!((v.elastic.running, v.elastic.waiting), (1, 2));
    // A second one's essentials (200) would pass the quota: refused, saying why.
    let e = w.submit("alice", "two", spark(100, 100, 2, 1), 1).unwrap_err();
    assert_eq!(e.code, Code::QuotaExceeded);
    // An elastic instance larger than every node could never start: refused at submit.
    w.nodes = Some(vec![Node { name: "n1".into(), capacity: Resources { memory: 512 * MIB, cores: 4.0 } }]);
    let e = w.submit("gina", "wide", spark(100, 600, 2, 0), 2).unwrap_err();
    assert!(e.code == Code::ExceedsCapacity && e.message.contains("the largest node has 512 MiB"), "{e}");
    let e = w.submit("gina", "big", spark(300, 300, 2, 1), 3).unwrap_err();
    assert!(e.message.contains("essential instances need"), "{e}");
    w.snapshot("elastic_quota");
}
