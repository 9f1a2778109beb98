//! Building a manifest from a tree: walk it in manifest order, reuse cached
//! hashes (the cache is read alongside, in the same order), hash the rest on
//! a few threads, rewrite the cache; memory is a window of entries, not the
//! tree.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{Mode, OFlags};
use sha2::{Digest, Sha256};

use super::cache::{Lookup, Stamp, Writer as CacheWriter};
use super::{
    Entry, Header, Kind, Manifest, ManifestError, ManifestWriter, install_written, io_at,
    is_excluded, path_bytes, path_problem,
};
use crate::dtp::ordered_walk::{FileKind, Found, Walk, WalkError};

/// How recent a change must be for its hash not to be cached. File times
/// come from a clock that ticks coarsely (a jiffy; a second or two on some
/// file systems): a file written again within the tick in which we hashed it
/// would keep its stamp, so files changed this recently are hashed again
/// next time instead of trusted.
const RACY: Duration = Duration::from_secs(2);
/// Hashing threads at most (beyond this, disks rather than cores limit).
const MAX_THREADS: usize = 8;
/// Threads reading folders ahead of the walk (a warm run is mostly `lstat`).
const WALK_THREADS: usize = 3;
/// Entries held before they are handed on (a few MB), and files to hash
/// together: enough for the hashing threads to share, few enough that a
/// million-entry tree is never held whole.
const WINDOW: usize = 1 << 16;
const HASH_BATCH: usize = 1024;

/// What [`generate_with_stats`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenStats {
    /// Regular files listed.
    pub files: u64,
    /// Files read and hashed.
    pub hashed: u64,
    /// Files whose hash came from the cache.
    pub reused: u64,
    /// Bytes read to hash.
    pub bytes_hashed: u64,
    /// Why the hash cache could not be rewritten (the manifest is fine; the
    /// next run hashes more).
    pub cache_error: Option<String>,
}

/// Walk `root` and build its manifest, hashing every file.
///
/// Symlinks are listed, never followed (`root` itself may be one); sockets,
/// fifos and devices are left out. A file that vanishes during the walk is
/// left out too; one that cannot be read is an error naming it. The header's
/// `generated` is now.
pub fn generate(root: &Path, repo: &str) -> Result<Manifest, ManifestError> {
    generate_with_stats(root, repo, None).map(|(m, _)| m)
}

/// [`generate`], also saying how much was hashed and reused. With a `cache`
/// file (kept out of the tree: `HOME/cache/NAME`), the hash of every file
/// whose size, mtime and inode (and ctime) match it is reused; it is then
/// rewritten. The manifest is held in memory: a large tree is better served
/// by [`generate_and_install`].
pub fn generate_with_stats(
    root: &Path,
    repo: &str,
    cache: Option<&Path>,
) -> Result<(Manifest, GenStats), ManifestError> {
    let generated = unix_now();
    let mut entries = Vec::new();
    let stats = build(root, cache, &mut |entry| {
        entries.push(entry);
        Ok(())
    })?;
    Ok((Manifest::new(repo, generated, entries), stats))
}

/// [`generate_with_stats`] straight into `root/data.dsync`, in memory that
/// does not grow with the tree: entries are written as the walk finds them
/// (in manifest order), to an unnamed file in `spool_dir` (out of the
/// served tree) until the header can be written before them.
pub fn generate_and_install(
    root: &Path,
    repo: &str,
    cache: Option<&Path>,
    spool_dir: &Path,
) -> Result<(Header, GenStats), ManifestError> {
    let generated = unix_now();
    std::fs::create_dir_all(spool_dir).map_err(io_at(spool_dir))?;
    let spool = tempfile::tempfile_in(spool_dir).map_err(io_at(spool_dir))?;
    let mut writer = ManifestWriter::new(spool);
    let stats = build(root, cache, &mut |entry| writer.push(&entry))?;
    let file = root.join(crate::dtp::MANIFEST);
    let header = install_written(root, writer, repo, generated).map_err(io_at(&file))?;
    Ok((header, stats))
}

fn unix_now() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH);
    now.map_or(0, |d| d.as_secs() as i64)
}

/// Walk `root` in manifest order and hand every entry to `sink`, hashing
/// what the cache does not know (in windows, on a few threads); rewrite the
/// cache as it goes.
fn build(
    root: &Path,
    cache: Option<&Path>,
    sink: &mut dyn FnMut(Entry) -> io::Result<()>,
) -> Result<GenStats, ManifestError> {
    let started = SystemTime::now();
    let meta = fs::metadata(root).map_err(io_at(root))?;
    if !meta.is_dir() {
        return Err(io_at(root)(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a folder",
        )));
    }
    let root_fd: OwnedFd = File::open(root).map_err(io_at(root))?.into();
    let since_epoch = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let horizon = since_epoch(started.checked_sub(RACY).unwrap_or(UNIX_EPOCH));
    let mut run = Gen {
        root,
        sink,
        stats: GenStats::default(),
        lookup: cache.map(Lookup::open),
        cache_out: None,
        horizon: (horizon.as_secs() as i64, i64::from(horizon.subsec_nanos())),
        items: Vec::new(),
        todo: Vec::new(),
    };
    if let Some(file) = cache {
        match CacheWriter::create(file) {
            Ok(w) => run.cache_out = Some((w, file)),
            Err(e) => run.stats.cache_error = Some(format!("{}: {e}", file.display())),
        }
    }
    let open = |rel: &[u8]| -> io::Result<OwnedFd> {
        let rel = if rel.is_empty() { &b"."[..] } else { rel };
        let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC;
        Ok(rustix::fs::openat(&root_fd, rel, flags, Mode::empty())?)
    };
    let descend = |rel: &[u8]| !is_excluded(Path::new(OsStr::from_bytes(rel)));
    let walk = Walk {
        open: &open,
        descend: &descend,
        readers: WALK_THREADS,
    };
    walk.run(|found| run.visit(found)).map_err(|e| match e {
        WalkError::Read { folder, error } => io_at(&root.join(OsStr::from_bytes(&folder)))(error),
        WalkError::Visit(e) => e,
    })?;
    run.flush()?;
    let mut stats = run.stats;
    if let Some((w, file)) = run.cache_out
        && let Err(e) = w.finish(file)
    {
        stats.cache_error = Some(format!("{}: {e}", file.display()));
    }
    Ok(stats)
}

/// A generation under way: the entries found but not yet handed on (a
/// window, in order), and which of them need hashing.
struct Gen<'a> {
    root: &'a Path,
    sink: &'a mut dyn FnMut(Entry) -> io::Result<()>,
    stats: GenStats,
    lookup: Option<Lookup>,
    cache_out: Option<(CacheWriter, &'a Path)>,
    /// Changes later than this are not cached (see [`RACY`]).
    horizon: (i64, i64),
    items: Vec<Item>,
    /// Indices into `items` to hash.
    todo: Vec<usize>,
}

impl Gen<'_> {
    fn visit(&mut self, found: Found<'_>) -> Result<(), ManifestError> {
        let path = Path::new(OsStr::from_bytes(found.path));
        let kind = match found.stat.kind {
            _ if is_excluded(path) => return Ok(()),
            FileKind::File => Kind::File,
            FileKind::Dir => Kind::Dir,
            FileKind::Symlink => Kind::Symlink,
            FileKind::Other => return Ok(()), // sockets, fifos, devices: nothing a mirror serves
        };
        if let Some(problem) = path_problem(found.path) {
            let e = io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{problem}: a manifest cannot list it"),
            );
            return Err(io_at(&self.root.join(path))(e));
        }
        let st = found.stat;
        let mut item = Item {
            entry: Entry {
                kind,
                path: path.to_path_buf(),
                mode: st.mode,
                size: 0,
                mtime: st.mtime,
                sha256: None,
                target: None,
            },
            stamp: None,
            gone: false,
        };
        match kind {
            Kind::Dir => {}
            Kind::File => {
                let stamp = Stamp::of_stat(st);
                item.entry.size = st.size;
                item.stamp = Some(stamp);
                match self.lookup.as_mut().and_then(|c| c.find(found.path)) {
                    Some((cached, hash)) if cached == stamp => {
                        item.entry.sha256 = Some(hash);
                        self.stats.reused += 1;
                    }
                    _ => self.todo.push(self.items.len()),
                }
            }
            Kind::Symlink => {
                let Some(target) = found.target else {
                    return Ok(());
                };
                item.entry.target = Some(PathBuf::from(OsStr::from_bytes(target)));
            }
        }
        self.items.push(item);
        if self.todo.len() >= HASH_BATCH || self.items.len() >= WINDOW {
            self.flush()?;
        }
        Ok(())
    }

    /// Hash what the window needs, then hand its entries on in order.
    fn flush(&mut self) -> Result<(), ManifestError> {
        hash_all(self.root, &mut self.items, &self.todo, &mut self.stats)?;
        self.todo.clear();
        for item in self.items.drain(..) {
            if item.gone {
                continue;
            }
            if let Some(stamp) = &item.stamp {
                self.stats.files += 1;
                let settled = (stamp.ctime, stamp.ctime_ns) < self.horizon;
                if let (true, Some((w, file)), Some(hash)) =
                    (settled, &mut self.cache_out, &item.entry.sha256)
                    && let Err(e) = w.push(path_bytes(&item.entry.path), stamp, hash)
                {
                    self.stats.cache_error = Some(format!("{}: {e}", file.display()));
                    self.cache_out = None;
                }
            }
            (self.sink)(item.entry).map_err(ManifestError::Io)?;
        }
        Ok(())
    }
}

/// An entry on its way into the manifest.
struct Item {
    entry: Entry,
    /// Files only: what the cache compares.
    stamp: Option<Stamp>,
    /// Vanished before it could be hashed.
    gone: bool,
}

/// A file as read: its stamp and mode from the open file, so the listed
/// size and mtime are those of the content hashed.
struct Hashed {
    stamp: Stamp,
    mode: u32,
    sha256: [u8; 32],
}

/// Hash `items[i]` for every `i` in `todo`, on a few threads.
fn hash_all(
    root: &Path,
    items: &mut [Item],
    todo: &[usize],
    stats: &mut GenStats,
) -> Result<(), ManifestError> {
    if todo.is_empty() {
        return Ok(());
    }
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, MAX_THREADS)
        .min(todo.len());
    let paths: Vec<PathBuf> = todo
        .iter()
        .map(|&i| root.join(&items[i].entry.path))
        .collect();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let work = || {
        let mut buf = vec![0u8; 256 * 1024];
        let mut done = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(path) = paths.get(k) else { break };
            let result = hash_file(path, &mut buf);
            if result.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            done.push((k, result));
        }
        done
    };
    let results: Vec<_> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    for (k, result) in results {
        let item = &mut items[todo[k]];
        match result? {
            None => item.gone = true,
            Some((h, read)) => {
                item.entry.size = h.stamp.size;
                item.entry.mtime = h.stamp.mtime;
                item.entry.mode = h.mode;
                item.entry.sha256 = Some(h.sha256);
                item.stamp = Some(h.stamp);
                stats.hashed += 1;
                stats.bytes_hashed += read;
            }
        }
    }
    Ok(())
}

/// SHA-256 of one file, and the bytes read; `None` if it vanished.
fn hash_file(path: &Path, buf: &mut [u8]) -> Result<Option<(Hashed, u64)>, ManifestError> {
    let changed = || {
        io_at(path)(io::Error::other(
            "changed while the manifest was made; run again",
        ))
    };
    // Read again if written to meanwhile; a file that never settles is an error.
    for _ in 0..3 {
        // O_NONBLOCK: a fifo swapped in after the walk must not hang us.
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(changed()),
            Err(e) => return Err(io_at(path)(e)),
        };
        let before = file.metadata().map_err(io_at(path))?;
        if !before.is_file() {
            return Err(changed());
        }
        let mut hasher = Sha256::new();
        let mut read = 0u64;
        loop {
            match (&file).read(buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    read += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_at(path)(e)),
            }
        }
        let stamp = Stamp::of(&before);
        let after = Stamp::of(&file.metadata().map_err(io_at(path))?);
        if stamp == after && read == stamp.size {
            let hashed = Hashed {
                stamp,
                mode: before.mode() & 0o7777,
                sha256: hasher.finalize().into(),
            };
            return Ok(Some((hashed, read)));
        }
    }
    Err(changed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn lists_files_folders_and_symlinks_but_not_fifos() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("a/b")).unwrap();
        fs::write(r.join("a/b/f"), b"hello").unwrap();
        fs::set_permissions(r.join("a/b/f"), fs::Permissions::from_mode(0o4640)).unwrap_or(());
        symlink("../nowhere", r.join("a/link")).unwrap();
        symlink("/etc", r.join("etc")).unwrap();
        let fifo = std::ffi::CString::new(r.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        fs::write(r.join("data.dsync"), b"old").unwrap();

        let (m, stats) = generate_with_stats(r, "t", None).unwrap();
        let paths: Vec<_> = m.entries.iter().map(|e| e.path.to_str().unwrap()).collect();
        assert_eq!(paths, ["a", "a/b", "a/b/f", "a/link", "etc"]);
        let f = m.find(Path::new("a/b/f")).unwrap();
        assert_eq!(f.sha256, Some(Sha256::digest(b"hello").into()));
        assert_eq!(f.size, 5);
        let link = m.find(Path::new("etc")).unwrap();
        assert_eq!(
            (link.kind, link.target.as_deref()),
            (Kind::Symlink, Some(Path::new("/etc")))
        );
        assert_eq!(stats.files, 1);
        assert_eq!(stats.hashed, 1);
        assert_eq!(stats.bytes_hashed, 5);
        assert_eq!(stats.cache_error, None);
    }

    #[test]
    fn installed_streaming_is_the_manifest_made_in_memory() {
        let tmp = tempfile::tempdir().unwrap();
        let (r, home) = (tmp.path().join("tree"), tmp.path().join("home"));
        // More files than one hashing batch, in folders whose names sort
        // around `/` ("a-x" between "a" and "a/…").
        for n in 0..(HASH_BATCH + 300) {
            let folder = ["a", "a-x", "a/b", "b"][n % 4];
            fs::create_dir_all(r.join(folder)).unwrap();
            fs::write(r.join(format!("{folder}/{n}")), n.to_string()).unwrap();
        }
        symlink("a", r.join("l")).unwrap();
        let cache = home.join("cache/t");
        let (header, cold) = generate_and_install(&r, "t", Some(&cache), &home).unwrap();
        let bytes = fs::read(r.join("data.dsync")).unwrap();
        let installed = Manifest::decode(&bytes, &super::super::Limits::default()).unwrap();
        assert_eq!(installed.header, header);
        let (in_memory, warm) = generate_with_stats(&r, "t", Some(&cache)).unwrap();
        assert_eq!(in_memory.entries, installed.entries);
        assert_eq!(in_memory.header.digest, header.digest);
        assert_eq!((cold.hashed, cold.reused), (HASH_BATCH as u64 + 300, 0));
        // Written within RACY of now: not cached yet, so hashed again.
        assert_eq!(warm.hashed + warm.reused, HASH_BATCH as u64 + 300);
        // Nothing of ours in the tree but the manifest; the spool is unnamed.
        let mut names: Vec<_> = fs::read_dir(&r)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "a-x", "b", "data.dsync", "l"]);
        let home_names: Vec<_> = fs::read_dir(home.join("cache"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(home_names, ["t"]);
    }

    #[test]
    fn a_file_root_is_refused() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("f"), b"").unwrap();
        assert!(generate(&root.path().join("f"), "t").is_err());
        assert!(generate(&root.path().join("missing"), "t").is_err());
    }
}
