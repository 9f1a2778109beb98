//! Shared integration-test support for `dsync`.
//!
//! Every test binary that wants these fixtures declares `mod support;`. The fixtures use real
//! parts only:
//!
//! * [`archive`]: writes a small but valid Debian-style archive (pool, `dists/`, `Release`,
//!   by-hash copies, trace file) at a given revision, so tests can move an upstream through
//!   revisions 1, 2, 3, ... and check that a mirror follows consistently. It is the library's
//!   `dsync::demo::archive`, re-exported (`dsync demo` serves the same archive).
//! * [`rsyncd`]: runs a real `rsync --daemon` on a loopback address and a free port.
//! * [`site`]: a dsync home with upstream modules served by one daemon, and `dsync` run on it.
//! * [`sshd`]: runs Debian's real `sshd` on 127.0.0.1 and a free port with private keys and
//!   `authorized_keys` (forced commands), and builds `ssh` client command lines for it.
//! * [`fault_proxy`]: a TCP proxy that cuts or corrupts the first answer to a `POST` once.
//! * [`apt`]: checks a mirror with a real `apt-get update` (private configuration, no root
//!   needed) plus an in-process check of every hash in every `Release`, `Packages` and
//!   `Sources`.
//!
//! Each test binary compiles this module separately and uses only part of it, hence the
//! module-level `dead_code` allowances.
#![allow(dead_code)]

pub mod apt;
pub mod archive;
pub mod dtp_host;
pub mod fault_proxy;
pub mod http;
pub mod mirrors;
pub mod procs;
pub mod rsyncd;
pub mod site;
pub mod sshd;

use std::net::{TcpListener, ToSocketAddrs};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether the tests run as root (privilege drops, tmpfs and bind mounts need it).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Poll `cond` every 20 ms until it returns true; panic if it is still false after `timeout`.
///
/// The panic message names the caller's location (`#[track_caller]`) and the time waited.
/// Use [`wait_for_what`] to add a description of what was awaited.
#[track_caller]
pub fn wait_for(timeout: Duration, cond: impl FnMut() -> bool) {
    wait_for_what(timeout, "condition", cond)
}

/// Like [`wait_for`], with `what` (e.g. "rsync daemon accepting on 127.0.0.1:4711") in the
/// panic message.
#[track_caller]
pub fn wait_for_what(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if cond() {
            return;
        }
        if start.elapsed() >= timeout {
            panic!(
                "timed out after {:.1?} waiting for {what} (called at {})",
                start.elapsed(),
                std::panic::Location::caller()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Poll `cond` like [`wait_for`] but return whether it became true instead of panicking.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A TCP port that was free on 127.0.0.1 a moment ago (bind to port 0, read it, release it).
///
/// Another process may take it before you bind it: callers that start a server on it should
/// retry with a fresh port if the server fails to bind (as [`rsyncd::RsyncDaemon`] does).
pub fn free_port() -> u16 {
    free_port_on("127.0.0.1")
}

/// Like [`free_port`], on the given local address (e.g. "127.0.0.2" or "::1").
pub fn free_port_on(addr: &str) -> u16 {
    let sa = (addr, 0)
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("bad address {addr:?}: {e}"))
        .next()
        .unwrap_or_else(|| panic!("address {addr:?} resolves to nothing"));
    let listener = TcpListener::bind(sa).unwrap_or_else(|e| panic!("bind {sa}: {e}"));
    listener.local_addr().expect("local_addr").port()
}

/// Whether `program --version` can be run (i.e. the program is installed and on PATH).
pub fn have_program(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Run the real `rsync` binary with `args`; panic with its output if it fails.
/// Returns its stdout.
#[track_caller]
pub fn run_rsync(args: &[&str]) -> String {
    let out = Command::new("rsync")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run rsync (is it installed?): {e}"));
    if !out.status.success() {
        panic!(
            "rsync {args:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Path relative to `base`, with `/` separators, as a String (panics if not under `base`).
pub fn rel(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or_else(|_| panic!("{} is not under {}", path.display(), base.display()))
        .to_string_lossy()
        .into_owned()
}
