//! The local tree in manifest order (see [`crate::dtp::ordered_walk`]), so
//! the plan is a merge of two sorted streams rather than a map of the tree.
//! Symlinks are recorded, never followed; our own and excluded entries are
//! not entered.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::error::ClientError;
use super::safe::{self, Root};
use crate::dtp::manifest;
use crate::dtp::ordered_walk::{Walk, WalkError};

pub use crate::dtp::ordered_walk::{FileKind as LocalKind, Found as Local};

/// Why a walk stopped early: a local problem, or the visitor's own reason.
pub enum Stop<E> {
    Failed(ClientError),
    Visit(E),
}

/// Visit every local entry beneath `root` in manifest order, folders read
/// ahead by `readers` threads.
pub fn walk<E>(
    root: &Root,
    readers: usize,
    visit: impl FnMut(Local<'_>) -> Result<(), E>,
) -> Result<(), Stop<E>> {
    let open = |rel: &[u8]| root.open_dir(Path::new(OsStr::from_bytes(rel)));
    let descend = |rel: &[u8]| !skipped(rel);
    let walk = Walk {
        open: &open,
        descend: &descend,
        readers,
    };
    walk.run(visit).map_err(|e| match e {
        WalkError::Visit(e) => Stop::Visit(e),
        WalkError::Read { folder, error } => Stop::Failed(ClientError::local(
            root.path().join(OsStr::from_bytes(&folder)),
            "read",
            error,
        )),
    })
}

/// Ours (a part file) or never listed: not entered, not compared.
fn skipped(rel: &[u8]) -> bool {
    let name = rel.rsplit(|&b| b == b'/').next().unwrap_or(rel);
    safe::is_ours(name) || manifest::is_excluded(Path::new(OsStr::from_bytes(rel)))
}

/// Is this entry one of our own leftovers (removed after a good run)?
pub fn is_ours(found: &Local<'_>) -> bool {
    safe::is_ours(found.name)
}

/// Is this entry one a manifest never lists (left alone)?
pub fn is_excluded(found: &Local<'_>) -> bool {
    manifest::is_excluded(Path::new(OsStr::from_bytes(found.path)))
}

/// A relative path from raw bytes.
pub fn path_buf(raw: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn walk_skips_ours_and_excluded_and_keeps_order() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        for d in ["a/b/c", "a-x", "d", ".x.dsync-part"] {
            std::fs::create_dir_all(t.join(d)).unwrap();
        }
        std::fs::write(t.join("a/b/c/file"), "12345").unwrap();
        std::fs::write(t.join("a/.y.dsync-part"), "1").unwrap();
        std::fs::write(t.join(".x.dsync-part/inner"), "1").unwrap();
        std::fs::write(t.join("data.dsync"), "m").unwrap();
        symlink("/etc", t.join("d/evil")).unwrap();
        let root = Root::open(t).unwrap();
        let mut seen = Vec::new();
        walk(&root, 2, |f| -> Result<(), ()> {
            let what = if is_ours(&f) {
                "ours"
            } else if is_excluded(&f) {
                "excluded"
            } else {
                "entry"
            };
            seen.push((String::from_utf8(f.path.to_vec()).unwrap(), what));
            Ok(())
        })
        .unwrap_or_else(|_| panic!("walk failed"));
        let want = [
            (".x.dsync-part", "ours"),
            ("a", "entry"),
            ("a-x", "entry"),
            ("a/.y.dsync-part", "ours"),
            ("a/b", "entry"),
            ("a/b/c", "entry"),
            ("a/b/c/file", "entry"),
            ("d", "entry"),
            ("d/evil", "entry"),
            ("data.dsync", "excluded"),
        ];
        let want: Vec<_> = want.iter().map(|(p, w)| (p.to_string(), *w)).collect();
        assert_eq!(seen, want);
    }
}
