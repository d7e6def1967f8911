//! State transitions: plain functions over [`State`] that take `now` as an argument. No actix,
//! no I/O, no clock. The state actor calls them one message at a time; tests call them directly.

use std::sync::Arc;

use zoe_checkpoints::{
    Application, Execution, ExecutionStatus, Role, Service, ServicePort, ServiceStatus, State, Timestamp, User,
};

use crate::description::app_description::check_host_names;
use crate::description::naming;
use crate::error::{Code, ZoeError};
use crate::logic::access::{admin_only, no_such_execution, no_such_user, visible_execution, visible_user, Caller};
use crate::logic::placement::Node;
use crate::logic::scheduler::{self, SchedulerConfig};

/// Adds a user. `password_hash` is an argon2 PHC string computed by the caller (off the actor).
pub fn create_user(
    state: &mut State,
    caller: &Caller,
    name: &str,
    role: Role,
    password_hash: String,
    now: Timestamp,
) -> Result<Arc<User>, ZoeError> {
    admin_only(state, caller, "create users")?;
    add_user(state, name, role, password_hash, now)
}

/// Adds a user whoever asks (an administrator, or a sign-in the directory verified): the name
/// checked, a uid handed out.
pub fn add_user(
    state: &mut State,
    name: &str,
    role: Role,
    password_hash: String,
    now: Timestamp,
) -> Result<Arc<User>, ZoeError> {
    naming::check_dns_label("user name", name).map_err(|m| ZoeError::new(Code::InvalidName, m))?;
    let network = naming::user_network_name(name, &state.deployment_name);
    if network.len() > naming::MAX_HOST_NAME {
        return Err(ZoeError::new(
            Code::InvalidName,
            format!(
                "user name {name:?} is too long: its network name {network:?} would exceed {} characters",
                naming::MAX_HOST_NAME
            ),
        ));
    }
    if state.user_by_name(name).is_some() {
        return Err(ZoeError::new(Code::UserExists, format!("user name already registered: {name}")));
    }
    if !state.uids_left() {
        return Err(ZoeError::new(
            Code::NoUidLeft,
            format!(
                "no uid is left for a new user: next_uid has reached {} (see the checkpoint's next_uid)",
                zoe_checkpoints::UID_LIMIT
            ),
        ));
    }
    Ok(state.add_user(name, role, password_hash, now))
}

/// Removes a user. Their past executions stay in the history, owned by their (never reused) id.
pub fn delete_user(state: &mut State, caller: &Caller, name: &str) -> Result<Arc<User>, ZoeError> {
    let user = visible_user(state, caller, name)?.clone();
    if let Some(e) = state.executions.values().find(|e| e.owner_id == user.id && e.status.is_active()) {
        return Err(ZoeError::new(
            Code::UserHasActiveExecutions,
            format!(
                "user {name} has active executions (for example {} with id {}, {}); terminate them first",
                e.name,
                e.id,
                e.status.as_str()
            ),
        ));
    }
    if user.role == Role::Admin && state.users.values().filter(|u| u.role == Role::Admin).count() == 1 {
        return Err(ZoeError::new(Code::LastAdmin, format!("{name} is the last administrator and cannot be deleted")));
    }
    state.users.remove(&user.id);
    Ok(user)
}

/// Changes a user's role (administrators only) and/or password (administrators, or the user).
pub fn update_user(
    state: &mut State,
    caller: &Caller,
    name: &str,
    role: Option<Role>,
    password_hash: Option<String>,
) -> Result<Arc<User>, ZoeError> {
    let user = visible_user(state, caller, name)?.clone();
    if password_hash.is_some() && user.password_hash == zoe_checkpoints::DIRECTORY_PASSWORD_HASH {
        return Err(ZoeError::new(
            Code::DirectoryUser,
            format!("{name} signs in through the directory: their password is changed there, not in Zoe"),
        ));
    }
    if role.is_some_and(|r| r != user.role) {
        admin_only(state, caller, "change roles")?;
        if user.role == Role::Admin && state.users.values().filter(|u| u.role == Role::Admin).count() == 1 {
            return Err(ZoeError::new(Code::LastAdmin, format!("{name} is the last administrator and must stay one")));
        }
    }
    let Some(u) = state.users.get_mut(&user.id) else {
        return Err(no_such_user(name));
    };
    let u = Arc::make_mut(u);
    if let Some(r) = role {
        u.role = r;
    }
    if let Some(h) = password_hash {
        u.password_hash = h;
    }
    Ok(Arc::new(u.clone()))
}

/// Queues a new execution of a validated application description, if it could ever fit the
/// platform (`engine`: its capacity as last reported) and the owner's quota allows it. Returns
/// its id.
pub fn submit_execution(
    state: &mut State,
    caller: &Caller,
    name: &str,
    mut application: Application,
    sched: &SchedulerConfig,
    nodes: Option<&[Node]>,
    now: Timestamp,
) -> Result<u64, ZoeError> {
    naming::check_dns_label("execution name", name).map_err(|m| ZoeError::new(Code::InvalidName, m))?;
    scheduler::default_cores(&mut application, sched.default_cores);
    check_host_names(&application, name, &caller.name, &state.deployment_name)?;
    let mine_active = state.executions.values().filter(|e| e.owner_id == caller.id && e.status.is_active());
    for e in mine_active {
        if e.name == name {
            return Err(ZoeError::new(
                Code::ExecutionNameInUse,
                format!(
                    "an execution named {name} is already active (id {}, {}); terminate it or pick another name",
                    e.id,
                    e.status.as_str()
                ),
            ));
        }
    }
    scheduler::admit(state, sched, nodes, caller.id, caller.role, &application)?;
    let id = state.gen_id();
    let execution = Execution {
        id,
        name: name.to_string(),
        owner: caller.name.clone(),
        owner_id: caller.id,
        status: ExecutionStatus::Scheduled,
        error: None,
        ending: None,
        time_scheduled: now,
        time_started: None,
        time_finished: None,
        application,
        services: Vec::new(),
        proxy_secret: None,
        usage: Default::default(),
        usage_series: Default::default(),
    };
    state.executions.insert(id, Arc::new(execution));
    Ok(id)
}

/// Moves an execution to `to`, refusing any move not in [`ExecutionStatus::can_move_to`], and
/// keeps the times consistent.
pub fn set_status(state: &mut State, id: u64, to: ExecutionStatus, now: Timestamp) -> Result<(), ZoeError> {
    let e = state.executions.get_mut(&id).ok_or_else(|| no_such_execution(id))?;
    if !e.status.can_move_to(to) {
        return Err(ZoeError::new(
            Code::InvalidTransition,
            format!("execution {id} cannot go from {} to {}", e.status.as_str(), to.as_str()),
        ));
    }
    let e = Arc::make_mut(e);
    e.status = to;
    if to != ExecutionStatus::CleaningUp {
        e.ending = None;
    }
    match to {
        ExecutionStatus::Running => e.time_started = Some(now),
        ExecutionStatus::Scheduled => {
            // Back in the queue after an interrupted start: its containers are gone.
            e.time_started = None;
            e.services.clear();
        }
        s if s.is_final() => {
            e.time_finished = Some(now);
            // Nothing reaches an ended execution: its secret has no more use.
            e.proxy_secret = None;
        }
        _ => {}
    }
    Ok(())
}

/// Gives a just submitted execution the secret its description needs (made by the caller: this
/// module draws no random numbers).
pub fn give_secret(state: &mut State, id: u64, secret: String) {
    if let Some(e) = state.executions.get_mut(&id) {
        Arc::make_mut(e).proxy_secret = Some(secret);
    }
}

/// What the caller of [`terminate_execution`] must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Termination {
    /// Nothing ran; the execution is already `terminated`.
    Done,
    /// Its containers must be stopped and removed; the execution is `cleaning up`.
    RemoveContainers,
    /// It had already ended or is already being cleaned up; nothing changed.
    AlreadyEnding,
}

/// A user's request to end an execution.
pub fn terminate_execution(
    state: &mut State,
    caller: &Caller,
    id: u64,
    now: Timestamp,
) -> Result<Termination, ZoeError> {
    let status = visible_execution(state, caller, id)?.status;
    match status {
        ExecutionStatus::Scheduled => {
            set_status(state, id, ExecutionStatus::Terminated, now)?;
            Ok(Termination::Done)
        }
        ExecutionStatus::Starting | ExecutionStatus::Running => {
            begin_cleanup(state, id, ExecutionStatus::Terminated, &format!("terminated by {}", caller.name), now)?;
            Ok(Termination::RemoveContainers)
        }
        _ => Ok(Termination::AlreadyEnding),
    }
}

/// Moves an execution to `cleaning up`: its containers are to be removed, after which it takes
/// the status `ending`. `reason` is recorded as its error unless one is already there.
pub fn begin_cleanup(
    state: &mut State,
    id: u64,
    ending: ExecutionStatus,
    reason: &str,
    now: Timestamp,
) -> Result<(), ZoeError> {
    set_status(state, id, ExecutionStatus::CleaningUp, now)?;
    if let Some(e) = state.executions.get_mut(&id) {
        let e = Arc::make_mut(e);
        e.ending = Some(ending);
        if !reason.is_empty() {
            e.error.get_or_insert_with(|| reason.to_string());
        }
    }
    Ok(())
}

/// Marks elastic instances of a running execution as being started (`pending`): instances
/// waiting for room, or ones that died and are started again (counted in their `retries`).
pub fn begin_grow(state: &mut State, id: u64, service_ids: &[u64]) -> Result<(), ZoeError> {
    let e = state.executions.get_mut(&id).ok_or_else(|| no_such_execution(id))?;
    if e.status != ExecutionStatus::Running {
        return Err(ZoeError::new(
            Code::InvalidTransition,
            format!("execution {id} is {}, not running: it cannot grow", e.status.as_str()),
        ));
    }
    let e = Arc::make_mut(e);
    for s in e.services.iter_mut().filter(|s| service_ids.contains(&s.id)) {
        if s.status != ServiceStatus::Waiting {
            s.retries = s.retries.saturating_add(1);
        }
        s.status = ServiceStatus::Pending;
        s.exit_code = None;
        s.oom_killed = false;
        // A new container: its CPU counter starts again from 0.
        s.cpu_ns = 0;
    }
    Ok(())
}

/// Creates the service records (one per container) of an execution that is about to start and
/// moves it to `starting`: every instance is started. Services are ordered by `startup_order`,
/// then description order.
pub fn begin_start(state: &mut State, id: u64, now: Timestamp) -> Result<(), ZoeError> {
    begin_start_with(state, id, |_, _| true, now)
}

/// As [`begin_start`], but only the instances `start_now(service, index)` says are started; the
/// others (elastic instances that do not fit yet) are `waiting`.
pub fn begin_start_with(
    state: &mut State,
    id: u64,
    start_now: impl Fn(&str, u32) -> bool,
    now: Timestamp,
) -> Result<(), ZoeError> {
    set_status(state, id, ExecutionStatus::Starting, now)?;
    let deployment = state.deployment_name.clone();
    let Some(e) = state.executions.get(&id) else {
        return Err(no_such_execution(id));
    };
    let mut descs: Vec<_> = e.application.services.iter().collect();
    descs.sort_by_key(|d| d.startup_order);
    let mut services = Vec::new();
    let (exec_name, owner) = (e.name.clone(), e.owner.clone());
    let mut specs = Vec::new();
    for d in descs {
        for index in 0..d.total_count {
            specs.push((d.clone(), index));
        }
    }
    for (d, index) in specs {
        let name = naming::container_name(&d.name, index, d.total_count, &exec_name, &owner, &deployment);
        let status = if start_now(&d.name, index) { ServiceStatus::Pending } else { ServiceStatus::Waiting };
        services.push(Service {
            ports: d.ports.iter().map(ServicePort::of).collect(),
            ..Service::new(state.gen_id(), name, &d.name, index, d.monitor, status)
        });
    }
    if let Some(e) = state.executions.get_mut(&id) {
        Arc::make_mut(e).services = services;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::access::check_caller;
    use crate::testing::{admin, at, describe, insta_settings};
    use serde_json::json;

    fn app(monitor_count: u32) -> Application {
        crate::description::app_description::parse_application(&json!({
            "name": "spark", "version": 2, "will_end": false, "requires_binary": false, "priority": 10,
            "services": [
                {"name": "master", "docker_image": "spark-master", "monitor": false, "total_count": 1,
                 "essential_count": 1, "startup_order": 0, "required_resources": {"memory": 67108864},
                 "ports": [{"name": "web", "protocol": "http", "port_number": 8080, "is_main_endpoint": false, "expose": true}]},
                {"name": "worker", "docker_image": "spark-worker", "monitor": false, "total_count": 2,
                 "essential_count": 1, "startup_order": 1, "required_resources": {"memory": 67108864, "cores": 0.5},
                 "ports": [], "environment": [["MASTER", "master-{execution_name}-{user_name}-{deployment_name}"]]},
                {"name": "notebook", "docker_image": "jupyter", "monitor": true, "total_count": monitor_count,
                 "essential_count": 1, "startup_order": 1, "required_resources": {"memory": 67108864},
                 "ports": [], "command": "start {index}"}
            ]
        }))
        .unwrap()
    }

    fn base() -> State {
        let mut s = crate::testing::admin_state();
        let root = admin();
        create_user(&mut s, &root, "alice", Role::User, "$argon2id$a".into(), at(1)).unwrap();
        create_user(&mut s, &root, "gina", Role::Guest, "$argon2id$g".into(), at(2)).unwrap();
        s
    }

    fn caller(s: &State, name: &str) -> Caller {
        let u = s.user_by_name(name).unwrap();
        Caller { id: u.id, name: u.name.clone(), role: u.role }
    }

    /// Steps through an execution's life, with a snapshot of the whole state after each step.
    #[test]
    fn execution_life_step_by_step() {
        insta_settings().bind(|| {
            let mut s = base();
            let alice = caller(&s, "alice");
            let gina = caller(&s, "gina");
            let limits = SchedulerConfig::default();
            let step = |label: &str, s: &State, result: String| {
                insta::assert_snapshot!(label.to_string(), format!("{result}\n---\n{}", describe(s)));
            };
            let r = submit_execution(&mut s, &alice, "wc1", app(1), &limits, None, at(10));
            step("01_submit", &s, format!("{r:?}"));
            let r = submit_execution(&mut s, &alice, "wc1", app(1), &limits, None, at(11));
            step("02_same_name_refused", &s, format!("{r:?}"));
            let g = submit_execution(&mut s, &gina, "g1", app(1), &limits, None, at(12));
            let r = submit_execution(&mut s, &gina, "g2", app(1), &limits, None, at(13));
            step("03_guest_quota", &s, format!("{g:?} then {r:?}"));
            let r = begin_start(&mut s, 3, at(20));
            step("04_starting", &s, format!("{r:?}"));
            let r = set_status(&mut s, 3, ExecutionStatus::Running, at(21));
            step("05_running", &s, format!("{r:?}"));
            let r = terminate_execution(&mut s, &gina, 3, at(30));
            let r2 = terminate_execution(&mut s, &alice, 3, at(30));
            step("06_terminate_others_is_invisible_then_own", &s, format!("{r:?} then {r2:?}"));
            let r = set_status(&mut s, 3, ExecutionStatus::Running, at(31));
            let r2 = set_status(&mut s, 3, ExecutionStatus::Terminated, at(32));
            step("07_cleaning_up_cannot_go_back", &s, format!("{r:?} then {r2:?}"));
            let r = delete_user(&mut s, &admin(), "gina").map(|u| u.name.clone());
            let g1 = s.executions.values().find(|e| e.name == "g1").map(|e| e.id).unwrap();
            let t = terminate_execution(&mut s, &gina, g1, at(40));
            let r2 = delete_user(&mut s, &admin(), "gina").map(|u| u.name.clone());
            step("08_delete_user_keeps_history", &s, format!("{r:?} then {t:?} then {r2:?}"));
        });
    }

    #[test]
    fn transitions_table_is_exactly_the_documented_one() {
        use ExecutionStatus::*;
        let allowed: Vec<_> = ExecutionStatus::ALL
            .iter()
            .flat_map(|a| ExecutionStatus::ALL.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.can_move_to(*b))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Scheduled, Starting),
                (Scheduled, Terminated),
                (Scheduled, Error),
                (Starting, Running),
                (Starting, CleaningUp),
                (Starting, Error),
                (Running, CleaningUp),
                (Running, Finished),
                (Running, Error),
                (CleaningUp, Scheduled),
                (CleaningUp, Finished),
                (CleaningUp, Terminated),
                (CleaningUp, Error),
            ]
        );
        for s in ExecutionStatus::ALL.into_iter().filter(|s| s.is_final()) {
            assert!(ExecutionStatus::ALL.iter().all(|t| !s.can_move_to(*t)));
        }
    }

    #[test]
    fn names_too_long_once_composed_are_refused_at_submit() {
        let mut s = base();
        let alice = caller(&s, "alice");
        let r = submit_execution(&mut s, &alice, &"x".repeat(45), app(3), &SchedulerConfig::default(), None, at(1));
        let e = r.unwrap_err();
        assert_eq!(e.code.as_str(), "too_long", "{e}");
        assert!(s.executions.is_empty());
    }

    #[test]
    fn an_execution_keeps_its_secret_while_it_lives_and_loses_it_when_it_ends() {
        let mut s = base();
        let alice = caller(&s, "alice");
        let id = submit_execution(&mut s, &alice, "nb", app(1), &SchedulerConfig::default(), None, at(1)).unwrap();
        give_secret(&mut s, id, "s3".into());
        begin_start(&mut s, id, at(2)).unwrap();
        set_status(&mut s, id, ExecutionStatus::Running, at(3)).unwrap();
        assert_eq!(s.executions[&id].proxy_secret.as_deref(), Some("s3"));
        set_status(&mut s, id, ExecutionStatus::Finished, at(4)).unwrap();
        assert_eq!(s.executions[&id].proxy_secret, None, "an ended execution needs no secret");
    }

    #[test]
    fn deleted_callers_are_refused() {
        let mut s = base();
        let alice = caller(&s, "alice");
        delete_user(&mut s, &admin(), "alice").unwrap();
        assert_eq!(check_caller(&s, &alice).unwrap_err().code, Code::Unauthorized);
    }
}
