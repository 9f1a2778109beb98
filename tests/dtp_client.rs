//! The DTP client against the real DTP service: a host home whose service
//! (`dsync -home H -service -foreground`) serves repositories from its
//! webroot, and mirrors synced from it, in process through
//! `dsync::dtp::client::sync` or as the scheduler runs them
//! (`dsync -home CLIENT -sync NAME`).

mod support;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dsync::dtp::client::{self, ClientError, ClientOptions, Summary};
use sha2::Digest;
use support::apt::{CheckOptions, apt_available, check_consistent_with};
use support::archive::{self, ArchiveSpec, TreeEntry, small_spec, snapshot_diff, tree_snapshot};
use support::dtp_host::DtpHost;
use support::site::assert_success;

/// A sync in process; its log lines come back with the result.
fn sync_with(
    host: &DtpHost,
    repo: &str,
    save: &Path,
    tweak: impl FnOnce(&mut ClientOptions),
) -> (Result<Summary, ClientError>, Vec<String>) {
    let mut options = ClientOptions::new(&host.url(repo), save.to_path_buf());
    options.timeout = Duration::from_secs(30);
    tweak(&mut options);
    let lines = RefCell::new(Vec::new());
    let result = client::sync(&options, &|line: &str| {
        lines.borrow_mut().push(line.to_string())
    });
    (result, lines.into_inner())
}

#[track_caller]
fn sync_ok(host: &DtpHost, repo: &str, save: &Path) -> Summary {
    let (result, log) = sync_with(host, repo, save, |_| {});
    match result {
        Ok(summary) => summary,
        Err(e) => panic!(
            "sync failed: {e}\nlog:\n{}\nservice:\n{}",
            log.join("\n"),
            host.output()
        ),
    }
}

/// The upstream's tree as a mirror should hold it (nothing of the host's
/// but data.dsync is in it).
fn upstream_view(root: &Path) -> BTreeMap<String, TreeEntry> {
    tree_snapshot(root)
}

/// The mirror's tree without the trace files a scheduled sync adds (our own
/// trace, `_hierarchy`, `_hierarchy.mirror`, `_traces`) where the upstream
/// has none of its own.
fn mirror_view(save: &Path, upstream: &BTreeMap<String, TreeEntry>) -> BTreeMap<String, TreeEntry> {
    let ours = format!("project/trace/{}", dsync::host::fqdn());
    let mut tree = tree_snapshot(save);
    tree.retain(|path, _| {
        let added = path == &ours
            || ["_hierarchy", "_hierarchy.mirror", "_traces"]
                .iter()
                .any(|f| path == &format!("project/trace/{f}"));
        !added || upstream.contains_key(path)
    });
    tree
}

#[track_caller]
fn assert_mirrors(host: &DtpHost, repo: &str, save: &Path) {
    let mut upstream = upstream_view(&host.root(repo));
    let mut mirror = mirror_view(save, &upstream);
    if save
        .join("project/trace")
        .join(dsync::host::fqdn())
        .exists()
    {
        // The scheduler's sync lists its own trace files in the installed
        // manifest (tested in hooks_run_at_ftpsyncs_points...).
        upstream.remove("data.dsync");
        mirror.remove("data.dsync");
    }
    let diff = snapshot_diff(&upstream, &mirror);
    assert!(
        diff.is_empty(),
        "mirror differs from upstream:\n{}",
        diff.join("\n")
    );
}

#[track_caller]
fn assert_consistent(save: &Path, spec: &ArchiveSpec) {
    let options = CheckOptions {
        apt: apt_available(),
        ..CheckOptions::default()
    };
    if !options.apt {
        eprintln!("apt-get not available: checking hashes only");
    }
    if let Err(problems) = check_consistent_with(save, spec, &options) {
        panic!("mirror not consistent:\n{}", problems.join("\n"));
    }
}

/// A client dsync home with one repository synced by DTP from `host`.
fn client_home(dir: &Path, host: &DtpHost, repo: &str, xync: &str) -> (PathBuf, PathBuf) {
    let home = dir.join("client");
    let save = dir.join("mirror").join(repo);
    std::fs::create_dir_all(home.join("repos")).unwrap();
    std::fs::create_dir_all(&save).unwrap();
    std::fs::write(home.join("xync.conf"), xync).unwrap();
    std::fs::write(
        home.join("repos").join(format!("{repo}.conf")),
        format!(
            "repo={repo}\nsave={}\ndsync-url={}\n",
            save.display(),
            host.url(repo)
        ),
    )
    .unwrap();
    (home, save)
}

fn dsync(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dsync"));
    cmd.arg("-home")
        .arg(home)
        .env("DSYNC_RETRY_WAIT", "1")
        .env("DSYNC_SENDMAIL", "/bin/true")
        .env_remove(client::STOP_AFTER_STAGE1);
    cmd
}

#[test]
fn archive_stays_consistent_through_revisions_and_between_stages() {
    let host = DtpHost::start(&["debian"], 0);
    let spec = ArchiveSpec::default();
    let up = host.root("debian");
    archive::write_revision(&up, &spec, 1).unwrap();
    host.gendsync("debian");
    let work = tempfile::tempdir().unwrap();
    let (home, save) = client_home(work.path(), &host, "debian", "");

    let first = sync_ok(&host, "debian", &save);
    assert!(!first.unchanged);
    assert!(first.fetched_files > 0 && first.fetched_bytes > 0);
    assert_mirrors(&host, "debian", &save);
    assert_consistent(&save, &spec);
    assert_eq!(
        std::fs::read(save.join("data.dsync")).unwrap(),
        std::fs::read(up.join("data.dsync")).unwrap(),
        "the fetched manifest is installed as it was served"
    );

    for rev in [2, 3] {
        archive::write_revision(&up, &spec, rev).unwrap();
        host.gendsync("debian");
        let release = std::fs::read(save.join("dists/bookworm/Release")).unwrap();
        // Stage one only, as the scheduler runs it: apt still sees the old revision whole.
        let out = dsync(&home)
            .args(["-sync", "debian"])
            .env(client::STOP_AFTER_STAGE1, "1")
            .output()
            .unwrap();
        assert_success(&out);
        assert_eq!(
            std::fs::read(save.join("dists/bookworm/Release")).unwrap(),
            release,
            "rev {rev}: stage one leaves Release alone"
        );
        assert_consistent(&save, &spec);
        // Then the whole sync.
        let summary = sync_ok(&host, "debian", &save);
        assert!(summary.deleted > 0, "rev {rev} drops old pool files");
        assert_mirrors(&host, "debian", &save);
        assert_consistent(&save, &spec);
        assert_eq!(
            archive::read_serial(&save),
            Some(archive::serial(rev)),
            "rev {rev}"
        );
    }
}

#[test]
fn unchanged_upstream_answers_304_and_the_tree_is_not_walked() {
    let host = DtpHost::start(&["repo"], 0);
    let spec = small_spec();
    archive::write_revision(&host.root("repo"), &spec, 1).unwrap();
    host.gendsync("repo");
    let save = tempfile::tempdir().unwrap();
    let first = sync_ok(&host, "repo", save.path());
    assert!(!first.unchanged);
    let (second, log) = sync_with(&host, "repo", save.path(), |_| {});
    let second = second.unwrap();
    assert_eq!(
        second,
        Summary {
            unchanged: true,
            fetched_files: 0,
            fetched_bytes: 0,
            deleted: 0,
            entries: first.entries,
        }
    );
    let log = log.join("\n");
    assert!(log.contains("not modified"), "{log}");
    assert!(!log.contains("comparing with the local tree"), "{log}");
    assert!(
        host.access_log().contains("/repo/data.dsync\" 304"),
        "{}",
        host.access_log()
    );
}

#[test]
fn a_file_that_does_not_match_the_manifest_fails_and_changes_nothing() {
    let host = DtpHost::start(&["repo"], 0);
    let up = host.root("repo");
    let spec = small_spec();
    archive::write_revision(&up, &spec, 1).unwrap();
    host.gendsync("repo");
    let save = tempfile::tempdir().unwrap();
    sync_ok(&host, "repo", save.path());

    // One changed file, served with other bytes than the manifest lists.
    let readme = up.join("README");
    let mtime = std::fs::metadata(&readme).unwrap().modified().unwrap();
    let mut text = std::fs::read(&readme).unwrap();
    text[0] ^= 1;
    std::fs::write(&readme, &text).unwrap();
    set_mtime(&readme, mtime + Duration::from_secs(60));
    host.gendsync("repo");
    text[1] ^= 1;
    std::fs::write(&readme, &text).unwrap();
    set_mtime(&readme, mtime + Duration::from_secs(60));

    let before = tree_snapshot(save.path());
    let (result, log) = sync_with(&host, "repo", save.path(), |_| {});
    match result {
        Err(e @ ClientError::Verify { .. }) => {
            assert!(!e.is_transient());
            assert!(e.to_string().contains("README"), "{e}");
        }
        other => panic!("{other:?}\n{}", log.join("\n")),
    }
    let diff = snapshot_diff(&before, &tree_snapshot(save.path()));
    assert!(diff.is_empty(), "{}", diff.join("\n"));
}

#[test]
fn a_bad_index_leaves_the_old_revision_whole() {
    let host = DtpHost::start(&["repo"], 0);
    let up = host.root("repo");
    let spec = small_spec();
    archive::write_revision(&up, &spec, 1).unwrap();
    host.gendsync("repo");
    let save = tempfile::tempdir().unwrap();
    sync_ok(&host, "repo", save.path());
    let release = std::fs::read(save.path().join("dists/bookworm/Release")).unwrap();
    let manifest = std::fs::read(save.path().join("data.dsync")).unwrap();

    archive::write_revision(&up, &spec, 2).unwrap();
    host.gendsync("repo");
    let packages = up.join("dists/bookworm/main/binary-amd64/Packages");
    let mtime = std::fs::metadata(&packages).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&packages).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&packages, &bytes).unwrap();
    set_mtime(&packages, mtime);

    let (result, log) = sync_with(&host, "repo", save.path(), |_| {});
    assert!(
        matches!(result, Err(ClientError::Verify { .. })),
        "{result:?}\n{}",
        log.join("\n")
    );
    assert_eq!(
        std::fs::read(save.path().join("dists/bookworm/Release")).unwrap(),
        release
    );
    assert_eq!(
        std::fs::read(save.path().join("data.dsync")).unwrap(),
        manifest,
        "a failed sync keeps the old manifest"
    );
    assert_consistent(save.path(), &spec);
}

#[test]
fn more_deletions_than_max_delete_are_refused_before_anything_changes() {
    let host = DtpHost::start(&["repo"], 0);
    let up = host.root("repo");
    for i in 0..20 {
        std::fs::create_dir_all(up.join("many")).unwrap();
        std::fs::write(up.join(format!("many/f{i}")), format!("{i}\n")).unwrap();
    }
    std::fs::write(up.join("keep"), "keep\n").unwrap();
    host.gendsync("repo");
    let save = tempfile::tempdir().unwrap();
    sync_ok(&host, "repo", save.path());

    std::fs::remove_dir_all(up.join("many")).unwrap();
    std::fs::write(up.join("new"), "new\n").unwrap();
    host.gendsync("repo");
    let before = tree_snapshot(save.path());
    // Only max-delete is under test here: the shrink guard (21 of 22 files
    // gone) would refuse first.
    let (result, log) = sync_with(&host, "repo", save.path(), |o| {
        o.max_delete = 10;
        o.min_upstream_ratio = 0.0;
    });
    match result {
        Err(ClientError::TooManyDeletions { count: 21, max: 10 }) => {}
        other => panic!("{other:?}\n{}", log.join("\n")),
    }
    let diff = snapshot_diff(&before, &tree_snapshot(save.path()));
    assert!(diff.is_empty(), "{}", diff.join("\n"));

    let (result, _) = sync_with(&host, "repo", save.path(), |o| {
        o.max_delete = 21;
        o.min_upstream_ratio = 0.0;
    });
    assert_eq!(result.unwrap().deleted, 21);
    assert_mirrors(&host, "repo", save.path());
}

#[test]
fn an_emptied_upstream_is_refused_before_anything_changes() {
    let host = DtpHost::start(&["repo"], 0);
    let up = host.root("repo");
    std::fs::create_dir_all(up.join("pool")).unwrap();
    for i in 0..10 {
        std::fs::write(up.join(format!("pool/f{i}")), format!("{i}\n")).unwrap();
    }
    host.gendsync("repo");
    let save = tempfile::tempdir().unwrap();
    sync_ok(&host, "repo", save.path());

    // 7 of 10 files gone, one new: 4 listed, under half of the mirror's 10.
    for i in 0..7 {
        std::fs::remove_file(up.join(format!("pool/f{i}"))).unwrap();
    }
    std::fs::write(up.join("pool/new"), "new\n").unwrap();
    host.gendsync("repo");
    let before = tree_snapshot(save.path());
    let (result, log) = sync_with(&host, "repo", save.path(), |_| {});
    match &result {
        Err(e @ ClientError::Shrunk(_)) => {
            let text = e.to_string();
            assert!(
                text.contains("upstream lists only 4 regular files, fewer than 50% of the 10"),
                "{text}"
            );
            assert!(text.contains("min-upstream-ratio=0 in xync.conf"), "{text}");
        }
        other => panic!("{other:?}\n{}", log.join("\n")),
    }
    let diff = snapshot_diff(&before, &tree_snapshot(save.path()));
    assert!(diff.is_empty(), "{}", diff.join("\n"));

    let (result, _) = sync_with(&host, "repo", save.path(), |o| o.min_upstream_ratio = 0.0);
    assert_eq!(result.unwrap().deleted, 7);
    assert_mirrors(&host, "repo", save.path());
}

#[test]
fn a_partial_download_is_resumed_with_a_range_request() {
    let host = DtpHost::start(&["repo"], 0);
    let up = host.root("repo");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(up.join("big.bin"), &data).unwrap();
    // Larger than a batch takes (1 MiB): its own request, resumable.
    std::fs::write(up.join("other.bin"), &data[..1_200_000]).unwrap();
    host.gendsync("repo");
    let save = tempfile::tempdir().unwrap();
    // What an interrupted run leaves: the first megabyte, right.
    std::fs::write(save.path().join(".big.bin.dsync-part"), &data[..1_000_000]).unwrap();
    // And an outdated part of another file: fetched again from zero.
    std::fs::write(save.path().join(".other.bin.dsync-part"), b"stale bytes").unwrap();
    let summary = sync_ok(&host, "repo", save.path());
    assert_eq!(std::fs::read(save.path().join("big.bin")).unwrap(), data);
    assert!(!save.path().join(".big.bin.dsync-part").exists());
    assert!(!save.path().join(".other.bin.dsync-part").exists());
    assert_mirrors(&host, "repo", save.path());
    // The rest of big.bin; other.bin resumed after its 11 bytes, found
    // wrong, then fetched whole.
    assert_eq!(
        summary.fetched_bytes,
        2_000_000 + (1_200_000 - 11) + 1_200_000
    );
    let log = host.access_log();
    assert!(
        log.lines()
            .any(|l| l.contains("/repo/big.bin\" 206 2000000")),
        "{log}"
    );
}

#[test]
fn an_update_in_progress_upstream_is_waited_for_then_given_up() {
    let host = DtpHost::start(&["repo"], 0);
    let up = host.root("repo");
    std::fs::write(up.join("file"), "x\n").unwrap();
    std::fs::write(up.join("Archive-Update-in-Progress-up.example.org"), "").unwrap();
    host.gendsync("repo");
    let save = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (result, log) = sync_with(&host, "repo", save.path(), |o| {
        o.uip_sleep = Duration::from_millis(300);
        o.uip_retries = 2;
    });
    match result {
        Err(ClientError::UpdateInProgress { tries: 3, .. }) => {}
        other => panic!("{other:?}\n{}", log.join("\n")),
    }
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert_eq!(
        log.iter().filter(|l| l.contains("updating")).count(),
        2,
        "{log:?}"
    );
    assert!(!save.path().join("file").exists());
    let manifests = host
        .access_log()
        .lines()
        .filter(|l| l.contains("/repo/data.dsync\" 200"))
        .count();
    assert_eq!(manifests, 3);
}

#[test]
fn a_planted_symlink_never_leads_writes_out_of_the_mirror() {
    let host = DtpHost::start(&["repo"], 0);
    let up = host.root("repo");
    archive::write_revision(&up, &small_spec(), 1).unwrap();
    // A hostile upstream's symlink out of the tree is not made either.
    std::os::unix::fs::symlink("/etc", up.join("evil")).unwrap();
    std::os::unix::fs::symlink("../../..", up.join("dists/up")).unwrap();
    host.gendsync("repo");
    let save = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), save.path().join("dists")).unwrap();
    std::fs::create_dir(save.path().join("pool")).unwrap();
    std::os::unix::fs::symlink(outside.path(), save.path().join("pool/main")).unwrap();

    let (result, log) = sync_with(&host, "repo", save.path(), |_| {});
    result.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing written outside"
    );
    assert!(
        std::fs::symlink_metadata(save.path().join("dists"))
            .unwrap()
            .is_dir()
    );
    assert!(std::fs::symlink_metadata(save.path().join("evil")).is_err());
    assert!(std::fs::symlink_metadata(save.path().join("dists/up")).is_err());
    let skipped: Vec<_> = log.iter().filter(|l| l.contains("leads out of")).collect();
    assert_eq!(skipped.len(), 2, "{log:?}");
    let mut expected = upstream_view(&up);
    expected.remove("evil");
    expected.remove("dists/up");
    let diff = snapshot_diff(&expected, &tree_snapshot(save.path()));
    assert!(diff.is_empty(), "{}", diff.join("\n"));
}

#[test]
fn the_scheduler_syncs_by_dtp_from_every_ipadd_address() {
    let host = DtpHost::start(&["repo"], 0);
    let up = host.root("repo");
    let spec = small_spec();
    archive::write_revision(&up, &spec, 1).unwrap();
    host.gendsync("repo");
    let work = tempfile::tempdir().unwrap();
    let status = work.path().join("www");
    let (home, save) = client_home(
        work.path(),
        &host,
        "repo",
        &format!("ipadd=127.0.0.2,127.0.0.3\nstatus={}\n", status.display()),
    );
    let out = dsync(&home).args(["-sync", "repo"]).output().unwrap();
    let log = std::fs::read_to_string(home.join("logs/repo.log")).unwrap_or_default();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert_mirrors(&host, "repo", &save);
    assert_consistent(&save, &spec);
    assert!(log.contains("DTP: "), "{log}");

    let access = host.access_log();
    for address in ["127.0.0.2", "127.0.0.3"] {
        assert!(
            access
                .lines()
                .any(|l| l.contains(&format!(" {address} GET "))
                    || l.contains(&format!(" {address} POST "))),
            "{address} missing:\n{access}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(status.join("dsync-status/repo")).unwrap(),
        "1"
    );
    let jobs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(status.join("dsync-jobs.json")).unwrap())
            .unwrap();
    let job = &jobs.as_array().unwrap()[0];
    assert_eq!(job["name"], "repo");
    assert_eq!(job["status"], "success");
    assert_eq!(job["upstream"], host.url("repo"));

    // Nothing new upstream: the next run says so.
    let out = dsync(&home).args(["-sync", "repo"]).output().unwrap();
    assert_success(&out);
    let log = std::fs::read_to_string(home.join("logs/repo.log")).unwrap();
    assert!(log.contains("nothing changed upstream"), "{log}");
}

#[test]
fn the_scheduler_reports_a_failed_dtp_sync() {
    let host = DtpHost::start(&["repo"], 0);
    let work = tempfile::tempdir().unwrap();
    let status = work.path().join("www");
    // No manifest upstream: 404.
    let (home, _save) = client_home(
        work.path(),
        &host,
        "repo",
        &format!("status={}\nretries=1\n", status.display()),
    );
    let out = dsync(&home).args(["-sync", "repo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(status.join("dsync-status/repo")).unwrap(),
        "0"
    );
    let log = std::fs::read_to_string(home.join("logs/repo.log")).unwrap();
    assert!(log.contains("no manifest"), "{log}");
}

#[test]
fn names_with_spaces_escapes_and_other_bytes_come_through() {
    use std::os::unix::ffi::OsStrExt;
    let host = DtpHost::start(&["repo"], 0);
    let up = host.root("repo");
    let names: [&[u8]; 8] = [
        b"a b",
        b"q?x",
        b"h#y",
        b"p%41",
        b"\"quoted\" {b} <a> `t`",
        b"back\\slash",
        b"caf\xc3\xa9",
        b"bad\xff\xfe",
    ];
    std::fs::create_dir(up.join("odd dir")).unwrap();
    for (i, name) in names.iter().enumerate() {
        let path = up.join("odd dir").join(std::ffi::OsStr::from_bytes(name));
        std::fs::write(path, format!("file {i}\n")).unwrap();
    }
    host.gendsync("repo");
    let save = tempfile::tempdir().unwrap();
    let summary = sync_ok(&host, "repo", save.path());
    assert_eq!(summary.fetched_files, names.len() as u64);
    assert_mirrors(&host, "repo", save.path());
}

/// A manifest of `files` (name, bytes) and the raw bytes a sync fetches.
fn manifest_of(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in files {
        std::fs::write(dir.path().join(name), data).unwrap();
    }
    let manifest = dsync::dtp::manifest::generate(dir.path(), "r").unwrap();
    let bytes = manifest.encode();
    (dir, bytes)
}

#[test]
fn a_host_that_ignores_ranges_gets_the_file_whole_again() {
    use support::http::{self, Response};
    let data: Vec<u8> = (0..500_000u32).map(|i| (i % 253) as u8).collect();
    let (_up, manifest) = manifest_of(&[("f.bin", &data)]);
    let served = data.clone();
    let server = http::start(move |req| match req.path.as_str() {
        "/r/data.dsync" => Response::status(200).with_body(manifest.clone()),
        "/r/f.bin" => Response::status(200).with_body(served.clone()),
        _ => Response::status(404),
    });
    let save = tempfile::tempdir().unwrap();
    std::fs::write(save.path().join(".f.bin.dsync-part"), &data[..200_000]).unwrap();
    let mut options = ClientOptions::new(&format!("{}/r/", server.url()), save.path().into());
    options.timeout = Duration::from_secs(30);
    let summary = client::sync(&options, &|_| {}).unwrap();
    assert_eq!(std::fs::read(save.path().join("f.bin")).unwrap(), data);
    assert!(!save.path().join(".f.bin.dsync-part").exists());
    assert_eq!(summary.fetched_bytes, 500_000, "from zero");
    let asked = server.requests();
    let file = asked.iter().find(|r| r.path == "/r/f.bin").unwrap();
    assert_eq!(file.header("Range"), Some("bytes=200000-"));
}

#[test]
fn a_host_sending_more_than_the_manifest_lists_is_refused() {
    use support::http::{self, Response};
    let (_up, manifest) = manifest_of(&[("f.bin", b"twelve bytes")]);
    let server = http::start(move |req| match req.path.as_str() {
        "/r/data.dsync" => Response::status(200).with_body(manifest.clone()),
        "/r/f.bin" => Response::status(200).with_body(vec![b'x'; 100_000]),
        _ => Response::status(404),
    });
    let save = tempfile::tempdir().unwrap();
    let options = ClientOptions::new(&format!("{}/r/", server.url()), save.path().into());
    match client::sync(&options, &|_| {}) {
        Err(e @ ClientError::Verify { .. }) => {
            assert!(!e.is_transient());
            assert!(e.to_string().contains("more than the 12 bytes"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let left: Vec<_> = std::fs::read_dir(save.path()).unwrap().collect();
    assert!(left.is_empty(), "nothing kept: {left:?}");
}

#[test]
fn the_scheduler_gives_up_on_an_update_in_progress() {
    let host = DtpHost::start(&["repo"], 0);
    let up = host.root("repo");
    std::fs::write(up.join("Archive-Update-in-Progress-up"), "").unwrap();
    host.gendsync("repo");
    let work = tempfile::tempdir().unwrap();
    let status = work.path().join("www");
    let (home, save) = client_home(
        work.path(),
        &host,
        "repo",
        &format!("status={}\nretries=1\n", status.display()),
    );
    let out = dsync(&home)
        .args(["-sync", "repo"])
        .env("DSYNC_UIPSLEEP", "0")
        .output()
        .unwrap();
    let log = std::fs::read_to_string(home.join("logs/repo.log")).unwrap();
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert_eq!(log.matches("before asking again").count(), 3, "{log}");
    assert!(log.contains("still was after 4 tries"), "{log}");
    assert_eq!(
        std::fs::read_to_string(status.join("dsync-status/repo")).unwrap(),
        "0"
    );
    assert!(!save.join("Archive-Update-in-Progress-up").exists());
}

fn set_mtime(path: &Path, time: std::time::SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

/// hook1..hook4 run at ftpsync's points of a DTP sync (hook2 between the
/// stages sees the old Release), and a Debian-style mirror gets our trace
/// file after every sync that changed it, kept across later syncs though the
/// upstream does not list it; an unchanged upstream touches nothing.
#[test]
fn hooks_run_at_ftpsyncs_points_and_the_trace_is_written() {
    let host = DtpHost::start(&["repo"], 0);
    let up = host.root("repo");
    let spec = small_spec();
    archive::write_revision(&up, &spec, 1).unwrap();
    host.gendsync("repo");
    let work = tempfile::tempdir().unwrap();
    let (home, save) = client_home(work.path(), &host, "repo", "");
    let out_dir = work.path().join("hooks");
    std::fs::create_dir_all(&out_dir).unwrap();
    let order = out_dir.join("order");
    let conf = home.join("repos/repo.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    for n in [1, 3, 4] {
        text.push_str(&format!(
            "hook{n}=sh -c 'echo {n} >> {}'\n",
            order.display()
        ));
    }
    // ftpsync's spelling works too; hook2 keeps the Release it sees.
    text.push_str(&format!(
        "HOOK2=sh -c 'echo 2 >> {o}; cp {r} {k} 2>/dev/null || :'\n",
        o = order.display(),
        r = save.join("dists/bookworm/Release").display(),
        k = out_dir.join("Release-between-stages").display()
    ));
    std::fs::write(&conf, text).unwrap();

    let out = dsync(&home).args(["-sync", "repo"]).output().unwrap();
    let log = || std::fs::read_to_string(home.join("logs/repo.log")).unwrap_or_default();
    assert_eq!(out.status.code(), Some(0), "{}", log());
    assert_eq!(std::fs::read_to_string(&order).unwrap(), "1\n2\n3\n4\n");
    let trace_path = save.join("project/trace").join(dsync::host::fqdn());
    let trace = std::fs::read_to_string(&trace_path).expect("our trace after a DTP sync");
    assert!(
        trace.contains(&format!("Upstream-mirror: {}", host.url("repo"))),
        "{trace}"
    );
    assert!(trace.contains("Trigger: cron"), "{trace}");
    assert!(trace.contains("Archive serial: "), "{trace}");
    // The installed manifest tells the truth about what we wrote after it, so
    // this mirror can serve DTP in turn.
    let installed = dsync::dtp::manifest::Manifest::decode(
        &std::fs::read(save.join("data.dsync")).unwrap(),
        &Default::default(),
    )
    .unwrap();
    for name in [dsync::host::fqdn().as_str(), "_hierarchy", "_traces"] {
        let rel = Path::new("project/trace").join(name);
        let entry = installed
            .find(&rel)
            .unwrap_or_else(|| panic!("{rel:?} not listed"));
        let bytes = std::fs::read(save.join(&rel)).unwrap();
        let digest: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        assert_eq!(entry.sha256, Some(digest), "{rel:?}");
        assert_eq!(entry.size, bytes.len() as u64, "{rel:?}");
    }

    // An unchanged upstream leaves the tree as it is, as ftpsync-cron does:
    // our trace and the installed manifest stay byte for byte (rewriting the
    // manifest would cost a pass over every entry); hooks 1 and 4 still run.
    let before = archive::tree_snapshot(&save);
    let manifest_mtime = std::fs::metadata(save.join("data.dsync"))
        .unwrap()
        .modified()
        .unwrap();
    std::fs::write(&order, "").unwrap();
    let out = dsync(&home).args(["-sync", "repo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", log());
    assert!(log().contains("nothing changed upstream"), "{}", log());
    let diff = archive::snapshot_diff(&before, &archive::tree_snapshot(&save));
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    assert_eq!(
        std::fs::metadata(save.join("data.dsync"))
            .unwrap()
            .modified()
            .unwrap(),
        manifest_mtime
    );
    assert_eq!(std::fs::read_to_string(&order).unwrap(), "1\n4\n");

    // The next revision: hook2 still sees revision 1's Release; our trace stays.
    let release1 = std::fs::read(save.join("dists/bookworm/Release")).unwrap();
    archive::write_revision(&up, &spec, 2).unwrap();
    host.gendsync("repo");
    let out = dsync(&home).args(["-sync", "repo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", log());
    assert_eq!(
        std::fs::read(out_dir.join("Release-between-stages")).unwrap(),
        release1,
        "between the stages the indices are the old ones"
    );
    assert_ne!(
        std::fs::read(save.join("dists/bookworm/Release")).unwrap(),
        release1
    );
    assert!(
        trace_path.exists(),
        "the client never deletes our own trace"
    );
    assert_consistent(&save, &spec);

    // A failing hook fails the sync.
    let text = std::fs::read_to_string(&conf).unwrap() + "hook3=false\n";
    std::fs::write(
        &conf,
        text.replace(
            &format!("hook3=sh -c 'echo 3 >> {}'\n", order.display()),
            "",
        ),
    )
    .unwrap();
    archive::write_revision(&up, &spec, 3).unwrap();
    host.gendsync("repo");
    let out = dsync(&home).args(["-sync", "repo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(log().contains("hook 3 (false) failed"), "{}", log());
}

#[test]
fn entries_that_change_type_or_sort_between_a_folder_and_its_contents_come_through() {
    use std::os::unix::fs::symlink;
    let host = DtpHost::start(&["repo"], 0);
    let up = host.root("repo");
    for d in ["a/b", "was-dir/sub"] {
        std::fs::create_dir_all(up.join(d)).unwrap();
    }
    for f in ["a/b/f", "a-x", "a.y", "was-dir/sub/f", "was-file"] {
        std::fs::write(up.join(f), f).unwrap();
    }
    symlink("a", up.join("link")).unwrap();
    host.gendsync("repo");
    let save = tempfile::tempdir().unwrap();
    sync_ok(&host, "repo", save.path());
    assert_mirrors(&host, "repo", save.path());
    // A leftover of ours in a folder that goes away, and every kind of change.
    std::fs::write(save.path().join("was-dir/sub/.g.dsync-part"), "x").unwrap();
    std::fs::remove_dir_all(up.join("was-dir")).unwrap();
    std::fs::write(up.join("was-dir"), "now a file").unwrap();
    std::fs::remove_file(up.join("was-file")).unwrap();
    std::fs::create_dir(up.join("was-file")).unwrap();
    std::fs::write(up.join("was-file/inner"), "inner").unwrap();
    std::fs::remove_file(up.join("link")).unwrap();
    symlink("a-x", up.join("link")).unwrap();
    std::fs::write(up.join("a/b/f"), "changed, longer").unwrap();
    std::fs::write(up.join("a/c"), "new").unwrap();
    std::fs::remove_file(up.join("a.y")).unwrap();
    host.gendsync("repo");
    let summary = sync_ok(&host, "repo", save.path());
    assert_mirrors(&host, "repo", save.path());
    // a.y; what was in was-dir went with it when stage one replaced it.
    assert_eq!(summary.deleted, 1);
    assert_eq!(
        summary.fetched_files, 4,
        "was-dir, was-file/inner, a/b/f, a/c"
    );
}
