//! Status a web page can read. (CONTRACT STUB: implementation to be written.)

use std::io;
use std::path::PathBuf;

/// A repository's state, as the one-digit file `STATUS/dsync-status/REPO` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// `0`
    Failed,
    /// `1`
    Success,
    /// `2`
    Syncing,
}

/// What the JSON status (tunasync's `/jobs` fields) says about one repository.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobInfo {
    pub upstream: String,
    /// Bytes of the mirror after the last successful sync, if known.
    pub size: Option<u64>,
    /// Unix seconds.
    pub last_started: Option<i64>,
    pub last_ended: Option<i64>,
    /// End of the last successful sync.
    pub last_update: Option<i64>,
    pub next_schedule: Option<i64>,
}

/// Writes `DIR/dsync-status/REPO` (when a status folder is configured) and the JSON
/// list of jobs `JSON` (`DIR/dsync-jobs.json`, or `HOME/dsync-jobs.json` without one).
/// Safe with several worker processes updating different repositories at once.
#[derive(Debug, Clone)]
pub struct StatusStore {
    pub dir: Option<PathBuf>,
    pub json: PathBuf,
}

impl StatusStore {
    /// Record `state` for `repo`, merging `info` into its JSON entry (fields that are
    /// `None` keep their previous value).
    pub fn set(&self, repo: &str, state: State, info: &JobInfo) -> io::Result<()> {
        let _ = (repo, state, info);
        todo!()
    }
}
