//! Reads off the state actor. After each checkpoint is on disk the state actor publishes the
//! state it holds (cheap to share: users and executions are behind `Arc`s), with the back end's
//! figures and its own counters. HTTP handlers, web pages, credential checks and `/metrics` read
//! the newest publication through the pure functions of the views: a read never
//! queues behind writes, and never sees a change that is not yet durable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use zoe_checkpoints::{ArchiveIndex, Execution, State};

use crate::logic::placement::Node;
use crate::logic::resources::Resources;
use crate::logic::scheduler::SchedulerConfig;
use crate::protocol::{NodeInfo, PlatformInfo};

/// Platform figures reported by the container back end.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Platform {
    pub name: String,
    pub server_version: String,
    pub memory_total: u64,
    pub cpus: u32,
    pub containers: u64,
    pub containers_running: u64,
    pub images: u64,
    /// Every node the back end reported, ready or not.
    pub nodes: Vec<NodeInfo>,
    /// Whether the back end answered at its last contact.
    pub reachable: bool,
    /// The nodes Zoe may place containers on, as the scheduler sees them; `None` until the back
    /// end first reported.
    #[serde(skip)]
    schedulable: Option<Vec<Node>>,
}

impl Platform {
    /// The platform a back end reported, reachable.
    pub fn of(p: PlatformInfo) -> Platform {
        let schedulable = p
            .nodes
            .iter()
            .filter(|n| n.ready)
            .map(|n| Node { name: n.name.clone(), capacity: Resources { memory: n.memory, cores: f64::from(n.cpus) } })
            .collect();
        Platform {
            name: p.name,
            server_version: p.server_version,
            memory_total: p.memory_total,
            cpus: p.cpus,
            containers: p.containers,
            containers_running: p.containers_running,
            images: p.images,
            nodes: p.nodes,
            reachable: true,
            schedulable: Some(schedulable),
        }
    }

    /// The nodes containers may be placed on now, as last reported, if they were.
    pub fn nodes(&self) -> Option<&[Node]> {
        self.schedulable.as_deref()
    }
}

/// The state actor's running totals, for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    pub checkpoints_written: u64,
    pub checkpoint_failures: u64,
    pub checkpoint_seconds: f64,
    pub checkpoint_last_seconds: f64,
    pub docker_outages: u64,
    pub start_failures: u64,
}

/// The state disk as the master sees it, shared by the checkpoint writer (free space), the state
/// actor (whether checkpoints can be written) and readers (`/readyz`, `/metrics`).
#[derive(Debug)]
pub struct Storage {
    free: AtomicU64,
    failing: AtomicBool,
    /// Below this many free bytes, requests that change the state are refused
    /// (`insufficient_storage`) before Zoe fills the disk itself (`state-min-free`).
    pub min_free: u64,
}

impl Storage {
    /// Free space unknown (not measured yet), checkpoints written.
    pub fn new(min_free: u64) -> Storage {
        Storage { free: AtomicU64::new(u64::MAX), failing: AtomicBool::new(false), min_free }
    }

    /// Bytes free on the state disk at the last measure (`u64::MAX`: not known).
    pub fn free(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    /// Whether the last checkpoint could not be written (and none has been since).
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Whether the free space is under `min_free`.
    pub fn low(&self) -> bool {
        self.free() < self.min_free
    }

    pub(crate) fn set_free(&self, bytes: u64) {
        self.free.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }
}

/// One publication: the newest durable state and what goes with it.
#[derive(Debug)]
pub struct Published {
    /// The state of the newest checkpoint on disk.
    pub state: Arc<State>,
    /// The archive as that checkpoint knows it (every segment written before it).
    pub archive: Arc<ArchiveIndex>,
    pub platform: Platform,
    pub counters: Counters,
    /// Whether there is a back end at all (no: `--no-docker`).
    pub has_backend: bool,
    /// Executions whose usage was measured since the newest checkpoint: each is the durable
    /// execution with its newer `usage` and `usage_series` (nothing else of it is newer). The
    /// one exception to "readers see only durable state": measurements are not changes anyone
    /// waits for, and are written with the next checkpoint (see `state_actor::usage`).
    pub metered: Metered,
    /// User ids by name.
    users_by_name: HashMap<String, u64>,
}

/// Executions with usage newer than the newest checkpoint's, by id.
pub type Metered = Arc<HashMap<u64, Arc<Execution>>>;

impl Published {
    pub fn new(
        state: Arc<State>,
        archive: Arc<ArchiveIndex>,
        platform: Platform,
        counters: Counters,
        has_backend: bool,
    ) -> Published {
        let users_by_name = state.users.values().map(|u| (u.name.clone(), u.id)).collect();
        Published { state, archive, platform, counters, has_backend, metered: Metered::default(), users_by_name }
    }

    /// The execution `e` of the durable state with its newest measured usage.
    pub fn metered(&self, e: &Arc<Execution>) -> Arc<Execution> {
        self.metered.get(&e.id).cloned().unwrap_or_else(|| e.clone())
    }

    /// The same publication with these measurements.
    pub(crate) fn with_metered(mut self, metered: Metered) -> Published {
        self.metered = metered;
        self
    }

    /// The id of the user with this name.
    pub fn user_id(&self, name: &str) -> Option<u64> {
        self.users_by_name.get(name).copied()
    }

    /// The same state with other figures (the users index is kept).
    fn with(&self, platform: Platform, counters: Counters, metered: Metered) -> Published {
        Published {
            state: self.state.clone(),
            archive: self.archive.clone(),
            platform,
            counters,
            has_backend: self.has_backend,
            metered,
            users_by_name: self.users_by_name.clone(),
        }
    }
}

/// Executions' API JSON, kept while the execution does not change: an execution is an `Arc`
/// replaced on every change, so the entry is valid as long as it holds the same `Arc`. A client
/// polling an execution (or a list of them) then costs a lookup, not a serialization. Bounded:
/// past [`JSON_CACHE_ENTRIES`] it starts over.
#[derive(Debug, Default)]
pub struct JsonCache {
    /// Read-mostly: readers do not wait for each other.
    entries: RwLock<HashMap<u64, Cached>>,
}

/// The execution a JSON text was made of, and the text.
type Cached = (Arc<Execution>, Arc<[u8]>);

/// Entries of the JSON cache.
pub const JSON_CACHE_ENTRIES: usize = 10_000;

impl JsonCache {
    /// The JSON of `e`, made by `make` unless the cache has it for this very `Arc`; what `make`
    /// cannot make is not kept.
    pub fn get_or_make<E>(
        &self,
        e: &Arc<Execution>,
        make: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Arc<[u8]>, E> {
        if let Ok(entries) = self.entries.read() {
            if let Some((cached, json)) = entries.get(&e.id) {
                if Arc::ptr_eq(cached, e) {
                    return Ok(json.clone());
                }
            }
        }
        let json: Arc<[u8]> = make()?.into();
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= JSON_CACHE_ENTRIES {
                entries.clear();
            }
            entries.insert(e.id, (e.clone(), json.clone()));
        }
        Ok(json)
    }
}

/// The readers' handle: the newest publication, the scheduler settings views need, the cache of
/// executions' JSON, and the state disk's health.
#[derive(Clone, Debug)]
pub struct Reader {
    current: Arc<RwLock<Arc<Published>>>,
    pub scheduler: Arc<SchedulerConfig>,
    pub json: Arc<JsonCache>,
    /// The state disk's health.
    pub storage: Arc<Storage>,
}

impl Reader {
    pub fn new(first: Published, scheduler: SchedulerConfig, storage: Arc<Storage>) -> Reader {
        Reader {
            current: Arc::new(RwLock::new(Arc::new(first))),
            scheduler: Arc::new(scheduler),
            json: Arc::default(),
            storage,
        }
    }

    /// The newest publication.
    pub fn now(&self) -> Arc<Published> {
        match self.current.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Publishes a newly durable state (the state actor only).
    pub(crate) fn publish(&self, p: Published) {
        let p = Arc::new(p);
        match self.current.write() {
            Ok(mut cur) => *cur = p,
            Err(poisoned) => *poisoned.into_inner() = p,
        }
    }

    /// Publishes new figures with the same durable state (the state actor only).
    pub(crate) fn refresh(&self, platform: Platform, counters: Counters, metered: Metered) {
        let next = self.now().with(platform, counters, metered);
        self.publish(next);
    }
}
