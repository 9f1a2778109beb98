//! `ftpsync-cron`: sync only when the upstream trace's Archive serial changed.
//!
//! The upstream trace is served over HTTP on port 80 of 127.0.0.77 (ftpsync-cron
//! builds `http://RSYNC_HOST/RSYNC_PATH/project/trace/RSYNC_HOST`, no port), the
//! archive by a real rsync daemon. Port 80 needs root; without it the tests say
//! so and skip. Debian's own /usr/bin/ftpsync-cron runs beside ours on the same
//! situations, with `BINDIR` pointing both at a stand-in ftpsync that records
//! how it was called.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use support::archive::{self, ArchiveSpec};
use support::http::{self, HttpServer, Response};
use support::rsyncd::RsyncDaemon;

const HOST: &str = "127.0.0.77";
const REAL: &str = "/usr/bin/ftpsync-cron";

/// What the HTTP server answers for the upstream trace.
#[derive(Clone)]
enum Served {
    /// `project/trace/master` of the upstream tree, read at request time.
    Master(PathBuf),
    Status(u16),
    Text(String),
}

struct Upstream {
    dir: tempfile::TempDir,
    spec: ArchiveSpec,
    served: Arc<std::sync::Mutex<Served>>,
    http: HttpServer,
    rsyncd: RsyncDaemon,
}

impl Upstream {
    fn start() -> Option<Upstream> {
        let dir = tempfile::tempdir().unwrap();
        let spec = ArchiveSpec::default();
        let tree = dir.path().join("debian");
        archive::write_revision(&tree, &spec, 1).unwrap();
        let served = Arc::new(std::sync::Mutex::new(Served::Master(
            tree.join("project/trace/master"),
        )));
        let answer = Arc::clone(&served);
        let http = match http::start_on(&format!("{HOST}:80"), move |req| {
            if req.path != format!("/debian/project/trace/{HOST}") {
                return Response::status(404);
            }
            match &*answer.lock().unwrap() {
                Served::Master(path) => Response::text(200, std::fs::read_to_string(path).unwrap()),
                Served::Status(code) => Response::status(*code),
                Served::Text(text) => Response::text(200, text.clone()),
            }
        }) {
            Ok(http) => http,
            Err(e) => {
                eprintln!(
                    "SKIPPED ftpsync-cron tests: cannot listen on {HOST}:80 ({e}); they need root"
                );
                return None;
            }
        };
        let rsyncd = RsyncDaemon::start(HOST, &[("debian", &tree)]);
        Some(Upstream {
            dir,
            spec,
            served,
            http,
            rsyncd,
        })
    }

    fn tree(&self) -> PathBuf {
        self.dir.path().join("debian")
    }

    fn serve(&self, what: Served) {
        *self.served.lock().unwrap() = what;
    }

    fn trace_requests(&self) -> usize {
        self.http.requests().len()
    }
}

/// A mirror with its own HOME, config and (optionally) a stand-in ftpsync.
struct Mirror {
    dir: tempfile::TempDir,
}

impl Mirror {
    fn new(up: &Upstream, extra: &str) -> Mirror {
        let m = Mirror {
            dir: tempfile::tempdir().unwrap(),
        };
        let conf_dir = m.home().join(".config/ftpsync");
        std::fs::create_dir_all(&conf_dir).unwrap();
        std::fs::create_dir_all(m.to()).unwrap();
        let conf = format!(
            "MIRRORNAME=mirror.test\nTO={to}\nRSYNC_HOST={HOST}\nRSYNC_PATH=debian\n\
             RSYNC_EXTRA=\"--port={port}\"\nMAILTO=nobody\nLOGDIR={home}/log\nLOCKDIR={home}/lock\n{extra}\n",
            to = m.to().display(),
            port = up.rsyncd.port(),
            home = m.home().display(),
        );
        std::fs::write(conf_dir.join("ftpsync.conf"), &conf).unwrap();
        std::fs::write(conf_dir.join("ftpsync-foo.conf"), &conf).unwrap();
        m.sendmail("cat > /dev/null");
        m
    }

    /// The sendmail our binary uses (`DSYNC_SENDMAIL`), running `body`.
    fn sendmail(&self, body: &str) {
        let path = self.dir.path().join("sendmail");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn to(&self) -> PathBuf {
        self.dir.path().join("mirror")
    }

    fn trace(&self) -> Option<String> {
        std::fs::read_to_string(self.to().join("project/trace/mirror.test")).ok()
    }

    /// A stand-in ftpsync under BINDIR that appends its arguments to `calls`.
    fn stub_bindir(&self) -> PathBuf {
        let bin = self.dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let stub = bin.join("ftpsync");
        std::fs::write(
            &stub,
            format!(
                "#!/bin/sh\necho \"$*\" >> {}\n",
                self.calls_file().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        bin
    }

    fn calls_file(&self) -> PathBuf {
        self.dir.path().join("calls")
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.calls_file()).unwrap_or_default()
    }

    fn run(&self, program: &Path, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .env_clear()
            .env("HOME", self.home())
            .env("LOGNAME", "nobody")
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("DSYNC_SENDMAIL", self.dir.path().join("sendmail"))
            .output()
            .unwrap()
    }
}

/// Our binary under the name ftpsync-cron.
fn ours(dir: &Path) -> PathBuf {
    let link = dir.join("ftpsync-cron");
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_dsync"), &link).unwrap();
    }
    link
}

/// What a run printed, without the time stamp, host name and pid of log lines.
fn normalized(out: &Output) -> String {
    let re = regex::Regex::new(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ ftpsync-cron\[\d+\]: ").unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .map(|l| re.replace(l, "LOG: ").into_owned())
        // curl's and ureq's words for the same failure differ after this point.
        .map(|l| match l.find("/project/trace/127.0.0.77: ") {
            Some(i) => l[..i + "/project/trace/127.0.0.77:".len()].to_string(),
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn syncs_only_when_the_upstream_serial_changes() {
    let Some(up) = Upstream::start() else { return };
    let mirror = Mirror::new(&up, "");
    let cron = ours(mirror.dir.path());

    // No trace of ours yet: sync.
    let out = mirror.run(&cron, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", normalized(&out));
    let trace = mirror.trace().expect("a sync wrote our trace");
    let serial1 = archive::read_serial(&up.tree()).unwrap();
    assert!(
        trace.contains(&format!("Archive serial: {serial1}")),
        "{trace}"
    );
    assert!(trace.contains("Trigger: cron"), "{trace}");
    let transfers = |log: &str| log.matches("rsync on debian").count();
    let synced = transfers(&up.rsyncd.log());

    // Same serial upstream: nothing runs.
    let out = mirror.run(&cron, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        transfers(&up.rsyncd.log()),
        synced,
        "no rsync for an unchanged serial"
    );

    // The upstream moves on: sync again.
    archive::write_revision(&up.tree(), &up.spec, 2).unwrap();
    let serial2 = archive::read_serial(&up.tree()).unwrap();
    assert_ne!(serial1, serial2);
    let out = mirror.run(&cron, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", normalized(&out));
    assert!(
        mirror
            .trace()
            .unwrap()
            .contains(&format!("Archive serial: {serial2}"))
    );
    if support::apt::apt_available() {
        support::apt::check_consistent(&mirror.to(), &up.spec)
            .unwrap_or_else(|p| panic!("{}", p.join("\n")));
    }

    // While our own sync holds the lock, not even the trace is fetched.
    archive::write_revision(&up.tree(), &up.spec, 3).unwrap();
    let lock = mirror.to().join("Archive-Update-in-Progress-mirror.test");
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let asked = up.trace_requests();
    let out = mirror.run(&cron, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(up.trace_requests(), asked, "lock held: no fetch");
    assert!(
        mirror
            .trace()
            .unwrap()
            .contains(&format!("Archive serial: {serial2}"))
    );
}

#[test]
fn fetch_and_parse_failures_are_reported_and_mailed() {
    let Some(up) = Upstream::start() else { return };
    let mirror = Mirror::new(&up, "");
    let cron = ours(mirror.dir.path());
    let mail = mirror.dir.path().join("mail");
    mirror.sendmail(&format!("cat >> {}", mail.display()));

    up.serve(Served::Status(404));
    let out = mirror.run(&cron, &[]);
    assert_eq!(out.status.code(), Some(22), "curl's code for an HTTP error");
    let said = normalized(&out);
    assert!(
        said.contains(&format!(
            "LOG: Failed to retrieve http://{HOST}/debian/project/trace/{HOST}:"
        )),
        "{said}"
    );
    let mailed = std::fs::read_to_string(&mail).unwrap();
    assert!(mailed.contains("ERROR: Failed to retrieve"), "{mailed}");

    up.serve(Served::Text("Date: today\n".into()));
    let out = mirror.run(&cron, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        normalized(&out).contains("LOG: Failed to parse archive serial from http://"),
        "{}",
        normalized(&out)
    );
    assert!(mirror.trace().is_none(), "nothing synced");
}

/// A situation: its name, how the mirror is prepared, what the upstream
/// serves, and the arguments.
type Case<'a> = (&'a str, Box<dyn Fn(&Mirror)>, Served, Vec<&'a str>);

/// The same situations through Debian's ftpsync-cron and ours, both calling a
/// stand-in ftpsync: same exit code, same output, same calls.
#[test]
fn decides_as_debians_ftpsync_cron_does() {
    if !Path::new(REAL).exists() {
        eprintln!(
            "SKIPPED decides_as_debians_ftpsync_cron_does: {REAL} is not installed (apt-get install ftpsync)"
        );
        return;
    }
    let Some(up) = Upstream::start() else { return };
    let serial = archive::read_serial(&up.tree()).unwrap();
    let cases: Vec<Case> = vec![
        (
            "no trace of ours",
            Box::new(|_| {}),
            Served::Master(up.tree().join("project/trace/master")),
            vec![],
        ),
        (
            "archive argument",
            Box::new(|_| {}),
            Served::Master(up.tree().join("project/trace/master")),
            vec!["foo"],
        ),
        (
            "same serial",
            Box::new(move |m: &Mirror| write_trace(m, &serial)),
            Served::Master(up.tree().join("project/trace/master")),
            vec![],
        ),
        (
            "other serial",
            Box::new(|m: &Mirror| write_trace(m, "1999010101")),
            Served::Master(up.tree().join("project/trace/master")),
            vec![],
        ),
        (
            "live lock",
            Box::new(|m: &Mirror| {
                std::fs::write(
                    m.to().join("Archive-Update-in-Progress-mirror.test"),
                    format!("{}\n", std::process::id()),
                )
                .unwrap()
            }),
            Served::Master(up.tree().join("project/trace/master")),
            vec![],
        ),
        (
            "dead lock",
            Box::new(|m: &Mirror| {
                std::fs::write(
                    m.to().join("Archive-Update-in-Progress-mirror.test"),
                    "999999999\n",
                )
                .unwrap()
            }),
            Served::Master(up.tree().join("project/trace/master")),
            vec![],
        ),
        ("http 404", Box::new(|_| {}), Served::Status(404), vec![]),
        (
            "no serial upstream",
            Box::new(|_| {}),
            Served::Text("Date: x\n".into()),
            vec![],
        ),
        (
            "missing config",
            Box::new(|_| {}),
            Served::Status(500),
            vec!["nosuch"],
        ),
    ];
    for (name, prepare, served, args) in cases {
        up.serve(served);
        let mut results = Vec::new();
        for program in [PathBuf::from(REAL), PathBuf::new()] {
            let mirror = Mirror::new(&up, "");
            let bindir = mirror.stub_bindir();
            let conf = mirror.home().join(".config/ftpsync/ftpsync.conf");
            let text =
                std::fs::read_to_string(&conf).unwrap() + &format!("BINDIR={}\n", bindir.display());
            std::fs::write(&conf, &text).unwrap();
            std::fs::write(
                mirror.home().join(".config/ftpsync/ftpsync-foo.conf"),
                &text,
            )
            .unwrap();
            prepare(&mirror);
            let program = if program.as_os_str().is_empty() {
                ours(mirror.dir.path())
            } else {
                program
            };
            let out = mirror.run(&program, &args);
            results.push((
                out.status.code(),
                normalized(&out).replace(REAL, "ftpsync-cron"),
                mirror.calls(),
            ));
        }
        assert_eq!(
            results[1], results[0],
            "{name}: ours (left) differs from Debian's (right)"
        );
    }
}

fn write_trace(mirror: &Mirror, serial: &str) {
    let dir = mirror.to().join("project/trace");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("mirror.test"),
        format!("Mon Nov 23 10:00:00 UTC 2026\nArchive serial: {serial}\n"),
    )
    .unwrap();
}
