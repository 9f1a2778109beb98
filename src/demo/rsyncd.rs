//! The demo's upstream: a real `rsync --daemon` serving one directory, read-only, on
//! 127.0.0.1 at a free port.
//!
//! Its files live in one directory (`rsyncd.conf`, `rsyncd.log`, `rsyncd.pid`, `output.log`).
//! The port and address are in `rsyncd.conf` itself, so an operator can start the same
//! daemon by hand with `rsync --daemon --no-detach --config=DIR/rsyncd.conf`.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process::{self, GroupChild};

/// The only address the demo daemon listens on: nothing outside this machine sees it.
const ADDR: &str = "127.0.0.1";
/// How long the daemon gets to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How many ports to try when another program takes ours before rsync binds it.
const ATTEMPTS: usize = 5;

/// A running daemon; stopped (with its per-connection children) on [`stop`](Self::stop) or drop.
pub struct Daemon {
    child: GroupChild,
    port: u16,
    dir: PathBuf,
}

/// Whether an executable `program` is in one of `$PATH`'s directories.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        fs::metadata(dir.join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

impl Daemon {
    /// Serve `path` as `module` with the daemon's files in `dir` (created).
    pub fn start(dir: &Path, module: &str, path: &Path) -> anyhow::Result<Daemon> {
        fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            let port = free_port()?;
            match Self::start_on(dir, module, path, port)? {
                Ok(daemon) => return Ok(daemon),
                Err(e) => {
                    failures.push(format!("port {port}: {}", e.why));
                    if !e.port_taken {
                        break; // the same error again on another port
                    }
                }
            }
        }
        bail!(
            "rsync --daemon did not start: {} (see {} and {})",
            failures.join("; "),
            dir.join("output.log").display(),
            dir.join("rsyncd.log").display()
        )
    }

    /// One attempt on `port`. The outer error is ours (cannot write, cannot run rsync); the
    /// inner one is the daemon's.
    fn start_on(
        dir: &Path,
        module: &str,
        path: &Path,
        port: u16,
    ) -> anyhow::Result<Result<Daemon, NotReady>> {
        let conf = dir.join("rsyncd.conf");
        let log = dir.join("rsyncd.log");
        fs::write(&conf, config(module, path, port, &log))
            .with_context(|| format!("write {}", conf.display()))?;
        // A fresh log per attempt: readiness is judged by our daemon logging a connection.
        let _ = fs::remove_file(&log);
        let output = dir.join("output.log");
        let out =
            fs::File::create(&output).with_context(|| format!("create {}", output.display()))?;
        let mut cmd = Command::new("rsync");
        cmd.arg("--daemon")
            .arg("--no-detach")
            .arg(format!("--config={}", conf.display()))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // process::spawn also has the kernel kill the daemon should dsync itself be killed.
        let mut child = process::spawn(&mut cmd).context("cannot run rsync --daemon")?;
        let pid_file = dir.join("rsyncd.pid");
        fs::write(&pid_file, format!("{}\n", child.id()))
            .with_context(|| format!("write {}", pid_file.display()))?;
        let sa = SocketAddr::from(([127, 0, 0, 1], port));
        Ok(match wait_ready(&mut child, sa, &log) {
            Ok(()) => Ok(Daemon {
                child,
                port,
                dir: dir.to_path_buf(),
            }),
            Err(why) => {
                drop(child); // stops whatever is left of it
                Err(NotReady::new(why, &[&output, &log]))
            }
        })
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Process id of rsync (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Path of the daemon's config.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("rsyncd.conf")
    }

    /// Stop the daemon and every per-connection child, and reap it.
    pub fn stop(mut self) -> std::io::Result<()> {
        self.child.terminate().map(drop)
    }
}

/// Why an attempt to start the daemon failed.
struct NotReady {
    why: String,
    /// Another program took the port before rsync could bind it: worth another port.
    port_taken: bool,
}

impl NotReady {
    /// `why`, with the last line the daemon wrote to any of `files` (where rsync says why
    /// it quit).
    fn new(why: String, files: &[&Path]) -> NotReady {
        let said: Vec<String> = files
            .iter()
            .filter_map(|f| fs::read_to_string(f).ok())
            .collect();
        let port_taken = said
            .iter()
            .any(|t| t.contains("Address already in use") || t.contains("unable to bind"));
        let last = said
            .iter()
            .filter_map(|t| t.lines().rfind(|l| !l.trim().is_empty()))
            .next_back();
        let why = match last {
            Some(line) => format!("{why}: {}", line.trim()),
            None => why,
        };
        NotReady { why, port_taken }
    }
}

/// rsyncd.conf for one read-only module.
fn config(module: &str, path: &Path, port: u16, log: &Path) -> String {
    let mut conf = String::from(
        "# rsyncd.conf written by `dsync demo`: the upstream the demo mirrors from.\n\
         # Start it by hand with: rsync --daemon --no-detach --config=THIS_FILE\n",
    );
    conf.push_str(&format!("address = {ADDR}\nport = {port}\n"));
    // No chroot: it needs root, and the demo mostly runs as a normal user.
    // No symlink munging: the archive's relative symlinks must reach the mirror as they are.
    conf.push_str("use chroot = no\nmunge symlinks = no\nread only = yes\n");
    conf.push_str("reverse lookup = no\ntransfer logging = yes\n");
    conf.push_str(&format!("log file = {}\n", log.display()));
    // SAFETY: getuid/getgid cannot fail and have no side effects.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if uid == 0 {
        // As root, rsync would otherwise read the module as "nobody".
        conf.push_str(&format!("uid = {uid}\ngid = {gid}\n"));
    }
    conf.push_str(&format!(
        "\n[{module}]\n    path = {}\n    comment = dsync demo upstream\n",
        path.display()
    ));
    conf
}

/// A port that was free on 127.0.0.1 a moment ago (bind port 0, read it, release it).
/// Another program may take it first: [`Daemon::start`] then tries again.
pub(super) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((ADDR, 0)).with_context(|| format!("bind {ADDR}:0"))?;
    Ok(listener.local_addr()?.port())
}

/// Wait until our daemon accepts and answers on `sa`. We ask for the module list (a clean
/// protocol exchange) and then require our own log to record the connection, so another
/// server that grabbed the port meanwhile is not mistaken for ours.
fn wait_ready(child: &mut GroupChild, sa: SocketAddr, log: &Path) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.wait_timeout(Duration::ZERO) {
            return Err(format!("exited early ({status})"));
        }
        if start.elapsed() > START_TIMEOUT {
            return Err(format!("not accepting on {sa} after {START_TIMEOUT:?}"));
        }
        // A connection our own log does not record came from another server on the port:
        // our daemon then fails to bind and exits, and the caller tries another port.
        if let Ok(stream) = TcpStream::connect_timeout(&sa, Duration::from_millis(200))
            && list_modules(stream)
            && logged_connection(log)
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Speak just enough of the daemon protocol to ask for the module list.
fn list_modules(mut stream: TcpStream) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(reader) = stream.try_clone() else {
        return false;
    };
    let mut reader = BufReader::new(reader);
    let mut greeting = String::new();
    if reader.read_line(&mut greeting).is_err() || !greeting.starts_with("@RSYNCD:") {
        return false;
    }
    let _ = stream.write_all(b"@RSYNCD: 30.0\n#list\n");
    let _ = reader.read_to_end(&mut Vec::new());
    true
}

fn logged_connection(log: &Path) -> bool {
    fs::read_to_string(log).is_ok_and(|l| l.contains("connect from"))
}
