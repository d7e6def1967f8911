//! Users' workspaces as the HTTP layer sees them: how much of its quota each one uses (measured
//! off the async threads, two at a time; a slow measurement, a walk of a large folder, is reused
//! for a few seconds), shown in users' JSON and pages, and the refusal of new executions of a
//! user whose workspace is over its quota.
//!
//! The measuring itself is `zoe_actors::backend::workspace::usage`: a file system of its own (one
//! engine's images, or a per-user volume of shared storage) is asked, a plain folder walked.
//!
//! The files API and the workspace page reach a workspace the same way ([`Workspaces::reach`]:
//! who may, and as whom it is opened) and store an upload the same way ([`Workspaces::store`]:
//! bounded by the room left in the quota, nothing kept of a refused one).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use zoe_actors::backend::workspace::{self, Quotas, WorkspaceUse};
use zoe_actors::description::units::show_bytes;
use zoe_actors::protocol::Workspace as ProtocolWorkspace;
use zoe_actors::Caller;
use zoe_actors::{Code, ZoeError};
use zoe_checkpoints::Role;

use actix_web::web::Bytes;
use futures_util::Stream;
use zoe_actors::logic::reader::Reader;

use crate::error::{ApiError, HttpCode};
use crate::files::{stream, Entry, Workspace, WsPath};

/// How long a slow measurement is reused.
const FRESH: Duration = Duration::from_secs(5);
/// A measurement slower than this is reused (a `statvfs` of a file system of its own is not).
const SLOW: Duration = Duration::from_millis(20);
/// How long a measurement may take before the answer goes without it.
const MEASURE_TIMEOUT: Duration = Duration::from_secs(15);

/// A workspace reached by a caller: opened, and whose it is.
pub struct Reached {
    pub ws: Workspace,
    pub owner: String,
    pub role: Role,
}

/// The deployment's workspaces.
pub struct Workspaces {
    /// `<workspace-base-path>/<deployment>`, absolute.
    base: PathBuf,
    quotas: Quotas,
    /// Whether workspaces are file system images of their quota (one engine), as opposed to
    /// folders (shared storage, or no Docker).
    images: bool,
    measured: Mutex<HashMap<String, (Instant, WorkspaceUse)>>,
    /// Measurements under way at once.
    measuring: tokio::sync::Semaphore,
}

impl Workspaces {
    pub fn new(base: PathBuf, deployment: &str, quotas: Quotas, images: bool) -> Self {
        Workspaces {
            base: base.join(deployment),
            quotas,
            images,
            measured: Mutex::new(HashMap::new()),
            measuring: tokio::sync::Semaphore::new(2),
        }
    }

    /// The quota of a user of this role.
    pub fn quota(&self, role: Role) -> u64 {
        self.quotas.of(role)
    }

    /// A user's workspace folder on the master's host.
    pub fn folder(&self, user: &str) -> PathBuf {
        self.base.join(user)
    }

    /// How much of their quota a user's workspace uses; `None` when it cannot be measured now
    /// (an error, or too slow: logged).
    pub async fn usage(&self, user: &str, role: Role) -> Option<WorkspaceUse> {
        let quota = self.quota(role);
        if let Some((at, u)) = self.lock().get(user) {
            if at.elapsed() < FRESH && u.quota == quota {
                return Some(*u);
            }
        }
        let _turn = tokio::time::timeout(MEASURE_TIMEOUT, self.measuring.acquire()).await.ok()?.ok()?;
        let folder = self.folder(user);
        let started = Instant::now();
        let measuring = actix_web::web::block(move || workspace::usage(&folder, quota));
        let measured = match tokio::time::timeout(MEASURE_TIMEOUT, measuring).await {
            Ok(Ok(Ok(u))) => u,
            Ok(Ok(Err(e))) => {
                tracing::warn!(user, error = %e, "cannot measure the workspace");
                return None;
            }
            Ok(Err(e)) => {
                tracing::warn!(user, error = %e, "the workspace measurement failed");
                return None;
            }
            Err(_) => {
                tracing::warn!(user, "measuring the workspace took too long");
                return None;
            }
        };
        let mut cache = self.lock();
        // Bounded by the users there are; a deleted user's entry goes when it is stale.
        cache.retain(|_, (at, _)| at.elapsed() < FRESH);
        if started.elapsed() > SLOW {
            cache.insert(user.to_string(), (Instant::now(), measured));
        } else {
            cache.remove(user);
        }
        Some(measured)
    }

    /// How many more bytes a user may write in their workspace (for uploads and the like);
    /// `None` when it cannot be measured now.
    pub async fn room_left(&self, user: &str, role: Role) -> Option<u64> {
        self.usage(user, role).await.map(|u| u.available)
    }

    /// Opens a user's workspace for the files API and pages, preparing it first as a start of
    /// their containers would (made, given to their uid, its image mounted), so that what is
    /// written there counts against the quota and is what the containers see.
    pub async fn open(&self, user: &str, uid: u32, role: Role) -> Result<Workspace, ZoeError> {
        let ws = ProtocolWorkspace {
            host: self.folder(user),
            container: zoe_actors::logic::plan::WORKSPACE_MOUNT.to_string(),
            uid,
            quota: self.quota(role),
        };
        let images = self.images;
        let opened = actix_web::web::block(move || {
            if images {
                workspace::prepare(&ws)?;
            } else {
                workspace::prepare_folder(&ws)?;
            }
            Workspace::open(&ws.host, uid).map_err(|e| format!("cannot open {}: {e}", ws.host.display()))
        })
        .await;
        match opened {
            Ok(Ok(ws)) => Ok(ws),
            Ok(Err(e)) => {
                tracing::warn!(user, error = %e, "cannot prepare the workspace for its files");
                Err(ZoeError::new(Code::Unavailable, format!("the workspace cannot be reached now: {e}")))
            }
            Err(e) => Err(ZoeError::new(Code::Internal, format!("the workspace could not be opened: {e}"))),
        }
    }

    /// The workspace `caller` reaches: their own, or (administrators) `user`'s. Another user's
    /// and an unknown user's are both `no_such_user`: existence is not revealed.
    pub async fn reach(&self, reader: &Reader, caller: &Caller, user: Option<&str>) -> Result<Reached, ApiError> {
        let (owner, uid, role) = {
            let now = reader.now();
            let name = user.unwrap_or(&caller.name);
            let visible = name == caller.name || caller.is_admin();
            let owner = now
                .state
                .user_by_name(name)
                .filter(|_| visible)
                .ok_or_else(|| ApiError::new(Code::NoSuchUser, format!("no such user: {name}")))?;
            (owner.name.clone(), owner.uid, owner.role)
        };
        let ws = self.open(&owner, uid, role).await?;
        Ok(Reached { ws, owner, role })
    }

    /// Stores `body` as the file `path` of a reached workspace (its folders made, a file there
    /// replaced when complete), within the room left in its quota: refused at once
    /// (`workspace_full`) when the length the client `declared` does not fit, midway when the
    /// bytes do not; nothing is kept of a refused or cut upload. Gives back the workspace with
    /// the file's entry.
    pub async fn store<S, E>(
        &self,
        reached: Reached,
        path: WsPath,
        declared: Option<u64>,
        body: S,
    ) -> Result<(Entry, Reached), ApiError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        // What is left of the quota (unknown: the file system stops the writes itself).
        let room = self.room_left(&reached.owner, reached.role).await.unwrap_or(u64::MAX);
        if let Some(len) = declared.filter(|&len| len > room) {
            return Err(ApiError::new(
                HttpCode::WorkspaceFull,
                format!(
                    "the workspace is full: {path} ({len} bytes) does not fit in the {room} bytes left of its quota"
                ),
            ));
        }
        let turn = turn()?;
        let Reached { ws, owner, role } = reached;
        let creating = path.clone();
        let (upload, ws) =
            actix_web::web::block(move || ws.create(&creating, room).map(|u| (u, ws))).await.map_err(blocked)??;
        let stored = stream::receive(turn, upload, body).await;
        self.forget(&owner);
        stored?;
        let (entry, ws) = actix_web::web::block(move || (ws.stat(&path), ws)).await.map_err(blocked)?;
        Ok((entry?, Reached { ws, owner, role }))
    }

    /// Removes `path` (a folder only when empty, or with `recursive`) from a reached workspace,
    /// whose measured use is then forgotten.
    pub async fn remove(&self, reached: Reached, path: WsPath, recursive: bool) -> Result<(), ApiError> {
        let Reached { ws, owner, .. } = reached;
        let removed = actix_web::web::block(move || ws.remove(&path, recursive)).await;
        self.forget(&owner);
        Ok(removed.map_err(blocked)??)
    }

    /// Refuses a new execution of a user whose workspace is over its quota (where storage does
    /// not stop the writes itself: shared storage, or an image of a quota since lowered).
    pub async fn admit(&self, caller: &Caller) -> Result<(), ZoeError> {
        match self.usage(&caller.name, caller.role).await {
            Some(u) if u.over_quota() => Err(ZoeError::new(
                Code::QuotaExceeded,
                format!(
                    "Quota exceeded: your workspace holds {}, more than its quota of {}; remove files from it to \
                     start new executions",
                    show_bytes(u.used),
                    show_bytes(u.quota)
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Forgets the last measurement of a user's workspace (its files just changed).
    pub fn forget(&self, user: &str) {
        self.lock().remove(user);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, WorkspaceUse)>> {
        self.measured.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A place among the file transfers under way (the API's and the pages'), or `503 busy`.
pub fn turn() -> Result<stream::Turn, ApiError> {
    stream::Turn::take().ok_or_else(|| {
        ApiError::new(
            HttpCode::Busy,
            format!("{} file transfers are under way, the most at once; try again shortly", stream::MAX_TRANSFERS),
        )
        .retry_after(5)
    })
}

/// The blocking thread of a workspace operation failed.
pub fn blocked(e: actix_web::error::BlockingError) -> ApiError {
    ApiError::new(HttpCode::Internal, format!("a workspace operation failed: {e}"))
}
