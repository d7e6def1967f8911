//! The changes API tokens make: one made, one revoked, and the coarse note of their use.

use actix::prelude::*;
use zoe_checkpoints::Action;

use super::StateActor;
use crate::error::ZoeError;
use crate::logic::access::Caller;
use crate::logic::tokens::{self, TokenView};

/// `POST /token`: a token of `hash` (the HTTP side drew the token, and shows it once) for the
/// caller, or for `owner` when an administrator asks.
#[derive(Message, Debug)]
#[rtype(result = "Result<TokenView, ZoeError>")]
pub struct CreateToken {
    pub caller: Caller,
    pub owner: Option<String>,
    pub name: String,
    pub hash: String,
    pub expires_days: u32,
}

impl Handler<CreateToken> for StateActor {
    type Result = ResponseFuture<Result<TokenView, ZoeError>>;

    fn handle(&mut self, msg: CreateToken, ctx: &mut Self::Context) -> Self::Result {
        let CreateToken { caller, owner, name, hash, expires_days } = msg;
        let result = self.check_storage().and_then(|()| {
            tokens::create_token(&mut self.state, &caller, owner.as_deref(), &name, hash, expires_days, Self::now())
        });
        match result {
            Ok((id, view)) => {
                self.note(&caller.name, Action::CreateToken, &[id]);
                self.commit(view, ctx)
            }
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

/// `DELETE /token/<name>`.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), ZoeError>")]
pub struct RevokeToken {
    pub caller: Caller,
    pub owner: Option<String>,
    pub name: String,
}

impl Handler<RevokeToken> for StateActor {
    type Result = ResponseFuture<Result<(), ZoeError>>;

    fn handle(&mut self, msg: RevokeToken, ctx: &mut Self::Context) -> Self::Result {
        match tokens::revoke_token(&mut self.state, &msg.caller, msg.owner.as_deref(), &msg.name) {
            Ok(id) => {
                self.note(&msg.caller.name, Action::RevokeToken, &[id]);
                self.commit((), ctx)
            }
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

/// A request came with the token of `hash` of user `id`. Written down only when its
/// `last_used` is older than [`zoe_checkpoints::TOKEN_USE_GRAIN`]; nobody waits for it.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct TokenUsed {
    pub id: u64,
    pub hash: String,
}

impl Handler<TokenUsed> for StateActor {
    type Result = ();

    fn handle(&mut self, msg: TokenUsed, ctx: &mut Self::Context) {
        if self.check_storage().is_ok() && tokens::touch_token(&mut self.state, msg.id, &msg.hash, Self::now()) {
            self.note(zoe_checkpoints::Change::ZOE, Action::UseToken, &[msg.id]);
            // Nobody waits for the answer: the change rides on this commit.
            drop(self.commit((), ctx));
        }
    }
}
