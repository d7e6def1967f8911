//! Reading logs, shared by every back end: the tail of a log kept on disk when its container is
//! removed, and logs streamed to whoever asked for them.
//!
//! Nothing here knows where a log comes from: the callers open it, with `docker.logs(...)` for a
//! container or `docker.service_logs(...)` for a Swarm service (both take the same options and
//! give the same stream).

use std::path::Path;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::LogsOptions;
use futures_util::{Stream, StreamExt};

use super::client::{classify, human_duration, CallError, Client};
use crate::protocol::LogStream;

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
    client.call(what, client.call_timeout(), reading).await
}

/// Keeps the last `max` bytes of a log (a back end's `log_tail_bytes`) in
/// `<dir>/<service_id>.log`; returns whether it did (`max` 0: keep nothing).
/// Docker can only cut a log by lines, so this asks for a few lines first and for more only
/// when they do not add up to enough bytes. `what` and `open` are as for [`read_log`].
pub(crate) async fn save_log_tail<S>(
    client: &Client,
    what: &str,
    max: usize,
    dir: &Path,
    service_id: u64,
    open: impl Fn(LogsOptions) -> S,
) -> Result<bool, String>
where
    S: Stream<Item = Result<LogOutput, BollardError>>,
{
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
    let dir = dir.to_path_buf();
    let written = tokio::task::spawn_blocking(move || write_log_file(&dir, service_id, &tail))
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
