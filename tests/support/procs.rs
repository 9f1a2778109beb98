//! The processes of a test, found in `/proc`: who is still alive in a process
//! group, or with a test's own folder on its command line, so a test can
//! assert that nothing it started outlives a signal.
//!
//! Zombies are dead (only their parent's `wait` is missing; an orphan's new
//! parent may never reap it) and count as gone. A killed multi-threaded
//! process shows its first thread as a zombie while the others still exit,
//! holding its files and locks: it counts as alive until they are gone.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// One process, as `/proc/PID/stat` and `/proc/PID/cmdline` show it.
#[derive(Clone, Debug)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    /// `R`, `S`, `D`, `Z`, ...
    pub state: char,
    /// The arguments, joined by spaces.
    pub cmdline: String,
}

impl Proc {
    pub fn alive(&self) -> bool {
        self.state != 'Z' && self.state != 'X'
    }
}

impl std::fmt::Display for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut cmd = self.cmdline.clone();
        if cmd.len() > 200 {
            let mut end = 200;
            while !cmd.is_char_boundary(end) {
                end -= 1;
            }
            cmd.truncate(end);
            cmd.push('…');
        }
        write!(
            f,
            "pid {} (ppid {}, group {}, state {}): {cmd}",
            self.pid, self.ppid, self.pgrp, self.state
        )
    }
}

/// One process, if it (still) exists.
pub fn get(pid: i32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (COMM) STATE PPID PGRP ...": COMM may hold spaces and parentheses.
    let (_, rest) = stat.rsplit_once(") ")?;
    let mut fields = rest.split_whitespace();
    let mut state = fields.next()?.chars().next()?;
    if matches!(state, 'Z' | 'X') {
        state = other_thread_state(pid).unwrap_or(state);
    }
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    Some(Proc {
        pid,
        ppid,
        pgrp,
        state,
        cmdline,
    })
}

/// The state of a thread of `pid` (not the first) that has not exited yet.
fn other_thread_state(pid: i32) -> Option<char> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    tasks.flatten().find_map(|task| {
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        let state = stat.rsplit_once(") ")?.1.chars().next()?;
        (!matches!(state, 'Z' | 'X')).then_some(state)
    })
}

/// Every process of the system.
pub fn all() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(get)
        .collect()
}

/// Whether `pid` runs (exists and is not a zombie).
pub fn alive(pid: i32) -> bool {
    get(pid).is_some_and(|p| p.alive())
}

/// Living processes that are in one of `groups`, or whose command line
/// contains `needle` (a test's own temporary folder), but for this process.
pub fn survivors(groups: &[i32], needle: &str) -> Vec<Proc> {
    let me = std::process::id() as i32;
    all()
        .into_iter()
        .filter(|p| p.pid != me && p.alive())
        .filter(|p| groups.contains(&p.pgrp) || (!needle.is_empty() && p.cmdline.contains(needle)))
        .collect()
}

/// Wait up to `timeout` for [`survivors`] to be none; the survivors otherwise.
pub fn wait_gone(groups: &[i32], needle: &str, timeout: Duration) -> Result<(), Vec<Proc>> {
    let start = Instant::now();
    loop {
        let left = survivors(groups, needle);
        if left.is_empty() {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(left);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILL every survivor, one by one (a test cleaning up what it started).
pub fn kill_survivors(groups: &[i32], needle: &str) {
    for p in survivors(groups, needle) {
        // SAFETY: kill(2) on one pid that is in the test's own group or names its folder.
        unsafe { libc::kill(p.pid, libc::SIGKILL) };
    }
}

/// A pid written to `path` (a wrapper's `echo $$ > FILE`), once it is there.
pub fn read_pid(path: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
