//! Self-test of the shared fixtures in `tests/support`: the archive generator, the rsync
//! daemon and the apt-based consistency checker, with the real `rsync` and `apt-get`.

mod support;

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use support::apt::{self, CheckOptions};
use support::archive::{self, ArchiveSpec};
use support::rsyncd::RsyncDaemon;

fn require_tools() {
    assert!(
        support::have_program("rsync"),
        "rsync is not installed (apt-get install -y rsync)"
    );
    assert!(apt::apt_available(), "apt-get is not available");
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[track_caller]
fn assert_consistent(mirror: &Path, spec: &ArchiveSpec) {
    if let Err(problems) = apt::check_consistent(mirror, spec) {
        panic!(
            "mirror {} is inconsistent:\n{}",
            mirror.display(),
            problems.join("\n")
        );
    }
}

#[track_caller]
fn expect_problems(mirror: &Path, spec: &ArchiveSpec, opts: &CheckOptions) -> Vec<String> {
    match apt::check_consistent_with(mirror, spec, opts) {
        Ok(()) => panic!("checker found no problem in {}", mirror.display()),
        Err(p) => p,
    }
}

#[test]
fn md5_matches_known_vectors() {
    assert_eq!(archive::md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(archive::md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    assert_eq!(
        archive::md5_hex(b"The quick brown fox jumps over the lazy dog"),
        "9e107d9d372bb6826bd81d3542a419d6"
    );
    // Multi-block input (> 64 bytes, padding spills into a second block).
    assert_eq!(
        archive::md5_hex(&[b'a'; 1000]),
        "cabe45dcc9ae5b66ba86600cca6b8ba8"
    );
}

#[test]
fn generator_is_deterministic_and_moves_between_revisions() {
    let spec = ArchiveSpec::default();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let info1 = archive::write_revision(a.path(), &spec, 1).unwrap();
    // b goes 3 -> 2, ending where a fresh revision 2 would.
    archive::write_revision(b.path(), &spec, 3).unwrap();
    let info2 = archive::write_revision(b.path(), &spec, 2).unwrap();
    let fresh2 = tempfile::tempdir().unwrap();
    assert_eq!(
        archive::write_revision(fresh2.path(), &spec, 2).unwrap(),
        info2
    );
    let diff = archive::snapshot_diff(
        &archive::tree_snapshot(fresh2.path()),
        &archive::tree_snapshot(b.path()),
    );
    assert!(
        diff.is_empty(),
        "3 -> 2 differs from fresh 2:\n{}",
        diff.join("\n")
    );

    // a: 1 -> 2 equals fresh 2 as well, mtimes included.
    archive::write_revision(a.path(), &spec, 2).unwrap();
    let diff = archive::snapshot_diff(
        &archive::tree_snapshot(fresh2.path()),
        &archive::tree_snapshot(a.path()),
    );
    assert!(
        diff.is_empty(),
        "1 -> 2 differs from fresh 2:\n{}",
        diff.join("\n")
    );
    for f in &info2.all_files {
        let m = |root: &Path| fs::metadata(root.join(f)).unwrap().modified().unwrap();
        assert_eq!(m(a.path()), m(fresh2.path()), "mtime of {f}");
    }

    // Shape of the archive.
    let n = spec.suites.len();
    let per_suite_indices = spec.components.len() * ((spec.archs.len() + 1) * 3 + 3 + 2);
    assert_eq!(info1.index_files.len(), n * (per_suite_indices + 1));
    assert!(
        info1
            .index_files
            .contains(&"dists/bookworm/Release".to_string())
    );
    assert!(
        info1
            .index_files
            .contains(&"dists/trixie/contrib/binary-all/Packages.xz".to_string())
    );
    assert_eq!(
        fs::read_link(a.path().join("dists/stable")).unwrap(),
        Path::new("bookworm")
    );
    assert!(!a.path().join("dists/bookworm/InRelease").exists());
    assert_eq!(info1.serial, "2023061001");
    assert_eq!(info2.serial, "2023061002");
    assert_eq!(
        archive::read_serial(a.path()).as_deref(),
        Some("2023061002")
    );
    let trace = fs::read_to_string(a.path().join(archive::TRACE_MASTER)).unwrap();
    let lines: Vec<&str> = trace.lines().collect();
    assert_eq!(lines[0], "Sat Jun 10 14:00:00 UTC 2023");
    assert_eq!(lines[1], "Date: Sat, 10 Jun 2023 14:00:00 +0000");
    assert!(trace.contains("Creator: test\n"));

    // Each revision adds and drops pool files, keeps the rest.
    let p1: Vec<&String> = info1.pool_files.iter().map(|(p, _)| p).collect();
    let p2: Vec<&String> = info2.pool_files.iter().map(|(p, _)| p).collect();
    let dropped: Vec<_> = p1.iter().filter(|p| !p2.contains(p)).collect();
    let added: Vec<_> = p2.iter().filter(|p| !p1.contains(p)).collect();
    let kept = p1.len() - dropped.len();
    assert!(!dropped.is_empty() && !added.is_empty() && kept > 0);
    for p in &dropped {
        assert!(
            !a.path().join(p).exists(),
            "{p} of revision 1 still present"
        );
    }
    assert!(
        p1.iter()
            .any(|p| p.starts_with("pool/main/libb/libbanana/"))
    );
    assert!(p1.iter().any(|p| p.ends_with("_all.deb")));
    assert!(p1.iter().any(|p| p.ends_with(".orig.tar.xz")));
    // By-hash files of revision 1 are kept in revision 2.
    for f in info1.by_hash_files.iter() {
        assert!(
            a.path().join(f).exists(),
            "by-hash file {f} of revision 1 was removed"
        );
        assert!(info2.by_hash_files.contains(f));
    }
    // ... but not those of revision 1 in revision 3 (unless unchanged since).
    let info3 = archive::write_revision(a.path(), &spec, 3).unwrap();
    let gone: Vec<&String> = info1
        .by_hash_files
        .iter()
        .filter(|f| !info3.by_hash_files.contains(f))
        .collect();
    assert!(!gone.is_empty());
    for f in gone {
        assert!(!a.path().join(f).exists(), "{f} survived two revisions");
    }
}

#[test]
fn revisions_sync_through_rsyncd_and_stay_apt_consistent() {
    require_tools();
    let spec = ArchiveSpec::default();
    let upstream = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let d = RsyncDaemon::start("127.0.0.1", &[("debian", upstream.path())]);
    assert!(d.url("debian").starts_with("rsync://127.0.0.1:"));

    let mut prev: Option<archive::ArchiveInfo> = None;
    for rev in 1..=3 {
        let info = archive::write_revision(upstream.path(), &spec, rev).unwrap();
        support::run_rsync(&["-a", "--delete", &d.url("debian"), path_str(dst.path())]);
        let diff = archive::snapshot_diff(
            &archive::tree_snapshot(upstream.path()),
            &archive::tree_snapshot(dst.path()),
        );
        assert!(
            diff.is_empty(),
            "rev {rev}: mirror differs from upstream:\n{}",
            diff.join("\n")
        );
        assert_eq!(archive::read_serial(dst.path()), Some(info.serial.clone()));
        assert_eq!(
            fs::read_link(dst.path().join("dists/stable")).unwrap(),
            Path::new("bookworm"),
            "symlink not munged"
        );
        assert_consistent(dst.path(), &spec);
        if let Some(prev) = &prev {
            let gone = prev
                .pool_files
                .iter()
                .filter(|(p, _)| info.pool_sha256(p).is_none())
                .count();
            assert!(gone > 0, "revision {rev} dropped no pool file");
            for (p, _) in &prev.pool_files {
                assert_eq!(
                    dst.path().join(p).exists(),
                    info.pool_sha256(p).is_some(),
                    "{p}"
                );
            }
        }
        prev = Some(info);
    }
    let log = d.log();
    assert!(log.contains("rsync on debian/ from"), "daemon log:\n{log}");
}

#[test]
fn checker_reports_missing_and_corrupt_pool_files() {
    require_tools();
    let spec = ArchiveSpec::default();
    let m = tempfile::tempdir().unwrap();
    let info = archive::write_revision(m.path(), &spec, 1).unwrap();
    assert_consistent(m.path(), &spec);
    let opts = CheckOptions::default();

    // A deleted .deb.
    let (deb, _) = info
        .pool_files
        .iter()
        .find(|(p, _)| p.ends_with("_arm64.deb"))
        .unwrap();
    let data = fs::read(m.path().join(deb)).unwrap();
    fs::remove_file(m.path().join(deb)).unwrap();
    let problems = expect_problems(m.path(), &spec, &opts);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&format!("{deb}: missing"))),
        "{problems:#?}"
    );
    // Not checked when arm64 is not part of what was mirrored.
    let amd64_only = spec.with_archs(&["amd64"]);
    assert!(apt::verify_tree(m.path(), &amd64_only, &opts).is_empty());
    fs::write(m.path().join(deb), &data).unwrap();

    // A corrupted source tarball: same size, other bytes.
    let (orig, sha) = info
        .pool_files
        .iter()
        .find(|(p, _)| p.ends_with(".orig.tar.xz"))
        .unwrap();
    let mut bytes = fs::read(m.path().join(orig)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(m.path().join(orig), &bytes).unwrap();
    let problems = expect_problems(m.path(), &spec, &opts);
    let hit = problems
        .iter()
        .find(|p| p.starts_with(&format!("{orig}: SHA256 mismatch: expected {sha}")))
        .unwrap_or_else(|| panic!("{problems:#?}"));
    assert!(hit.contains("Sources"), "{hit}");
    // Without deb-src the checker ignores source files.
    let no_src = CheckOptions {
        sources: false,
        ..CheckOptions::default()
    };
    assert!(apt::check_consistent_with(m.path(), &spec, &no_src).is_ok());
}

/// The inconsistency ftpsync's two stages prevent: indices of a newer revision with the
/// Release (or pool) of an older one, and the other way round.
#[test]
fn apt_fails_when_indices_and_release_disagree() {
    require_tools();
    let spec = ArchiveSpec {
        suites: vec!["bookworm".into()],
        ..ArchiveSpec::default()
    };
    let no_apt = CheckOptions {
        apt: false,
        ..CheckOptions::default()
    };
    let r1 = tempfile::tempdir().unwrap();
    let r2 = tempfile::tempdir().unwrap();
    archive::write_revision(r1.path(), &spec, 1).unwrap();
    archive::write_revision(r2.path(), &spec, 2).unwrap();
    let pk = "dists/bookworm/main/binary-amd64/Packages.xz";

    // New Packages.xz, old Release: canonical-name apt fails with a hash mismatch ...
    let m = tempfile::tempdir().unwrap();
    archive::write_revision(m.path(), &spec, 1).unwrap();
    fs::copy(r2.path().join(pk), m.path().join(pk)).unwrap();
    let err = apt::apt_update(m.path(), &spec, false, true).expect_err("apt-get update passed");
    assert!(err.contains("Hash Sum mismatch"), "{err}");
    assert!(err.contains("E: Failed to fetch"), "{err}");
    // ... by-hash apt still gets the old index by its hash, as designed ...
    apt::apt_update(m.path(), &spec, true, true).expect("by-hash apt-get update");
    // ... and the checker reports both.
    let problems = expect_problems(m.path(), &spec, &CheckOptions::default());
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&format!("{pk}: SHA256 mismatch"))),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("apt-get update (By-Hash=no)")),
        "{problems:#?}"
    );

    // New Release, old indices (and no new by-hash files): apt fails in both modes.
    let m = tempfile::tempdir().unwrap();
    archive::write_revision(m.path(), &spec, 1).unwrap();
    let rel = "dists/bookworm/Release";
    fs::copy(r2.path().join(rel), m.path().join(rel)).unwrap();
    apt::apt_update(m.path(), &spec, true, true).expect_err("by-hash apt-get update passed");
    apt::apt_update(m.path(), &spec, false, true).expect_err("apt-get update passed");

    // New dists/ over an old pool (stage 2 content without stage 1): apt-get update does not
    // read the pool, but the checker finds the missing packages.
    let m = tempfile::tempdir().unwrap();
    archive::write_revision(m.path(), &spec, 1).unwrap();
    support::run_rsync(&[
        "-a",
        &format!("{}/dists/", path_str(r2.path())),
        &format!("{}/dists/", path_str(m.path())),
    ]);
    apt::apt_update(m.path(), &spec, true, true).expect("apt-get update");
    let problems = expect_problems(m.path(), &spec, &no_apt);
    assert!(
        problems
            .iter()
            .any(|p| p.contains(": missing (") && p.contains("referenced by dists/bookworm/")),
        "{problems:#?}"
    );
}

#[test]
fn rsyncd_serves_motd_modules_and_port_option_and_dies_on_drop() {
    require_tools();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    fs::write(a.path().join("x"), "x").unwrap();
    let d = RsyncDaemon::start_full(
        "127.0.0.1",
        &[("one", a.path()), ("two", b.path())],
        &["timeout = 30"],
        Some("Welcome to the dsync test daemon\n"),
    );
    let conf = fs::read_to_string(d.config_path()).unwrap();
    assert!(
        conf.contains("timeout = 30") && conf.contains("[two]"),
        "{conf}"
    );
    // Module listing via HOST:: syntax with --port (what ftpsync's RSYNC_EXTRA can carry).
    let listing = support::run_rsync(&[&d.port_option(), &format!("{}::", d.host())]);
    assert!(
        listing.contains("Welcome to the dsync test daemon"),
        "{listing}"
    );
    assert!(
        listing.contains("one") && listing.contains("two"),
        "{listing}"
    );
    let dst = tempfile::tempdir().unwrap();
    support::run_rsync(&[
        "-a",
        &d.port_option(),
        &format!("{}::one/", d.host()),
        path_str(dst.path()),
    ]);
    assert_eq!(fs::read_to_string(dst.path().join("x")).unwrap(), "x");
    // Read-only.
    let out = std::process::Command::new("rsync")
        .args([path_str(&a.path().join("x")), &format!("{}x", d.url("two"))])
        .output()
        .unwrap();
    assert!(!out.status.success());

    // Another daemon on another loopback address.
    let d2 = RsyncDaemon::start("127.0.0.2", &[("one", a.path())]);
    assert!(d2.url("one").starts_with("rsync://127.0.0.2:"));
    support::run_rsync(&["-a", &d2.url("one"), path_str(dst.path())]);

    let (port, pid) = (d.port(), d.pid());
    drop(d);
    // SAFETY: kill with signal 0 only checks for existence.
    assert_eq!(
        unsafe { libc::kill(pid as libc::pid_t, 0) },
        -1,
        "daemon still alive"
    );
    support::wait_for_what(Duration::from_secs(5), "port to close", || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
}

#[test]
#[should_panic(expected = "timed out after")]
fn wait_for_panics_with_message() {
    support::wait_for(Duration::from_millis(50), || false);
}

/// A daemon that is never dropped (as in a `static`) stops when its test process exits.
#[test]
fn rsyncd_dies_with_its_process_when_not_dropped() {
    if let Some(dir) = std::env::var_os("DSYNC_SELFTEST_LEAK_DAEMON_IN") {
        // Child mode: start a daemon, leak it, exit.
        let d = RsyncDaemon::start("127.0.0.1", &[("m", Path::new(&dir))]);
        println!("LEAKED-PORT={}", d.port());
        std::mem::forget(d);
        return;
    }
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "rsyncd_dies_with_its_process_when_not_dropped",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DSYNC_SELFTEST_LEAK_DAEMON_IN", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child test failed:\n{stdout}");
    let port: u16 = stdout
        .lines()
        .find_map(|l| l.split("LEAKED-PORT=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in child output:\n{stdout}"));
    support::wait_for_what(Duration::from_secs(10), "leaked daemon to stop", || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
}
