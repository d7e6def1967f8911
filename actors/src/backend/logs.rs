//! Reading logs, shared by every back end: the tail of a log kept on disk when its container is
//! removed (bounded per service and, oldest first, in total: [`KeptLogs`]), and logs streamed to
//! whoever asked for them.
//!
//! Nothing here knows where a log comes from: the callers open it, with `docker.logs(...)` for a
//! container or `docker.service_logs(...)` for a Swarm service (both take the same options and
//! give the same stream).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::LogsOptions;
use futures_util::{Stream, StreamExt};

use super::client::{classify, human_duration, CallError, Client};
use crate::protocol::{LogStream, ServiceLogs};

const LOG_CHANNEL_CAPACITY: usize = 64;

/// Reads the last `lines` lines of a log, keeping at most `max_bytes` of its end. Returns
/// the bytes and how many line ends were seen.
///
/// `open` opens the log with the options it is given; `what` is what reading it is called in
/// errors (e.g. `reading the log of container x`). The read is one engine call, bounded by the
/// client's call timeout.
pub(crate) async fn read_log<S>(
    client: &Client,
    what: &str,
    lines: usize,
    max_bytes: usize,
    open: impl FnOnce(LogsOptions) -> S,
) -> Result<(Vec<u8>, usize), CallError>
where
    S: Stream<Item = Result<LogOutput, BollardError>>,
{
    let options =
        LogsOptions { follow: false, stdout: true, stderr: true, tail: lines.to_string(), ..Default::default() };
    let reading = async {
        let mut buf: Vec<u8> = Vec::new();
        let mut newlines = 0usize;
        let mut stream = std::pin::pin!(open(options));
        while let Some(item) = stream.next().await {
            let chunk = item?.into_bytes();
            newlines += chunk.iter().filter(|b| **b == b'\n').count();
            buf.extend_from_slice(&chunk);
            if buf.len() > max_bytes.saturating_mul(2).max(64 * 1024) {
                let cut = buf.len() - max_bytes;
                buf.drain(..cut);
            }
        }
        if buf.len() > max_bytes {
            let cut = buf.len() - max_bytes;
            buf.drain(..cut);
        }
        Ok::<_, BollardError>((buf, newlines))
    };
    client.call_bounded(what, reading).await
}

/// The log tails kept after containers are removed, `<dir>/<service_id>.log`: each at most
/// `per_service` bytes, all together at most `total` bytes (the oldest go first), so that they
/// cannot fill the state disk whatever containers write.
pub(crate) struct KeptLogs {
    dir: PathBuf,
    per_service: usize,
    total: u64,
    /// What is on disk, read from the folder the first time a tail is kept.
    index: Mutex<Option<LogIndex>>,
}

/// The kept logs by age (modification time, then service id) and their sizes.
#[derive(Default)]
struct LogIndex {
    by_age: BTreeSet<(SystemTime, u64)>,
    files: HashMap<u64, (SystemTime, u64)>,
    bytes: u64,
}

impl LogIndex {
    fn insert(&mut self, id: u64, modified: SystemTime, size: u64) {
        self.remove(id);
        self.by_age.insert((modified, id));
        self.files.insert(id, (modified, size));
        self.bytes += size;
    }

    fn remove(&mut self, id: u64) {
        if let Some((modified, size)) = self.files.remove(&id) {
            self.by_age.remove(&(modified, id));
            self.bytes -= size;
        }
    }

    /// The kept logs of a folder (files named `<number>.log`).
    fn read(dir: &Path) -> LogIndex {
        let mut index = LogIndex::default();
        let Ok(entries) = std::fs::read_dir(dir) else { return index };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let id = name.to_str().and_then(|n| n.strip_suffix(".log")).and_then(|n| n.parse::<u64>().ok());
            let Some(id) = id else { continue };
            if let Ok(meta) = entry.metadata() {
                index.insert(id, meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len());
            }
        }
        index
    }
}

impl KeptLogs {
    /// Tails of at most `per_service` bytes (0: none kept) in `dir`, at most `total` bytes in
    /// all.
    pub(crate) fn new(dir: PathBuf, per_service: usize, total: u64) -> Self {
        KeptLogs { dir, per_service, total, index: Mutex::new(None) }
    }

    /// Writes a tail durably and privately (logs may hold secrets: mode 0600 in a 0700 folder),
    /// then removes the oldest others until the total is within the budget. Blocking.
    fn keep(&self, service_id: u64, data: &[u8]) -> Result<(), String> {
        write_log_file(&self.dir, service_id, data)?;
        let path = self.dir.join(format!("{service_id}.log"));
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap_or_else(|_| SystemTime::now());
        let mut guard = super::client::lock(&self.index);
        let index = guard.get_or_insert_with(|| LogIndex::read(&self.dir));
        index.insert(service_id, modified, data.len() as u64);
        while index.bytes > self.total {
            let Some(&(_, oldest)) = index.by_age.iter().find(|(_, id)| *id != service_id) else { break };
            let gone = self.dir.join(format!("{oldest}.log"));
            match std::fs::remove_file(&gone) {
                Ok(()) => tracing::debug!(service_id = oldest, "kept log removed: the kept logs are over their budget"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove the old log {}: {e}", gone.display())),
            }
            index.remove(oldest);
        }
        Ok(())
    }
}

/// Keeps the last `log_tail_bytes` of a log in `logs` (see [`KeptLogs`]); returns whether it
/// did (nothing is kept when the per-service size is 0).
/// Docker can only cut a log by lines, so this asks for a few lines first and for more only
/// when they do not add up to enough bytes. `what` and `open` are as for [`read_log`].
pub(crate) async fn save_log_tail<S>(
    client: &Client,
    what: &str,
    logs: &std::sync::Arc<KeptLogs>,
    service_id: u64,
    open: impl Fn(LogsOptions) -> S,
) -> Result<bool, String>
where
    S: Stream<Item = Result<LogOutput, BollardError>>,
{
    let max = logs.per_service;
    if max == 0 {
        return Ok(false);
    }
    // At least 100 lines, at most `max` (which may be below 100).
    let mut lines = (max / 64).max(100).min(max);
    let tail = loop {
        let (buf, seen) = read_log(client, what, lines, max, &open).await.map_err(|e| e.to_string())?;
        // Every line takes at least one byte, so `max` lines always hold `max` bytes.
        if buf.len() >= max || seen < lines || lines >= max {
            break buf;
        }
        let estimate = max.saturating_mul(lines) / buf.len().max(1);
        lines = estimate.saturating_add(estimate / 4).max(lines.saturating_mul(2)).min(max);
    };
    let logs = logs.clone();
    let written = tokio::task::spawn_blocking(move || logs.keep(service_id, &tail))
        .await
        .map_err(|e| format!("the log writer failed: {e}"))?;
    written?;
    Ok(true)
}

/// Writes a log tail durably and privately (logs may hold secrets): mode 0600 in a 0700
/// directory.
fn write_log_file(dir: &Path, service_id: u64, data: &[u8]) -> Result<(), String> {
    zoe_checkpoints::private_dir(dir).map_err(|e| format!("cannot create the log directory {}: {e}", dir.display()))?;
    let path = dir.join(format!("{service_id}.log"));
    zoe_checkpoints::write_atomic(&path, data).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The log of `msg` (the inspection `found` showed whether its container or service is there:
/// missing is `no such container`), streamed as [`stream_log`] does; `open` opens it with the
/// options `msg` asks for (both streams, its tail, all by default, followed or not).
pub(crate) fn read_service_log<T, S>(
    msg: ServiceLogs,
    found: Result<T, CallError>,
    open: impl FnOnce(String, LogsOptions) -> S + 'static,
    limit: Duration,
) -> Result<LogStream, String>
where
    S: Stream<Item = Result<LogOutput, BollardError>> + 'static,
{
    match found {
        Ok(_) => {}
        Err(e) if e.is_not_found() => return Err("no such container".to_string()),
        Err(e) => return Err(e.to_string()),
    }
    let options = LogsOptions {
        follow: msg.follow,
        stdout: true,
        stderr: true,
        tail: msg.tail_lines.map_or_else(|| "all".to_string(), |n| n.to_string()),
        ..Default::default()
    };
    let name = msg.container;
    Ok(stream_log(move || open(name, options), msg.follow, limit))
}

/// Streams a log: feeds a [`LogStream`] from a task of its own, chunk by chunk, until the log
/// ends, fails (the error is the last item) or the receiver is dropped. `open` opens the log, in
/// that task. A followed log may stay silent as long as it likes; otherwise each chunk must come
/// within `limit`.
pub(crate) fn stream_log<S>(open: impl FnOnce() -> S + 'static, follow: bool, limit: Duration) -> LogStream
where
    S: Stream<Item = Result<LogOutput, BollardError>> + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(LOG_CHANNEL_CAPACITY);
    actix::spawn(async move {
        let mut stream = std::pin::pin!(open());
        loop {
            let item = tokio::select! {
                _ = tx.closed() => break,
                item = next_with_limit(&mut stream, (!follow).then_some(limit)) => item,
            };
            let out = match item {
                Ok(Some(Ok(chunk))) => Ok(chunk.into_bytes().to_vec()),
                Ok(Some(Err(e))) => Err(classify(e).to_string()),
                Ok(None) => break,
                Err(()) => Err(format!("Docker sent nothing for {} while reading the log", human_duration(limit))),
            };
            let last = out.is_err();
            if tx.send(out).await.is_err() || last {
                break;
            }
        }
    });
    rx
}

/// The next item of a stream, optionally within a time limit (`Err(())` when it passed).
async fn next_with_limit<S: futures_util::Stream + Unpin>(
    stream: &mut S,
    limit: Option<Duration>,
) -> Result<Option<S::Item>, ()> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, stream.next()).await.map_err(|_| ()),
        None => Ok(stream.next().await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_logs_stay_within_their_budget_oldest_first() {
        let dir = std::env::temp_dir().join(format!("zoe-kept-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A log kept by an earlier master, older than anything written now.
        std::fs::write(dir.join("1.log"), vec![b'a'; 400]).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options().write(true).open(dir.join("1.log")).unwrap().set_modified(old).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a log").unwrap();
        let logs = KeptLogs::new(dir.clone(), 400, 1000);
        logs.keep(2, &[b'b'; 400]).unwrap();
        assert!(dir.join("1.log").exists(), "800 bytes: within the budget");
        logs.keep(3, &[b'c'; 300]).unwrap();
        assert!(!dir.join("1.log").exists(), "1,100 bytes: the oldest goes");
        assert!(dir.join("2.log").exists() && dir.join("3.log").exists());
        std::thread::sleep(Duration::from_millis(20));
        // Rewritten, a log counts once, with its new size and age.
        logs.keep(2, &[b'b'; 100]).unwrap();
        logs.keep(4, &[b'd'; 400]).unwrap();
        let mut left: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        assert_eq!(left, ["2.log", "3.log", "4.log", "notes.txt"], "800 bytes kept");
        logs.keep(5, &[b'e'; 400]).unwrap();
        assert!(!dir.join("3.log").exists(), "3 is now the oldest");
        let total: u64 =
            (2..=5).filter_map(|i| std::fs::metadata(dir.join(format!("{i}.log"))).ok()).map(|m| m.len()).sum();
        assert!(total <= 1000, "{total}");
        assert_eq!(
            std::fs::read(dir.join("notes.txt")).unwrap(),
            b"not a log",
            "only kept logs are counted and removed"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
