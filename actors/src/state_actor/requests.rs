//! The messages that change the state: one per change a request asks for. Each checks its caller
//! against the current state, applies a pure transition, and answers once the change is durable.
//! (Reads are not messages: see [`crate::logic::reader`] and [`crate::logic::views`].)

use std::sync::Arc;

use actix::prelude::*;
use zoe_checkpoints::{Action, Application, Change, ExecutionStatus, Role, State, User};

use super::link::Effect;
use super::StateActor;
use crate::description::app_description::{check_datasets, check_registries};
use crate::error::ZoeError;
use crate::logic::access::{check_caller, Caller};
use crate::logic::plan;
use crate::logic::transitions::{self, Termination};
use crate::logic::views::{user_view, UserView};
use crate::protocol::RemoveNetwork;

macro_rules! message {
    ($(#[$m:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? } -> $ret:literal) => {
        $(#[$m])*
        #[derive(Message, Debug)]
        #[rtype(result = $ret)]
        pub struct $name { $(pub $field: $ty),* }
    };
}

/// A refusal, as the answer of a change handler.
fn refused<T: Send + 'static>(e: ZoeError) -> ResponseFuture<Result<T, ZoeError>> {
    Box::pin(async move { Err(e) })
}

// Every change below is applied to the state at once and answered once a checkpoint holding it is
// on disk; the back-end commands it asks for wait for that checkpoint too. If it cannot be
// written, the change is undone and answered `checkpoint_failed` (see the module above). Changes
// that add to the state are refused with `insufficient_storage` while the state disk is low;
// terminations pass.

message!(
    /// `POST /user`; the password was hashed by the caller, off this actor.
    CreateUser { caller: Caller, name: String, role: Role, password_hash: String } -> "Result<UserView, ZoeError>"
);

impl Handler<CreateUser> for StateActor {
    type Result = ResponseFuture<Result<UserView, ZoeError>>;

    fn handle(&mut self, msg: CreateUser, ctx: &mut Self::Context) -> Self::Result {
        let CreateUser { caller, name, role, password_hash } = msg;
        self.change_user(caller, Action::CreateUser, ctx, |state, caller| {
            transitions::create_user(state, caller, &name, role, password_hash, Self::now())
        })
    }
}

message!(
    /// `PUT /user/<name>`: a new role and/or password hash.
    UpdateUser { caller: Caller, name: String, role: Option<Role>, password_hash: Option<String> } -> "Result<UserView, ZoeError>"
);

impl Handler<UpdateUser> for StateActor {
    type Result = ResponseFuture<Result<UserView, ZoeError>>;

    fn handle(&mut self, msg: UpdateUser, ctx: &mut Self::Context) -> Self::Result {
        let UpdateUser { caller, name, role, password_hash } = msg;
        self.change_user(caller, Action::UpdateUser, ctx, |state, caller| {
            transitions::update_user(state, caller, &name, role, password_hash)
        })
    }
}

impl StateActor {
    /// A change of a user that `caller` asks for: refused while the state disk is low or the
    /// caller is gone, else made by `change`, recorded as `action`, and answered with the user's
    /// view once durable.
    fn change_user(
        &mut self,
        caller: Caller,
        action: Action,
        ctx: &mut Context<Self>,
        change: impl FnOnce(&mut State, &Caller) -> Result<Arc<User>, ZoeError>,
    ) -> ResponseFuture<Result<UserView, ZoeError>> {
        let result = self
            .check_storage()
            .and_then(|()| check_caller(&self.state, &caller))
            .and_then(|()| change(&mut self.state, &caller));
        match result {
            Ok(u) => {
                self.note(&caller.name, action, &[u.id]);
                self.commit(user_view(&u), ctx)
            }
            Err(e) => refused(e),
        }
    }
}

message!(
    /// `DELETE /user/<name>`.
    DeleteUser { caller: Caller, name: String } -> "Result<(), ZoeError>"
);

impl Handler<DeleteUser> for StateActor {
    type Result = ResponseFuture<Result<(), ZoeError>>;

    fn handle(&mut self, msg: DeleteUser, ctx: &mut Self::Context) -> Self::Result {
        let result = self
            .check_storage()
            .and_then(|()| check_caller(&self.state, &msg.caller))
            .and_then(|()| transitions::delete_user(&mut self.state, &msg.caller, &msg.name));
        match result {
            Ok(user) => {
                self.note(&msg.caller.name, Action::DeleteUser, &[user.id]);
                if self.link.handle.is_some() {
                    let network =
                        crate::description::naming::user_network_name(&user.name, &self.state.deployment_name);
                    self.commits.next.effects.push(Effect::RemoveNetwork(RemoveNetwork { network }));
                }
                self.commit((), ctx)
            }
            Err(e) => refused(e),
        }
    }
}

message!(
    /// `POST /execution` with an already validated application description.
    SubmitExecution { caller: Caller, name: String, application: Application } -> "Result<u64, ZoeError>"
);

impl Handler<SubmitExecution> for StateActor {
    type Result = ResponseFuture<Result<u64, ZoeError>>;

    fn handle(&mut self, msg: SubmitExecution, ctx: &mut Self::Context) -> Self::Result {
        let secret = if msg.application.needs_secret(|t| crate::description::template::uses(t, "proxy_secret")) {
            match new_secret() {
                Ok(s) => Some(s),
                Err(e) => {
                    return refused(ZoeError::new(
                        crate::error::Code::Unavailable,
                        format!("cannot make the execution's secret: {e}"),
                    ))
                }
            }
        } else {
            None
        };
        let nodes = self.link.platform.nodes().map(<[_]>::to_vec);
        let result = self.check_storage().and_then(|()| check_caller(&self.state, &msg.caller)).and_then(|()| {
            check_registries(&msg.application, &self.config.allowed_registries).map_err(ZoeError::from)?;
            check_datasets(&msg.application, |name| self.config.plan.datasets.contains_key(name))
                .map_err(ZoeError::from)?;
            transitions::submit_execution(
                &mut self.state,
                &msg.caller,
                &msg.name,
                msg.application,
                &self.config.scheduler,
                nodes.as_deref(),
                Self::now(),
            )
        });
        match result {
            Ok(id) => {
                if let Some(secret) = secret {
                    transitions::give_secret(&mut self.state, id, secret);
                }
                self.note(&msg.caller.name, Action::Submit, &[id]);
                let reply = self.commit(id, ctx);
                self.schedule(ctx);
                reply
            }
            Err(e) => refused(e),
        }
    }
}

/// A new execution secret: 32 random bytes from the operating system, in hex.
fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

message!(
    /// An execution found idle longer than its owner's role allows (by the master's idle
    /// watcher): terminated with `reason` in its `error`, if it still runs. Answers whether it
    /// was.
    CullIdle { id: u64, reason: String } -> "Result<bool, ZoeError>"
);

impl Handler<CullIdle> for StateActor {
    type Result = ResponseFuture<Result<bool, ZoeError>>;

    fn handle(&mut self, msg: CullIdle, ctx: &mut Self::Context) -> Self::Result {
        let running = self.state.executions.get(&msg.id).is_some_and(|e| e.status == ExecutionStatus::Running);
        if !running {
            return Box::pin(async { Ok(false) });
        }
        if let Err(e) =
            transitions::begin_cleanup(&mut self.state, msg.id, ExecutionStatus::Terminated, &msg.reason, Self::now())
        {
            return refused(e);
        }
        tracing::info!("execution {}: {}", msg.id, msg.reason);
        self.note(Change::ZOE, Action::IdleLimit, &[msg.id]);
        if let Some(e) = self.state.executions.get(&msg.id) {
            let r = plan::remove_plan(e);
            self.remove(r);
        }
        self.commit(true, ctx)
    }
}

message!(
    /// `DELETE /execution/<id>`.
    TerminateExecution { caller: Caller, id: u64 } -> "Result<(), ZoeError>"
);

impl Handler<TerminateExecution> for StateActor {
    type Result = ResponseFuture<Result<(), ZoeError>>;

    fn handle(&mut self, msg: TerminateExecution, ctx: &mut Self::Context) -> Self::Result {
        if let Err(e) = check_caller(&self.state, &msg.caller) {
            return refused(e);
        }
        // An archived execution has ended long ago: nothing to do, as for any ended one.
        if !self.state.executions.contains_key(&msg.id)
            && self.archive.index.get(msg.id).is_some_and(|a| msg.caller.can_see(a.entry().owner_id))
        {
            return Box::pin(async { Ok(()) });
        }
        let result = transitions::terminate_execution(&mut self.state, &msg.caller, msg.id, Self::now());
        match result {
            Ok(Termination::AlreadyEnding) => Box::pin(async { Ok(()) }),
            Ok(Termination::Done) => {
                self.note(&msg.caller.name, Action::Terminate, &[msg.id]);
                self.commit((), ctx)
            }
            Ok(Termination::RemoveContainers) => {
                self.note(&msg.caller.name, Action::Terminate, &[msg.id]);
                if let Some(e) = self.state.executions.get(&msg.id) {
                    let r = plan::remove_plan(e);
                    self.remove(r);
                }
                self.commit((), ctx)
            }
            Err(e) => refused(e),
        }
    }
}

message!(
    /// Whether the actor answers at all (`/readyz`).
    Ping {} -> "()"
);

impl Handler<Ping> for StateActor {
    type Result = ();

    fn handle(&mut self, _: Ping, _: &mut Self::Context) {}
}
