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
                return Err(not_plain());
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

/// The most of a file of ours in the tree that [`Root::read`] takes in
/// (trace files are a few hundred bytes; anything larger is not ours).
pub const MAX_READ: u64 = 1 << 20;

const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY)
    .union(OFlags::NONBLOCK);

impl Root {
    /// Is `rel` a real folder, reached without a symlink on the way?
    pub fn is_dir(&self, rel: &Path) -> bool {
        self.open_dir(rel).is_ok()
    }

    /// Create the folder `rel` and those above it (mode 0755, umask applied);
    /// a symlink or a file on the way is an error, never followed or removed.
    pub fn create_dirs(&self, rel: &Path) -> io::Result<()> {
        let mut dir = self.open_dir(Path::new(""))?;
        for component in rel.components() {
            let Component::Normal(name) = component else {
                return Err(not_plain());
            };
            match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            dir = rustix::fs::openat(&dir, name, DIR_FLAGS, Mode::empty())
                .map_err(|e| refused_symlink(e, name))?;
        }
        Ok(())
    }

    /// The regular file `rel`, open for reading; a symlink anywhere on the way
    /// (the last component included) or anything but a regular file is an error.
    pub fn open_file(&self, rel: &Path) -> io::Result<std::fs::File> {
        let (dir, name) = self.parent(rel)?;
        let fd = rustix::fs::openat(&dir, name, FILE_FLAGS, Mode::empty())
            .map_err(|e| refused_symlink(e, name))?;
        if FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode as _) != FileType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a regular file", rel.display()),
            ));
        }
        // Reads block as usual: NONBLOCK was only for a FIFO planted there.
        rustix::fs::fcntl_setfl(&fd, OFlags::empty())?;
        Ok(std::fs::File::from(fd))
    }

    /// The content of the regular file `rel` (see [`Root::open_file`]), at most
    /// [`MAX_READ`] bytes; `None` if it is not there.
    pub fn read(&self, rel: &Path) -> io::Result<Option<Vec<u8>>> {
        use std::io::Read;
        let file = match self.open_file(rel) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            other => other?,
        };
        let mut bytes = Vec::new();
        file.take(MAX_READ + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_READ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is larger than {MAX_READ} bytes", rel.display()),
            ));
        }
        Ok(Some(bytes))
    }

    /// Put `bytes` in the file `rel` atomically with permission bits `mode`:
    /// written under a temporary name of ours in the same folder (created
    /// with `O_EXCL`, so nothing planted there is written through), then
    /// renamed over `rel`. Whatever `rel` was (a symlink the upstream put
    /// there included) is replaced, never followed.
    pub fn write_atomic(&self, rel: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        use std::io::Write;
        let (dir, name) = self.parent(rel)?;
        let tmp = temp_name("write", name);
        let create = || {
            rustix::fs::openat(
                &dir,
                &tmp,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode),
            )
        };
        let fd = match create() {
            // Left by a run that was killed: ours, by its name.
            Err(rustix::io::Errno::EXIST) => {
                remove_any(dir.as_fd(), &tmp)?;
                create()?
            }
            other => other?,
        };
        let mut file = std::fs::File::from(fd);
        let written = file
            .write_all(bytes)
            .and_then(|()| rustix::fs::fchmod(&file, Mode::from_raw_mode(mode)).map_err(Into::into))
            .and_then(|()| replace(dir.as_fd(), &tmp, name));
        if written.is_err() {
            let _ = remove_any(dir.as_fd(), &tmp);
        }
        written
    }

    /// Create the empty file `rel` if it is not there (`touch` without the
    /// time): never through a symlink.
    pub fn touch(&self, rel: &Path) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(
            &dir,
            name,
            flags | OFlags::NONBLOCK,
            Mode::from_raw_mode(0o644),
        )
        .map(drop)
        .map_err(|e| refused_symlink(e, name))
    }

    /// Remove the file (or symlink) `rel`; a missing one is fine.
    pub fn remove_file(&self, rel: &Path) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        ignore_missing(rustix::fs::unlinkat(&dir, name, AtFlags::empty()))
    }

    /// Visit every entry below the folder `rel` (depth first, names in the
    /// order the file system gives them) with its path relative to `rel`
    /// and its `lstat`: symlinks are reported, never followed. A folder that
    /// cannot be read is passed over.
    pub fn walk(
        &self,
        rel: &Path,
        visit: &mut dyn FnMut(&Path, &rustix::fs::Stat),
    ) -> io::Result<()> {
        let dir = self.open_dir(rel)?;
        walk_fd(dir, &mut PathBuf::new(), visit);
        Ok(())
    }
}

fn walk_fd(dir: OwnedFd, at: &mut PathBuf, visit: &mut dyn FnMut(&Path, &rustix::fs::Stat)) {
    let Ok(entries) = rustix::fs::Dir::read_from(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        let Ok(st) = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        at.push(name);
        visit(at, &st);
        if FileType::from_raw_mode(st.st_mode as _) == FileType::Directory
            && let Ok(sub) = rustix::fs::openat(&dir, name, DIR_FLAGS, Mode::empty())
        {
            walk_fd(sub, at, visit);
        }
        at.pop();
    }
}

fn not_plain() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "not a plain relative path")
}

/// `ELOOP` from `O_NOFOLLOW` said in words: the name is a symlink, and we do
/// not write or read through symlinks in a mirror.
fn refused_symlink(e: rustix::io::Errno, name: &OsStr) -> io::Error {
    match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is a symlink or not a folder: nothing is written or read through it",
                Path::new(name).display()
            ),
        ),
        e => e.into(),
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
    fn writes_replace_planted_symlinks_and_never_go_through_them() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("dists")).unwrap();
        std::fs::write(tmp.path().join("dists/Release"), "index").unwrap();
        symlink("dists/Release", tmp.path().join("marker")).unwrap();
        // Our own temporary name, planted as a symlink, is no way in either.
        let planted = temp_name("write", OsStr::new("marker"));
        symlink("dists/Release", tmp.path().join(&planted)).unwrap();
        let root = Root::open(tmp.path()).unwrap();
        root.write_atomic(Path::new("marker"), b"ours", 0o644)
            .unwrap();
        assert_eq!(
            std::fs::read(tmp.path().join("dists/Release")).unwrap(),
            b"index"
        );
        assert!(
            std::fs::symlink_metadata(tmp.path().join("marker"))
                .unwrap()
                .is_file()
        );
        assert_eq!(std::fs::read(tmp.path().join("marker")).unwrap(), b"ours");
        assert!(std::fs::symlink_metadata(tmp.path().join(&planted)).is_err());

        symlink("dists/Release", tmp.path().join("touched")).unwrap();
        assert!(root.touch(Path::new("touched")).is_err());
        assert!(root.read(Path::new("touched")).is_err());
        assert_eq!(root.read(Path::new("marker")).unwrap().unwrap(), b"ours");
        assert_eq!(root.read(Path::new("absent")).unwrap(), None);
        root.touch(Path::new("new")).unwrap();
        assert!(tmp.path().join("new").is_file());
    }

    #[test]
    fn folders_are_made_and_walked_without_following_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "x").unwrap();
        std::fs::create_dir(tmp.path().join("project")).unwrap();
        symlink(outside.path(), tmp.path().join("project/trace")).unwrap();
        let root = Root::open(tmp.path()).unwrap();
        assert!(root.create_dirs(Path::new("project/trace")).is_err());
        assert!(!root.is_dir(Path::new("project/trace")));
        assert!(
            root.write_atomic(Path::new("project/trace/x"), b"", 0o644)
                .is_err()
        );
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
        root.create_dirs(Path::new("a/b/c")).unwrap();
        assert!(root.is_dir(Path::new("a/b/c")));

        let mut seen = Vec::new();
        root.walk(Path::new(""), &mut |rel, _| seen.push(rel.to_path_buf()))
            .unwrap();
        seen.sort();
        let expect: Vec<PathBuf> = ["a", "a/b", "a/b/c", "project", "project/trace"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(seen, expect, "the symlink is seen, not entered");
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
