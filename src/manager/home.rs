//! Where dsync keeps its files: `~/dxync` unless `-home DIR` or `DSYNC_HOME` say otherwise.

use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Home {
    pub root: PathBuf,
}

impl Home {
    /// `explicit` (from `-home`), else `$DSYNC_HOME`, else `$HOME/dxync`.
    pub fn locate(explicit: Option<&Path>) -> Home {
        let env_home = std::env::var_os("DSYNC_HOME").filter(|v| !v.is_empty());
        let root = match (explicit, env_home) {
            (Some(dir), _) => dir.to_path_buf(),
            (None, Some(dir)) => PathBuf::from(dir),
            (None, None) => user_home().join("dxync"),
        };
        // Messages and child processes should not depend on the current directory.
        let root = std::path::absolute(&root).unwrap_or(root);
        Home { root }
    }
    /// `ROOT/xync.conf`
    pub fn xync_conf(&self) -> PathBuf {
        self.root.join("xync.conf")
    }
    /// `ROOT/repos` — one `NAME.conf` per repository.
    pub fn repos_dir(&self) -> PathBuf {
        self.root.join("repos")
    }
    /// `ROOT/logs`
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// `ROOT/run` — per-repo lock and pid files of running syncs.
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }
    /// `ROOT/upstreams.conf` — the operator's additions to the upstream catalog.
    pub fn catalog(&self) -> PathBuf {
        self.root.join("upstreams.conf")
    }
    /// Create the folders and, if missing, a commented `xync.conf`.
    /// Returns true when `xync.conf` was created.
    pub fn ensure(&self) -> io::Result<bool> {
        for dir in [
            self.root.clone(),
            self.repos_dir(),
            self.logs_dir(),
            self.run_dir(),
        ] {
            std::fs::create_dir_all(&dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.xync_conf());
        match file {
            Ok(mut file) => {
                file.write_all(XYNC_CONF_SAMPLE.as_bytes())?;
                file.sync_all()?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// [`Home::ensure`] for commands that may set a home up (`-test`,
    /// `-service`): says what it created, or why it could not; false then.
    pub fn ensure_telling(&self) -> bool {
        match self.ensure() {
            Ok(created) => {
                if created {
                    println!(
                        "dsync: created {} with a commented xync.conf",
                        self.root.display()
                    );
                }
                true
            }
            Err(e) => {
                eprintln!("dsync: cannot create {}: {e}", self.root.display());
                false
            }
        }
    }
}

/// The commented `xync.conf` a new home gets (`etc/xync.conf`).
pub const XYNC_CONF_SAMPLE: &str = include_str!("../../etc/xync.conf");

/// `$HOME`, else the password database's home of this user, else `/`.
fn user_home() -> PathBuf {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    passwd_entry(uid)
        .map(|(_, dir)| dir)
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The login name of `uid`, or `uid N` when the password database does not know it.
pub(crate) fn user_name(uid: u32) -> String {
    passwd_entry(uid)
        .map(|(name, _)| name)
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// Name and home folder of `uid` in the password database.
fn passwd_entry(uid: u32) -> Option<(String, PathBuf)> {
    // SAFETY: getpwuid_r writes only into `pw` and `buf`; on success `result` points
    // at `pw`, whose string pointers point into `buf`, which outlives their use.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 16384];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() || pw.pw_name.is_null() || pw.pw_dir.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(pw.pw_name)
            .to_string_lossy()
            .into_owned();
        let dir = std::ffi::CStr::from_ptr(pw.pw_dir);
        let dir = PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes()));
        Some((name, dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_wins_and_is_absolute() {
        let home = Home::locate(Some(Path::new("/srv/dx")));
        assert_eq!(home.root, PathBuf::from("/srv/dx"));
        assert_eq!(home.xync_conf(), PathBuf::from("/srv/dx/xync.conf"));
        let rel = Home::locate(Some(Path::new("rel/dx")));
        assert!(rel.root.is_absolute() && rel.root.ends_with("rel/dx"));
    }

    #[test]
    fn ensure_creates_once() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::locate(Some(&dir.path().join("dxync")));
        assert!(home.ensure().unwrap());
        for d in [home.repos_dir(), home.logs_dir(), home.run_dir()] {
            assert!(d.is_dir(), "{}", d.display());
        }
        assert_eq!(
            std::fs::read_to_string(home.xync_conf()).unwrap(),
            XYNC_CONF_SAMPLE
        );
        std::fs::write(home.xync_conf(), "syncps=3\n").unwrap();
        assert!(!home.ensure().unwrap());
        assert_eq!(
            std::fs::read_to_string(home.xync_conf()).unwrap(),
            "syncps=3\n"
        );
    }
}
