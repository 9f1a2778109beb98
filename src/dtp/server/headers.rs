//! Manifest headers (for ETags and `/api/repos`), read from the very file a
//! response sends and cached while that file stays the same (same inode, size
//! and mtime): a new manifest is installed by rename, so it is a new inode.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::dtp::manifest::{self, Header, ManifestError};

#[derive(Debug, Default)]
pub struct HeaderCache {
    map: Mutex<HashMap<PathBuf, (Stamp, Header)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Stamp {
    fn of(meta: &Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}

impl HeaderCache {
    /// The header of `file` (the open manifest of the repository at `root`).
    /// Blocking: call off the async threads.
    pub fn get(&self, root: &Path, file: &File, meta: &Metadata) -> Result<Header, ManifestError> {
        let stamp = Stamp::of(meta);
        if let Some((s, h)) = self.lock().get(root)
            && *s == stamp
        {
            return Ok(h.clone());
        }
        // Through the descriptor: the header of the file we opened safely,
        // not of whatever the path names a moment later.
        let header = manifest::read_header(&fd_path(file))?;
        self.lock()
            .insert(root.to_path_buf(), (stamp, header.clone()));
        Ok(header)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (Stamp, Header)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn fd_path(file: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// Does an `If-None-Match` value name `etag` (or `*`)? Weak tags compare by
/// their opaque part, as RFC 9110 says for this header.
pub fn matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match() {
        let e = "\"sha256:ab\"";
        assert!(matches(e, e));
        assert!(matches("\"x\", W/\"sha256:ab\"", e));
        assert!(matches("*", e));
        assert!(!matches("\"sha256:ac\"", e));
        assert!(!matches("sha256:ab", e));
    }
}
