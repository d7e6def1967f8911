//! Who may see what: the one rule the transitions and the views share. A caller sees their own
//! objects, an administrator everyone's; an object a caller may not see is reported as missing,
//! with the same error as one that does not exist; a caller whose user is gone, or changed role,
//! sees nothing.

use std::sync::Arc;

use zoe_checkpoints::{Execution, Role, Service, State, User};

use crate::error::{Code, ZoeError};

/// Who is asking: an authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub id: u64,
    pub name: String,
    pub role: Role,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this caller may see and act on objects owned by `owner_id`.
    pub fn can_see(&self, owner_id: u64) -> bool {
        self.sees_only().is_none_or(|id| id == owner_id)
    }

    /// The one owner whose objects this caller sees (their own), or `None`: everyone's (an
    /// administrator). The same rule as [`Caller::can_see`], for a search by owner.
    pub fn sees_only(&self) -> Option<u64> {
        (!self.is_admin()).then_some(self.id)
    }
}

/// The error for a user who does not exist or whom the caller may not see.
pub fn no_such_user(name: &str) -> ZoeError {
    ZoeError::new(Code::NoSuchUser, format!("no such user: {name}"))
}

/// The error for an execution that does not exist or that the caller may not see.
pub fn no_such_execution(id: u64) -> ZoeError {
    ZoeError::new(Code::NoSuchExecution, format!("no such execution: {id}"))
}

/// Checks that the caller still exists with the same name and role; a deleted user's cached
/// credentials must not keep working.
pub fn check_caller(state: &State, caller: &Caller) -> Result<(), ZoeError> {
    match state.users.get(&caller.id) {
        Some(u) if u.name == caller.name && u.role == caller.role => Ok(()),
        _ => Err(ZoeError::new(Code::Unauthorized, "Cannot authenticate your request, provide proper credentials")),
    }
}

/// Looks up a user the caller may see. One they may not see is reported as missing.
pub fn visible_user<'s>(state: &'s State, caller: &Caller, name: &str) -> Result<&'s Arc<User>, ZoeError> {
    match state.user_by_name(name) {
        Some(u) if caller.can_see(u.id) => Ok(u),
        _ => Err(no_such_user(name)),
    }
}

/// Looks up an execution the caller may see. One they may not see is reported as missing.
pub fn visible_execution<'s>(state: &'s State, caller: &Caller, id: u64) -> Result<&'s Arc<Execution>, ZoeError> {
    match state.executions.get(&id) {
        Some(e) if caller.can_see(e.owner_id) => Ok(e),
        _ => Err(no_such_execution(id)),
    }
}

/// Looks up a service the caller may see, with its execution.
pub fn visible_service<'s>(
    state: &'s State,
    caller: &Caller,
    id: u64,
) -> Result<(&'s Arc<Execution>, &'s Service), ZoeError> {
    match state.find_service(id) {
        Some((e, i)) if caller.can_see(e.owner_id) => Ok((e, &e.services[i])),
        _ => Err(no_such_service(id)),
    }
}

/// The error for a service that does not exist or that the caller may not see.
pub fn no_such_service(id: u64) -> ZoeError {
    ZoeError::new(Code::NoSuchService, format!("no such service: {id}"))
}

/// Refuses a caller who is not an administrator: `what` says what only one can do (asked before
/// costly work, such as hashing a new user's password).
pub fn admin_only(state: &State, caller: &Caller, what: &str) -> Result<(), ZoeError> {
    check_caller(state, caller)?;
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ZoeError::new(Code::AdminOnly, format!("only an administrator can {what}")))
    }
}
