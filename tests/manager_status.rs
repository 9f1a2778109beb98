//! Status files, webhooks and mail of the dsync layer, against real sockets on
//! 127.0.0.1 and a `sendmail` stand-in.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use dsync::manager::notify::{self, Event, WEBHOOK_TIMEOUT};
use dsync::manager::status::{JobInfo, State, StatusStore, read_jobs};
use serde_json::{Value, json};

/// One HTTP request as the test server received it.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A one-shot HTTP/1.1 server on 127.0.0.1: answers the first request with `status`
/// and `body`, then hands the request over. Returns the base URL (`http://IP:PORT`).
fn serve_once(status: u16, body: &str) -> (String, Receiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let body = body.to_string();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let mut words = line.split_whitespace();
        let method = words.next().unwrap_or_default().to_string();
        let path = words.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut request_body = vec![0; length];
        reader.read_exact(&mut request_body).unwrap();
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status} Test\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        stream.flush().unwrap();
        let _ = tx.send(Request {
            method,
            path,
            headers,
            body: request_body,
        });
    });
    (base, rx)
}

fn received(rx: &Receiver<Request>) -> Request {
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the test server got no request")
}

fn event(ok: bool) -> Event {
    Event {
        repo: "kali".into(),
        ok,
        message: if ok {
            "synced in 42 s".into()
        } else {
            "rsync exit code 10: error in socket I/O".into()
        },
        host: "mirror1".into(),
        started: 1_700_000_000,
        ended: 1_700_000_042,
        exit_code: if ok { 0 } else { 10 },
    }
}

#[test]
fn generic_webhook_is_posted_as_json() {
    let (base, rx) = serve_once(200, "ok");
    let url = format!("{base}/hooks/dsync");
    notify::webhook(&url, &event(false)).unwrap();
    let request = received(&rx);
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks/dsync");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({
            "repo": "kali",
            "ok": false,
            "status": "failed",
            "message": "rsync exit code 10: error in socket I/O",
            "host": "mirror1",
            "started": 1_700_000_000,
            "ended": 1_700_000_042,
            "exit_code": 10,
        })
    );
}

#[test]
fn any_2xx_is_success() {
    let (base, rx) = serve_once(204, "");
    notify::webhook(&format!("{base}/x"), &event(true)).unwrap();
    assert_eq!(received(&rx).json()["status"], "success");
}

#[test]
fn slack_and_discord_shapes() {
    let slack = notify::payload(
        "https://hooks.slack.com/services/T0/B0/SECRET",
        &event(true),
    );
    assert_eq!(slack, json!({"text": "✅ kali synced on mirror1 (42 s)"}));
    let discord = notify::payload("https://discord.com/api/webhooks/1/SECRET", &event(false));
    assert_eq!(
        discord["content"],
        "❌ kali failed on mirror1: rsync exit code 10: error in socket I/O"
    );
    let legacy = notify::payload("https://discordapp.com/api/webhooks/1/SECRET", &event(true));
    assert_eq!(legacy["content"], "✅ kali synced on mirror1 (42 s)");
}

#[test]
fn server_error_names_the_status_and_body() {
    let long = format!("boom {}", "x".repeat(1000));
    let (base, rx) = serve_once(500, &long);
    let url = format!("{base}/hook/SECRET-TOKEN");
    let err = notify::webhook(&url, &event(false)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("500"), "{msg}");
    assert!(msg.contains("boom xxx"), "{msg}");
    // Only the first 200 bytes of the body, and never the secret path.
    assert!(!msg.contains(&"x".repeat(200)), "{msg}");
    assert!(!msg.contains("SECRET-TOKEN"), "{msg}");
    assert!(msg.contains(&base), "{msg}");
    received(&rx);
}

#[test]
fn closed_port_fails_within_the_timeout() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let began = Instant::now();
    let err = notify::webhook(&format!("http://127.0.0.1:{port}/hook"), &event(false));
    assert!(err.is_err());
    assert!(
        began.elapsed() <= WEBHOOK_TIMEOUT + Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
}

/// Mail goes through the `DSYNC_SENDMAIL` stand-in. The environment of this (multi
/// threaded) test process is left alone: the test runs itself again as a child
/// process with the variable set, and the child sends the mail.
#[test]
fn mail_through_sendmail_stand_in() {
    const NAME: &str = "mail_through_sendmail_stand_in";
    if let Some(dir) = std::env::var_os("DSYNC_TEST_MAIL_DIR") {
        let log = Path::new(&dir).join("kali.log");
        notify::mail("ops@example.org", None, &event(false), Some(&log)).unwrap();
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir(root.join("mail")).unwrap();
    let script = root.join("sendmail");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" > {r}/mail/args\ncat > {r}/mail/msg\n",
            r = root.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(root.join("kali.log"), "rsync: connection reset by peer\n").unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env("DSYNC_TEST_MAIL_DIR", root)
        .env("DSYNC_SENDMAIL", &script)
        .env("LOGNAME", "nobody")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let args = std::fs::read_to_string(root.join("mail/args")).unwrap();
    assert_eq!(args.trim(), "-i -- ops@example.org");
    let msg = std::fs::read_to_string(root.join("mail/msg")).unwrap();
    let subject = msg
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_else(|| panic!("no subject in {msg}"));
    assert_eq!(subject, "[dsync@mirror1] kali: FAILED");
    assert!(msg.contains("To: ops@example.org"), "{msg}");
    assert!(msg.contains("filename=\"kali.log\""), "{msg}");
    assert!(msg.contains("rsync: connection reset by peer"), "{msg}");
    assert!(msg.contains("Exit code: 10"), "{msg}");
}

#[test]
fn status_for_a_web_page() {
    let tmp = tempfile::tempdir().unwrap();
    let store = StatusStore {
        dir: Some(tmp.path().join("status")),
        json: tmp.path().join("status/dsync-jobs.json"),
    };
    let started = 1_700_000_000;
    store
        .set(
            "kali",
            State::Syncing,
            &JobInfo {
                upstream: "rsync://kali.download/kali/".into(),
                last_started: Some(started),
                next_schedule: Some(started + 6 * 3600),
                ..JobInfo::default()
            },
        )
        .unwrap();
    let digit = |repo: &str| {
        std::fs::read_to_string(tmp.path().join("status/dsync-status").join(repo)).unwrap()
    };
    assert_eq!(digit("kali"), "2");
    store
        .set(
            "kali",
            State::Success,
            &JobInfo {
                size: Some(123_456_789_012),
                last_ended: Some(started + 42),
                last_update: Some(started + 42),
                ..JobInfo::default()
            },
        )
        .unwrap();
    store
        .set(
            "debian",
            State::Failed,
            &JobInfo {
                upstream: "rsync://ftp.debian.org/debian/".into(),
                last_started: Some(started),
                last_ended: Some(started + 7),
                ..JobInfo::default()
            },
        )
        .unwrap();
    assert_eq!(digit("kali"), "1");
    assert_eq!(digit("debian"), "0");
    let jobs = read_jobs(&store.json).unwrap();
    println!("{}", serde_json::to_string_pretty(&jobs).unwrap());
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0]["name"], "debian");
    assert_eq!(jobs[0]["status"], "failed");
    assert_eq!(jobs[0]["last_update"], "0001-01-01 00:00:00 +0000");
    assert_eq!(jobs[0]["last_update_ts"], -62_135_596_800_i64);
    assert_eq!(jobs[0]["size"], "unknown");
    let kali = &jobs[1];
    assert_eq!(kali["name"], "kali");
    assert_eq!(kali["is_master"], true);
    assert_eq!(kali["status"], "success");
    assert_eq!(kali["upstream"], "rsync://kali.download/kali/");
    assert_eq!(kali["size"], "123.46G");
    assert_eq!(kali["last_started_ts"], started);
    assert_eq!(kali["last_ended_ts"], started + 42);
    assert_eq!(kali["next_schedule_ts"], started + 6 * 3600);
    let shown = kali["last_update"].as_str().unwrap();
    let parsed = chrono::DateTime::parse_from_str(shown, "%Y-%m-%d %H:%M:%S %z").unwrap();
    assert_eq!(parsed.timestamp(), started + 42);
}
