//! The one table of exit codes `dsync` returns.
//!
//! In `ftpsync` mode the codes are those of Debian's ftpsync 20180513+nmu1 for the
//! same situation, so cron wrappers and monitoring that look at them keep working.

/// Everything worked.
pub const OK: u8 = 0;
/// A generic failure; for `dsync`, at least one repository failed to sync.
/// In ftpsync mode: the sync lock is held by a live process, `ARCH_INCLUDE` and
/// `ARCH_EXCLUDE` are both set, an unknown `RSYNC_TRANSPORT`, a required variable
/// (`RSYNC_HOST`, `LOGNAME` for the default `MAILTO`) is missing, or the upstream
/// archive update stayed in progress after `UIPRETRIES` waits.
pub const FAILURE: u8 = 1;
/// Stage one (everything but the index files) failed.
pub const STAGE1_FAILED: u8 = 3;
/// Stage two (index files and deletions) failed.
pub const STAGE2_FAILED: u8 = 4;
/// `dsync`: a repository was skipped because its previous sync still runs
/// (`EX_TEMPFAIL`: try again later).
pub const SKIPPED: u8 = 75;
/// An unknown command-line option (`EX_USAGE`).
pub const USAGE: u8 = 64;
/// No configuration file, or one we cannot evaluate (`EX_CONFIG`); for `dsync
/// -test`, any configuration error found.
pub const CONFIG: u8 = 78;
/// A hook that fails makes ftpsync stop with the hook's own exit status; we do the
/// same (so the code is whatever the hook returned, 127 when it could not be run).
pub const HOOK_NOT_RUNNABLE: u8 = 127;
/// Killed by signal N: `128 + N`, as a shell reports it.
pub const SIGNAL_BASE: u8 = 128;

/// Exit status for a run stopped by `signal`.
pub fn for_signal(signal: i32) -> u8 {
    SIGNAL_BASE.saturating_add(signal.clamp(0, 127) as u8)
}
