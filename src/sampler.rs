//! The master's sampler: every `usage-interval` seconds (more often when idle culling needs it,
//! see [`crate::idle`]) it samples each running container of the back end once
//! ([`SampleContainers`]: one-shot stats calls, a few at a time, each with a time limit), hands
//! the round to the state actor for usage accounting ([`RecordUsage`]) and to the idle watcher.
//! One sampler serves both, so a container is sampled once a round whatever needs it.
//!
//! It reads the newest publication and never writes the state itself; a back end that cannot
//! sample (a Swarm) answers "not known", and the state actor then counts what was reserved only.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use zoe_actors::logic::reader::Reader;
use zoe_actors::logic::usage::ExecutionSample;
use zoe_actors::protocol::{BackendHandle, SampleContainers};
use zoe_actors::state_actor::{RecordUsage, StateActor};
use zoe_checkpoints::{ExecutionStatus, ServiceStatus};

use crate::idle::{Activity, IdleLimits, Watcher};

/// A round may take this long at most (it is a few calls per container, each with a limit).
const ROUND_LIMIT: Duration = Duration::from_secs(120);

/// How often the sampler samples: every `usage` interval, or more often for idle culling.
pub fn period(usage: Duration, idle: &IdleLimits) -> Duration {
    let usage = usage.max(Duration::from_secs(1));
    idle.step().map_or(usage, |step| step.min(usage))
}

/// Starts the sampler on the current actix runtime; it runs as long as the master.
pub fn spawn(
    usage_interval: Duration,
    limits: IdleLimits,
    reader: Reader,
    backend: BackendHandle,
    state: actix::Addr<StateActor>,
    activity: Arc<Activity>,
) {
    let every = period(usage_interval, &limits);
    let step = u32::try_from(every.as_secs()).unwrap_or(u32::MAX).max(1);
    actix_web::rt::spawn(async move {
        let mut watcher = Watcher::default();
        let mut next = tokio::time::Instant::now() + every;
        loop {
            tokio::time::sleep_until(next).await;
            next += every;
            let p = reader.now();
            // The running containers of each running execution, in one list.
            let mut executions: Vec<(u64, Vec<u64>)> = Vec::new();
            let mut containers = Vec::new();
            for e in p.state.executions.values().filter(|e| e.status == ExecutionStatus::Running) {
                let running: Vec<_> = e.services.iter().filter(|s| s.status == ServiceStatus::Running).collect();
                containers.extend(running.iter().map(|s| s.docker_id.clone().unwrap_or_else(|| s.name.clone())));
                executions.push((e.id, running.iter().map(|s| s.id).collect()));
            }
            if executions.is_empty() {
                watcher.observe(&limits, &p, &HashMap::new(), Instant::now(), &state, &activity).await;
                continue;
            }
            let asked = containers.len();
            let sample = tokio::time::timeout(ROUND_LIMIT, backend.stats.send(SampleContainers { containers })).await;
            let at = OffsetDateTime::now_utc();
            let now = Instant::now();
            let stats = match sample {
                Ok(Ok(s)) if s.len() == asked => s,
                _ => vec![None; asked],
            };
            let mut stats = stats.into_iter();
            let mut cpu = HashMap::new();
            let mut round = Vec::with_capacity(executions.len());
            for (id, services) in executions {
                let services: Vec<_> = services.into_iter().map(|s| (s, stats.next().flatten())).collect();
                let total = services.iter().map(|(_, st)| st.map(|st| st.cpu_ns)).sum::<Option<u64>>();
                cpu.insert(id, total);
                round.push(ExecutionSample { execution_id: id, services });
            }
            if let Err(e) = state.send(RecordUsage { at, step, executions: round }).await {
                tracing::warn!("usage not recorded: {e}");
            }
            watcher.observe(&limits, &p, &cpu, now, &state, &activity).await;
            // A round that took longer than the period does not make the next ones pile up.
            next = next.max(tokio::time::Instant::now());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_is_the_usage_interval_or_the_idle_step() {
        let none = IdleLimits { guest: None, user: None, busy_cpu: 0.1 };
        assert_eq!(period(Duration::from_secs(15), &none), Duration::from_secs(15));
        assert_eq!(period(Duration::ZERO, &none), Duration::from_secs(1), "at least a second");
        let idle = IdleLimits { guest: Some(Duration::from_secs(20)), user: None, busy_cpu: 0.1 };
        assert_eq!(period(Duration::from_secs(15), &idle), Duration::from_secs(5), "a quarter of 20 s");
        let long = IdleLimits { guest: Some(Duration::from_secs(3600)), user: None, busy_cpu: 0.1 };
        assert_eq!(period(Duration::from_secs(15), &long), Duration::from_secs(15));
    }
}
