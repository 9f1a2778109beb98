//! Trace files and markers are written into the published tree, which the
//! upstream fills: none of them may be written through a symlink the
//! upstream (or anyone) put there (issue 19, D1). Each test is the attack:
//! a real DTP service or rsync daemon as the upstream, the real `dsync`.

mod support;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use sha2::Digest;
use support::archive::{self, small_spec};
use support::dtp_host::DtpHost;
use support::rsyncd::RsyncDaemon;

/// A client home whose one repository `repo` syncs by DTP from `host`.
fn client_home(dir: &Path, host: &DtpHost) -> (std::path::PathBuf, std::path::PathBuf) {
    let home = dir.join("client");
    let save = dir.join("mirror");
    std::fs::create_dir_all(home.join("repos")).unwrap();
    std::fs::create_dir_all(&save).unwrap();
    std::fs::write(home.join("xync.conf"), "").unwrap();
    std::fs::write(
        home.join("repos/repo.conf"),
        format!(
            "repo=repo\nsave={}\ndsync-url={}\n",
            save.display(),
            host.url("repo")
        ),
    )
    .unwrap();
    (home, save)
}

/// `dsync -home HOME -sync repo`: its exit code and the repository's log.
fn sync(home: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dsync"))
        .arg("-home")
        .arg(home)
        .args(["-sync", "repo"])
        .env("DSYNC_RETRY_WAIT", "1")
        .env("DSYNC_SENDMAIL", "/bin/true")
        .output()
        .unwrap();
    let log = std::fs::read_to_string(home.join("logs/repo.log")).unwrap_or_default();
    (out.status.code(), log)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every file the installed manifest lists is in the tree as listed.
#[track_caller]
fn assert_tree_matches_installed_manifest(save: &Path) {
    let installed = dsync::dtp::manifest::Manifest::decode(
        &std::fs::read(save.join("data.dsync")).unwrap(),
        &Default::default(),
    )
    .unwrap();
    for entry in &installed.entries {
        let Some(sha256) = entry.sha256 else { continue };
        let path = save.join(&entry.path);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_file(), "{path:?} is listed as a file");
        let bytes = std::fs::read(&path).unwrap();
        let digest: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        assert_eq!(
            digest, sha256,
            "{path:?} differs from the installed manifest"
        );
    }
}

#[test]
fn a_symlinked_trace_folder_is_never_written_through_after_a_dtp_sync() {
    let host = DtpHost::start(&["repo"], 0);
    let up = host.root("repo");
    archive::write_revision(&up, &small_spec(), 1).unwrap();
    let work = tempfile::tempdir().unwrap();
    let elsewhere = work.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    // The upstream lists `project/trace` as a symlink out of the tree: the
    // client skips it, so the mirror keeps the link it already has.
    std::fs::remove_dir_all(up.join("project/trace")).unwrap();
    symlink(&elsewhere, up.join("project/trace")).unwrap();
    host.gendsync("repo");
    let (home, save) = client_home(work.path(), &host);
    std::fs::create_dir_all(save.join("project")).unwrap();
    symlink(&elsewhere, save.join("project/trace")).unwrap();

    let (code, log) = sync(&home);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        names(&elsewhere),
        Vec::<String>::new(),
        "nothing written through project/trace\n{log}"
    );
    assert!(
        log.contains("not writing the trace") && log.contains("is a symlink or not a folder"),
        "{log}"
    );
    assert!(
        std::fs::symlink_metadata(save.join("project/trace"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn trace_names_the_upstream_made_symlinks_never_overwrite_the_index_files() {
    let host = DtpHost::start(&["repo"], 0);
    let up = host.root("repo");
    archive::write_revision(&up, &small_spec(), 1).unwrap();
    let release = "../../dists/bookworm/Release";
    let fqdn = dsync::host::fqdn();
    // Every name a trace write could go through, as the attack had them.
    for name in [
        "_hierarchy.new".to_string(),
        "_hierarchy.mirror.new".to_string(),
        "_traces.new".to_string(),
        format!("{fqdn}.new"),
    ] {
        symlink(release, up.join("project/trace").join(name)).unwrap();
    }
    // And the names themselves: replaced by our files, never followed.
    symlink(release, up.join("project/trace/_hierarchy.mirror")).unwrap();
    symlink(release, up.join("project/trace").join(&fqdn)).unwrap();
    host.gendsync("repo");
    let work = tempfile::tempdir().unwrap();
    let (home, save) = client_home(work.path(), &host);

    for run in 1..=2 {
        let upstream_release = std::fs::read(up.join("dists/bookworm/Release")).unwrap();
        let (code, log) = sync(&home);
        assert_eq!(code, Some(0), "run {run}: {log}");
        assert!(
            std::fs::read(save.join("dists/bookworm/Release")).unwrap() == upstream_release,
            "run {run}: Release is the upstream's\n{log}"
        );
        let trace = save.join("project/trace").join(&fqdn);
        let meta = std::fs::symlink_metadata(&trace).unwrap();
        assert!(meta.is_file(), "run {run}: our trace is a file of its own");
        assert!(
            std::fs::read_to_string(&trace)
                .unwrap()
                .contains("Running on host:")
        );
        assert_tree_matches_installed_manifest(&save);
        // The next run has something to do.
        archive::write_revision(&up, &small_spec(), 2).unwrap();
        host.gendsync("repo");
    }
}

#[test]
fn ftpsync_mode_refuses_a_symlinked_trace_folder_before_touching_anything() {
    let upstream = tempfile::tempdir().unwrap();
    archive::write_revision(upstream.path(), &small_spec(), 1).unwrap();
    let daemon = RsyncDaemon::start("127.0.0.1", &[("debian", upstream.path())]);
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    let elsewhere = root.join("elsewhere");
    let to = root.join("mirror");
    std::fs::create_dir_all(to.join("project")).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    symlink(&elsewhere, to.join("project/trace")).unwrap();
    std::fs::create_dir_all(root.join("home/.config/ftpsync")).unwrap();
    std::fs::write(
        root.join("home/.config/ftpsync/ftpsync.conf"),
        format!(
            "MIRRORNAME=mirror.test\nTO={to}/\nLOGDIR={r}/log\nMAILTO=ops@example.org\n\
             RSYNC_HOST=127.0.0.1\nRSYNC_EXTRA=\"--port={port}\"\n",
            to = to.display(),
            r = root.display(),
            port = daemon.port()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dsync"))
        .args(["ftpsync", "sync:all"])
        .env("HOME", root.join("home"))
        .env("LOGNAME", "nobody")
        .env("DSYNC_SENDMAIL", "/bin/true")
        .env("DSYNC_ETC_FTPSYNC", root.join("no-etc"))
        .env_remove("SSH_ORIGINAL_COMMAND")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("project/trace"), "{stderr}");
    assert_eq!(names(&elsewhere), Vec::<String>::new(), "{stderr}");
    assert_eq!(names(&to), vec!["project"], "nothing synced: {stderr}");
}
