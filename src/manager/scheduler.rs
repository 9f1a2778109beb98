//! `dsync`: sync every due repository, `syncps` at a time, each in a worker
//! process of its own, bound round-robin to the `ipadd` addresses, stopped
//! as a group when it outlives `maxtime`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::home::Home;
use super::notify::{self, Event};
use super::progress::{self, Display};
use super::repo::Repo;
use super::status::{JobInfo, State};
use super::worker::{self, EMOFF_MARKER};
use super::xync::{self, Global};
use super::{logs, schedule};
use crate::exit;
use crate::process::GroupChild;

/// What to sync.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `-sync NAME`: this repository only, now, whatever its timeset.
    pub only: Option<String>,
    /// `-force`: every repository now, whatever its timeset; missing `save`
    /// folders are created.
    pub force: bool,
}

/// A running worker.
struct Running {
    name: String,
    /// The repository's own `mailto=`, for the alert when it is stopped.
    mailto: Option<String>,
    child: GroupChild,
    started: Instant,
}

/// Run the due repositories; the exit status is FAILURE if any failed.
pub fn run(home: &Home, selection: &Selection) -> u8 {
    if let Err(e) = home.ensure() {
        eprintln!("dsync: cannot set up {}: {e}", home.root.display());
        return exit::FAILURE;
    }
    let (global, global_diags) = xync::load(&home.xync_conf());
    let (repos, repo_diags) = super::repo_files::load(home);
    let mut errors = false;
    for diag in global_diags.iter().chain(&repo_diags) {
        eprintln!("{diag}");
        errors |= diag.is_error();
    }
    if global_diags.iter().any(|d| d.is_error()) {
        eprintln!(
            "dsync: fix {} first (dsync -test shows every problem)",
            home.xync_conf().display()
        );
        return exit::CONFIG;
    }
    let _pid_file = PidFile::write(home);
    clear_emoff_markers(&repos);
    if let Err(e) = logs::clean(&home.logs_dir(), logs::MAX_AGE) {
        eprintln!("dsync: cannot clean old logs: {e}");
    }
    let queue = match select(&repos, selection) {
        Ok(queue) => queue,
        Err(message) => {
            eprintln!("dsync: {message}");
            return exit::USAGE;
        }
    };
    if queue.is_empty() {
        println!(
            "dsync: no repository is due this hour ({} configured)",
            repos.len()
        );
        return if errors { exit::CONFIG } else { exit::OK };
    }
    let (queue, missing) = ready(queue, selection.force);
    let failed = run_queue(home, &global, queue);
    if failed + missing > 0 {
        exit::FAILURE
    } else {
        exit::OK
    }
}

/// The repositories to sync now, in name order.
fn select<'a>(repos: &'a [Repo], selection: &Selection) -> Result<Vec<&'a Repo>, String> {
    if let Some(name) = &selection.only {
        return match repos.iter().find(|r| &r.name == name) {
            Some(repo) => Ok(vec![repo]),
            None => Err(format!("no repository named {name} (see dsync -test)")),
        };
    }
    let hour = chrono::Timelike::hour(&chrono::Local::now()) as u8;
    Ok(repos
        .iter()
        .filter(|r| selection.force || schedule::is_due(r.timeset.as_deref(), hour))
        .collect())
}

/// A missing mirror folder usually means an unmounted disk: syncing would fill
/// the root file system. Such repositories are refused unless `-force`, which
/// creates the folder. Returns the repositories to run and how many were refused.
fn ready(queue: Vec<&Repo>, force: bool) -> (Vec<&Repo>, usize) {
    let mut refused = 0;
    let queue = queue
        .into_iter()
        .filter(|repo| {
            if repo.save.is_dir() {
                return true;
            }
            if force {
                if let Err(e) = std::fs::create_dir_all(&repo.save) {
                    eprintln!(
                        "dsync: {}: cannot create {}: {e}",
                        repo.name,
                        repo.save.display()
                    );
                    refused += 1;
                    return false;
                }
                println!(
                    "dsync: {}: created the mirror folder {}",
                    repo.name,
                    repo.save.display()
                );
                return true;
            }
            eprintln!(
                "dsync: {}: not synced: the mirror folder {} does not exist (a disk not mounted?); \
                 create it (mkdir -p {}) or run dsync -force",
                repo.name,
                repo.save.display(),
                repo.save.display()
            );
            refused += 1;
            false
        })
        .collect();
    (queue, refused)
}

/// How often finished workers are looked for. A no-op sync (an unchanged
/// DTP upstream) takes tens of milliseconds, so a young worker is watched
/// closely; long syncs need no such haste.
const POLL_YOUNG: Duration = Duration::from_millis(5);
const POLL: Duration = Duration::from_millis(50);
const YOUNG: Duration = Duration::from_secs(2);
/// How often the progress display is redrawn.
const TICK: Duration = Duration::from_millis(100);

/// Run `queue` with at most `syncps` workers at once; returns how many failed.
fn run_queue(home: &Home, global: &Global, queue: Vec<&Repo>) -> usize {
    let mut display = Display::new(&home.run_dir());
    let mut waiting = queue.into_iter();
    let mut running: Vec<Running> = Vec::new();
    let mut failed = 0;
    let mut started = 0usize;
    let mut last_tick = Instant::now();
    loop {
        let stopping = crate::signals::received().is_some();
        while !stopping && running.len() < global.syncps.max(1) {
            let Some(repo) = waiting.next() else { break };
            // Round-robin over the uplinks: the n-th sync started binds address n.
            let address = (!global.ipadd.is_empty())
                .then(|| global.ipadd[started % global.ipadd.len()].as_str());
            started += 1;
            match spawn_worker(home, &repo.name, address) {
                Ok(child) => {
                    display.started(&repo.name, address);
                    running.push(Running {
                        name: repo.name.clone(),
                        mailto: repo.mailto.clone(),
                        child,
                        started: Instant::now(),
                    });
                }
                Err(e) => {
                    eprintln!("dsync: {}: cannot start its sync: {e}", repo.name);
                    failed += 1;
                }
            }
        }
        if running.is_empty() {
            return failed;
        }
        let before = running.len();
        if last_tick.elapsed() >= TICK {
            display.tick();
            last_tick = Instant::now();
        }
        failed += reap(home, global, &mut running, &mut display);
        // A finished worker is replaced (or the run ends) at once, not a nap later.
        if running.len() == before {
            let young = running.iter().any(|j| j.started.elapsed() < YOUNG);
            std::thread::sleep(if young { POLL_YOUNG } else { POLL });
        }
    }
}

/// Collect finished workers and stop those over `maxtime`; returns new failures.
fn reap(home: &Home, global: &Global, running: &mut Vec<Running>, display: &mut Display) -> usize {
    let mut failed = 0;
    let mut i = 0;
    while i < running.len() {
        let job = &mut running[i];
        let status = match job.child.wait_timeout(Duration::ZERO) {
            Ok(Some(status)) => Some(crate::process::shell_status(status)),
            Ok(None) if job.started.elapsed() > global.maxtime => {
                let _ = job.child.terminate();
                timed_out(home, global, &job.name, job.mailto.as_deref());
                Some(TIMED_OUT)
            }
            Ok(None) => None,
            Err(_) => Some(i32::from(exit::FAILURE)),
        };
        let Some(code) = status else {
            i += 1;
            continue;
        };
        let ok = code == i32::from(exit::OK) || code == i32::from(exit::SKIPPED);
        failed += usize::from(!ok);
        let _ = std::fs::remove_file(progress::file(&home.run_dir(), &job.name));
        display.finished(&job.name, &result_line(home, &job.name, code, job.started));
        running.remove(i);
    }
    failed
}

/// Marks a worker the scheduler stopped at `maxtime`.
const TIMED_OUT: i32 = -1;

/// What one sync's end looks like on the terminal and in cron mail.
fn result_line(home: &Home, name: &str, code: i32, started: Instant) -> String {
    let secs = started.elapsed().as_secs();
    let logs = home.logs_dir();
    match u8::try_from(code) {
        Ok(exit::OK) => format!("{name}: success ({secs} s)"),
        Ok(exit::SKIPPED) => format!("{name}: previous sync still running, skipped"),
        Ok(exit::CONFIG) => format!(
            "{name}: failed: configuration error; see dsync -test and {}",
            logs.display()
        ),
        _ if code == TIMED_OUT => format!("{name}: failed: stopped at the maxtime limit"),
        _ => format!(
            "{name}: failed (exit {code}) after {secs} s; see its log in {}",
            logs.display()
        ),
    }
}

fn spawn_worker(home: &Home, name: &str, address: Option<&str>) -> std::io::Result<GroupChild> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("-home").arg(&home.root).arg("__worker").arg(name);
    if let Some(address) = address {
        cmd.arg(address);
    }
    crate::process::spawn(&mut cmd)
}

/// A worker outlived `maxtime` and was stopped: it could not report itself.
fn timed_out(home: &Home, global: &Global, name: &str, mailto: Option<&str>) {
    let now = chrono::Utc::now().timestamp();
    let message = format!(
        "stopped after the wall-clock limit (maxtime) of {} s",
        global.maxtime.as_secs()
    );
    eprintln!("dsync: {name}: {message}");
    let store = worker::status_store(home, global);
    let info = JobInfo {
        last_ended: Some(now),
        ..JobInfo::default()
    };
    let _ = store.set(name, State::Failed, &info);
    let event = Event {
        repo: name.to_string(),
        ok: false,
        message,
        host: crate::host::fqdn(),
        started: now - global.maxtime.as_secs() as i64,
        ended: now,
        exit_code: i32::from(exit::FAILURE),
    };
    for failure in notify::alert(global, mailto, &event, None) {
        eprintln!("dsync: {name}: {failure}");
    }
}

/// "Removed by the next start": markers of an emergency stop.
fn clear_emoff_markers(repos: &[Repo]) {
    for repo in repos {
        let marker = repo.save.join(EMOFF_MARKER);
        if marker.exists() {
            println!(
                "dsync: {}: clearing the emergency-stop marker {}",
                repo.name,
                marker.display()
            );
            let _ = std::fs::remove_file(marker);
        }
    }
}

/// `run/scheduler-PID.pid` while a scheduler runs, so `-emoff` can stop it.
struct PidFile(std::path::PathBuf);

impl PidFile {
    fn write(home: &Home) -> Option<PidFile> {
        let path = scheduler_pid_file(home, std::process::id());
        std::fs::create_dir_all(home.run_dir()).ok()?;
        std::fs::write(&path, format!("{}\n", std::process::id())).ok()?;
        Some(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn scheduler_pid_file(home: &Home, pid: u32) -> std::path::PathBuf {
    home.run_dir().join(format!("scheduler-{pid}.pid"))
}

/// Is `path` a pid file of a scheduler?
pub fn is_scheduler_pid_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("scheduler-") && n.ends_with(".pid"))
}
