//! The point of ftpsync's two stages: a mirror that is a consistent archive at
//! every moment apt might look at it. An upstream Debian-style archive moves
//! through several revisions; after each stage one (seen from `HOOK2`, which
//! snapshots the mirror) and after each whole sync, real `apt-get update` runs
//! against the mirror and every pool file the indices reference is checked.

mod support;

use std::path::Path;
use std::process::Command;

use support::apt;
use support::archive::{self, ArchiveSpec};
use support::rsyncd::RsyncDaemon;

fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn mirror_is_apt_consistent_after_stage_one_and_after_each_sync() {
    if !apt::apt_available() {
        eprintln!("SKIPPED mirror_is_apt_consistent...: apt-get is not installed");
        return;
    }
    let spec = ArchiveSpec::default();
    let up = tempfile::tempdir().unwrap();
    archive::write_revision(up.path(), &spec, 1).unwrap();
    let daemon = RsyncDaemon::start("127.0.0.1", &[("debian", up.path())]);

    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let (mirror, snapshot) = (root.join("mirror"), root.join("after-stage1"));
    let conf_dir = root.join("home/.config/ftpsync");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(
        conf_dir.join("ftpsync.conf"),
        format!(
            "MIRRORNAME=mirror.test\nTO={mirror}/\nRSYNC_HOST=127.0.0.1\n\
             RSYNC_EXTRA=\"--port={port}\"\nLOGDIR={root}/log\nMAILTO=nobody\n\
             HOOK2={root}/snapshot\n",
            mirror = mirror.display(),
            port = daemon.port(),
            root = root.display(),
        ),
    )
    .unwrap();
    // HOOK2 runs between the stages: freeze what apt would see at that moment.
    write_script(
        &root.join("snapshot"),
        &format!(
            "#!/bin/sh\nexec rsync -a --delete {m}/ {s}/\n",
            m = mirror.display(),
            s = snapshot.display()
        ),
    );
    let ftpsync = root.join("ftpsync");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_dsync"), &ftpsync).unwrap();

    let mut previous_release: Option<Vec<u8>> = None;
    for rev in 1..=4 {
        let info = archive::write_revision(up.path(), &spec, rev).unwrap();
        let out = Command::new(&ftpsync)
            .env("HOME", root.join("home"))
            .env("LOGNAME", "nobody")
            .env("DSYNC_SENDMAIL", "/bin/true")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "revision {rev}: {out:?}");

        // After stage one: new pool files are there, the indices are still the old ones.
        let release = Path::new("dists/bookworm/Release");
        if let Some(old) = &previous_release {
            assert_eq!(
                &std::fs::read(snapshot.join(release)).unwrap(),
                old,
                "revision {rev}: stage one must not touch Release"
            );
        }
        for (path, sha) in &info.pool_files {
            let data = std::fs::read(snapshot.join(path))
                .unwrap_or_else(|e| panic!("revision {rev}: {path} missing after stage one: {e}"));
            assert_eq!(&archive::sha256_hex(&data), sha, "revision {rev}: {path}");
        }
        if previous_release.is_none() {
            // First sync into an empty mirror: stage one brings no index at all.
            assert!(
                !snapshot.join(release).exists(),
                "stage one must not fetch Release"
            );
        } else if let Err(problems) = apt::check_consistent(&snapshot, &spec) {
            panic!(
                "revision {rev}: inconsistent after stage one:\n{}",
                problems.join("\n")
            );
        }
        if let Err(problems) = apt::check_consistent(&mirror, &spec) {
            panic!(
                "revision {rev}: inconsistent after the sync:\n{}",
                problems.join("\n")
            );
        }
        let diff = archive::snapshot_diff(
            &without_own_traces(archive::tree_snapshot(up.path())),
            &without_own_traces(archive::tree_snapshot(&mirror)),
        );
        assert!(
            diff.is_empty(),
            "revision {rev}: mirror differs from upstream:\n{}",
            diff.join("\n")
        );
        let trace = std::fs::read_to_string(mirror.join("project/trace/mirror.test")).unwrap();
        assert!(
            trace.contains(&format!("\nArchive serial: {}\n", info.serial)),
            "revision {rev}: trace has the upstream serial: {trace}"
        );
        previous_release = Some(std::fs::read(mirror.join(release)).unwrap());
    }
}

/// The mirror's own trace files are the only files upstream does not have.
fn without_own_traces(
    mut tree: std::collections::BTreeMap<String, archive::TreeEntry>,
) -> std::collections::BTreeMap<String, archive::TreeEntry> {
    for own in [
        "project/trace/mirror.test",
        "project/trace/_hierarchy",
        "project/trace/_hierarchy.mirror",
        "project/trace/_traces",
    ] {
        tree.remove(own);
    }
    tree
}
