//! Connections turned away before HTTP is spoken with them.
//!
//! - An address firewall.conf does not allow gets no answer at all, as
//!   KRFOSS's guide promises: the connection is closed at once, without a
//!   byte, and logged with status 444 (nginx's "closed without response").
//! - One over the per-address cap, or for which the descriptor budget has
//!   no room, gets 503: read the request line if it comes quickly (for the
//!   log), answer, and close without resetting the answer away.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::access_log::{AccessLog, Record};

/// How long a refused client gets to send its request line.
const LINE_WAIT: Duration = Duration::from_secs(2);
/// How much of it is read.
const LINE_MAX: usize = 8 * 1024;
/// After answering, unread request bytes are drained this long, so closing
/// does not send a reset that could destroy the answer in flight.
const LINGER: Duration = Duration::from_secs(1);

/// The access-log status of a connection closed without an answer.
pub const CLOSED: u16 = 444;

/// Close `stream` without a byte and log it. Nothing is read: waiting for a
/// request would keep an unwanted client's connection open.
pub fn silently(stream: TcpStream, peer: IpAddr, log: &AccessLog) {
    drop(stream);
    log.write(&Record {
        client: peer,
        method: "-".into(),
        target: "-".into(),
        status: CLOSED,
        bytes: 0,
        duration: Duration::ZERO,
        files: None,
    });
}

/// Answer 503 on `stream` (its address holds too many connections, or the
/// service too many descriptors) and log it.
pub async fn busy(mut stream: TcpStream, peer: IpAddr, log: &AccessLog) {
    let started = Instant::now();
    let line = tokio::time::timeout(LINE_WAIT, read_line(&mut stream))
        .await
        .unwrap_or_default();
    let (method, target) = request_line(&line);
    let status = 503;
    let body = format!("{status} Service Unavailable\n");
    let answer = format!(
        "HTTP/1.1 {status} Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nRetry-After: 10\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let sent = tokio::time::timeout(LINGER, stream.write_all(answer.as_bytes()))
        .await
        .is_ok_and(|r| r.is_ok());
    log.write(&Record {
        client: peer,
        method,
        target,
        status,
        bytes: if sent { body.len() as u64 } else { 0 },
        duration: started.elapsed(),
        files: None,
    });
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(LINGER, drain(&mut stream)).await;
}

/// Bytes up to the first line end (or what came before EOF or the limit).
async fn read_line(stream: &mut TcpStream) -> Vec<u8> {
    let mut line = Vec::new();
    let mut buf = [0u8; 1024];
    while line.len() < LINE_MAX {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                line.extend_from_slice(&buf[..n]);
                if let Some(end) = line.iter().position(|b| *b == b'\n') {
                    line.truncate(end);
                    break;
                }
            }
        }
    }
    line
}

async fn drain(stream: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    while total < 64 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
}

/// `METHOD TARGET HTTP/1.1` → method and target; `-` for what is missing.
fn request_line(line: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(line);
    let mut words = text.trim_end_matches('\r').split(' ');
    let mut next = || {
        words
            .next()
            .filter(|w| !w.is_empty())
            .unwrap_or("-")
            .chars()
            .take(4096)
            .collect::<String>()
    };
    let method = next();
    let target = next();
    (method, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(
            request_line(b"GET /debian/x HTTP/1.1\r"),
            ("GET".into(), "/debian/x".into())
        );
        assert_eq!(request_line(b""), ("-".into(), "-".into()));
        assert_eq!(request_line(b"GE"), ("GE".into(), "-".into()));
    }
}
