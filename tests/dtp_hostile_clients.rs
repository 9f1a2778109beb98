//! The DTP service against hostile clients (issue 19): clients that hold
//! batches and downloads without reading them, to run the service out of
//! file descriptors; a request head too large. The real service
//! (`dsync -service -foreground`) under a low descriptor limit, attacked over
//! raw TCP from other loopback addresses, and a real `dsync -sync` downstream.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use support::{free_port, is_root, mirrors, poll_until, wait_for_what};

/// Generous: the machine is shared with other builds and tests.
const WAIT: Duration = Duration::from_secs(60);
/// The service's descriptor limit, soft and hard: low, so the attack is cheap.
const LIMIT: u64 = 512;
/// Small files, as many as one batch may name, as large as its bytes allow.
const SMALL_FILES: usize = 256;
const SMALL_SIZE: usize = 32 * 1024;
/// A file too large for the socket buffers: a client that does not read it
/// leaves its download hanging.
const BIG_SIZE: usize = 16 << 20;
/// The service's per-address connection cap (`dtp-maxconn`'s default).
const MAXCONN: usize = 64;

/// A DTP host: the service running from a home of its own, serving `debian`.
struct Service {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Service {
    /// The tree, then the service under `limit` descriptors (none: as
    /// inherited), the write deadline long enough that the attack holds
    /// until the test lets go.
    fn start(limit: Option<u64>) -> Service {
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut service = Service {
            dir,
            port: 0,
            child: None,
        };
        let repo = service.repo();
        fs::create_dir_all(repo.join("small")).unwrap();
        for i in 0..SMALL_FILES {
            fs::write(repo.join(small(i)), content(i, SMALL_SIZE)).unwrap();
        }
        fs::write(repo.join("big"), content(999, BIG_SIZE)).unwrap();
        service.gendsync();
        fs::create_dir_all(service.home().join("dtp")).unwrap();
        fs::write(service.home().join("dtp/list.conf"), "debian\n").unwrap();
        // The free port may be taken before the service binds it: try again.
        for _ in 0..3 {
            service.port = free_port();
            fs::write(
                service.home().join("xync.conf"),
                format!(
                    "webroot={}\ndtp-listen=127.0.0.1:{}\n{}",
                    service.dir.path().join("www").display(),
                    service.port,
                    if is_root() { "dtp-user=nobody\n" } else { "" }
                ),
            )
            .unwrap();
            let out = fs::File::create(service.dir.path().join("service.out")).unwrap();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_dsync"));
            cmd.arg("-home")
                .arg(service.home())
                .args(["-service", "-foreground"])
                .env("DSYNC_DTP_WRITE_TIMEOUT_MS", "600000")
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out);
            if let Some(limit) = limit {
                // SAFETY: only setrlimit(2) between fork and exec.
                unsafe {
                    cmd.pre_exec(move || {
                        let rlimit = libc::rlimit {
                            rlim_cur: limit,
                            rlim_max: limit,
                        };
                        if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    })
                };
            }
            let mut child = cmd.spawn().unwrap();
            let ready = poll_until(WAIT, || {
                TcpStream::connect(service.addr()).is_ok() || child.try_wait().unwrap().is_some()
            });
            assert!(ready, "the service did not start:\n{}", service.output());
            if child.try_wait().unwrap().is_none() {
                service.child = Some(child);
                return service;
            }
        }
        panic!("the service never listened:\n{}", service.output());
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("www/debian")
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn gendsync(&self) {
        let m = dsync::dtp::manifest::generate(&self.repo(), "debian").unwrap();
        dsync::dtp::manifest::install(&self.repo(), &m).unwrap();
    }

    fn output(&self) -> String {
        fs::read_to_string(self.dir.path().join("service.out")).unwrap_or_default()
    }

    fn access_log(&self) -> String {
        fs::read_to_string(self.home().join("logs/dtp-access.log")).unwrap_or_default()
    }

    /// Descriptors the service has open now (`/proc/PID/fd`).
    fn descriptors(&self) -> usize {
        let pid = self.child.as_ref().expect("running").id();
        fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
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
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn small(i: usize) -> String {
    format!("small/s{i:03}")
}

fn content(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (seed * 31 + j * 7 + j / 251) as u8)
        .collect()
}

/// A client that asks and then never reads: its socket takes 4 KiB, so the
/// service's answer soon waits on it.
struct Holder {
    /// Kept open: the attack holds as long as the holder lives.
    stream: TcpStream,
    /// The status of the answer, or `None` if it closed without one.
    status: Option<u16>,
}

/// `request` sent from `source`; the answer's head read, and no more.
fn hold(source: &str, to: SocketAddr, request: &[u8]) -> Holder {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket
            .bind(SocketAddr::new(source.parse().unwrap(), 0))
            .unwrap();
        socket.connect(to).await.unwrap().into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(request).unwrap();
    let status = read_status(&mut stream);
    Holder { stream, status }
}

/// Read up to the end of the answer's head (a little of its body may come
/// with it); its status.
fn read_status(stream: &mut TcpStream) -> Option<u16> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => head.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading an answer's head: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&head);
    text.split(' ').nth(1).and_then(|s| s.parse().ok())
}

/// A whole batch (as many files as allowed), never read.
fn held_batch(source: &str, to: SocketAddr) -> Holder {
    let list: String = (0..SMALL_FILES).map(|i| small(i) + "\n").collect();
    let request = format!(
        "POST /debian/data.dsync HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{list}",
        list.len()
    );
    hold(source, to, request.as_bytes())
}

/// A download of the big file, never read.
fn unread_get(source: &str, to: SocketAddr) -> Holder {
    hold(source, to, b"GET /debian/big HTTP/1.1\r\nHost: x\r\n\r\n")
}

/// One request from 127.0.0.1, read whole: status and head. The service
/// may answer and close before all of it is written (a head too large).
fn request(to: SocketAddr, request: &str) -> (Option<u16>, String) {
    let mut stream = TcpStream::connect(to).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let _ = stream.write_all(request.as_bytes());
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok());
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
    (status, head)
}

/// A downstream: a dsync home whose repository pulls `debian` over DTP.
struct Downstream {
    dir: tempfile::TempDir,
}

impl Downstream {
    fn new(service: &Service) -> Downstream {
        let dir = tempfile::tempdir().unwrap();
        let down = Downstream { dir };
        fs::create_dir_all(down.home().join("repos")).unwrap();
        fs::create_dir_all(down.save()).unwrap();
        // 16 connections: a real client's, without taking the whole budget.
        fs::write(down.home().join("xync.conf"), "dtp-connections=16\n").unwrap();
        fs::write(
            down.home().join("repos/debian.conf"),
            format!(
                "repo=debian\nsave={}\ndsync-url=dtp://127.0.0.1:{}/debian\n",
                down.save().display(),
                service.port
            ),
        )
        .unwrap();
        down
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("dxync")
    }

    fn save(&self) -> PathBuf {
        self.dir.path().join("debian")
    }

    fn sync(&self) -> Output {
        Command::new(env!("CARGO_BIN_EXE_dsync"))
            .arg("-home")
            .arg(self.home())
            .args(["-sync", "debian"])
            .env("DSYNC_SENDMAIL", "/bin/true")
            .output()
            .unwrap()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.home().join("logs/debian.log")).unwrap_or_default()
    }

    /// The sync ran to exit 0 and the mirror is the host's tree.
    #[track_caller]
    fn assert_synced(&self, out: &Output, service: &Service) {
        assert_eq!(
            out.status.code(),
            Some(0),
            "the sync failed:\n{}\n{}\nservice:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log(),
            service.output()
        );
        let diff = mirrors::differences(&service.repo(), &self.save());
        assert!(diff.is_empty(), "{}", diff.join("\n"));
    }
}

/// The access log's lines with status 500.
fn errors_logged(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("\" 500 ")).collect()
}

#[track_caller]
fn assert_headroom(service: &Service, when: &str) {
    let open = service.descriptors() as u64;
    eprintln!("{when}: {open} descriptors open");
    // The kernel never lets it pass LIMIT; the budget keeps room below it
    // for accepting, refusing and reloading.
    assert!(
        open + 32 <= LIMIT,
        "{when}: the service has {open} of its {LIMIT} descriptors open"
    );
}

#[test]
fn held_batches_and_unread_downloads_cannot_run_the_service_out_of_descriptors() {
    let service = Service::start(Some(LIMIT));
    let to = service.addr();

    // The attack of the issue: from one address 5 held batches and 59
    // unread downloads (its cap, 64), from a second 22 unread downloads.
    // Before, each batch held all its 256 files open.
    let mut attack: Vec<Holder> = Vec::new();
    for _ in 0..5 {
        attack.push(held_batch("127.0.0.2", to));
    }
    for _ in 0..MAXCONN - 5 {
        attack.push(unread_get("127.0.0.2", to));
    }
    for _ in 0..22 {
        attack.push(unread_get("127.0.0.3", to));
    }
    let statuses: Vec<Option<u16>> = attack.iter().map(|h| h.status).collect();
    assert!(
        statuses.iter().all(|s| *s == Some(200)),
        "every held request is answered 200: {statuses:?}\n{}",
        service.access_log()
    );
    assert_headroom(&service, "under the issue's attack");

    // A legitimate sync, while the attack holds.
    let down = Downstream::new(&service);
    let out = down.sync();
    down.assert_synced(&out, &service);
    assert_headroom(&service, "after a sync under attack");
    // Still holding: none of the held requests has finished (each is logged
    // when it ends).
    let log = service.access_log();
    assert!(
        !log.contains(" 127.0.0.2 ") && !log.contains(" 127.0.0.3 "),
        "{log}"
    );

    // Then every address to its cap, and more: a third address holding
    // batches until the budget is spent. Whatever is refused is refused with
    // 503 (or, past the refusals kept, closed); nothing is 500.
    for _ in 22..MAXCONN {
        attack.push(unread_get("127.0.0.3", to));
    }
    for _ in 0..MAXCONN {
        attack.push(held_batch("127.0.0.4", to));
    }
    for source in ["127.0.0.5", "127.0.0.6"] {
        for _ in 0..MAXCONN {
            attack.push(unread_get(source, to));
        }
    }
    let statuses: Vec<Option<u16>> = attack.iter().map(|h| h.status).collect();
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s, Some(200) | Some(503) | None)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&Some(503)),
        "the budget is spent: {statuses:?}"
    );
    assert_headroom(&service, "with every address at its cap");
    // A legitimate request now: 503 with Retry-After, or 200; never 500.
    // While the descriptors kept for refusals are all busy answering the
    // attack's last connections (each lingers a second), a connection is
    // closed without a word: ask again then.
    for target in ["/debian/data.dsync", "/debian/small/s000", "/"] {
        let ask = || {
            request(
                to,
                &format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            )
        };
        let mut answer = ask();
        let answered = poll_until(WAIT, || {
            answer = ask();
            answer.0.is_some()
        });
        let (status, head) = answer;
        assert!(answered, "{target}: never answered");
        match status {
            Some(200) => {}
            Some(503) => assert!(
                head.to_ascii_lowercase().contains("\r\nretry-after: "),
                "{head}"
            ),
            other => panic!("{target}: {other:?}\n{head}"),
        }
    }
    service.wait_logged(&[" 127.0.0.1 GET \"/debian/small/s000\" "]);
    let log = service.access_log();
    assert!(log.contains("\" 503 "), "503s are logged as 503:\n{log}");
    assert!(errors_logged(&log).is_empty(), "{log}");
    assert!(
        !service.output().contains("Too many open files")
            && !service.output().contains("accept failed"),
        "{}",
        service.output()
    );

    // The attack gives up: the service is whole again, and a sync of a new
    // revision completes.
    drop(attack);
    wait_for_what(WAIT, "the attack's descriptors closed", || {
        service.descriptors() < 64
    });
    fs::write(service.repo().join("small/new"), b"a new file").unwrap();
    service.gendsync();
    let out = down.sync();
    down.assert_synced(&out, &service);
    assert!(errors_logged(&service.access_log()).is_empty());
    // The service said what it has to spend, and when it was spent.
    let said = service.output();
    for line in said.lines().filter(|l| l.contains("file descriptors")) {
        eprintln!("service: {line}");
    }
    assert!(
        said.contains(&format!("file descriptors: limit {LIMIT}, "))
            && said.contains("file descriptors for clients are in use"),
        "{said}"
    );
}

#[test]
fn a_request_head_too_large_is_answered_and_logged_431() {
    let service = Service::start(None);
    // Past the service's 32 KiB for a head, whatever hyper reads at once.
    let filler = "x".repeat(64 * 1024);
    let (status, head) = request(
        service.addr(),
        &format!("GET / HTTP/1.1\r\nHost: x\r\nX-Filler: {filler}\r\n\r\n"),
    );
    assert_eq!(status, Some(431), "{head}");
    service.wait_logged(&[" 127.0.0.1 - \"-\" 431 "]);
    // A malformed one is still a 400, logged as such.
    let (status, head) = request(service.addr(), "GET / HTTP/1.1\r\nBad Header\r\n\r\n");
    assert_eq!(status, Some(400), "{head}");
    service.wait_logged(&[" 127.0.0.1 - \"-\" 400 "]);
}

#[test]
fn a_batch_file_replaced_before_its_turn_breaks_the_answer_off_unsent() {
    // A budget too small to keep checked files open: `last` is reopened
    // when its turn comes, and is no longer the file checked.
    let (body, whole_first, _, planted) = replace_during_a_batch(Some(512));
    assert_eq!(
        body.len(),
        whole_first.len(),
        "the answer ends after the first file"
    );
    assert!(body == whole_first, "the first file arrived intact");
    assert!(!contains(&body, &planted));
}

#[test]
fn a_batch_file_kept_open_since_its_check_is_sent_as_checked() {
    // With a budget of a few thousand descriptors or more (systemd gives
    // services a hard limit of 524288) a batch keeps its checked files
    // open, so `last` is opened once and sent as it was checked, never the
    // planted bytes.
    let mut hard = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) fills the struct it is given.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) };
    if hard.rlim_max < 4096 {
        eprintln!(
            "SKIPPED a_batch_file_kept_open_since_its_check_is_sent_as_checked: the hard \
             descriptor limit here is {}, too small for the service to keep files open",
            hard.rlim_max
        );
        return;
    }
    let (body, whole_first, last, planted) = replace_during_a_batch(Some(hard.rlim_max));
    let mut whole = whole_first.clone();
    whole.extend_from_slice(&(last.len() as u64).to_be_bytes());
    whole.extend_from_slice(&last);
    assert!(body == whole, "{} bytes, not the checked files", body.len());
    assert!(!contains(&body, &planted));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A batch of a large file then a small one, held unread; the small one is
/// then replaced by rename with another of the same size. The answer as
/// read, the first file framed, the small file's checked and planted bytes.
fn replace_during_a_batch(limit: Option<u64>) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let service = Service::start(limit);
    // A file larger than any socket buffer here (4 MiB at most), so the
    // answer is still in it when the client stops reading; then a small one.
    let first = content(7, 7 << 20);
    let last = content(8, 1000);
    fs::write(service.repo().join("first"), &first).unwrap();
    fs::write(service.repo().join("last"), &last).unwrap();
    let list = "first\nlast\n";
    let request = format!(
        "POST /debian/data.dsync HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{list}",
        list.len()
    );
    let mut holder = hold("127.0.0.1", service.addr(), request.as_bytes());
    assert_eq!(holder.status, Some(200));
    // Checked and announced; now replaced by rename, as a sync does, with a
    // file of the same size.
    let planted = vec![b'!'; 1000];
    fs::write(service.repo().join("planted"), &planted).unwrap();
    fs::rename(service.repo().join("planted"), service.repo().join("last")).unwrap();
    let mut body = Vec::new();
    let _ = holder.stream.read_to_end(&mut body);
    let mut whole_first = (first.len() as u64).to_be_bytes().to_vec();
    whole_first.extend_from_slice(&first);
    service.wait_logged(&[" POST \"/debian/data.dsync\" 200 ", " files=2"]);
    (body, whole_first, last, planted)
}
