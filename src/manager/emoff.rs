//! `-emoff`: emergency stop of every running sync of this home.

use std::path::Path;
use std::time::{Duration, Instant};

use super::home::Home;
use super::scheduler::is_scheduler_pid_file;
use super::status::{JobInfo, State};
use super::worker::{self, EMOFF_MARKER};
use super::xync;
use crate::exit;
use crate::process::{GRACE, signal_group};

/// Stop schedulers first (so they start nothing new), then every worker's
/// process group; leave a marker in each stopped repository's folder.
///
/// Every pid file is read before anything is signalled: a stopped scheduler
/// passes the signal on to its workers, which then remove their own pid files.
pub fn run(home: &Home) -> u8 {
    let Ok(entries) = std::fs::read_dir(home.run_dir()) else {
        println!("dsync -emoff: nothing is running");
        return exit::OK;
    };
    let (global, _) = xync::load(&home.xync_conf());
    let (repos, _) = super::repo_files::load(home);
    // Schedulers and repository workers only: the DTP service keeps its pid
    // file in run/ too, and -emoff is about syncs.
    let is_sync = |p: &std::path::Path| {
        is_scheduler_pid_file(p)
            || p.file_stem()
                .is_some_and(|stem| repos.iter().any(|r| stem == r.name.as_str()))
    };
    let mut running: Vec<(std::path::PathBuf, i32)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pid") && is_sync(p))
        .filter_map(|p| read_pid(&p).map(|pid| (p, pid)))
        .collect();
    running.sort_by_key(|(p, _)| !is_scheduler_pid_file(p));
    let mut stopped = 0;
    running.retain(|(path, pid)| {
        // Only ever signal a dsync: a reused pid must survive.
        let alive = crate::process::is_dsync(*pid);
        if !alive {
            let _ = std::fs::remove_file(path);
        }
        alive
    });
    for (path, pid) in &running {
        let pid = *pid;
        stop_group(pid);
        stopped += 1;
        if is_scheduler_pid_file(path) {
            println!("dsync -emoff: stopped the scheduler (pid {pid})");
            continue;
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!("dsync -emoff: stopped the sync of {name} (pid {pid})");
        if let Some(repo) = repos.iter().find(|r| r.name == name) {
            leave_marker(&repo.save, pid);
            let info = JobInfo {
                last_ended: Some(chrono::Utc::now().timestamp()),
                ..JobInfo::default()
            };
            let _ = worker::status_store(home, &global).set(&name, State::Failed, &info);
        }
        let _ = std::fs::remove_file(path);
    }
    if stopped == 0 {
        println!("dsync -emoff: nothing is running");
    }
    exit::OK
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 1)
}

/// SIGTERM the process (its whole group when it leads one: workers do, a
/// scheduler started from cron or a shell may not), wait for it to go, then
/// SIGKILL after the grace period.
fn stop_group(pid: i32) {
    // SAFETY: getpgid and kill have no memory-safety preconditions.
    let leads_group = unsafe { libc::getpgid(pid) } == pid;
    let signal = |sig| {
        if leads_group {
            signal_group(pid, sig);
        } else {
            // SAFETY: as above.
            unsafe { libc::kill(pid, sig) };
        }
    };
    signal(libc::SIGTERM);
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline && crate::process::alive(pid) {
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(libc::SIGKILL);
}

fn leave_marker(save: &Path, pid: i32) {
    let text = format!(
        "sync stopped by dsync -emoff at {} (worker pid {pid}); the next dsync run removes this file\n",
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S %z")
    );
    // Beneath the mirror root: a symlink by that name is replaced, not followed.
    if let Ok(root) = crate::beneath::Root::open(save) {
        let _ = root.write_atomic(Path::new(EMOFF_MARKER), text.as_bytes(), 0o644);
    }
}
