//! The DTP host service through the binary: `dsync -home H -service
//! -foreground` (or `-service` / `-reload` / `-stop-service`) on 127.0.0.1 and a
//! free port, spoken to over raw TCP so that hostile requests reach it byte for
//! byte as written here.

mod support;

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dsync::dtp::manifest;
use support::{free_port, poll_until, wait_for_what};

/// Generous: the machine is shared with other builds and tests.
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- fixtures

/// A host home with a webroot holding `debian` (listed) and `secret` (not).
struct Host {
    dir: tempfile::TempDir,
    port: u16,
    service: Option<Child>,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let host = Host {
            dir,
            port: 0,
            service: None,
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

    fn xync(&self, extra: &str) {
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

/// A connection from `source` (another loopback address) to `to`.
fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new(source.parse().unwrap(), 0))
            .unwrap();
        let stream = socket.connect(to).await.unwrap();
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
    })
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

#[test]
fn firewall_lets_listed_addresses_in_only() {
    let mut host = Host::new();
    host.dtp("firewall.conf", "# test\nallow = 127.0.0.1, 192.0.2.0/24\n");
    host.start("", &[]);
    let refused = get_from("127.0.0.2", &host, "/debian/dists/stable/Release");
    assert_eq!(refused.status, 403);
    host.wait_logged(&[" 127.0.0.2 GET \"/debian/dists/stable/Release\" 403 "]);
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
    assert_eq!(host.get("/").status, 403);
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
    let home = dir.path().join("home");
    let port = free_port();
    fs::create_dir_all(&home).unwrap();
    fs::write(home.join("xync.conf"), format!("dtp-listen={port}\n")).unwrap();
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

#[test]
fn startup_writes_a_hardened_unit() {
    let host = Host::new();
    host.xync("");
    let units = host.dir.path().join("units");
    fs::create_dir_all(&units).unwrap();
    let out = host
        .dsync()
        .arg("-startup")
        .env("DSYNC_SYSTEMD_UNIT_DIR", &units)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let unit = fs::read_to_string(units.join("dsync-dtp.service")).unwrap();
    let home = host.home().display().to_string();
    for want in [
        format!("-home \"{home}\" -service -foreground"),
        format!("ReadWritePaths={home}"),
        format!("ReadOnlyPaths=-{}", host.webroot().display()),
        "NoNewPrivileges=yes".to_string(),
        "ProtectSystem=strict".to_string(),
    ] {
        assert!(unit.contains(&want), "{want}\n{unit}");
    }
    // systemd's own judgement of the sandbox: exposure at most 2.0 of 10.
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED the exposure check of startup_writes_a_hardened_unit: no systemd-analyze (apt-get install systemd)"
        );
        return;
    }
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(units.join("dsync-dtp.service"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let overall = report.lines().last().unwrap_or_default();
    assert!(
        out.status.success(),
        "exposure above 2.0: {overall}\n{report}"
    );
    assert!(overall.contains("Overall exposure level"), "{report}");
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
    assert!(!host.home().join("dtp/service.pid").exists());
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
                "webroot={}\ndtp-listen={listen}\n",
                host.webroot().display()
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
