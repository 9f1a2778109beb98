//! Response bodies: small ones in memory, files streamed in chunks (throttled
//! when the client's address has a bandwidth limit), and the wrapper that
//! counts what was sent and writes the access-log line when the body is done
//! or dropped (a client gone mid-download is logged with what it got).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::access_log::{AccessLog, Record};
use super::limits::{self, Client};

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

struct Reading {
    file: Arc<File>,
    offset: u64,
    remaining: u64,
    throttle: Throttle,
}

/// `len` bytes of `file` from `offset`, read in chunks off the async threads.
pub fn file(file: File, offset: u64, len: u64, throttle: Throttle) -> Body {
    StreamBody::new(chunks(file, offset, len, throttle).map_ok(Frame::data)).boxed_unsync()
}

/// A batch (protocol 1.1): each file as its length (8 bytes, big-endian)
/// then `length` bytes of it, in the order given.
pub fn files(files: Vec<(File, u64)>, throttle: Throttle) -> Body {
    let stream = futures_util::stream::iter(files).flat_map(move |(file, len)| {
        let prefix = Bytes::copy_from_slice(&len.to_be_bytes());
        futures_util::stream::once(async move { Ok(prefix) }).chain(chunks(
            file,
            0,
            len,
            throttle.clone(),
        ))
    });
    StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync()
}

fn chunks(
    file: File,
    offset: u64,
    len: u64,
    throttle: Throttle,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let state = Reading {
        file: Arc::new(file),
        offset,
        remaining: len,
        throttle,
    };
    futures_util::stream::try_unfold(state, next_chunk)
}

async fn next_chunk(mut st: Reading) -> std::io::Result<Option<(Bytes, Reading)>> {
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
    let (file, offset) = (Arc::clone(&st.file), st.offset);
    let chunk = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0; want];
        let n = file.read_at(&mut buf, offset)?;
        buf.truncate(n);
        Ok::<_, std::io::Error>(buf)
    })
    .await
    .map_err(std::io::Error::other)??;
    if chunk.is_empty() {
        // The file shrank under us: end the response short, the client retries.
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    st.offset += chunk.len() as u64;
    st.remaining -= chunk.len() as u64;
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
