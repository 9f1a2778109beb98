//! Where dsync keeps its files: `~/dxync` unless `-home DIR` or `DSYNC_HOME` say otherwise.
//! (CONTRACT STUB: implementation to be written.)

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Home {
    pub root: PathBuf,
}

impl Home {
    /// `explicit` (from `-home`), else `$DSYNC_HOME`, else `$HOME/dxync`.
    pub fn locate(explicit: Option<&Path>) -> Home {
        let _ = explicit;
        todo!()
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
        todo!()
    }
}
