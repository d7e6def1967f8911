//! API tokens: a user makes one (`POST /token`), lists theirs, revokes one; a request that
//! brings one is its user's. Zoe keeps only each token's hash ([`token_hash`]); the token itself
//! is drawn by the HTTP side and shown once. Tokens end with their user, at `expires_at`, or when
//! revoked; `last_used` is kept coarse ([`TOKEN_USE_GRAIN`]) so that using a token does not write
//! a checkpoint per request.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zoe_checkpoints::{is_token_name, limits, token_hash, State, Timestamp, Token, User, TOKEN_USE_GRAIN};

use crate::error::{Code, ZoeError};
use crate::logic::access::{check_caller, visible_user, Caller};
use crate::logic::reader::Published;

/// A token as its user sees it: never the token, never its hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Token, example = json!({"name": "laptop", "created": "2026-11-25T12:00:00Z", "expires": "2027-11-25T12:00:00Z", "last_used": null}))]
pub struct TokenView {
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires: Timestamp,
    /// When it was last used, to the hour at best (`null`: never).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used: Option<Timestamp>,
}

fn token_view(t: &Token) -> TokenView {
    TokenView { name: t.name.clone(), created: t.created_at, expires: t.expires_at, last_used: t.last_used }
}

fn no_such_token(name: &str) -> ZoeError {
    ZoeError::new(Code::NoSuchToken, format!("no such token: {}", crate::description::naming::shorten(name, 64)))
}

/// Checks a token's name and lifetime as a request gives them.
pub fn check_new_token(name: &str, expires_days: u32) -> Result<(), ZoeError> {
    if !is_token_name(name) {
        return Err(ZoeError::new(
            Code::InvalidTokenName,
            format!(
                "a token name is a lowercase DNS label (a-z, 0-9, '-') of at most {} characters",
                limits::MAX_TOKEN_NAME
            ),
        ));
    }
    if !(1..=limits::MAX_TOKEN_DAYS).contains(&expires_days) {
        return Err(ZoeError::new(
            Code::InvalidExpiresDays,
            format!("expires_days must be from 1 to {}", limits::MAX_TOKEN_DAYS),
        ));
    }
    Ok(())
}

/// The user whose tokens a request is about: `owner`, or the caller.
fn owner_of<'s>(state: &'s State, caller: &Caller, owner: Option<&str>) -> Result<&'s Arc<User>, ZoeError> {
    check_caller(state, caller)?;
    visible_user(state, caller, owner.unwrap_or(&caller.name))
}

/// Adds a token of `hash` to the caller's tokens (or, for an administrator, `owner`'s).
pub fn create_token(
    state: &mut State,
    caller: &Caller,
    owner: Option<&str>,
    name: &str,
    hash: String,
    expires_days: u32,
    now: Timestamp,
) -> Result<(u64, TokenView), ZoeError> {
    check_new_token(name, expires_days)?;
    let id = owner_of(state, caller, owner)?.id;
    let Some(user) = state.users.get_mut(&id) else { return Err(no_such_token(name)) };
    if user.tokens.iter().any(|t| t.name == name) {
        return Err(ZoeError::new(Code::TokenExists, format!("{} already has a token named {name}", user.name)));
    }
    if user.tokens.len() >= limits::MAX_TOKENS {
        return Err(ZoeError::new(
            Code::TooManyTokens,
            format!(
                "{} has {} tokens already, the most a user may have; revoke one first",
                user.name,
                limits::MAX_TOKENS
            ),
        ));
    }
    let token = Token {
        name: name.to_string(),
        hash,
        created_at: now,
        expires_at: now + time::Duration::days(i64::from(expires_days)),
        last_used: None,
    };
    let view = token_view(&token);
    Arc::make_mut(user).tokens.push(token);
    Ok((id, view))
}

/// Revokes a token of the caller (or, for an administrator, of `owner`). Answers its user's id.
pub fn revoke_token(state: &mut State, caller: &Caller, owner: Option<&str>, name: &str) -> Result<u64, ZoeError> {
    let id = owner_of(state, caller, owner)?.id;
    let Some(user) = state.users.get_mut(&id) else { return Err(no_such_token(name)) };
    let Some(i) = user.tokens.iter().position(|t| t.name == name) else { return Err(no_such_token(name)) };
    Arc::make_mut(user).tokens.remove(i);
    Ok(id)
}

/// Notes that the token of `hash` of user `id` was used at `now`, if its `last_used` is older
/// than [`TOKEN_USE_GRAIN`]. Says whether anything changed (then there is something to write).
pub fn touch_token(state: &mut State, id: u64, hash: &str, now: Timestamp) -> bool {
    let Some(user) = state.users.get_mut(&id) else { return false };
    let Some(i) = user.tokens.iter().position(|t| t.hash == hash) else { return false };
    if !needs_touch(&user.tokens[i], now) {
        return false;
    }
    Arc::make_mut(user).tokens[i].last_used = Some(now);
    true
}

/// Whether a use of `t` at `now` should be written down.
pub fn needs_touch(t: &Token, now: Timestamp) -> bool {
    t.last_used.is_none_or(|at| now - at >= TOKEN_USE_GRAIN)
}

/// The user and token a request's token is, if it is a valid one at `now`. Tokens are
/// `zoe_<user id>_<secret>`: the id finds the user, the hash (compared in constant time) the token.
pub fn token_user<'s>(state: &'s State, token: &str, now: Timestamp) -> Option<(&'s Arc<User>, &'s Token)> {
    let (id, _) = token.strip_prefix("zoe_")?.split_once('_')?;
    let user = state.users.get(&id.parse::<u64>().ok()?)?;
    let hash = token_hash(token);
    let found = user.tokens.iter().find(|t| constant_time_eq(t.hash.as_bytes(), hash.as_bytes()))?;
    (found.expires_at > now).then_some((user, found))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /token[?user=]`: the tokens of the caller, or, for an administrator, of `owner`.
pub fn tokens(p: &Published, caller: &Caller, owner: Option<&str>) -> Result<Vec<TokenView>, ZoeError> {
    Ok(owner_of(&p.state, caller, owner)?.tokens.iter().map(token_view).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::transitions;
    use zoe_checkpoints::Role;

    fn setup() -> (State, Caller, Caller, Timestamp) {
        let mut s = crate::testing::admin_state();
        let t = time::OffsetDateTime::UNIX_EPOCH;
        let a = transitions::add_user(&mut s, "alice", Role::User, "$argon2id$x".into(), t).unwrap();
        let b = transitions::add_user(&mut s, "bob", Role::User, "$argon2id$x".into(), t).unwrap();
        let alice = Caller { id: a.id, name: "alice".into(), role: Role::User };
        let bob = Caller { id: b.id, name: "bob".into(), role: Role::User };
        (s, alice, bob, t)
    }

    #[test]
    fn a_token_is_its_users_until_it_expires_or_is_revoked() {
        let (mut s, alice, bob, t) = setup();
        let secret = format!("zoe_{}_abc", alice.id);
        let (id, view) = create_token(&mut s, &alice, None, "laptop", token_hash(&secret), 2, t).unwrap();
        assert_eq!((id, view.expires), (alice.id, t + time::Duration::days(2)));
        assert!(zoe_checkpoints::validate(&s).is_ok());
        assert_eq!(token_user(&s, &secret, t).map(|(u, _)| u.id), Some(alice.id));
        assert!(token_user(&s, &secret, t + time::Duration::days(2)).is_none(), "expired");
        assert!(token_user(&s, &format!("zoe_{}_abc", bob.id), t).is_none(), "another user's id");
        assert!(token_user(&s, "garbage", t).is_none());
        let e = |r: Result<(u64, TokenView), ZoeError>| r.map(|_| ()).map_err(|e| e.code);
        assert_eq!(e(create_token(&mut s, &alice, None, "laptop", token_hash("x"), 2, t)), Err(Code::TokenExists));
        assert_eq!(e(create_token(&mut s, &alice, None, "Bad!", token_hash("x"), 2, t)), Err(Code::InvalidTokenName));
        assert_eq!(e(create_token(&mut s, &alice, None, "ok", token_hash("x"), 0, t)), Err(Code::InvalidExpiresDays));
        assert_eq!(e(create_token(&mut s, &bob, Some("alice"), "x", token_hash("x"), 1, t)), Err(Code::NoSuchUser));
        assert_eq!(revoke_token(&mut s, &bob, None, "laptop"), Err(no_such_token("laptop")));
        assert!(touch_token(&mut s, alice.id, &token_hash(&secret), t));
        assert!(!touch_token(&mut s, alice.id, &token_hash(&secret), t + time::Duration::minutes(59)));
        assert_eq!(revoke_token(&mut s, &crate::testing::admin(), Some("alice"), "laptop"), Ok(alice.id));
        assert!(token_user(&s, &secret, t).is_none(), "revoked");
    }

    #[test]
    fn a_user_has_a_bounded_number_of_tokens() {
        let (mut s, alice, _, t) = setup();
        for i in 0..limits::MAX_TOKENS {
            create_token(&mut s, &alice, None, &format!("t{i}"), token_hash(&i.to_string()), 1, t).unwrap();
        }
        let r = create_token(&mut s, &alice, None, "one-more", token_hash("x"), 1, t);
        assert_eq!(r.map(|_| ()).map_err(|e| e.code), Err(Code::TooManyTokens));
        assert!(zoe_checkpoints::validate(&s).is_ok());
    }
}
