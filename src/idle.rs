//! Idle culling: a running execution whose owner's role has an idle limit (`guest-idle-seconds`,
//! `user-idle-seconds`) and that was not used for that long is terminated, with the reason in
//! its `error`. Used means either of:
//!
//! - **proxied traffic**: a request or WebSocket bytes through the proxy to any of its services
//!   (a browser tab left open on a notebook polls it, and so counts as use);
//! - **CPU**: its containers together burned more than `idle-cpu-percent` of one core between two
//!   samples (a computation running with no browser attached is not idle).
//!
//! The watcher looks at each round of the master's sampler ([`crate::sampler`], which samples at
//! least every `step`: a quarter of the smallest limit, between 2 and 60 s), and asks the state
//! actor to cull ([`CullIdle`]); it never writes the state itself. When the CPU use of a container cannot be known (a Swarm manager does not tell
//! it), the execution is never culled: a busy computation must not be mistaken for an idle one.
//! The idle clock of an execution starts when the watcher first sees it running (so also after a
//! restart of the master).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use zoe_actors::logic::reader::Published;
use zoe_actors::state_actor::{CullIdle, StateActor};
use zoe_checkpoints::{ExecutionStatus, Role};

/// The idle limits, per role (administrators have none).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IdleLimits {
    pub guest: Option<Duration>,
    pub user: Option<Duration>,
    /// CPU use, as a share of one core, above which an execution is busy.
    pub busy_cpu: f64,
}

impl IdleLimits {
    pub fn of(&self, role: Role) -> Option<Duration> {
        match role {
            Role::Guest => self.guest,
            Role::User => self.user,
            Role::Admin => None,
        }
    }

    /// How often executions are looked at: a quarter of the smallest limit, 2 to 60 s.
    pub fn step(&self) -> Option<Duration> {
        let smallest = [self.guest, self.user].into_iter().flatten().min()?;
        Some((smallest / 4).clamp(Duration::from_secs(2), Duration::from_secs(60)))
    }
}

/// When each execution was last used through the proxy, and how long each watched one has left.
#[derive(Default)]
pub struct Activity {
    proxied: Mutex<HashMap<u64, Instant>>,
    left: Mutex<HashMap<u64, Duration>>,
}

impl Activity {
    /// Execution `id` was used through the proxy now.
    pub fn touch(&self, id: u64) {
        if let Ok(mut m) = self.proxied.lock() {
            m.insert(id, Instant::now());
        }
    }

    fn proxied(&self, id: u64) -> Option<Instant> {
        self.proxied.lock().ok().and_then(|m| m.get(&id).copied())
    }

    /// How long execution `id` may stay idle before it is culled, if it is watched and its CPU
    /// use is known.
    pub fn left(&self, id: u64) -> Option<Duration> {
        self.left.lock().ok().and_then(|m| m.get(&id).copied())
    }
}

/// What the watcher remembers of one execution.
struct Watched {
    /// The last time it was busy (or first seen).
    active: Instant,
    /// The last CPU sample: total nanoseconds of its containers, and when.
    sample: Option<(u64, Instant)>,
}

/// Whether CPU time `used` (ns) over `wall` is more than `share` of one core.
pub fn busy(used: u64, wall: Duration, share: f64) -> bool {
    wall.as_nanos() > 0 && used as f64 > share * wall.as_nanos() as f64
}

/// The idle watcher: what it remembers of each execution it watches.
#[derive(Default)]
pub struct Watcher {
    watched: HashMap<u64, Watched>,
}

impl Watcher {
    /// Looks at one round of samples taken at `now`: `cpu` has, per running execution, the CPU
    /// time of its running containers together (`None`: not known). Asks the state actor to cull
    /// the executions idle for too long, and tells `activity` how long the others have left.
    pub async fn observe(
        &mut self,
        limits: &IdleLimits,
        p: &Published,
        cpu: &HashMap<u64, Option<u64>>,
        now: Instant,
        state: &actix::Addr<StateActor>,
        activity: &Activity,
    ) {
        let mut left = HashMap::new();
        let mut seen = Vec::new();
        for e in p.state.executions.values().filter(|e| e.status == ExecutionStatus::Running) {
            let Some(role) = p.state.users.get(&e.owner_id).map(|u| u.role) else { continue };
            let Some(limit) = limits.of(role) else { continue };
            seen.push(e.id);
            let w = self.watched.entry(e.id).or_insert(Watched { active: now, sample: None });
            if let Some(t) = activity.proxied(e.id) {
                w.active = w.active.max(t);
            }
            let Some(total) = cpu.get(&e.id).copied().flatten() else {
                // Unknown CPU use: never culled.
                w.active = now;
                w.sample = None;
                continue;
            };
            if let Some((before, at)) = w.sample {
                if busy(total.saturating_sub(before), now.duration_since(at), limits.busy_cpu) {
                    w.active = now;
                }
            }
            w.sample = Some((total, now));
            let idle = now.duration_since(w.active);
            if idle >= limit {
                let reason = format!(
                    "terminated after {} s without use (no traffic through the proxy, CPU under {}% of a core): \
                     the idle limit of role {}",
                    limit.as_secs(),
                    limits.busy_cpu * 100.0,
                    role.as_str()
                );
                match state.send(CullIdle { id: e.id, reason }).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => tracing::warn!("execution {}: not culled: {err}", e.id),
                    Err(err) => tracing::warn!("execution {}: not culled: {err}", e.id),
                }
            } else {
                left.insert(e.id, limit - idle);
            }
        }
        self.watched.retain(|id, _| seen.contains(id));
        if let Ok(mut m) = activity.proxied.lock() {
            m.retain(|id, _| seen.contains(id));
        }
        if let Ok(mut m) = activity.left.lock() {
            *m = left;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_means_more_than_the_share_of_a_core() {
        let s = Duration::from_secs(10);
        assert!(!busy(0, s, 0.1));
        assert!(!busy(1_000_000_000, s, 0.1), "10% of a core is not more than 10%");
        assert!(busy(1_000_000_001, s, 0.1));
        assert!(busy(20_000_000_000, s, 0.1), "two cores");
        assert!(!busy(5, Duration::ZERO, 0.1));
    }

    #[test]
    fn limits_per_role_and_the_step() {
        let l = IdleLimits { guest: Some(Duration::from_secs(3600)), user: None, busy_cpu: 0.1 };
        assert_eq!(l.of(Role::Guest), Some(Duration::from_secs(3600)));
        assert_eq!((l.of(Role::User), l.of(Role::Admin)), (None, None));
        assert_eq!(l.step(), Some(Duration::from_secs(60)));
        let l = IdleLimits { guest: Some(Duration::from_secs(20)), user: Some(Duration::from_secs(4)), busy_cpu: 0.1 };
        assert_eq!(l.step(), Some(Duration::from_secs(2)));
        assert_eq!(IdleLimits { guest: None, user: None, busy_cpu: 0.1 }.step(), None, "no watcher");
    }
}
