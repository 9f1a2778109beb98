//! `xync.conf`, the global settings. (CONTRACT STUB: implementation to be written.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::diag::Diagnostic;

#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    /// `syncps`: repositories synced at the same time, 1–100 (default 1).
    pub syncps: usize,
    /// `ipadd`: local addresses; concurrent rsyncs bind them round-robin.
    pub ipadd: Vec<String>,
    /// `intra`: intranet mode (`intradd` in repo files gives the upstream).
    pub intra: bool,
    /// `logdir`: one log folder per repository.
    pub logdir: bool,
    /// `logtime`: timestamped log names (`logs-YYYYMMDD-HHMM.log`).
    pub logtime: bool,
    /// `pass-error-temp`: rsync 23/24 are not failures; temp files excluded.
    pub pass_error_temp: bool,
    /// `webhookurl`
    pub webhookurl: Option<String>,
    /// `status`: folder for `dsync-status/REPO` files and `dsync-jobs.json`.
    pub status: Option<PathBuf>,
    /// `webroot` (DTP host).
    pub webroot: Option<PathBuf>,
    /// `api`: URL of a JSON list of repositories and their upstreams.
    pub api: Option<String>,
    /// `mailto`: alert mails go here (and `MAILTO` in the environment).
    pub mailto: Option<String>,
    /// `smtp`: `host[:port]` of an SMTP relay; default local sendmail.
    pub smtp: Option<String>,
    /// `maxtime`: wall-clock limit of one repository's sync (default 12 h).
    pub maxtime: Duration,
    /// `max-delete`: deletions one sync may do in general mode (default 40000).
    pub max_delete: u64,
    /// `retries`: tries per sync for transient failures (default 3).
    pub retries: u32,
    /// `timeout`: rsync --timeout seconds (default 600) and `contimeout` (default 60).
    pub timeout: u64,
    pub contimeout: u64,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            syncps: 1,
            ipadd: Vec::new(),
            intra: false,
            logdir: false,
            logtime: false,
            pass_error_temp: false,
            webhookurl: None,
            status: None,
            webroot: None,
            api: None,
            mailto: None,
            smtp: None,
            maxtime: Duration::from_secs(12 * 3600),
            max_delete: 40000,
            retries: 3,
            timeout: 600,
            contimeout: 60,
        }
    }
}

/// Parse `text` (the file `path`): every problem is returned, never only the first.
/// Unknown keys are warnings; bad values are errors (the default is kept).
pub fn parse(path: &Path, text: &str) -> (Global, Vec<Diagnostic>) {
    let _ = (path, text);
    todo!()
}

/// Read and parse `path`; a missing file gives the defaults and no diagnostic.
pub fn load(path: &Path) -> (Global, Vec<Diagnostic>) {
    let _ = path;
    todo!()
}
