//! Guards against a hostile or broken upstream, cases 1 and 3 of tests/README.md:
//!
//! - an rsync older than 3.4.0 (CVE-2024-12084..12088) is refused in ftpsync
//!   mode and in the dsync layer, with the reason and the way out, unless the
//!   operator overrides it; nothing is touched when refused;
//! - an upstream that lists far fewer files than the mirror holds (emptied,
//!   half deleted) is refused before anything is deleted, in general mode,
//!   in ftpsync mode (`MIN_UPSTREAM_RATIO`, on by default there too, with both
//!   sides counted through stage one's filters) and by DTP
//!   (tests/dtp_client.rs), and the trace is not updated.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::archive::{self, ArchiveSpec};
use support::rsyncd::RsyncDaemon;
use support::site::{Site, assert_success, script};

/// An rsync that says it is 3.2.7 (and is no distribution package), but
/// transfers with the real one.
fn old_rsync(dir: &Path) -> PathBuf {
    let path = dir.join("rsync-3.2.7");
    script(
        &path,
        "#!/bin/sh\ncase \" $* \" in *\" --version \"*) \
         echo 'rsync  version 3.2.7  protocol version 31'; exit 0;; esac\nexec rsync \"$@\"\n",
    );
    path
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A mirror host for the ftpsync personality: `ftpsync.conf` in a home.
struct FtpsyncHost {
    dir: tempfile::TempDir,
    _daemon: RsyncDaemon,
}

impl FtpsyncHost {
    fn new(upstream: &Path, extra: &str) -> FtpsyncHost {
        let daemon = RsyncDaemon::start("127.0.0.1", &[("debian", upstream)]);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("home/.config/ftpsync")).unwrap();
        std::fs::write(
            root.join("home/.config/ftpsync/ftpsync.conf"),
            format!(
                "MIRRORNAME=mirror.test\nTO={r}/mirror/\nLOGDIR={r}/log\nMAILTO=nobody\n\
                 RSYNC_HOST=127.0.0.1\nRSYNC_EXTRA=\"--port={p}\"\n{extra}\n",
                r = root.display(),
                p = daemon.port()
            ),
        )
        .unwrap();
        let mail = format!("#!/bin/sh\ncat >> {}/mail\n", root.display());
        script(&root.join("sendmail"), &mail);
        FtpsyncHost {
            dir,
            _daemon: daemon,
        }
    }

    /// Every mail the runs sent, one after the other, quoted-printable
    /// bodies decoded as far as the assertions need (soft breaks, `=`).
    fn mail(&self) -> String {
        std::fs::read_to_string(self.root().join("mail"))
            .unwrap_or_default()
            .replace("=\n", "")
            .replace("=3D", "=")
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn mirror(&self) -> PathBuf {
        self.root().join("mirror")
    }

    fn append(&self, line: &str) {
        let conf = self.root().join("home/.config/ftpsync/ftpsync.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(line);
        text.push('\n');
        std::fs::write(conf, text).unwrap();
    }

    fn run(&self) -> Output {
        Command::new(env!("CARGO_BIN_EXE_dsync"))
            .arg("ftpsync")
            .env("HOME", self.root().join("home"))
            .env("LOGNAME", "nobody")
            .env("DSYNC_SENDMAIL", self.root().join("sendmail"))
            .env_remove("SSH_ORIGINAL_COMMAND")
            .env_remove("DSYNC_ALLOW_VULNERABLE_RSYNC")
            .output()
            .unwrap()
    }

    fn log(&self) -> String {
        // ftpsync rotates its logs at the end of every run.
        std::fs::read_to_string(self.root().join("log/ftpsync.log.0")).unwrap_or_default()
    }
}

/// A plain tree of `n` files in a few folders.
fn tree(dir: &Path, n: usize) {
    for i in 0..n {
        let sub = dir.join(format!("pool/d{}", i % 4));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("f{i}")), format!("file {i}\n")).unwrap();
    }
}

fn files_under(dir: &Path) -> usize {
    let mut n = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                pending.push(e.path());
            } else if kind.is_file() {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn an_old_rsync_is_refused_in_ftpsync_mode_unless_overridden() {
    let upstream = tempfile::tempdir().unwrap();
    tree(upstream.path(), 5);
    let host = FtpsyncHost::new(upstream.path(), "");
    let old = old_rsync(host.root());
    host.append(&format!("RSYNC={}", old.display()));

    let out = host.run();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    for part in [
        "refusing to run rsync 3.2.7",
        "CVE-2024-12084..12088",
        "Install rsync 3.4.0 or newer",
        "ALLOW_VULNERABLE_RSYNC=true in ",
        "DSYNC_ALLOW_VULNERABLE_RSYNC=1",
    ] {
        assert!(said.contains(part), "missing {part:?} in:\n{said}");
    }
    // Refused before anything was touched: no mirror folder, no lock, no log.
    assert!(!host.mirror().exists(), "the mirror was touched");
    assert!(!host.root().join("log/ftpsync.log").exists());

    host.append("ALLOW_VULNERABLE_RSYNC=true");
    let out = host.run();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(host.mirror().join("pool/d0/f0").exists());
    let log = host.log();
    assert!(
        log.contains("WARNING: running rsync 3.2.7") && log.contains("(overridden)"),
        "{log}"
    );
}

#[test]
fn an_old_rsync_is_refused_by_the_dsync_layer_unless_overridden() {
    let mut site = Site::new();
    site.upstream("plain", 100);
    site.serve();
    let save = site.repo("plain", &site.src("plain"));
    let old = old_rsync(site.root());

    let out = site
        .command(&["-sync", "plain"])
        .env("DSYNC_RSYNC", &old)
        .env_remove("DSYNC_ALLOW_VULNERABLE_RSYNC")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let log = site.log("plain");
    assert!(log.contains("refusing to run rsync 3.2.7"), "{log}");
    assert!(
        log.contains("allow-vulnerable-rsync=true in xync.conf"),
        "{log}"
    );
    assert!(!save.join("README").exists(), "synced with a refused rsync");

    // The environment override, then the xync.conf one.
    let out = site
        .command(&["-sync", "plain"])
        .env("DSYNC_RSYNC", &old)
        .env("DSYNC_ALLOW_VULNERABLE_RSYNC", "1")
        .output()
        .unwrap();
    assert_success(&out);
    std::fs::remove_file(save.join("README")).unwrap();
    site.xync("allow-vulnerable-rsync=true\n");
    let out = site
        .command(&["-sync", "plain"])
        .env("DSYNC_RSYNC", &old)
        .env_remove("DSYNC_ALLOW_VULNERABLE_RSYNC")
        .output()
        .unwrap();
    assert_success(&out);
    assert!(save.join("README").exists());
    assert!(site.log("plain").contains("(overridden)"));
}

#[test]
fn the_installed_rsync_passes_the_check() {
    // rsync here is 3.4+ or Debian's package with the fixes listed in its
    // changelog: either way a plain sync runs (every other test relies on it).
    let mut site = Site::new();
    site.upstream("plain", 10);
    site.serve();
    let save = site.repo("plain", &site.src("plain"));
    let out = site
        .command(&["-sync", "plain"])
        .env_remove("DSYNC_ALLOW_VULNERABLE_RSYNC")
        .output()
        .unwrap();
    assert_success(&out);
    assert!(save.join("README").exists());
}

#[test]
fn an_emptied_upstream_is_refused_by_general_mode_before_anything_is_deleted() {
    let mut site = Site::new();
    let up = site.root().join("up/plain");
    tree(&up, 40);
    site.serve();
    let save = site.repo("plain", &site.src("plain"));
    assert_success(&site.run(&["-sync", "plain"]));
    assert_eq!(files_under(&save), 40);

    // Most of the upstream vanishes (30 of 40 files), one file is new.
    for i in 0..30 {
        std::fs::remove_file(up.join(format!("pool/d{}/f{i}", i % 4))).unwrap();
    }
    std::fs::write(up.join("pool/new"), "new\n").unwrap();
    let out = site.run(&["-sync", "plain"]);
    assert!(!out.status.success(), "{}", text(&out));
    let log = site.log("plain");
    assert!(
        log.contains("upstream lists only 11 regular files, fewer than 50% of the 40"),
        "{log}"
    );
    assert!(
        log.contains("set min-upstream-ratio=0 in xync.conf for one run"),
        "{log}"
    );
    // Nothing deleted; the first stage (no deletions) may bring the new file.
    assert!(save.join("pool/d0/f0").exists());
    assert_eq!(
        files_under(&save.join("pool")) - usize::from(save.join("pool/new").exists()),
        40
    );

    // An operator who knows the upstream shrank turns the guard off once.
    site.xync("min-upstream-ratio=0\n");
    assert_success(&site.run(&["-sync", "plain"]));
    assert_eq!(files_under(&save), 11);
}

#[test]
fn a_shrunken_upstream_stops_ftpsync_mode_before_stage_two_and_the_trace_stays() {
    let upstream = tempfile::tempdir().unwrap();
    let up = upstream.path();
    tree(up, 40);
    std::fs::create_dir_all(up.join("dists/stable")).unwrap();
    std::fs::write(up.join("dists/stable/Release"), "Suite: stable\n").unwrap();
    let host = FtpsyncHost::new(up, "MIN_UPSTREAM_RATIO=0.5");
    let out = host.run();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let trace = host.mirror().join("project/trace/mirror.test");
    let first_trace = std::fs::read(&trace).unwrap();

    for i in 0..35 {
        std::fs::remove_file(up.join(format!("pool/d{}/f{i}", i % 4))).unwrap();
    }
    std::fs::write(
        up.join("dists/stable/Release"),
        "Suite: stable\nVersion: 2\n",
    )
    .unwrap();
    let out = host.run();
    let log = host.log();
    let rsync_log =
        std::fs::read_to_string(host.root().join("log/rsync-ftpsync.error.0")).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{log}\n{rsync_log}",
        text(&out)
    );
    assert!(
        log.contains("ERROR: upstream lists only 5 regular files"),
        "{log}"
    );
    assert!(log.contains("set MIN_UPSTREAM_RATIO=0 in "), "{log}");
    assert!(!log.contains("Running stage2"), "stage two ran:\n{log}");
    assert_eq!(std::fs::read(&trace).unwrap(), first_trace, "trace changed");
    assert_eq!(
        std::fs::read_to_string(host.mirror().join("dists/stable/Release")).unwrap(),
        "Suite: stable\n",
        "the old Release must stay"
    );
    assert!(host.mirror().join("pool/d0/f0").exists());
}

/// Issue 12, item 4: Debian's ftpsync deletes the whole mirror when its
/// upstream module is empty (measured: 0 of 443 files kept); dsync refuses by
/// default, before stage two, and says how to let it through.
#[test]
fn an_empty_upstream_leaves_an_ftpsync_mirror_intact_by_default() {
    let upstream = tempfile::tempdir().unwrap();
    let up = upstream.path();
    archive::write_revision(up, &ArchiveSpec::default(), 1).unwrap();
    // No MIN_UPSTREAM_RATIO in the config: the default is what is tested.
    let host = FtpsyncHost::new(up, "");
    let out = host.run();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mirror = host.mirror();
    let before = archive::tree_snapshot(&mirror);
    let files = files_under(&mirror);
    assert!(files > 100, "the mirror holds {files} files");

    // A broken upstream: the module is there, its tree is gone.
    for entry in std::fs::read_dir(up).unwrap().flatten() {
        match entry.file_type().unwrap().is_dir() {
            true => std::fs::remove_dir_all(entry.path()).unwrap(),
            false => std::fs::remove_file(entry.path()).unwrap(),
        }
    }
    let out = host.run();
    let log = host.log();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}
{log}",
        text(&out)
    );
    assert!(
        !log.contains("Running stage2"),
        "stage two ran:
{log}"
    );
    let diff = archive::snapshot_diff(&before, &archive::tree_snapshot(&mirror));
    assert!(
        diff.is_empty(),
        "the mirror changed:
{}",
        diff.join(
            "
"
        )
    );
    for said in [&log, &host.mail()] {
        assert!(
            said.contains("upstream lists only 0 regular files, fewer than 50% of the"),
            "{said}"
        );
        assert!(said.contains("set MIN_UPSTREAM_RATIO=0 in "), "{said}");
    }

    // The operator who emptied it on purpose lets it through once.
    host.append("MIN_UPSTREAM_RATIO=0");
    let out = host.run();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out), host.log());
    assert!(!mirror.join("pool").exists(), "the pool should be gone");
}

/// Narrowing `ARCH_INCLUDE` drops most files on purpose: both sides are
/// counted with the same filters, so the default guard lets it through.
#[test]
fn narrowing_arch_include_does_not_trip_the_default_shrink_guard() {
    let upstream = tempfile::tempdir().unwrap();
    let up = upstream.path();
    let archs = [
        "amd64", "arm64", "armel", "armhf", "i386", "mips64el", "ppc64el", "s390x",
    ];
    let spec = ArchiveSpec::default().with_archs(&archs);
    archive::write_revision(up, &spec, 1).unwrap();
    let host = FtpsyncHost::new(up, "");
    let out = host.run();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mirror = host.mirror();
    let all = files_under(&mirror);

    host.append("ARCH_INCLUDE=\"amd64 source\"");
    let out = host.run();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out), host.log());
    let kept = files_under(&mirror);
    // The premise: counting every file of the mirror would have refused.
    assert!(kept * 2 < all, "kept {kept} of {all}");
    assert!(
        !host.log().contains("upstream lists only"),
        "{}",
        host.log()
    );
    let pool = archive::tree_snapshot(&mirror.join("pool"));
    assert!(pool.keys().any(|p| p.ends_with("_amd64.deb")));
    assert!(!pool.keys().any(|p| p.ends_with("_arm64.deb")), "{pool:?}");
}

#[test]
fn option_looking_paths_and_hosts_are_refused_at_load_in_ftpsync_mode() {
    let upstream = tempfile::tempdir().unwrap();
    for (line, var) in [
        ("TO=--rsh=/tmp/evil", "TO"),
        ("RSYNC_HOST=-e/tmp/evil", "RSYNC_HOST"),
        ("RSYNC_SOURCE=--server", "RSYNC_SOURCE"),
    ] {
        let host = FtpsyncHost::new(upstream.path(), line);
        let out = host.run();
        let said = text(&out);
        assert_eq!(out.status.code(), Some(78), "{line}: {said}");
        assert!(
            said.contains(&format!("{var}=")) && said.contains("rsync would take it for an option"),
            "{line}: {said}"
        );
    }
}

#[test]
fn dsync_test_reports_an_old_rsync_with_the_fix() {
    let site = Site::new();
    site.repo("plain", "src=rsync://127.0.0.1:1/plain/");
    let old = old_rsync(site.root());
    let out = site
        .command(&["-test", "-offline"])
        .env("DSYNC_RSYNC", &old)
        .env_remove("DSYNC_ALLOW_VULNERABLE_RSYNC")
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(78), "{said}");
    assert!(said.contains("rsync 3.2.7"), "{said}");
    assert!(said.contains("install rsync 3.4.0 or newer"), "{said}");
    assert!(said.contains("xync.conf"), "{said}");

    let out = site
        .command(&["-test", "-offline"])
        .env("DSYNC_RSYNC", "rsync")
        .output()
        .unwrap();
    assert!(!text(&out).contains("CVE-2024"), "{}", text(&out));
}
