//! A hostile DTP host for tests: a raw `TcpListener` on 127.0.0.1 answering
//! HTTP/1.1 by hand, so a test can send what no real service would (a
//! manifest dripped a byte at a time, a batch framed short, a redirect
//! elsewhere, endless bytes after a bad header).
//!
//! Each connection is read up to its request (head and `Content-Length`
//! body), recorded, and handed to the test's handler with the stream, to
//! answer as it likes; it is closed when the handler returns. Dropping the
//! host stops accepting; handlers still writing end at their next write
//! error once the client is gone.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The answering side of one connection; counts what it wrote.
pub struct Conn<'a> {
    stream: TcpStream,
    written: &'a AtomicU64,
}

impl Conn<'_> {
    /// Write `bytes`; false once the client is gone.
    pub fn send(&mut self, bytes: &[u8]) -> bool {
        let ok = self.stream.write_all(bytes).is_ok();
        if ok {
            self.written.fetch_add(bytes.len() as u64, Ordering::SeqCst);
        }
        ok
    }

    /// A status line and headers (`Connection: close` added), then `body`.
    pub fn answer(&mut self, status: &str, headers: &[(&str, String)], body: &[u8]) -> bool {
        self.head(status, headers) && self.send(body)
    }

    /// A status line and headers only; the body follows by [`Conn::send`]
    /// and ends when the connection closes (unless a length was given).
    pub fn head(&mut self, status: &str, headers: &[(&str, String)]) -> bool {
        let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        self.send(head.as_bytes())
    }
}

type Handler = dyn Fn(&Request, &mut Conn) + Send + Sync;

pub struct HostileHost {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl HostileHost {
    /// Listen on 127.0.0.1 and a port of the system's choice.
    pub fn start(handler: impl Fn(&Request, &mut Conn) + Send + Sync + 'static) -> HostileHost {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let written = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let accept = {
            let (requests, written, stop) = (requests.clone(), written.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let (requests, written, handler) =
                        (requests.clone(), written.clone(), handler.clone());
                    std::thread::spawn(move || serve(stream, &requests, &written, &*handler));
                }
            })
        };
        HostileHost {
            port,
            requests,
            written,
            stop,
            accept: Some(accept),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/REPO/`.
    pub fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{repo}/", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Bytes written to clients so far, heads included.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }
}

impl Drop for HostileHost {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    requests: &Mutex<Vec<Request>>,
    written: &AtomicU64,
    handler: &Handler,
) {
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    let Some(request) = read_request(&mut BufReader::new(reader)) else {
        return;
    };
    requests.lock().unwrap().push(request.clone());
    let mut conn = Conn { stream, written };
    handler(&request, &mut conn);
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let method = words.next()?.to_string();
    let path = words.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let text = line.trim_end();
        if text.is_empty() {
            break;
        }
        let (name, value) = text.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    // Test clients send small bodies; a cap keeps a bad one from costing much.
    let mut body = vec![0; length.min(16 << 20)];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}
