//! The writing side of a batch, on a blocking thread of its own: the async
//! side reads the stream and hands over each whole file; this side writes,
//! hashes, verifies and places them in order. Several batches so write at
//! once on every core, while one thread alone parses the streams.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::Receiver;

use super::download::{Fetched, Finish, verify};
use super::error::ClientError;
use super::safe::{self, Root};
use super::target::Target;
use crate::dtp::manifest::Entry;

/// One file of a batch, all its bytes received.
pub struct Received {
    pub entry: Entry,
    pub chunks: Vec<Bytes>,
}

/// Write each file sent until the channel closes or one fails: what was
/// placed, and the failure that stopped it.
pub fn run(
    root: Root,
    finish: Finish,
    mut rx: Receiver<Received>,
) -> (Fetched, Option<ClientError>) {
    let mut placed = Fetched::default();
    let mut dirs = Dirs::default();
    while let Some(file) = rx.blocking_recv() {
        if let Err(e) = write(&root, &mut dirs, &file, finish) {
            return (placed, Some(e));
        }
        placed.files += 1;
        placed.bytes += file.chunks.iter().map(|c| c.len() as u64).sum::<u64>();
    }
    (placed, None)
}

/// One file: written and hashed, verified, then placed; nothing of it
/// stays when it does not verify.
fn write(root: &Root, dirs: &mut Dirs, file: &Received, finish: Finish) -> Result<(), ClientError> {
    let entry = &file.entry;
    let (dir, name) = dirs.parent(root, &entry.path)?;
    let part = safe::part_name(name);
    let local = |op, e| ClientError::local(root.path().join(&entry.path), op, e);
    let mut target =
        Target::open(root, dir, &part, finish).map_err(|e| local("create the part of", e))?;
    let mut hasher = Sha256::new();
    for chunk in &file.chunks {
        if let Err(e) = target.file().write_all(chunk) {
            target.discard(dir, &part);
            return Err(local("write the part of", e));
        }
        hasher.update(chunk);
    }
    if let Err(e) = verify(entry, hasher) {
        target.discard(dir, &part);
        return Err(e);
    }
    target.finish(root, dir, (&part, name), entry, finish)
}

/// The folder of the last file, kept open: a batch's files are in manifest
/// order, so mostly in the same folder.
#[derive(Default)]
struct Dirs {
    last: Option<(PathBuf, OwnedFd)>,
}

impl Dirs {
    fn parent<'p>(
        &mut self,
        root: &Root,
        rel: &'p Path,
    ) -> Result<(&OwnedFd, &'p OsStr), ClientError> {
        let folder = rel.parent().unwrap_or(Path::new(""));
        let name = rel.file_name().unwrap_or_default();
        if self.last.as_ref().is_none_or(|(p, _)| p != folder) {
            let fd = root
                .open_dir(folder)
                .map_err(|e| ClientError::local(root.path().join(rel), "open the folder of", e))?;
            self.last = Some((folder.to_path_buf(), fd));
        }
        let (_, fd) = self.last.as_ref().expect("just set");
        Ok((fd, name))
    }
}
