//! Placement on a platform of several nodes: whether the instances of an execution fit, each on
//! some node. Pure functions, used by the scheduler (admission and starts) and by the simulator.
//!
//! The rule is first-fit decreasing: the instances, largest first, each on the first node (in
//! the platform's order) with room for it. On one engine this is the same as comparing the sum
//! with what is free; on a Swarm it refuses an execution whose instances would fit in the sum of
//! the free space but not on actual nodes.
//!
//! Here too: what an execution reserves (all its instances, or its essential ones) and what it
//! holds now, the figures the scheduler, the quotas and the views count with.

use zoe_checkpoints::{Application, Execution, Service, ServiceDescription, ServiceStatus, State};

use crate::logic::resources::{holds_resources, sum, Resources};

/// An elastic instance that died or could not be started is started again at most this many
/// times.
pub const MAX_RETRIES: u32 = 3;

/// A node as the scheduler sees it: its name and what it has.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub name: String,
    pub capacity: Resources,
}

/// The instances of an application (each service times its `total_count`), what each needs.
pub fn instances(app: &Application) -> Vec<Resources> {
    app.services.iter().flat_map(|d| std::iter::repeat_n(need_of(d), d.total_count as usize)).collect()
}

/// What one instance of a service needs.
pub fn need_of(d: &ServiceDescription) -> Resources {
    Resources { memory: d.required_resources.memory, cores: d.required_resources.cores.unwrap_or(0.0) }
}

/// The essential instances of an application (see `ServiceDescription::is_essential`), what each
/// needs: an elastic execution is admitted when these fit.
pub fn essential_instances(app: &Application) -> Vec<Resources> {
    app.services.iter().flat_map(|d| (0..d.total_count).filter(|i| d.is_essential(*i)).map(|_| need_of(d))).collect()
}

/// The elastic instances of an application, as (service, index), in description order.
pub fn elastic_instances(app: &Application) -> Vec<(&ServiceDescription, u32)> {
    app.services.iter().flat_map(|d| (0..d.total_count).filter(|i| !d.is_essential(*i)).map(move |i| (d, i))).collect()
}

/// Whether an elastic instance of a running execution is to be started when room allows: one
/// waiting for room, or one that died (exited with an error, was killed for its memory, was lost
/// with its node or removed outside Zoe), unless it was retried [`MAX_RETRIES`] times. One that
/// exited with 0 has done its work.
pub fn wants_start(d: &ServiceDescription, s: &Service) -> bool {
    let died = match s.status {
        ServiceStatus::Waiting | ServiceStatus::Lost | ServiceStatus::Removed => true,
        ServiceStatus::Exited => s.oom_killed || s.exit_code != Some(0),
        ServiceStatus::Pending | ServiceStatus::Running => false,
    };
    died && !d.is_essential(s.index) && s.retries < MAX_RETRIES
}

/// Whether a service record holds its share of the platform. Rigid: every instance but those lost
/// with their node (or never started), from the start to the end of its execution. Elastic:
/// essential instances so, elastic ones only while they are being started or run.
pub fn holds(d: Option<&ServiceDescription>, s: &Service, elastic: bool) -> bool {
    match s.status {
        ServiceStatus::Lost | ServiceStatus::Waiting => false,
        ServiceStatus::Pending | ServiceStatus::Running => true,
        ServiceStatus::Exited | ServiceStatus::Removed => !elastic || d.is_some_and(|d| d.is_essential(s.index)),
    }
}

/// Larger first: by memory, then cores.
fn decreasing(a: &Resources, b: &Resources) -> std::cmp::Ordering {
    b.memory.cmp(&a.memory).then(b.cores.total_cmp(&a.cores))
}

/// Places `instances` on nodes with `free` room by first-fit decreasing, taking the room they
/// use. Returns the node of each instance (in the order given), or `None` when one fits nowhere
/// (then `free` is left as it was).
pub fn place(free: &mut [Resources], instances: &[Resources]) -> Option<Vec<usize>> {
    let mut order: Vec<usize> = (0..instances.len()).collect();
    order.sort_by(|a, b| decreasing(&instances[*a], &instances[*b]));
    let mut trial = free.to_vec();
    let mut at = vec![0; instances.len()];
    for i in order {
        let n = trial.iter().position(|f| instances[i].fits(*f))?;
        trial[n] = trial[n].minus(instances[i]);
        at[i] = n;
    }
    free.copy_from_slice(&trial);
    Some(at)
}

/// What the executions of `state` hold on each node: an instance known to run on a node is
/// charged to it; the others (not placed yet, or on a back end that does not say) are placed by
/// first-fit decreasing on what is left, or on the first node when they fit nowhere.
pub fn reserved_per_node(nodes: &[Node], state: &State, elastic: bool) -> Vec<Resources> {
    let mut used = vec![Resources::default(); nodes.len()];
    let mut floating = Vec::new();
    for e in state.executions.values().filter(|e| holds_resources(e.status)) {
        for (need, node) in held(e, elastic) {
            match node.and_then(|name| nodes.iter().position(|n| n.name == name)) {
                Some(i) => used[i] = used[i].plus(need),
                None if node.is_none() => floating.push(need),
                // On a node that is gone: it holds nothing any more.
                None => {}
            }
        }
    }
    floating.sort_by(decreasing);
    for need in floating {
        let room = |i: usize| nodes[i].capacity.minus(used[i]);
        if let Some(i) = (0..nodes.len()).find(|i| need.fits(room(*i))).or((!nodes.is_empty()).then_some(0)) {
            used[i] = used[i].plus(need);
        }
    }
    used
}

/// What is free on each node, given what the executions of `state` hold (see
/// [`reserved_per_node`]).
pub fn free_per_node(nodes: &[Node], state: &State, elastic: bool) -> Vec<Resources> {
    nodes.iter().zip(reserved_per_node(nodes, state, elastic)).map(|(n, used)| n.capacity.minus(used)).collect()
}

/// What each instance of a running (or starting, or cleaning up) execution holds (see
/// [`holds`]), and on which node when known. Instances not created yet hold their share too.
pub fn held(e: &Execution, elastic: bool) -> Vec<(Resources, Option<&str>)> {
    if e.services.is_empty() {
        return instances(&e.application).into_iter().map(|r| (r, None)).collect();
    }
    e.services
        .iter()
        .filter_map(|s| {
            let d = e.description_of(s);
            holds(d, s, elastic).then(|| (d.map(need_of).unwrap_or_default(), s.node.as_deref()))
        })
        .collect()
}

/// What an application reserves while it runs.
pub fn reservation(app: &Application) -> Resources {
    app.services.iter().fold(Resources::default(), |acc, d| {
        let n = u64::from(d.total_count);
        acc.plus(Resources {
            memory: d.required_resources.memory.saturating_mul(n),
            cores: d.required_resources.cores.unwrap_or(0.0) * f64::from(d.total_count),
        })
    })
}

/// What an elastic execution needs to be admitted: its essential instances.
pub fn essential_reservation(app: &Application) -> Resources {
    sum(&essential_instances(app))
}

/// What an execution holds now: rigid, its whole reservation while it holds resources; elastic,
/// what its instances hold (see [`holds`]).
pub fn held_now(e: &Execution, elastic: bool) -> Resources {
    if !holds_resources(e.status) {
        return Resources::default();
    }
    if elastic {
        held(e, true).into_iter().fold(Resources::default(), |acc, (r, _)| acc.plus(r))
    } else {
        reservation(&e.application)
    }
}

/// What executions hold now.
pub fn reserved(state: &State, elastic: bool) -> Resources {
    state.executions.values().fold(Resources::default(), |acc, e| acc.plus(held_now(e, elastic)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn r(gib: u64, cores: f64) -> Resources {
        Resources { memory: gib * GIB, cores }
    }

    #[test]
    fn first_fit_decreasing_places_the_largest_first_and_takes_nothing_when_it_fails() {
        let mut free = vec![r(8, 4.0), r(16, 4.0)];
        // 10 GiB only fits on the second node; then 6 and 6 go first-fit: the first on node 0,
        // the second on node 1 (node 0 has 2 left).
        let at = place(&mut free, &[r(6, 1.0), r(10, 1.0), r(6, 1.0)]).unwrap();
        assert_eq!(at, [0, 1, 1]);
        assert_eq!(free, vec![r(2, 3.0), r(0, 2.0)]);
        // Fits in the sum of what is free, but on no node: refused, and nothing is taken.
        let mut free = vec![r(2, 4.0), r(2, 4.0)];
        assert_eq!(place(&mut free, &[r(1, 1.0), r(3, 1.0)]), None);
        assert_eq!(free, vec![r(2, 4.0), r(2, 4.0)]);
        // Cores count too.
        let mut free = vec![r(64, 1.0), r(64, 1.0)];
        assert!(place(&mut free, &[r(1, 0.6), r(1, 0.6), r(1, 0.6)]).is_none());
        assert!(place(&mut free, &[r(1, 0.6), r(1, 0.4), r(1, 0.6)]).is_some());
    }

    #[test]
    fn one_node_is_the_sum() {
        let mut free = vec![r(8, 4.0)];
        assert!(place(&mut free, &[r(4, 1.0), r(4, 1.0)]).is_some());
        assert!(place(&mut free, &[r(1, 0.0)]).is_none());
    }
}
