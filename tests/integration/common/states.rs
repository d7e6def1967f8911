//! States written straight into a checkpoint, for the tests and benchmarks that need a master
//! with history (`benches/master/main.rs` includes this file).

use std::sync::Arc;

use zoe_checkpoints::{Execution, ExecutionStatus, Role, State};

/// A state of `deployment` with zoeadmin and alice (both with `password`) and `n` executions of
/// alice, `old-<i>`, of `application`, ended now with `status` (a finished one ran first).
pub fn with_ended(
    deployment: &str,
    password: &str,
    n: usize,
    status: ExecutionStatus,
    application: &serde_json::Value,
) -> State {
    let now = time::OffsetDateTime::now_utc();
    let mut s = State::new(deployment);
    let hash = zoe::auth::hash_password(password).unwrap();
    for (name, role) in [("zoeadmin", Role::Admin), ("alice", Role::User)] {
        s.add_user(name, role, hash.clone(), now);
    }
    let application = zoe_actors::description::app_description::parse_application(application).unwrap();
    for i in 0..n {
        let id = s.gen_id();
        s.executions.insert(
            id,
            Arc::new(Execution {
                id,
                name: format!("old-{i}"),
                owner: "alice".into(),
                owner_id: 1,
                status,
                error: None,
                ending: None,
                time_scheduled: now,
                time_started: (status == ExecutionStatus::Finished).then_some(now),
                time_finished: Some(now),
                application: application.clone(),
                services: vec![],
                proxy_secret: None,
                usage: Default::default(),
                usage_series: Default::default(),
            }),
        );
    }
    s
}
