//! Downloads: many at once, each into `.NAME.dsync-part` beside its final
//! name, hashed while written and checked against the manifest before it may
//! take the final name. A part left by an earlier run is resumed.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rustix::fs::{Mode, OFlags};
use sha2::{Digest, Sha256};

use super::batch::{self, Job};
use super::diff::file_mode;
use super::error::ClientError;
use super::fetch::{Fetcher, Start};
use super::safe::{self, Root};
use super::sink::Sink;
use super::space;
use crate::dtp::manifest::Entry;

/// Where a verified download goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Its final name at once (stage one).
    Rename,
    /// It stays in its part file until the whole stage is verified (stage two).
    Keep,
}

/// Files and bytes a stage transferred.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fetched {
    pub files: u64,
    pub bytes: u64,
}

/// Tries per file for network trouble (resuming each time) before the sync fails.
pub(super) const TRIES: u32 = 4;

/// Fetch `entries` with up to `connections` at a time. The first failure
/// stops the stage (downloads in flight keep their parts, for the next run).
pub async fn fetch_all(
    fetcher: &Fetcher,
    root: &Root,
    entries: &[&Entry],
    finish: Finish,
    connections: usize,
    stage: &str,
    log: &dyn Fn(&str),
) -> Result<Fetched, ClientError> {
    let total = entries.len();
    let mut done = Fetched::default();
    let mut last_report = Instant::now();
    let jobs = batch::jobs(entries, fetcher.batch_limits(), connections);
    let mut downloads = futures_util::stream::iter(jobs.into_iter().map(|job| async move {
        match job {
            Job::One(entry) => fetch_one(fetcher, root, entry, finish, log)
                .await
                .map(|bytes| Fetched { files: 1, bytes }),
            Job::Batch(entries) => batch::fetch(fetcher, root, &entries, finish, log).await,
        }
    }))
    .buffer_unordered(connections.max(1));
    // A signal stops the downloads in flight too (a big file may take hours);
    // their part files stay, to be resumed by the next run.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let result = tokio::select! {
            next = downloads.next() => match next {
                Some(result) => result,
                None => break,
            },
            _ = tick.tick() => {
                if let Some(signal) = crate::signals::received() {
                    return Err(ClientError::Stopped(signal));
                }
                continue;
            }
        };
        let got = result?;
        done.bytes += got.bytes;
        done.files += got.files;
        if last_report.elapsed() >= Duration::from_secs(30) {
            last_report = Instant::now();
            log(&format!(
                "{stage}: {}/{total} files, {} bytes so far",
                done.files, done.bytes
            ));
        }
    }
    Ok(done)
}

/// One file, tried again on network trouble; returns the bytes transferred.
pub(super) async fn fetch_one(
    fetcher: &Fetcher,
    root: &Root,
    entry: &Entry,
    finish: Finish,
    log: &dyn Fn(&str),
) -> Result<u64, ClientError> {
    let mut fetched = 0;
    let mut attempt = 1;
    loop {
        match attempt_once(fetcher, root, entry, finish, &mut fetched).await {
            Ok(()) => return Ok(fetched),
            Err(Failure::Retry(e)) if attempt < TRIES => {
                log(&format!(
                    "{}: try {attempt}/{TRIES} failed: {e}",
                    entry.path.display()
                ));
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
            }
            Err(Failure::Retry(e) | Failure::Fatal(e)) => return Err(e),
            Err(Failure::StalePart) => {
                log(&format!(
                    "{}: the partial file of an earlier run was outdated: fetching it again",
                    entry.path.display()
                ));
            }
        }
        attempt += 1;
    }
}

enum Failure {
    /// Network trouble or a busy host: resume a little later.
    Retry(ClientError),
    /// A resumed part did not verify: it is gone, try once from zero.
    StalePart,
    Fatal(ClientError),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let retry = match &e {
            ClientError::Network { .. } => true,
            ClientError::Http { status, .. } => *status >= 500,
            _ => false,
        };
        if retry {
            Failure::Retry(e)
        } else {
            Failure::Fatal(e)
        }
    }
}

async fn attempt_once(
    fetcher: &Fetcher,
    root: &Root,
    entry: &Entry,
    finish: Finish,
    fetched: &mut u64,
) -> Result<(), Failure> {
    let rel = &entry.path;
    let (dir, name) = root
        .parent(rel)
        .map_err(|e| ClientError::local(root.path().join(rel), "open the folder of", e))?;
    let part = safe::part_name(name);
    let part_path = || root.path().join(rel.with_file_name(&part));
    let (mut file, mut have, mut hasher) = open_part(&dir, &part, entry.size)
        .await
        .map_err(|e| ClientError::local(part_path(), "open", e))?;
    let mut resumed = have > 0;
    if have < entry.size {
        let from = have;
        let mut response = match fetcher.file(rel.as_os_str().as_bytes(), from).await? {
            Start::Rest(response) => response,
            Start::Whole(response) => {
                if have > 0 {
                    // The host ignored the range: start the file over.
                    file.set_len(0)
                        .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
                        .map_err(|e| ClientError::local(part_path(), "truncate", e))?;
                    have = 0;
                    hasher = Sha256::new();
                    resumed = false;
                }
                response
            }
        };
        let url = response.url().to_string();
        let sink = Sink::start(file, hasher);
        let (broke, got) = receive(fetcher, &mut response, &sink, entry, have, fetched).await;
        (file, hasher) = sink.finish().await.map_err(|e| {
            if space::is_full(&e) {
                // It cannot complete here: kept, it would only hold the disk full.
                discard(&dir, &part);
            }
            ClientError::local(part_path(), "write", e)
        })?;
        have = got;
        match broke {
            Some(Failure::Fatal(e)) => {
                discard(&dir, &part);
                return Err(Failure::Fatal(e));
            }
            Some(failure) => return Err(failure),
            None => {}
        }
        if have < entry.size {
            // Kept: the next try resumes it.
            return Err(Failure::Retry(ClientError::Network {
                url,
                reason: format!("the transfer ended after {have} of {} bytes", entry.size),
            }));
        }
    }
    if let Err(e) = verify(entry, hasher) {
        discard(&dir, &part);
        return Err(if resumed {
            Failure::StalePart
        } else {
            Failure::Fatal(e)
        });
    }
    place(root, &dir, (&part, name), file, entry, finish)?;
    Ok(())
}

/// The body into `sink` until it ends, breaks (`Retry`) or is longer than
/// the manifest says (`Fatal`); how many bytes the part then holds.
async fn receive(
    fetcher: &Fetcher,
    response: &mut reqwest::Response,
    sink: &Sink,
    entry: &Entry,
    mut have: u64,
    fetched: &mut u64,
) -> (Option<Failure>, u64) {
    loop {
        let chunk = match fetcher.chunk(response).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return (None, have),
            Err(e) => return (Some(e.into()), have),
        };
        if have + chunk.len() as u64 > entry.size {
            return (Some(Failure::Fatal(too_long(entry))), have);
        }
        let len = chunk.len() as u64;
        if !sink.write(chunk).await {
            return (None, have); // the writer's error comes with its finish
        }
        have += len;
        *fetched += len;
    }
}

/// Does the hash of what was received match the manifest's?
pub(super) fn verify(entry: &Entry, hasher: Sha256) -> Result<(), ClientError> {
    let got: [u8; 32] = hasher.finalize().into();
    if Some(got) == entry.sha256 {
        return Ok(());
    }
    Err(ClientError::Verify {
        path: entry.path.display().to_string(),
        reason: format!(
            "its SHA-256 is {}, the manifest says {}",
            hex(&got),
            entry.sha256.map_or_else(|| "nothing".into(), |h| hex(&h))
        ),
    })
}

/// The host sent more than the manifest lists.
pub(super) fn too_long(entry: &Entry) -> ClientError {
    ClientError::Verify {
        path: entry.path.display().to_string(),
        reason: format!(
            "the host sent more than the {} bytes the manifest lists",
            entry.size
        ),
    }
}

/// The manifest's mode and mtime.
pub(super) fn set_meta(file: &File, entry: &Entry) -> std::io::Result<()> {
    rustix::fs::fchmod(file, Mode::from_raw_mode(file_mode(entry)))?;
    rustix::fs::futimens(file, &safe::times(entry.mtime))?;
    Ok(())
}

/// A verified part gets its mode and mtime, and in stage one its name.
pub(super) fn place(
    root: &Root,
    dir: &OwnedFd,
    (part, name): (&OsStr, &OsStr),
    file: File,
    entry: &Entry,
    finish: Finish,
) -> Result<(), ClientError> {
    let rel = &entry.path;
    set_meta(&file, entry).map_err(|e| {
        let at = root.path().join(rel.with_file_name(part));
        ClientError::local(at, "set the mode and mtime of", e)
    })?;
    drop(file);
    if finish == Finish::Rename {
        safe::replace(dir.as_fd(), part, name)
            .map_err(|e| ClientError::local(root.path().join(rel), "rename into", e))?;
    }
    Ok(())
}

/// Put a verified stage-two part in place.
pub fn install_part(root: &Root, rel: &Path) -> Result<(), ClientError> {
    let (dir, name) = root
        .parent(rel)
        .map_err(|e| ClientError::local(root.path().join(rel), "open the folder of", e))?;
    safe::replace(dir.as_fd(), &safe::part_name(name), name)
        .map_err(|e| ClientError::local(root.path().join(rel), "rename into", e))
}

/// Create the part file, or open one left by an earlier run and hash it so
/// the download goes on where it stopped. Anything else by that name (a
/// symlink, a folder, a part longer than the file, a hard link: appending
/// would change the file it shares with a name outside the mirror) is
/// removed first.
async fn open_part(dir: &OwnedFd, part: &OsStr, size: u64) -> std::io::Result<(File, u64, Sha256)> {
    // Most parts are new: one syscall. `O_EXCL` never follows a symlink.
    match create_part(dir, part) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        other => return other.map(|file| (file, 0, Sha256::new())),
    }
    let existing = rustix::fs::openat(
        dir,
        part,
        OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()
    .filter(|fd| {
        rustix::fs::fstat(fd).is_ok_and(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode as _).is_file()
                && st.st_nlink == 1
                && st.st_size as u64 <= size
        })
    });
    if let Some(fd) = existing {
        let file = File::from(fd);
        // Hashing a large prefix blocks: not on the thread driving the downloads.
        return tokio::task::spawn_blocking(move || hash_prefix(file))
            .await
            .map_err(std::io::Error::other)?;
    }
    safe::remove_any(dir.as_fd(), part)?;
    Ok((create_part(dir, part)?, 0, Sha256::new()))
}

/// An empty part, whatever an earlier run left by that name.
pub(super) fn new_part(dir: &OwnedFd, part: &OsStr) -> std::io::Result<File> {
    match create_part(dir, part) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            safe::remove_any(dir.as_fd(), part)?;
            create_part(dir, part)
        }
        other => other,
    }
}

fn create_part(dir: &OwnedFd, part: &OsStr) -> std::io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        part,
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}

fn hash_prefix(mut file: File) -> std::io::Result<(File, u64, Sha256)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    // The read left the offset at the end, where writing goes on.
    Ok((file, len, hasher))
}

pub(super) fn discard(dir: &OwnedFd, part: &OsStr) {
    let _ = rustix::fs::unlinkat(dir, part, rustix::fs::AtFlags::empty());
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
