//! File operations beneath a mirror root that never follow a symlink.
//!
//! Every path comes from a manifest (validated, but written by someone else),
//! from our own walk, or names a file of ours inside the published tree
//! (trace files, markers), and the tree may hold symlinks planted by anyone
//! (`dists -> /etc`). So nothing here opens a path from the root by name:
//! folders are opened from a descriptor of `save` with `openat2`
//! (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), or on kernels without it one
//! component at a time with `O_NOFOLLOW`; then files are created, renamed
//! and removed relative to that folder's descriptor.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps};

/// The mirror root, held open.
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    /// Cleared once `openat2` turns out to be missing (old kernel, seccomp).
    openat2: AtomicBool,
    /// Cleared once unnamed files (`O_TMPFILE`, then `linkat`) turn out not
    /// to work here (see `target`).
    pub unnamed: AtomicBool,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Root {
    /// Open `save` itself (the operator's own setting: a symlink there is followed).
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
            openat2: AtomicBool::new(true),
            unnamed: AtomicBool::new(true),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The same root, by a descriptor of its own (for another thread).
    pub fn try_clone(&self) -> io::Result<Root> {
        Ok(Root {
            fd: rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)?,
            path: self.path.clone(),
            openat2: AtomicBool::new(self.openat2.load(Ordering::Relaxed)),
            unnamed: AtomicBool::new(self.unnamed.load(Ordering::Relaxed)),
        })
    }

    /// The folder `rel` (empty: the root), refusing any symlink on the way.
    pub fn open_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        if rel.as_os_str().is_empty() {
            return rustix::fs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty()).map_err(Into::into);
        }
        if self.openat2.load(Ordering::Relaxed) {
            match rustix::fs::openat2(
                &self.fd,
                rel,
                DIR_FLAGS,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
            ) {
                Err(rustix::io::Errno::NOSYS) | Err(rustix::io::Errno::PERM) => {
                    self.openat2.store(false, Ordering::Relaxed)
                }
                other => return other.map_err(Into::into),
            }
        }
        let mut dir: Option<OwnedFd> = None;
        for component in rel.components() {
            let Component::Normal(name) = component else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a plain relative path",
                ));
            };
            let base = dir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd());
            dir = Some(rustix::fs::openat(base, name, DIR_FLAGS, Mode::empty())?);
        }
        dir.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty path"))
    }

    /// The folder holding `rel`, and `rel`'s last component.
    pub fn parent<'p>(&self, rel: &'p Path) -> io::Result<(OwnedFd, &'p OsStr)> {
        let name = rel
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        Ok((self.open_dir(parent)?, name))
    }
}

/// What a name in a folder is, without following it.
pub fn kind_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<FileType>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode as _))),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Remove `name` whatever it is; a folder with everything in it. Symlinks
/// are removed, never followed. A missing name is fine.
pub fn remove_any(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match kind_at(dir, name)? {
        None => Ok(()),
        Some(FileType::Directory) => remove_tree(dir, name),
        Some(_) => ignore_missing(rustix::fs::unlinkat(dir, name, AtFlags::empty())),
    }
}

fn remove_tree(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let sub = rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&sub)? {
        let entry = entry?;
        let child = entry.file_name().to_bytes();
        if child != b"." && child != b".." {
            names.push(OsString::from_vec(child.to_vec()));
        }
    }
    for child in names {
        remove_any(sub.as_fd(), &child)?;
    }
    ignore_missing(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR))
}

fn ignore_missing(result: rustix::io::Result<()>) -> io::Result<()> {
    match result {
        Err(rustix::io::Errno::NOENT) => Ok(()),
        other => other.map_err(Into::into),
    }
}

/// Rename `from` over `to` in one folder; a folder in the way (the upstream
/// turned a folder into a file or symlink) is removed first.
pub fn replace(dir: BorrowedFd<'_>, from: &OsStr, to: &OsStr) -> io::Result<()> {
    match rustix::fs::renameat(dir, from, dir, to) {
        Err(rustix::io::Errno::ISDIR)
        | Err(rustix::io::Errno::NOTEMPTY)
        | Err(rustix::io::Errno::EXIST) => {
            remove_any(dir, to)?;
            rustix::fs::renameat(dir, from, dir, to).map_err(Into::into)
        }
        other => other.map_err(Into::into),
    }
}

/// A real folder `name` in `dir`: anything else by that name (a planted
/// symlink, a file) is removed first. True if something was created.
pub fn ensure_dir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
    match kind_at(dir, name)? {
        Some(FileType::Directory) => return Ok(false),
        Some(_) => remove_any(dir, name)?,
        None => {}
    }
    rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o755))?;
    Ok(true)
}

/// Permission bits and mtime of the folder `name` in `dir`.
pub fn set_dir_meta(dir: BorrowedFd<'_>, name: &OsStr, mode: u32, mtime: i64) -> io::Result<()> {
    let fd = rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    rustix::fs::futimens(&fd, &times(mtime))?;
    Ok(())
}

/// Both timestamps of a file set to `mtime`, as rsync `-t` leaves them.
pub fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Create the symlink `name -> target` in `dir`, replacing what is there
/// atomically (through a temporary name), with the given mtime.
pub fn put_symlink(dir: BorrowedFd<'_>, name: &OsStr, target: &Path, mtime: i64) -> io::Result<()> {
    let tmp = temp_name("link", name);
    remove_any(dir, &tmp)?;
    rustix::fs::symlinkat(target, dir, &tmp)?;
    // Not every file system keeps a symlink's mtime: that is no failure.
    let _ = rustix::fs::utimensat(dir, &tmp, &times(mtime), AtFlags::SYMLINK_NOFOLLOW);
    replace(dir, &tmp, name)
}

/// `.NAME.dsync-part`, where a download waits until verified; names too long
/// for that get a fixed hashed name (`.dsync-tmp-…` is never in a manifest).
pub fn part_name(name: &OsStr) -> OsString {
    let plain = [b".", name.as_bytes(), b".dsync-part"].concat();
    if plain.len() <= 255 {
        return OsString::from_vec(plain);
    }
    temp_name("part", name)
}

/// `.dsync-tmp-KIND-HASH.dsync-part`: ours, never in a manifest, and the same
/// name for the same file each run (so a part can be resumed).
fn temp_name(kind: &str, name: &OsStr) -> OsString {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(name.as_bytes());
    let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    OsString::from(format!(".dsync-tmp-{kind}-{hex}.dsync-part"))
}

/// Is this name one of our own temporary files (a part or a temp link)?
/// Only our suffix: other `.dsync-tmp-*` files (the hash cache `-gendsync`
/// writes, if this mirror serves DTP too) belong to someone else.
pub fn is_ours(name: &[u8]) -> bool {
    name.ends_with(b".dsync-part")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_on_the_way_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("real/sub")).unwrap();
        symlink(outside.path(), tmp.path().join("dists")).unwrap();
        symlink("real", tmp.path().join("alias")).unwrap();
        let root = Root::open(tmp.path()).unwrap();
        assert!(root.open_dir(Path::new("real/sub")).is_ok());
        assert!(root.open_dir(Path::new("dists")).is_err());
        assert!(root.open_dir(Path::new("alias/sub")).is_err());
        assert!(root.parent(Path::new("dists/x")).is_err());
        // Without openat2, the component walk refuses them too.
        root.openat2.store(false, Ordering::Relaxed);
        assert!(root.open_dir(Path::new("real/sub")).is_ok());
        assert!(root.open_dir(Path::new("dists")).is_err());
        assert!(root.open_dir(Path::new("alias/sub")).is_err());
    }

    #[test]
    fn ensure_dir_replaces_a_planted_symlink_and_remove_never_follows() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "x").unwrap();
        symlink(outside.path(), tmp.path().join("dists")).unwrap();
        let root = Root::open(tmp.path()).unwrap();
        let top = root.open_dir(Path::new("")).unwrap();
        assert!(ensure_dir(top.as_fd(), OsStr::new("dists")).unwrap());
        assert!(tmp.path().join("dists").is_dir());
        assert!(!ensure_dir(top.as_fd(), OsStr::new("dists")).unwrap());
        assert!(outside.path().join("keep").exists());

        std::fs::create_dir_all(tmp.path().join("tree/a")).unwrap();
        symlink(outside.path(), tmp.path().join("tree/a/link")).unwrap();
        remove_any(top.as_fd(), OsStr::new("tree")).unwrap();
        assert!(!tmp.path().join("tree").exists());
        assert!(outside.path().join("keep").exists(), "not followed");
    }

    #[test]
    fn replace_removes_a_folder_in_the_way() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("f/inner")).unwrap();
        std::fs::write(tmp.path().join(".f.dsync-part"), "new").unwrap();
        let root = Root::open(tmp.path()).unwrap();
        let top = root.open_dir(Path::new("")).unwrap();
        replace(top.as_fd(), OsStr::new(".f.dsync-part"), OsStr::new("f")).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("f")).unwrap(),
            "new"
        );
    }

    #[test]
    fn part_names_fit_and_are_ours() {
        assert_eq!(part_name(OsStr::new("Packages")), ".Packages.dsync-part");
        let long = "x".repeat(250);
        let part = part_name(OsStr::new(&long));
        assert!(part.len() <= 255);
        assert_eq!(part, part_name(OsStr::new(&long)), "the same each run");
        assert!(is_ours(part.as_bytes()));
        assert!(is_ours(temp_name("link", OsStr::new("l")).as_bytes()));
        assert!(!is_ours(b".dsync-tmp-cache-x1"));
        assert!(crate::dtp::manifest::is_excluded(Path::new(&part)));
        assert!(crate::dtp::manifest::is_excluded(Path::new(
            ".Packages.dsync-part"
        )));
    }
}
