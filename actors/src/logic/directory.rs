//! Users of the directory (LDAP): the Zoe user that a verified directory sign-in creates, or
//! whose role it brings up to date. Their `password_hash` is
//! [`DIRECTORY_PASSWORD_HASH`]: the password stays the directory's.

use std::sync::Arc;

use zoe_checkpoints::{Role, State, Timestamp, User, DIRECTORY_PASSWORD_HASH, FIRST_UID, MIN_UID, RESERVED_UIDS};

use crate::error::{Code, ZoeError};
use crate::logic::transitions;

/// What a directory sign-in did to the state.
#[derive(Clone, Debug, PartialEq)]
pub enum Synced {
    /// The user exists with this role already: nothing to write.
    Unchanged(Arc<User>),
    /// The first sign-in: the user was created.
    Created(Arc<User>),
    /// The directory's groups gave the user another role.
    Updated(Arc<User>),
}

/// Whether a user signs in through the directory.
pub fn is_directory_user(u: &User) -> bool {
    u.password_hash == DIRECTORY_PASSWORD_HASH
}

/// Whether the directory's `uidNumber` can be the user's uid as it is: at least [`MIN_UID`]
/// (never root's or the system's), below [`FIRST_UID`] (the uids Zoe hands out itself, so the
/// two never meet), not reserved, and no other user's.
pub fn directory_uid_fits(state: &State, uid: u32) -> bool {
    (MIN_UID..FIRST_UID).contains(&uid) && !RESERVED_UIDS.contains(&uid) && !state.users.values().any(|u| u.uid == uid)
}

/// Creates the Zoe user of a directory sign-in the directory just verified, or sets their role
/// to what the directory's groups say. The uid is the directory's `uid` when it fits
/// ([`directory_uid_fits`]), otherwise one Zoe hands out; it never changes afterwards. A local
/// user of that name stays local (`user_exists`): the directory does not take over accounts.
pub fn sign_in_directory_user(
    state: &mut State,
    name: &str,
    role: Role,
    uid: Option<u32>,
    now: Timestamp,
) -> Result<Synced, ZoeError> {
    if let Some(u) = state.user_by_name(name).cloned() {
        if !is_directory_user(&u) {
            return Err(ZoeError::new(Code::UserExists, format!("{name} is a local user, not the directory's")));
        }
        if u.role == role {
            return Ok(Synced::Unchanged(u));
        }
        if u.role == Role::Admin && state.users.values().filter(|u| u.role == Role::Admin).count() == 1 {
            return Err(ZoeError::new(Code::LastAdmin, format!("{name} is the last administrator and must stay one")));
        }
        let Some(stored) = state.users.get_mut(&u.id) else { return Ok(Synced::Unchanged(u)) };
        Arc::make_mut(stored).role = role;
        return Ok(Synced::Updated(stored.clone()));
    }
    let own = uid.filter(|&uid| directory_uid_fits(state, uid));
    let user = transitions::add_user(state, name, role, DIRECTORY_PASSWORD_HASH.into(), now)?;
    let Some(uid) = own else { return Ok(Synced::Created(user)) };
    let Some(u) = state.users.get_mut(&user.id) else { return Ok(Synced::Created(user)) };
    Arc::make_mut(u).uid = uid;
    Ok(Synced::Created(u.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let mut s = State::new("test");
        let t = time::OffsetDateTime::UNIX_EPOCH;
        transitions::add_user(&mut s, "zoeadmin", Role::Admin, "$argon2id$x".into(), t).unwrap();
        s
    }

    #[test]
    fn first_sign_in_creates_with_the_directory_uid_and_later_ones_follow_the_groups() {
        let mut s = state();
        let t = time::OffsetDateTime::UNIX_EPOCH;
        let Ok(Synced::Created(u)) = sign_in_directory_user(&mut s, "alice", Role::Guest, Some(10_001), t) else {
            panic!("not created")
        };
        assert_eq!((u.uid, u.role, u.password_hash.as_str()), (10_001, Role::Guest, DIRECTORY_PASSWORD_HASH));
        assert!(matches!(
            sign_in_directory_user(&mut s, "alice", Role::Guest, Some(10_001), t),
            Ok(Synced::Unchanged(_))
        ));
        let Ok(Synced::Updated(u)) = sign_in_directory_user(&mut s, "alice", Role::Admin, Some(99), t) else {
            panic!("not updated")
        };
        assert_eq!((u.uid, u.role), (10_001, Role::Admin), "the uid never changes");
        assert!(zoe_checkpoints::validate(&s).is_ok());
    }

    #[test]
    fn uids_that_do_not_fit_are_zoes_own_and_local_users_stay_local() {
        let mut s = state();
        let t = time::OffsetDateTime::UNIX_EPOCH;
        let first = sign_in_directory_user(&mut s, "alice", Role::User, Some(10_001), t);
        assert!(matches!(first, Ok(Synced::Created(ref u)) if u.uid == 10_001));
        let taken = 10_001;
        for (name, uid) in [("root", 0), ("nobody", 65_534), ("high", FIRST_UID + 5), ("taken", taken), ("none", 999)] {
            let Ok(Synced::Created(u)) = sign_in_directory_user(&mut s, name, Role::User, Some(uid), t) else {
                panic!("{name} not created")
            };
            assert!(u.uid >= FIRST_UID, "{name}: {}", u.uid);
        }
        let refused = sign_in_directory_user(&mut s, "zoeadmin", Role::Guest, None, t);
        assert_eq!(refused.map_err(|e| e.code), Err(Code::UserExists));
        assert!(zoe_checkpoints::validate(&s).is_ok());
    }
}
