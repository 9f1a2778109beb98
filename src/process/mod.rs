//! Child processes, each in a process group of its own.
//!
//! rsync forks (a receiver and a generator; with `-e ssh` also ssh), so stopping only
//! the process we started would leave the others writing into the mirror. Every child
//! here leads its own group and is stopped as a group: SIGTERM, a grace period, SIGKILL.
//! If dsync is killed outright, a guard process ([`guard`]) stops the group.

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::signals;

pub mod guard;

/// How long a group gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// A running child that leads its own process group.
#[derive(Debug)]
pub struct GroupChild {
    child: Child,
    group: i32,
    reaped: bool,
    /// Stops the group if we die first; stopped when the group ends.
    guard: Option<Child>,
}

/// Start `cmd` as the leader of a new process group.
pub fn spawn(cmd: &mut Command) -> io::Result<GroupChild> {
    cmd.process_group(0);
    // If we are killed outright (SIGKILL, OOM killer), no cleanup of ours runs:
    // ask the kernel to kill the child then, so no rsync goes on writing into the
    // mirror unsupervised. Its own children exit when their pipes close.
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    let group = child.id() as i32;
    signals::register(group);
    Ok(GroupChild {
        child,
        group,
        reaped: false,
        guard: guard::start(group),
    })
}

/// Start `cmd` in the background, in a new session (no controlling terminal,
/// out of our process group, so it outlives the shell that started it), with
/// standard input from /dev/null and its output appended to `log`: the
/// background forms of `-nolog` and `-service`.
pub fn spawn_detached(cmd: &mut Command, log: &std::path::Path) -> io::Result<Child> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn()
}

/// Run `cmd` to completion in its own group and return how it ended.
pub fn run(cmd: &mut Command) -> io::Result<ExitStatus> {
    spawn(cmd)?.wait()
}

impl GroupChild {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child's standard output, if it was piped (once).
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Wait for the leader to exit, then make sure nothing of its group survives it.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait()?;
        self.reaped();
        Ok(status)
    }

    /// Wait at most `limit`; `None` if the child is still running.
    pub fn wait_timeout(&mut self, limit: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.reaped();
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The leader is gone: a receiver or ssh left behind by a killed leader
    /// must not go on alone, and the guard has nothing left to do.
    fn reaped(&mut self) {
        self.reaped = true;
        signals::unregister(self.group);
        signal_group(self.group, libc::SIGKILL);
        if let Some(guard) = self.guard.as_mut() {
            guard::stop(guard);
        }
    }

    /// Stop the whole group: SIGTERM, then SIGKILL after [`GRACE`].
    pub fn terminate(&mut self) -> io::Result<ExitStatus> {
        signal_group(self.group, libc::SIGTERM);
        match self.wait_timeout(GRACE)? {
            Some(status) => Ok(status),
            None => {
                signal_group(self.group, libc::SIGKILL);
                self.wait()
            }
        }
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.terminate();
        }
    }
}

/// Send `signal` to process group `group`, ignoring a group that is already gone.
pub fn signal_group(group: i32, signal: i32) {
    if group > 1 {
        // SAFETY: killpg has no memory-safety preconditions.
        unsafe {
            libc::killpg(group, signal);
        }
    }
}

/// Does process `pid` still run? (A zombie has exited: only its parent's wait
/// is missing.)
pub fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    let exists = unsafe { libc::kill(pid, 0) == 0 };
    exists
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
            .unwrap_or(false)
}

/// Is process `pid` a dsync (this binary, or one whose program name says
/// dsync)? Only such a process may be signalled through a pid file: the pid
/// may have been reused by anything else since.
pub fn is_dsync(pid: i32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let ours = exe.is_some() && exe == std::env::current_exe().ok();
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    ours || String::from_utf8_lossy(argv0).contains("dsync")
}

/// The words of a hook or helper command line as configured (`HOOK1="/x --y"`):
/// split as the shell splits words, quotes grouping; a line the shell could not
/// split (an open quote) falls back to whitespace.
pub fn command_words(line: &str) -> Vec<String> {
    shell_words::split(line)
        .unwrap_or_else(|_| line.split_whitespace().map(str::to_string).collect())
}

/// strerror's text alone, as bash prints it after a name (`No such file or
/// directory`), without std's ` (os error N)`.
pub fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// The line bash writes when it cannot run `program`: operators grep their
/// logs for ftpsync's wording, so ours is the same.
pub fn bash_cannot_run(program: &str, e: &io::Error) -> String {
    if !program.contains('/') && e.kind() == io::ErrorKind::NotFound {
        format!("{program}: command not found")
    } else {
        format!("{program}: {}", strerror(e))
    }
}

/// The status a shell would report in `$?`: the exit code, or 128 + signal.
pub fn shell_status(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 255,
    }
}

impl GroupChild {
    /// The child's stdin pipe, if it was configured with `Stdio::piped()`.
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }
}
