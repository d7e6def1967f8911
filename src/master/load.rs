//! Loading the state a master starts with: the newest checkpoint, or the one `from-checkpoint`
//! names, or a new state; the archive it needs and the archive's index.

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use zoe_checkpoints::archive::{check_numbers, foreign_execution, IndexNote, LayoutError};
use zoe_checkpoints::{encode, is_dns_label, Action, Archive, ArchiveIndex, Change, Role, State, Store};

use super::{StartError, ADMIN_NAME};
use crate::auth::hash_password;
use crate::config::MasterConfig;

/// A loaded state, the number of the checkpoint it came from, and the archive it needs.
pub struct Loaded {
    pub state: State,
    pub seq: u64,
    pub store: Store,
    pub archive: Archive,
    pub index: ArchiveIndex,
}

/// A start says what it is doing, every [`PROGRESS_EVERY`], once it has taken more than a second.
pub struct StartProgress {
    phase: Arc<Mutex<String>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often a slow start logs how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

impl StartProgress {
    pub fn spawn() -> StartProgress {
        let phase = Arc::new(Mutex::new(String::from("starting")));
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = phase.clone();
        let thread = std::thread::Builder::new()
            .name("zoe-start-progress".into())
            .spawn(move || {
                let started = Instant::now();
                let mut wait = Duration::from_secs(1);
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                    let now = shared.lock().map(|p| p.clone()).unwrap_or_default();
                    tracing::info!("still starting after {:.0} s: {now}", started.elapsed().as_secs_f64());
                    wait = PROGRESS_EVERY;
                }
            })
            .ok();
        StartProgress { phase, stop: Some(stop), thread }
    }

    /// What the start does now.
    pub fn set(&self, what: impl Into<String>) {
        if let Ok(mut p) = self.phase.lock() {
            *p = what.into();
        }
    }
}

impl Drop for StartProgress {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How the `from-checkpoint` setting is named in messages: it may come from any of these.
const FROM_CHECKPOINT_SETTING: &str =
    "from-checkpoint (--from-checkpoint, ZOE_FROM_CHECKPOINT, or `from-checkpoint` in the config file)";

/// Loads the state the master should run with: the newest checkpoint, checkpoint
/// `--from-checkpoint N` (re-written as the newest, once), or a new state with `zoeadmin` when
/// the state directory has never been used. The caller holds the state directory's lock.
pub fn load_state(config: &MasterConfig, progress: &StartProgress) -> Result<Loaded, StartError> {
    let store = Store::open(&config.state_dir)
        .map_err(|e| StartError(format!("cannot open the state directory {}: {e}", config.state_dir.display())))?;
    store.remove_temp_files().map_err(|e| StartError(format!("cannot clean {}: {e}", store.dir().display())))?;
    let newest = store.newest().map_err(|e| StartError(format!("cannot list {}: {e}", store.dir().display())))?;
    let hint = |n: u64| {
        let older = match store.newest_loadable(n) {
            Some(k) => {
                format!(", or start from checkpoint {k}, the newest older one that loads, with `--from-checkpoint {k}`")
            }
            None => " (no older checkpoint loads)".to_string(),
        };
        format!(
            "fix the file by hand and check it with `zoe checkpoint verify --state-dir {}`{older}",
            config.state_dir.display()
        )
    };
    let chosen = match config.from_checkpoint {
        Some(n) => from_checkpoint(&store, n, newest)?,
        None => newest,
    };
    let (mut state, seq) = match chosen {
        Some(n) => {
            let size = std::fs::metadata(store.path(n)).map(|m| m.len()).unwrap_or(0);
            progress.set(format!("loading checkpoint {n} ({:.1} MB)", size as f64 / 1e6));
            let state =
                store.load(n).map_err(|e| StartError(format!("cannot load checkpoint {n}: {e}\nhint: {}", hint(n))))?;
            (state, newest.unwrap_or(n))
        }
        None => {
            if let Some(signs) = past_life(&config.state_dir) {
                return Err(StartError(format!(
                    "{} holds no checkpoint, but this state directory was used before: {signs}. Starting with an \
                     empty state would lose every user and execution.\nhint: restore the checkpoints from a backup \
                     and check them with `zoe checkpoint verify --state-dir {}`; to really start afresh, move {} away",
                    store.dir().display(),
                    config.state_dir.display(),
                    config.state_dir.display()
                )));
            }
            (new_state(config)?, 0)
        }
    };
    if state.deployment_name != config.deployment_name {
        return Err(StartError(format!(
            "the checkpoints in {} belong to deployment {:?}, but this master is configured for {:?}; \
             use --deployment-name {} or another --state-dir",
            store.dir().display(),
            state.deployment_name,
            config.deployment_name,
            state.deployment_name
        )));
    }
    // A start from an older checkpoint keeps what was archived since: the archive is never
    // rewritten.
    let reverted = chosen != newest;
    let (archive, index) = load_archive(config, &mut state, chosen.unwrap_or(0), reverted, progress)?;
    // What the loaded checkpoint records was changed before it; the next one records anew.
    state.changes.clear();
    // A new state, or an older checkpoint chosen by hand, becomes the newest checkpoint now, so
    // that history only grows and a restart without the flag keeps it.
    let seq = if seq == 0 || chosen != newest {
        let next = seq + 1;
        state.changes = match (seq, chosen) {
            (0, _) => vec![Change::new(Change::ZOE, Action::Init, vec![])],
            (_, Some(n)) => vec![Change::new(Change::ZOE, Action::Revert, vec![n])],
            _ => vec![],
        };
        progress.set(format!("writing checkpoint {next}"));
        let text = encode(&state).map_err(|e| StartError(format!("cannot encode the state: {e}")))?;
        store
            .write(next, &text)
            .map_err(|e| StartError(format!("cannot write {}: {e}", store.path(next).display())))?;
        next
    } else {
        seq
    };
    state.changes.clear();
    Ok(Loaded { state, seq, store, archive, index })
}

/// Which checkpoint `from-checkpoint N` starts from. It acts once: a later start with the
/// setting still there finds the copy of N that the first start wrote (a checkpoint recording
/// `revert` of N) and, if anything was written since, refuses rather than throw it away; if
/// nothing was, it starts from the newest with a warning.
fn from_checkpoint(store: &Store, n: u64, newest: Option<u64>) -> Result<Option<u64>, StartError> {
    let files = store.list().map_err(|e| StartError(format!("cannot list {}: {e}", store.dir().display())))?;
    if !files.iter().any(|f| f.number == n) {
        return Err(StartError(format!(
            "{FROM_CHECKPOINT_SETTING} names checkpoint {n}, which does not exist in {}; `zoe checkpoint list` shows \
             which do. If this master already started from it once, remove the setting",
            store.dir().display()
        )));
    }
    if newest == Some(n) {
        return Ok(Some(n));
    }
    let copy = files.iter().rev().map(|f| f.number).take_while(|m| *m > n).find(|m| store.reverts_to(*m) == Some(n));
    let Some(copy) = copy else { return Ok(Some(n)) };
    let newest = newest.unwrap_or(copy);
    if copy == newest {
        tracing::warn!(
            "!!! {FROM_CHECKPOINT_SETTING} is set to {n}, which was already used: checkpoint {copy} is its copy and \
             nothing was written since, so the master starts from {copy}; remove the setting, or the next start \
             refuses once changes were made !!!"
        );
        return Ok(Some(newest));
    }
    Err(StartError(format!(
        "{FROM_CHECKPOINT_SETTING} is set to {n}, which was already used: checkpoint {copy} is its copy, and {} \
         checkpoint(s) were written since (the newest is {newest}); starting from {n} again would throw away the \
         changes they hold.\nhint: remove the setting to start from the newest; to go back to {n} once more, run \
         `zoe checkpoint revert {n}` with the master stopped",
        newest - copy
    )))
}

/// What shows that a state directory without checkpoints was used by a master before: archive
/// segments, kept logs, other files among the checkpoints, or the lock file of an older Zoe.
/// `None` for a directory that is new, or holds only empty ones Zoe makes (files that Zoe does
/// not make, such as a configuration file, are no sign).
fn past_life(state_dir: &std::path::Path) -> Option<String> {
    let mut signs = Vec::new();
    for name in ["checkpoints", "archive", "logs"] {
        let Ok(entries) = std::fs::read_dir(state_dir.join(name)) else { continue };
        let mut inside: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        inside.retain(|f| !f.starts_with(zoe_checkpoints::store::TMP_PREFIX));
        inside.sort();
        if let Some(first) = inside.first() {
            let more = if inside.len() > 1 { format!(" and {} more", inside.len() - 1) } else { String::new() };
            signs.push(format!("{name}/{}{more}", shorten(first)));
        }
    }
    if state_dir.join("master.lock").exists() {
        signs.push("master.lock".into());
    }
    (!signs.is_empty()).then(|| signs.join(", "))
}

/// A file name as shown in a message: at most 64 characters.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Opens the archive and reads its index. The segments on disk must be exactly those the state
/// needs (`archived_segments`), but for those the master wrote just before a crash, before the
/// checkpoint that would have needed them (kept: what they hold is the state's or newer), and
/// after a revert (`reverted`), which keeps every segment. Moves the state's id counter past
/// every archived id (a revert to a checkpoint older than a segment must not hand out an id
/// again).
fn load_archive(
    config: &MasterConfig,
    state: &mut State,
    checkpoint: u64,
    reverted: bool,
    progress: &StartProgress,
) -> Result<(Archive, ArchiveIndex), StartError> {
    progress.set("listing the archive");
    let archive = Archive::open(&config.state_dir)
        .map_err(|e| StartError(format!("cannot open the archive in {}: {e}", config.state_dir.display())))?;
    zoe_checkpoints::remove_temp_files(archive.dir())
        .map_err(|e| StartError(format!("cannot clean {}: {e}", archive.dir().display())))?;
    let files = archive.list().map_err(|e| StartError(format!("cannot list {}: {e}", archive.dir().display())))?;
    let numbers: Vec<u64> = files.iter().map(|f| f.number).collect();
    let needed = state.archived_segments;
    let dir = archive.dir().display();
    let present = match check_numbers(&numbers, needed) {
        Ok(n) => n,
        Err(LayoutError::Missing(m)) => {
            return Err(StartError(format!(
                "archive segment {m} is missing from {dir} (checkpoint {checkpoint} needs segments 1 to {needed}); \
                 restore it from a backup"
            )))
        }
        Err(LayoutError::Stray { missing, strays }) => {
            let names: Vec<String> = strays.iter().map(|n| format!("{n:010}.ron")).collect();
            return Err(StartError(format!(
                "archive segment {} is not this state's: checkpoint {checkpoint} needs segments 1 to {needed}, and \
                 segment {missing} is missing before it (a stray file, or one of another state directory); move {} \
                 out of {dir}",
                strays.first().copied().unwrap_or(missing),
                names.join(", ")
            )));
        }
    };
    let index = archive
        .index(&state.deployment_name, present, |note| match note {
            IndexNote::Progress { done, total, reindexed, executions } => {
                if done % 64 == 0 || done == total || reindexed > 0 {
                    progress.set(format!(
                        "reading the archive's index: segment {done} of {total} ({executions} executions, {reindexed} \
                         segments indexed from their text)"
                    ));
                }
            }
            IndexNote::Info(m) => tracing::info!("{m}"),
            IndexNote::Warning(m) => tracing::warn!("{m}"),
        })
        .map_err(|e| {
            StartError(format!(
                "cannot read the archive: {e}\nhint: segments are written once and never changed; restore the file \
                 from a backup, or check it with `zoe checkpoint verify --state-dir {}`",
                config.state_dir.display()
            ))
        })?;
    if reverted {
        state.archived_segments = present;
    }
    if present > state.archived_segments {
        if let Some((n, id)) = foreign_execution(&index, state) {
            return Err(StartError(format!(
                "archive segment {n} ({}) is not this state's: it holds execution {id}, which checkpoint {checkpoint} \
                 neither holds nor was about to create, so it is not a segment written just before a crash \
                 (checkpoint {checkpoint} needs segments 1 to {needed}). Move it, and any segment after it, out of \
                 {dir}; or, if an older Zoe archived it before a revert to an older checkpoint, set \
                 `archived_segments: {present},` in checkpoint {checkpoint}",
                archive.path(n).display()
            )));
        }
        tracing::warn!(
            "archive segments {} to {present} were written just before a crash, before the checkpoint that needs \
             them: what they hold is this state's (the checkpoint's copy wins), they are kept",
            needed + 1
        );
        state.archived_segments = present;
    }
    if let Some(max) = index.max_id() {
        if max >= zoe_checkpoints::ID_LIMIT {
            return Err(StartError(format!(
                "the archive in {} holds id {max}, beyond the ids Zoe hands out (below {}); check it with \
                 `zoe checkpoint verify --state-dir {}`",
                archive.dir().display(),
                zoe_checkpoints::ID_LIMIT,
                config.state_dir.display()
            )));
        }
        state.next_id = state.next_id.max(max + 1);
    }
    Ok((archive, index))
}

fn new_state(config: &MasterConfig) -> Result<State, StartError> {
    if !is_dns_label(&config.deployment_name) {
        return Err(StartError(format!(
            "deployment name {:?} must be a lowercase DNS label (a-z, 0-9, '-')",
            config.deployment_name
        )));
    }
    let mut state = State::new(&config.deployment_name);
    let password_hash = hash_password(&config.admin_password).map_err(StartError)?;
    state.add_user(ADMIN_NAME, Role::Admin, password_hash, OffsetDateTime::now_utc());
    Ok(state)
}
