//! The async side of transfers: the disk is read and written by one blocking thread per
//! transfer, in batches of [`CHUNK`] (an upload's batch is the network's chunks as they came,
//! written with one `writev`, never copied together), fed by (or feeding) a bounded channel, never by the async
//! threads chunk by chunk (`tokio::fs` per network chunk reached a third of `cp`'s rate). At most
//! [`DEPTH`] batches wait in a channel: a transfer holds a few MiB whatever its size. At most
//! [`MAX_TRANSFERS`] run at once (each holds a thread), and a client that stops sending or reading
//! for [`STALL`] loses its transfer.

use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::web::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::{FileError, Upload};

/// Bytes read from or written to the disk at once.
pub const CHUNK: usize = 1 << 20;
/// Batches waiting in a transfer's channel.
const DEPTH: usize = 4;
/// After an upload is refused midway, how much more of its body is read (and thrown away) so
/// that a client that sends it all before reading the answer still gets it.
const DRAIN_BYTES: u64 = 256 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(10);
/// Transfers (uploads, downloads, archives) under way at once in this master.
pub const MAX_TRANSFERS: usize = 64;
/// How long a client may stop sending an upload or reading a download.
pub const STALL: Duration = Duration::from_secs(120);

static TRANSFERS: AtomicUsize = AtomicUsize::new(0);

/// A place among the [`MAX_TRANSFERS`] transfers, held until dropped.
pub struct Turn(());

impl Turn {
    /// A place, if one is free.
    pub fn take() -> Option<Turn> {
        let taken =
            TRANSFERS.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_TRANSFERS).then_some(n + 1));
        taken.ok().map(|_| Turn(()))
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        TRANSFERS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The bytes a blocking `job` writes to its writer, as a stream for a response body. The job
/// runs on a blocking thread; it stops (its writes fail) when the stream is dropped (the client
/// went away). An error of the job ends the stream with that error.
pub fn produce<F>(turn: Turn, job: F) -> impl Stream<Item = Result<Bytes, io::Error>> + 'static
where
    F: FnOnce(&mut Sink) -> io::Result<()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(DEPTH);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let mut sink = Sink { tx, buf: BytesMut::new(), runtime };
        let done = job(&mut sink).and_then(|()| sink.flush());
        if let Err(e) = done {
            if e.kind() != io::ErrorKind::BrokenPipe {
                tracing::warn!(error = %e, "a download stopped");
            }
            let _ = sink.pass(Err(e));
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

/// Where a blocking job writes a response body: batches of [`CHUNK`] go to the stream.
pub struct Sink {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: BytesMut,
    runtime: tokio::runtime::Handle,
}

impl Sink {
    /// Sends `bytes` as they are (after what is buffered).
    pub fn send(&mut self, bytes: Bytes) -> io::Result<()> {
        self.flush()?;
        self.pass(Ok(bytes))
    }

    /// Passes one item to the stream, waiting at most [`STALL`] for room.
    fn pass(&self, item: io::Result<Bytes>) -> io::Result<()> {
        let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "the client went away");
        match self.runtime.block_on(tokio::time::timeout(STALL, self.tx.send(item))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(gone()),
            Err(_) => Err(io::Error::new(io::ErrorKind::BrokenPipe, "the client stopped reading")),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.capacity() == 0 {
            self.buf.reserve(CHUNK);
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            let batch = self.buf.split().freeze();
            self.pass(Ok(batch))?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let batch = self.buf.split().freeze();
            self.pass(Ok(batch))?;
        }
        Ok(())
    }
}

/// `len` bytes of `file` from `start`, as a response body (read in order, into buffers that are
/// not zeroed first).
pub fn file_body(
    turn: Turn,
    file: std::fs::File,
    start: u64,
    len: u64,
) -> impl Stream<Item = Result<Bytes, io::Error>> + 'static {
    produce(turn, move |sink| {
        let mut file = file;
        io::Seek::seek(&mut file, io::SeekFrom::Start(start))?;
        let mut done = 0u64;
        while done < len {
            let want = (len - done).min(CHUNK as u64);
            let mut batch = Vec::with_capacity(usize::try_from(want).unwrap_or(CHUNK));
            io::Read::read_to_end(&mut io::Read::take(&mut file, want), &mut batch)?;
            if batch.is_empty() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while it was sent"));
            }
            done += batch.len() as u64;
            sink.send(Bytes::from(batch))?;
        }
        Ok(())
    })
}

/// What the writing thread is told.
enum Batch {
    /// The network's chunks as they came, about [`CHUNK`] of them together.
    Bytes(Vec<Bytes>),
    /// The body ended: put the file in place.
    End,
}

/// Writes a request body into `upload` and puts the file in place; on any failure (the
/// upload's limit, a full disk, a body cut short), nothing is left of it. Returns the bytes
/// written.
pub async fn receive<S, E>(turn: Turn, upload: Upload, mut body: S) -> Result<u64, FileError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let (tx, mut rx) = mpsc::channel::<Batch>(DEPTH);
    let writer = tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let mut upload = upload;
        while let Some(batch) = rx.blocking_recv() {
            match batch {
                Batch::Bytes(parts) => {
                    let mut slices: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
                    upload.write_parts(&mut slices)?
                }
                Batch::End => return upload.commit(),
            }
        }
        // The sender went without saying the end: the body was cut; the upload is dropped.
        Err(FileError::Io("the upload stopped".into()))
    });
    let (mut parts, mut pending) = (Vec::new(), 0usize);
    let mut cut = None;
    let mut sent_all = true;
    loop {
        let chunk = match tokio::time::timeout(STALL, body.next()).await {
            Ok(None) => break,
            Ok(Some(Ok(c))) => c,
            Ok(Some(Err(e))) => {
                cut = Some(format!("the upload was cut: {e}"));
                break;
            }
            Err(_) => {
                cut = Some(format!("the upload stopped: nothing came for {} s", STALL.as_secs()));
                break;
            }
        };
        pending += chunk.len();
        parts.push(chunk);
        if pending >= CHUNK {
            pending = 0;
            if tx.send(Batch::Bytes(std::mem::take(&mut parts))).await.is_err() {
                sent_all = false;
                break;
            }
        }
    }
    if cut.is_none() && sent_all {
        if !parts.is_empty() && tx.send(Batch::Bytes(parts)).await.is_err() {
            sent_all = false;
        }
        if sent_all {
            let _ = tx.send(Batch::End).await;
        }
    }
    drop(tx);
    let written = writer.await.map_err(|e| FileError::Io(format!("the writing thread failed: {e}")))?;
    if let Some(why) = cut {
        return Err(FileError::Incomplete(why));
    }
    if written.is_err() && !sent_all {
        drain(&mut body).await;
    }
    written
}

/// Reads and throws away the rest of a refused body, within bounds.
async fn drain<S, E>(body: &mut S)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let reading = async {
        let mut read = 0u64;
        while let Some(Ok(chunk)) = body.next().await {
            read += chunk.len() as u64;
            if read > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, reading).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_are_bounded_and_their_places_come_back() {
        let turns: Vec<Turn> = (0..MAX_TRANSFERS).map_while(|_| Turn::take()).collect();
        assert_eq!(turns.len(), MAX_TRANSFERS);
        assert!(Turn::take().is_none(), "one more is refused");
        drop(turns);
        assert!(Turn::take().is_some(), "places come back when transfers end");
    }
}
