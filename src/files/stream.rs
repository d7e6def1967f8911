//! The async side of transfers: the disk is read and written by one blocking thread per
//! transfer, in batches of [`CHUNK`], fed by (or feeding) a bounded channel, never by the async
//! threads chunk by chunk (`tokio::fs` per network chunk reached a third of `cp`'s rate). At most
//! [`DEPTH`] batches wait in a channel: a transfer holds a few MiB whatever its size.

use std::io::{self, Write};
use std::time::Duration;

use actix_web::web::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::{read_at, FileError, Upload};

/// Bytes read from or written to the disk at once.
pub const CHUNK: usize = 1 << 20;
/// Batches waiting in a transfer's channel.
const DEPTH: usize = 4;
/// After an upload is refused midway, how much more of its body is read (and thrown away) so
/// that a client that sends it all before reading the answer still gets it.
const DRAIN_BYTES: u64 = 256 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// The bytes a blocking `job` writes to its writer, as a stream for a response body. The job
/// runs on a blocking thread; it stops (its writes fail) when the stream is dropped (the client
/// went away). An error of the job ends the stream with that error.
pub fn produce<F>(job: F) -> impl Stream<Item = Result<Bytes, io::Error>> + 'static
where
    F: FnOnce(&mut Sink) -> io::Result<()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(DEPTH);
    tokio::task::spawn_blocking(move || {
        let mut sink = Sink { tx, buf: BytesMut::new() };
        let done = job(&mut sink).and_then(|()| sink.flush());
        if let Err(e) = done {
            if e.kind() != io::ErrorKind::BrokenPipe {
                tracing::warn!(error = %e, "a download stopped");
            }
            let _ = sink.tx.blocking_send(Err(e));
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

/// Where a blocking job writes a response body: batches of [`CHUNK`] go to the stream.
pub struct Sink {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: BytesMut,
}

impl Sink {
    /// Sends `bytes` as they are (after what is buffered).
    pub fn send(&mut self, bytes: Bytes) -> io::Result<()> {
        self.flush()?;
        self.tx.blocking_send(Ok(bytes)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
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
            self.tx
                .blocking_send(Ok(batch))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let batch = self.buf.split().freeze();
            self.tx
                .blocking_send(Ok(batch))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        }
        Ok(())
    }
}

/// `len` bytes of `file` from `start`, as a response body.
pub fn file_body(file: std::fs::File, start: u64, len: u64) -> impl Stream<Item = Result<Bytes, io::Error>> + 'static {
    produce(move |sink| {
        let mut done = 0u64;
        while done < len {
            let want = usize::try_from((len - done).min(CHUNK as u64)).unwrap_or(CHUNK);
            let mut batch = BytesMut::zeroed(want);
            let got = read_at(&file, &mut batch, start + done)?;
            if got == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while it was sent"));
            }
            batch.truncate(got);
            done += got as u64;
            sink.send(batch.freeze())?;
        }
        Ok(())
    })
}

/// What the writing thread is told.
enum Batch {
    Bytes(Bytes),
    /// The body ended: put the file in place.
    End,
}

/// Writes a request body into `upload` and puts the file in place; on any failure (the
/// upload's limit, a full disk, a body cut short), nothing is left of it. Returns the bytes
/// written.
pub async fn receive<S, E>(upload: Upload, mut body: S) -> Result<u64, FileError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let (tx, mut rx) = mpsc::channel::<Batch>(DEPTH);
    let writer = tokio::task::spawn_blocking(move || {
        let mut upload = upload;
        while let Some(batch) = rx.blocking_recv() {
            match batch {
                Batch::Bytes(b) => upload.write(&b)?,
                Batch::End => return upload.commit(),
            }
        }
        // The sender went without saying the end: the body was cut; the upload is dropped.
        Err(FileError::Io("the upload stopped".into()))
    });
    let mut buf = BytesMut::new();
    let mut cut = None;
    let mut sent_all = true;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                cut = Some(format!("the upload was cut: {e}"));
                break;
            }
        };
        if buf.capacity() == 0 {
            buf.reserve(CHUNK);
        }
        buf.extend_from_slice(&chunk);
        if buf.len() >= CHUNK && tx.send(Batch::Bytes(buf.split().freeze())).await.is_err() {
            sent_all = false;
            break;
        }
    }
    if cut.is_none() && sent_all {
        if !buf.is_empty() && tx.send(Batch::Bytes(buf.split().freeze())).await.is_err() {
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
