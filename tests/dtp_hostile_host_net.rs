//! The DTP client against a hostile host, network side (issue 19): a host
//! written here (`support/hostile_host.rs`, raw HTTP on 127.0.0.1) drives the
//! real `dsync -sync NAME` of a test home, and each test shows that the
//! attack fails the sync with a clear message and leaves the mirror as it
//! was.

#[path = "support/hostile_host.rs"]
mod hostile_host;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use dsync::dtp::manifest::{Entry, Kind, Manifest};
use hostile_host::{Conn, HostileHost, Request};
use sha2::Digest;

/// The longest any run here may take; each should end within seconds.
const RUN_WITHIN: Duration = Duration::from_secs(60);
/// From SIGTERM to the end of the run: the watchdog looks every 250 ms.
const EXIT_WITHIN: Duration = Duration::from_secs(10);
/// What a mirror holds before each test, to show it is left alone.
const MARKER: &str = "old/marker";

/// A client home with one repository pulled from `url`; `repo_extra` is
/// added to the repository's file.
fn client_home(dir: &Path, url: &str, xync: &str, repo_extra: &str) -> (PathBuf, PathBuf) {
    let home = dir.join("client");
    let save = dir.join("mirror");
    std::fs::create_dir_all(home.join("repos")).unwrap();
    std::fs::create_dir_all(save.join("old")).unwrap();
    std::fs::write(save.join(MARKER), "before\n").unwrap();
    std::fs::write(home.join("xync.conf"), format!("retries=1\n{xync}")).unwrap();
    std::fs::write(
        home.join("repos/repo.conf"),
        format!(
            "repo=repo\nsave={}\ndsync-url={url}\n{repo_extra}",
            save.display()
        ),
    )
    .unwrap();
    (home, save)
}

fn dsync(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dsync"));
    cmd.arg("-home")
        .arg(home)
        .args(["-sync", "repo"])
        .env("DSYNC_RETRY_WAIT", "1")
        .env("DSYNC_SENDMAIL", "/bin/true")
        .env_remove(dsync::dtp::client::STOP_AFTER_STAGE1)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn log(home: &Path) -> String {
    std::fs::read_to_string(home.join("logs/repo.log")).unwrap_or_default()
}

/// Wait for `child` to end, at most `within` (then it is killed and the
/// test fails with its log).
#[track_caller]
fn wait_exit(child: &mut Child, within: Duration, home: &Path) -> ExitStatus {
    let start = Instant::now();
    let mut status = None;
    support::poll_until(within, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    match status {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "dsync still running after {:?}\nlog:\n{}",
                start.elapsed(),
                log(home)
            );
        }
    }
}

/// Run the sync to its end; its status and log.
#[track_caller]
fn sync(home: &Path) -> (ExitStatus, String) {
    let mut child = dsync(home).spawn().unwrap();
    let status = wait_exit(&mut child, RUN_WITHIN, home);
    (status, log(home))
}

/// The mirror holds what it held before, and nothing else but what `also` names.
#[track_caller]
fn assert_untouched(save: &Path, also: &[&str]) {
    assert_eq!(
        std::fs::read_to_string(save.join(MARKER)).unwrap(),
        "before\n"
    );
    let mut found = Vec::new();
    walk(save, save, &mut found);
    found.retain(|p| p != "old" && p != MARKER && !also.contains(&p.as_str()));
    assert!(found.is_empty(), "left in the mirror: {found:?}");
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(support::rel(root, &path));
        if path.is_dir() && !path.is_symlink() {
            walk(root, &path, out);
        }
    }
}

fn file(path: &str, size: u64, content: &[u8]) -> Entry {
    Entry {
        kind: Kind::File,
        path: PathBuf::from(path),
        mode: 0o644,
        size,
        mtime: 1_700_000_000,
        sha256: Some(sha2::Sha256::digest(content).into()),
        target: None,
    }
}

/// The compressed manifest of `entries`.
fn manifest(entries: Vec<Entry>) -> Vec<u8> {
    Manifest::new("repo", 1_700_000_000, entries).encode()
}

/// A manifest large enough that dripping it takes hours.
fn large_manifest() -> Vec<u8> {
    manifest(
        (0..4000)
            .map(|i| file(&format!("f{i:05}"), 0, b""))
            .collect(),
    )
}

fn is_manifest(request: &Request) -> bool {
    request.method == "GET" && request.path == "/repo/data.dsync"
}

/// The manifest's answer: its head at once, then one byte every 250 ms
/// until the client leaves (the drip is the attack, not a wait).
fn drip(conn: &mut Conn, body: &[u8]) {
    if !conn.head("200 OK", &[("Content-Length", body.len().to_string())]) {
        return;
    }
    for byte in body {
        if !conn.send(std::slice::from_ref(byte)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// D2: the batch's length prefix says 100 bytes for a file the manifest
/// lists at 5000, and those 100 bytes are what the manifest's hash covers.
#[test]
fn a_batch_framing_a_file_shorter_than_the_manifest_fails_and_places_nothing() {
    let content = [b'x'; 100];
    let listing = manifest(vec![file("f", 5000, &content)]);
    let host = HostileHost::start(move |request, conn| {
        if is_manifest(request) {
            conn.answer(
                "200 OK",
                &[
                    ("Content-Length", listing.len().to_string()),
                    ("DTP-Batch", "files=256, bytes=8388608".into()),
                ],
                &listing,
            );
        } else if request.method == "POST" {
            let mut body = 100u64.to_be_bytes().to_vec();
            body.extend_from_slice(&content);
            conn.answer(
                "200 OK",
                &[("Content-Length", body.len().to_string())],
                &body,
            );
        } else {
            conn.answer("404 Not Found", &[("Content-Length", "0".into())], b"");
        }
    });
    let work = tempfile::tempdir().unwrap();
    let (home, save) = client_home(work.path(), &host.url("repo"), "", "");
    let (status, log) = sync(&home);
    assert!(!status.success(), "{log}");
    assert!(
        host.requests().iter().any(|r| r.method == "POST"),
        "the file went by batch"
    );
    assert!(
        log.contains("f: the host's batch gives it 100 bytes, the manifest lists 5000"),
        "{log}"
    );
    assert_untouched(&save, &[]);
}

/// D4: a manifest served at 4 bytes/s never trips a per-read timeout; the
/// phase's minimum rate (16 KiB/s by default, after `timeout=2` of grace)
/// stops it.
#[test]
fn a_dripped_manifest_fails_below_the_minimum_rate() {
    let listing = large_manifest();
    let host = HostileHost::start(move |request, conn| {
        if is_manifest(request) {
            drip(conn, &listing);
        }
    });
    let work = tempfile::tempdir().unwrap();
    let (home, save) = client_home(work.path(), &host.url("repo"), "timeout=2\n", "");
    let (status, log) = sync(&home);
    assert!(!status.success(), "{log}");
    for words in [
        "the manifest download: ",
        "below the floor of 16384 bytes/s after 2 s of grace",
        "dtp-min-rate=",
    ] {
        assert!(log.contains(words), "{words}:\n{log}");
    }
    assert_untouched(&save, &[]);
}

/// D4: the same floor holds for stage one as a whole: a file dripped at
/// 4 bytes/s fails it, and nothing unverified takes the file's name.
#[test]
fn a_dripped_file_fails_stage_one_below_the_minimum_rate() {
    let content = vec![b'y'; 100_000];
    let listing = manifest(vec![file("f", content.len() as u64, &content)]);
    let host = HostileHost::start(move |request, conn| {
        if is_manifest(request) {
            let length = ("Content-Length", listing.len().to_string());
            conn.answer("200 OK", &[length], &listing);
        } else if request.path == "/repo/f" {
            drip(conn, &content);
        }
    });
    let work = tempfile::tempdir().unwrap();
    let (home, save) = client_home(work.path(), &host.url("repo"), "timeout=2\n", "");
    let (status, log) = sync(&home);
    assert!(!status.success(), "{log}");
    for words in ["stage one: ", "below the floor of 16384 bytes/s"] {
        assert!(log.contains(words), "{words}:\n{log}");
    }
    // The partial download stays under its part name, for the next run.
    assert_untouched(&save, &[".f.dsync-part"]);
}

/// D4: SIGTERM during the manifest download (no rate floor, a long
/// timeout: nothing else would end it) stops the run promptly.
#[test]
fn sigterm_while_the_manifest_drips_stops_the_run_promptly() {
    let listing = large_manifest();
    let host = HostileHost::start(move |request, conn| {
        if is_manifest(request) {
            drip(conn, &listing);
        }
    });
    let work = tempfile::tempdir().unwrap();
    let (home, save) = client_home(
        work.path(),
        &host.url("repo"),
        "timeout=600\ndtp-min-rate=0\n",
        "",
    );
    let mut child = dsync(&home).spawn().unwrap();
    // The drip has begun: the head (61 bytes) and some of the body are out.
    support::wait_for_what(RUN_WITHIN, "the manifest's first bytes", || {
        host.requests().iter().any(is_manifest) && host.written() > 64
    });
    // SAFETY: kill(2) on the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let signalled = Instant::now();
    let status = wait_exit(&mut child, EXIT_WITHIN, &home);
    eprintln!("ended {:?} after SIGTERM", signalled.elapsed());
    let log = log(&home);
    assert!(!status.success(), "{log}");
    assert!(log.contains("stopped by signal 15"), "{log}");
    assert_untouched(&save, &[]);
}

/// A host that redirects every request to the same path on `to`.
fn redirecting(to: u16) -> HostileHost {
    HostileHost::start(move |request, conn| {
        let location = format!("http://127.0.0.1:{to}{}", request.path);
        conn.answer(
            "302 Found",
            &[("Location", location), ("Content-Length", "0".into())],
            b"",
        );
    })
}

/// A plain host serving `f` ("hello\n") under `/PREFIX/`, file by file.
fn serving(prefix: &'static str) -> HostileHost {
    let listing = manifest(vec![file("f", 6, b"hello\n")]);
    HostileHost::start(move |request, conn| {
        let body: &[u8] = match request.path.strip_prefix(prefix) {
            Some("data.dsync") => &listing,
            Some("f") => b"hello\n",
            _ => {
                conn.answer("404 Not Found", &[("Content-Length", "0".into())], b"");
                return;
            }
        };
        conn.answer(
            "200 OK",
            &[("Content-Length", body.len().to_string())],
            body,
        );
    })
}

/// Redirects go only to the URL's own scheme, host and port unless the
/// repository says `dtp-redirects=any`.
#[test]
fn a_redirect_to_another_port_is_refused_unless_the_repository_allows_it() {
    let elsewhere = serving("/repo/");
    let host = redirecting(elsewhere.port());
    let work = tempfile::tempdir().unwrap();
    let (home, save) = client_home(work.path(), &host.url("repo"), "", "");
    let (status, log) = sync(&home);
    assert!(!status.success(), "{log}");
    let to = format!(
        "redirected to http://127.0.0.1:{}/repo/data.dsync",
        elsewhere.port()
    );
    for words in [to.as_str(), "dtp-redirects=any"] {
        assert!(log.contains(words), "{words}:\n{log}");
    }
    assert!(
        elsewhere.requests().is_empty(),
        "nothing went to the other port"
    );
    assert_untouched(&save, &[]);

    // Allowed: the same redirect is followed, for the files too.
    let conf = home.join("repos/repo.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, text + "dtp-redirects=any\n").unwrap();
    let (status, log) = sync(&home);
    assert!(status.success(), "{log}");
    assert_eq!(std::fs::read(save.join("f")).unwrap(), b"hello\n");
}

/// A redirect within the host (same scheme, host and port) is followed by
/// default.
#[test]
fn a_redirect_within_the_host_is_followed() {
    let host = HostileHost::start(|request, conn| {
        if let Some(rest) = request.path.strip_prefix("/repo/") {
            let location = format!("/moved/{rest}");
            conn.answer(
                "301 Moved Permanently",
                &[("Location", location), ("Content-Length", "0".into())],
                b"",
            );
            return;
        }
        let listing = manifest(vec![file("f", 6, b"hello\n")]);
        let body: &[u8] = match request.path.as_str() {
            "/moved/data.dsync" => &listing,
            "/moved/f" => b"hello\n",
            _ => b"",
        };
        conn.answer(
            "200 OK",
            &[("Content-Length", body.len().to_string())],
            body,
        );
    });
    let work = tempfile::tempdir().unwrap();
    let (home, save) = client_home(work.path(), &host.url("repo"), "", "");
    let (status, log) = sync(&home);
    assert!(status.success(), "{log}");
    assert_eq!(std::fs::read(save.join("f")).unwrap(), b"hello\n");
}

/// Writes to a connection, through zstd; false once the client left.
struct Wire<'c, 'a>(&'c mut Conn<'a>);

impl std::io::Write for Wire<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.send(buf) {
            true => Ok(buf.len()),
            false => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Up to this much compressed manifest is offered.
const OFFERED: u64 = 256 << 20;

/// One zstd frame: `header`, then random bytes (stored as they are: zstd
/// cannot shrink them) until [`OFFERED`] bytes are out or the client leaves.
fn endless_manifest(conn: &mut Conn, header: &str) {
    if !conn.head("200 OK", &[]) {
        return;
    }
    let mut zstd = zstd::stream::write::Encoder::new(Wire(conn), 1).unwrap();
    let mut block = vec![0u8; 1 << 20];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut sent = 0;
    let ok = std::io::Write::write_all(&mut zstd, header.as_bytes()).is_ok();
    while ok && sent < OFFERED {
        for word in block.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            word.copy_from_slice(&seed.to_le_bytes());
        }
        if std::io::Write::write_all(&mut zstd, &block).is_err() {
            return;
        }
        sent += block.len() as u64;
    }
    let _ = zstd.finish();
}

/// The manifest is checked while it downloads: a bad header, or a body
/// beyond what its header's entries can fill, cuts the download off within
/// a few MiB of the 256 MiB offered, not after all of it is on disk.
#[test]
fn a_manifest_with_a_bad_header_or_an_overlong_body_is_cut_off_early() {
    let digest = format!("sha256:{}", "0".repeat(64));
    let cases = [
        (
            "DSYNC 9\nrepo repo\nentries 1\nbytes 0\ngenerated 0\ndigest -\n\n".to_string(),
            "unsupported version 9",
        ),
        (
            format!("DSYNC 1\nrepo repo\nentries 1\nbytes 0\ngenerated 0\ndigest {digest}\n\n"),
            "header's 1 entries can fill",
        ),
    ];
    for (header, refusal) in cases {
        let served = header.clone();
        let host = HostileHost::start(move |request, conn| {
            if is_manifest(request) {
                endless_manifest(conn, &served);
            }
        });
        let work = tempfile::tempdir().unwrap();
        let (home, save) = client_home(work.path(), &host.url("repo"), "", "");
        let (status, log) = sync(&home);
        assert!(!status.success(), "{log}");
        assert!(log.contains(refusal), "{refusal}:\n{log}");
        let written = host.written();
        assert!(
            written < 32 << 20,
            "{refusal}: the host got {written} bytes out of {OFFERED}"
        );
        eprintln!("{refusal}: cut off after {written} bytes");
        assert_untouched(&save, &[]);
    }
}
