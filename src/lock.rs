//! The sync lock: ftpsync's `Archive-Update-in-Progress-$MIRRORNAME` file holding
//! our PID (what other mirrors and ftpsync itself look at), plus a kernel `flock`
//! on the mirror directory so two copies of dsync can never both run on one tree,
//! whatever state a stale PID file is in.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds the lock; `pid` is what the lock file says.
    #[error("Unable to start rsync, lock file still exists, PID {pid}")]
    Held { pid: String },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A held sync lock; dropping it releases the kernel lock but leaves the file,
/// [`SyncLock::remove_file`] removes the file too.
#[derive(Debug)]
pub struct SyncLock {
    _dir: File,
    path: PathBuf,
}

/// Take the lock for the mirror tree `to` with the PID file `lock_path`.
///
/// As ftpsync: a lock file whose PID is alive refuses; a dead (or garbage) PID is
/// taken over. A lock file that is a symlink or not a regular file is replaced
/// rather than written through.
pub fn acquire(to: &Path, lock_path: &Path) -> Result<SyncLock, LockError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LockError::Io { path, source }
    };
    let dir = File::open(to).map_err(io_err(to))?;
    // SAFETY: flock on a valid descriptor has no memory-safety preconditions.
    let rc = unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(LockError::Held {
                pid: read_pid(lock_path),
            });
        }
        return Err(LockError::Io {
            path: to.to_path_buf(),
            source: err,
        });
    }
    if let Ok(meta) = std::fs::symlink_metadata(lock_path) {
        let pid = read_pid(lock_path);
        if meta.file_type().is_file() && pid_alive(&pid) {
            return Err(LockError::Held { pid });
        }
        std::fs::remove_file(lock_path).map_err(io_err(lock_path))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(lock_path)
        .map_err(io_err(lock_path))?;
    writeln!(file, "{}", std::process::id()).map_err(io_err(lock_path))?;
    Ok(SyncLock {
        _dir: dir,
        path: lock_path.to_path_buf(),
    })
}

impl SyncLock {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remove the lock file (ftpsync does this before triggering downstreams).
    pub fn remove_file(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Who holds the lock of `to` without taking it (for `-test`): the PID from
/// `lock_path` when a live process wrote it or another dsync holds the kernel
/// lock (`?` if its PID file is gone); `None` when a sync could start now.
pub fn holder(to: &Path, lock_path: &Path) -> Option<String> {
    let pid = read_pid(lock_path);
    let file_held = std::fs::symlink_metadata(lock_path).is_ok_and(|m| m.file_type().is_file())
        && pid_alive(&pid);
    if file_held || kernel_lock_held(to) {
        return Some(if pid.is_empty() { "?".into() } else { pid });
    }
    None
}

/// A shared, non-blocking `flock` fails only while a sync holds the exclusive one;
/// released at once.
fn kernel_lock_held(to: &Path) -> bool {
    let Ok(dir) = File::open(to) else {
        return false;
    };
    // SAFETY: flock on a valid descriptor has no memory-safety preconditions;
    // the lock goes with `dir` at the end of this function.
    let rc = unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    rc != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
}

fn read_pid(path: &Path) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `kill -0 PID` succeeds. PIDs ≤ 0 would address process groups: never "alive".
fn pid_alive(pid: &str) -> bool {
    match pid.parse::<i32>() {
        // SAFETY: kill with signal 0 only checks for existence and permission.
        Ok(pid) if pid > 0 => unsafe { libc::kill(pid, 0) == 0 },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_pid_is_taken_over_live_pid_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("Archive-Update-in-Progress-m");
        std::fs::write(&lock, "999999999\n").unwrap();
        let held = acquire(dir.path(), &lock).expect("stale lock taken over");
        assert_eq!(read_pid(&lock), std::process::id().to_string());
        // Same process, second attempt: the flock refuses even before the PID check.
        assert!(matches!(
            acquire(dir.path(), &lock),
            Err(LockError::Held { .. })
        ));
        drop(held);
        // The kernel lock is gone, but the PID file names a live process (us).
        let err = acquire(dir.path(), &lock).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Unable to start rsync, lock file still exists, PID {}",
                std::process::id()
            )
        );
    }

    #[test]
    fn holder_names_the_live_pid_and_never_takes_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("Archive-Update-in-Progress-m");
        assert_eq!(holder(dir.path(), &lock), None);
        std::fs::write(&lock, "999999999\n").unwrap();
        assert_eq!(holder(dir.path(), &lock), None, "a dead PID holds nothing");
        let held = acquire(dir.path(), &lock).unwrap();
        let me = std::process::id().to_string();
        assert_eq!(holder(dir.path(), &lock), Some(me.clone()));
        drop(held);
        // The kernel lock is free, but the PID file names a live process (us).
        assert_eq!(holder(dir.path(), &lock), Some(me));
        std::fs::remove_file(&lock).unwrap();
        assert_eq!(holder(dir.path(), &lock), None);
    }

    #[test]
    fn symlinked_lock_file_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let lock = dir.path().join("Archive-Update-in-Progress-m");
        std::os::unix::fs::symlink(&victim, &lock).unwrap();
        let held = acquire(dir.path(), &lock).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(
            std::fs::symlink_metadata(&lock)
                .unwrap()
                .file_type()
                .is_file()
        );
        held.remove_file();
        assert!(!lock.exists());
    }
}
