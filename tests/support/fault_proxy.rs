//! A TCP proxy on 127.0.0.1 that forwards to a real server and, once, spoils
//! the body of the first answer to a `POST`: cuts the connection after a
//! number of body bytes, or flips one byte of it. Everything else passes
//! untouched, so a client sees a real server behind a bad network.
//!
//! A request and its answer follow each other on a connection (no
//! pipelining), so the bytes the server sends after a `POST` was seen on that
//! connection are that `POST`'s answer.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

/// What happens to the first `POST` answer.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Close both ways after this many body bytes.
    CutAfter(usize),
    /// XOR this body byte with 0xFF.
    FlipAt(usize),
}

pub struct FaultProxy {
    port: u16,
    fired: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Forward to `upstream`, applying `fault` once.
    pub fn start(upstream: SocketAddr, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fired = Arc::new(AtomicBool::new(false));
        let once = Arc::clone(&fired);
        // The accept loop ends with the test process; connections end with
        // their peers.
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                pump_pair(client, server, fault, Arc::clone(&once));
            }
        });
        FaultProxy { port, fired }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Has the fault been applied?
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

fn pump_pair(client: TcpStream, server: TcpStream, fault: Fault, fired: Arc<AtomicBool>) {
    let posted = Arc::new(AtomicBool::new(false));
    let (c_in, s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let seen = Arc::clone(&posted);
    thread::spawn(move || requests(c_in, s_out, &seen));
    thread::spawn(move || answers(server, client, fault, &posted, &fired));
}

/// Client to server, untouched; notes a `POST`.
fn requests(mut from: TcpStream, mut to: TcpStream, posted: &AtomicBool) {
    let mut buf = vec![0; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        // Noted before it is forwarded: the answer may come back at once.
        if buf[..n].windows(5).any(|w| w == b"POST ") {
            posted.store(true, Ordering::SeqCst);
        }
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Server to client, spoiling the first `POST` answer's body once.
fn answers(
    mut from: TcpStream,
    mut to: TcpStream,
    fault: Fault,
    posted: &AtomicBool,
    fired: &AtomicBool,
) {
    let mut buf = vec![0; 64 * 1024];
    // Bytes of the POST answer so far, and where its body starts.
    let mut answer: Vec<u8> = Vec::new();
    let mut body_at: Option<usize> = None;
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        let chunk = &mut buf[..n];
        if posted.load(Ordering::SeqCst) && !fired.load(Ordering::SeqCst) {
            let start = answer.len();
            answer.extend_from_slice(chunk);
            if body_at.is_none() {
                body_at = find(&answer, b"\r\n\r\n").map(|i| i + 4);
            }
            if let Some(body) = body_at {
                let target = body
                    + match fault {
                        Fault::CutAfter(k) | Fault::FlipAt(k) => k,
                    };
                if target < answer.len() {
                    fired.store(true, Ordering::SeqCst);
                    let here = target - start.min(target);
                    match fault {
                        Fault::FlipAt(_) => chunk[here] ^= 0xFF,
                        Fault::CutAfter(_) => {
                            let _ = to.write_all(&chunk[..here]);
                            let _ = to.shutdown(Shutdown::Both);
                            let _ = from.shutdown(Shutdown::Both);
                            return;
                        }
                    }
                }
            }
        }
        if to.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
