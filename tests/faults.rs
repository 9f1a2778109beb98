//! Faults, case 4 of tests/README.md: every rsync exit status that matters
//! (0, 5, 10, 12, 23, 24, 25, 30, 35, killed by a signal), through an rsync
//! stand-in that ends that way.
//!
//! - ftpsync mode: Debian's ftpsync and ours on the same config end with the
//!   same exit code (ftpsync's classes: 0/24 fine, 23/30 fine only when a
//!   push arrived meanwhile, anything else a stage failure).
//! - the dsync layer: each status is classified (success, failure, or a
//!   transient failure that is tried again), named in the log by its
//!   meaning, and reflected in the status file.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::site::{Site, script};

/// The statuses of case 4; `137` is rsync killed by SIGKILL.
const STATUSES: [i32; 10] = [0, 5, 10, 12, 23, 24, 25, 30, 35, 137];

/// An rsync stand-in: `--version` (and `--list-only` probes) go to the real
/// rsync; a transfer ends with `status` (137: the process kills itself).
fn fake_rsync(dir: &Path, status: i32) -> PathBuf {
    let path = dir.join(format!("rsync-{status}"));
    let end = if status == 137 {
        "kill -9 $$".to_string()
    } else {
        format!("exit {status}")
    };
    script(
        &path,
        &format!(
            "#!/bin/sh\ncase \" $* \" in *\" --version \"*|*--list-only*) exec rsync \"$@\";; esac\n{end}\n"
        ),
    );
    path
}

fn ftpsync_run(program: &[&str], home: &Path) -> Output {
    let (exe, args) = program.split_first().unwrap();
    Command::new(exe)
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("LOGNAME", "nobody")
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("DSYNC_SENDMAIL", "/bin/true")
        .output()
        .unwrap()
}

#[test]
fn ftpsync_mode_ends_as_debians_ftpsync_for_every_rsync_status() {
    let real = Path::new("/usr/bin/ftpsync");
    if !real.exists() {
        eprintln!(
            "SKIPPED ftpsync_mode_ends_as_debians_ftpsync_for_every_rsync_status: {} is not installed",
            real.display()
        );
        return;
    }
    for status in STATUSES {
        let mut codes = Vec::new();
        for program in [real.to_str().unwrap(), env!("CARGO_BIN_EXE_dsync")] {
            let dir = tempfile::tempdir().unwrap();
            let home = dir.path().join("home");
            std::fs::create_dir_all(home.join(".config/ftpsync")).unwrap();
            std::fs::create_dir_all(dir.path().join("mirror")).unwrap();
            let fake = fake_rsync(dir.path(), status);
            std::fs::write(
                home.join(".config/ftpsync/ftpsync.conf"),
                format!(
                    "MIRRORNAME=mirror.test\nTO={r}/mirror/\nRSYNC_HOST=127.0.0.1\nRSYNC_PATH=debian\n\
                     RSYNC={f}\nLOGDIR={r}/log\nLOCKDIR={r}/lock\nMAILTO=nobody\nUIPRETRIES=0\n",
                    r = dir.path().display(),
                    f = fake.display()
                ),
            )
            .unwrap();
            let args: Vec<&str> = if program == real.to_str().unwrap() {
                vec![program]
            } else {
                vec![program, "ftpsync"]
            };
            let out = ftpsync_run(&args, &home);
            let log =
                std::fs::read_to_string(dir.path().join("log/ftpsync.log.0")).unwrap_or_default();
            codes.push((
                out.status.code(),
                log.contains("Back from rsync with returncode"),
            ));
        }
        assert_eq!(
            codes[1], codes[0],
            "rsync status {status}: ours (left) vs Debian's ftpsync (right)"
        );
    }
}

#[test]
fn the_dsync_layer_classifies_every_rsync_status() {
    for (status, expect_ok, expect_retry) in [
        (0, true, false),
        (24, true, false),
        (23, false, false),
        (5, false, false),
        (25, false, false),
        (10, false, true),
        (12, false, true),
        (30, false, true),
        (35, false, true),
        (137, false, false),
    ] {
        let site = Site::new();
        let status_dir = site.root().join("www");
        site.xync(&format!("retries=2\nstatus={}\n", status_dir.display()));
        site.repo("r", "src=rsync://127.0.0.1:1/r/");
        let fake = fake_rsync(site.root(), status);
        let out = site
            .command(&["-sync", "r"])
            .env("DSYNC_RSYNC", &fake)
            .env("DSYNC_RETRY_WAIT", "0")
            .output()
            .unwrap();
        let log = site.log("r");
        assert_eq!(out.status.success(), expect_ok, "status {status}:\n{log}");
        let meaning = if status == 137 {
            "killed by signal 9".to_string()
        } else {
            format!("rsync exit code {status}: ")
        };
        assert!(
            log.contains(&meaning),
            "status {status}: no {meaning:?} in\n{log}"
        );
        assert_eq!(
            log.contains("try 1/2 failed"),
            expect_retry,
            "status {status}: retried?\n{log}"
        );
        let digit = std::fs::read_to_string(status_dir.join("dsync-status/r")).unwrap();
        assert_eq!(digit, if expect_ok { "1" } else { "0" }, "status {status}");
    }
    // pass-error-temp: 23 and 24 are fine.
    let site = Site::new();
    site.xync("pass-error-temp=true\n");
    site.repo("r", "src=rsync://127.0.0.1:1/r/");
    let out = site
        .command(&["-sync", "r"])
        .env("DSYNC_RSYNC", fake_rsync(site.root(), 23))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", site.log("r"));
}

/// A small tmpfs, mounted for one test and unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Case 7: the disk fills up between the stages (HOOK2 fills the tmpfs the
/// mirror lives on). Stage two fails, the old indices stay in place (apt sees
/// the old revision whole), the trace is not updated; with space again the
/// next run completes and leaves no temporary files.
#[test]
fn disk_full_during_stage_two_keeps_the_old_indices_and_the_next_run_completes() {
    use support::archive::{self, ArchiveSpec};
    let root = tempfile::tempdir().unwrap();
    let disk = match Tmpfs::mount(&root.path().join("disk"), "16m") {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!(
                "SKIPPED disk_full_during_stage_two...: cannot mount a tmpfs ({why}); needs root"
            );
            return;
        }
    };
    let spec = ArchiveSpec::default();
    let up = root.path().join("up");
    let rev1 = archive::write_revision(&up, &spec, 1).unwrap();
    let daemon = support::rsyncd::RsyncDaemon::start("127.0.0.1", &[("debian", &up)]);
    let mirror = disk.0.join("mirror");
    let filler = disk.0.join("filler");
    let home = root.path().join("home");
    std::fs::create_dir_all(home.join(".config/ftpsync")).unwrap();
    let hook = root.path().join("fill-disk");
    script(
        &hook,
        &format!(
            "#!/bin/sh\ndd if=/dev/zero of={} bs=64k 2>/dev/null; exit 0\n",
            filler.display()
        ),
    );
    let conf = |hook2: &str| {
        std::fs::write(
            home.join(".config/ftpsync/ftpsync.conf"),
            format!(
                "MIRRORNAME=mirror.test\nTO={m}/\nRSYNC_HOST=127.0.0.1\nRSYNC_EXTRA=\"--port={p}\"\n\
                 LOGDIR={r}/log\nMAILTO=nobody\nHOOK2={hook2}\n",
                m = mirror.display(),
                p = daemon.port(),
                r = root.path().display()
            ),
        )
        .unwrap()
    };
    let ftpsync = || ftpsync_run(&[env!("CARGO_BIN_EXE_dsync"), "ftpsync"], &home);
    conf("");
    assert_eq!(ftpsync().status.code(), Some(0));
    let release = mirror.join("dists/bookworm/Release");
    let old_release = std::fs::read(&release).unwrap();

    let rev2 = archive::write_revision(&up, &spec, 2).unwrap();
    conf(&hook.display().to_string());
    let out = ftpsync();
    let log = std::fs::read_to_string(root.path().join("log/ftpsync.log.0")).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(4),
        "stage two fails on a full disk:\n{log}"
    );
    let errors =
        std::fs::read_to_string(root.path().join("log/rsync-ftpsync.error.0")).unwrap_or_default();
    assert!(
        errors.contains("No space left on device"),
        "the disk was full:\n{errors}"
    );
    assert_eq!(
        std::fs::read(&release).unwrap(),
        old_release,
        "the old Release stays"
    );
    let trace = std::fs::read_to_string(mirror.join("project/trace/mirror.test")).unwrap();
    assert!(
        trace.contains(&format!("Archive serial: {}", rev1.serial)),
        "trace not updated:\n{trace}"
    );
    if support::apt::apt_available() {
        support::apt::check_consistent(&mirror, &spec)
            .unwrap_or_else(|p| panic!("after the failed stage two: {}", p.join("\n")));
    }

    // Space again: the next run completes and cleans up.
    std::fs::remove_file(&filler).unwrap();
    conf("");
    let out = ftpsync();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let trace = std::fs::read_to_string(mirror.join("project/trace/mirror.test")).unwrap();
    assert!(
        trace.contains(&format!("Archive serial: {}", rev2.serial)),
        "{trace}"
    );
    let leftovers = Command::new("find")
        .arg(&mirror)
        .args(["-name", ".~tmp~", "-o", "-name", ".*.??????"])
        .output()
        .unwrap();
    assert!(
        leftovers.stdout.is_empty(),
        "temporary files left: {}",
        String::from_utf8_lossy(&leftovers.stdout)
    );
    if support::apt::apt_available() {
        support::apt::check_consistent(&mirror, &spec)
            .unwrap_or_else(|p| panic!("{}", p.join("\n")));
    }
}

/// Names an upstream may hold that break naive tools: a newline, a tab, a
/// control character, invalid UTF-8, a leading dash, glob characters.
fn hostile_names() -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStringExt;
    [
        &b"new\nline"[..],
        b"tab\there",
        b"ctrl\x01char",
        b"bad\xff\xfeutf8",
        b"-dash-start",
        b"*glob?[x]",
        b"space name",
    ]
    .iter()
    .map(|n| std::ffi::OsString::from_vec(n.to_vec()))
    .collect()
}

/// Every entry below `dir`, raw names, with file contents.
fn raw_tree(dir: &Path) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let mut tree = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(dir)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            if path.is_dir() {
                stack.push(path);
                tree.insert(rel, Vec::new());
            } else {
                tree.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    tree
}

/// Case 10: hostile names are mirrored byte for byte, in general mode and in
/// ftpsync mode, and ftpsync mode's rsync log shows them escaped (one line each).
#[test]
fn hostile_file_names_are_mirrored_exactly_and_logged_escaped() {
    let mut site = Site::new();
    let up = site.root().join("up/odd");
    std::fs::create_dir_all(up.join("sub")).unwrap();
    for (i, name) in hostile_names().iter().enumerate() {
        std::fs::write(up.join(name), format!("file {i}\n")).unwrap();
        std::fs::write(up.join("sub").join(name), format!("sub {i}\n")).unwrap();
    }
    let port = site.serve();
    let save = site.repo("odd", &site.src("odd"));
    let out = site.run(&["-sync", "odd"]);
    assert!(out.status.success(), "{}", site.log("odd"));
    assert_eq!(raw_tree(&save), raw_tree(&up), "general mode");

    // ftpsync mode, through the same daemon.
    let home = site.root().join("ftpsync-home");
    let mirror = site.root().join("ftpsync-mirror");
    std::fs::create_dir_all(home.join(".config/ftpsync")).unwrap();
    std::fs::write(
        home.join(".config/ftpsync/ftpsync.conf"),
        format!(
            "MIRRORNAME=mirror.test\nTO={m}/\nRSYNC_HOST=127.0.0.1\nRSYNC_PATH=odd\n\
             RSYNC_EXTRA=\"--port={port}\"\nLOGDIR={r}/ftpsync-log\nMAILTO=nobody\n",
            m = mirror.display(),
            r = site.root().display()
        ),
    )
    .unwrap();
    let out = ftpsync_run(&[env!("CARGO_BIN_EXE_dsync"), "ftpsync"], &home);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let mut mirrored = raw_tree(&mirror);
    mirrored.retain(|k, _| !k.starts_with(b"project"));
    assert_eq!(mirrored, raw_tree(&up), "ftpsync mode");
    // rsync's own log (as ftpsync writes it) escapes control characters, so
    // every name stays on one line; bytes >= 0x80 it writes as they are.
    let log = std::fs::read(site.root().join("ftpsync-log/rsync-ftpsync.log.0")).unwrap();
    let log = String::from_utf8_lossy(&log);
    assert!(
        log.contains("new\\#012line") && log.contains("ctrl\\#001char"),
        "{log}"
    );
    assert!(
        !log.contains('\u{1}'),
        "no raw control characters in the log"
    );
    for line in log.lines() {
        assert!(line.starts_with("20"), "a name broke a log line: {line:?}");
    }
}

/// A dsync home for the case-7 tests below: `status=` in `root/www`, one
/// try per run, and one repository `debian` saved into `mirror`.
fn disk_full_home(root: &Path, mirror: &Path, repo_lines: &str) -> PathBuf {
    let home = root.join("home");
    std::fs::create_dir_all(home.join("repos")).unwrap();
    std::fs::create_dir_all(mirror).unwrap();
    std::fs::write(
        home.join("xync.conf"),
        format!("status={}\nretries=1\n", root.join("www").display()),
    )
    .unwrap();
    std::fs::write(
        home.join("repos/debian.conf"),
        format!("repo=debian\nsave={}\n{repo_lines}\n", mirror.display()),
    )
    .unwrap();
    home
}

fn dsync_home(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dsync"));
    cmd.arg("-home")
        .arg(home)
        .env("DSYNC_RETRY_WAIT", "0")
        .env("DSYNC_SENDMAIL", "/bin/true")
        .env_remove("DSYNC_RSYNC")
        .env_remove("DSYNC_DTP_STOP_AFTER_STAGE1");
    cmd
}

/// What the dsync layer's case-7 tests assert once stage two has failed on
/// a full disk, and again once the next run, with space, has completed.
struct DiskFullChecks<'a> {
    name: &'a str,
    root: &'a Path,
    home: &'a Path,
    mirror: &'a Path,
    spec: &'a support::archive::ArchiveSpec,
}

impl DiskFullChecks<'_> {
    fn log(&self) -> String {
        std::fs::read_to_string(self.home.join("logs/debian.log")).unwrap_or_default()
    }

    #[track_caller]
    fn after_failed_stage_two(&self, out: &Output, old_release: &[u8]) {
        let name = self.name;
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: stage two fails on a full disk\n{}",
            self.log()
        );
        assert!(
            self.log().contains("No space left on device"),
            "{name}: the log says why:\n{}",
            self.log()
        );
        assert_eq!(
            support::mirrors::job_status(&self.root.join("www"), "debian"),
            ("0".to_string(), "failed".to_string()),
            "{name}: the status files say failed"
        );
        assert!(
            std::fs::read(self.mirror.join("dists/bookworm/Release")).unwrap() == old_release,
            "{name}: the old Release stays"
        );
        let options = support::apt::CheckOptions {
            apt: support::apt::apt_available(),
            ..Default::default()
        };
        support::apt::check_consistent_with(self.mirror, self.spec, &options).unwrap_or_else(|p| {
            panic!(
                "{name}: after the failed stage two apt must see the old revision whole:\n{}",
                p.join("\n")
            )
        });
    }

    #[track_caller]
    fn after_next_run(&self, out: &Output, upstream: &Path, serial: &str) {
        let name = self.name;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: with space again the next run completes\n{}",
            self.log()
        );
        assert_eq!(
            support::mirrors::job_status(&self.root.join("www"), "debian"),
            ("1".to_string(), "success".to_string()),
            "{name}: the status files after the next run"
        );
        assert_eq!(
            support::archive::read_serial(self.mirror).as_deref(),
            Some(serial),
            "{name}: the new revision"
        );
        let diff = support::mirrors::differences(upstream, self.mirror);
        assert!(
            diff.is_empty(),
            "{name}: the mirror differs from the upstream:\n{}",
            diff.join("\n")
        );
        let left = support::mirrors::leftovers(self.mirror);
        assert!(
            left.is_empty(),
            "{name}: temporary files left:\n{}",
            left.join("\n")
        );
        if support::apt::apt_available() {
            support::apt::check_consistent(self.mirror, self.spec)
                .unwrap_or_else(|p| panic!("{name}: {}", p.join("\n")));
        }
    }
}

/// A 16 MiB tmpfs holding `mirror`, and `fill`, a hook that fills it while
/// the file `flag` exists: the rig of the case-7 tests of the dsync layer.
struct FullDisk {
    root: tempfile::TempDir,
    disk: Tmpfs,
    mirror: PathBuf,
    flag: PathBuf,
    fill: PathBuf,
}

impl FullDisk {
    /// `None` (with a loud SKIPPED) when no tmpfs can be mounted.
    fn new(name: &str) -> Option<FullDisk> {
        let root = tempfile::tempdir().unwrap();
        let disk = match Tmpfs::mount(&root.path().join("disk"), "16m") {
            Ok(disk) => disk,
            Err(why) => {
                eprintln!("SKIPPED {name}: cannot mount a tmpfs ({why}); needs root");
                return None;
            }
        };
        let mirror = disk.0.join("mirror");
        let flag = root.path().join("fill");
        let fill = root.path().join("fill-disk");
        script(
            &fill,
            &format!(
                "#!/bin/sh\n[ -e {flag} ] && dd if=/dev/zero of={filler} bs=64k 2>/dev/null\nexit 0\n",
                flag = flag.display(),
                filler = disk.0.join("filler").display()
            ),
        );
        Some(FullDisk {
            root,
            disk,
            mirror,
            flag,
            fill,
        })
    }

    fn fill_at_hook2(&self) {
        std::fs::write(&self.flag, "").unwrap();
    }

    fn make_room(&self) {
        std::fs::remove_file(&self.flag).unwrap();
        std::fs::remove_file(self.disk.0.join("filler")).unwrap();
    }
}

/// Case 7 in the dsync layer's general mode: a Debian tree synced in two
/// stages, and the repository's `hook2=` fills the disk between them. Stage
/// two fails (exit 1, status "failed"), the old Release and indices stay and
/// apt sees the old revision whole; with space again the next run completes
/// and leaves no `.~tmp~` or rsync temporary files.
#[test]
fn dsync_layer_disk_full_during_stage_two_keeps_the_old_indices_and_the_next_run_completes() {
    use support::archive::{self, ArchiveSpec};
    let name = "dsync_layer_disk_full_during_stage_two...";
    let Some(rig) = FullDisk::new(name) else {
        return;
    };
    let (root, mirror) = (&rig.root, &rig.mirror);
    let spec = ArchiveSpec::default();
    let up = root.path().join("up");
    archive::write_revision(&up, &spec, 1).unwrap();
    let daemon = support::rsyncd::RsyncDaemon::start("127.0.0.1", &[("debian", &up)]);
    let home = disk_full_home(
        root.path(),
        mirror,
        &format!("src={}\nhook2={}", daemon.url("debian"), rig.fill.display()),
    );
    let run = || dsync_home(&home).output().unwrap();
    let checks = DiskFullChecks {
        name,
        root: root.path(),
        home: &home,
        mirror,
        spec: &spec,
    };
    let out = run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name}: first sync\n{}",
        checks.log()
    );
    let old_release = std::fs::read(mirror.join("dists/bookworm/Release")).unwrap();
    assert!(
        checks.log().contains("stage 2: ") && checks.log().contains("Running hook 2: "),
        "{name}: a Debian tree is synced in two stages, hook2 between them\n{}",
        checks.log()
    );

    let rev2 = archive::write_revision(&up, &spec, 2).unwrap();
    rig.fill_at_hook2();
    let out = run();
    checks.after_failed_stage_two(&out, &old_release);

    rig.make_room();
    let out = run();
    checks.after_next_run(&out, &up, &rev2.serial);
}

/// Case 7 over DTP: the repository's `hook2=` fills the disk between the
/// stages. Stage two's downloads fail (exit 1, status "failed"), no index
/// takes its place, apt sees the old revision whole; with space again the
/// next run completes and leaves no `.dsync-part` files.
#[test]
fn dtp_disk_full_during_stage_two_keeps_the_old_indices_and_the_next_run_completes() {
    use support::archive::{self, ArchiveSpec};
    let name = "dtp_disk_full_during_stage_two...";
    let Some(rig) = FullDisk::new(name) else {
        return;
    };
    let (root, mirror) = (&rig.root, &rig.mirror);
    let spec = ArchiveSpec::default();
    let host = support::dtp_host::DtpHost::start(&["debian"], 0);
    let up = host.root("debian");
    let rev1 = archive::write_revision(&up, &spec, 1).unwrap();
    host.gendsync("debian");
    let home = disk_full_home(
        root.path(),
        mirror,
        &format!(
            "dsync-url={}\nhook2={}",
            host.url("debian"),
            rig.fill.display()
        ),
    );
    let run = || dsync_home(&home).output().unwrap();
    let checks = DiskFullChecks {
        name,
        root: root.path(),
        home: &home,
        mirror,
        spec: &spec,
    };
    let out = run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name}: first sync\n{}\nservice:\n{}",
        checks.log(),
        host.output()
    );
    let old_release = std::fs::read(mirror.join("dists/bookworm/Release")).unwrap();
    let trace = mirror.join("project/trace").join(dsync::host::fqdn());
    let old_trace = std::fs::read(&trace).expect("our trace after the first sync");
    assert!(
        String::from_utf8_lossy(&old_trace).contains(&format!("Archive serial: {}", rev1.serial)),
        "{name}: {}",
        String::from_utf8_lossy(&old_trace)
    );

    let rev2 = archive::write_revision(&up, &spec, 2).unwrap();
    host.gendsync("debian");
    rig.fill_at_hook2();
    let out = run();
    checks.after_failed_stage_two(&out, &old_release);
    assert!(
        std::fs::read(&trace).unwrap() == old_trace,
        "{name}: our trace is not updated by a failed sync"
    );
    assert!(
        checks.log().contains("stage one done"),
        "{name}: the disk filled after stage one\n{}",
        checks.log()
    );

    rig.make_room();
    let out = run();
    checks.after_next_run(&out, &up, &rev2.serial);
}
