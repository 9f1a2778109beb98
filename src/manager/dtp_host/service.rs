//! The DTP host service as commands: `-service` (in the background),
//! `-service -foreground` (for systemd), `-stop-service`, `-reload`
//! (`-startup` is [`super::startup`]).
//!
//! The running service is named by `HOME/dtp/service.pid`: its pid on the first
//! line, the address it listens on on the second. It is not in `run/`, where
//! `NAME.pid` belongs to the worker of repository `NAME` and `-emoff` looks.

use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::dtp::server::{self, Config};
use crate::manager::check::render;
use crate::manager::home::Home;
use crate::{exit, process};

/// How long `-service` waits for the service to accept connections.
const START_WAIT: Duration = Duration::from_secs(30);
/// How long `-stop-service` waits before SIGKILL (the service's grace is 5 s).
const STOP_WAIT: Duration = Duration::from_secs(20);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(20);

/// `HOME/dtp/service.pid` (not in run/, where `NAME.pid` belongs to repository `NAME`)
pub fn pid_file(home: &Home) -> PathBuf {
    super::dtp_dir(home).join("service.pid")
}

/// `HOME/logs/dtp-service.log`: the background service's messages.
pub fn log_file(home: &Home) -> PathBuf {
    home.logs_dir().join("dtp-service.log")
}

/// What the pid file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Running {
    pub(super) pid: i32,
    addr: Option<SocketAddr>,
}

/// `-service`: start the service in a new session, in the background, and
/// return once it accepts connections.
pub fn start(home: &Home) -> u8 {
    if let Some(code) = refuse_second(home) {
        return code;
    }
    let config = match prepare(home) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if let Err(code) = identity(home, &config) {
        return code;
    }
    let log_path = log_file(home);
    let offset = std::fs::metadata(&log_path).map_or(0, |m| m.len());
    let mut child = match spawn(home, &log_path) {
        Ok(child) => child,
        Err(e) => {
            eprintln!("dsync: cannot start the DTP service: {e}");
            return exit::FAILURE;
        }
    };
    wait_ready(home, &mut child, &config, &log_path, offset)
}

/// `-service -foreground`: serve in this process until SIGTERM or SIGINT.
/// Started as root, it becomes `dtp-user` (`nobody` without one) once bound
/// (see [`server::privileges`]).
pub fn foreground(home: &Home) -> u8 {
    if let Some(code) = refuse_second(home) {
        return code;
    }
    let config = match prepare(home) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let identity = match identity(home, &config) {
        Ok(identity) => identity,
        Err(code) => return code,
    };
    let pid_path = pid_file(home);
    // A service that drops root cannot remove its pid file from HOME/dtp
    // afterwards: it keeps it open to empty it when it stops.
    let keep_open = matches!(identity, server::Identity::Drop(_));
    let mut pid_kept: Option<std::fs::File> = None;
    let result = server::serve(
        super::host(home),
        config,
        identity,
        |addr| match write_pid_file(&pid_path, addr) {
            Ok(()) if keep_open => {
                pid_kept = std::fs::OpenOptions::new().write(true).open(&pid_path).ok();
            }
            Ok(()) => {}
            Err(e) => eprintln!("dsync: cannot write {}: {e}", pid_path.display()),
        },
    );
    if read_pid_file(&pid_path).is_some_and(|r| r.pid == own_pid())
        && std::fs::remove_file(&pid_path).is_err()
        && let Some(file) = &pid_kept
    {
        // Empty: not running (the next -service or -stop-service removes it).
        let _ = file.set_len(0);
    }
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            let what = if e.before_serving() {
                "does not start"
            } else {
                "stops"
            };
            let text = e.to_string();
            let mut lines = text.lines();
            eprintln!(
                "dsync: the DTP service {what}: {}",
                lines.next().unwrap_or_default()
            );
            for line in lines {
                eprintln!("dsync: {line}");
            }
            exit::FAILURE
        }
    }
}

/// Who the service is to be (see [`server::privileges::identity`]); a root
/// service whose `dtp-user` (or the default, `nobody`) cannot be used is
/// refused here, its fix printed.
fn identity(home: &Home, config: &Config) -> Result<server::Identity, u8> {
    server::privileges::identity(config, &home.xync_conf()).map_err(|message| {
        for line in message.lines() {
            eprintln!("dsync: {line}");
        }
        exit::CONFIG
    })
}

/// `-stop-service`: SIGTERM the service and wait for it to go.
pub fn stop(home: &Home) -> u8 {
    let pid_path = pid_file(home);
    let Some(running) = running(home) else {
        let _ = std::fs::remove_file(&pid_path);
        println!("dsync: the DTP service is not running");
        return exit::OK;
    };
    let pid = running.pid;
    signal(pid, libc::SIGTERM);
    if !wait_gone(pid, STOP_WAIT) {
        eprintln!("dsync: the DTP service (pid {pid}) did not stop in {STOP_WAIT:?}; killing it");
        signal(pid, libc::SIGKILL);
        wait_gone(pid, Duration::from_secs(5));
    }
    // Still naming it, or emptied by a service that had dropped root.
    if read_pid_file(&pid_path).is_none_or(|r| r.pid == pid) {
        let _ = std::fs::remove_file(&pid_path);
    }
    println!("dsync: stopped the DTP service (pid {pid})");
    exit::OK
}

/// `-reload`: check the configuration here, then SIGHUP the service.
pub fn reload(home: &Home) -> u8 {
    let Some(running) = running(home) else {
        eprintln!("dsync: the DTP service is not running; start it with dsync -service");
        return exit::FAILURE;
    };
    match super::load(home) {
        Ok(loaded) => {
            eprint!("{}", render(&loaded.warnings));
            super::hand_over_motd(home, &loaded);
        }
        Err(diags) => {
            eprint!("{}", render(&diags));
            eprintln!("dsync: not reloading: the service keeps its current configuration");
            return exit::CONFIG;
        }
    }
    if let Some(account) = ServiceAccount::of(running.pid) {
        for line in account.cannot_read(home) {
            eprintln!("dsync: warning: {line}");
        }
    }
    signal(running.pid, libc::SIGHUP);
    println!(
        "dsync: the DTP service (pid {}) reloads its configuration; see {}",
        running.pid,
        log_file(home).display()
    );
    exit::OK
}

/// The account a running service runs as, from `/proc/PID/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceAccount {
    uid: u32,
    groups: Vec<u32>,
}

impl ServiceAccount {
    /// Its effective uid, gid and supplementary groups; `None` for root
    /// (it reads everything) or when `/proc` does not say.
    fn of(pid: i32) -> Option<ServiceAccount> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| {
                    v.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let uid = *field("Uid:").get(1)?;
        let mut groups = field("Groups:");
        groups.push(*field("Gid:").get(1)?);
        (uid != 0).then_some(ServiceAccount { uid, groups })
    }

    /// What of the home the service's reload reads and this account may
    /// not: the home and `dtp/` (entered through the descriptor it holds, so
    /// the folders above do not count) and the configuration files. The
    /// motd is not among them: it is handed over.
    fn cannot_read(&self, home: &Home) -> Vec<String> {
        let files = super::files(home);
        let wanted = [
            (home.root.clone(), 0o1),
            (super::dtp_dir(home), 0o1),
            (home.xync_conf(), 0o4),
            (files.list, 0o4),
            (files.firewall, 0o4),
            (files.motd, 0o4),
        ];
        wanted
            .into_iter()
            .filter_map(|(path, bits)| {
                let meta = std::fs::metadata(&path).ok()?;
                (!self.may(&meta, bits)).then(|| {
                    let what = if bits == 0o1 { "enter" } else { "read" };
                    format!(
                        "{} (mode {:04o}) is one the service cannot {what}: it runs as uid {}; \
                         its reload fails and it keeps its old configuration. \
                         Fix: chmod o+{} {}",
                        path.display(),
                        meta.mode() & 0o7777,
                        self.uid,
                        if bits == 0o1 { "x" } else { "r" },
                        path.display()
                    )
                })
            })
            .collect()
    }

    /// Do `meta`'s permission bits give this account `bits` (4 read, 1 search)?
    fn may(&self, meta: &std::fs::Metadata, bits: u32) -> bool {
        let mode = meta.mode();
        let granted = if meta.uid() == self.uid {
            mode >> 6
        } else if self.groups.contains(&meta.gid()) {
            mode >> 3
        } else {
            mode
        };
        granted & bits == bits
    }
}

/// Refuse to start a second service on this home; forget a stale pid file.
fn refuse_second(home: &Home) -> Option<u8> {
    match running(home) {
        Some(r) if r.pid != own_pid() => {
            let at = r.addr.map(|a| format!(" on {a}")).unwrap_or_default();
            eprintln!(
                "dsync: the DTP service already runs{at} (pid {}); stop it with dsync -stop-service",
                r.pid
            );
            Some(exit::FAILURE)
        }
        Some(_) => None,
        None => {
            let _ = std::fs::remove_file(pid_file(home));
            None
        }
    }
}

/// Create what is missing (the home, the commented host files), then read the
/// configuration; its problems are printed.
pub(super) fn prepare(home: &Home) -> Result<Config, u8> {
    if !home.ensure_telling() {
        return Err(exit::FAILURE);
    }
    match super::ensure_files(home) {
        Ok(created) => {
            for path in created {
                println!(
                    "dsync: wrote {} (commented; edit it, then dsync -reload)",
                    path.display()
                );
            }
        }
        Err(e) => {
            eprintln!(
                "dsync: cannot create {}: {e}",
                super::dtp_dir(home).display()
            );
            return Err(exit::FAILURE);
        }
    }
    match super::load(home) {
        Ok(loaded) => {
            eprint!("{}", render(&loaded.warnings));
            super::hand_over_motd(home, &loaded);
            Ok(loaded.config)
        }
        Err(diags) => {
            eprint!("{}", render(&diags));
            eprintln!("dsync: the DTP service does not start: fix the errors above");
            Err(exit::CONFIG)
        }
    }
}

/// This binary again, `-home H -service -foreground`, in a session of its
/// own (no terminal to lose), output appended to the service log.
fn spawn(home: &Home, log_path: &Path) -> std::io::Result<Child> {
    let mut cmd = Command::new(exe_path());
    cmd.arg("-home")
        .arg(&home.root)
        .args(["-service", "-foreground"]);
    crate::process::spawn_detached(&mut cmd, log_path)
}

/// Until the child has written the pid file and its port answers, or it died.
fn wait_ready(home: &Home, child: &mut Child, config: &Config, log_path: &Path, offset: u64) -> u8 {
    let deadline = Instant::now() + START_WAIT;
    let pid = child.id() as i32;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            eprint!("{}", log_since(log_path, offset));
            eprintln!(
                "dsync: the DTP service did not start ({status}); log: {}",
                log_path.display()
            );
            return status
                .code()
                .map_or(exit::FAILURE, |c| c as u8)
                .max(exit::FAILURE);
        }
        if let Some(Running {
            pid: p,
            addr: Some(addr),
        }) = read_pid_file(&pid_file(home))
            && p == pid
            && TcpStream::connect_timeout(&server::reachable(addr), Duration::from_secs(1)).is_ok()
        {
            // What the service warned of as it started (as the account it
            // became: a reload it could not read its files for, a tree).
            for line in log_since(log_path, offset)
                .lines()
                .filter_map(|l| l.split_once("]: warning: "))
            {
                eprintln!("dsync: warning: {}", line.1);
            }
            println!("dsync: DTP service listening on {addr} (pid {pid})");
            println!(
                "dsync: log {}, access log {}",
                log_path.display(),
                super::access_log_path(home).display()
            );
            return exit::OK;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "dsync: the DTP service (pid {pid}) does not accept connections on {} after {START_WAIT:?}; stopping it; log: {}",
                config.listen,
                log_path.display()
            );
            signal(pid, libc::SIGTERM);
            return exit::FAILURE;
        }
        std::thread::sleep(POLL);
    }
}

/// What the service wrote to its log since `offset` (at most the last 8 KiB).
fn log_since(path: &Path, offset: u64) -> String {
    let mut text = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map_or(0, |m| m.len());
        let _ = f.seek(SeekFrom::Start(offset.max(len.saturating_sub(8192))));
        let _ = f.read_to_end(&mut text);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// Written after binding, by rename, so a reader sees all of it or nothing.
fn write_pid_file(path: &Path, addr: SocketAddr) -> std::io::Result<()> {
    let tmp = path.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{}\n{addr}\n", own_pid()))?;
    std::fs::rename(&tmp, path)
}

fn read_pid_file(path: &Path) -> Option<Running> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok().filter(|p| *p > 1)?;
    let addr = lines.next().and_then(|a| a.trim().parse().ok());
    Some(Running { pid, addr })
}

/// The service named by the pid file, if that process lives and is a dsync
/// service (a reused pid must not be signalled).
pub(super) fn running(home: &Home) -> Option<Running> {
    read_pid_file(&pid_file(home)).filter(|r| is_service(r.pid) && process::alive(r.pid))
}

/// Is `pid` a `dsync ... -service` process?
fn is_service(pid: i32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let service = cmdline
        .split(|b| *b == 0)
        .any(|a| a == b"-service" || a == b"--service");
    service && process::is_dsync(pid)
}

fn wait_gone(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while process::alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
    true
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn own_pid() -> i32 {
    std::process::id() as i32
}

pub(super) fn exe_path() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("dsync"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dtp.pid");
        write_pid_file(&path, "127.0.0.1:47921".parse().unwrap()).unwrap();
        let r = read_pid_file(&path).unwrap();
        assert_eq!(r.pid, own_pid());
        assert_eq!(r.addr, Some("127.0.0.1:47921".parse().unwrap()));
        // This test process is no `-service`.
        assert!(!is_service(own_pid()));
    }
}
