//! A walk of a tree in manifest order (raw path bytes), in bounded memory,
//! with folders read ahead on a few threads.
//!
//! Manifests sort entries by their whole path's bytes, which is not the order
//! of a depth-first walk: `a-x` sorts between the folder `a` and `a/b`,
//! because `-` is below `/`. Within one folder, sorting each child by its
//! name, and each subfolder's *contents* by its name followed by `/`, gives
//! exactly that order; so the walk below yields every entry in the order a
//! manifest lists it, and two sorted streams (a manifest, a cache, the tree)
//! can be merged entry by entry instead of being held in maps.
//!
//! Memory is the folders on the current path plus what the readers have read
//! ahead (at most `READ_AHEAD` entries), not the tree: a mirror of millions
//! of files costs what its largest folders cost. Readers take the folder that
//! is needed soonest first; the consumer reads a folder itself rather than
//! wait for one no reader has started, so a full read-ahead never blocks it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Condvar, Mutex, MutexGuard};

use rustix::fs::{AtFlags, FileType};

/// Entries read ahead of the consumer, at most (a few MB).
const READ_AHEAD: usize = 1 << 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    /// A fifo, socket or device.
    Other,
}

/// What `lstat` says of an entry, as much as manifests and caches use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: FileKind,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_ns: i64,
    pub ctime: i64,
    pub ctime_ns: i64,
    pub ino: u64,
}

/// One entry, as the visitor sees it.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    /// Relative path, raw bytes, no leading or trailing `/`.
    pub path: &'a [u8],
    /// The last component of `path`.
    pub name: &'a [u8],
    pub stat: &'a Stat,
    /// A symlink's target.
    pub target: Option<&'a [u8]>,
}

/// Why a walk stopped.
#[derive(Debug)]
pub enum WalkError<E> {
    /// A folder (relative path, empty for the root) could not be read.
    Read { folder: Vec<u8>, error: io::Error },
    /// The visitor said stop.
    Visit(E),
}

/// How to walk: `open` opens a folder by relative path (empty: the root);
/// `descend` says whether to go into a subfolder (its entry is visited
/// either way); `readers` threads read ahead (0: none).
pub struct Walk<'a> {
    pub open: &'a (dyn Fn(&[u8]) -> io::Result<OwnedFd> + Sync),
    pub descend: &'a (dyn Fn(&[u8]) -> bool + Sync),
    pub readers: usize,
}

struct Child {
    name: Vec<u8>,
    stat: Stat,
    target: Option<Vec<u8>>,
}

/// A folder's children and the order to take them in: `(index, into)`,
/// where `into` means "the contents of this subfolder".
struct Listing {
    children: Vec<Child>,
    order: Vec<(u32, bool)>,
}

impl Walk<'_> {
    /// Visit every entry beneath the root in manifest order. A folder that
    /// vanished after its parent was read is taken as empty.
    pub fn run<E>(
        &self,
        mut visit: impl FnMut(Found<'_>) -> Result<(), E>,
    ) -> Result<(), WalkError<E>> {
        let shared = Shared::default();
        std::thread::scope(|s| {
            for _ in 0..self.readers {
                s.spawn(|| self.reader(&shared));
            }
            let result = self.consume(&shared, &mut visit);
            shared.lock().stopped = true;
            shared.wake.notify_all();
            result
        })
    }

    fn consume<E>(
        &self,
        shared: &Shared,
        visit: &mut impl FnMut(Found<'_>) -> Result<(), E>,
    ) -> Result<(), WalkError<E>> {
        let root = self.take(shared, Vec::new())?;
        let mut stack = vec![(Vec::new(), root, 0usize)];
        let mut path = Vec::new();
        while let Some((folder, listing, next)) = stack.last_mut() {
            let Some(&(i, into)) = listing.order.get(*next) else {
                stack.pop();
                continue;
            };
            *next += 1;
            let child = &listing.children[i as usize];
            path.clear();
            path.extend_from_slice(folder);
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&child.name);
            if into {
                let sub = self.take(shared, path.clone())?;
                stack.push((path.clone(), sub, 0));
                continue;
            }
            let found = Found {
                path: &path,
                name: &child.name,
                stat: &child.stat,
                target: child.target.as_deref(),
            };
            visit(found).map_err(WalkError::Visit)?;
        }
        Ok(())
    }

    /// The listing of `folder`: read ahead, being read, or read now.
    fn take<E>(&self, shared: &Shared, folder: Vec<u8>) -> Result<Listing, WalkError<E>> {
        let read = {
            let mut state = shared.lock();
            loop {
                if let Some(read) = state.ready.remove(&folder) {
                    if let Ok(listing) = &read {
                        state.buffered -= listing.children.len();
                    }
                    break Some(read);
                }
                if !state.busy.contains(&folder) {
                    // No reader has it: read it here rather than wait.
                    state.todo.remove(&order_key(&folder));
                    break None;
                }
                state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        };
        let read = read.unwrap_or_else(|| self.read(&folder));
        let mut state = shared.lock();
        let listing = match read {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !folder.is_empty() => Listing {
                children: Vec::new(),
                order: Vec::new(),
            },
            Err(error) => return Err(WalkError::Read { folder, error }),
        };
        // Its subfolders are needed next, in this order: let the readers start.
        for &(i, into) in &listing.order {
            if into {
                let mut key = folder.clone();
                if !key.is_empty() {
                    key.push(b'/');
                }
                key.extend_from_slice(&listing.children[i as usize].name);
                key.push(b'/');
                state.todo.insert(key);
            }
        }
        drop(state);
        shared.wake.notify_all();
        Ok(listing)
    }

    fn reader(&self, shared: &Shared) {
        loop {
            let folder = {
                let mut state = shared.lock();
                loop {
                    if state.stopped {
                        return;
                    }
                    if state.buffered < READ_AHEAD
                        && let Some(mut key) = state.todo.pop_first()
                    {
                        key.pop(); // the `/` of the order key
                        state.busy.insert(key.clone());
                        break key;
                    }
                    state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            };
            let read = self.read(&folder);
            let mut state = shared.lock();
            state.busy.remove(&folder);
            if let Ok(listing) = &read {
                state.buffered += listing.children.len();
            }
            state.ready.insert(folder, read);
            drop(state);
            shared.wake.notify_all();
        }
    }

    /// Read, `lstat` and sort one folder's entries.
    fn read(&self, folder: &[u8]) -> io::Result<Listing> {
        let dir = (self.open)(folder)?;
        let mut children = Vec::new();
        for entry in rustix::fs::Dir::read_from(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if matches!(name.to_bytes(), b"." | b"..") {
                continue;
            }
            let st = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Gone since the folder was read: it is simply not there.
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            let stat = Stat {
                kind: match FileType::from_raw_mode(st.st_mode as _) {
                    FileType::RegularFile => FileKind::File,
                    FileType::Directory => FileKind::Dir,
                    FileType::Symlink => FileKind::Symlink,
                    _ => FileKind::Other,
                },
                mode: st.st_mode as u32 & 0o7777,
                size: st.st_size as u64,
                mtime: st.st_mtime as i64,
                mtime_ns: st.st_mtime_nsec as i64,
                ctime: st.st_ctime as i64,
                ctime_ns: st.st_ctime_nsec as i64,
                ino: st.st_ino as u64,
            };
            let target = match stat.kind {
                FileKind::Symlink => match rustix::fs::readlinkat(&dir, name, Vec::new()) {
                    Ok(t) => Some(t.into_bytes()),
                    Err(rustix::io::Errno::NOENT) => continue,
                    Err(e) => return Err(e.into()),
                },
                _ => None,
            };
            children.push(Child {
                name: name.to_bytes().to_vec(),
                stat,
                target,
            });
        }
        let mut order = Vec::with_capacity(children.len() + 8);
        for (i, child) in children.iter().enumerate() {
            order.push((i as u32, false));
            if child.stat.kind == FileKind::Dir {
                let mut rel = folder.to_vec();
                if !rel.is_empty() {
                    rel.push(b'/');
                }
                rel.extend_from_slice(&child.name);
                if (self.descend)(&rel) {
                    order.push((i as u32, true));
                }
            }
        }
        order.sort_unstable_by(|a, b| {
            let key = |(i, into): (u32, bool)| {
                let slash: &[u8] = if into { b"/" } else { b"" };
                children[i as usize].name.iter().chain(slash)
            };
            key(*a).cmp(key(*b))
        });
        Ok(Listing { children, order })
    }
}

/// The order in which the consumer takes folders: their path and a `/`.
fn order_key(folder: &[u8]) -> Vec<u8> {
    let mut key = folder.to_vec();
    key.push(b'/');
    key
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// Folders to read, by [`order_key`]: the first is needed soonest.
    todo: BTreeSet<Vec<u8>>,
    busy: HashSet<Vec<u8>>,
    ready: HashMap<Vec<u8>, io::Result<Listing>>,
    /// Entries in `ready`.
    buffered: usize,
    stopped: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn walk_all(root: &std::path::Path, readers: usize) -> Vec<(String, FileKind)> {
        let root_fd: OwnedFd = std::fs::File::open(root).unwrap().into();
        let open = |rel: &[u8]| -> io::Result<OwnedFd> {
            let rel = if rel.is_empty() { &b"."[..] } else { rel };
            Ok(rustix::fs::openat(
                &root_fd,
                rel,
                rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::RDONLY,
                rustix::fs::Mode::empty(),
            )?)
        };
        let descend = |rel: &[u8]| rel != b"skip";
        let walk = Walk {
            open: &open,
            descend: &descend,
            readers,
        };
        let mut seen = Vec::new();
        walk.run(|f| -> Result<(), ()> {
            seen.push((String::from_utf8(f.path.to_vec()).unwrap(), f.stat.kind));
            Ok(())
        })
        .unwrap();
        seen
    }

    #[test]
    fn yields_manifest_order_with_and_without_readers() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        for d in ["a/b", "a-x", "a0", "skip/deep", "z/y/x"] {
            std::fs::create_dir_all(t.join(d)).unwrap();
        }
        for f in [
            "a/b/f",
            "a.txt",
            "a-x/f",
            "a/c",
            "z/y/x/w",
            "skip/deep/f",
            "a/b-c",
        ] {
            std::fs::write(t.join(f), f).unwrap();
        }
        symlink("a", t.join("l")).unwrap();
        for n in 0..200 {
            std::fs::create_dir_all(t.join(format!("many/{n}"))).unwrap();
            std::fs::write(t.join(format!("many/{n}/f")), "x").unwrap();
        }
        let mut want = walk_all(t, 0);
        assert!(want.iter().any(|(p, _)| p == "skip"), "skip is visited");
        assert!(
            !want.iter().any(|(p, _)| p.starts_with("skip/")),
            "not entered"
        );
        let sorted = {
            let mut s = want.clone();
            s.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            s
        };
        assert_eq!(want, sorted, "byte order of whole paths");
        assert_eq!(want.len(), 16 + 400);
        for readers in [1, 3] {
            assert_eq!(walk_all(t, readers), want, "{readers} readers");
        }
        want.retain(|(p, _)| p == "l");
        assert_eq!(want, [("l".to_string(), FileKind::Symlink)]);
    }

    #[test]
    fn a_visitor_error_stops_the_walk() {
        let tmp = tempfile::tempdir().unwrap();
        for n in 0..50 {
            std::fs::write(tmp.path().join(format!("{n:02}")), "x").unwrap();
        }
        let root: OwnedFd = std::fs::File::open(tmp.path()).unwrap().into();
        let open = |_: &[u8]| root.try_clone();
        let walk = Walk {
            open: &open,
            descend: &|_| true,
            readers: 2,
        };
        let mut n = 0;
        let result = walk.run(|_| {
            n += 1;
            if n == 10 { Err("enough") } else { Ok(()) }
        });
        assert!(matches!(result, Err(WalkError::Visit("enough"))));
        assert_eq!(n, 10);
    }
}
