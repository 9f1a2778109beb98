//! Building a manifest from a tree: walk, reuse cached hashes, hash the rest
//! on a few threads, rewrite the cache.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::cache::{self, Stamp};
use super::{Entry, Kind, Manifest, ManifestError, io_at, is_excluded, path_bytes, path_problem};

/// How recent a change must be for its hash not to be cached. File times
/// come from a clock that ticks coarsely (a jiffy; a second or two on some
/// file systems): a file written again within the tick in which we hashed it
/// would keep its stamp, so files changed this recently are hashed again
/// next time instead of trusted.
const RACY: Duration = Duration::from_secs(2);
/// Hashing threads at most (beyond this, disks rather than cores limit).
const MAX_THREADS: usize = 8;

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
/// rewritten.
pub fn generate_with_stats(
    root: &Path,
    repo: &str,
    cache: Option<&Path>,
) -> Result<(Manifest, GenStats), ManifestError> {
    let started = SystemTime::now();
    let meta = fs::metadata(root).map_err(io_at(root))?;
    if !meta.is_dir() {
        return Err(io_at(root)(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a folder",
        )));
    }
    let mut stats = GenStats::default();
    let mut items = walk(root)?;

    let old = cache.map(cache::load).unwrap_or_default();
    let mut todo = Vec::new();
    for (i, item) in items.iter_mut().enumerate() {
        let Some(stamp) = &item.stamp else { continue };
        match old.get(path_bytes(&item.entry.path)) {
            Some((cached, hash)) if cached == stamp => {
                item.entry.sha256 = Some(*hash);
                stats.reused += 1;
            }
            _ => todo.push(i),
        }
    }
    drop(old);
    hash_all(root, &mut items, &todo, &mut stats)?;
    items.retain(|item| !item.gone);
    stats.files = items.iter().filter(|i| i.entry.kind == Kind::File).count() as u64;

    let since_epoch = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let horizon = since_epoch(started.checked_sub(RACY).unwrap_or(UNIX_EPOCH));
    let horizon = (horizon.as_secs() as i64, i64::from(horizon.subsec_nanos()));
    let records = items.iter().filter_map(|item| {
        let stamp = item.stamp.as_ref()?;
        let settled = (stamp.ctime, stamp.ctime_ns) < horizon;
        Some((
            path_bytes(&item.entry.path),
            stamp,
            item.entry.sha256.as_ref()?,
        ))
        .filter(|_| settled)
    });
    if let Some(file) = cache
        && let Err(e) = cache::save(file, records)
    {
        stats.cache_error = Some(format!("{}: {e}", file.display()));
    }

    let generated = since_epoch(started).as_secs() as i64;
    let entries = items.into_iter().map(|item| item.entry).collect();
    Ok((Manifest::new(repo, generated, entries), stats))
}

/// An entry on its way into the manifest.
struct Item {
    entry: Entry,
    /// Files only: what the cache compares.
    stamp: Option<Stamp>,
    /// Vanished before it could be hashed.
    gone: bool,
}

/// Every entry under `root`, in no particular order (the manifest sorts).
fn walk(root: &Path) -> Result<Vec<Item>, ManifestError> {
    let mut items = Vec::new();
    let mut folders: Vec<Vec<u8>> = vec![Vec::new()];
    while let Some(folder) = folders.pop() {
        let abs = if folder.is_empty() {
            root.to_path_buf()
        } else {
            root.join(OsStr::from_bytes(&folder))
        };
        let listing = match fs::read_dir(&abs) {
            Ok(listing) => listing,
            // Removed since its parent was read (a sync running meanwhile).
            Err(e) if e.kind() == io::ErrorKind::NotFound && !folder.is_empty() => continue,
            Err(e) => return Err(io_at(&abs)(e)),
        };
        for dirent in listing {
            let dirent = dirent.map_err(io_at(&abs))?;
            let mut rel = folder.clone();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(dirent.file_name().as_bytes());
            let path = PathBuf::from(OsStr::from_bytes(&rel));
            if is_excluded(&path) {
                continue;
            }
            // lstat: a symlink is listed as itself.
            let meta = match dirent.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_at(&dirent.path())(e)),
            };
            let ft = meta.file_type();
            let kind = if ft.is_dir() {
                Kind::Dir
            } else if ft.is_file() {
                Kind::File
            } else if ft.is_symlink() {
                Kind::Symlink
            } else {
                continue; // sockets, fifos, devices: nothing a mirror serves
            };
            if let Some(problem) = path_problem(&rel) {
                let e = io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{problem}: a manifest cannot list it"),
                );
                return Err(io_at(&dirent.path())(e));
            }
            let mut item = Item {
                entry: Entry {
                    kind,
                    path,
                    mode: meta.mode() & 0o7777,
                    size: 0,
                    mtime: meta.mtime(),
                    sha256: None,
                    target: None,
                },
                stamp: None,
                gone: false,
            };
            match kind {
                Kind::Dir => folders.push(rel),
                Kind::File => {
                    item.entry.size = meta.size();
                    item.stamp = Some(Stamp::of(&meta));
                }
                Kind::Symlink => match fs::read_link(dirent.path()) {
                    Ok(target) => item.entry.target = Some(target),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_at(&dirent.path())(e)),
                },
            }
            items.push(item);
        }
    }
    Ok(items)
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
    fn a_file_root_is_refused() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("f"), b"").unwrap();
        assert!(generate(&root.path().join("f"), "t").is_err());
        assert!(generate(&root.path().join("missing"), "t").is_err());
    }
}
