//! One accepted connection, from the first byte to the close: HTTP/1.1 with
//! keep-alive, a deadline for each request head (slowloris), a deadline for
//! stuck writes, and a graceful end when the service stops.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::access_log::Record;
use super::http::{self, Conn};
use super::io::WriteDeadline;
use super::limits::Slot;
use super::sendfile::ZeroCopy;
use super::state::Shared;

/// Request heads (line and headers) larger than this are refused by hyper
/// (431).
const MAX_HEAD: usize = 32 * 1024;

/// Serve `stream` until the client leaves, times out, or `stopping` turns true.
pub async fn serve(
    stream: TcpStream,
    peer: IpAddr,
    slot: Slot,
    shared: Arc<Shared>,
    mut stopping: watch::Receiver<bool>,
) {
    let started = Instant::now();
    // A response's head and body are separate writes: without NODELAY the
    // body waits for the client's delayed ACK, ~40 ms per kept-alive request.
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(Conn {
        peer,
        shared: Arc::clone(&shared),
        client: slot.client(),
        requests: AtomicU64::new(0),
        outbox: Arc::default(),
    });
    let socket = ZeroCopy::new(stream, Arc::clone(&conn.outbox));
    let io = TokioIo::new(WriteDeadline::new(socket, shared.timeouts.write));
    let service = {
        let conn = Arc::clone(&conn);
        service_fn(move |req| http::handle(req, Arc::clone(&conn)))
    };
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.timeouts.header)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD)
        // Vectored writes: hyper then passes a body's buffers on as they
        // are, which the file bodies' placeholders rely on (`sendfile`).
        .writev(true)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = async { stopping.wait_for(|stop| *stop).await.map(|_| ()) } => {
            // Idle connections close now; a response being sent finishes.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        log_failure(&shared, peer, &conn, &e, started);
    }
    drop(slot);
}

/// Connections that end without any request the service answered: a head that
/// never completed (408), was too large (431) or could not be parsed (400),
/// logged with the status hyper answered. Broken downloads are logged by
/// their request already.
fn log_failure(shared: &Shared, peer: IpAddr, conn: &Conn, e: &hyper::Error, started: Instant) {
    let status = if e.is_timeout() && conn.requests.load(Ordering::Relaxed) == 0 {
        408
    } else if e.is_parse_too_large() {
        // hyper answers 414 only for a URI over 64 KiB, which a head of at
        // most MAX_HEAD cannot hold: every "too large" here was a 431.
        431
    } else if e.is_parse() {
        400
    } else {
        return;
    };
    shared.log.write(&Record {
        client: peer,
        method: "-".into(),
        target: "-".into(),
        status,
        bytes: 0,
        duration: started.elapsed(),
        files: None,
    });
}
