//! The group guard: what stops a child's process group when dsync itself is
//! killed outright (SIGKILL, the OOM killer), when no cleanup of ours runs.
//!
//! `PR_SET_PDEATHSIG` on the child reaches only the group leader: rsync's
//! receiver, a fork of the leader, would go on writing into the mirror alone.
//! So beside every group dsync starts runs a tiny process of its own,
//! `dsync __guard GROUP PARENT`, in a group of its own. The kernel sends it
//! SIGTERM when its parent dies; it then stops the whole group (SIGTERM, a
//! grace period, SIGKILL) and exits. When the group ends normally, dsync
//! kills the guard (SIGKILL: it does nothing then).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{GRACE, signal_group};

/// The dsync binary that runs guards; unset (library use, unit tests): no guard.
static PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// The word that makes dsync a guard.
pub const WORD: &str = "__guard";

/// Guard the groups this process starts with `program` (the running dsync).
pub fn enable(program: PathBuf) {
    let _ = PROGRAM.set(program);
}

/// Start a guard for `group`; `None` when guards are off or it cannot start
/// (the leader's own PDEATHSIG still applies then).
pub fn start(group: i32) -> Option<Child> {
    let program = PROGRAM.get()?;
    let mut cmd = Command::new(program);
    cmd.arg(WORD)
        .arg(group.to_string())
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    // SAFETY: sigprocmask and prctl are async-signal-safe and touch no
    // memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            // Held pending until the guard's handler is in place (the mask
            // survives exec): a parent dying at once is not missed.
            let set = stop_signals();
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().ok()
}

/// Stop a guard whose group ended (or was stopped) under our control.
pub fn stop(guard: &mut Child) {
    let _ = guard.kill();
    let _ = guard.wait();
}

/// `dsync __guard GROUP PARENT`: wait for SIGTERM (our parent died, or
/// someone stops us), then stop `GROUP`. Exits at once when `PARENT` is
/// already gone (it died before the kernel was told to warn us).
pub fn main(args: &[String]) -> u8 {
    let (Some(group), Some(parent)) = (
        args.first().and_then(|g| g.parse::<i32>().ok()),
        args.get(1).and_then(|p| p.parse::<i32>().ok()),
    ) else {
        eprintln!("usage: dsync {WORD} GROUP PARENT");
        return crate::exit::USAGE;
    };
    if group <= 1 {
        return crate::exit::USAGE;
    }
    let mut signals =
        match signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT, libc::SIGHUP]) {
            Ok(signals) => signals,
            Err(_) => return crate::exit::FAILURE,
        };
    // The handler is in place: a pending (or later) signal reaches it.
    let set = stop_signals();
    // SAFETY: pthread_sigmask only changes this thread's signal mask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } == parent {
        // Blocks until a signal comes: the parent's death, or a stop.
        let _ = signals.forever().next();
    }
    stop_group(group);
    crate::exit::OK
}

/// The signals that make a guard stop its group.
fn stop_signals() -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is valid storage; sigemptyset initialises it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// SIGTERM to the group, then SIGKILL to whatever is left after [`GRACE`].
fn stop_group(group: i32) {
    signal_group(group, libc::SIGTERM);
    let deadline = Instant::now() + GRACE;
    // SAFETY: kill with signal 0 only checks for existence.
    while unsafe { libc::kill(-group, 0) } == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_group(group, libc::SIGKILL);
}
