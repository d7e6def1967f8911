//! A user as the API shows it, and the reads of users.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zoe_checkpoints::{Role, Timestamp, User};

use crate::error::ZoeError;
use crate::logic::access::{self, check_caller, visible_user, Caller};
use crate::logic::reader::Published;
use crate::protocol::WorkspaceUse;

/// A user; passwords and hashes are never returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = User, example = json!({"id": 2, "name": "alice", "role": "user", "uid": 200001, "gateway_urls": [], "owner": "alice", "created_at": "2026-11-25T12:00:00Z"}))]
pub struct UserView {
    pub id: u64,
    pub name: String,
    pub role: Role,
    /// The uid (and gid) the user's containers run as and their workspace belongs to.
    pub uid: u32,
    /// Always empty (kept for 0.9.7's clients).
    pub gateway_urls: Vec<String>,
    /// The user's own name.
    pub owner: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// The workspace's use of its quota (`GET /user/<name>` only; absent when it could not be
    /// measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<WorkspaceUse>,
}

/// The view of a user.
pub fn user_view(u: &User) -> UserView {
    UserView {
        id: u.id,
        name: u.name.clone(),
        role: u.role,
        uid: u.uid,
        gateway_urls: Vec::new(),
        owner: u.name.clone(),
        created_at: u.created_at,
        workspace: None,
    }
}

/// `GET /user/<name>`.
pub fn get_user(p: &Published, caller: &Caller, name: &str) -> Result<UserView, ZoeError> {
    check_caller(&p.state, caller)?;
    visible_user(&p.state, caller, name).map(|u| user_view(u))
}

/// Every user, for an administrator (the web's users page).
pub fn users(p: &Published, caller: &Caller) -> Result<Vec<UserView>, ZoeError> {
    access::admin_only(&p.state, caller, "see the users")?;
    Ok(p.state.users.values().map(|u| user_view(u)).collect())
}

/// The user with this name, whose credentials a login is checked against.
pub fn credentials<'a>(p: &'a Published, name: &str) -> Option<&'a User> {
    p.state.users.get(&p.user_id(name)?).map(|u| u.as_ref())
}
