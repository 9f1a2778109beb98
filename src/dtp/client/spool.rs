//! The fetched manifest, kept in an unnamed file beside the mirror rather
//! than in memory: read entry by entry for the plan, and copied as fetched
//! into `data.dsync` at the end.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::ClientError;

use crate::dtp::manifest::{self, EntryReader, Limits, ManifestError};

/// The manifest's compressed bytes, as fetched.
pub struct Spool {
    file: File,
    dir: PathBuf,
    /// Its whole body's digest was checked as it arrived (see `precheck`).
    digest_checked: bool,
}

/// A reader of a [`Spool`] from its start, with an offset of its own.
pub struct At<'f> {
    file: &'f File,
    pos: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Spool {
    /// An empty spool in `dir` (the mirror's own file system: it has room
    /// for a manifest, and `/tmp` may be memory).
    pub fn new(dir: &Path) -> Result<Spool, ClientError> {
        Ok(Spool {
            file: tempfile::tempfile_in(dir).map_err(spool_error(dir))?,
            dir: dir.to_path_buf(),
            digest_checked: false,
        })
    }

    /// Another unnamed file beside it (the plan's list of files to fetch).
    pub fn scratch(&self) -> Result<File, ClientError> {
        tempfile::tempfile_in(&self.dir).map_err(spool_error(&self.dir))
    }

    /// Empty it (before a second try).
    pub fn clear(&mut self) -> Result<(), ClientError> {
        use std::io::Seek;
        self.digest_checked = false;
        (self.file.set_len(0))
            .and_then(|()| self.file.rewind())
            .map_err(spool_error(&self.dir))
    }

    /// Bytes fetched, after those before.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        use std::io::Write;
        self.file.write_all(bytes).map_err(spool_error(&self.dir))
    }

    /// Everything appended so far was checked whole as it came, its digest
    /// included: reading it need not hash it again.
    pub fn mark_digest_checked(&mut self) {
        self.digest_checked = true;
    }

    /// Its entries, checked as they come (see [`EntryReader`]).
    pub fn entries(
        &self,
        limits: &Limits,
    ) -> Result<EntryReader<BufReader<At<'_>>>, ManifestError> {
        let reader = EntryReader::new(BufReader::with_capacity(1 << 16, self.bytes()), limits)?;
        Ok(match self.digest_checked {
            true => reader.digest_checked_already(),
            false => reader,
        })
    }

    /// Write it into `root/data.dsync`, atomically, the same bytes as fetched.
    pub fn install(&self, root: &Path) -> io::Result<()> {
        manifest::install_from(root, &mut self.bytes())
    }

    fn bytes(&self) -> At<'_> {
        At {
            file: &self.file,
            pos: 0,
        }
    }
}

/// A [`ClientError::Spool`] for a temporary file in `dir`.
pub fn spool_error(dir: &Path) -> impl FnOnce(io::Error) -> ClientError + '_ {
    move |source| ClientError::Spool {
        dir: dir.to_path_buf(),
        source,
    }
}
