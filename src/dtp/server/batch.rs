//! Batches (protocol 1.1): `POST /REPO/data.dsync` with one escaped path per
//! line answers every file in one streamed response, each as its length (8
//! bytes, big-endian) then its bytes, in the order asked. Small files cost
//! less than a request each this way.
//!
//! Every path is held to the rules of a single `GET` ([`paths::batch_path`],
//! [`open::open_file`]) and every file is opened and checked before the
//! answer starts, so a batch is refused as a whole or sent whole.
//!
//! A batch holds two descriptors of its own (its repository root and the
//! file being sent) however slowly its client reads. Files checked beyond
//! those are kept open for the answer only while the descriptor budget is
//! large (a share of it, [`KEEP_SHARE`]: with the usual hard limits of
//! 500,000 and more, every file is opened once); otherwise they are closed
//! at once and reopened one at a time as the answer reaches them. A file
//! reopened must be the one checked (same device, inode and size), or the
//! response breaks off, as a `GET`'s does when its file shrinks; the client
//! then asks again from the first file missing.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::body::{self, Body};
use super::descriptors::{Permit, Spent};
use super::http::{Conn, busy, status, text, throttle, unavailable};
use super::open::{self, OpenError};
use super::paths::{self, Refusal};

/// Most files one batch may name.
pub const MAX_FILES: usize = 256;
/// Most bytes (file contents) one batch may ask for.
pub const MAX_BYTES: u64 = 8 << 20;
/// The largest request body: the paths, escaped, one per line.
const MAX_REQUEST: usize = 1 << 20;
/// The header on the manifest that says batches are served, and their limits.
pub const HEADER: &str = crate::dtp::BATCH_HEADER;
/// Descriptors a batch holds from its check to its last byte: the
/// repository root and one file.
const DESCRIPTORS: u32 = 2;
/// A batch may keep its checked files open (opening each once, not twice)
/// up to this fraction of the descriptor budget: one address, at its cap of
/// 64 connections, then holds at most 1/16 of the budget this way.
const KEEP_SHARE: usize = 1024;

/// The value of [`HEADER`].
pub fn advertised() -> HeaderValue {
    HeaderValue::from_str(&format!("files={MAX_FILES}, bytes={MAX_BYTES}")).expect("ASCII digits")
}

/// How many files an answered batch holds, for its access-log line.
#[derive(Debug, Clone, Copy)]
pub struct BatchFiles(pub u64);

/// Why a batch is refused as a whole.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error("the list of paths did not arrive in time")]
    Slow,
    #[error("the list of paths is larger than {MAX_REQUEST} bytes")]
    ListTooLarge,
    #[error("the list of paths could not be read: {0}")]
    Read(String),
    #[error("the list of paths is empty or not one escaped path per line")]
    Malformed,
    #[error("more than {MAX_FILES} files in one batch")]
    TooManyFiles,
    #[error("more than {MAX_BYTES} bytes in one batch")]
    TooManyBytes,
    #[error("line {line}: {refusal}")]
    Path { line: usize, refusal: Refusal },
    #[error("line {line}: not found")]
    NotFound { line: usize },
    #[error("{0}")]
    Busy(Spent),
    #[error("out of file descriptors: {0}")]
    Descriptors(std::io::Error),
    #[error("cannot open a served file: {0}")]
    Io(std::io::Error),
}

impl BatchError {
    fn status(&self) -> StatusCode {
        match self {
            BatchError::Slow => StatusCode::REQUEST_TIMEOUT,
            BatchError::ListTooLarge | BatchError::TooManyFiles | BatchError::TooManyBytes => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            BatchError::Read(_) | BatchError::Malformed => StatusCode::BAD_REQUEST,
            BatchError::Path { refusal, .. } => match refusal {
                Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
                Refusal::TooLong => StatusCode::URI_TOO_LONG,
                Refusal::NotFound => StatusCode::NOT_FOUND,
            },
            BatchError::NotFound { .. } => StatusCode::NOT_FOUND,
            BatchError::Busy(_) | BatchError::Descriptors(_) => StatusCode::SERVICE_UNAVAILABLE,
            BatchError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Answer `POST /REPO/data.dsync` for the repository at `root`.
pub async fn respond(body: Incoming, root: PathBuf, conn: &Arc<Conn>) -> Response<Body> {
    match prepare(body, root, conn).await {
        Ok(files) => stream(files, conn),
        Err(BatchError::Busy(spent)) => busy(&spent),
        Err(e) => {
            if let BatchError::Io(e) | BatchError::Descriptors(e) = &e {
                super::say(&format!("cannot open a served file: {e}"));
            }
            if let BatchError::Descriptors(_) = e {
                return unavailable();
            }
            let code = e.status();
            text(code, format!("{} batch refused: {e}\n", code.as_u16()))
        }
    }
}

/// The files of a batch, checked; each reopened when its turn comes.
pub struct Files {
    /// The repository root, open for the batch's whole answer.
    dir: OwnedFd,
    files: Vec<Checked>,
    /// The root's descriptor, the one of the file being sent, and those of
    /// the files kept open since the check.
    _permit: Permit,
}

/// A file as it was when the batch was checked.
struct Checked {
    rel: Vec<u8>,
    dev: u64,
    ino: u64,
    len: u64,
    /// Still open since the check, when the budget allowed keeping it.
    kept: std::sync::Mutex<Option<File>>,
}

impl Files {
    pub fn count(&self) -> usize {
        self.files.len()
    }

    /// The length the answer announced for file `i`.
    pub fn size(&self, i: usize) -> u64 {
        self.files[i].len
    }

    /// Blocking: file `i` opened again, if it is still the file checked.
    pub fn open(&self, i: usize) -> std::io::Result<File> {
        let checked = &self.files[i];
        let kept = checked
            .kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(file) = kept {
            return Ok(file);
        }
        let (file, meta) = open::open_below(&self.dir, &checked.rel).map_err(|e| match e {
            OpenError::NotFound => std::io::ErrorKind::NotFound.into(),
            OpenError::Descriptors(e) | OpenError::Io(e) => e,
        })?;
        if (meta.dev(), meta.ino(), meta.len()) != (checked.dev, checked.ino, checked.len) {
            // Replaced or resized since: what was announced cannot be sent.
            return Err(std::io::Error::other(
                "a file of the batch changed while the batch was sent",
            ));
        }
        Ok(file)
    }
}

fn stream(files: Files, conn: &Arc<Conn>) -> Response<Body> {
    let count = files.count() as u64;
    let length: u64 = files.files.iter().map(|f| 8 + f.len).sum();
    let mut r = Response::new(body::files(files, throttle(conn)));
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-dtp-batch"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    r.extensions_mut().insert(BatchFiles(count));
    r
}

/// The list read, every path and every file checked; or why not.
async fn prepare(body: Incoming, root: PathBuf, conn: &Arc<Conn>) -> Result<Files, BatchError> {
    let list = read_list(body, conn).await?;
    let rels = parse(&list)?;
    let budget = &conn.shared.budget;
    let mut permit = budget.take(DESCRIPTORS).map_err(BatchError::Busy)?;
    let share = (budget.size() / KEEP_SHARE).min(rels.len());
    let keep = match budget.try_take(share as u32) {
        Some(kept) if share > 0 => {
            permit = permit.join(kept);
            share
        }
        _ => 0,
    };
    let (dir, files) = tokio::task::spawn_blocking(move || check_all(&root, rels, keep))
        .await
        .map_err(|e| BatchError::Io(std::io::Error::other(e)))??;
    Ok(Files {
        dir,
        files,
        _permit: permit,
    })
}

/// The request body, within [`MAX_REQUEST`] and the request-head deadline.
async fn read_list(body: Incoming, conn: &Arc<Conn>) -> Result<Bytes, BatchError> {
    let limited = Limited::new(body, MAX_REQUEST);
    match tokio::time::timeout(conn.shared.timeouts.header, limited.collect()).await {
        Err(_) => Err(BatchError::Slow),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BatchError::ListTooLarge),
        Ok(Err(e)) => Err(BatchError::Read(e.to_string())),
    }
}

/// One escaped path per line, each line ending in `\n`.
fn parse(list: &[u8]) -> Result<Vec<Vec<u8>>, BatchError> {
    let text = std::str::from_utf8(list).map_err(|_| BatchError::Malformed)?;
    let lines = text.strip_suffix('\n').ok_or(BatchError::Malformed)?;
    let lines: Vec<&str> = lines.split('\n').collect();
    if lines.len() > MAX_FILES {
        return Err(BatchError::TooManyFiles);
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            paths::batch_path(line).map_err(|refusal| BatchError::Path {
                line: i + 1,
                refusal,
            })
        })
        .collect()
}

/// Blocking: open every file as a `GET` would, one at a time, within
/// [`MAX_BYTES`]; the root stays open, the first `keep` files too, each
/// other file is closed once checked.
fn check_all(
    root: &std::path::Path,
    rels: Vec<Vec<u8>>,
    keep: usize,
) -> Result<(OwnedFd, Vec<Checked>), BatchError> {
    let mut files = Vec::with_capacity(rels.len());
    let mut bytes = 0u64;
    let dir = open::open_root(root).map_err(|e| at_line(1, e))?;
    for (i, rel) in rels.into_iter().enumerate() {
        let (file, meta) = open::open_below(&dir, &rel).map_err(|e| at_line(i + 1, e))?;
        let kept = (i < keep).then_some(file);
        bytes += meta.len();
        if bytes > MAX_BYTES {
            return Err(BatchError::TooManyBytes);
        }
        files.push(Checked {
            rel,
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            kept: std::sync::Mutex::new(kept),
        });
    }
    Ok((dir, files))
}

fn at_line(line: usize, e: OpenError) -> BatchError {
    match e {
        OpenError::NotFound => BatchError::NotFound { line },
        OpenError::Descriptors(e) => BatchError::Descriptors(e),
        OpenError::Io(e) => BatchError::Io(e),
    }
}

/// A refusal for a `POST` anywhere but a manifest.
pub fn not_here() -> Response<Body> {
    let mut r = status(StatusCode::METHOD_NOT_ALLOWED);
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_parsed_and_checked_line_by_line() {
        assert_eq!(
            parse(b"a\nb%20c\n").unwrap(),
            vec![b"a".to_vec(), b"b c".to_vec()]
        );
        assert!(matches!(parse(b"a"), Err(BatchError::Malformed)));
        assert!(matches!(
            parse(b"\n"),
            Err(BatchError::Path { line: 1, .. })
        ));
        let e = parse(b"a\n../x\n").unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().starts_with("line 2: "), "{e}");
        let many = "a\n".repeat(MAX_FILES + 1);
        assert!(matches!(
            parse(many.as_bytes()),
            Err(BatchError::TooManyFiles)
        ));
    }

    /// `names` checked as a batch of the repository at `root`.
    fn checked(root: &std::path::Path, names: &[&str]) -> Files {
        let rels = names.iter().map(|n| n.as_bytes().to_vec()).collect();
        let (dir, files) = check_all(root, rels, 0).unwrap();
        let budget = super::super::descriptors::Budget::new(1024, 0);
        Files {
            dir,
            files,
            _permit: budget.take(DESCRIPTORS).unwrap(),
        }
    }

    #[test]
    fn files_kept_open_since_the_check_are_sent_as_checked_and_opened_once() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        for name in ["a", "b"] {
            std::fs::write(dir.path().join(name), b"four").unwrap();
        }
        let rels = vec![b"a".to_vec(), b"b".to_vec()];
        let (_root, files) = check_all(dir.path(), rels, 1).unwrap();
        assert!(files[0].kept.lock().unwrap().is_some(), "a is kept open");
        assert!(
            files[1].kept.lock().unwrap().is_none(),
            "b is beyond the share"
        );
        // Removed after the check: the kept file is still the one checked.
        std::fs::remove_file(dir.path().join("a")).unwrap();
        let budget = super::super::descriptors::Budget::new(1024, 0);
        let files = Files {
            dir: open::open_root(dir.path()).unwrap(),
            files,
            _permit: budget.take(DESCRIPTORS).unwrap(),
        };
        let mut text = String::new();
        files.open(0).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "four");
    }

    #[test]
    fn a_file_reopened_must_be_the_file_checked() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        for name in ["same", "renamed", "grown", "gone"] {
            std::fs::write(dir.path().join(name), b"four").unwrap();
        }
        let files = checked(dir.path(), &["same", "renamed", "grown", "gone"]);
        assert_eq!(files.count(), 4);
        assert_eq!(files.size(0), 4);
        // Replaced by rename (a new inode), resized in place, removed.
        std::fs::write(dir.path().join("new"), b"FOUR").unwrap();
        std::fs::rename(dir.path().join("new"), dir.path().join("renamed")).unwrap();
        std::fs::write(dir.path().join("grown"), b"four more").unwrap();
        std::fs::remove_file(dir.path().join("gone")).unwrap();
        let mut text = String::new();
        files.open(0).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "four");
        for i in 1..4 {
            assert!(files.open(i).is_err(), "file {i} changed: not sent");
        }
    }

    #[test]
    fn the_advertised_limits_are_the_documented_ones() {
        assert_eq!(advertised(), "files=256, bytes=8388608");
    }
}
