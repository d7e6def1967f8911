use serde_json::json;
use zoe_checkpoints::{Usage, UsageSeries};

use super::*;
use crate::logic::scheduler::SchedulerConfig;
use crate::logic::{outcomes, transitions};
use crate::protocol::Stats;
use crate::testing::{admin, admin_state, at, containers_of};

const MIB: u64 = 1 << 20;

/// A running execution (started at `at(0)`) of two services: `a` reserving 1 core and 64 MiB,
/// `b` 0.5 core and 32 MiB. Returns the state, its id and its services' ids.
fn running() -> (State, u64, [u64; 2]) {
    let app = crate::description::app_description::parse_application(&json!({
        "name": "app", "version": 2, "will_end": false, "requires_binary": false, "priority": 1,
        "services": [
            {"name": "a", "docker_image": "img", "monitor": true, "total_count": 1, "essential_count": 1,
             "startup_order": 0, "ports": [], "required_resources": {"memory": 64 * MIB, "cores": 1.0}},
            {"name": "b", "docker_image": "img", "monitor": false, "total_count": 1, "essential_count": 1,
             "startup_order": 0, "ports": [], "required_resources": {"memory": 32 * MIB, "cores": 0.5}}
        ]
    }))
    .unwrap();
    let mut s = admin_state();
    let id =
        transitions::submit_execution(&mut s, &admin(), "x", app, &SchedulerConfig::default(), None, at(-5)).unwrap();
    transitions::begin_start(&mut s, id, at(0)).unwrap();
    let containers = containers_of(&s.executions[&id], |_| true);
    outcomes::started(&mut s, id, &containers, at(0));
    assert_eq!(s.executions[&id].status, ExecutionStatus::Running);
    let e = &s.executions[&id];
    let ids = [e.services[0].id, e.services[1].id];
    (s, id, ids)
}

fn stats(cpu_s: f64, memory_mib: u64) -> Option<Stats> {
    Some(Stats { cpu_ns: (cpu_s * 1e9) as u64, memory: Some(memory_mib * MIB) })
}

fn round(id: u64, services: Vec<(u64, Option<Stats>)>) -> Vec<ExecutionSample> {
    vec![ExecutionSample { execution_id: id, services }]
}

#[test]
fn samples_integrate_cpu_memory_and_reservations() {
    let (mut s, id, [a, b]) = running();
    let changed = record(&mut s, &round(id, vec![(a, stats(5.0, 10)), (b, stats(1.0, 20))]), at(10), 10);
    assert_eq!(changed, [id]);
    let e = &s.executions[&id];
    assert_eq!(
        e.usage,
        Usage {
            cpu_seconds: 6.0,
            memory_byte_seconds: (30 * MIB * 10) as f64,
            memory_peak_bytes: 30 * MIB,
            reserved_core_seconds: 15.0,
            reserved_memory_byte_seconds: (96 * MIB * 10) as f64,
        }
    );
    // Ten seconds later: a's counter grew by 10 s, b's did not; less memory.
    record(&mut s, &round(id, vec![(a, stats(15.0, 5)), (b, stats(1.0, 20))]), at(20), 10);
    let e = &s.executions[&id];
    assert_eq!(e.usage.cpu_seconds, 16.0);
    assert_eq!(e.usage.memory_byte_seconds, (30 * MIB * 10 + 25 * MIB * 10) as f64);
    assert_eq!(e.usage.memory_peak_bytes, 30 * MIB, "the peak stays");
    assert_eq!(e.usage.reserved_core_seconds, 30.0);
    assert!(e.usage.reserved_core_seconds >= e.usage.cpu_seconds);
    let end = at(0).unix_timestamp();
    assert_eq!(
        e.usage_series,
        UsageSeries {
            step: 10,
            memory_bytes: 25 * MIB,
            points: vec![UsagePoint(end + 10, 10, 0.6, 30 * MIB), UsagePoint(end + 20, 10, 1.0, 25 * MIB)],
        }
    );
    assert_eq!(e.services[0].cpu_ns, 15_000_000_000, "kept for the next round, and a restart");
}

#[test]
fn a_counter_that_went_down_is_a_new_container_and_unknown_stats_count_reservations_only() {
    let (mut s, id, [a, b]) = running();
    record(&mut s, &round(id, vec![(a, stats(5.0, 10)), (b, None)]), at(10), 10);
    record(&mut s, &round(id, vec![(a, stats(2.0, 10)), (b, None)]), at(20), 10);
    let u = s.executions[&id].usage;
    assert_eq!(u.cpu_seconds, 7.0, "5 s, then the new container's 2 s");
    assert_eq!(u.reserved_core_seconds, 30.0, "b's reservation counts though it could not be sampled");
    // Nothing known at all (a Swarm): reservations only, no memory.
    let (mut s, id, [a, b]) = running();
    record(&mut s, &round(id, vec![(a, None), (b, None)]), at(10), 10);
    let u = s.executions[&id].usage;
    assert_eq!((u.cpu_seconds, u.memory_byte_seconds, u.memory_peak_bytes), (0.0, 0.0, 0));
    assert_eq!(u.reserved_memory_byte_seconds, (96 * MIB * 10) as f64);
}

#[test]
fn only_running_executions_count_and_a_round_at_the_same_second_adds_nothing() {
    let (mut s, id, [a, b]) = running();
    let r = round(id, vec![(a, stats(5.0, 10)), (b, stats(1.0, 20))]);
    assert_eq!(record(&mut s, &r, at(10), 10), [id]);
    assert_eq!(record(&mut s, &r, at(10), 10), Vec::<u64>::new(), "no time passed");
    assert_eq!(record(&mut s, &round(999, vec![]), at(20), 10), Vec::<u64>::new(), "no such execution");
    let before = s.executions[&id].usage;
    transitions::begin_cleanup(&mut s, id, ExecutionStatus::Terminated, "bye", at(15)).unwrap();
    // Cleaning up: a round still counts (the containers ran until they were stopped).
    let r = round(id, vec![(a, stats(6.0, 10)), (b, stats(1.0, 20))]);
    record(&mut s, &r, at(20), 10);
    outcomes::removed(&mut s, id, None, at(21));
    assert!(s.executions[&id].status.is_final());
    let after = s.executions[&id].usage;
    assert_eq!(after.cpu_seconds, before.cpu_seconds + 1.0);
    assert!(record(&mut s, &r, at(30), 10).is_empty(), "ended: its usage stays as it is");
    assert_eq!(s.executions[&id].usage, after);
}

#[test]
fn the_series_halves_its_resolution_when_full() {
    let mut series = UsageSeries::default();
    for i in 0..SERIES_POINTS as i64 {
        add_point(&mut series, UsagePoint(i + 1, 1, i as f64, 100), 100, 1);
    }
    assert_eq!((series.points.len(), series.step), (SERIES_POINTS, 1));
    add_point(&mut series, UsagePoint(61, 1, 60.0, 100), 100, 1);
    assert_eq!((series.points.len(), series.step), (31, 2));
    assert_eq!(series.points[0], UsagePoint(2, 2, 0.5, 100), "two points of 1 s merged, means weighted");
    assert_eq!(series.points.iter().map(|p| u64::from(p.seconds())).sum::<u64>(), 61, "no time lost");
    assert_eq!(series.last_at(), Some(61));
    // The last point (1 s) now takes the next samples until it covers a step (2 s).
    add_point(&mut series, UsagePoint(62, 1, 2.0, 300), 300, 1);
    assert_eq!(series.points.len(), 31);
    assert_eq!(*series.points.last().unwrap(), UsagePoint(62, 2, 31.0, 200));
    add_point(&mut series, UsagePoint(63, 1, 0.0, 0), 0, 1);
    assert_eq!(series.points.len(), 32);
    // However long it runs, it stays bounded.
    for i in 64..10_000 {
        add_point(&mut series, UsagePoint(i, 1, 1.0, 1), 1, 1);
        assert!(series.points.len() <= SERIES_POINTS);
    }
    assert_eq!(series.points.iter().map(|p| u64::from(p.seconds())).sum::<u64>(), 9_999);
}
