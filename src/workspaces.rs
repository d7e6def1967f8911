//! Users' workspaces as the HTTP layer sees them: how much of its quota each one uses (measured
//! off the async threads, two at a time; a slow measurement, a walk of a large folder, is reused
//! for a few seconds), shown in users' JSON and pages, and the refusal of new executions of a
//! user whose workspace is over its quota.
//!
//! The measuring itself is `zoe_actors::backend::workspace::usage`: a file system of its own (one
//! engine's images, or a per-user volume of shared storage) is asked, a plain folder walked.

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

use crate::files::Workspace;

/// How long a slow measurement is reused.
const FRESH: Duration = Duration::from_secs(5);
/// A measurement slower than this is reused (a `statvfs` of a file system of its own is not).
const SLOW: Duration = Duration::from_millis(20);
/// How long a measurement may take before the answer goes without it.
const MEASURE_TIMEOUT: Duration = Duration::from_secs(15);

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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, WorkspaceUse)>> {
        self.measured.lock().unwrap_or_else(|p| p.into_inner())
    }
}
