//! `data.dsync`: reading, writing and generating manifests (format in [`crate::dtp`]).

use std::path::{Path, PathBuf};

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// One line of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// Relative path, raw bytes (a valid path: see the format).
    pub path: PathBuf,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
    /// File size; 0 for folders and symlinks.
    pub size: u64,
    /// Unix seconds.
    pub mtime: i64,
    /// SHA-256 of a file's content.
    pub sha256: Option<[u8; 32]>,
    /// A symlink's target, raw bytes.
    pub target: Option<PathBuf>,
}

/// The header of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub repo: String,
    pub entries: u64,
    pub bytes: u64,
    pub generated: i64,
    /// `sha256:HEX` of the body.
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub header: Header,
    /// Sorted by path bytes.
    pub entries: Vec<Entry>,
}

/// Bounds a reader enforces on an untrusted manifest.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_entries: u64,
    /// Decompressed size.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 20_000_000,
            max_bytes: 4 << 30,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The manifest is malformed or hostile; `line` is 1-based, 0 for the whole.
    #[error("line {line}: {reason}")]
    Invalid { line: u64, reason: String },
}

impl Manifest {
    /// Compressed bytes, as published.
    pub fn encode(&self) -> Vec<u8> {
        todo!()
    }

    /// Parse and check untrusted bytes (compressed).
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Manifest, ManifestError> {
        let _ = (bytes, limits);
        todo!()
    }

    /// Entries by path, for diffs.
    pub fn find(&self, path: &Path) -> Option<&Entry> {
        let _ = path;
        todo!()
    }
}

/// The header only, read from a manifest file (for `/api/repos` and ETags).
pub fn read_header(file: &Path) -> Result<Header, ManifestError> {
    let _ = file;
    todo!()
}

/// Is this relative path one a manifest never lists (our own files)?
pub fn is_excluded(path: &Path) -> bool {
    let _ = path;
    todo!()
}

/// Walk `root` and build its manifest, reusing the hash of every file whose
/// size, mtime and inode match `root/.dsync-cache` (then rewritten).
pub fn generate(root: &Path, repo: &str) -> Result<Manifest, ManifestError> {
    let _ = (root, repo);
    todo!()
}

/// Write `root/data.dsync` atomically (temp file in `root`, fsync, rename).
pub fn install(root: &Path, manifest: &Manifest) -> std::io::Result<()> {
    let _ = (root, manifest);
    todo!()
}
