//! `dsync demo DIR`, run as a newcomer would run it: two real syncs from a real rsync
//! daemon, a mirror equal to the upstream, and no daemon left behind.

use std::collections::BTreeMap;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use dsync::demo::archive::{self, TreeEntry};

/// Files the mirror writes for itself, which the upstream does not have.
const OWN_TRACES: [&str; 4] = [
    "project/trace/demo.mirror",
    "project/trace/_hierarchy",
    "project/trace/_hierarchy.mirror",
    "project/trace/_traces",
];

fn demo(dir: &Path, path_env: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dsync"));
    cmd.arg("demo").arg(dir);
    if let Some(path) = path_env {
        cmd.env("PATH", path);
    }
    cmd.output().expect("run dsync demo")
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout:\n{}--- stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A mirror's tree without what it adds itself: ftpsync's trace files, the
/// DTP manifest (its hash cache is in the home), and (for the DTP mirror) its own trace.
fn without_own_traces(mut tree: BTreeMap<String, TreeEntry>) -> BTreeMap<String, TreeEntry> {
    for path in OWN_TRACES.iter().chain(&["data.dsync"]) {
        tree.remove(*path);
    }
    tree.remove(&format!("project/trace/{}", dsync::host::fqdn()));
    tree
}

/// Whether process `pid` is (still) an rsync daemon.
fn is_rsync_daemon(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("--daemon"))
        .unwrap_or(false)
}

#[test]
fn demo_mirrors_two_revisions_and_stops_its_daemon() {
    assert!(
        Command::new("rsync").arg("--version").output().is_ok(),
        "rsync is not installed (apt-get install -y rsync)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = demo(&dir, None);
    assert!(
        out.status.success(),
        "dsync demo failed: {}",
        describe(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in ["== sync 1: ", "== sync 2: ", "HOME="] {
        assert!(
            stdout.contains(expected),
            "no {expected:?} in: {}",
            describe(&out)
        );
    }

    let trace = fs::read_to_string(dir.join("mirror/project/trace/demo.mirror")).unwrap();
    let serial = trace
        .lines()
        .find_map(|l| l.strip_prefix("Archive serial: "));
    assert_eq!(
        serial,
        Some(archive::serial(2).as_str()),
        "trace file:\n{trace}"
    );

    let diff = archive::snapshot_diff(
        &archive::tree_snapshot(&dir.join("upstream")),
        &without_own_traces(archive::tree_snapshot(&dir.join("mirror"))),
    );
    assert!(
        diff.is_empty(),
        "mirror differs from upstream:\n{}",
        diff.join("\n")
    );

    let pid: u32 = fs::read_to_string(dir.join("rsyncd/rsyncd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !is_rsync_daemon(pid),
        "rsync daemon {pid} outlived the demo"
    );
    let conf = fs::read_to_string(dir.join("rsyncd/rsyncd.conf")).unwrap();
    let port: u16 = conf
        .lines()
        .find_map(|l| l.strip_prefix("port = "))
        .expect("port in rsyncd.conf")
        .parse()
        .unwrap();
    let sa = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(
        TcpStream::connect_timeout(&sa, Duration::from_secs(1)).is_err(),
        "something still accepts on the demo's port {port}"
    );

    // The DTP half: the ftpsync mirror served over DTP, pulled twice by a
    // repository of the dsync layer, whose status says success.
    for expected in [
        "== DTP sync 1: ",
        "DTP: ",
        "manifest not modified",
        "dsync-jobs.json",
    ] {
        assert!(
            stdout.contains(expected),
            "no {expected:?} in: {}",
            describe(&out)
        );
    }
    let diff = archive::snapshot_diff(
        &without_own_traces(archive::tree_snapshot(&dir.join("mirror"))),
        &without_own_traces(archive::tree_snapshot(&dir.join("mirror-dtp"))),
    );
    assert!(diff.is_empty(), "DTP mirror differs:\n{}", diff.join("\n"));
    assert_eq!(
        fs::read_to_string(dir.join("status/dsync-status/debian-dtp")).unwrap(),
        "1"
    );
    let host_conf = fs::read_to_string(dir.join("dtp-host/xync.conf")).unwrap();
    let listen: SocketAddr = host_conf
        .lines()
        .find_map(|l| l.strip_prefix("dtp-listen="))
        .expect("dtp-listen in the host's xync.conf")
        .parse()
        .unwrap();
    assert!(
        TcpStream::connect_timeout(&listen, Duration::from_secs(1)).is_err(),
        "the DTP service outlived the demo"
    );

    // A second run in the same directory starts over and ends the same way.
    let again = demo(&dir, None);
    assert!(again.status.success(), "rerun failed: {}", describe(&again));
}

#[test]
fn demo_without_rsync_says_how_to_install_it() {
    let tmp = tempfile::tempdir().unwrap();
    let empty_path = tmp.path().join("bin");
    fs::create_dir(&empty_path).unwrap();
    let out = demo(&tmp.path().join("demo"), Some(&empty_path));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("dsync demo: rsync is not installed; install it with: apt-get install rsync"),
        "{}",
        describe(&out)
    );
    assert!(
        !tmp.path().join("demo").exists(),
        "nothing is written without rsync"
    );
}

#[test]
fn demo_refuses_a_non_empty_directory_it_did_not_make() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("precious"), "keep me").unwrap();
    let out = demo(tmp.path(), None);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not made by dsync demo"),
        "{}",
        describe(&out)
    );
    let names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        ["precious"],
        "the demo wrote into a directory it did not make"
    );
}
