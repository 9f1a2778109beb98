//! Issue 19, the client's disk side: a hostile DTP host (a canned HTTP
//! server in this process, serving a crafted manifest and files) against the
//! real `dsync` binary syncing one repository (`dsync -home H -sync r`).
//! Each test is an attack on the mirror's disk or memory: the sync must
//! refuse it, or get through it, leaving the mirror no worse than before.
//! The tests that need a small file system mount a tmpfs (root only: they
//! print SKIPPED otherwise).

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use dsync::dtp::manifest::{Entry, Kind, Manifest};
use sha2::{Digest, Sha256};
use support::archive::{TreeEntry, tree_snapshot};
use support::http::{self, HttpServer, Request, Response};

const MTIME: i64 = 1_700_000_000;

fn file(path: &str, content: &[u8]) -> Entry {
    Entry {
        kind: Kind::File,
        path: path.into(),
        mode: 0o644,
        size: content.len() as u64,
        mtime: MTIME,
        sha256: Some(Sha256::digest(content).into()),
        target: None,
    }
}

fn dir(path: &str) -> Entry {
    Entry {
        kind: Kind::Dir,
        path: path.into(),
        mode: 0o755,
        size: 0,
        mtime: MTIME,
        sha256: None,
        target: None,
    }
}

fn with_mode(mut entry: Entry, mode: u32) -> Entry {
    entry.mode = mode;
    entry
}

/// A host serving `manifest` as repository `r`, and `files` by path with
/// byte ranges; `on_get` runs before a file's answer (a host may do harm
/// first). Anything else is 404.
fn host(
    manifest: Vec<u8>,
    files: BTreeMap<String, Vec<u8>>,
    on_get: impl Fn(&str) + Send + Sync + 'static,
) -> HttpServer {
    http::start(move |req: &Request| {
        if req.path == "/r/data.dsync" {
            return Response::status(200).with_body(manifest.clone());
        }
        let Some(name) = req.path.strip_prefix("/r/") else {
            return Response::status(404);
        };
        let Some(data) = files.get(name) else {
            return Response::status(404);
        };
        on_get(name);
        ranged(req, data)
    })
}

/// `data`, or from the offset of a `Range: bytes=N-`.
fn ranged(req: &Request, data: &[u8]) -> Response {
    let from = req
        .header("Range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    match from {
        Some(from) if from < data.len() => Response::status(206)
            .with_header(
                "Content-Range",
                &format!("bytes {from}-{}/{}", data.len() - 1, data.len()),
            )
            .with_body(data[from..].to_vec()),
        Some(_) => Response::status(416),
        None => Response::status(200).with_body(data.to_vec()),
    }
}

/// File paths the host was asked for (not the manifest).
fn files_asked(server: &HttpServer) -> Vec<String> {
    let asked = server.requests().into_iter().map(|r| r.path);
    asked.filter(|p| p != "/r/data.dsync").collect()
}

/// A client home syncing repository `r` of `server` into `save` (made
/// here), giving up after one try.
fn client_home(work: &Path, server: &HttpServer, save: &Path) -> PathBuf {
    let home = work.join("client");
    std::fs::create_dir_all(home.join("repos")).unwrap();
    std::fs::create_dir_all(save).unwrap();
    std::fs::write(home.join("xync.conf"), "retries=1\n").unwrap();
    let repo = format!(
        "repo=r\nsave={}\ndsync-url={}/r/\n",
        save.display(),
        server.url()
    );
    std::fs::write(home.join("repos/r.conf"), repo).unwrap();
    home
}

/// `dsync -home HOME -sync r`, and its log.
fn sync(home: &Path) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dsync"))
        .arg("-home")
        .arg(home)
        .args(["-sync", "r"])
        .env("DSYNC_RETRY_WAIT", "1")
        .env("DSYNC_SENDMAIL", "/bin/true")
        .env_remove(dsync::dtp::client::STOP_AFTER_STAGE1)
        .output()
        .unwrap();
    let log = std::fs::read_to_string(home.join("logs/r.log")).unwrap_or_default();
    (out, log)
}

#[track_caller]
fn assert_failed(out: &Output, log: &str, says: &str) {
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains(says), "the log should say {says:?}:\n{log}");
}

#[track_caller]
fn assert_synced(out: &Output, log: &str) {
    assert!(out.status.success(), "{log}");
}

/// A mirror at an earlier revision: a few files, a folder, a symlink.
fn old_mirror(save: &Path) -> BTreeMap<String, TreeEntry> {
    std::fs::create_dir_all(save.join("dists/stable")).unwrap();
    std::fs::write(save.join("dists/stable/Release"), "old release\n").unwrap();
    std::fs::write(save.join("keep.txt"), "kept\n").unwrap();
    std::os::unix::fs::symlink("dists/stable", save.join("current")).unwrap();
    tree_snapshot(save)
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// A small tmpfs, mounted for one test and unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None`, with a loud SKIPPED, when none can be mounted (not root).
    fn mount(test: &str, dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(out) => {
                let why = String::from_utf8_lossy(&out.stderr);
                eprintln!(
                    "SKIPPED {test}: cannot mount a tmpfs ({}); needs root",
                    why.trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED {test}: cannot run mount ({e}); needs root");
                None
            }
        }
    }

    fn free(&self) -> u64 {
        let st = rustix::fs::statvfs(&self.0).unwrap();
        st.f_bavail * st.f_frsize
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Parts and temporary files of ours anywhere under `root`.
fn leftovers(root: &Path) -> Vec<String> {
    let snapshot = tree_snapshot(root);
    let ours = snapshot
        .keys()
        .filter(|p| p.contains(".dsync-part") || p.contains(".dsync-tmp"));
    ours.cloned().collect()
}

/// D3: a manifest listing ~280 MB of folder paths (72,000 folders with
/// 3.8 KB paths, in a 1 MB download) is refused while it is read, before
/// anything changes, naming the limit; the client's memory stays far below
/// what it would take to plan it (each path was kept three times before).
#[test]
fn a_manifest_whose_folders_exceed_the_plan_limit_is_refused_before_anything_changes() {
    let work = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let manifest = deep_folders(14, 72_000);
    eprintln!(
        "manifest of {} bytes made in {:?}",
        manifest.len(),
        started.elapsed()
    );
    assert!(manifest.len() < 2 << 20, "{}", manifest.len());
    let server = host(manifest, BTreeMap::new(), |_| {});
    let save = work.path().join("mirror");
    let home = client_home(work.path(), &server, &save);
    let before = old_mirror(&save);

    let started = std::time::Instant::now();
    let (out, log) = sync(&home);
    eprintln!("refused in {:?}", started.elapsed());
    assert_failed(&out, &log, "268435456 bytes of memory to plan");
    assert!(log.contains("max_plan_bytes"), "{log}");
    assert_eq!(tree_snapshot(&save), before, "the mirror is unchanged");
    // The largest child of this test binary so far: no other test here
    // plans anything large, so it is this sync's.
    let peak = peak_child_rss();
    eprintln!("peak RSS of the refused sync: {} MiB", peak >> 20);
    assert!(peak < 512 << 20, "peak RSS {} MiB", peak >> 20);
}

/// A valid manifest of `depth` nested folders of 255-byte names, and `n`
/// folders of 255-byte names in the deepest: written as text straight into
/// zstd (the body twice: its digest goes first), as the library's writer
/// would be slow for 280 MB in a debug build.
fn deep_folders(depth: usize, n: usize) -> Vec<u8> {
    use std::io::Write;
    let body = |out: &mut dyn Write| {
        let mut deep = String::new();
        for _ in 0..depth {
            if !deep.is_empty() {
                deep.push('/');
            }
            deep.push_str(&"a".repeat(255));
            writeln!(out, "d 0755 - {MTIME} - {deep}").unwrap();
        }
        for i in 0..n {
            writeln!(out, "d 0755 - {MTIME} - {deep}/{i:0255}").unwrap();
        }
    };
    struct Hashing(Sha256);
    impl Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut hashing = Hashing(Sha256::new());
    body(&mut std::io::BufWriter::new(&mut hashing));
    let digest: String = hashing
        .0
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let entries = depth + n;
    let mut out = zstd::Encoder::new(Vec::new(), 3).unwrap();
    let header = format!(
        "DSYNC 1\nrepo r\nentries {entries}\nbytes 0\ngenerated {MTIME}\ndigest sha256:{digest}\n\n"
    );
    out.write_all(header.as_bytes()).unwrap();
    body(&mut std::io::BufWriter::new(&mut out));
    out.finish().unwrap()
}

/// The largest resident size any waited-for child of this process reached.
fn peak_child_rss() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a plain out-parameter of the size getrusage expects.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0);
    usage.ru_maxrss as u64 * 1024
}

/// D5: a manifest listing a 1 GiB file for a mirror on an 8 MiB file
/// system is refused before anything is fetched, naming the mirror, the
/// bytes needed and free, and what to do; the mirror is unchanged.
#[test]
fn a_sync_that_cannot_fit_is_refused_before_anything_is_fetched() {
    const TEST: &str = "a_sync_that_cannot_fit_is_refused_before_anything_is_fetched";
    let work = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(TEST, &work.path().join("disk"), "8m") else {
        return;
    };
    let mut big = file("big.iso", b"");
    big.size = 1 << 30;
    let small = b"small file\n";
    let manifest = Manifest::new("r", MTIME, vec![big, file("small", small)]).encode();
    // The host would serve anything asked: nothing may be.
    let files = BTreeMap::from([("small".to_string(), small.to_vec())]);
    let server = host(manifest, files, |_| {});
    let save = disk.0.join("mirror");
    let home = client_home(work.path(), &server, &save);
    let before = old_mirror(&save);
    let free = disk.free();

    let (out, log) = sync(&home);
    assert_failed(&out, &log, "1073741835 bytes");
    assert!(log.contains(&save.display().to_string()), "{log}");
    assert!(log.contains("free space there"), "{log}");
    assert_eq!(files_asked(&server), Vec::<String>::new(), "{log}");
    assert_eq!(tree_snapshot(&save), before, "the mirror is unchanged");
    assert_eq!(disk.free(), free, "nothing written");
}

/// D5: the disk fills up while a file downloads (the host fills it before
/// answering): the sync fails with "No space left on device" and removes
/// the partial file, which could not complete here; with room again the
/// next run completes.
#[test]
fn a_download_that_runs_out_of_room_leaves_no_partial_file() {
    const TEST: &str = "a_download_that_runs_out_of_room_leaves_no_partial_file";
    let work = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(TEST, &work.path().join("disk"), "8m") else {
        return;
    };
    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    let manifest = Manifest::new("r", MTIME, vec![file("pool.bin", &data)]).encode();
    let files = BTreeMap::from([("pool.bin".to_string(), data.clone())]);
    let filler = disk.0.join("filler");
    let fill = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let server = {
        let (filler, fill) = (filler.clone(), fill.clone());
        let disk = disk.0.clone();
        host(manifest, files, move |_| {
            if fill.load(std::sync::atomic::Ordering::SeqCst) {
                fill_leaving(&disk, &filler, 1 << 20);
            }
        })
    };
    let save = disk.0.join("mirror");
    let home = client_home(work.path(), &server, &save);

    let (out, log) = sync(&home);
    assert_failed(&out, &log, "No space left on device");
    assert_eq!(leftovers(&save), Vec::<String>::new(), "{log}");
    assert!(!save.join("pool.bin").exists());

    fill.store(false, std::sync::atomic::Ordering::SeqCst);
    std::fs::remove_file(&filler).unwrap();
    let (out, log) = sync(&home);
    assert_synced(&out, &log);
    assert_eq!(std::fs::read(save.join("pool.bin")).unwrap(), data);
    assert_eq!(leftovers(&save), Vec::<String>::new());
}

/// Fill the file system of `dir` with `filler` until `leave` bytes are free.
fn fill_leaving(dir: &Path, filler: &Path, leave: u64) {
    let st = rustix::fs::statvfs(dir).unwrap();
    let free = st.f_bavail * st.f_frsize;
    let size = free.saturating_sub(leave) as usize;
    std::fs::write(filler, vec![0u8; size]).unwrap();
}

/// A `.NAME.dsync-part` planted as a hard link to a file outside the
/// mirror is not resumed (appending would change that file): it is
/// replaced, and the file outside stays as it was.
#[test]
fn a_planted_part_that_is_a_hard_link_is_not_appended_to() {
    let work = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
    let manifest = Manifest::new("r", MTIME, vec![file("pool.bin", &data)]).encode();
    let files = BTreeMap::from([("pool.bin".to_string(), data.clone())]);
    let server = host(manifest, files, |_| {});
    let save = work.path().join("mirror");
    let home = client_home(work.path(), &server, &save);
    // On the same file system as the mirror, as a hard link must be.
    let outside = work.path().join("precious");
    std::fs::write(&outside, "a local user's file\n").unwrap();
    std::fs::hard_link(&outside, save.join(".pool.bin.dsync-part")).unwrap();

    let (out, log) = sync(&home);
    assert_synced(&out, &log);
    assert_eq!(std::fs::read(save.join("pool.bin")).unwrap(), data);
    let kept = std::fs::read(&outside).unwrap();
    assert!(
        kept == b"a local user's file\n",
        "the file outside was written to: now {} bytes",
        kept.len()
    );
    assert_eq!(std::fs::metadata(&outside).unwrap().nlink(), 1);
    let asked = server.requests();
    let get = asked.iter().find(|r| r.path == "/r/pool.bin").unwrap();
    assert_eq!(get.header("Range"), None, "fetched from zero: {log}");
}

/// A symlink target of 4096 bytes (Linux makes none over 4095) is refused
/// with the manifest, before stage one: the new index files are not put in
/// place only for the link to fail after them.
#[test]
fn a_symlink_target_linux_cannot_make_fails_before_stage_one() {
    let work = tempfile::tempdir().unwrap();
    let release = b"new release\n";
    let deb = b"a package\n";
    let mut link = dir("current");
    link.kind = Kind::Symlink;
    link.mode = 0o777;
    link.target = Some(PathBuf::from("x".repeat(4096)));
    let entries = vec![
        dir("dists"),
        dir("dists/stable"),
        file("dists/stable/Release", release),
        file("keep.txt", b"kept\n"),
        link,
        dir("pool"),
        file("pool/a.deb", deb),
    ];
    let manifest = Manifest::new("r", MTIME, entries).encode();
    let files = BTreeMap::from([
        ("dists/stable/Release".to_string(), release.to_vec()),
        ("pool/a.deb".to_string(), deb.to_vec()),
    ]);
    let server = host(manifest, files, |_| {});
    let save = work.path().join("mirror");
    let home = client_home(work.path(), &server, &save);
    let before = old_mirror(&save);

    let (out, log) = sync(&home);
    assert_failed(&out, &log, "longer than 4095 bytes");
    assert_eq!(files_asked(&server), Vec::<String>::new(), "{log}");
    assert_eq!(tree_snapshot(&save), before, "the mirror is unchanged");
}

/// Modes an upstream lists that would let local users change the mirror
/// (world- or group-writable folders and files, 1777 without or with the
/// sticky bit, set-id bits) are applied without group and other write and
/// without set-id bits, to new files and folders and to files only
/// `chmod`ed; the sticky bit stays.
#[test]
fn world_writable_modes_from_the_upstream_are_tamed() {
    let work = tempfile::tempdir().unwrap();
    let same = b"already here\n";
    let entries = vec![
        with_mode(dir("open"), 0o777),
        with_mode(file("open/f", b"f\n"), 0o666),
        with_mode(dir("group"), 0o2775),
        with_mode(dir("sticky"), 0o1777),
        with_mode(file("setuid", b"s\n"), 0o4777),
        with_mode(file("same", same), 0o777),
    ];
    let manifest = Manifest::new("r", MTIME, entries).encode();
    let files = BTreeMap::from([
        ("open/f".to_string(), b"f\n".to_vec()),
        ("setuid".to_string(), b"s\n".to_vec()),
    ]);
    let server = host(manifest, files, |_| {});
    let save = work.path().join("mirror");
    let home = client_home(work.path(), &server, &save);
    // Up to date but for its mode: only chmod-ed.
    std::fs::write(save.join("same"), same).unwrap();
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(MTIME as u64);
    let f = std::fs::File::options()
        .write(true)
        .open(save.join("same"))
        .unwrap();
    f.set_modified(time).unwrap();
    drop(f);

    let (out, log) = sync(&home);
    assert_synced(&out, &log);
    let got: Vec<(&str, u32)> = ["open", "open/f", "group", "sticky", "setuid", "same"]
        .into_iter()
        .map(|p| (p, mode(&save.join(p))))
        .collect();
    let want = [
        ("open", 0o755),
        ("open/f", 0o644),
        ("group", 0o755),
        ("sticky", 0o1755),
        ("setuid", 0o755),
        ("same", 0o755),
    ];
    assert_eq!(got, want, "{log}");
    assert_eq!(files_asked(&server).len(), 2, "`same` only chmod-ed");
}
