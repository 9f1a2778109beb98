//! DTP batches (protocol 1.1, `POST /REPO/data.dsync`) against the real
//! service: what a batch answers and refuses, a batch broken off or corrupted
//! on the way (a real TCP proxy between client and service), and old and new
//! clients and servers together.

mod support;

use std::cell::RefCell;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use dsync::dtp::client::{self, ClientError, ClientOptions, Summary};
use support::dtp_host::{DtpHost, read_all};
use support::fault_proxy::{Fault, FaultProxy};
use support::http::{self, Response};
use support::wait_for_what;

const FILES: usize = 40;
const SIZE: usize = 1000;

/// `FILES` files of `SIZE` bytes, each different, at the repository root.
fn small_tree(host: &DtpHost) {
    for i in 0..FILES {
        std::fs::write(host.root("repo").join(name(i)), content(i)).unwrap();
    }
    host.gendsync("repo");
}

fn name(i: usize) -> String {
    format!("f{i:02}")
}

fn content(i: usize) -> Vec<u8> {
    (0..SIZE).map(|j| (i * 31 + j * 7) as u8).collect()
}

/// A sync in process from `url`, one connection (so one batch).
fn sync(url: &str, save: &Path) -> (Result<Summary, ClientError>, Vec<String>) {
    let mut options = ClientOptions::new(url, save.to_path_buf());
    options.timeout = Duration::from_secs(30);
    options.connections = 1;
    let lines = RefCell::new(Vec::new());
    let result = client::sync(&options, &|line: &str| {
        lines.borrow_mut().push(line.to_string())
    });
    (result, lines.into_inner())
}

/// A raw request; the status and the body.
fn exchange(host: &DtpHost, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(host.addr()).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let (bytes, _) = read_all(stream);
    let text = String::from_utf8_lossy(&bytes);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let at = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (status, bytes[at..].to_vec())
}

fn post(host: &DtpHost, target: &str, list: &[u8]) -> (u16, Vec<u8>) {
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        list.len()
    );
    exchange(host, &head, list)
}

fn get(host: &DtpHost, target: &str) -> (u16, Vec<u8>) {
    let head = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    exchange(host, &head, b"")
}

/// The files of a batch answer: each length-prefixed.
fn unframe(mut body: &[u8]) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    while !body.is_empty() {
        let len = u64::from_be_bytes(body[..8].try_into().unwrap()) as usize;
        files.push(body[8..8 + len].to_vec());
        body = &body[8 + len..];
    }
    files
}

#[test]
fn a_batch_answers_every_file_in_the_order_asked_with_one_log_line() {
    let host = DtpHost::start(&["repo"], 0);
    small_tree(&host);
    let (status, body) = post(&host, "/repo/data.dsync", b"f07\nf02\nf30\n");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(unframe(&body), vec![content(7), content(2), content(30)]);
    let bytes = 3 * (8 + SIZE);
    wait_for_what(Duration::from_secs(10), "the batch's log line", || {
        host.access_log().lines().any(|l| {
            l.contains(&format!("POST \"/repo/data.dsync\" 200 {bytes} "))
                && l.ends_with(" files=3")
        })
    });
    // The manifest's answer says batches are served, and their limits.
    let mut stream = TcpStream::connect(host.addr()).unwrap();
    stream
        .write_all(b"GET /repo/data.dsync HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (answer, _) = read_all(stream);
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(
        answer.contains("\r\ndtp-batch: files=256, bytes=8388608\r\n"),
        "{answer}"
    );
}

#[test]
fn a_batch_naming_anything_a_get_refuses_or_too_much_is_refused_whole() {
    let host = DtpHost::start(&["repo"], 0);
    let root = host.root("repo");
    std::fs::write(root.join("ok"), "the content of ok").unwrap();
    std::fs::create_dir(root.join("folder")).unwrap();
    std::fs::write(host.webroot().join("secret"), "secret").unwrap();
    std::os::unix::fs::symlink("ok", root.join("link")).unwrap();
    std::os::unix::fs::symlink("../secret", root.join("out")).unwrap();
    let big = vec![b'x'; 5 << 20];
    std::fs::write(root.join("big1"), &big).unwrap();
    std::fs::write(root.join("big2"), &big).unwrap();
    host.gendsync("repo");
    let many = "ok\n".repeat(257);
    let cases: [(&str, &[u8], u16); 12] = [
        ("/repo/data.dsync", b"ok\nmissing\n", 404),
        ("/repo/data.dsync", b"ok\n../secret\n", 400),
        ("/repo/data.dsync", b"ok\nfolder/../../secret\n", 400),
        ("/repo/data.dsync", b"ok\n%2e%2e/secret\n", 400),
        ("/repo/data.dsync", b"ok\nlink\n", 404),
        ("/repo/data.dsync", b"ok\nout\n", 404),
        ("/repo/data.dsync", b"ok\nfolder\n", 404),
        ("/repo/data.dsync", b"ok", 400),
        ("/repo/data.dsync", many.as_bytes(), 413),
        ("/repo/data.dsync", b"big1\nbig2\n", 413),
        ("/nothere/data.dsync", b"ok\n", 404),
        ("/repo/ok", b"ok\n", 405),
    ];
    for (target, list, want) in cases {
        let (status, body) = post(&host, target, list);
        let text = String::from_utf8_lossy(&body);
        let shown = String::from_utf8_lossy(&list[..list.len().min(40)]);
        assert_eq!(status, want, "{target} {shown:?}: {text}");
        assert!(!text.contains("the content of ok"), "{shown:?}: {text}");
    }
    let (_, body) = post(&host, "/repo/data.dsync", b"ok\nlink\n");
    assert_eq!(
        String::from_utf8_lossy(&body),
        "404 batch refused: line 2: not found\n"
    );
    let (_, body) = post(&host, "/repo/data.dsync", many.as_bytes());
    assert!(
        String::from_utf8_lossy(&body).contains("more than 256 files"),
        "{body:?}"
    );
    wait_for_what(Duration::from_secs(10), "12 more log lines", || {
        host.access_log().matches("POST ").count() >= 14
    });
    assert!(
        !host.access_log().contains("files="),
        "a refused batch sends no file:\n{}",
        host.access_log()
    );
}

#[test]
fn a_batch_cut_off_mid_stream_resumes_from_the_first_file_missing() {
    let host = DtpHost::start(&["repo"], 0);
    small_tree(&host);
    // In the middle of the sixth file.
    let proxy = FaultProxy::start(host.addr(), Fault::CutAfter(5 * (8 + SIZE) + 500));
    let save = tempfile::tempdir().unwrap();
    let url = format!("dtp://127.0.0.1:{}/repo", proxy.port());
    let (result, log) = sync(&url, save.path());
    let summary = result.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert!(proxy.fired());
    assert!(
        log.iter()
            .any(|l| l.contains("a batch broke off after 5 of 40 files")),
        "{}",
        log.join("\n")
    );
    assert_eq!(summary.fetched_files, FILES as u64);
    assert_eq!(summary.fetched_bytes, (FILES * SIZE) as u64, "none twice");
    for i in 0..FILES {
        assert_eq!(
            std::fs::read(save.path().join(name(i))).unwrap(),
            content(i)
        );
    }
    assert_no_parts(save.path());
    wait_for_what(Duration::from_secs(10), "both batches logged", || {
        let log = host.access_log();
        log.contains(" files=40") && log.contains(" files=35")
    });
}

#[test]
fn a_corrupted_byte_in_a_batch_is_caught_and_nothing_unverified_takes_its_name() {
    let host = DtpHost::start(&["repo"], 0);
    small_tree(&host);
    // A byte of the fourth file's content.
    let proxy = FaultProxy::start(host.addr(), Fault::FlipAt(3 * (8 + SIZE) + 8 + 100));
    let save = tempfile::tempdir().unwrap();
    let url = format!("dtp://127.0.0.1:{}/repo", proxy.port());
    let (result, log) = sync(&url, save.path());
    assert!(proxy.fired());
    match result {
        Err(e @ ClientError::Verify { .. }) => assert!(e.to_string().starts_with("f03: "), "{e}"),
        other => panic!("{other:?}\n{}", log.join("\n")),
    }
    // Verified before the bad one: in place. The bad one and the rest: not.
    for i in 0..FILES {
        let path = save.path().join(name(i));
        if i < 3 {
            assert_eq!(std::fs::read(&path).unwrap(), content(i));
        } else {
            assert!(!path.exists(), "{}", path.display());
        }
    }
    assert_no_parts(save.path());
    assert!(!save.path().join("data.dsync").exists());
    // The next run, on a good network, completes.
    let (result, _) = sync(&host.url("repo"), save.path());
    assert_eq!(result.unwrap().fetched_files, (FILES - 3) as u64);
    for i in 0..FILES {
        assert_eq!(
            std::fs::read(save.path().join(name(i))).unwrap(),
            content(i)
        );
    }
}

#[test]
fn an_old_client_still_gets_every_file_by_get() {
    let host = DtpHost::start(&["repo"], 0);
    small_tree(&host);
    let (status, _) = get(&host, "/repo/data.dsync");
    assert_eq!(status, 200);
    for i in 0..FILES {
        assert_eq!(get(&host, &format!("/repo/{}", name(i))), (200, content(i)));
    }
    let log = host.access_log();
    assert!(!log.contains("POST"), "{log}");
}

#[test]
fn a_new_client_syncs_file_by_file_from_an_old_server() {
    let up = tempfile::tempdir().unwrap();
    for i in 0..5 {
        std::fs::write(up.path().join(name(i)), content(i)).unwrap();
    }
    let manifest = dsync::dtp::manifest::generate(up.path(), "r")
        .unwrap()
        .encode();
    // A 1.0 server; then one that says it serves batches but answers 405.
    for advertises in [false, true] {
        let (bytes, dir) = (manifest.clone(), up.path().to_path_buf());
        let server = http::start(move |req| {
            let name = req.path.trim_start_matches("/r/");
            match (req.method.as_str(), name) {
                ("GET", "data.dsync") if advertises => Response::status(200)
                    .with_header("dtp-batch", "files=256, bytes=8388608")
                    .with_body(bytes.clone()),
                ("GET", "data.dsync") => Response::status(200).with_body(bytes.clone()),
                ("GET", _) => match std::fs::read(dir.join(name)) {
                    Ok(data) => Response::status(200).with_body(data),
                    Err(_) => Response::status(404),
                },
                _ => Response::status(405),
            }
        });
        let save = tempfile::tempdir().unwrap();
        let (result, log) = sync(&format!("{}/r/", server.url()), save.path());
        let summary = result.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
        assert_eq!(summary.fetched_files, 5);
        for i in 0..5 {
            assert_eq!(
                std::fs::read(save.path().join(name(i))).unwrap(),
                content(i)
            );
        }
        let asked = server.requests();
        let posts = asked.iter().filter(|r| r.method == "POST").count();
        assert_eq!(posts, usize::from(advertises), "{asked:?}");
        let gets = asked.iter().filter(|r| r.method == "GET").count();
        assert_eq!(gets, 1 + 5, "the manifest, then each file");
        if advertises {
            assert!(
                log.iter().any(|l| l.contains("fetching file by file")),
                "{}",
                log.join("\n")
            );
        }
    }
}

fn assert_no_parts(save: &Path) {
    let parts: Vec<String> = std::fs::read_dir(save)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dsync-part"))
        .collect();
    assert!(parts.is_empty(), "{parts:?}");
}

#[test]
fn a_batch_keeps_to_the_per_address_bandwidth_limit() {
    // 64 KiB/s for 256 KiB: at least 2 s however the bytes are grouped.
    let host = DtpHost::start(&["repo"], 64);
    let root = host.root("repo");
    let data: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
    for i in 0..4 {
        std::fs::write(root.join(name(i)), &data).unwrap();
    }
    let began = std::time::Instant::now();
    let (status, body) = post(&host, "/repo/data.dsync", b"f00\nf01\nf02\nf03\n");
    let took = began.elapsed();
    assert_eq!(status, 200);
    assert_eq!(unframe(&body), vec![data.clone(); 4]);
    assert!(took >= Duration::from_secs(2), "not throttled: {took:?}");
}
