//! The persisted state model: everything the master knows, as it is written in a checkpoint.
//!
//! Field order here is the field order in the RON files, so keep it stable and readable:
//! identity first, then status, then times, then the bulky parts.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

mod description;

pub use description::{Application, PortDescription, Resources, ServiceDescription, Volume};

/// The checkpoint format written by this version of Zoe.
///
/// History: 1, the first; 2 added `Execution::ending` (read from 1 as `None`); 3 added
/// `User::uid` and `State::next_uid` (users of 1 and 2 get uids in id order when loaded); 4 added
/// `State::archived_segments` (ended executions moved to the archive, see the `archive` module) and
/// `State::changes` (who changed what; read from older formats as none); 5 added
/// `ServiceStatus::Waiting` and `Service::retries` (elastic instances; read from older formats as
/// none and 0); 6 added `Execution::proxy_secret` and `PortDescription::secret_header` (secrets
/// the proxy hands to applications; read from older formats as none).
pub const FORMAT_VERSION: u32 = 7;

/// The first uid handed to a user. Users' containers run as their own uid and gid, from this
/// one up, far from the system's and the host's people's uids.
pub const FIRST_UID: u32 = 200_000;

/// No user may be given a uid below this one (root and the system's accounts).
pub const MIN_UID: u32 = 1000;

/// Uids stay below this one, so that they fit a signed 32-bit integer as some tools expect; no
/// user is created once `next_uid` reaches it.
pub const UID_LIMIT: u32 = 1 << 31;

/// The `password_hash` of a user of the directory (LDAP): their password is the directory's, and
/// Zoe keeps nothing of it. (No argon2 PHC string equals it, so no password matches it.)
pub const DIRECTORY_PASSWORD_HASH: &str = "directory";

/// Uids never given to a user: `nobody`, and `(uint16_t)-1`, which some systems treat as "no
/// uid". (`(uid_t)-1` is above [`UID_LIMIT`].)
pub const RESERVED_UIDS: [u32; 2] = [65534, 65535];

/// `next_id` stays at most this: ids have room to grow (a change hands out at most a few
/// hundred, so the counter never wraps), whatever a hand-edited checkpoint says.
pub const ID_LIMIT: u64 = 1 << 62;

/// The limits an application description must keep: checked when it is submitted
/// (`zoe_actors::description::app_description`) and when a checkpoint or archive segment holding it
/// is loaded, so that a hand-edited file cannot hold what a submission could not.
pub mod limits {
    /// API tokens per user.
    pub const MAX_TOKENS: usize = 20;
    /// The longest token name, in bytes.
    pub const MAX_TOKEN_NAME: usize = 32;
    /// The longest a token lives, in days (about ten years).
    pub const MAX_TOKEN_DAYS: u32 = 3650;
    pub const VERSION: u32 = 2;
    pub const MAX_APP_NAME: usize = 128;
    pub const MAX_PRIORITY: u32 = 1024;
    pub const MAX_SERVICES: usize = 64;
    pub const MAX_TOTAL_COUNT: u32 = 64;
    pub const MAX_CONTAINERS: u64 = 256;
    pub const MAX_STARTUP_ORDER: u32 = 1000;
    pub const MAX_IMAGE: usize = 255;
    pub const MAX_PORTS: usize = 32;
    /// Docker's minimum memory limit: 6 MiB.
    pub const MIN_MEMORY: u64 = 6 * 1024 * 1024;
    /// 1 TiB.
    pub const MAX_MEMORY: u64 = 1024 * 1024 * 1024 * 1024;
    /// Docker's smallest CPU limit: a hundredth of a core (anything less is no limit at all).
    /// Submissions are held to it; the loader accepts what older masters accepted (more than 0).
    pub const MIN_CORES: f64 = 0.01;
    pub const MAX_CORES: f64 = 256.0;
    pub const MAX_ENV_ENTRIES: usize = 256;
    pub const MAX_ENV_NAME: usize = 256;
    pub const MAX_ENV_VALUE: usize = 4096;
    pub const MAX_COMMAND: usize = 4096;
    pub const MAX_PORT_NAME: usize = 128;
    pub const MAX_PROTOCOL: usize = 16;
    pub const MAX_PORT_PATH: usize = 1024;
    /// Data sets a service may name.
    pub const MAX_DATASETS: usize = 16;
}

/// A point in time, always UTC, written as RFC 3339.
pub type Timestamp = OffsetDateTime;

/// The whole state of a Zoe master.
///
/// Users and executions are kept behind `Arc` so that a snapshot for the checkpoint writer is a
/// cheap clone; changes go through `Arc::make_mut` (copy on write).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Format of this checkpoint; older formats are upgraded on load.
    pub format_version: u32,
    /// The deployment this state belongs to; a master configured for another one refuses it.
    pub deployment_name: String,
    /// The next id to hand out. Users, executions and services share this one counter.
    pub next_id: u64,
    /// The next uid to give a user. Uids are never reused, like ids.
    #[serde(default = "first_uid")]
    pub next_uid: u32,
    /// The archive segments this state's ended executions were moved to: 1 to this number are
    /// needed to read all of its history (later ones, if any, are read too).
    #[serde(default)]
    pub archived_segments: u64,
    /// What changed since the previous checkpoint, and who changed it.
    #[serde(default)]
    pub changes: Vec<Change>,
    /// Users, in id order.
    #[serde(with = "id_list")]
    pub users: BTreeMap<u64, Arc<User>>,
    /// Executions, in id order (which is submission order).
    #[serde(with = "id_list")]
    pub executions: BTreeMap<u64, Arc<Execution>>,
}

impl State {
    /// An empty state for a deployment.
    pub fn new(deployment_name: &str) -> Self {
        State {
            format_version: FORMAT_VERSION,
            deployment_name: deployment_name.to_string(),
            next_id: 0,
            next_uid: FIRST_UID,
            archived_segments: 0,
            changes: Vec::new(),
            users: BTreeMap::new(),
            executions: BTreeMap::new(),
        }
    }

    /// Hands out the next id.
    pub fn gen_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Hands out the next uid, skipping [`RESERVED_UIDS`]. Callers check [`State::uids_left`]
    /// first.
    pub fn gen_uid(&mut self) -> u32 {
        while RESERVED_UIDS.contains(&self.next_uid) {
            self.next_uid += 1;
        }
        let uid = self.next_uid;
        self.next_uid = self.next_uid.saturating_add(1);
        uid
    }

    /// Whether a new user can still be given a uid below [`UID_LIMIT`].
    pub fn uids_left(&self) -> bool {
        let mut next = self.next_uid;
        while RESERVED_UIDS.contains(&next) {
            next += 1;
        }
        next < UID_LIMIT
    }

    /// The user with this name, if any.
    pub fn user_by_name(&self, name: &str) -> Option<&Arc<User>> {
        self.users.values().find(|u| u.name == name)
    }

    /// The execution holding the service with this id, and the service's index in it.
    pub fn find_service(&self, service_id: u64) -> Option<(&Arc<Execution>, usize)> {
        self.executions.values().find_map(|e| e.services.iter().position(|s| s.id == service_id).map(|i| (e, i)))
    }
}

fn first_uid() -> u32 {
    FIRST_UID
}

/// One change a checkpoint holds: who made it, what it was, on which objects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// The user who asked for it, or `zoe` for what the master does on its own (starting the
    /// queue, following containers, archiving).
    pub by: String,
    pub action: Action,
    /// The users, executions or archive segments it touched.
    pub ids: Vec<u64>,
}

impl Change {
    /// Who made a change the master made on its own.
    pub const ZOE: &'static str = "zoe";

    pub fn new(by: &str, action: Action, ids: Vec<u64>) -> Change {
        Change { by: by.to_string(), action, ids }
    }
}

/// Adds a change to a list, merged into the last one when it is by the same person and of the
/// same kind (a burst of submissions is one line).
pub fn record_change(changes: &mut Vec<Change>, by: &str, action: Action, ids: &[u64]) {
    if let Some(last) = changes.last_mut() {
        if last.by == by && last.action == action {
            for id in ids {
                if !last.ids.contains(id) {
                    last.ids.push(*id);
                }
            }
            return;
        }
    }
    changes.push(Change::new(by, action, ids.to_vec()));
}

/// What a change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    CreateUser,
    UpdateUser,
    DeleteUser,
    Submit,
    Terminate,
    /// The scheduler started executions.
    Start,
    /// The scheduler started elastic instances of running executions.
    Grow,
    /// Containers ran (started, exited, were removed, were found gone).
    Containers,
    /// Executions ended past their time limit.
    TimeLimit,
    /// Executions ended after being idle longer than their owner's role allows.
    IdleLimit,
    /// A start interrupted by a master restart, cleaned up.
    Repair,
    /// Ended executions moved to archive segments (the ids are the segments').
    Archive,
    /// A new state (the first checkpoint of a deployment).
    Init,
    /// A copy of an earlier checkpoint made the newest (the id is that checkpoint's number).
    Revert,
    /// An API token was made (the id is its user's).
    CreateToken,
    /// An API token was revoked (the id is its user's).
    RevokeToken,
    /// API tokens were used (their `last_used`, kept coarse; the ids are their users').
    UseToken,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::CreateUser => "create_user",
            Action::UpdateUser => "update_user",
            Action::DeleteUser => "delete_user",
            Action::Submit => "submit",
            Action::Terminate => "terminate",
            Action::Start => "start",
            Action::Grow => "grow",
            Action::Containers => "containers",
            Action::TimeLimit => "time_limit",
            Action::IdleLimit => "idle_limit",
            Action::Repair => "repair",
            Action::Archive => "archive",
            Action::Init => "init",
            Action::Revert => "revert",
            Action::CreateToken => "create_token",
            Action::RevokeToken => "revoke_token",
            Action::UseToken => "use_token",
        }
    }
}

/// Something stored in an id-ordered list of a checkpoint.
pub trait HasId {
    /// The object's id.
    fn id(&self) -> u64;
}

/// A Zoe user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub id: u64,
    /// A lowercase DNS label; part of every container name of this user.
    pub name: String,
    pub role: Role,
    /// The uid (and gid) the user's containers run as and their workspace belongs to; given
    /// once, never reused.
    #[serde(default)]
    pub uid: u32,
    /// Argon2id hash in PHC string format. Never returned by the API.
    pub password_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    /// The user's API tokens (format 7): only their hashes; at most [`limits::MAX_TOKENS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<Token>,
}

/// An API token of a user. The token itself is shown once, when it is made; Zoe keeps only a
/// hash of it (see [`token_hash`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// The user's name for it: a lowercase DNS label of at most [`limits::MAX_TOKEN_NAME`]
    /// bytes, one per user.
    pub name: String,
    /// [`token_hash`] of the token: 64 lowercase hex digits.
    pub hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
    /// When it was last used, coarsely: updated at most once per [`TOKEN_USE_GRAIN`].
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub last_used: Option<Timestamp>,
}

/// How coarse a token's `last_used` is: a token used all day long writes at most one checkpoint
/// per this much time.
pub const TOKEN_USE_GRAIN: time::Duration = time::Duration::hours(1);

/// The hash Zoe keeps of an API token: BLAKE2s-256, unkeyed, in lowercase hex. Tokens are 256
/// random bits, so there is no dictionary to try against a leaked hash, and a slow password hash
/// (argon2) would only slow every request down.
pub fn token_hash(token: &str) -> String {
    use blake2::{Blake2s256, Digest};
    let mut h = Blake2s256::new();
    h.update(b"zoe-api-token\0");
    h.update(token.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `s` can be a token's hash.
pub fn is_token_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `s` can be the name of a token.
pub fn is_token_name(s: &str) -> bool {
    s.len() <= limits::MAX_TOKEN_NAME && crate::is_dns_label(s)
}

impl HasId for User {
    fn id(&self) -> u64 {
        self.id
    }
}

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees and acts on everything; the only role that manages users.
    Admin,
    /// Acts on their own executions.
    User,
    /// A user with tight quotas (one active execution).
    Guest,
}

impl Role {
    /// The role as written in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::Guest => "guest",
        }
    }

    /// Parses an API role string.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            "guest" => Some(Role::Guest),
            _ => None,
        }
    }
}

/// One run of an application description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Execution {
    pub id: u64,
    /// A lowercase DNS label, unique among the owner's active executions.
    pub name: String,
    /// The owner's name when the execution was submitted.
    pub owner: String,
    /// The owner's user id. Ids are never reused, so a later user with the same name does not
    /// inherit this execution.
    pub owner_id: u64,
    pub status: ExecutionStatus,
    /// Why the execution failed or ended, in plain words.
    pub error: Option<String>,
    /// While `cleaning up`: the status it takes once its containers are gone (`finished`,
    /// `terminated`, `error`, or `scheduled` to start again after a master restart).
    #[serde(default)]
    pub ending: Option<ExecutionStatus>,
    /// When it was submitted (and queued).
    #[serde(with = "time::serde::rfc3339")]
    pub time_scheduled: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    pub time_started: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub time_finished: Option<Timestamp>,
    /// The validated application description.
    pub application: Application,
    /// One entry per container, created when the execution starts.
    pub services: Vec<Service>,
    /// The secret Zoe made for this execution when its description asks for one (a port with
    /// `secret_header`, or `{proxy_secret}`): given to its containers and added by the proxy to
    /// the requests it forwards to those ports, shown to nobody. Written only when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_secret: Option<String>,
}

impl HasId for Execution {
    fn id(&self) -> u64 {
        self.id
    }
}

impl Execution {
    /// The description of the service a service record is an instance of.
    pub fn description_of(&self, s: &Service) -> Option<&ServiceDescription> {
        self.application.services.iter().find(|d| d.name == s.service_name)
    }

    /// Whether a service record is an essential instance (see
    /// [`ServiceDescription::is_essential`]); one whose description is missing counts as one.
    pub fn is_essential(&self, s: &Service) -> bool {
        self.description_of(s).is_none_or(|d| d.is_essential(s.index))
    }
}

/// The life of an execution. The allowed moves between these are written down in
/// `ExecutionStatus::can_move_to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Waiting in the queue.
    Scheduled,
    /// Its containers are being created.
    Starting,
    /// All its containers were started.
    Running,
    /// Its containers are being stopped and removed.
    CleaningUp,
    /// Ended on its own (the monitor service exited).
    Finished,
    /// Ended by a user or an administrator.
    Terminated,
    /// Failed to start or lost its containers.
    Error,
}

impl ExecutionStatus {
    /// Every status, in life order.
    pub const ALL: [ExecutionStatus; 7] = [
        ExecutionStatus::Scheduled,
        ExecutionStatus::Starting,
        ExecutionStatus::Running,
        ExecutionStatus::CleaningUp,
        ExecutionStatus::Finished,
        ExecutionStatus::Terminated,
        ExecutionStatus::Error,
    ];

    /// The status as written in the API (0.9.7 spelling, `cleaning up` with a space).
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Scheduled => "scheduled",
            ExecutionStatus::Starting => "starting",
            ExecutionStatus::Running => "running",
            ExecutionStatus::CleaningUp => "cleaning up",
            ExecutionStatus::Finished => "finished",
            ExecutionStatus::Terminated => "terminated",
            ExecutionStatus::Error => "error",
        }
    }

    /// Parses an API status string.
    pub fn parse(s: &str) -> Option<ExecutionStatus> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Active executions hold (or are about to hold) resources and block their name.
    pub fn is_active(self) -> bool {
        !self.is_final()
    }

    /// Final statuses are never left.
    pub fn is_final(self) -> bool {
        matches!(self, ExecutionStatus::Finished | ExecutionStatus::Terminated | ExecutionStatus::Error)
    }

    /// The allowed transitions, and only these:
    ///
    /// ```text
    /// scheduled   -> starting | terminated | error
    /// starting    -> running | cleaning up | error
    /// running     -> cleaning up | finished | error
    /// cleaning up -> finished | terminated | error
    ///              | scheduled   (a start interrupted by a master restart, cleaned, retried)
    /// finished, terminated, error: final
    /// ```
    pub fn can_move_to(self, to: ExecutionStatus) -> bool {
        use ExecutionStatus::*;
        matches!(
            (self, to),
            (Scheduled, Starting | Terminated | Error)
                | (Starting, Running | CleaningUp | Error)
                | (Running, CleaningUp | Finished | Error)
                | (CleaningUp, Finished | Terminated | Error | Scheduled)
        )
    }
}

/// One container of an execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub id: u64,
    /// Container name and host name: `<service>[-<index>]-<execution>-<owner>-<deployment>`.
    pub name: String,
    /// The name of the service in the application description.
    pub service_name: String,
    /// Which instance of the service this is, from 0.
    pub index: u32,
    pub is_monitor: bool,
    pub status: ServiceStatus,
    /// The Docker container id, once created.
    pub docker_id: Option<String>,
    /// Exit code, once the container has stopped.
    pub exit_code: Option<i64>,
    /// Whether the kernel killed it for exceeding its memory limit.
    pub oom_killed: bool,
    /// Network name to IP address.
    pub ip_address: BTreeMap<String, String>,
    /// The ports of the description, with their published host endpoints.
    pub ports: Vec<ServicePort>,
    /// The node it runs (or ran) on, on a back end of several nodes.
    #[serde(default)]
    pub node: Option<String>,
    /// An elastic instance's starts after its first that died or failed (see
    /// `ServiceDescription::is_essential`); bounded, so a crashing worker is not started forever.
    /// Written only when not 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The life of one container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    /// Being created (in a start under way).
    Pending,
    /// An elastic instance not started for lack of room; the scheduler starts it when room
    /// frees.
    Waiting,
    /// Created and started.
    Running,
    /// Stopped on its own; see `exit_code` and `oom_killed`.
    Exited,
    /// Removed by Zoe.
    Removed,
    /// Lost with its node (the node went down while it ran).
    Lost,
}

impl ServiceStatus {
    /// The status as written in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Pending => "pending",
            ServiceStatus::Waiting => "waiting",
            ServiceStatus::Running => "running",
            ServiceStatus::Exited => "exited",
            ServiceStatus::Removed => "removed",
            ServiceStatus::Lost => "lost",
        }
    }
}

/// A port of a running service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServicePort {
    pub name: String,
    pub protocol: String,
    pub port_number: u16,
    pub path: String,
    pub is_main_endpoint: bool,
    pub expose: bool,
    /// `host:port` where an exposed port was published, once running.
    pub host_endpoint: Option<String>,
}

impl ServicePort {
    /// The port `p` of a description, on a service not published yet.
    pub fn of(p: &PortDescription) -> ServicePort {
        ServicePort {
            name: p.name.clone(),
            protocol: p.protocol.clone(),
            port_number: p.port_number,
            path: p.path.clone(),
            is_main_endpoint: p.is_main_endpoint,
            expose: p.expose,
            host_endpoint: None,
        }
    }
}

/// Serializes an id-keyed map as a plain list, in id order, and refuses duplicate ids on load.
mod id_list {
    use super::HasId;
    use serde::de::{Deserialize, Deserializer, Error};
    use serde::ser::{SerializeSeq, Serializer};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    pub fn serialize<T, S>(map: &BTreeMap<u64, Arc<T>>, s: S) -> Result<S::Ok, S::Error>
    where
        T: serde::Serialize,
        S: Serializer,
    {
        let mut seq = s.serialize_seq(Some(map.len()))?;
        for v in map.values() {
            seq.serialize_element(v.as_ref())?;
        }
        seq.end()
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<BTreeMap<u64, Arc<T>>, D::Error>
    where
        T: Deserialize<'de> + HasId,
        D: Deserializer<'de>,
    {
        let list = Vec::<T>::deserialize(d)?;
        let mut map = BTreeMap::new();
        for v in list {
            let id = v.id();
            if map.insert(id, Arc::new(v)).is_some() {
                return Err(D::Error::custom(format!("id {id} appears twice in this list")));
            }
        }
        Ok(map)
    }
}
