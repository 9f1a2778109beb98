//! The DTP host service through the binary: `dsync -home H -service
//! -foreground` (or `-service` / `-reload` / `-stop-service`) on 127.0.0.1 and a
//! free port, spoken to over raw TCP so that hostile requests reach it byte for
//! byte as written here.

mod support;

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dsync::dtp::manifest;
use support::dtp_host::{connect_from, read_all};
use support::{free_port, poll_until, wait_for_what};

/// Generous: the machine is shared with other builds and tests.
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- fixtures

/// Are the tests root? Then every service they start binds as root and runs
/// as `SERVICE_USER` (`dtp-user=`), as a root service must.
use support::is_root;

/// Root, or say loudly that `test` is skipped and why.
fn root_or_skip(test: &str) -> bool {
    let root = is_root();
    if !root {
        eprintln!("SKIPPED {test}: the tests do not run as root");
    }
    root
}

/// The unprivileged account services started as root become.
const SERVICE_USER: &str = "nobody";

/// The xync.conf line a service started by these tests needs.
fn dtp_user_line() -> String {
    if is_root() {
        format!("dtp-user={SERVICE_USER}\n")
    } else {
        String::new()
    }
}

/// As root, let `SERVICE_USER` into a temporary folder (0700 as made).
fn open_to_service(dir: &Path) {
    if is_root() {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// `id FLAG SERVICE_USER`: the account as the system's own tool reports it.
fn id_of_service_user(flag: &str) -> Vec<u32> {
    let out = Command::new("id")
        .arg(flag)
        .arg(SERVICE_USER)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

/// A host home with a webroot holding `debian` (listed) and `secret` (not).
struct Host {
    dir: tempfile::TempDir,
    port: u16,
    service: Option<Child>,
    /// Start the service as this uid and gid rather than as the tests' user.
    run_as: Option<(u32, u32)>,
    /// Leave `dtp-user=` out of xync.conf even where the tests are root.
    no_dtp_user: bool,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        open_to_service(dir.path());
        let host = Host {
            dir,
            port: 0,
            service: None,
            run_as: None,
            no_dtp_user: false,
        };
        let repo = host.repo();
        fs::create_dir_all(repo.join("dists/stable")).unwrap();
        fs::create_dir_all(repo.join("pool/main")).unwrap();
        fs::write(repo.join("dists/stable/Release"), b"0123456789").unwrap();
        fs::write(repo.join("pool/main/a b%.deb"), b"spaced").unwrap();
        fs::write(repo.join("pool/main/x.deb.dsync-part"), b"partial").unwrap();
        fs::write(repo.join(".dsync-cache"), b"cache").unwrap();
        symlink("/etc/passwd", repo.join("passwd")).unwrap();
        symlink("dists/stable/Release", repo.join("inside")).unwrap();
        fs::create_dir_all(host.webroot().join("secret")).unwrap();
        fs::write(host.webroot().join("secret/key"), b"secret").unwrap();
        fs::create_dir_all(host.home().join("dtp")).unwrap();
        host.dtp("list.conf", "debian\n");
        host
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn webroot(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    fn repo(&self) -> PathBuf {
        self.webroot().join("debian")
    }

    fn dtp(&self, name: &str, text: &str) {
        fs::write(self.home().join("dtp").join(name), text).unwrap();
    }

    /// xync.conf: webroot, the port, `dtp-user=` where the tests are root,
    /// and `extra`.
    fn xync(&self, extra: &str) {
        if self.no_dtp_user {
            self.xync_exactly(extra);
        } else {
            self.xync_exactly(&format!("{}{extra}", dtp_user_line()));
        }
    }

    /// xync.conf: webroot, the port and `extra` only.
    fn xync_exactly(&self, extra: &str) {
        fs::write(
            self.home().join("xync.conf"),
            format!(
                "webroot={}\ndtp-listen=127.0.0.1:{}\n{extra}",
                self.webroot().display(),
                self.port
            ),
        )
        .unwrap();
    }

    /// `data.dsync` of the repository as it is now.
    fn manifest(&self) -> manifest::Header {
        let m = manifest::generate(&self.repo(), "debian").unwrap();
        manifest::install(&self.repo(), &m).unwrap();
        m.header
    }

    fn dsync(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dsync"));
        cmd.arg("-home").arg(self.home());
        cmd
    }

    /// `-service -foreground` as a child, with `xync` added to xync.conf and
    /// `env` set; returns once it accepts connections.
    fn start(&mut self, xync: &str, env: &[(&str, &str)]) {
        // The free port may be taken before the service binds it: try again.
        for _ in 0..3 {
            self.port = free_port();
            self.xync(xync);
            let out = fs::File::create(self.dir.path().join("service.out")).unwrap();
            let mut cmd = self.dsync();
            cmd.args(["-service", "-foreground"])
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out);
            if let Some((uid, gid)) = self.run_as {
                cmd.uid(uid).gid(gid);
            }
            let mut child = cmd.spawn().unwrap();
            let ready = poll_until(WAIT, || {
                TcpStream::connect(self.addr()).is_ok() || child.try_wait().unwrap().is_some()
            });
            assert!(ready, "the service did not start:\n{}", self.service_out());
            if child.try_wait().unwrap().is_none() {
                self.service = Some(child);
                return;
            }
            assert!(
                self.service_out().contains("cannot listen"),
                "{}",
                self.service_out()
            );
        }
        panic!("no free port for the service");
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The pid file is gone, or empty where the service dropped root (it
    /// cannot remove a file from HOME/dtp then, so it empties it).
    #[track_caller]
    fn assert_no_pid_file(&self) {
        let path = self.home().join("dtp/service.pid");
        match fs::read_to_string(&path) {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
            Ok(text) => assert!(
                is_root() && text.is_empty(),
                "{} still says {text:?}",
                path.display()
            ),
        }
    }

    fn service_out(&self) -> String {
        fs::read_to_string(self.dir.path().join("service.out")).unwrap_or_default()
    }

    fn access_log(&self) -> String {
        fs::read_to_string(self.home().join("logs/dtp-access.log")).unwrap_or_default()
    }

    /// Wait for an access-log line holding every one of `parts`.
    #[track_caller]
    fn wait_logged(&self, parts: &[&str]) {
        wait_for_what(WAIT, &format!("an access-log line with {parts:?}"), || {
            self.access_log()
                .lines()
                .any(|l| parts.iter().all(|p| l.contains(p)))
        });
    }

    fn get(&self, target: &str) -> Response {
        self.request(&format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ))
    }

    fn request(&self, text: &str) -> Response {
        exchange(TcpStream::connect(self.addr()).unwrap(), text.as_bytes())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.service.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A `-service` started in the background.
        if let Some(pid) = fs::read_to_string(self.home().join("dtp/service.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.parse::<i32>().ok()))
        {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// An HTTP answer, read to the end of the connection.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Write `request` as is, read the answer until the server closes.
fn exchange(mut stream: TcpStream, request: &[u8]) -> Response {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(request).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse(&raw)
}

fn parse(raw: &[u8]) -> Response {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

fn get_from(source: &str, host: &Host, target: &str) -> Response {
    exchange(
        connect_from(source, host.addr()),
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn output_text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---------------------------------------------------------------- the protocol

#[test]
fn index_repos_manifest_ranges_and_head() {
    let mut host = Host::new();
    fs::create_dir_all(host.webroot().join("empty")).unwrap();
    host.dtp("list.conf", "# served\ndebian\nempty\n");
    let motd = host.dir.path().join("motd.txt");
    fs::write(&motd, "Welcome to the test mirror.\n").unwrap();
    host.dtp("motd.conf", &format!("경로={}\n", motd.display()));
    let header = host.manifest();
    host.start("", &[]);

    let index = host.get("/");
    assert_eq!(index.status, 200);
    assert_eq!(
        index.text(),
        "Welcome to the test mirror.\n\ndebian\nempty\n"
    );

    let repos = host.get("/api/repos");
    assert_eq!(repos.status, 200);
    assert_eq!(repos.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&repos.body).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"name": "debian", "digest": header.digest, "entries": header.entries,
             "bytes": header.bytes, "generated": header.generated},
            {"name": "empty", "digest": null, "entries": null, "bytes": null, "generated": null},
        ])
    );

    let m = host.get("/debian/data.dsync");
    assert_eq!(m.status, 200);
    let etag = format!("\"{}\"", header.digest);
    assert_eq!(m.header("etag"), Some(etag.as_str()));
    assert_eq!(m.body, fs::read(host.repo().join("data.dsync")).unwrap());
    let again = host.request(&format!(
        "GET /debian/data.dsync HTTP/1.1\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let stale = host.request(
        "GET /debian/data.dsync HTTP/1.1\r\nIf-None-Match: \"sha256:00\"\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(stale.status, 200);

    let file = host.get("/debian/dists/stable/Release");
    assert_eq!((file.status, file.text().as_str()), (200, "0123456789"));
    assert_eq!(host.get("/debian/pool/main/a%20b%25.deb").text(), "spaced");

    let range = |spec: &str| {
        host.request(&format!(
            "GET /debian/dists/stable/Release HTTP/1.1\r\nRange: {spec}\r\nConnection: close\r\n\r\n"
        ))
    };
    let r = range("bytes=4-");
    assert_eq!((r.status, r.text().as_str()), (206, "456789"));
    assert_eq!(r.header("content-range"), Some("bytes 4-9/10"));
    let r = range("bytes=2-4");
    assert_eq!((r.status, r.text().as_str()), (206, "234"));
    assert_eq!(r.header("content-range"), Some("bytes 2-4/10"));
    for bad in ["bytes=10-", "bytes=5-2", "lines=1-"] {
        let r = range(bad);
        assert_eq!(r.status, 416, "{bad}");
        assert_eq!(r.header("content-range"), Some("bytes */10"), "{bad}");
    }

    let head =
        host.request("HEAD /debian/dists/stable/Release HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("10"));
    assert!(head.body.is_empty());
    let head = host.request("HEAD /debian/data.dsync HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert!(head.body.is_empty());

    let post = host.request("POST / HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));

    host.wait_logged(&["127.0.0.1 GET \"/debian/dists/stable/Release\" 206 3 "]);
    host.wait_logged(&["127.0.0.1 GET \"/debian/data.dsync\" 304 0 "]);
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let mut host = Host::new();
    host.start("", &[]);
    let mut stream = TcpStream::connect(host.addr()).unwrap();
    stream
        .write_all(
            b"GET /debian/dists/stable/Release HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /debian/inside HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("0123456789HTTP/1.1 404"), "{text}");
}

/// File bodies go out by `sendfile(2)` behind hyper's back: on one
/// connection, requests in a row (a `HEAD` whose body is never sent among
/// them) each get exactly their own bytes.
#[test]
fn file_bodies_in_a_row_on_one_connection_each_get_their_bytes() {
    let mut host = Host::new();
    // Several of the service's 4 MiB chunks, and not a multiple of anything.
    let big: Vec<u8> = (0..(9 << 20) + 123u32).map(|i| (i % 253) as u8).collect();
    fs::write(host.repo().join("big"), &big).unwrap();
    host.start("", &[]);
    let mut stream = TcpStream::connect(host.addr()).unwrap();
    stream
        .write_all(
            b"HEAD /debian/big HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /debian/big HTTP/1.1\r\nHost: x\r\nRange: bytes=5000000-\r\n\r\n\
              GET /debian/dists/stable/Release HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /debian/big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let mut rest = &raw[..];
    let mut next = |has_body: bool| {
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = parse(&rest[..end]);
        let len: usize = head.header("content-length").unwrap().parse().unwrap();
        let len = if has_body { len } else { 0 };
        let body = rest[end..end + len].to_vec();
        rest = &rest[end + len..];
        (head.status, body)
    };
    assert_eq!(next(false), (200, Vec::new()));
    assert_eq!(next(true), (206, big[5_000_000..].to_vec()));
    assert_eq!(next(true), (200, b"0123456789".to_vec()));
    assert_eq!(next(true), (200, big.clone()));
    assert!(rest.is_empty());
    host.wait_logged(&[&format!(" GET \"/debian/big\" 200 {} ", big.len())]);
}

// ---------------------------------------------------------------- hostile requests

#[test]
fn hostile_requests_are_refused_and_logged() {
    let mut host = Host::new();
    host.manifest();
    host.start("", &[]);
    let targets = [
        "/../etc/passwd",
        "/debian/../../etc/passwd",
        "/debian/%2e%2e/%2e%2e/etc/passwd",
        "/debian/%252e%252e/%252e%252e/etc/passwd",
        "/debian/..%2f..%2fetc/passwd",
        "/debian/%2E%2E%2F%2E%2E%2Fetc/passwd",
        "/debian/..%5c..%5cetc%5cpasswd",
        "/debian//etc/passwd",
        "//etc/passwd",
        "/debian/dists%00/stable/Release",
        "/debian/passwd",
        "/debian/inside",
        "/debian/dists",
        "/debian/dists/",
        "/debian/",
        "/secret/key",
        "/www/secret/key",
        "/debian/.dsync-cache",
        "/debian/pool/main/x.deb.dsync-part",
        "/debian/./dists/stable/Release",
        "/nonexistent/x",
    ];
    for target in targets {
        let r = host.get(target);
        assert!(
            (400..500).contains(&r.status),
            "{target} answered {}: {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains("root:"), "{target} leaked /etc/passwd");
        assert!(!r.text().contains("secret"), "{target} leaked secret/key");
        assert!(
            !r.text().contains("0123456789"),
            "{target} followed a symlink"
        );
        host.wait_logged(&[" 127.0.0.1 GET ", &format!("\"{target}\" {} ", r.status)]);
    }
    // A raw backslash reaches the service (refused), a raw NUL only the HTTP
    // parser (refused before any route; logged without method and target).
    let raw = |bytes: &[u8]| exchange(TcpStream::connect(host.addr()).unwrap(), bytes);
    let r = raw(b"GET /debian/a\\b HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 400);
    host.wait_logged(&[" 127.0.0.1 GET \"/debian/a\\b\" 400 "]);
    let r = raw(b"GET /debian/\x00 HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 400);
    host.wait_logged(&[" 127.0.0.1 - \"-\" 400 "]);
    // The same file by its real name is served: the refusals were not luck.
    assert_eq!(host.get("/debian/dists/stable/Release").status, 200);
}

// ---------------------------------------------------------------- firewall

/// A request from `source` that gets no answer at all: the connection is
/// closed (or reset, the request being unread) without a byte.
#[track_caller]
fn assert_no_answer(source: &str, host: &Host, target: &str) {
    let mut stream = connect_from(source, host.addr());
    // The request may meet a closed connection already.
    let _ = stream.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let (bytes, _reset) = read_all(stream);
    assert!(
        bytes.is_empty(),
        "{source} got an answer: {:?}",
        String::from_utf8_lossy(&bytes)
    );
}

#[test]
fn firewall_closes_unlisted_addresses_without_a_word() {
    let mut host = Host::new();
    host.dtp("firewall.conf", "# test\nallow = 127.0.0.1, 192.0.2.0/24\n");
    host.start("", &[]);
    assert_no_answer("127.0.0.2", &host, "/debian/dists/stable/Release");
    // Logged, with nginx's status for a connection closed without response.
    host.wait_logged(&[" 127.0.0.2 - \"-\" 444 0 "]);
    // A client that connects and says nothing is closed at once too.
    let (bytes, _) = read_all(connect_from("127.0.0.2", host.addr()));
    assert!(bytes.is_empty());
    let allowed = get_from("127.0.0.1", &host, "/debian/dists/stable/Release");
    assert_eq!(
        (allowed.status, allowed.text().as_str()),
        (200, "0123456789")
    );
}

#[test]
fn a_malformed_firewall_entry_keeps_the_service_from_starting() {
    let host = Host::new();
    host.dtp(
        "firewall.conf",
        "allow=127.0.0.1\n\nallow=127.0.0.1, 10.0.0.300\n",
    );
    host.xync("");
    let out = host
        .dsync()
        .args(["-service", "-foreground"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("firewall.conf:3"), "{stderr}");
    assert!(stderr.contains("10.0.0.300"), "{stderr}");
    assert!(!host.home().join("dtp/service.pid").exists());
    // `-service` says the same, before going to the background.
    let out = host.dsync().arg("-service").output().unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("firewall.conf:3"));
}

// ---------------------------------------------------------------- limits

#[test]
fn connections_over_the_per_address_cap_get_503() {
    let mut host = Host::new();
    host.start("dtp-maxconn=3\n", &[]);
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(host.addr()).unwrap())
        .collect();
    let extra = host.get("/debian/dists/stable/Release");
    assert_eq!(extra.status, 503);
    host.wait_logged(&[" 127.0.0.1 GET \"/debian/dists/stable/Release\" 503 "]);
    // Another address has its own count.
    assert_eq!(get_from("127.0.0.3", &host, "/").status, 200);
    drop(idle);
    // Once the idle connections are gone, the address is served again.
    wait_for_what(
        WAIT,
        "a request served after the idle connections closed",
        || host.get("/").status == 200,
    );
}

#[test]
fn a_slowloris_client_is_dropped_while_others_are_served() {
    let mut host = Host::new();
    host.start("", &[("DSYNC_DTP_HEADER_TIMEOUT_MS", "700")]);
    let mut slow = TcpStream::connect(host.addr()).unwrap();
    slow.write_all(b"GET /debian/dists/sta").unwrap();
    let started = Instant::now();
    // Served meanwhile.
    let r = host.get("/debian/dists/stable/Release");
    assert_eq!(r.status, 200);
    slow.set_read_timeout(Some(WAIT)).unwrap();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest); // closed by the server (perhaps after a 408)
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_secs(20),
        "{waited:?}"
    );
    host.wait_logged(&[" 127.0.0.1 - \"-\" 408 "]);
}

#[test]
fn a_client_that_does_not_read_is_dropped() {
    let mut host = Host::new();
    let big = vec![7u8; 32 << 20];
    fs::write(host.repo().join("big"), &big).unwrap();
    host.start("", &[("DSYNC_DTP_WRITE_TIMEOUT_MS", "500")]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket
            .connect(host.addr())
            .await
            .unwrap()
            .into_std()
            .unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    let mut stream = stream;
    stream
        .write_all(b"GET /debian/big HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Never read: the service gives up and logs what it sent.
    host.wait_logged(&[" GET \"/debian/big\" 200 "]);
    let line = host
        .access_log()
        .lines()
        .find(|l| l.contains("/debian/big"))
        .unwrap()
        .to_string();
    let sent: u64 = line.split(" ").nth(5).unwrap().parse().unwrap();
    assert!(sent < big.len() as u64, "{line}");
    drop(stream);
}

// ---------------------------------------------------------------- service commands

#[test]
fn background_service_reload_and_stop() {
    let mut host = Host::new();
    let big: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
    fs::write(host.repo().join("big"), &big).unwrap();
    host.dtp("firewall.conf", "allow=127.0.0.1, 127.0.0.2\n");
    host.port = free_port();
    host.xync("dtp-bwlimit=64\n");
    let out = host.dsync().arg("-service").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pid = fs::read_to_string(host.home().join("dtp/service.pid")).unwrap();
    let pid: i32 = pid.lines().next().unwrap().parse().unwrap();
    assert!(
        stdout.contains(&format!(
            "dsync: DTP service listening on 127.0.0.1:{} (pid {pid})",
            host.port
        )),
        "{stdout}"
    );
    // A second one is refused.
    let out = host.dsync().arg("-service").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already runs"));

    // A throttled download (64 KiB/s: about 3 s) in flight during the reload.
    let (started_tx, started_rx) = mpsc::channel();
    let addr = host.addr();
    let download = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /debian/big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut first = [0u8; 1];
        stream.read_exact(&mut first).unwrap();
        started_tx.send(Instant::now()).unwrap();
        let mut raw = first.to_vec();
        stream.read_to_end(&mut raw).unwrap();
        (parse(&raw), Instant::now())
    });
    let began = started_rx.recv_timeout(WAIT).unwrap();

    // Only 127.0.0.2 from now on.
    host.dtp("firewall.conf", "allow=127.0.0.2\n");
    let out = host.dsync().arg("-reload").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let service_log = || fs::read_to_string(host.home().join("logs/dtp-service.log")).unwrap();
    wait_for_what(WAIT, "the service's reload message", || {
        service_log().contains("reloaded:")
    });
    assert_no_answer("127.0.0.1", &host, "/");
    assert_eq!(get_from("127.0.0.2", &host, "/").status, 200);

    let (response, ended) = download.join().unwrap();
    assert_eq!(response.status, 200);
    assert!(response.body == big, "the download was cut or corrupted");
    assert!(
        ended - began >= Duration::from_millis(2000),
        "not throttled: {:?}",
        ended - began
    );

    // A bad configuration: `-reload` refuses, and a SIGHUP anyway keeps the old one.
    host.dtp("firewall.conf", "allow=nonsense\n");
    let out = host.dsync().arg("-reload").output().unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", output_text(&out));
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    wait_for_what(WAIT, "the failed reload in the service log", || {
        service_log().contains("reload failed")
    });
    assert_eq!(get_from("127.0.0.2", &host, "/").status, 200);

    let out = host.dsync().arg("-stop-service").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("stopped the DTP service (pid {pid})"))
    );
    assert!(!host.home().join("dtp/service.pid").exists());
    assert!(TcpStream::connect(host.addr()).is_err());
    let out = host.dsync().arg("-stop-service").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("not running"));
}

#[test]
fn first_service_writes_commented_host_files() {
    let dir = tempfile::tempdir().unwrap();
    open_to_service(dir.path());
    let home = dir.path().join("home");
    let port = free_port();
    fs::create_dir_all(&home).unwrap();
    fs::write(
        home.join("xync.conf"),
        format!("dtp-listen={port}\n{}", dtp_user_line()),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dsync"))
        .arg("-home")
        .arg(&home)
        .args(["-service", "-foreground"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A bare port: every address, IPv4 included.
    let up = poll_until(WAIT, || TcpStream::connect(("127.0.0.1", port)).is_ok());
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(up, "{}", output_text(&out));
    for (name, sample) in [
        ("list.conf", "etc/dtp/list.conf"),
        ("firewall.conf", "etc/dtp/firewall.conf"),
        ("motd.conf", "etc/dtp/motd.conf"),
    ] {
        let shipped =
            fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(sample)).unwrap();
        assert_eq!(
            fs::read_to_string(home.join("dtp").join(name)).unwrap(),
            shipped
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("list.conf"), "{stdout}");
}

/// `dsync -startup` into a folder of the test's; the unit's text.
fn startup_unit(host: &Host) -> (String, Output) {
    let units = host.dir.path().join("units");
    fs::create_dir_all(&units).unwrap();
    let out = host
        .dsync()
        .arg("-startup")
        .env("DSYNC_SYSTEMD_UNIT_DIR", &units)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    (
        fs::read_to_string(units.join("dsync-dtp.service")).unwrap(),
        out,
    )
}

/// systemd's own judgement of a unit: `verify` (man pages aside: not
/// installed here) and the exposure of `security`, at most `max` tenths.
fn assert_systemd_accepts(host: &Host, unit: &str, max: u32) {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED the systemd-analyze checks of the unit: no systemd-analyze (apt-get install systemd)"
        );
        return;
    }
    let path = host.dir.path().join("check/dsync-dtp.service");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{unit}", output_text(&out));
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(format!("--threshold={max}"))
        .arg(&path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let overall = report.lines().last().unwrap_or_default();
    assert!(
        out.status.success(),
        "exposure above {}.{}: {overall}\n{report}",
        max / 10,
        max % 10
    );
    assert!(overall.contains("Overall exposure level"), "{report}");
}

#[test]
fn startup_writes_a_hardened_unit() {
    let mut host = Host::new();
    host.port = free_port();
    host.xync("");
    if is_root() {
        // A home of an unprivileged account: the unit runs as it.
        let (uid, gid) = service_ids();
        chown_tree(&host.home(), uid, gid);
    }
    let (unit, _) = startup_unit(&host);
    let home = host.home().display().to_string();
    for want in [
        format!("-home \"{home}\" -service -foreground"),
        format!("ReadWritePaths={home}"),
        format!("ReadOnlyPaths=-{}", host.webroot().display()),
        "NoNewPrivileges=yes".to_string(),
        "ProtectSystem=strict".to_string(),
        "CapabilityBoundingSet=\n".to_string(),
    ] {
        assert!(unit.contains(&want), "{want}\n{unit}");
    }
    assert!(!unit.contains("SystemCallFilter=@setuid"), "{unit}");
    assert_systemd_accepts(&host, &unit, 20);
}

/// KRFOSS's guide: root runs `dsync -startup`, then `systemctl start
/// dsync-dtp.service`. The unit starts the service as root with only the
/// capabilities that drop root; it binds, then runs as nobody. What can be
/// shown without systemd as PID 1: the unit, systemd-analyze's verdict, and
/// its ExecStart run under the unit's bounding set and no_new_privs.
#[test]
fn startup_as_root_writes_a_unit_that_starts_and_drops_to_nobody() {
    if !root_or_skip("startup_as_root_writes_a_unit_that_starts_and_drops_to_nobody") {
        return;
    }
    let mut host = Host::new();
    host.no_dtp_user = true;
    host.port = free_port();
    host.xync("");
    let (unit, out) = startup_unit(&host);
    for want in [
        "User=root\n",
        "CapabilityBoundingSet=CAP_SETUID CAP_SETGID\n",
        "SystemCallFilter=@system-service\nSystemCallFilter=~@privileged @resources\nSystemCallFilter=@setuid\n",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "RestrictSUIDSGID=yes",
    ] {
        assert!(unit.contains(want), "{want}\n{unit}");
    }
    assert!(!unit.contains("AmbientCapabilities"), "{unit}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("then runs as nobody (no dtp-user= in xync.conf; as rsync's daemon)"),
        "{stdout}"
    );
    // Running as root costs exposure the unprivileged unit does not have
    // (User=root, CAP_SETUID/CAP_SETGID, the set*id calls), each needed to
    // drop root in the service itself.
    assert_systemd_accepts(&host, &unit, 21);

    // ExecStart as systemd would run it: root with the unit's bounding set.
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let argv: Vec<String> = exec
        .split(' ')
        .map(|w| w.trim_matches('"').to_string())
        .collect();
    assert_eq!(
        argv[1..],
        [
            "-home",
            &host.home().display().to_string(),
            "-service",
            "-foreground"
        ]
    );
    if !support::have_program("setpriv") {
        eprintln!("SKIPPED the ExecStart part: no setpriv (apt-get install util-linux)");
        return;
    }
    let output = host.dir.path().join("service.out");
    let out_file = fs::File::create(&output).unwrap();
    let child = Command::new("setpriv")
        .args([
            "--no-new-privs",
            "--bounding-set=-all,+setuid,+setgid",
            "--inh-caps=-all",
            "--",
        ])
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(out_file.try_clone().unwrap())
        .stderr(out_file)
        .spawn()
        .unwrap();
    host.service = Some(child);
    let up = poll_until(WAIT, || TcpStream::connect(host.addr()).is_ok());
    assert!(
        up,
        "the unit's service did not start:\n{}",
        host.service_out()
    );
    let pid = host.service.as_ref().unwrap().id();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let (uid, gid) = (service_ids().0, rsyncd_default_gid());
    assert_eq!(
        status_field(&status, "Uid:"),
        format!("{uid}\t{uid}\t{uid}\t{uid}")
    );
    assert_eq!(
        status_field(&status, "Gid:"),
        format!("{gid}\t{gid}\t{gid}\t{gid}")
    );
    assert_eq!(status_field(&status, "NoNewPrivs:"), "1");
    assert_eq!(
        status_field(&status, "CapBnd:"),
        "00000000000000c0",
        "CAP_SETGID and CAP_SETUID"
    );
    assert_eq!(status_field(&status, "CapEff:"), "0000000000000000");
    let r = host.get("/debian/dists/stable/Release");
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
    // systemctl reload: SIGHUP, the configuration read again as nobody.
    host.dtp("list.conf", "/debian\n");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    wait_for_what(WAIT, "the service's reload message", || {
        host.service_out().contains("reloaded:")
    });
}

#[test]
fn sigterm_lets_a_transfer_finish_then_exits_0() {
    let mut host = Host::new();
    let big: Vec<u8> = (0..192 * 1024u32).map(|i| (i % 253) as u8).collect();
    fs::write(host.repo().join("big"), &big).unwrap();
    // 64 KiB/s: about two seconds; the grace period is longer.
    host.start("dtp-bwlimit=64\n", &[("DSYNC_DTP_GRACE_MS", "20000")]);
    let (started_tx, started_rx) = mpsc::channel();
    let addr = host.addr();
    let download = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /debian/big HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut raw = vec![0u8; 1];
        stream.read_exact(&mut raw).unwrap();
        started_tx.send(()).unwrap();
        stream.read_to_end(&mut raw).unwrap();
        parse(&raw)
    });
    started_rx.recv_timeout(WAIT).unwrap();
    let mut child = host.service.take().unwrap();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    wait_for_what(WAIT, "the service to stop accepting", || {
        TcpStream::connect(addr).is_err()
    });
    let response = download.join().unwrap();
    assert_eq!(response.status, 200);
    assert!(response.body == big, "the transfer was cut short");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", host.service_out());
    host.assert_no_pid_file();
}

#[test]
fn listen_addresses_of_every_form() {
    let host = Host::new();
    let v6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let forms: &[&str] = if v6 {
        &["0.0.0.0:{}", "[::1]:{}"]
    } else {
        &["0.0.0.0:{}"]
    };
    for form in forms {
        let port = free_port();
        let listen = form.replace("{}", &port.to_string());
        fs::write(
            host.home().join("xync.conf"),
            format!(
                "webroot={}\ndtp-listen={listen}\n{}",
                host.webroot().display(),
                dtp_user_line()
            ),
        )
        .unwrap();
        let mut child = host
            .dsync()
            .args(["-service", "-foreground"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let connect_to: SocketAddr = listen.replace("0.0.0.0", "127.0.0.1").parse().unwrap();
        let up = poll_until(WAIT, || TcpStream::connect(connect_to).is_ok());
        let answer = up.then(|| {
            exchange(
                TcpStream::connect(connect_to).unwrap(),
                b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
            )
        });
        let _ = child.kill();
        let _ = child.wait();
        assert!(up, "nothing listens on {listen}");
        assert_eq!(answer.unwrap().text(), "debian\n", "{listen}");
    }
}

// ---------------------------------------------------------------- privileges

/// Run `cmd` (a service expected to refuse) to its end; kill it and fail if
/// it still runs after `WAIT`.
fn output_within(mut cmd: Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the service still runs after {WAIT:?}: it did not refuse");
        }
    }
}

/// `SERVICE_USER`'s uid and gid.
fn service_ids() -> (u32, u32) {
    (id_of_service_user("-u")[0], id_of_service_user("-g")[0])
}

/// `chown -R uid:gid path`, without following symlinks.
fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

/// The value of `key` in a /proc status text.
fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in\n{status}"))
        .trim()
}

/// The gid rsync's daemon switches to as root by default: the group
/// `nogroup` (Debian's name for it), else `nobody`.
fn rsyncd_default_gid() -> u32 {
    for group in ["nogroup", "nobody"] {
        let out = Command::new("getent")
            .args(["group", group])
            .output()
            .unwrap();
        if out.status.success() {
            let line = String::from_utf8_lossy(&out.stdout).into_owned();
            return line.split(':').nth(2).unwrap().parse().unwrap();
        }
    }
    service_ids().1
}

#[test]
fn as_root_without_dtp_user_the_service_runs_as_nobody_as_rsyncd() {
    if !root_or_skip("as_root_without_dtp_user_the_service_runs_as_nobody_as_rsyncd") {
        return;
    }
    let (uid, gid) = (service_ids().0, rsyncd_default_gid());
    let mut host = Host::new();
    host.no_dtp_user = true;
    host.start("", &[]);
    let pid = host.service.as_ref().unwrap().id();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ids = |n: u32| format!("{n}\t{n}\t{n}\t{n}");
    assert_eq!(status_field(&status, "Uid:"), ids(uid));
    assert_eq!(status_field(&status, "Gid:"), ids(gid));
    // As rsyncd: that group and no other.
    assert_eq!(status_field(&status, "Groups:"), gid.to_string());
    for caps in ["CapPrm:", "CapEff:", "CapAmb:"] {
        assert_eq!(status_field(&status, caps), "0000000000000000", "{caps}");
    }
    let log = host.service_out();
    assert!(
        log.contains(&format!(
            "running as {SERVICE_USER} (uid {uid}, gid {gid}), groups [{gid}]: root's privileges \
             are dropped for good (xync.conf sets no dtp-user=: the default, as rsync's daemon)"
        )),
        "{log}"
    );
    let r = host.get("/debian/dists/stable/Release");
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));

    // Accounts a root service cannot become, when named.
    let mut host = Host::new();
    host.port = free_port();
    let conf = host.home().join("xync.conf").display().to_string();
    for (user, want) in [
        ("root", "is root (uid 0)"),
        ("0", "is root (uid 0)"),
        ("no-such-account-dsync", "no such account"),
        ("4294967294", "no such account has this uid"),
    ] {
        host.xync_exactly(&format!("dtp-user={user}\n"));
        let mut cmd = host.dsync();
        cmd.args(["-service", "-foreground"]);
        let out = output_within(cmd);
        assert_eq!(out.status.code(), Some(78), "{user}: {}", output_text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("dtp-user={user} in {conf}: ")) && stderr.contains(want),
            "{user}: {stderr}"
        );
        assert!(TcpStream::connect(host.addr()).is_err());
        assert!(!host.home().join("dtp/service.pid").exists());
    }
}

#[test]
fn as_root_without_dtp_user_a_tree_nobody_cannot_read_is_refused_saying_why() {
    if !root_or_skip("as_root_without_dtp_user_a_tree_nobody_cannot_read_is_refused_saying_why") {
        return;
    }
    let mut host = Host::new();
    host.no_dtp_user = true;
    host.port = free_port();
    host.xync("");
    let repo = host.repo();
    fs::set_permissions(&repo, fs::Permissions::from_mode(0o700)).unwrap();
    for args in [&["-service", "-foreground"][..], &["-service"]] {
        let mut cmd = host.dsync();
        cmd.args(args);
        let out = output_within(cmd);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            output_text(&out)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        for want in [
            &format!(
                "debian's folder {} is not readable by {SERVICE_USER}, the account the DTP service runs as",
                repo.display()
            ),
            "chmod o+rx",
            "dtp-user=",
            &format!(
                "({SERVICE_USER} is the account a service started as root runs as when xync.conf \
                 sets no dtp-user=, as rsync's daemon does)"
            ),
        ] {
            assert!(stderr.contains(want), "{args:?}: no {want:?} in\n{stderr}");
        }
        assert!(TcpStream::connect(host.addr()).is_err(), "it listened");
        host.assert_no_pid_file();
    }
}

#[test]
fn as_root_the_service_becomes_dtp_user_in_every_thread_serves_and_reloads() {
    if !root_or_skip("as_root_the_service_becomes_dtp_user_in_every_thread_serves_and_reloads") {
        return;
    }
    let (uid, gid) = service_ids();
    let groups: std::collections::BTreeSet<u32> = id_of_service_user("-G").into_iter().collect();
    let mut host = Host::new();
    host.dtp("firewall.conf", "allow=127.0.0.1, 127.0.0.2\n");
    host.start("", &[]);
    let pid = host.service.as_ref().unwrap().id();

    // Written as root, before the drop.
    let pid_file = host.home().join("dtp/service.pid");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&pid_file).unwrap().uid(), 0);
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap().lines().next(),
        Some(pid.to_string().as_str())
    );

    // What the kernel says of the process and of each of its threads.
    let ids = |n: u32| format!("{n}\t{n}\t{n}\t{n}");
    let mut statuses = vec![(
        "process".to_string(),
        fs::read_to_string(format!("/proc/{pid}/status")).unwrap(),
    )];
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap();
        if let Ok(status) = fs::read_to_string(task.path().join("status")) {
            statuses.push((
                format!("thread {}", task.file_name().to_string_lossy()),
                status,
            ));
        }
    }
    assert!(statuses.len() >= 3, "the runtime's threads are missing");
    for (what, status) in &statuses {
        assert_eq!(status_field(status, "Uid:"), ids(uid), "{what}");
        assert_eq!(status_field(status, "Gid:"), ids(gid), "{what}");
        let have: std::collections::BTreeSet<u32> = status_field(status, "Groups:")
            .split_whitespace()
            .map(|g| g.parse().unwrap())
            .collect();
        assert_eq!(have, groups, "{what}: Groups");
        for caps in ["CapPrm:", "CapEff:", "CapAmb:"] {
            assert_eq!(
                status_field(status, caps),
                "0000000000000000",
                "{what}: {caps}"
            );
        }
    }
    assert!(
        host.service_out()
            .contains(&format!("running as {SERVICE_USER} (uid {uid}, gid {gid})")),
        "{}",
        host.service_out()
    );

    // It serves, and logs through the log it opened as root.
    let r = host.get("/debian/dists/stable/Release");
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
    host.wait_logged(&[" 127.0.0.1 GET \"/debian/dists/stable/Release\" 200 10 "]);

    // -reload: the configuration read again as the service's account.
    host.dtp("firewall.conf", "allow=127.0.0.2\n");
    let out = host.dsync().arg("-reload").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    wait_for_what(WAIT, "the service's reload message", || {
        host.service_out().contains("reloaded:")
    });
    assert_no_answer("127.0.0.1", &host, "/");
    assert_eq!(get_from("127.0.0.2", &host, "/").status, 200);
    assert!(
        !host.service_out().contains("cannot reopen the access log"),
        "{}",
        host.service_out()
    );

    // A configuration the account cannot read: the old one is kept, and why.
    fs::set_permissions(
        host.home().join("xync.conf"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    host.dtp("firewall.conf", "allow=127.0.0.1\n");
    let out = host.dsync().arg("-reload").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    wait_for_what(WAIT, "the failed reload in the service log", || {
        host.service_out().contains(&format!(
            "reload failed: the configuration has errors (read as {SERVICE_USER}"
        ))
    });
    let log = host.service_out();
    assert!(log.contains("cannot read: Permission denied"), "{log}");
    // The old configuration was kept.
    assert_no_answer("127.0.0.1", &host, "/");
    assert_eq!(get_from("127.0.0.2", &host, "/").status, 200);

    // SIGTERM: it stops cleanly, its pid file emptied.
    let mut child = host.service.take().unwrap();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", host.service_out());
    host.assert_no_pid_file();
}

/// A read-only bind mount of a folder onto itself, undone when dropped.
struct ReadOnlyBind(PathBuf);

impl ReadOnlyBind {
    fn new(path: &Path) -> Option<ReadOnlyBind> {
        let mount = |args: &[&str]| {
            Command::new("mount")
                .args(args)
                .arg(path)
                .args(if args[0] == "--bind" {
                    vec![path]
                } else {
                    vec![]
                })
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !mount(&["--bind"]) {
            return None;
        }
        let guard = ReadOnlyBind(path.to_path_buf());
        mount(&["-o", "remount,bind,ro"]).then_some(guard)
    }
}

impl Drop for ReadOnlyBind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn as_root_a_tree_the_service_user_can_write_or_not_read_is_refused() {
    if !root_or_skip("as_root_a_tree_the_service_user_can_write_or_not_read_is_refused") {
        return;
    }
    let (uid, gid) = service_ids();
    let mut host = Host::new();
    host.port = free_port();
    host.xync("");
    let repo = host.repo();
    let foreground = |host: &Host| {
        let mut cmd = host.dsync();
        cmd.args(["-service", "-foreground"]);
        output_within(cmd)
    };

    // Owned by the service's account.
    std::os::unix::fs::chown(&repo, Some(uid), Some(gid)).unwrap();
    let out = foreground(&host);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        // Checked as the account, after the drop.
        &format!("running as {SERVICE_USER} (uid {uid}, gid {gid})"),
        "dsync: the DTP service does not start: ",
        &format!(
            "debian's folder {} is writable by {SERVICE_USER}, the account the DTP service runs as",
            repo.display()
        ),
        "dtp-user= in xync.conf",
        "ReadOnlyPaths=",
    ] {
        assert!(stderr.contains(want), "no {want:?} in\n{stderr}");
    }
    assert!(TcpStream::connect(host.addr()).is_err(), "it listened");
    host.assert_no_pid_file();
    // `-service` in the background says the same.
    let mut cmd = host.dsync();
    cmd.arg("-service");
    let out = output_within(cmd);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("{} is writable by {SERVICE_USER}", repo.display())),
        "{}",
        output_text(&out)
    );
    host.assert_no_pid_file();

    // Writable by everyone: the same.
    std::os::unix::fs::chown(&repo, Some(0), Some(0)).unwrap();
    fs::set_permissions(&repo, fs::Permissions::from_mode(0o777)).unwrap();
    let out = foreground(&host);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is writable by"));

    // Not readable by the account: nothing could be served.
    fs::set_permissions(&repo, fs::Permissions::from_mode(0o700)).unwrap();
    let out = foreground(&host);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "debian's folder {} is not readable by {SERVICE_USER}",
            repo.display()
        )) && stderr.contains("chmod o+rx"),
        "{stderr}"
    );

    // Writable by its permissions but mounted read-only: served.
    fs::set_permissions(&repo, fs::Permissions::from_mode(0o777)).unwrap();
    let Some(read_only) = ReadOnlyBind::new(&repo) else {
        eprintln!(
            "SKIPPED the read-only mount part of as_root_a_tree_the_service_user_can_write_or_not_read_is_refused: \
             mount --bind is not permitted here"
        );
        return;
    };
    host.start("", &[]);
    let r = host.get("/debian/dists/stable/Release");
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
    assert!(
        !host.service_out().contains("writable"),
        "{}",
        host.service_out()
    );
    if let Some(mut child) = host.service.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(read_only);
}

#[test]
fn a_service_not_started_as_root_warns_about_a_writable_tree_and_serves_it() {
    let mut host = Host::new();
    let user = if is_root() {
        // Run it as the account itself, owning its home and its tree as in a
        // single-user setup.
        let (uid, gid) = service_ids();
        chown_tree(&host.home(), uid, gid);
        chown_tree(&host.repo(), uid, gid);
        host.run_as = Some((uid, gid));
        SERVICE_USER.to_string()
    } else {
        let out = Command::new("id").arg("-un").output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    host.start("", &[]);
    let log = host.service_out();
    let warning = log
        .lines()
        .find(|l| l.contains("warning: debian's folder"))
        .unwrap_or_else(|| panic!("no warning in\n{log}"));
    for want in [
        &format!(
            "{} is writable by {user}, the account the DTP service runs as",
            host.repo().display()
        ),
        "dtp-user=",
        "dsync -startup",
    ] {
        assert!(warning.contains(want), "no {want:?} in {warning}");
    }
    let r = host.get("/debian/dists/stable/Release");
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
}

// ---------------------------------------------------------------- symlink races

/// Bytes a race must never let out, and those it serves.
const SECRET: &[u8] = b"TOP-SECRET-BYTES";
const GENUINE: &[u8] = b"GENUINE-CONTENT.";

fn repeated(unit: &[u8]) -> Vec<u8> {
    unit.repeat(256)
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A world-readable secret outside the webroot: if the service followed a
/// symlink it could read it, as any account can.
fn outside_secret(host: &Host, folder: &str) -> PathBuf {
    let dir = host.dir.path().join(folder);
    fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("file");
    fs::write(&secret, repeated(SECRET)).unwrap();
    for (path, bits) in [(host.dir.path(), 0o001), (&dir, 0o001), (&secret, 0o004)] {
        let mode = fs::metadata(path).unwrap().permissions().mode();
        assert!(mode & bits != 0, "{} is {mode:o}", path.display());
    }
    secret
}

/// Request `target` from several threads, again and again, while `swap` runs
/// in a loop on another: every answer is the whole genuine file or a refusal,
/// none holds the secret. Until both were seen, at least `AT_LEAST` requests
/// were answered and `SWAPS` swaps made.
fn race(host: &mut Host, target: &str, swap: impl FnMut() + Send) {
    const CLIENTS: usize = 4;
    const AT_LEAST: usize = 600;
    const SWAPS: usize = 2000;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    let genuine = repeated(GENUINE);
    let (stop, served, refused, swaps) = (
        AtomicBool::new(false),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let deadline = Instant::now() + 2 * WAIT;
    let host_ref: &Host = host;
    std::thread::scope(|s| {
        let (stop, swaps) = (&stop, &swaps);
        let mut swap = swap;
        let swapper = s.spawn(move || {
            while !stop.load(SeqCst) {
                swap();
                swaps.fetch_add(1, SeqCst);
            }
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                s.spawn(|| {
                    loop {
                        let (ok, no) = (served.load(SeqCst), refused.load(SeqCst));
                        let enough = ok + no >= AT_LEAST && swaps.load(SeqCst) >= SWAPS;
                        if (enough && ok > 0 && no > 0) || Instant::now() > deadline {
                            return;
                        }
                        let r = host_ref.get(target);
                        assert!(
                            !holds(&r.body, SECRET),
                            "{target}: the secret leaked ({} answer)",
                            r.status
                        );
                        match r.status {
                            200 => {
                                assert!(
                                    r.body == genuine,
                                    "{target}: a 200 that is not the genuine file: {:?}",
                                    r.text()
                                );
                                served.fetch_add(1, SeqCst);
                            }
                            403 | 404 => {
                                refused.fetch_add(1, SeqCst);
                            }
                            other => panic!("{target} answered {other}: {}", r.text()),
                        }
                    }
                })
            })
            .collect();
        let results: Vec<_> = clients.into_iter().map(|c| c.join()).collect();
        stop.store(true, SeqCst);
        let swapped = swapper.join();
        for result in results.into_iter().chain([swapped]) {
            if let Err(panic) = result {
                std::panic::resume_unwind(panic);
            }
        }
    });
    let (served, refused, swaps) = (
        served.into_inner(),
        refused.into_inner(),
        swaps.into_inner(),
    );
    eprintln!("{target}: {served} served whole, {refused} refused, {swaps} swaps");
    assert!(
        served > 0 && refused > 0 && served + refused >= AT_LEAST && swaps >= SWAPS,
        "{target}: the race did not run its course in {:?}: {served} served, {refused} refused, {swaps} swaps",
        2 * WAIT
    );
    // Still serving, still the same process.
    let r = host.get("/debian/dists/stable/Release");
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
    let child = host.service.as_mut().unwrap();
    assert!(child.try_wait().unwrap().is_none(), "the service died");
}

#[test]
fn a_file_swapped_for_a_symlink_during_downloads_never_serves_its_target() {
    let mut host = Host::new();
    let secret = outside_secret(&host, "outside");
    let dir = host.repo().join("race");
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("file");
    fs::write(&file, repeated(GENUINE)).unwrap();
    host.start("", &[]);
    assert_eq!(host.get("/debian/race/file").body, repeated(GENUINE));

    // By rename(2) of a prepared symlink, then of a prepared file, over the
    // path; the symlink absolute or relative (climbing out of the tree).
    let targets = [secret, PathBuf::from("../../../outside/file")];
    assert_eq!(
        fs::read(dir.join(&targets[1])).unwrap(),
        repeated(SECRET),
        "the relative target reaches the secret"
    );
    // The genuine file is prepared as a hard link of a copy kept aside.
    let kept = host.dir.path().join("genuine");
    fs::write(&kept, repeated(GENUINE)).unwrap();
    let (link_tmp, file_tmp) = (dir.join(".link"), dir.join(".file"));
    let mut n = 0;
    race(&mut host, "/debian/race/file", move || {
        symlink(&targets[n % 2], &link_tmp).unwrap();
        fs::rename(&link_tmp, &file).unwrap();
        fs::hard_link(&kept, &file_tmp).unwrap();
        fs::rename(&file_tmp, &file).unwrap();
        n += 1;
    });
}

#[test]
fn a_folder_swapped_for_a_symlink_during_downloads_never_serves_through_it() {
    let mut host = Host::new();
    outside_secret(&host, "outside");
    let race_dir = host.repo().join("race");
    let dir = race_dir.join("dir");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("file"), repeated(GENUINE)).unwrap();
    // dir/file through the symlink is the secret.
    let link = race_dir.join(".swap");
    symlink("../../../outside", &link).unwrap();
    assert_eq!(fs::read(link.join("file")).unwrap(), repeated(SECRET));
    host.start("", &[]);
    assert_eq!(host.get("/debian/race/dir/file").body, repeated(GENUINE));

    // renameat2(RENAME_EXCHANGE): `dir` is the folder or the symlink, never
    // missing.
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    race(&mut host, "/debian/race/dir/file", move || {
        renameat_with(CWD, &dir, CWD, &link, RenameFlags::EXCHANGE).unwrap();
    });
}
