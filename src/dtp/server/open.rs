//! Opening a served file so that nothing outside the repository can be reached:
//! `openat2` below an `O_PATH` descriptor of the repository root, refusing
//! every symlink and `..` escape in the kernel, then `fstat`: regular files only.
//!
//! The root itself is opened normally: the operator chose it, and mirrors are
//! often symlinks to other disks. Below it, no symlink is ever followed.

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Missing, not a regular file, a symlink on the way, or outside.
    #[error("not found")]
    NotFound,
    /// The process or the system is out of file descriptors: busy, not
    /// broken (the budget should prevent it; other processes may not).
    #[error("{0}")]
    Descriptors(std::io::Error),
    /// Out of memory, or an I/O error: the server's problem.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Open `rel` (a valid manifest path, raw bytes) below `root` for reading.
pub fn open_file(root: &Path, rel: &[u8]) -> Result<(File, Metadata), OpenError> {
    open_below(&open_root(root)?, rel)
}

/// The repository root, to open many files below it ([`open_below`]).
pub fn open_root(root: &Path) -> Result<OwnedFd, OpenError> {
    rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(classify)
}

/// [`open_file`] below a root already open.
pub fn open_below(dir: &OwnedFd, rel: &[u8]) -> Result<(File, Metadata), OpenError> {
    let fd = match open_beneath(dir, rel) {
        Err(Errno::NOSYS) => walk(dir, rel), // kernels before 5.6
        other => other,
    }
    .map_err(classify)?;
    let file = File::from(fd);
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(OpenError::NotFound);
    }
    Ok((file, meta))
}

/// The flags of the final open: never block on a FIFO, never take a terminal.
fn read_flags() -> OFlags {
    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY
}

fn open_beneath(dir: &OwnedFd, rel: &[u8]) -> Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        dir,
        OsStr::from_bytes(rel),
        read_flags(),
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Without openat2: one `openat(O_NOFOLLOW)` per component. As safe for paths
/// already checked to hold no `.`, `..` or empty component.
fn walk(dir: &OwnedFd, rel: &[u8]) -> Result<OwnedFd, Errno> {
    let parts: Vec<&[u8]> = rel.split(|b| *b == b'/').collect();
    let (last, folders) = parts.split_last().ok_or(Errno::NOENT)?;
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == b"." || *p == b"..")
    {
        return Err(Errno::NOENT);
    }
    let mut current: Option<OwnedFd> = None;
    for part in folders {
        let at = current.as_ref().unwrap_or(dir);
        current = Some(rustix::fs::openat(
            at,
            OsStr::from_bytes(part),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?);
    }
    let at = current.as_ref().unwrap_or(dir);
    rustix::fs::openat(at, OsStr::from_bytes(last), read_flags(), Mode::empty())
}

fn classify(errno: Errno) -> OpenError {
    match errno {
        Errno::MFILE | Errno::NFILE => OpenError::Descriptors(errno.into()),
        Errno::NOMEM | Errno::IO | Errno::NOSYS => OpenError::Io(errno.into()),
        // ENOENT, ENOTDIR, ELOOP (a symlink), EXDEV (outside), EACCES, ENXIO ...
        _ => OpenError::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join("dists/sub")).unwrap();
        std::fs::write(root.join("dists/Release"), b"release").unwrap();
        std::fs::write(dir.path().join("secret"), b"secret").unwrap();
        symlink("../../secret", root.join("dists/up")).unwrap();
        symlink("Release", root.join("dists/inside")).unwrap();
        symlink("/etc/passwd", root.join("passwd")).unwrap();
        symlink("dists", root.join("linkdir")).unwrap();
        let fifo = std::ffi::CString::new(root.join("fifo").into_os_string().into_encoded_bytes())
            .unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        dir
    }

    #[test]
    fn regular_files_only_no_symlinks() {
        let dir = tree();
        let root = dir.path().join("repo");
        let (mut f, meta) = open_file(&root, b"dists/Release").unwrap();
        assert_eq!(meta.len(), 7);
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "release");
        for rel in [
            &b"dists/up"[..],
            b"dists/inside",
            b"passwd",
            b"linkdir/Release",
            b"dists",
            b"dists/sub",
            b"fifo",
            b"missing",
            b"../secret",
            b"/etc/passwd",
        ] {
            assert!(
                matches!(open_file(&root, rel), Err(OpenError::NotFound)),
                "{}",
                String::from_utf8_lossy(rel)
            );
        }
    }

    #[test]
    fn the_fallback_refuses_symlinks_too() {
        let dir = tree();
        let root = dir.path().join("repo");
        let fd = rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        assert!(walk(&fd, b"dists/Release").is_ok());
        for rel in [
            &b"dists/up"[..],
            b"passwd",
            b"linkdir/Release",
            b"../secret",
        ] {
            assert!(walk(&fd, rel).is_err(), "{}", String::from_utf8_lossy(rel));
        }
    }
}
