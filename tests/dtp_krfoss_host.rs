//! The DTP host as KRFOSS's DTP guide ("DTP 호스트 되기") runs it, on the
//! habits its users bring (issue 20, items 5 and 6): a `list.conf` naming
//! folders not synced yet, a motd kept in root's home, a reload by root of a
//! service that runs as `nobody`. Through the binary (`-service`, `-reload`,
//! `-test`), the home behind a folder only root may enter, as `/root/dxync`.

mod support;

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use support::dtp_host::{connect_from, read_all};
use support::site::assert_success;
use support::{free_port, is_root, wait_for_what};

const WAIT: Duration = Duration::from_secs(30);

/// The guide's list.conf, as written ("예를 들자면 다음과 같이 작성할 수 있습니다").
const GUIDE_LIST: &str = "/kali\n/kali-images\n/ubuntu\n";
/// The guide's motd.conf places the motd in the home's dtp folder
/// (`경로=/rokfoss-mirror/dxync/dtp/welcome.motd`); `{HOME}` is the home.
const GUIDE_MOTD: &str = "경로={HOME}/dtp/welcome.motd\n";

/// A host: the home behind `private` (0700, as /root), the mirrors in
/// `public` (readable by everyone, as /mirrors is).
struct Host {
    private: tempfile::TempDir,
    public: tempfile::TempDir,
    port: u16,
}

impl Host {
    /// A home with xync.conf (webroot=, a free port) and `-service`'s files.
    fn new() -> Host {
        let private = tempfile::tempdir().unwrap();
        let public = tempfile::tempdir().unwrap();
        fs::set_permissions(private.path(), fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(public.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let host = Host {
            private,
            public,
            port: free_port(),
        };
        fs::create_dir_all(host.home().join("dtp")).unwrap();
        fs::create_dir_all(host.mirrors()).unwrap();
        fs::write(
            host.home().join("xync.conf"),
            format!(
                "webroot={}\ndtp-listen=127.0.0.1:{}\n",
                host.mirrors().display(),
                host.port
            ),
        )
        .unwrap();
        host
    }

    fn home(&self) -> PathBuf {
        self.private.path().join("dxync")
    }

    fn mirrors(&self) -> PathBuf {
        self.public.path().join("mirrors")
    }

    fn write(&self, rel: &str, text: &str) {
        let text = text.replace("{HOME}", &self.home().display().to_string());
        fs::write(self.home().join(rel), text).unwrap();
    }

    fn dsync(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_dsync"))
            .arg("-home")
            .arg(self.home())
            .args(args)
            .env_remove("DSYNC_HOME")
            .output()
            .unwrap()
    }

    fn service_log(&self) -> String {
        fs::read_to_string(self.home().join("logs/dtp-service.log")).unwrap_or_default()
    }

    fn access_log_path(&self) -> PathBuf {
        self.home().join("logs/dtp-access.log")
    }

    /// `dsync -reload`, succeeding, then wait for the service to say it
    /// reloaded; returns what -reload printed.
    fn reload(&self) -> String {
        let before = self.service_log().matches("reloaded: ").count();
        let out = self.dsync(&["-reload"]);
        assert_success(&out);
        wait_for_what(WAIT, "the service to reload", || {
            self.service_log().matches("reloaded: ").count() > before
        });
        text(&out)
    }

    /// The answer to `GET target`, head and body.
    fn get(&self, target: &str) -> String {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut stream = connect_from("127.0.0.1", addr);
        let _ = stream.write_all(
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        String::from_utf8_lossy(&read_all(stream).0).into_owned()
    }

    /// The body of `GET /`: the motd, then the repositories.
    fn index(&self) -> String {
        let answer = self.get("/");
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
        answer.split_once("\r\n\r\n").unwrap().1.to_string()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Ok(text) = fs::read_to_string(self.home().join("dtp/service.pid"))
            && let Some(pid) = text.lines().next().and_then(|l| l.parse::<i32>().ok())
        {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
}

/// Standard output and error of a command, together.
fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn skipped_unless_root(test: &str) -> bool {
    if !is_root() {
        eprintln!("SKIPPED {test}: the tests do not run as root");
    }
    !is_root()
}

/// Item 5: the guide's list before kali-images and ubuntu were ever synced.
/// The service starts and serves kali; the two others are warnings on the
/// terminal of `-test`, `-service` and `-reload` and in the service log; a
/// `-reload` once they exist serves them.
#[test]
fn a_list_naming_folders_not_synced_yet_serves_the_others_and_a_reload_adds_them() {
    let host = Host::new();
    fs::create_dir_all(host.mirrors().join("kali")).unwrap();
    host.write("dtp/list.conf", GUIDE_LIST);
    let not_yet = |name: &str| {
        format!(
            "{} does not exist (yet)",
            host.mirrors().join(name).display()
        )
    };

    let out = host.dsync(&["-test"]);
    let said = text(&out);
    for name in ["kali-images", "ubuntu"] {
        assert!(said.contains(&not_yet(name)), "-test: {said}");
    }
    assert!(!said.contains(&not_yet("kali")), "-test: {said}");

    let out = host.dsync(&["-service"]);
    assert_success(&out);
    let said = text(&out);
    let log = host.service_log();
    for name in ["kali-images", "ubuntu"] {
        assert!(said.contains(&not_yet(name)), "-service: {said}");
        assert!(log.contains(&not_yet(name)), "service log: {log}");
    }
    assert!(log.contains("serving kali ("), "{log}");
    assert_eq!(host.index(), "kali\n");
    assert!(host.get("/ubuntu/data.dsync").starts_with("HTTP/1.1 404 "));

    // Still missing: -reload says so and the service keeps serving kali.
    let said = host.reload();
    assert!(said.contains(&not_yet("ubuntu")), "-reload: {said}");

    // Synced at last: the next -reload serves them, without a word.
    for name in ["kali-images", "ubuntu"] {
        fs::create_dir_all(host.mirrors().join(name)).unwrap();
    }
    let said = host.reload();
    assert!(!said.contains("does not exist"), "-reload: {said}");
    let log = host.service_log();
    assert!(
        log.contains("reloaded: serving kali, kali-images, ubuntu ("),
        "{log}"
    );
    assert_eq!(host.index(), "kali\nkali-images\nubuntu\n");
    assert_success(&host.dsync(&["-stop-service"]));
}

/// Item 6: the motd where the guide puts it, in root's home (here 0600 as
/// well), is shown by a service running as nobody, at start and after a
/// `-reload` that changed it; nothing about it, nor about the access log,
/// is logged as a problem.
#[test]
fn a_motd_only_root_may_read_is_shown_by_a_service_running_as_nobody() {
    if skipped_unless_root("a_motd_only_root_may_read_is_shown_by_a_service_running_as_nobody") {
        return;
    }
    let host = Host::new();
    fs::create_dir_all(host.mirrors().join("kali")).unwrap();
    host.write("dtp/list.conf", "/kali\n");
    host.write("dtp/motd.conf", GUIDE_MOTD);
    let motd = host.home().join("dtp/welcome.motd");
    fs::write(&motd, "DTP 호스트입니다\n").unwrap();
    fs::set_permissions(&motd, fs::Permissions::from_mode(0o600)).unwrap();

    let out = host.dsync(&["-service"]);
    assert_success(&out);
    assert!(!text(&out).contains("warning"), "-service: {}", text(&out));
    assert!(host.service_log().contains("running as nobody"));
    assert_eq!(host.index(), "DTP 호스트입니다\n\nkali\n");

    fs::write(&motd, "새 환영 메시지\n").unwrap();
    let said = host.reload();
    assert!(!said.contains("warning"), "-reload: {said}");
    assert_eq!(host.index(), "새 환영 메시지\n\nkali\n");

    let log = host.service_log();
    assert!(!log.contains("motd"), "{log}");
    assert!(!log.contains("cannot reopen the access log"), "{log}");
    assert_success(&host.dsync(&["-stop-service"]));
}

/// Item 6: logrotate moved the access log away and created a new one for
/// the service's account (`create 0640 nobody adm`); the service, running
/// as nobody with its home closed to it, writes on in the new one after a
/// reload, and says nothing of it.
#[test]
fn a_rotated_access_log_is_reopened_by_a_service_running_as_nobody() {
    if skipped_unless_root("a_rotated_access_log_is_reopened_by_a_service_running_as_nobody") {
        return;
    }
    let host = Host::new();
    fs::create_dir_all(host.mirrors().join("kali")).unwrap();
    host.write("dtp/list.conf", "/kali\n");
    assert_success(&host.dsync(&["-service"]));
    let log = host.access_log_path();
    host.get("/kali/one");
    wait_for_what(WAIT, "the first request in the access log", || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("/kali/one")
    });

    let rotated = log.with_extension("log.1");
    fs::rename(&log, &rotated).unwrap();
    fs::write(&log, "").unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    std::os::unix::fs::chown(&log, Some(nobody.uid.as_raw()), None).unwrap();
    fs::set_permissions(&log, fs::Permissions::from_mode(0o640)).unwrap();
    host.reload();

    host.get("/kali/two");
    wait_for_what(
        WAIT,
        "the request after rotation in the new access log",
        || {
            fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("/kali/two")
        },
    );
    let old = fs::read_to_string(&rotated).unwrap();
    assert!(
        old.contains("/kali/one") && !old.contains("/kali/two"),
        "{old}"
    );
    let service_log = host.service_log();
    assert!(
        !service_log.contains("cannot reopen the access log"),
        "{service_log}"
    );
    assert_success(&host.dsync(&["-stop-service"]));
}

/// Item 6: configuration the service's account cannot read is said on the
/// terminal, not only in the service log: by `-service` (the service tried
/// as nobody) and by `-reload` (which names the file and the fix).
#[test]
fn configuration_the_service_cannot_read_is_said_on_the_terminal() {
    if skipped_unless_root("configuration_the_service_cannot_read_is_said_on_the_terminal") {
        return;
    }
    let host = Host::new();
    fs::create_dir_all(host.mirrors().join("kali")).unwrap();
    host.write("dtp/list.conf", "/kali\n");
    let list = host.home().join("dtp/list.conf");
    fs::set_permissions(&list, fs::Permissions::from_mode(0o600)).unwrap();

    let out = host.dsync(&["-service"]);
    assert_success(&out);
    let said = text(&out);
    assert!(
        said.contains("warning: a reload (-reload, SIGHUP) would fail: read as nobody"),
        "-service: {said}"
    );
    assert!(said.contains("list.conf"), "-service: {said}");

    let out = host.dsync(&["-reload"]);
    assert_success(&out);
    let said = text(&out);
    assert!(
        said.contains(&format!(
            "{} (mode 0600) is one the service cannot read",
            list.display()
        )) && said.contains(&format!("chmod o+r {}", list.display())),
        "-reload: {said}"
    );
    wait_for_what(WAIT, "the failed reload in the service log", || {
        host.service_log().contains("reload failed")
    });
    // Readable again: no warning, and the reload succeeds.
    fs::set_permissions(&list, fs::Permissions::from_mode(0o644)).unwrap();
    let said = host.reload();
    assert!(!said.contains("warning"), "-reload: {said}");
    assert_success(&host.dsync(&["-stop-service"]));
}
