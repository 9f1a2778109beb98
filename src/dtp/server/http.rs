//! Requests: method, route, and the answer of each route (protocol in
//! [`crate::dtp`]). Every answer goes through [`handle`], which logs it.

use std::convert::Infallible;
use std::fs::{File, Metadata};
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::access_log::Record;
use super::batch::{self, BatchFiles};
use super::body::{self, Body, Logged, Throttle};
use super::config::Config;
use super::descriptors::{HeldFile, Spent};
use super::headers;
use super::limits::Client;
use super::open::{self, OpenError};
use super::paths::{self, Refusal, Route};
use super::range;
use super::sendfile::Outbox;
use super::state::Shared;
use crate::dtp::MANIFEST;
use crate::dtp::manifest::Header;

/// Seconds a client told 503 (no descriptor to spare) should wait.
const RETRY_AFTER: &str = "10";
/// Descriptors open at once to send a file: the repository root and the
/// file, for a moment (for a manifest, then the file and its header read
/// again through `/proc/self/fd`); the file alone after.
const OPEN_FILE: u32 = 2;

/// One client connection, as its requests see it.
pub struct Conn {
    pub peer: IpAddr,
    pub shared: Arc<Shared>,
    pub client: Arc<Client>,
    /// Requests received so far (a connection that times out with none is logged).
    pub requests: AtomicU64,
    /// The file ranges its socket sends by `sendfile(2)`.
    pub outbox: Arc<Outbox>,
}

/// Answer one request and arrange for its access-log line.
pub async fn handle(
    req: Request<Incoming>,
    conn: Arc<Conn>,
) -> Result<Response<Logged>, Infallible> {
    conn.requests.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let target = raw_target(req.uri());
    let method = req.method().as_str().to_string();
    // A bug in one answer must not take the connection's other requests down.
    let response = AssertUnwindSafe(respond(req, &target, &conn))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("?");
            super::say(&format!("internal error answering {target}: {what}"));
            status(StatusCode::INTERNAL_SERVER_ERROR)
        });
    let record = Record {
        client: conn.peer,
        method,
        target,
        status: response.status().as_u16(),
        bytes: 0,
        duration: Default::default(),
        files: response.extensions().get::<BatchFiles>().map(|f| f.0),
    };
    let log = Arc::clone(&conn.shared.log);
    Ok(response.map(|b| Logged::new(b, log, record, started)))
}

/// The target as sent: path and query (a proxy-style absolute URI counts by
/// its path).
fn raw_target(uri: &hyper::Uri) -> String {
    match uri.path_and_query() {
        Some(pq) => pq.as_str().to_string(),
        None => uri.to_string(),
    }
}

async fn respond(req: Request<Incoming>, target: &str, conn: &Arc<Conn>) -> Response<Body> {
    let (head, post) = match *req.method() {
        Method::GET => (false, false),
        Method::HEAD => (true, false),
        Method::POST => (false, true),
        _ => return batch::not_here(),
    };
    let config = conn.shared.config();
    // A keep-alive connection admitted before a reload meets the new firewall
    // with its next request (a transfer in progress goes on).
    if !config.firewall.allows(conn.peer) {
        return status(StatusCode::FORBIDDEN);
    }
    let route = paths::route(target);
    if post {
        return match route {
            Ok(Route::Manifest { repo }) => match config.repo(&repo) {
                Some(r) => batch::respond(req.into_body(), r.root.clone(), conn).await,
                None => status(StatusCode::NOT_FOUND),
            },
            Err(refusal) => refused(&refusal),
            Ok(_) => batch::not_here(),
        };
    }
    let response = match route {
        Err(refusal) => refused(&refusal),
        Ok(Route::Index) => index(&config),
        Ok(Route::Repos) => repos(&config, &conn.shared).await,
        Ok(Route::Manifest { repo }) => match config.repo(&repo) {
            Some(r) => manifest(req.headers(), r.root.clone(), conn).await,
            None => status(StatusCode::NOT_FOUND),
        },
        Ok(Route::File { repo, path }) => match config.repo(&repo) {
            Some(r) => file(req.headers(), r.root.clone(), path, conn).await,
            None => status(StatusCode::NOT_FOUND),
        },
    };
    if head {
        without_body(response)
    } else {
        response
    }
}

fn refused(refusal: &Refusal) -> Response<Body> {
    match refusal {
        Refusal::NotFound => status(StatusCode::NOT_FOUND),
        Refusal::TooLong => status(StatusCode::URI_TOO_LONG),
        Refusal::BadRequest(why) => {
            text(StatusCode::BAD_REQUEST, format!("400 bad request: {why}\n"))
        }
    }
}

/// `/`: the motd, a blank line, then one repository name per line. The
/// motd was read with the configuration (see [`super::motd::Motd`]).
fn index(config: &Config) -> Response<Body> {
    let mut out = String::new();
    if let Some(motd) = config.motd.as_ref().filter(|m| !m.text.trim().is_empty()) {
        out.push_str(&motd.text);
        if !motd.text.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
    }
    for repo in &config.repos {
        out.push_str(&repo.name);
        out.push('\n');
    }
    text(StatusCode::OK, out)
}

/// `/api/repos`: every repository with its manifest's header, or nulls.
async fn repos(config: &Config, shared: &Arc<Shared>) -> Response<Body> {
    let list: Vec<(String, PathBuf)> = config
        .repos
        .iter()
        .map(|r| (r.name.clone(), r.root.clone()))
        .collect();
    // One manifest open at a time.
    let permit = match shared.budget.take(OPEN_FILE) {
        Ok(permit) => permit,
        Err(spent) => return busy(&spent),
    };
    let shared = Arc::clone(shared);
    let json = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let items: Vec<serde_json::Value> = list
            .iter()
            .map(|(name, root)| {
                let header = open_manifest(&shared, root).ok().and_then(|(_, _, h)| h);
                serde_json::json!({
                    "name": name,
                    "digest": header.as_ref().map(|h| h.digest.clone()),
                    "entries": header.as_ref().map(|h| h.entries),
                    "bytes": header.as_ref().map(|h| h.bytes),
                    "generated": header.as_ref().map(|h| h.generated),
                })
            })
            .collect();
        serde_json::Value::Array(items).to_string()
    })
    .await;
    match json {
        Ok(json) => {
            let mut r = text(StatusCode::OK, json + "\n");
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(_) => status(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// The manifest, opened safely, and its header if it can be read.
fn open_manifest(
    shared: &Shared,
    root: &std::path::Path,
) -> Result<(File, Metadata, Option<Header>), OpenError> {
    let (file, meta) = open::open_file(root, MANIFEST.as_bytes())?;
    // A header that cannot be read (a panic included) leaves the file served without ETag.
    let header =
        std::panic::catch_unwind(AssertUnwindSafe(|| shared.headers.get(root, &file, &meta)))
            .ok()
            .and_then(Result::ok);
    Ok((file, meta, header))
}

/// `/REPO/data.dsync`: with its digest as ETag; `If-None-Match` answers 304.
async fn manifest(headers: &HeaderMap, root: PathBuf, conn: &Arc<Conn>) -> Response<Body> {
    let permit = match conn.shared.budget.take(OPEN_FILE) {
        Ok(permit) => permit,
        Err(spent) => return busy(&spent),
    };
    let shared = Arc::clone(&conn.shared);
    let opened = tokio::task::spawn_blocking(move || open_manifest(&shared, &root)).await;
    let (file, meta, header) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(e)) => return open_failed(&e),
        Err(_) => return status(StatusCode::INTERNAL_SERVER_ERROR),
    };
    let etag = header.as_ref().map(Header::etag);
    if let (Some(etag), Some(inm)) = (&etag, headers.get(header::IF_NONE_MATCH))
        && headers::matches(inm.to_str().unwrap_or(""), etag)
    {
        let mut r = status(StatusCode::NOT_MODIFIED);
        *r.body_mut() = body::empty();
        r.headers_mut().remove(header::CONTENT_TYPE);
        r.headers_mut().remove(header::CONTENT_LENGTH);
        set(&mut r, header::ETAG, etag);
        return r;
    }
    let file = HeldFile::new(file, permit.keep(1));
    let mut r = send_file(headers, file, &meta, conn);
    if let Some(etag) = &etag {
        set(&mut r, header::ETAG, etag);
    }
    r.headers_mut().insert(batch::HEADER, batch::advertised());
    r
}

/// `/REPO/PATH`: a regular file below the repository root.
async fn file(
    headers: &HeaderMap,
    root: PathBuf,
    rel: Vec<u8>,
    conn: &Arc<Conn>,
) -> Response<Body> {
    let permit = match conn.shared.budget.take(OPEN_FILE) {
        Ok(permit) => permit,
        Err(spent) => return busy(&spent),
    };
    match tokio::task::spawn_blocking(move || open::open_file(&root, &rel)).await {
        Ok(Ok((file, meta))) => {
            send_file(headers, HeldFile::new(file, permit.keep(1)), &meta, conn)
        }
        Ok(Err(e)) => open_failed(&e),
        Err(_) => status(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

fn open_failed(e: &OpenError) -> Response<Body> {
    match e {
        OpenError::NotFound => status(StatusCode::NOT_FOUND),
        OpenError::Descriptors(e) => {
            super::say(&format!("cannot open a served file: {e}"));
            unavailable()
        }
        OpenError::Io(e) => {
            super::say(&format!("cannot open a served file: {e}"));
            status(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// The whole file, or the range asked for (206), or 416.
fn send_file(
    headers: &HeaderMap,
    file: HeldFile,
    meta: &Metadata,
    conn: &Arc<Conn>,
) -> Response<Body> {
    let size = meta.len();
    let span = match headers.get(header::RANGE) {
        None => None,
        Some(value) => match range::parse(value.as_bytes(), size) {
            Ok(span) => Some(span),
            Err(()) => {
                let mut r = status(StatusCode::RANGE_NOT_SATISFIABLE);
                set(&mut r, header::CONTENT_RANGE, &format!("bytes */{size}"));
                return r;
            }
        },
    };
    let (offset, len) = span.map_or((0, size), |s| (s.start, s.len()));
    let body = body::file(file, offset, len, throttle(conn), Arc::clone(&conn.outbox));
    let mut r = Response::new(body);
    set(&mut r, header::CONTENT_TYPE, "application/octet-stream");
    set(&mut r, header::CONTENT_LENGTH, &len.to_string());
    set(&mut r, header::ACCEPT_RANGES, "bytes");
    if let Some(modified) = last_modified(meta) {
        set(&mut r, header::LAST_MODIFIED, &modified);
    }
    if let Some(span) = span {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        set(&mut r, header::CONTENT_RANGE, &span.content_range(size));
    }
    r
}

pub(super) fn throttle(conn: &Arc<Conn>) -> Throttle {
    let shared = Arc::clone(&conn.shared);
    Throttle {
        client: Arc::clone(&conn.client),
        rate: Arc::new(move || shared.config().bwlimit),
    }
}

fn last_modified(meta: &Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let t = chrono::DateTime::from_timestamp(meta.mtime(), 0)?;
    Some(t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
}

/// A HEAD answer: the GET answer's head, its length kept, no body.
fn without_body(response: Response<Body>) -> Response<Body> {
    use hyper::body::Body as _;
    let (mut parts, body) = response.into_parts();
    if let Some(len) = body.size_hint().exact()
        && !parts.headers.contains_key(header::CONTENT_LENGTH)
        && parts.status != StatusCode::NOT_MODIFIED
    {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Response::from_parts(parts, body::empty())
}

pub(super) fn text(code: StatusCode, text: String) -> Response<Body> {
    let len = text.len();
    let mut r = Response::new(body::full(text));
    *r.status_mut() = code;
    set(&mut r, header::CONTENT_TYPE, "text/plain; charset=utf-8");
    set(&mut r, header::CONTENT_LENGTH, &len.to_string());
    r
}

/// 503 for a request that would need more file descriptors than the
/// budget has left: the client comes back later.
pub(super) fn busy(spent: &Spent) -> Response<Body> {
    let mut r = text(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("503 service unavailable: {spent}; try again in a few seconds\n"),
    );
    set(&mut r, header::RETRY_AFTER, RETRY_AFTER);
    r
}

/// 503 where the system, not the budget, had no descriptor left.
pub(super) fn unavailable() -> Response<Body> {
    let mut r = status(StatusCode::SERVICE_UNAVAILABLE);
    set(&mut r, header::RETRY_AFTER, RETRY_AFTER);
    r
}

/// A status with its reason as the body.
pub(super) fn status(code: StatusCode) -> Response<Body> {
    let reason = code.canonical_reason().unwrap_or("");
    text(code, format!("{} {reason}\n", code.as_u16()))
}

fn set(r: &mut Response<Body>, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}
