//! Batches (protocol 1.1): small files asked for many at a time in one
//! `POST data.dsync`, read back from one stream (each file: its length in 8
//! bytes, big-endian, then its bytes). Every file is hashed as it arrives
//! and verified before it takes its name, as a single download is. A stream
//! that breaks off is asked again from the first file that did not arrive;
//! a host without batches gets per-file requests.

use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc::Sender;

use super::download::{Fetched, Finish, TRIES, fetch_one, too_long};
use super::error::ClientError;
use super::fetch::Fetcher;
use super::safe::Root;
use super::writer::{self, Received};
use crate::dtp::manifest::Entry;

pub use crate::dtp::BATCH_HEADER as HEADER;

/// Files larger than this keep a request of their own (and Range resume).
pub const SMALL: u64 = 256 << 10;
/// Whole files read ahead of the writer, per batch: bounds memory.
const IN_FLIGHT: usize = 8;
/// The most we ask for at once, whatever a host allows.
const MAX_FILES: usize = 256;
const MAX_BYTES: u64 = 4 << 20;

/// A host's batch limits, from its [`HEADER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub files: usize,
    pub bytes: u64,
}

impl Limits {
    /// `files=N, bytes=M`; other fields are for later versions.
    pub fn parse(value: &str) -> Option<Limits> {
        let field = |name: &str| {
            value
                .split(',')
                .filter_map(|f| f.trim().split_once('='))
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.parse::<u64>().ok())
        };
        let files = usize::try_from(field("files")?).ok()?;
        let bytes = field("bytes")?;
        (files > 0 && bytes > 0).then_some(Limits { files, bytes })
    }
}

/// One unit of download work.
pub enum Job<'e> {
    One(&'e Entry),
    Batch(Vec<&'e Entry>),
}

/// Large files one by one (first: they take longest), small ones in batches
/// small enough that every connection gets some.
pub fn jobs<'e>(entries: &[&'e Entry], limits: Option<Limits>, connections: usize) -> Vec<Job<'e>> {
    let Some(limits) = limits else {
        return entries.iter().map(|e| Job::One(e)).collect();
    };
    let max_bytes = limits.bytes.min(MAX_BYTES);
    let (small, large): (Vec<&Entry>, Vec<&Entry>) =
        entries.iter().partition(|e| e.size <= SMALL.min(max_bytes));
    let spread = small.len().div_ceil(connections.max(1)).max(1);
    let max_files = limits.files.min(MAX_FILES).min(spread);
    let mut jobs: Vec<Job> = large.into_iter().map(Job::One).collect();
    let mut batch: Vec<&Entry> = Vec::new();
    let mut bytes = 0;
    for entry in small {
        if !batch.is_empty() && (batch.len() >= max_files || bytes + entry.size > max_bytes) {
            jobs.push(Job::Batch(std::mem::take(&mut batch)));
            bytes = 0;
        }
        bytes += entry.size;
        batch.push(entry);
    }
    if !batch.is_empty() {
        jobs.push(Job::Batch(batch));
    }
    jobs
}

enum Failure {
    /// The stream broke off: ask again for what did not arrive.
    Broken(ClientError),
    /// This batch is not served as one (`global`: by this host at all).
    PerFile {
        why: ClientError,
        global: bool,
    },
    Fatal(ClientError),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match &e {
            ClientError::Network { .. } => Failure::Broken(e),
            ClientError::Http { status, .. } => match *status {
                405 | 501 => Failure::PerFile {
                    why: e,
                    global: true,
                },
                // A file gone since the manifest, or lower limits than said.
                404 | 413 | 414 => Failure::PerFile {
                    why: e,
                    global: false,
                },
                s if s >= 500 => Failure::Broken(e),
                _ => Failure::Fatal(e),
            },
            _ => Failure::Fatal(e),
        }
    }
}

/// Fetch `entries` as batches, resuming after breaks; per file when the host
/// turns out not to serve batches.
pub async fn fetch(
    fetcher: &Fetcher,
    root: &Root,
    entries: &[&Entry],
    finish: Finish,
    log: &dyn Fn(&str),
) -> Result<Fetched, ClientError> {
    let mut done = Fetched::default();
    let mut rest = entries;
    let mut failures = 0;
    while !rest.is_empty() {
        let mut arrived = 0;
        let result = once(fetcher, root, rest, finish, &mut arrived, &mut done).await;
        let total = rest.len();
        rest = &rest[arrived..];
        match result {
            Ok(()) => {}
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::PerFile { why, global }) => {
                if global {
                    log(&format!("{why}: fetching file by file"));
                    fetcher.set_batch(None);
                }
                return per_file(fetcher, root, rest, finish, log, done).await;
            }
            Err(Failure::Broken(e)) => {
                // Only a try that brought nothing counts against the limit.
                if arrived == 0 {
                    failures += 1;
                    if failures >= TRIES {
                        return Err(e);
                    }
                    tokio::time::sleep(Duration::from_secs(u64::from(failures))).await;
                }
                log(&format!(
                    "a batch broke off after {arrived} of {total} files ({e}): asking again for the other {}",
                    rest.len()
                ));
            }
        }
    }
    Ok(done)
}

async fn per_file(
    fetcher: &Fetcher,
    root: &Root,
    entries: &[&Entry],
    finish: Finish,
    log: &dyn Fn(&str),
    mut done: Fetched,
) -> Result<Fetched, ClientError> {
    for entry in entries {
        done.bytes += fetch_one(fetcher, root, entry, finish, log).await?;
        done.files += 1;
    }
    Ok(done)
}

/// One request for `entries`; `arrived` counts those verified and placed.
/// A writer thread writes while this reads the stream (see `writer`).
async fn once(
    fetcher: &Fetcher,
    root: &Root,
    entries: &[&Entry],
    finish: Finish,
    arrived: &mut usize,
    done: &mut Fetched,
) -> Result<(), Failure> {
    let paths: Vec<&[u8]> = entries
        .iter()
        .map(|e| e.path.as_os_str().as_bytes())
        .collect();
    let response = fetcher.batch(&paths).await?;
    let mut stream = Stream {
        url: response.url().to_string(),
        response,
        fetcher,
        buf: Bytes::new(),
    };
    let own = root
        .try_clone()
        .map_err(|e| ClientError::local(root.path(), "open", e))?;
    let (tx, rx) = tokio::sync::mpsc::channel(IN_FLIGHT);
    let writer = tokio::task::spawn_blocking(move || writer::run(own, finish, rx));
    let read = read_files(&mut stream, entries, &tx).await;
    drop(tx);
    let (placed, failed) = writer
        .await
        .map_err(|e| ClientError::Setup(format!("the writer of a batch failed: {e}")))?;
    *arrived = placed.files as usize;
    done.files += placed.files;
    done.bytes += placed.bytes;
    match failed {
        Some(e) => Err(Failure::Fatal(e)),
        None => read,
    }
}

/// Each file of the stream, whole, to the writer; stops early when the
/// writer has (its failure is the one to report).
async fn read_files(
    stream: &mut Stream<'_>,
    entries: &[&Entry],
    tx: &Sender<Received>,
) -> Result<(), Failure> {
    for entry in entries {
        let len = stream.length().await?;
        // Shorter is as wrong as longer: a prefix may well match a hash the
        // host chose, and would be fetched again every run.
        if len > entry.size {
            return Err(Failure::Fatal(too_long(entry)));
        }
        if len < entry.size {
            return Err(Failure::Fatal(too_short(entry, len)));
        }
        let mut chunks = Vec::new();
        let mut left = len;
        while left > 0 {
            let chunk = stream.take(left).await?;
            left -= chunk.len() as u64;
            chunks.push(chunk);
        }
        let file = Received {
            entry: (*entry).clone(),
            chunks,
        };
        if tx.send(file).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// The host framed a file shorter than the manifest lists.
fn too_short(entry: &Entry, len: u64) -> ClientError {
    ClientError::Verify {
        path: entry.path.display().to_string(),
        reason: format!(
            "the host's batch gives it {len} bytes, the manifest lists {}",
            entry.size
        ),
    }
}

/// The response body, read in pieces of the sizes the framing asks for.
struct Stream<'f> {
    response: reqwest::Response,
    fetcher: &'f Fetcher,
    url: String,
    buf: Bytes,
}

impl Stream<'_> {
    /// Up to `max` bytes (at least one).
    async fn take(&mut self, max: u64) -> Result<Bytes, ClientError> {
        while self.buf.is_empty() {
            let next = self.fetcher.chunk(&mut self.response).await?;
            self.buf = next.ok_or_else(|| ClientError::Network {
                url: self.url.clone(),
                reason: "the batch ended before every file arrived".into(),
            })?;
        }
        let n = usize::try_from(max)
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        Ok(self.buf.split_to(n))
    }

    /// The next file's length.
    async fn length(&mut self) -> Result<u64, ClientError> {
        let mut raw = [0u8; 8];
        let mut have = 0;
        while have < 8 {
            let piece = self.take((8 - have) as u64).await?;
            raw[have..have + piece.len()].copy_from_slice(&piece);
            have += piece.len();
        }
        Ok(u64::from_be_bytes(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    #[test]
    fn limits_are_read_from_the_header() {
        assert_eq!(
            Limits::parse("files=256, bytes=8388608"),
            Some(Limits {
                files: 256,
                bytes: 8 << 20
            })
        );
        assert_eq!(
            Limits::parse("bytes=10,files=2, zstd=1"),
            Some(Limits {
                files: 2,
                bytes: 10
            })
        );
        for bad in ["", "files=0, bytes=1", "files=x, bytes=1", "files=3"] {
            assert_eq!(Limits::parse(bad), None, "{bad}");
        }
    }

    fn entry(path: &str, size: u64) -> Entry {
        Entry {
            kind: crate::dtp::manifest::Kind::File,
            mode: 0o644,
            size,
            mtime: 0,
            sha256: Some([0; 32]),
            path: PathBuf::from(path),
            target: None,
        }
    }

    #[test]
    fn small_files_are_batched_within_the_limits_large_ones_go_alone() {
        let mut all: Vec<Entry> = (0..10).map(|i| entry(&format!("s{i}"), 100)).collect();
        all.push(entry("big", SMALL + 1));
        let refs: Vec<&Entry> = all.iter().collect();
        let limits = Limits {
            files: 4,
            bytes: 250,
        };
        let jobs = jobs(&refs, Some(limits), 1);
        assert!(matches!(&jobs[0], Job::One(e) if e.path == Path::new("big")));
        let sizes: Vec<usize> = jobs[1..]
            .iter()
            .map(|j| match j {
                Job::Batch(b) => b.len(),
                Job::One(_) => 0,
            })
            .collect();
        assert_eq!(sizes, vec![2, 2, 2, 2, 2], "250 bytes hold two");
        let spread = super::jobs(
            &refs,
            Some(Limits {
                files: 256,
                bytes: 1 << 20,
            }),
            5,
        );
        assert_eq!(spread.len(), 1 + 5, "every connection gets a batch");
        assert_eq!(
            super::jobs(&refs, None, 5).len(),
            11,
            "no batches: per file"
        );
    }
}
