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
