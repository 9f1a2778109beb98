//! File bodies sent with `sendfile(2)`: the bytes go from the page cache to
//! the socket without ever being copied into the service, which on a small
//! host is CPU the client side needs (reading into a buffer and writing it
//! out again cost two copies of every byte, and a blocking-thread trip per
//! chunk).
//!
//! hyper only knows bodies made of byte buffers. A file body therefore hands
//! hyper *placeholders*: slices of [`PLACEHOLDER`], a static region nobody
//! reads, as long as the file's chunks, so hyper frames and counts them as
//! usual (`Content-Length`, keep-alive, the access log, the bandwidth limit
//! between chunks). The connection's socket wrapper, [`ZeroCopy`], knows the
//! region by address: where hyper asks it to write placeholder bytes, it
//! sends that many bytes of the file instead. Which file and offset: the
//! connection's [`Outbox`], where each body registers its range as hyper
//! starts to send it. HTTP/1.1 sends one response after the other, so the
//! ranges are consumed in the order they were registered.
//!
//! hyper must pass the body's buffers through without copying them; it does
//! with its queue write strategy (vectored writes), which the connection
//! asks for explicitly ([`hyper::server::conn::http1::Builder::writev`]).
//! Placeholder bytes without a registered range fail the connection rather
//! than send anything else. A file system that cannot `sendfile` gets a
//! read and a write instead.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::num::NonZeroU64;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use rustix::io::Errno;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use super::descriptors::HeldFile;

/// The largest placeholder, so the largest chunk one body frame stands for.
/// It lives in `.bss` and is never touched, so it costs no memory.
pub const MAX_CHUNK: usize = 4 << 20;

static PLACEHOLDER: [u8; MAX_CHUNK] = [0; MAX_CHUNK];

/// What one read reads where `sendfile` cannot be used.
const COPY_CHUNK: usize = 256 * 1024;

/// A stand-in for the next `len` bytes of the registered file.
pub fn placeholder(len: usize) -> Bytes {
    Bytes::from_static(&PLACEHOLDER[..len])
}

/// Is `buf` (a part of) a placeholder?
fn is_placeholder(buf: &[u8]) -> bool {
    let start = PLACEHOLDER.as_ptr() as usize;
    let at = buf.as_ptr() as usize;
    at >= start && at + buf.len() <= start + MAX_CHUNK
}

/// The file ranges a connection's placeholders stand for, oldest first.
#[derive(Default)]
pub struct Outbox {
    ranges: Mutex<VecDeque<Range>>,
}

struct Range {
    id: u64,
    file: Arc<HeldFile>,
    offset: u64,
    remaining: u64,
}

impl Outbox {
    /// The next `len` placeholder bytes are `file` from `offset` on; `id`
    /// names the range for [`Outbox::cancel`].
    pub fn register(&self, id: u64, file: Arc<HeldFile>, offset: u64, len: u64) {
        if len > 0 {
            self.lock().push_back(Range {
                id,
                file,
                offset,
                remaining: len,
            });
        }
    }

    /// A body dropped before it handed out `unsent` of its bytes: they will
    /// never come, so the ranges after it must not wait for them.
    pub fn cancel(&self, id: u64, unsent: u64) {
        let mut ranges = self.lock();
        if let Some(i) = ranges.iter().position(|r| r.id == id) {
            let range = &mut ranges[i];
            range.remaining = range.remaining.saturating_sub(unsent);
            if range.remaining == 0 {
                ranges.remove(i);
            }
        }
    }

    /// The file and offset of the next placeholder byte, and how many follow.
    fn next(&self) -> Option<(Arc<HeldFile>, u64, u64)> {
        let ranges = self.lock();
        let r = ranges.front()?;
        Some((Arc::clone(&r.file), r.offset, r.remaining))
    }

    fn consumed(&self, n: u64) {
        let mut ranges = self.lock();
        if let Some(r) = ranges.front_mut() {
            r.offset += n;
            r.remaining -= n.min(r.remaining);
            if r.remaining == 0 {
                ranges.pop_front();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Range>> {
        self.ranges.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Ask the kernel to read `len` bytes from `offset` ahead, so `sendfile`,
/// which runs on the async threads, rarely waits for a disk.
pub fn read_ahead(file: &File, offset: u64, len: u64) {
    let _ = rustix::fs::fadvise(
        file,
        offset,
        NonZeroU64::new(len),
        rustix::fs::Advice::WillNeed,
    );
}

/// The connection's socket: placeholder bytes become `sendfile(2)` of the
/// registered file, all other bytes are written as they are.
pub struct ZeroCopy {
    stream: TcpStream,
    outbox: Arc<Outbox>,
}

impl ZeroCopy {
    pub fn new(stream: TcpStream, outbox: Arc<Outbox>) -> ZeroCopy {
        ZeroCopy { stream, outbox }
    }

    /// Up to `want` bytes of the registered file, straight from the page cache.
    fn poll_send_file(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        let Some((file, offset, remaining)) = self.outbox.next() else {
            return Poll::Ready(Err(io::Error::other(
                "a file body's bytes arrived without their file",
            )));
        };
        let count = (want as u64).min(remaining) as usize;
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            let sent = self.stream.try_io(Interest::WRITABLE, || {
                send(&self.stream, &file, offset, count)
            });
            match sent {
                // The file shrank under us: end the response short, the client retries.
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => {
                    self.outbox.consumed(n as u64);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Up to `count` bytes of `file` from `offset` into `socket`, which is
/// ready for writing: `sendfile(2)`, or where the file's file system cannot
/// splice, a read and a write.
fn send(socket: &TcpStream, file: &File, offset: u64, count: usize) -> io::Result<usize> {
    let mut at = offset;
    match rustix::fs::sendfile(socket, file, Some(&mut at), count) {
        Err(Errno::INVAL | Errno::NOSYS) => copy(socket, file, offset, count),
        other => other.map_err(Into::into),
    }
}

/// The way without `sendfile`: a chunk read, as much of it written as the
/// socket takes (the rest is read again next time).
fn copy(socket: &TcpStream, file: &File, offset: u64, count: usize) -> io::Result<usize> {
    let mut buf = vec![0; count.min(COPY_CHUNK)];
    let n = file.read_at(&mut buf, offset)?;
    if n == 0 {
        return Ok(0);
    }
    Ok(rustix::io::write(socket, &buf[..n])?)
}

impl AsyncRead for ZeroCopy {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZeroCopy {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    /// Ordinary bytes up to the first placeholder in one `writev`; a
    /// placeholder at the front by `sendfile`. Writing less than given is
    /// allowed: the caller comes back with the rest.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let bufs = match bufs.iter().position(|b| !b.is_empty()) {
            Some(first) => &bufs[first..],
            None => return Poll::Ready(Ok(0)),
        };
        if is_placeholder(&bufs[0]) {
            return self.poll_send_file(cx, bufs[0].len());
        }
        let plain = bufs
            .iter()
            .position(|b| is_placeholder(b))
            .unwrap_or(bufs.len());
        Pin::new(&mut self.stream).poll_write_vectored(cx, &bufs[..plain])
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (a, b) = tokio::join!(listener.accept(), TcpStream::connect(addr));
        (a.unwrap().0, b.unwrap())
    }

    fn file_of(bytes: &[u8]) -> Arc<HeldFile> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        Arc::new(HeldFile::unbudgeted(f))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn placeholders_become_the_registered_ranges_in_order() {
        let (server, mut client) = pair().await;
        let outbox = Arc::new(Outbox::default());
        let mut io = ZeroCopy::new(server, Arc::clone(&outbox));
        let one: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        outbox.register(1, file_of(&one), 10, 50_000);
        outbox.register(2, file_of(b"second file"), 7, 4);
        let send = async move {
            io.write_all(b"head\n").await.unwrap();
            // In two frames, as a body would hand them out.
            io.write_all(&placeholder(20_000)).await.unwrap();
            io.write_all(&placeholder(30_000)).await.unwrap();
            io.write_all(b"|").await.unwrap();
            io.write_all(&placeholder(4)).await.unwrap();
            io.shutdown().await.unwrap();
        };
        let mut got = Vec::new();
        let ((), read) = tokio::join!(send, client.read_to_end(&mut got));
        read.unwrap();
        let mut want = b"head\n".to_vec();
        want.extend_from_slice(&one[10..50_010]);
        want.extend_from_slice(b"|file");
        assert_eq!(got, want);
        assert!(outbox.next().is_none());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn placeholders_without_a_file_fail() {
        let (server, _client) = pair().await;
        let mut io = ZeroCopy::new(server, Arc::default());
        assert!(io.write_all(&placeholder(10)).await.is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_file_that_shrank_ends_the_response() {
        let (server, _client) = pair().await;
        let outbox = Arc::new(Outbox::default());
        outbox.register(1, file_of(b"short"), 0, 100);
        let mut io = ZeroCopy::new(server, Arc::clone(&outbox));
        let err = io.write_all(&placeholder(100)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn without_sendfile_a_read_and_a_write_send_the_same_bytes() {
        let (server, mut client) = pair().await;
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 7) as u8).collect();
        let file = file_of(&data);
        server.writable().await.unwrap();
        assert_eq!(copy(&server, &file, 100, 500).unwrap(), 500);
        assert_eq!(copy(&server, &file, 1000, 10).unwrap(), 0);
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, data[100..600]);
    }

    #[test]
    fn a_cancelled_range_lets_the_next_one_go_first() {
        let outbox = Outbox::default();
        outbox.register(1, file_of(b"aaaa"), 0, 4);
        outbox.register(2, file_of(b"bbbb"), 0, 4);
        outbox.consumed(1);
        outbox.cancel(1, 3);
        let (_, offset, remaining) = outbox.next().unwrap();
        assert_eq!((offset, remaining), (0, 4));
    }
}
