//! The local tree, read by a few threads at once: on a mirror of millions of
//! files the walk is bound by `stat` latency, not by one CPU.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use rustix::fs::{AtFlags, FileType};

use super::safe::{self, Root};
use crate::dtp::manifest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalKind {
    File,
    Dir,
    Symlink,
    /// A fifo, socket or device: never what a manifest lists.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEntry {
    pub kind: LocalKind,
    pub size: u64,
    pub mtime: i64,
    pub mode: u32,
    pub target: Option<PathBuf>,
}

/// What the walk found.
#[derive(Debug, Default)]
pub struct Local {
    /// Every entry but ours and the excluded ones, by relative path.
    pub entries: HashMap<PathBuf, LocalEntry>,
    /// Our own leftovers (`*.dsync-part`).
    pub ours: Vec<PathBuf>,
}

struct Queue {
    folders: VecDeque<PathBuf>,
    /// Folders taken but not yet read: the walk ends when none is left.
    busy: usize,
    failed: Option<(PathBuf, io::Error)>,
}

/// Walk `root` with `threads` threads. Symlinks are recorded, not followed.
pub fn walk(root: &Root, threads: usize) -> Result<Local, (PathBuf, io::Error)> {
    let queue = Mutex::new(Queue {
        folders: VecDeque::from([PathBuf::new()]),
        busy: 0,
        failed: None,
    });
    let wake = Condvar::new();
    let results: Vec<Local> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| s.spawn(|| worker(root, &queue, &wake)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let queue = queue.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(failed) = queue.failed {
        return Err(failed);
    }
    let mut all = Local::default();
    for part in results {
        all.entries.extend(part.entries);
        all.ours.extend(part.ours);
    }
    Ok(all)
}

fn worker(root: &Root, queue: &Mutex<Queue>, wake: &Condvar) -> Local {
    let mut found = Local::default();
    loop {
        let folder = {
            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if q.failed.is_some() {
                    return found;
                }
                if let Some(folder) = q.folders.pop_front() {
                    q.busy += 1;
                    break folder;
                }
                if q.busy == 0 {
                    return found;
                }
                q = wake.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let result = read_folder(root, &folder, &mut found);
        let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
        q.busy -= 1;
        match result {
            Ok(subfolders) => q.folders.extend(subfolders),
            Err(e) => {
                q.failed.get_or_insert((root.path().join(&folder), e));
            }
        }
        wake.notify_all();
    }
}

/// Record the entries of one folder; return its subfolders to walk.
fn read_folder(root: &Root, folder: &Path, found: &mut Local) -> io::Result<Vec<PathBuf>> {
    let dir = root.open_dir(folder)?;
    let mut subfolders = Vec::new();
    for entry in rustix::fs::Dir::read_from(&dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let rel = folder.join(OsString::from_vec(name.to_vec()));
        if safe::is_ours(name) {
            found.ours.push(rel);
            continue;
        }
        if manifest::is_excluded(&rel) {
            continue;
        }
        let st = match rustix::fs::statat(&dir, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Gone since the folder was read: it is simply not there.
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        let kind = match FileType::from_raw_mode(st.st_mode as _) {
            FileType::RegularFile => LocalKind::File,
            FileType::Directory => LocalKind::Dir,
            FileType::Symlink => LocalKind::Symlink,
            _ => LocalKind::Other,
        };
        let target = if kind == LocalKind::Symlink {
            let raw = rustix::fs::readlinkat(&dir, entry.file_name(), Vec::new())?;
            Some(PathBuf::from(std::ffi::OsStr::from_bytes(raw.as_bytes())))
        } else {
            None
        };
        if kind == LocalKind::Dir {
            subfolders.push(rel.clone());
        }
        found.entries.insert(
            rel,
            LocalEntry {
                kind,
                size: st.st_size as u64,
                mtime: st.st_mtime as i64,
                mode: st.st_mode as u32 & 0o7777,
                target,
            },
        );
    }
    Ok(subfolders)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn walk_records_everything_but_ours_and_excluded() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        for d in ["a/b/c", "d", "e/f"] {
            std::fs::create_dir_all(t.join(d)).unwrap();
        }
        std::fs::write(t.join("a/b/c/file"), "12345").unwrap();
        std::fs::write(t.join("a/.x.dsync-part"), "1").unwrap();
        std::fs::write(t.join("data.dsync"), "m").unwrap();
        symlink("/etc", t.join("d/evil")).unwrap();
        let root = Root::open(t).unwrap();
        let local = walk(&root, 3).unwrap();
        let mut paths: Vec<_> = local.entries.keys().cloned().collect();
        paths.sort();
        let want: Vec<PathBuf> = ["a", "a/b", "a/b/c", "a/b/c/file", "d", "d/evil", "e", "e/f"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(paths, want);
        assert_eq!(local.ours, [PathBuf::from("a/.x.dsync-part")]);
        let file = &local.entries[Path::new("a/b/c/file")];
        assert_eq!((file.kind, file.size), (LocalKind::File, 5));
        let link = &local.entries[Path::new("d/evil")];
        assert_eq!(link.kind, LocalKind::Symlink);
        assert_eq!(link.target.as_deref(), Some(Path::new("/etc")));
    }
}
