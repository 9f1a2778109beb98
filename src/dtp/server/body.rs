//! Response bodies: small ones in memory, files in chunks (throttled when
//! the client's address has a bandwidth limit; a `GET`'s file by
//! `sendfile(2)`, see [`super::sendfile`]), and the wrapper that counts what
//! was sent and writes the access-log line when the body is done or dropped
//! (a client gone mid-download is logged with what it got).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::access_log::{AccessLog, Record};
use super::batch::Files;
use super::descriptors::HeldFile;
use super::limits::{self, Client};
use super::sendfile::{self, Outbox};

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed_unsync()
}

/// Where a throttled download takes its bytes from, and the current limit.
#[derive(Clone)]
pub struct Throttle {
    pub client: Arc<Client>,
    /// Bytes per second now (a reload may change it mid-download).
    pub rate: Arc<dyn Fn() -> Option<u64> + Send + Sync>,
}

/// A large file of a batch being sent in chunks; opened with its first.
struct Reading {
    index: usize,
    file: Option<File>,
    offset: u64,
    remaining: u64,
    throttle: Throttle,
}

/// `len` bytes of `file` from `offset`, sent by the connection's socket
/// straight from the page cache: the body itself only hands hyper
/// placeholders, chunk by chunk, throttled as any other body.
pub fn file(
    file: HeldFile,
    offset: u64,
    len: u64,
    throttle: Throttle,
    outbox: Arc<Outbox>,
) -> Body {
    static IDS: AtomicU64 = AtomicU64::new(0);
    let state = Placeholders {
        file: Arc::new(file),
        offset,
        remaining: len,
        throttle,
        outbox,
        id: IDS.fetch_add(1, Ordering::Relaxed),
        registered: false,
    };
    let stream = futures_util::stream::try_unfold(state, next_placeholder);
    StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync()
}

/// A file body in flight: what is left to hand out.
struct Placeholders {
    file: Arc<HeldFile>,
    offset: u64,
    remaining: u64,
    throttle: Throttle,
    outbox: Arc<Outbox>,
    id: u64,
    /// Its range is in the outbox (from the first chunk on: a body built
    /// and never sent, as a `HEAD`'s, must not stand in line there).
    registered: bool,
}

async fn next_placeholder(mut st: Placeholders) -> std::io::Result<Option<(Bytes, Placeholders)>> {
    if st.remaining == 0 {
        return Ok(None);
    }
    if !st.registered {
        st.outbox
            .register(st.id, Arc::clone(&st.file), st.offset, st.remaining);
        st.registered = true;
        sendfile::read_ahead(&st.file, st.offset, sendfile::MAX_CHUNK as u64);
    }
    let rate = (st.throttle.rate)();
    let size = match rate {
        None => sendfile::MAX_CHUNK,
        Some(_) => limits::chunk_size(rate),
    };
    let want = (size as u64).min(st.remaining);
    if let Some(rate) = rate {
        let wait = st.throttle.client.reserve(want, rate);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    st.offset += want;
    st.remaining -= want;
    // The chunk after this one, while this one goes out.
    sendfile::read_ahead(&st.file, st.offset, want);
    Ok(Some((sendfile::placeholder(want as usize), st)))
}

impl Drop for Placeholders {
    fn drop(&mut self) {
        if self.registered && self.remaining > 0 {
            self.outbox.cancel(self.id, self.remaining);
        }
    }
}

/// A batch (protocol 1.1): each file as its length (8 bytes, big-endian)
/// then `length` bytes of it, in the order given. Each file is opened when
/// its turn comes and closed when sent; small files are read several at a
/// time, in one trip to a blocking thread.
pub fn files(files: Files, throttle: Throttle) -> Body {
    let state = Batch {
        files: Arc::new(files),
        next: 0,
        current: None,
        throttle,
    };
    let stream = futures_util::stream::try_unfold(state, next_piece);
    StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync()
}

struct Batch {
    files: Arc<Files>,
    /// The first file not yet started.
    next: usize,
    /// A large file being sent in chunks.
    current: Option<Reading>,
    throttle: Throttle,
}

async fn next_piece(mut st: Batch) -> std::io::Result<Option<(Bytes, Batch)>> {
    if let Some(reading) = st.current.take()
        && let Some((chunk, reading)) = next_chunk(reading, &st.files).await?
    {
        st.current = Some(reading);
        return Ok(Some((chunk, st)));
    }
    let rate = (st.throttle.rate)();
    let group = limits::chunk_size(rate) as u64;
    if st.next == st.files.count() {
        return Ok(None);
    }
    let len = st.files.size(st.next);
    if 8 + len > group {
        st.current = Some(Reading {
            index: st.next,
            file: None,
            offset: 0,
            remaining: len,
            throttle: st.throttle.clone(),
        });
        st.next += 1;
        return Ok(Some((Bytes::copy_from_slice(&len.to_be_bytes()), st)));
    }
    let first = st.next;
    let mut bytes = 0;
    while st.next < st.files.count() && bytes + 8 + st.files.size(st.next) <= group {
        bytes += 8 + st.files.size(st.next);
        st.next += 1;
    }
    if let Some(rate) = rate {
        let wait = st.throttle.client.reserve(bytes, rate);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    let (files, small) = (Arc::clone(&st.files), first..st.next);
    let piece = tokio::task::spawn_blocking(move || read_small(&files, small, bytes as usize))
        .await
        .map_err(std::io::Error::other)??;
    Ok(Some((piece, st)))
}

/// Small files whole, each after its length, opened one at a time.
fn read_small(
    files: &Files,
    small: std::ops::Range<usize>,
    bytes: usize,
) -> std::io::Result<Bytes> {
    let mut out = Vec::with_capacity(bytes);
    for i in small {
        let len = files.size(i);
        let file = files.open(i)?;
        out.extend_from_slice(&len.to_be_bytes());
        let start = out.len();
        out.resize(start + len as usize, 0);
        // A file that shrank ends the response short: the client asks again.
        file.read_exact_at(&mut out[start..], 0)?;
    }
    Ok(Bytes::from(out))
}

async fn next_chunk(
    mut st: Reading,
    files: &Arc<Files>,
) -> std::io::Result<Option<(Bytes, Reading)>> {
    if st.remaining == 0 {
        return Ok(None);
    }
    let rate = (st.throttle.rate)();
    let want = (limits::chunk_size(rate) as u64).min(st.remaining) as usize;
    if let Some(rate) = rate {
        let wait = st.throttle.client.reserve(want as u64, rate);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    let (files, index, file, offset) = (Arc::clone(files), st.index, st.file.take(), st.offset);
    let (file, chunk) = tokio::task::spawn_blocking(move || {
        let file = match file {
            Some(file) => file,
            None => files.open(index)?,
        };
        let mut buf = vec![0; want];
        let n = file.read_at(&mut buf, offset)?;
        buf.truncate(n);
        Ok::<_, std::io::Error>((file, buf))
    })
    .await
    .map_err(std::io::Error::other)??;
    if chunk.is_empty() {
        // The file shrank under us: end the response short, the client retries.
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    st.offset += chunk.len() as u64;
    st.remaining -= chunk.len() as u64;
    // Closed once sent: the batch's descriptor is for the next file.
    st.file = (st.remaining > 0).then_some(file);
    Ok(Some((Bytes::from(chunk), st)))
}

/// A body that logs its request once it is finished with.
pub struct Logged {
    inner: Body,
    sent: u64,
    pending: Option<(Arc<AccessLog>, Record, Instant)>,
}

impl Logged {
    pub fn new(inner: Body, log: Arc<AccessLog>, record: Record, started: Instant) -> Logged {
        Logged {
            inner,
            sent: 0,
            pending: Some((log, record, started)),
        }
    }
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &frame
            && let Some(data) = f.data_ref()
        {
            self.sent += data.len() as u64;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some((log, mut record, started)) = self.pending.take() {
            record.bytes = self.sent;
            record.duration = started.elapsed();
            log.write(&record);
        }
    }
}
