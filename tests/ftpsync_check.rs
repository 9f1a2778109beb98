//! `dsync -test` on a machine that runs Debian's ftpsync (issue 14): every
//! ftpsync setup is read as `dsync ftpsync` reads it, refused lines are named
//! by file:line:column, the report's stage command lines are the ones a sync
//! then runs, and the run-time failures (upstream, TO, hooks) come out before
//! the switch. Each test has its own HOME, dsync home, `/etc/ftpsync`
//! (`DSYNC_ETC_FTPSYNC`) and crontab (`DSYNC_CRONTAB`).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::archive::{self, ArchiveSpec};
use support::rsyncd::RsyncDaemon;

struct Site {
    dir: tempfile::TempDir,
    daemon: Option<RsyncDaemon>,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["home/.config/ftpsync", "etc-ftpsync", "mirror", "up/debian"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("crontab"), "").unwrap();
        write_script(&root.join("sendmail"), "#!/bin/sh\ncat >/dev/null\n");
        // Logs every rsync call: one argument a line, then a separator.
        let wrapper = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" --- >> {}/argv\nexec rsync \"$@\"\n",
            root.display()
        );
        write_script(&root.join("rsync-wrapper"), &wrapper);
        write_script(&root.join("hook1"), "#!/bin/sh\nexit 0\n");
        Site { dir, daemon: None }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Serve a generated archive (with a master trace) as module `debian`.
    fn serve(&mut self) -> u16 {
        let up = self.root().join("up/debian");
        archive::write_revision(&up, &ArchiveSpec::default(), 1).unwrap();
        std::fs::create_dir_all(up.join("project/trace")).unwrap();
        std::fs::write(
            up.join("project/trace/master"),
            "Thu Dec  3 12:00:00 UTC 2026\nDate: Thu, 03 Dec 2026 12:00:00 +0000\nArchive serial: 2026120301\n",
        )
        .unwrap();
        let daemon = RsyncDaemon::start("127.0.0.1", &[("debian", up.as_path())]);
        let port = daemon.port();
        self.daemon = Some(daemon);
        port
    }

    /// `~/.config/ftpsync/FILE` with the usual lines, then `extra`.
    fn conf(&self, file: &str, port: u16, extra: &str) -> PathBuf {
        let path = self.root().join("home/.config/ftpsync").join(file);
        let text = format!(
            "MIRRORNAME=mirror.test\nTO={r}/mirror/\nRSYNC_HOST=127.0.0.1\nRSYNC_EXTRA=\"--port={port}\"\n\
             RSYNC={r}/rsync-wrapper\nLOGDIR={r}/log\nMAILTO=ops@example.org\nHOOK1={r}/hook1\n{extra}\n",
            r = self.root().display()
        )
        .replace("{ROOT}", &self.root().display().to_string());
        std::fs::write(&path, text).unwrap();
        path
    }

    fn dsync(&self, args: &[&str]) -> Output {
        let root = self.root();
        Command::new(env!("CARGO_BIN_EXE_dsync"))
            .args(args)
            .env("HOME", root.join("home"))
            .env("DSYNC_HOME", root.join("dxync"))
            .env("DSYNC_ETC_FTPSYNC", root.join("etc-ftpsync"))
            .env("DSYNC_CRONTAB", root.join("crontab"))
            .env("DSYNC_SENDMAIL", root.join("sendmail"))
            .env("LOGNAME", "mirror")
            .env_remove("BASEDIR")
            .env_remove("SSH_ORIGINAL_COMMAND")
            .output()
            .unwrap()
    }

    /// The rsync calls the wrapper saw that synced (not `--version`, not probes).
    /// The rsync runs that transfer: not `--version`, `-test`'s `--list-only`,
    /// nor the shrink guard's local count (a dry run ending in
    /// `--log-file-format=`, which reads only the mirror).
    fn synced_argvs(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.root().join("argv")).unwrap_or_default();
        let wrapper = self.root().join("rsync-wrapper").display().to_string();
        text.split("---\n")
            .map(|run| run.lines().map(str::to_string).collect::<Vec<_>>())
            .filter(|run| !run.is_empty())
            .filter(|run| {
                !run.iter()
                    .any(|a| a == "--version" || a == "--list-only" || a == "--log-file-format=")
            })
            .map(|run| std::iter::once(wrapper.clone()).chain(run).collect())
            .collect()
    }
}

fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The report row `label` of the first archive, as words.
fn row_words(report: &str, label: &str) -> Vec<String> {
    let prefix = format!("  {label:<10} ");
    let line = report
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no row {label:?} in:\n{report}"));
    shell_words::split(line).unwrap()
}

#[test]
fn a_line_dsync_cannot_evaluate_is_refused_with_file_line_and_column() {
    let site = Site::new();
    let conf = site.conf(
        "ftpsync.conf",
        1,
        "if [ -e /etc/debian_version ]; then\n  RSYNC_PATH=debian\nfi",
    );
    let line = 9; // after the eight usual lines
    for args in [
        &["-test", "-offline"][..],
        &["ftpsync", "-test", "-offline"],
    ] {
        let out = site.dsync(args);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(78), "{args:?}:\n{text}");
        let expected = format!(
            "{}:{line}:1: error: unsupported shell construct 'if'",
            conf.display()
        );
        assert!(
            text.contains(&expected),
            "{args:?}: want {expected}\n{text}"
        );
        assert!(text.contains("fix: rewrite or delete this line"), "{text}");
    }
    // Exactly what the run says when it refuses the file.
    let run = site.dsync(&["ftpsync", "sync:all"]);
    assert_eq!(run.status.code(), Some(78));
    let said = String::from_utf8_lossy(&run.stderr);
    assert!(
        said.contains(&format!(
            "{}:{line}:1: unsupported shell construct 'if'",
            conf.display()
        )),
        "{said}"
    );
    // ftpsync's own unknown options keep its usage exit code.
    assert_eq!(site.dsync(&["ftpsync", "-x"]).status.code(), Some(64));
}

#[test]
fn a_good_config_passes_online_and_its_stages_are_what_the_sync_runs() {
    let mut site = Site::new();
    let port = site.serve();
    site.conf("ftpsync.conf", port, "ARCH_INCLUDE=amd64");
    let out = site.dsync(&["-test"]);
    let report = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("127.0.0.1::debian answers"), "{report}");
    assert!(
        report.contains("project/trace/master: Archive serial 2026120301"),
        "{report}"
    );
    assert!(report.contains("exists, writable by"), "{report}");
    assert!(report.contains("shrink guard"), "{report}");
    // The guard's own rsync call is announced, so a wrapper's log holds no surprise.
    assert!(
        report.contains("one local `rsync --dry-run` over it through $RSYNC"),
        "{report}"
    );
    let stage1 = row_words(&report, "stage 1");
    let stage2 = row_words(&report, "stage 2");

    let _ = std::fs::remove_file(site.root().join("argv"));
    let run = site.dsync(&["ftpsync", "sync:all"]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let ran = site.synced_argvs();
    assert_eq!(
        ran,
        vec![stage1, stage2],
        "the report's stages are not what ran"
    );
    assert!(site.root().join("mirror/dists").is_dir());
}

#[test]
fn an_unreachable_upstream_fails_the_test_and_is_named() {
    let site = Site::new();
    let closed = support::free_port();
    site.conf("ftpsync.conf", closed, "");
    let out = site.dsync(&["-test"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(78), "{text}");
    assert!(
        text.contains("error: upstream 127.0.0.1::debian cannot be reached"),
        "{text}"
    );
    // Offline, the same config is fine.
    assert_eq!(site.dsync(&["-test", "-offline"]).status.code(), Some(0));
}

#[test]
fn a_to_under_a_file_and_a_missing_hook_are_named() {
    let site = Site::new();
    std::fs::write(site.root().join("plain-file"), "").unwrap();
    let conf = site.conf(
        "ftpsync.conf",
        1,
        "TO={ROOT}/plain-file/mirror/\nHOOK2=\"{ROOT}/no-such-hook --now\"",
    );
    let out = site.dsync(&["-test", "-offline"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(78), "{text}");
    let c = conf.display();
    assert!(
        text.contains(&format!("{c}:9: error: TO="))
            && text.contains("plain-file/mirror/ does not exist and cannot be created"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{c}:10: error: HOOK2="))
            && text.contains("no-such-hook does not exist or is not executable"),
        "{text}"
    );
}

/// Makes a folder immutable (as root, the only way `access` says no) and
/// takes the flag away again, so the temp dir can go.
struct Immutable(PathBuf);

impl Immutable {
    fn set(dir: &Path) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Immutable(dir.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn an_unwritable_to_is_named_even_for_root() {
    let site = Site::new();
    let conf = site.conf("ftpsync.conf", 1, "");
    let mirror = site.root().join("mirror");
    // Permission bits do not stop root; an immutable folder does.
    std::fs::set_permissions(&mirror, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let _flag = match Immutable::set(&mirror) {
        Some(flag) => Some(flag),
        None if unsafe { libc::geteuid() } != 0 => None,
        None => {
            eprintln!(
                "SKIPPED an_unwritable_to_is_named_even_for_root: chattr +i failed on {}",
                mirror.display()
            );
            return;
        }
    };
    let out = site.dsync(&["-test", "-offline"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(78), "{text}");
    assert!(
        text.contains(&format!(
            "{}:2: error: TO={}/ is not writable by",
            conf.display(),
            mirror.display()
        )),
        "{text}"
    );
}

#[test]
fn cron_lines_and_forced_commands_running_debians_script_get_a_hint() {
    let site = Site::new();
    site.conf("ftpsync.conf", 1, "");
    std::fs::write(
        site.root().join("crontab"),
        "# m h dom mon dow command\n*/30 * * * * dsync ftpsync sync:all\n0 * * * * ftpsync sync:archive:security sync:all\n",
    )
    .unwrap();
    let ssh = site.root().join("home/.ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(
        ssh.join("authorized_keys"),
        "command=\"ftpsync-cron\",no-pty ssh-ed25519 AAAAC3Nz upstream\n",
    )
    .unwrap();
    let out = site.dsync(&["-test", "-offline"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let cron = site.root().join("crontab");
    assert!(
        text.contains(&format!(
            "{}:3: warning: `ftpsync sync:archive:security sync:all` runs Debian's script",
            cron.display()
        )),
        "{text}"
    );
    assert!(text.contains("replace `ftpsync sync:archive:security sync:all` by `dsync ftpsync sync:archive:security sync:all`, or run compat/install-links"), "{text}");
    assert!(
        !text.contains(&format!("{}:2:", cron.display())),
        "dsync's own line is fine:\n{text}"
    );
    assert!(
        text.contains("authorized_keys:1: warning: `ftpsync-cron` runs Debian's script"),
        "{text}"
    );
}

#[test]
fn every_setup_in_ftpsyncs_folders_and_repository_blocks_is_reported_once() {
    let site = Site::new();
    site.conf("ftpsync.conf", 1, "");
    // /etc/ftpsync: an archive of its own, and a shadowed copy of ftpsync.conf.
    let etc = site.root().join("etc-ftpsync");
    std::fs::write(etc.join("ftpsync.conf"), "TO=/elsewhere\n").unwrap();
    std::fs::write(
        etc.join("ftpsync-security.conf"),
        format!(
            "TO={}/mirror/\nRSYNC_HOST=127.0.0.1\nRSYNC_PATH=debian-security\n",
            site.root().display()
        ),
    )
    .unwrap();
    // A hub without its ssh key.
    std::fs::write(
        site.root().join("home/.config/ftpsync/runmirrors.conf"),
        "KEYFILE=.ssh/no-such-key\n",
    )
    .unwrap();
    // A repository file whose block the repository layer refuses: said once.
    let repos = site.root().join("dxync/repos");
    std::fs::create_dir_all(&repos).unwrap();
    std::fs::write(
        repos.join("deb.conf"),
        format!(
            "repo=deb\nsave={}/mirror\nftpsync=true\nRSYNC_HOST=127.0.0.1\nRSYNC_TRANSPORT=ftp\n",
            site.root().display()
        ),
    )
    .unwrap();
    let out = site.dsync(&["-test", "-offline"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(78), "{text}");
    assert!(text.contains("ftpsync archive \"security\""), "{text}");
    assert!(text.contains("debian-security"), "{text}");
    assert!(
        text.contains(&format!(
            "{}/ftpsync.conf:0: warning: never read",
            etc.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("runmirrors (default)") && text.contains("no-such-key does not exist"),
        "{text}"
    );
    // The refused repository is not evaluated again: its error comes once.
    assert_eq!(
        text.matches("RSYNC_TRANSPORT=ftp").count(),
        1,
        "said once:\n{text}"
    );
}

#[test]
fn a_good_repository_block_shows_its_stages() {
    let site = Site::new();
    let repos = site.root().join("dxync/repos");
    std::fs::create_dir_all(&repos).unwrap();
    std::fs::write(
        repos.join("deb.conf"),
        format!(
            "repo=deb\nsave={r}/mirror\nftpsync=true\nMIRRORNAME=mirror.test\nRSYNC_HOST=127.0.0.1\nMAILTO=ops@example.org\nHOOK1=/bin/true\n",
            r = site.root().display()
        ),
    )
    .unwrap();
    let out = site.dsync(&["-test", "-offline"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("repository deb: ftpsync block of"), "{text}");
    let stage2 = row_words(&text, "stage 2");
    assert!(
        stage2.contains(&"--delete".to_string())
            && stage2.contains(&"127.0.0.1::debian".to_string()),
        "{stage2:?}"
    );
    assert!(
        stage2
            .iter()
            .any(|w| w.starts_with("--log-file") || w.ends_with("rsync-deb.log")),
        "{stage2:?}"
    );
    // The repository layer checks the mirror folder: not said twice.
    assert!(!text.contains("TO check"), "{text}");
}

#[test]
fn a_lock_held_by_a_live_process_is_named() {
    let site = Site::new();
    site.conf("ftpsync.conf", 1, "");
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let lock = site
        .root()
        .join("mirror/Archive-Update-in-Progress-mirror.test");
    std::fs::write(&lock, format!("{}\n", sleeper.id())).unwrap();
    let out = site.dsync(&["-test", "-offline"]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a warning, not an error:\n{text}"
    );
    let want = format!(
        "warning: the lock is held by PID {} (sleep 30)",
        sleeper.id()
    );
    assert!(text.contains(&want), "want {want}:\n{text}");
}

#[test]
fn dsync_ftpsync_test_checks_the_archive_its_invocation_names() {
    let site = Site::new();
    site.conf("ftpsync.conf", 1, "");
    site.conf("ftpsync-security.conf", 1, "RSYNC_PATH=debian-security");
    let out = site.dsync(&["ftpsync", "-test", "-offline", "sync:archive:security"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("ftpsync archive \"security\""), "{text}");
    assert!(text.contains("127.0.0.1::debian-security"), "{text}");
    assert!(!text.contains("ftpsync archive (default)"), "{text}");
    assert!(text.contains("ftpsync -test: no problems"), "{text}");
}

#[test]
fn a_hub_without_runmirrors_and_a_transport_without_its_helper_are_named() {
    let site = Site::new();
    std::fs::create_dir_all(site.root().join("bin")).unwrap();
    let conf = site.conf(
        "ftpsync.conf",
        1,
        "HUB=true\nBINDIR={ROOT}/bin\nRSYNC_TRANSPORT=ssl",
    );
    let out = site.dsync(&["-test", "-offline"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(78), "{text}");
    let (c, r) = (conf.display(), site.root().display());
    for want in [
        format!("{c}:9: error: HUB=true, but there is no runmirrors.conf"),
        format!("{c}:9: error: HUB needs {r}/bin/runmirrors, which is not an executable"),
        format!(
            "{c}:11: error: RSYNC_TRANSPORT needs {r}/bin/rsync-ssl-tunnel, which is not an executable"
        ),
    ] {
        assert!(text.contains(&want), "want {want}:\n{text}");
    }
}
