//! A real OpenSSH `sshd` on 127.0.0.1, and the real `ssh` client to reach it, for tests.
//!
//! ```ignore
//! if let Some(why) = sshd::skip_reason() {
//!     eprintln!("SKIPPED my_test: {why}");
//!     return;
//! }
//! let keys = tempfile::tempdir().unwrap();
//! let key = ClientKey::new(keys.path());
//! let d = Sshd::start(&[key.forced_command("echo hello")]);
//! let out = sshd::output_within(d.ssh(&key, "sync:all"), Duration::from_secs(60));
//! ```
//!
//! This is how Debian mirrors push each other: the upstream runs `ssh mirror@downstream
//! sync:all`, and the downstream's `authorized_keys` forces a command (`command="ftpsync",
//! restrict ssh-ed25519 …`) that sees the words as `SSH_ORIGINAL_COMMAND`.
//!
//! # The server
//!
//! [`Sshd::start`] runs Debian's `/usr/sbin/sshd -D -e -f CONFIG` (foreground, log to
//! stderr, which goes to a file) in its own process group, with everything private to a
//! temporary directory: a fresh ed25519 host key, the `sshd_config`, the pid file, the log,
//! and the `authorized_keys` file holding exactly the lines given. Nothing under `/etc/ssh`
//! or any `~/.ssh` is read. The config allows public keys only (no passwords, no
//! keyboard-interactive, no PAM, no `~/.ssh/environment`, no client environment: sshd
//! accepts no `SendEnv` variables unless `AcceptEnv` is given, and it is not), logs at
//! `VERBOSE` (accepted key fingerprints, forced commands), and uses `StrictModes no` so
//! temporary directories are acceptable homes for keys.
//!
//! Logins are as the current user (see [`current_user`]): as root (CI) sshd needs its
//! privilege separation directory `/run/sshd`, which is created if missing, as Debian's
//! service unit does. As another user sshd runs unprivileged on its high port and can only
//! log in that same user; OpenSSH ≥ 7.5 has no `UsePrivilegeSeparation` switch any more,
//! privilege separation simply does without the chroot then.
//!
//! Readiness is our own log saying `Server listening on 127.0.0.1 port PORT.` and the port
//! answering with an `SSH-2.0-` banner. If another process takes the free port first, sshd
//! logs `Address already in use` and exits, and we retry on a fresh port.
//!
//! # Lifetime
//!
//! As for [`super::rsyncd::RsyncDaemon`]: an `sh` wrapper is the process group leader, runs
//! sshd and a watchdog that stops sshd when the test process exits (its end of a pipe
//! closes). Dropping the [`Sshd`] kills more than the group: sshd puts every connection in
//! a new session (`setsid`), and the forced command in another one, so those processes are
//! not in our group. Drop therefore walks `/proc` for every descendant of the wrapper (the
//! listener, connection processes, forced commands and their children, e.g. ftpsync's
//! rsync) and SIGKILLs each by pid, then stops the group. The watchdog stops only the
//! listener; a connection still open when a test binary exits ends with its client.
//!
//! # The client
//!
//! [`client_args`] builds the `ssh` argv for a connection: `-F /dev/null` (neither
//! `~/.ssh/config` nor `/etc/ssh/ssh_config` is read, and ssh does not create `~/.ssh`),
//! the key with `IdentitiesOnly=yes` and `IdentityAgent=none` (no agent, no default
//! `~/.ssh/id_*`), `BatchMode=yes`, host keys neither checked nor recorded
//! (`StrictHostKeyChecking=no`, `UserKnownHostsFile=/dev/null`,
//! `GlobalKnownHostsFile=/dev/null`), and `LogLevel=ERROR` so the client's stderr holds only
//! errors and what the remote command wrote there.
#![allow(dead_code)]

use std::ffi::CStr;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Debian's sshd. sshd re-executes itself per connection, so it must be an absolute path.
pub const SSHD: &str = "/usr/sbin/sshd";
/// sshd's privilege separation directory on Debian (needed when running as root).
pub const PRIVSEP_DIR: &str = "/run/sshd";
/// The address sshd listens on.
pub const ADDR: &str = "127.0.0.1";
/// How long to wait for sshd to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How many ports to try if the chosen one is taken before sshd binds it.
const ATTEMPTS: usize = 5;
/// Runs `"$@"` (sshd) plus a watchdog that stops it when stdin (fd 3) reaches EOF; the same
/// wrapper as the rsync daemon's (see `rsyncd.rs`).
const WRAPPER: &str = r#"exec 3<&0
"$@" </dev/null 3<&- &
r=$!
{ cat <&3 >/dev/null; kill -TERM "$r" 2>/dev/null; } &
exec 3<&-
wait "$r"
"#;

/// Why the ssh tests cannot run here, or `None` if they can.
///
/// Missing programs are reasons: `/usr/sbin/sshd` (openssh-server), `ssh` and `ssh-keygen`
/// (openssh-client). Then, once per test binary, a probe server is started and logged into
/// with a probe key. If sshd refuses the current user by policy of this machine (its log
/// says `User … not allowed because …`, e.g. a locked account: with `UsePAM no` sshd
/// refuses a password field starting with `!`), that is the reason. As root anything else
/// going wrong is a bug and panics; as another user, where running sshd is best effort, it
/// is a reason too.
pub fn skip_reason() -> Option<String> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON.get_or_init(probe).clone()
}

fn probe() -> Option<String> {
    if !is_executable(Path::new(SSHD)) {
        return Some(format!(
            "{SSHD} is not installed (apt-get install openssh-server)"
        ));
    }
    for program in ["ssh", "ssh-keygen"] {
        if !on_path(program) {
            return Some(format!(
                "{program} is not installed (apt-get install openssh-client)"
            ));
        }
    }
    let root = is_root();
    let keys = tempfile::Builder::new()
        .prefix("dsync-sshd-probe-")
        .tempdir()
        .expect("tempdir for the sshd probe");
    let key = ClientKey::new(keys.path());
    let sshd = match Sshd::try_start(&[key.forced_command("echo dsync-sshd-probe")]) {
        Ok(sshd) => sshd,
        Err(e) if !root => {
            return Some(format!(
                "sshd does not start as user {} (not root): {e}",
                current_user()
            ));
        }
        Err(e) => panic!("sshd did not start:\n{e}"),
    };
    let out = output_within(sshd.ssh(&key, "probe"), Duration::from_secs(30));
    if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "dsync-sshd-probe" {
        return None;
    }
    let log = sshd.log();
    let refusal = log.lines().find(|l| l.contains(" not allowed because "));
    match refusal {
        Some(line) => Some(format!("sshd refuses to log in {}: {line}", current_user())),
        None if !root => Some(format!(
            "sshd as user {} (not root) does not log in with a key: {}\n--- sshd log:\n{log}",
            current_user(),
            describe(&out)
        )),
        None => panic!(
            "probe login to our sshd failed: {}\n--- sshd log:\n{log}",
            describe(&out)
        ),
    }
}

/// A running sshd; it and every process it started are killed on drop.
pub struct Sshd {
    /// `sh` wrapper (process group leader) running sshd and the watchdog.
    child: Child,
    /// Write end of the watchdog's pipe; closed when this process exits.
    _lifeline: ChildStdin,
    port: u16,
    user: String,
    dir: tempfile::TempDir,
}

impl Sshd {
    /// Serve on 127.0.0.1 at a free port, accepting the keys of `authorized_keys_lines`
    /// (whole `authorized_keys` lines, options included; see [`ClientKey::forced_command`]).
    /// Panics (with sshd's log) if it cannot be started; call [`skip_reason`] first.
    pub fn start(authorized_keys_lines: &[String]) -> Sshd {
        Self::try_start(authorized_keys_lines)
            .unwrap_or_else(|e| panic!("sshd did not start:\n{e}"))
    }

    /// Like [`start`](Self::start), returning what went wrong instead of panicking.
    pub fn try_start(authorized_keys_lines: &[String]) -> Result<Sshd, String> {
        if is_root() {
            ensure_privsep_dir()?;
        }
        let dir = tempfile::Builder::new()
            .prefix("dsync-sshd-")
            .tempdir()
            .map_err(|e| format!("tempdir for sshd: {e}"))?;
        let host_key = dir.path().join("ssh_host_ed25519_key");
        keygen(&host_key, "dsync-test-sshd-host")?;
        let authorized = dir.path().join("authorized_keys");
        let mut text = authorized_keys_lines.join("\n");
        text.push('\n');
        fs::write(&authorized, text).map_err(|e| format!("write {}: {e}", authorized.display()))?;
        let log = dir.path().join("sshd.log");
        let conf_path = dir.path().join("sshd_config");

        let mut failures = Vec::new();
        for attempt in 1..=ATTEMPTS {
            let port = super::free_port_on(ADDR);
            let conf = config(port, &host_key, &dir.path().join("sshd.pid"), &authorized);
            fs::write(&conf_path, conf).map_err(|e| format!("write sshd_config: {e}"))?;
            let out = fs::File::create(&log).map_err(|e| format!("create sshd.log: {e}"))?;
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(WRAPPER)
                .arg("sshd-wrapper")
                .arg(SSHD)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&conf_path)
                .stdin(Stdio::piped())
                .stdout(out.try_clone().map_err(|e| e.to_string())?)
                .stderr(out)
                .process_group(0)
                .spawn()
                .map_err(|e| format!("cannot run sh to start {SSHD}: {e}"))?;
            let lifeline = child.stdin.take().expect("piped stdin");
            match wait_ready(&mut child, port, &log) {
                Ok(()) => {
                    return Ok(Sshd {
                        child,
                        _lifeline: lifeline,
                        port,
                        user: current_user(),
                        dir,
                    });
                }
                Err(why) => {
                    kill_tree(&mut child);
                    let log_text = fs::read_to_string(&log).unwrap_or_default();
                    failures.push(format!(
                        "attempt {attempt} on port {port}: {why}\n--- sshd log:\n{log_text}"
                    ));
                    if !log_text.contains("Address already in use") {
                        break;
                    }
                }
            }
        }
        Err(failures.join("\n"))
    }

    /// The TCP port sshd listens on (on [`ADDR`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user logins are for (the current user).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The `ssh` arguments to reach this server with `key`, up to `USER@127.0.0.1`; append
    /// the remote command. See [`client_args`].
    pub fn client_args(&self, key: &ClientKey) -> Vec<String> {
        client_args(self.port, key.path(), &self.user)
    }

    /// `ssh ARGS remote_command`, stdin from /dev/null, ready for [`output_within`].
    /// `remote_command` is what the forced command sees as `SSH_ORIGINAL_COMMAND`.
    pub fn ssh(&self, key: &ClientKey, remote_command: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(self.client_args(key))
            .arg(remote_command)
            .stdin(Stdio::null());
        cmd
    }

    /// sshd's log so far (`-e` output at `LogLevel VERBOSE`).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Path of sshd's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sshd.log")
    }

    /// Path of the generated `sshd_config`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("sshd_config")
    }

    /// Path of the `authorized_keys` file (the lines given to [`start`](Self::start)).
    pub fn authorized_keys_path(&self) -> PathBuf {
        self.dir.path().join("authorized_keys")
    }

    /// Process id of the `sh` wrapper; it is also the process group id of sshd's listener.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        kill_tree(&mut self.child);
    }
}

/// The `sshd_config` of a test server.
fn config(port: u16, host_key: &Path, pid_file: &Path, authorized_keys: &Path) -> String {
    format!(
        "# generated by dsync's test support (tests/support/sshd.rs)\n\
         ListenAddress {ADDR}:{port}\n\
         HostKey {host_key}\n\
         PidFile {pid_file}\n\
         AuthorizedKeysFile {authorized_keys}\n\
         AuthenticationMethods publickey\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         HostbasedAuthentication no\n\
         GSSAPIAuthentication no\n\
         PermitRootLogin prohibit-password\n\
         StrictModes no\n\
         UsePAM no\n\
         PermitUserEnvironment no\n\
         UseDNS no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         X11Forwarding no\n\
         AllowTcpForwarding no\n\
         AllowAgentForwarding no\n\
         PermitTunnel no\n\
         LoginGraceTime 30\n\
         LogLevel VERBOSE\n",
        host_key = host_key.display(),
        pid_file = pid_file.display(),
        authorized_keys = authorized_keys.display(),
    )
}

/// Create `/run/sshd` (root-owned, 0755) if missing; sshd refuses to start as root without it.
fn ensure_privsep_dir() -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new().mode(0o755).create(PRIVSEP_DIR) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create {PRIVSEP_DIR}: {e}")),
    }
}

/// Wait until our sshd logs that it listens on `port` and the port answers with an SSH
/// banner. The log line is our own sshd's, so another server on the port is not mistaken
/// for it.
fn wait_ready(child: &mut Child, port: u16, log: &Path) -> Result<(), String> {
    let listening = format!("Server listening on {ADDR} port {port}.");
    let sa: SocketAddr = format!("{ADDR}:{port}").parse().unwrap();
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("sshd exited early with {status}"));
        }
        if start.elapsed() > START_TIMEOUT {
            return Err(format!(
                "no {listening:?} and SSH banner after {START_TIMEOUT:?}"
            ));
        }
        let ours = fs::read_to_string(log)
            .map(|l| l.contains(&listening))
            .unwrap_or(false);
        if ours && let Ok(s) = TcpStream::connect_timeout(&sa, Duration::from_millis(200)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut banner = String::new();
            if BufReader::new(s).read_line(&mut banner).is_ok() && banner.starts_with("SSH-2.0-") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILL every descendant of the wrapper (connections and forced commands live in their
/// own sessions, out of our process group), then SIGTERM the group, wait up to 5 s, SIGKILL
/// it; always reap the wrapper.
fn kill_tree(child: &mut Child) {
    let pgid = child.id() as libc::pid_t;
    for pid in descendants(pgid) {
        // SAFETY: plain syscall on a process we started (found as our descendant just now).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    // SAFETY: plain syscall; the group is the one we created with process_group(0).
    unsafe { libc::killpg(pgid, libc::SIGTERM) };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = child.try_wait() {
            unsafe { libc::killpg(pgid, libc::SIGKILL) };
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    unsafe { libc::killpg(pgid, libc::SIGKILL) };
    let _ = child.wait();
}

/// Every process below `root` in the process tree (children first found, then theirs),
/// from `/proc/PID/stat`.
fn descendants(root: libc::pid_t) -> Vec<libc::pid_t> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<libc::pid_t>().ok())
            else {
                continue;
            };
            // "PID (COMM) STATE PPID ..."; COMM may contain spaces and parentheses.
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = after
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<libc::pid_t>().ok())
            {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for &(pid, ppid) in &parent_of {
            if ppid == parent && !found.contains(&pid) {
                found.push(pid);
            }
        }
        i += 1;
    }
    found.remove(0);
    found
}

/// An ed25519 client key pair without passphrase, made by the real `ssh-keygen`.
pub struct ClientKey {
    path: PathBuf,
    public: String,
}

impl ClientKey {
    /// Generate a key pair in `dir` (`id_ed25519`, or `id_ed25519-2`, … if taken).
    pub fn new(dir: &Path) -> ClientKey {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let path = (1..)
            .map(|n| match n {
                1 => dir.join("id_ed25519"),
                n => dir.join(format!("id_ed25519-{n}")),
            })
            .find(|p| !p.exists() && !p.with_extension("pub").exists())
            .unwrap();
        keygen(&path, "dsync-test-client").unwrap_or_else(|e| panic!("{e}"));
        let pub_path = PathBuf::from(format!("{}.pub", path.display()));
        let public = fs::read_to_string(&pub_path)
            .unwrap_or_else(|e| panic!("read {}: {e}", pub_path.display()))
            .trim()
            .to_string();
        ClientKey { path, public }
    }

    /// The private key file (for `ssh -i`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The public key line, `ssh-ed25519 AAAA… dsync-test-client`.
    pub fn public_line(&self) -> &str {
        &self.public
    }

    /// An `authorized_keys` line for this key with a forced command:
    /// `command="COMMAND",restrict ssh-ed25519 …`. A `"` in `command` is escaped (`\"`, the
    /// only escape authorized_keys knows). sshd runs the command with the user's shell
    /// (`$SHELL -c COMMAND`), with the client's words in `SSH_ORIGINAL_COMMAND`.
    pub fn forced_command(&self, command: &str) -> String {
        format!(
            "command=\"{}\",restrict {}",
            command.replace('"', "\\\""),
            self.public
        )
    }
}

/// `ssh-keygen -q -t ed25519 -N '' -C COMMENT -f PATH`.
fn keygen(path: &Path, comment: &str) -> Result<(), String> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ssh-keygen (apt-get install openssh-client): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ssh-keygen for {} failed: {}",
            path.display(),
            describe(&out)
        ))
    }
}

/// The `ssh` client arguments for a connection to `127.0.0.1:port` as `user` with the
/// private key `key`, ending with `user@127.0.0.1` (append the remote command). Reads no
/// ssh configuration, agent, default identity or known-hosts file (see the module docs).
pub fn client_args(port: u16, key: &Path, user: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-F".into(),
        "/dev/null".into(),
        "-p".into(),
        port.to_string(),
        "-i".into(),
        key.display().to_string(),
    ];
    for option in [
        "BatchMode=yes",
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "GlobalKnownHostsFile=/dev/null",
        "IdentitiesOnly=yes",
        "IdentityAgent=none",
        "PreferredAuthentications=publickey",
        "ConnectTimeout=10",
        "LogLevel=ERROR",
    ] {
        args.push("-o".into());
        args.push(option.into());
    }
    args.push(format!("{user}@{ADDR}"));
    args
}

/// Run `cmd` with stdout and stderr captured; kill it and panic if it takes longer than
/// `timeout` (so a hung ssh session fails the test instead of hanging it).
#[track_caller]
pub fn output_within(mut cmd: Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = reader(Box::new(child.stdout.take().unwrap()));
    let stderr = reader(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Exit status, stdout and stderr of `out`, for messages.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout:\n{}--- stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The current user's login name (from the password database, not `$USER`, which CI may
/// leave unset).
pub fn current_user() -> String {
    // SAFETY: getpwuid_r writes into our buffers only; the result points into them.
    unsafe {
        let uid = libc::getuid();
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() {
            panic!("uid {uid} has no entry in the password database (rc {rc})");
        }
        CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned()
    }
}

pub use super::is_root;

/// Quote `s` for a POSIX shell (single quotes), e.g. for paths in a forced command.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| is_executable(&dir.join(program))))
        .unwrap_or(false)
}
