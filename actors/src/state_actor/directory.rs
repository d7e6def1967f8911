//! The change a verified directory (LDAP) sign-in makes: the user's first sign-in creates them,
//! a later one with other groups changes their role; most change nothing and write nothing.

use actix::prelude::*;
use zoe_checkpoints::{Action, Role};

use super::StateActor;
use crate::error::ZoeError;
use crate::logic::directory::{sign_in_directory_user, Synced};
use crate::logic::views::{user_view, UserView};

/// A directory user whose password the directory just accepted, with the role its groups give
/// and the entry's `uidNumber`, if any. Answers the user as they now are.
#[derive(Message, Debug)]
#[rtype(result = "Result<UserView, ZoeError>")]
pub struct DirectorySignIn {
    pub name: String,
    pub role: Role,
    pub uid: Option<u32>,
}

impl Handler<DirectorySignIn> for StateActor {
    type Result = ResponseFuture<Result<UserView, ZoeError>>;

    fn handle(&mut self, msg: DirectorySignIn, ctx: &mut Self::Context) -> Self::Result {
        if let Some(u) = self.state.user_by_name(&msg.name) {
            if u.role == msg.role && crate::logic::directory::is_directory_user(u) {
                let view = user_view(u);
                return Box::pin(async move { Ok(view) });
            }
        }
        let result = self
            .check_storage()
            .and_then(|()| sign_in_directory_user(&mut self.state, &msg.name, msg.role, msg.uid, Self::now()));
        let (user, action) = match result {
            Ok(Synced::Unchanged(u)) => {
                let view = user_view(&u);
                return Box::pin(async move { Ok(view) });
            }
            Ok(Synced::Created(u)) => (u, Action::CreateUser),
            Ok(Synced::Updated(u)) => (u, Action::UpdateUser),
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        self.note("directory", action, &[user.id]);
        self.commit(user_view(&user), ctx)
    }
}
