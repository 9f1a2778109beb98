//! `rsync-ssl-tunnel` (dsync invoked under that name), with real parts on loopback:
//! a throwaway CA and server certificates made with `openssl`, a real `rsync --daemon`
//! behind a real `stunnel` TLS server, and a real `rsync -e rsync-ssl-tunnel` client
//! that reaches the daemon only through our tunnel (stunnel or socat on the client
//! side). Verification is shown to be real: an unknown CA and a certificate for
//! another name are refused.
//!
//! The transfer tests need `stunnel`, `socat`, `openssl` and `rsync`; without them they
//! print `SKIPPED …` and pass. The command-line tests need none of them: fake `stunnel`
//! and `socat` scripts record what they are given, compared with Debian's script when
//! `/usr/bin/rsync-ssl-tunnel` is installed.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::rsyncd::RsyncDaemon;

/// Debian's script, for comparison where it is installed (package ftpsync).
const DEBIAN_TUNNEL: &str = "/usr/bin/rsync-ssl-tunnel";
/// Longest any single rsync run may take before we kill it and fail.
const RUN_LIMIT: Duration = Duration::from_secs(90);
/// stunnel waits `TIMEOUTclose` (default 60 s) at the end of each connection unless
/// told not to; a transfer this slow means that wait is back.
const NO_CLOSE_STALL: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------
// Helpers

/// Whether `program` is an executable file in a `PATH` directory.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// True (after a loud notice on the real stderr) if a tool the transfer tests need is
/// missing.
fn skip_without_tools(test: &str) -> bool {
    let missing: Vec<&str> = ["stunnel", "socat", "openssl", "rsync"]
        .into_iter()
        .filter(|p| !on_path(p))
        .collect();
    if missing.is_empty() {
        return false;
    }
    // Written to the process's stderr, not through eprintln!, so the test harness
    // does not capture it.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED ssl_tunnel::{test}: {} not found; \
         install stunnel4 socat openssl rsync ***\n",
        missing.join(", ")
    );
    true
}

fn write_script(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// `rsync-ssl-tunnel` in `dir`: a symlink to the dsync binary under test.
fn tunnel_link(dir: &Path) -> PathBuf {
    let link = dir.join("rsync-ssl-tunnel");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_dsync"), &link).unwrap();
    link
}

/// How a command ended.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Run `cmd` in a process group of its own, output to files (no pipe can fill), and
/// kill the group if it takes longer than `limit`.
fn run_limited(cmd: &mut Command, limit: Duration) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            kill_group(&mut child);
            panic!(
                "{cmd:?} still running after {limit:?}; killed\nstdout:\n{}\nstderr:\n{}",
                fs::read_to_string(&out).unwrap_or_default(),
                fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed();
    // Anything the command left behind in its group goes with it.
    unsafe { libc::killpg(child.id() as i32, libc::SIGKILL) };
    Ran {
        status,
        stdout: fs::read_to_string(&out).unwrap(),
        stderr: fs::read_to_string(&err).unwrap(),
        took,
    }
}

/// SIGTERM the child's group, SIGKILL it after 5 s, and reap the child.
fn kill_group(child: &mut Child) {
    let group = child.id() as i32;
    // SAFETY: plain syscalls on a process group we created.
    unsafe { libc::killpg(group, libc::SIGTERM) };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = child.try_wait() {
            unsafe { libc::killpg(group, libc::SIGKILL) };
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    unsafe { libc::killpg(group, libc::SIGKILL) };
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------
// A throwaway PKI

/// `openssl ARGS` in `dir`; panics with its output if it fails.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Our own minimal configuration, so the system's openssl.cnf cannot add to or clash
/// with the extensions we ask for.
const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
[dn]
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
";

/// Certificates and keys in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

/// A certificate (PEM) and its key.
struct Issued {
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("dsync-pki-")
            .tempdir()
            .unwrap();
        fs::write(dir.path().join("openssl.cnf"), OPENSSL_CNF).unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A self-signed CA called `name`.
    fn ca(&self, name: &str) -> Issued {
        let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
        #[rustfmt::skip]
        openssl(self.dir.path(), &[
            "req", "-config", "openssl.cnf", "-x509", "-extensions", "ca_ext",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", &key, "-out", &cert, "-days", "2",
            "-subj", &format!("/CN=dsync test CA {name}"),
        ]);
        Issued {
            cert: self.path(&cert),
            key: self.path(&key),
        }
    }

    /// A server certificate for `cn` with `subject_alt_names` (e.g. `DNS:localhost,
    /// IP:127.0.0.1`), issued by `ca` with `serial`.
    fn server(&self, ca: &Issued, name: &str, cn: &str, alt: &str, serial: u32) -> Issued {
        let (cert, key, csr, ext) = (
            format!("{name}.pem"),
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.ext"),
        );
        fs::write(
            self.path(&ext),
            format!(
                "subjectAltName = {alt}\nbasicConstraints = CA:FALSE\n\
                 keyUsage = critical, digitalSignature, keyEncipherment\n\
                 extendedKeyUsage = serverAuth\nauthorityKeyIdentifier = keyid\n"
            ),
        )
        .unwrap();
        #[rustfmt::skip]
        openssl(self.dir.path(), &[
            "req", "-config", "openssl.cnf", "-new",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", &key, "-out", &csr, "-subj", &format!("/CN={cn}"),
        ]);
        #[rustfmt::skip]
        openssl(self.dir.path(), &[
            "x509", "-req", "-in", &csr,
            "-CA", &ca.cert.to_string_lossy(), "-CAkey", &ca.key.to_string_lossy(),
            "-set_serial", &serial.to_string(), "-days", "2", "-extfile", &ext, "-out", &cert,
        ]);
        Issued {
            cert: self.path(&cert),
            key: self.path(&key),
        }
    }

    /// A CApath directory trusting only `ca`: the certificate plus the `HASH.0` link to
    /// it that `openssl rehash` (c_rehash) makes, which is how OpenSSL looks it up.
    fn capath(&self, name: &str, ca: &Issued) -> PathBuf {
        let dir = self.path(name);
        fs::create_dir(&dir).unwrap();
        fs::copy(&ca.cert, dir.join("ca.pem")).unwrap();
        let hash = openssl(
            self.dir.path(),
            &["x509", "-hash", "-noout", "-in", &ca.cert.to_string_lossy()],
        );
        std::os::unix::fs::symlink("ca.pem", dir.join(format!("{}.0", hash.trim()))).unwrap();
        dir
    }
}

// ---------------------------------------------------------------------------------
// A stunnel TLS server in front of the rsync daemon

/// `stunnel` accepting TLS on 127.0.0.1 and forwarding to a local port; its process
/// group is stopped on drop.
struct StunnelServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl StunnelServer {
    fn start(cert: &Issued, backend_port: u16) -> StunnelServer {
        let dir = tempfile::Builder::new()
            .prefix("dsync-stunnel-")
            .tempdir()
            .unwrap();
        let log = dir.path().join("stunnel.log");
        let mut failures = Vec::new();
        for attempt in 1..=5 {
            let port = support::free_port();
            let conf = dir.path().join("stunnel.conf");
            fs::write(
                &conf,
                format!(
                    "foreground = yes\npid =\nsyslog = no\ndebug = 5\noutput = {log}\n\
                     [rsync]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{backend_port}\n\
                     cert = {cert}\nkey = {key}\n",
                    log = log.display(),
                    cert = cert.cert.display(),
                    key = cert.key.display(),
                ),
            )
            .unwrap();
            let _ = fs::remove_file(&log);
            let mut cmd = Command::new("stunnel");
            cmd.arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(dir.path().join("stderr")).unwrap())
                .process_group(0);
            // SAFETY: prctl only; if this test process dies without dropping us, the
            // kernel stops the server.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let mut child = cmd.spawn().expect("run stunnel");
            match Self::wait_ready(&mut child, port, &log) {
                Ok(()) => return StunnelServer { child, port, dir },
                Err(why) => {
                    kill_group(&mut child);
                    let text = fs::read_to_string(&log).unwrap_or_default()
                        + &fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
                    failures.push(format!("attempt {attempt}, port {port}: {why}\n{text}"));
                    if !text.contains("in use") && !why.contains("not ours") {
                        break;
                    }
                }
            }
        }
        panic!("stunnel server did not start:\n{}", failures.join("\n"));
    }

    /// Until the port accepts and our own log records the connection (so another
    /// server that took the port is not mistaken for ours).
    fn wait_ready(child: &mut Child, port: u16, log: &Path) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!("stunnel exited with {status}"));
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err("not accepting after 10 s".into());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                let ours = support::poll_until(Duration::from_secs(3), || {
                    fs::read_to_string(log).is_ok_and(|l| l.contains("accepted connection"))
                });
                return if ours {
                    Ok(())
                } else {
                    Err("a server that is not ours answered".into())
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("stunnel.log")).unwrap_or_default()
    }
}

impl Drop for StunnelServer {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

// ---------------------------------------------------------------------------------
// The whole setup

/// A small tree, served by an rsync daemon that only a TLS server reaches.
struct Setup {
    pki: Pki,
    ca: Issued,
    /// Trusts `ca`.
    capath: PathBuf,
    /// Trusts another CA only.
    foreign_capath: PathBuf,
    tree: tempfile::TempDir,
    daemon: RsyncDaemon,
    /// Certificate for `localhost` and `127.0.0.1`, issued by `ca`.
    server: StunnelServer,
    work: tempfile::TempDir,
    tunnel: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let pki = Pki::new();
        let ca = pki.ca("ca");
        let capath = pki.capath("capath", &ca);
        let foreign = pki.ca("foreign");
        let foreign_capath = pki.capath("foreign-capath", &foreign);
        let cert = pki.server(
            &ca,
            "server",
            "localhost",
            "DNS:localhost, IP:127.0.0.1",
            1001,
        );
        let tree = tempfile::tempdir().unwrap();
        write_tree(tree.path());
        let daemon = RsyncDaemon::start("127.0.0.1", &[("tree", tree.path())]);
        let server = StunnelServer::start(&cert, daemon.port());
        let work = tempfile::tempdir().unwrap();
        let tunnel = tunnel_link(work.path());
        Setup {
            pki,
            ca,
            capath,
            foreign_capath,
            tree,
            daemon,
            server,
            work,
            tunnel,
        }
    }

    /// `rsync -a -e rsync-ssl-tunnel HOST::tree/ DST/` with the tunnel's settings in
    /// the environment, as ftpsync exports them; DST is a fresh directory.
    fn rsync(&self, host: &str, port: u16, capath: &Path, method: &str) -> (Ran, PathBuf) {
        let dst = tempfile::Builder::new()
            .prefix("dst-")
            .tempdir_in(self.work.path())
            .unwrap()
            .keep();
        let ran = run_limited(
            Command::new("rsync")
                .arg("-a")
                .arg("--timeout=60")
                .arg("-e")
                .arg(&self.tunnel)
                .arg(format!("{host}::tree/"))
                .arg(format!("{}/", dst.display()))
                .env("RSYNC_SSL_PORT", port.to_string())
                .env("RSYNC_SSL_CAPATH", capath)
                .env("RSYNC_SSL_METHOD", method),
            RUN_LIMIT,
        );
        (ran, dst)
    }

    /// Like [`rsync`](Self::rsync), and the transfer must succeed, completely and
    /// without stunnel's end-of-connection stall.
    fn transfer_ok(&self, host: &str, port: u16, method: &str) {
        let (ran, dst) = self.rsync(host, port, &self.capath, method);
        assert!(
            ran.status.success(),
            "rsync through the {method} tunnel to {host} failed: {}\nstderr:\n{}\n\
             server log:\n{}\ndaemon log:\n{}",
            ran.status,
            ran.stderr,
            self.server.log(),
            self.daemon.log()
        );
        assert_eq!(read_tree(&dst), read_tree(self.tree.path()), "{method}");
        assert!(
            ran.took < NO_CLOSE_STALL,
            "rsync through the {method} tunnel took {:?}: the tunnel did not exit when \
             the server closed\nstderr:\n{}",
            ran.took,
            ran.stderr
        );
    }

    /// The transfer must fail, on certificate verification (`why` is a message of the
    /// TLS client's), and copy nothing.
    fn transfer_refused(&self, host: &str, port: u16, capath: &Path, method: &str, why: &[&str]) {
        let (ran, dst) = self.rsync(host, port, capath, method);
        assert!(
            !ran.status.success(),
            "rsync through the {method} tunnel to {host} with CApath {} succeeded; \
             verification is not enforced\nstderr:\n{}",
            capath.display(),
            ran.stderr
        );
        assert!(
            why.iter().any(|w| ran.stderr.contains(w)),
            "{method}: failed, but not with any of {why:?}:\n{}",
            ran.stderr
        );
        assert_eq!(
            fs::read_dir(&dst).unwrap().count(),
            0,
            "{method} copied files"
        );
    }
}

/// OpenSSL's words for a certificate it does not accept.
const VERIFY_FAILED: &[&str] = &["certificate verify failed"];

/// A few files, a large one (many TLS records), an empty directory and a symlink.
fn write_tree(root: &Path) {
    fs::create_dir_all(root.join("dists/stable/main")).unwrap();
    fs::create_dir_all(root.join("pool/main/h/hello")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::write(root.join("README"), "a mirror, over TLS\n").unwrap();
    fs::write(root.join("dists/stable/Release"), "Suite: stable\n").unwrap();
    fs::write(root.join("dists/stable/main/name with spaces"), "x").unwrap();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let big: Vec<u8> = (0..(1 << 20))
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    fs::write(root.join("pool/main/h/hello/hello_1.0_amd64.deb"), big).unwrap();
    std::os::unix::fs::symlink("dists/stable", root.join("current")).unwrap();
}

#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

/// Every entry under `root` by relative path.
fn read_tree(root: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = support::rel(root, &path);
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(rel, Entry::Link(fs::read_link(&path).unwrap()));
            } else if meta.is_dir() {
                out.insert(rel, Entry::Dir);
                walk(root, &path, out);
            } else {
                out.insert(rel, Entry::File(fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

// ---------------------------------------------------------------------------------
// Transfers through real TLS

#[test]
fn stunnel_transfer() {
    if skip_without_tools("stunnel_transfer") {
        return;
    }
    let s = Setup::new();
    // checkHost needs a DNS name: stunnel does not match "127.0.0.1" to an IP SAN.
    s.transfer_ok("localhost", s.server.port, "stunnel");
    s.transfer_ok("localhost", s.server.port, "stunnel4");
    // Both runs reached the daemon through the TLS server (stunnel connects to the
    // daemon only after a completed handshake).
    let log = s.server.log();
    let sessions = log.matches("connected remote server").count();
    assert_eq!(sessions, 2, "TLS sessions forwarded to the daemon:\n{log}");
}

#[test]
fn socat_transfer() {
    if skip_without_tools("socat_transfer") {
        return;
    }
    let s = Setup::new();
    // socat connects to the first address a name resolves to; 127.0.0.1 (matched
    // against the IP SAN) does not depend on how "localhost" resolves.
    s.transfer_ok("127.0.0.1", s.server.port, "socat");
}

#[test]
fn unknown_ca_is_refused() {
    if skip_without_tools("unknown_ca_is_refused") {
        return;
    }
    let s = Setup::new();
    let port = s.server.port;
    s.transfer_refused(
        "localhost",
        port,
        &s.foreign_capath,
        "stunnel",
        VERIFY_FAILED,
    );
    s.transfer_refused(
        "localhost",
        port,
        &s.foreign_capath,
        "stunnel-old",
        VERIFY_FAILED,
    );
    s.transfer_refused("127.0.0.1", port, &s.foreign_capath, "socat", VERIFY_FAILED);
    // An empty CApath trusts nothing (the system's CAs are not used): stunnel refuses
    // to start, socat fails the handshake.
    let empty = s.pki.path("empty-capath");
    fs::create_dir(&empty).unwrap();
    let no_ca = ["No trusted certificates found"];
    s.transfer_refused("localhost", port, &empty, "stunnel", &no_ca);
    s.transfer_refused("127.0.0.1", port, &empty, "socat", VERIFY_FAILED);
}

#[test]
fn certificate_for_another_name_is_refused_unless_old_stunnel() {
    if skip_without_tools("certificate_for_another_name_is_refused_unless_old_stunnel") {
        return;
    }
    let s = Setup::new();
    // A valid certificate from the trusted CA, but for another host.
    let other = s
        .pki
        .server(&s.ca, "other", "mirror.invalid", "DNS:mirror.invalid", 1002);
    let server = StunnelServer::start(&other, s.daemon.port());
    s.transfer_refused(
        "localhost",
        server.port,
        &s.capath,
        "stunnel",
        VERIFY_FAILED,
    );
    let socat_name = ["commonName does not match", "certificate verify failed"];
    s.transfer_refused("127.0.0.1", server.port, &s.capath, "socat", &socat_name);
    // stunnel-old leaves out checkHost (for stunnel < 5.15): the chain alone decides.
    s.transfer_ok("localhost", server.port, "stunnel-old");
}

// ---------------------------------------------------------------------------------
// The command line, with stand-ins for stunnel and socat

/// A directory with `stunnel` and `socat` stand-ins that write their arguments and
/// (stunnel) the configuration read from fd 3 to `$DUMP/NAME.args`, `$DUMP/NAME.config`.
fn fake_helpers(dir: &Path) -> PathBuf {
    let bin = dir.join("fake-bin");
    fs::create_dir(&bin).unwrap();
    write_script(
        &bin.join("stunnel"),
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$DUMP/stunnel.args\"\n\
         cat <&3 > \"$DUMP/stunnel.config\"\n",
    );
    write_script(
        &bin.join("socat"),
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$DUMP/socat.args\"\n",
    );
    bin
}

/// Run `program ARGS` with `PATH` = `path`, `DUMP` = `dump`, and `env` (after clearing
/// the `RSYNC_SSL_*` variables).
fn run_tunnel(program: &Path, args: &[&str], path: &str, dump: &Path, env: &[(&str, &str)]) -> Ran {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("PATH", path)
        .env("DUMP", dump)
        .env_remove("RSYNC_SSL_PORT")
        .env_remove("RSYNC_SSL_CAPATH")
        .env_remove("RSYNC_SSL_METHOD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_limited(&mut cmd, Duration::from_secs(20))
}

/// What rsync runs, in each method; stunnel's configuration must arrive on fd 3 and
/// end (no write end of the pipe may leak into stunnel, or `cat` would never return).
#[test]
fn helpers_get_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let tunnel = tunnel_link(dir.path());
    let bin = fake_helpers(dir.path());
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let rsync_args = [
        "-l",
        "mirror",
        "up.example.org",
        "rsync",
        "--server",
        "--daemon",
        ".",
    ];
    let config = |check_host: bool| {
        format!(
            "client = yes\nverify = 2\nCApath = /srv/ca\n\nsyslog = no\ndebug = 4\n\
             output = /dev/stderr\nTIMEOUTclose = 0\n\nconnect = up.example.org:4443\n{}",
            if check_host {
                "checkHost = up.example.org\n"
            } else {
                ""
            }
        )
    };
    for (method, check_host) in [
        ("stunnel", true),
        ("stunnel4", true),
        ("stunnel-old", false),
        ("stunnel4-old", false),
    ] {
        let dump = tempfile::tempdir().unwrap();
        let env = [
            ("RSYNC_SSL_PORT", "4443"),
            ("RSYNC_SSL_CAPATH", "/srv/ca"),
            ("RSYNC_SSL_METHOD", method),
        ];
        let ran = run_tunnel(&tunnel, &rsync_args, &path, dump.path(), &env);
        assert!(
            ran.status.success(),
            "{method}: {}\n{}",
            ran.status,
            ran.stderr
        );
        let args = fs::read_to_string(dump.path().join("stunnel.args")).unwrap();
        assert_eq!(args, "-fd\n3\n", "{method}");
        let got = fs::read_to_string(dump.path().join("stunnel.config")).unwrap();
        assert_eq!(got, config(check_host), "{method}");
        if Path::new(DEBIAN_TUNNEL).exists() {
            // The same as Debian's script, apart from our TIMEOUTclose line.
            let debian = tempfile::tempdir().unwrap();
            let ran = run_tunnel(
                Path::new(DEBIAN_TUNNEL),
                &rsync_args,
                &path,
                debian.path(),
                &env,
            );
            assert!(ran.status.success(), "{}", ran.stderr);
            let theirs = fs::read_to_string(debian.path().join("stunnel.config")).unwrap();
            let ours_without = got.replace("TIMEOUTclose = 0\n", "");
            // The script leaves an empty line where checkHost would be.
            assert_eq!(theirs.trim_end(), ours_without.trim_end(), "{method}");
            assert_eq!(
                fs::read_to_string(debian.path().join("stunnel.args")).unwrap(),
                args
            );
        }
    }

    // socat, with options overriding the environment and defaults for the rest.
    let dump = tempfile::tempdir().unwrap();
    let env = [("RSYNC_SSL_METHOD", "stunnel"), ("RSYNC_SSL_PORT", "1")];
    let args = [
        "-m",
        "socat",
        "-p",
        "8443",
        "up.example.org",
        "rsync",
        "--server",
        "--daemon",
        ".",
    ];
    let ran = run_tunnel(&tunnel, &args, &path, dump.path(), &env);
    assert!(ran.status.success(), "{}", ran.stderr);
    let got = fs::read_to_string(dump.path().join("socat.args")).unwrap();
    assert_eq!(
        got,
        "-\nopenssl-connect:up.example.org:8443,capath=/etc/ssl/certs,keepalive,keepidle=300\n"
    );
    if Path::new(DEBIAN_TUNNEL).exists() {
        let debian = tempfile::tempdir().unwrap();
        let ran = run_tunnel(Path::new(DEBIAN_TUNNEL), &args, &path, debian.path(), &env);
        assert!(ran.status.success(), "{}", ran.stderr);
        assert_eq!(
            fs::read_to_string(debian.path().join("socat.args")).unwrap(),
            got
        );
    }

    // `dsync rsync-ssl-tunnel ARGS` is the same as the symlink.
    let dump = tempfile::tempdir().unwrap();
    let mut dsync_args = vec!["rsync-ssl-tunnel"];
    dsync_args.extend(["-m", "socat", "-C", "/c", "h"]);
    let ran = run_tunnel(
        Path::new(env!("CARGO_BIN_EXE_dsync")),
        &dsync_args,
        &path,
        dump.path(),
        &[],
    );
    assert!(ran.status.success(), "{}", ran.stderr);
    assert_eq!(
        fs::read_to_string(dump.path().join("socat.args")).unwrap(),
        "-\nopenssl-connect:h:1873,capath=/c,keepalive,keepidle=300\n"
    );
}

/// A descriptor 3 that rsync (or whoever starts us) left open is replaced by the
/// configuration, as the script's `3<<EOF` does.
#[test]
fn inherited_fd_3_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let tunnel = tunnel_link(dir.path());
    let bin = fake_helpers(dir.path());
    let decoy = dir.path().join("decoy");
    fs::write(&decoy, "not the configuration\n").unwrap();
    let decoy = fs::File::open(&decoy).unwrap();
    let decoy_fd = decoy.as_raw_fd();
    let mut cmd = Command::new(&tunnel);
    cmd.args(["-C", "/c", "-p", "1", "h"])
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("DUMP", dir.path())
        .env("RSYNC_SSL_METHOD", "stunnel");
    // SAFETY: dup2 and fcntl only, between fork and exec. dup2 onto itself would
    // leave the close-on-exec flag, hence the fcntl if the decoy already is fd 3.
    unsafe {
        cmd.pre_exec(move || {
            let done = if decoy_fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(decoy_fd, 3)
            };
            if done == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let ran = run_limited(&mut cmd, Duration::from_secs(20));
    drop(decoy);
    assert!(ran.status.success(), "{}", ran.stderr);
    let config = fs::read_to_string(dir.path().join("stunnel.config")).unwrap();
    assert!(config.starts_with("client = yes\n"), "{config}");
    assert!(
        config.ends_with("connect = h:1\ncheckHost = h\n"),
        "{config}"
    );
}

/// Usage errors, help, an unknown method: the script's messages and exit codes.
#[test]
fn command_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let tunnel = tunnel_link(dir.path());
    let path = "/usr/bin:/bin";
    let usage = "Usage: rsync-ssl-tunnel [OPTION]... RSYNC_HOST\n\n\
                 \x20 -C  the capath (default: /etc/ssl/certs)\n\
                 \x20 -m  the method (stunnel|stunnel-old|socat)\n\
                 \x20 -p  the port (default: 1873)\n\
                 \x20 -h  display this help and exit\n";
    let usage_error = |first: &str| (64, String::new(), format!("{first}\n{usage}"));
    let help = (0, usage.to_string(), String::new());
    let failure = |message: &str| (1, String::new(), format!("{message}\n"));
    // (args, environment, (exit code, stdout, stderr))
    let cases = [
        (&[][..], &[][..], usage_error("No arguments given.")),
        (&["-l", "u"], &[], usage_error("No arguments given.")),
        (
            &["-x", "h"],
            &[],
            usage_error("rsync-ssl-tunnel: illegal option -- x"),
        ),
        (
            &["-p"],
            &[],
            usage_error("rsync-ssl-tunnel: option requires an argument -- p"),
        ),
        (&["-h"], &[], help.clone()),
        (&["-p", "1", "-h", "h"], &[], help),
        (
            &["h"],
            &[("RSYNC_SSL_METHOD", "gnutls")],
            failure("Unknown method gnutls."),
        ),
        (
            &["-m", "ssh", "h"],
            &[("RSYNC_SSL_METHOD", "socat")],
            failure("Unknown method ssh."),
        ),
    ];
    for (args, env, (code, stdout, stderr)) in &cases {
        let ran = run_tunnel(&tunnel, args, path, dir.path(), env);
        assert_eq!(
            ran.status.code(),
            Some(*code),
            "{args:?} {env:?}: {}",
            ran.stderr
        );
        assert_eq!(&ran.stdout, stdout, "{args:?}");
        assert_eq!(&ran.stderr, stderr, "{args:?}");
        if Path::new(DEBIAN_TUNNEL).exists() {
            // Same code; same text but for the script's $0 and a stray quote.
            let theirs = run_tunnel(Path::new(DEBIAN_TUNNEL), args, path, dir.path(), env);
            assert_eq!(
                theirs.status.code(),
                Some(*code),
                "Debian's script, {args:?}"
            );
            let normalize = |s: &str| {
                s.replace(DEBIAN_TUNNEL, "rsync-ssl-tunnel")
                    .replace("HOST\"", "HOST")
            };
            assert_eq!(
                normalize(&theirs.stdout),
                *stdout,
                "Debian's script, {args:?}"
            );
            assert_eq!(
                normalize(&theirs.stderr),
                *stderr,
                "Debian's script, {args:?}"
            );
        }
    }
}

/// Without stunnel or socat: a message that says what to install, exit 1.
#[test]
fn missing_helper_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let tunnel = tunnel_link(dir.path());
    let empty = dir.path().join("empty-bin");
    fs::create_dir(&empty).unwrap();
    let path = empty.to_str().unwrap();
    for (method, program, package) in [
        ("stunnel", "stunnel", "stunnel4"),
        ("stunnel-old", "stunnel", "stunnel4"),
        ("socat", "socat", "socat"),
    ] {
        let ran = run_tunnel(&tunnel, &["-m", method, "h"], path, dir.path(), &[]);
        assert_eq!(ran.status.code(), Some(1), "{method}: {}", ran.stderr);
        assert_eq!(
            ran.stderr,
            format!(
                "rsync-ssl-tunnel: cannot run {program}: No such file or directory; \
                 install it with: apt-get install {package}\n"
            )
        );
    }
}
