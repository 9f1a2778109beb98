//! KRFOSS's DTP host guide ("DTP 호스트 되기"), followed as its users follow
//! it: its examples pasted below as written (only `/mirrors` and the motd's
//! folder become temporary folders, and the port a free one), its commands
//! run through the binary (`-service`, `-reload`, `-gendsync`,
//! `-stop-service`), and a downstream syncing from the host. As root, the
//! home sits behind a folder only root may enter, as `/root/dxync` does, and
//! the service runs as `nobody` without `dtp-user=`.
//!
//! Beside it: a DTP host's tree served by an rsync daemon too, which only
//! works if nothing of ours but `data.dsync` is in it.

mod support;

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use support::archive::{self, small_spec};
use support::dtp_host::{connect_from, read_all};
use support::rsyncd::RsyncDaemon;
use support::site::assert_success;
use support::{free_port, mirrors, wait_for_what};

const WAIT: Duration = Duration::from_secs(30);

// The guide's examples, verbatim.

/// "list.conf ... 예를 들자면 다음과 같이 작성할 수 있습니다."
const GUIDE_LIST: &str = "/kali\n/kali-images\n/ubuntu\n";
/// "firewall.conf": only these may connect; others get no answer at all.
const GUIDE_FIREWALL: &str = "allow=123.123.123.123, 222.222.222.222, 111.111.111.11\n";
/// The same `a, b, c` form with loopback addresses, so the test can connect.
const LOOPBACK_FIREWALL: &str = "allow=127.0.0.1, 127.0.0.5, 127.0.0.6\n";
/// "motd.conf": `경로=/rokfoss-mirror/dxync/dtp/welcome.motd`, its folder
/// replaced (`{MOTD_DIR}`).
const GUIDE_MOTD: &str = "경로={MOTD_DIR}/welcome.motd\n";
/// "그럼 최종적으로 다음과 같이 구성됩니다." (`/mirrors` replaced: `{MIRRORS}`).
const GUIDE_ROCKY: &str = "repo=rocky\nsave={MIRRORS}/rocky\ndsync=true\n";
/// "webroot=/mirrors" (`/mirrors` replaced).
const GUIDE_WEBROOT: &str = "webroot={MIRRORS}\n";

use support::is_root;

/// What an older dsync left in the tree: its hash cache, 0600.
fn plant_old_cache(tree: &Path) {
    let old = tree.join(".dsync-cache");
    fs::write(&old, b"an older dsync's hash cache").unwrap();
    fs::set_permissions(&old, fs::Permissions::from_mode(0o600)).unwrap();
}

/// Names in `tree` (at any depth) that are ours rather than the archive's.
fn ours_in(tree: &Path) -> Vec<String> {
    archive::tree_snapshot(tree)
        .into_keys()
        .filter(|p| {
            let name = p.rsplit('/').next().unwrap_or(p);
            name.starts_with(".dsync") || name.starts_with(".data.dsync") || name == "data.dsync"
        })
        .collect()
}

/// A host as the guide builds it: `home` behind `private` (0700, as /root),
/// the mirrors and the motd in `public`.
struct GuideHost {
    private: tempfile::TempDir,
    public: tempfile::TempDir,
    port: u16,
}

impl GuideHost {
    fn new() -> GuideHost {
        let private = tempfile::tempdir().unwrap();
        let public = tempfile::tempdir().unwrap();
        // Served folders and the motd: readable by everyone, as /mirrors is.
        fs::set_permissions(public.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let host = GuideHost {
            private,
            public,
            port: free_port(),
        };
        for repo in ["kali", "kali-images", "ubuntu", "rocky"] {
            fs::create_dir_all(host.mirrors().join(repo)).unwrap();
        }
        fs::write(
            host.public.path().join("welcome.motd"),
            "DTP 호스트입니다\n",
        )
        .unwrap();
        fs::create_dir_all(host.home().join("repos")).unwrap();
        host
    }

    fn home(&self) -> PathBuf {
        self.private.path().join("dxync")
    }

    fn mirrors(&self) -> PathBuf {
        self.public.path().join("mirrors")
    }

    fn rocky(&self) -> PathBuf {
        self.mirrors().join("rocky")
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A guide example with its replaced folders filled in.
    fn fill(&self, text: &str) -> String {
        text.replace("{MIRRORS}", &self.mirrors().display().to_string())
            .replace("{MOTD_DIR}", &self.public.path().display().to_string())
    }

    fn write(&self, rel: &str, text: &str) {
        fs::write(self.home().join(rel), self.fill(text)).unwrap();
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

    fn access_log(&self) -> String {
        fs::read_to_string(self.home().join("logs/dtp-access.log")).unwrap_or_default()
    }

    fn service_log(&self) -> String {
        fs::read_to_string(self.home().join("logs/dtp-service.log")).unwrap_or_default()
    }

    fn pid(&self) -> i32 {
        let text = fs::read_to_string(self.home().join("dtp/service.pid")).unwrap();
        text.lines().next().unwrap().parse().unwrap()
    }

    /// `dsync -reload`, then wait for the service to say it reloaded.
    fn reload(&self) {
        let before = self.service_log().matches("reloaded: ").count();
        assert_success(&self.dsync(&["-reload"]));
        wait_for_what(WAIT, "the service to reload", || {
            self.service_log().matches("reloaded: ").count() > before
        });
    }

    fn get(&self, source: &str, target: &str) -> Vec<u8> {
        let mut stream = connect_from(source, self.addr());
        let _ = stream.write_all(
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        read_all(stream).0
    }
}

impl Drop for GuideHost {
    fn drop(&mut self) {
        if let Ok(text) = fs::read_to_string(self.home().join("dtp/service.pid"))
            && let Some(pid) = text.lines().next().and_then(|l| l.parse::<i32>().ok())
        {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

#[test]
fn the_dtp_host_guide_works_as_written() {
    let host = GuideHost::new();
    let spec = small_spec();
    archive::write_revision(&host.rocky(), &spec, 1).unwrap();
    plant_old_cache(&host.rocky());

    // "xync.conf 수정하기": webroot=, and (not in the guide) a free port.
    fs::write(
        host.home().join("xync.conf"),
        format!(
            "{}dtp-listen=127.0.0.1:{}\n",
            host.fill(GUIDE_WEBROOT),
            host.port
        ),
    )
    .unwrap();

    // "DTP 서비스를 먼저 실행해보기": -service makes ~/dxync/dtp.
    let out = host.dsync(&["-service"]);
    assert_success(&out);
    for file in ["list.conf", "firewall.conf", "motd.conf"] {
        assert!(host.home().join("dtp").join(file).is_file(), "{file}");
    }

    // The three files as the guide writes them, then -reload.
    host.write("dtp/list.conf", &format!("{GUIDE_LIST}/rocky\n"));
    host.write("dtp/firewall.conf", GUIDE_FIREWALL);
    host.write("dtp/motd.conf", GUIDE_MOTD);
    host.reload();
    let log = host.service_log();
    assert!(
        log.contains("serving kali, kali-images, ubuntu, rocky (3 allowed address entries"),
        "{log}"
    );
    // Not listed: no answer at all, and the access log says so.
    assert!(host.get("127.0.0.1", "/").is_empty());
    wait_for_what(WAIT, "the refusal in the access log", || {
        host.access_log().contains(" 127.0.0.1 - \"-\" 444 0 ")
    });

    // "data.dsync 파일 생성하기": rocky.conf, then -gendsync.
    host.write("repos/rocky.conf", GUIDE_ROCKY);
    let out = host.dsync(&["-gendsync"]);
    assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("rocky: "), "{stdout}");
    assert_eq!(ours_in(&host.rocky()), ["data.dsync"], "{stdout}");
    let mode = fs::metadata(host.rocky().join("data.dsync"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);

    // "확인하기": -stop-service, -service; the loopback allow list.
    assert_success(&host.dsync(&["-stop-service"]));
    host.write("dtp/firewall.conf", LOOPBACK_FIREWALL);
    let out = host.dsync(&["-service"]);
    assert_success(&out);
    if is_root() {
        let status = fs::read_to_string(format!("/proc/{}/status", host.pid())).unwrap();
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .unwrap()
            .split_whitespace()
            .map(|u| u.parse::<u32>().unwrap())
            .collect::<Vec<_>>();
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        assert_eq!(uid, [nobody.uid.as_raw(); 4]);
        assert!(
            host.service_log().contains("running as nobody"),
            "{}",
            host.service_log()
        );
    }
    let index = String::from_utf8(host.get("127.0.0.1", "/")).unwrap();
    assert!(index.starts_with("HTTP/1.1 200 "), "{index}");
    assert!(
        index.contains("DTP 호스트입니다\n") && index.contains("\nrocky\n"),
        "{index}"
    );
    assert!(host.get("127.0.0.2", "/rocky/data.dsync").is_empty());
    wait_for_what(WAIT, "127.0.0.2's refusal in the access log", || {
        host.access_log().contains(" 127.0.0.2 - \"-\" 444 0 ")
    });

    // A downstream: a dsync repository pulling rocky over DTP.
    let client = tempfile::tempdir().unwrap();
    let (home, save) = (client.path().join("dxync"), client.path().join("rocky"));
    fs::create_dir_all(home.join("repos")).unwrap();
    fs::create_dir_all(&save).unwrap();
    fs::write(
        home.join("repos/rocky.conf"),
        format!(
            "repo=rocky\nsave={}\ndsync-url=dtp://127.0.0.1:{}/rocky\n",
            save.display(),
            host.port
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dsync"))
        .arg("-home")
        .arg(&home)
        .args(["-sync", "rocky"])
        .env("DSYNC_SENDMAIL", "/bin/true")
        .output()
        .unwrap();
    let log = fs::read_to_string(home.join("logs/rocky.log")).unwrap_or_default();
    assert_eq!(out.status.code(), Some(0), "{log}");
    let diff = mirrors::differences(&host.rocky(), &save);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    assert!(
        host.access_log()
            .contains(" 127.0.0.1 GET \"/rocky/data.dsync\" 200 "),
        "{}",
        host.access_log()
    );

    assert_success(&host.dsync(&["-stop-service"]));
    assert!(TcpStream::connect(host.addr()).is_err());
}

#[test]
fn an_rsync_daemon_serves_a_dtp_hosts_tree_to_rsync_with_exit_0() {
    let host = GuideHost::new();
    archive::write_revision(&host.rocky(), &small_spec(), 1).unwrap();
    plant_old_cache(&host.rocky());
    host.write("repos/rocky.conf", GUIDE_ROCKY);
    // As rsyncd does by default when root: nobody, nogroup.
    let as_nobody: &[&str] = if is_root() {
        &["uid = nobody", "gid = nogroup"]
    } else {
        &[]
    };
    let daemon =
        RsyncDaemon::start_with_options("127.0.0.1", &[("rocky", &host.rocky())], as_nobody);
    let rsync = |dst: &Path| {
        Command::new("rsync")
            .args(["-a", "--delete", &daemon.url("rocky")])
            .arg(dst)
            .output()
            .unwrap()
    };
    let work = tempfile::tempdir().unwrap();
    if is_root() {
        // What the old cache did to every downstream: unreadable, exit 23.
        let out = rsync(&work.path().join("before"));
        assert_eq!(
            out.status.code(),
            Some(23),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let out = host.dsync(&["-gendsync"]);
    assert_success(&out);
    assert_eq!(ours_in(&host.rocky()), ["data.dsync"]);
    // The old cache was moved to the home, not lost.
    assert!(host.home().join("cache/rocky").is_file());
    // A second run reuses it and still writes nothing else into the tree.
    let out = host.dsync(&["-gendsync"]);
    assert_success(&out);
    assert_eq!(ours_in(&host.rocky()), ["data.dsync"]);

    let dst = work.path().join("after");
    let out = rsync(&dst);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.log()
    );
    assert_eq!(
        archive::tree_snapshot(&host.rocky()),
        archive::tree_snapshot(&dst)
    );
}
