//! The dsync layer at work: a home with xync.conf and repository files, real
//! rsync daemons on loopback addresses, and `dsync` run as an operator's cron
//! would run it.

mod support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use support::archive::{self, ArchiveSpec};
use support::site::{Site, assert_no_rsync_into, assert_success, script};
use support::wait_for_what;

fn current_hour() -> u32 {
    chrono::Timelike::hour(&chrono::Local::now())
}

#[test]
fn timeset_decides_which_repositories_run() {
    let mut site = Site::new();
    for name in ["now", "later", "always"] {
        site.upstream(name, 10);
    }
    site.serve();
    let hour = current_hour();
    let now = site.repo("now", &format!("{}\ntimeset={hour:02}", site.src("now")));
    let later = site.repo(
        "later",
        &format!("{}\ntimeset={:02}", site.src("later"), (hour + 1) % 24),
    );
    let always = site.repo("always", &site.src("always"));
    let out = site.run(&[]);
    if current_hour() != hour {
        eprintln!(
            "SKIPPED timeset_decides_which_repositories_run: the hour changed during the run"
        );
        return;
    }
    assert_success(&out);
    assert!(now.join("README").exists(), "due this hour");
    assert!(always.join("README").exists(), "no timeset: every run");
    assert!(!later.join("README").exists(), "not due: skipped");
    // -sync NAME runs a repository now, whatever its timeset.
    assert_success(&site.run(&["-sync", "later"]));
    assert!(later.join("README").exists());
    assert_eq!(site.run(&["-sync", "no-such"]).status.code(), Some(64));
}

/// Transfers seen by the daemon, as (start line, end line) per daemon pid.
fn transfers(log: &str) -> Vec<(usize, usize)> {
    let mut spans: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (n, line) in log.lines().enumerate() {
        let Some(pid) = line.split('[').nth(1).and_then(|r| r.split(']').next()) else {
            continue;
        };
        if line.contains("] rsync on ") || line.contains("] rsync to ") {
            spans.insert(pid.to_string(), (n, usize::MAX));
        } else if line.contains(" total size ")
            && let Some(span) = spans.get_mut(pid)
        {
            span.1 = n;
        }
    }
    spans.into_values().collect()
}

fn max_overlap(spans: &[(usize, usize)]) -> usize {
    spans
        .iter()
        .map(|&(start, _)| {
            spans
                .iter()
                .filter(|&&(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn syncps_runs_repositories_side_by_side_as_the_daemon_log_shows() {
    let mut site = Site::new();
    for name in ["r1", "r2", "r3", "r4"] {
        site.upstream(name, 300_000);
    }
    site.serve();
    for name in ["r1", "r2", "r3", "r4"] {
        site.repo(name, &site.src(name));
    }
    site.xync("syncps=2\n");
    let slow = site.slow_rsync(300);
    let out = site
        .command(&[])
        .env("DSYNC_RSYNC", &slow)
        .output()
        .unwrap();
    assert_success(&out);
    let spans = transfers(&site.daemon_log());
    assert!(
        spans.len() >= 4,
        "every repository reached the daemon: {spans:?}"
    );
    assert_eq!(
        max_overlap(&spans),
        2,
        "two at a time:\n{}",
        site.daemon_log()
    );
}

#[test]
fn ipadd_binds_each_address_in_turn() {
    let mut site = Site::new();
    site.upstream("a", 10);
    site.upstream("b", 10);
    site.serve();
    site.repo("a", &site.src("a"));
    site.repo("b", &site.src("b"));
    site.xync("syncps=2\nipadd=127.0.0.2, 127.0.0.3\n");
    assert_success(&site.run(&[]));
    let log = site.daemon_log();
    assert!(
        log.contains("(127.0.0.2)"),
        "first sync from 127.0.0.2:\n{log}"
    );
    assert!(
        log.contains("(127.0.0.3)"),
        "second sync from 127.0.0.3:\n{log}"
    );
}

#[test]
fn status_files_and_json_follow_a_failing_then_a_passing_run() {
    let mut site = Site::new();
    site.upstream("good", 200_000);
    let port = site.serve();
    let status = site.root().join("www");
    site.xync(&format!("status={}\n", status.display()));
    site.repo(
        "web",
        &format!("src=rsync://127.0.0.1:{port}/missing-module/"),
    );
    assert_eq!(site.run(&["-sync", "web"]).status.code(), Some(1));
    let digit = || std::fs::read_to_string(status.join("dsync-status/web")).unwrap();
    assert_eq!(digit(), "0");
    let job = |field: &str| {
        let jobs: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(status.join("dsync-jobs.json")).unwrap())
                .unwrap();
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == "web")
            .unwrap()[field]
            .clone()
    };
    assert_eq!(job("status"), "failed");
    assert_eq!(
        job("last_update_ts"),
        -62135596800i64,
        "never succeeded yet"
    );

    // Fixed upstream; while the (throttled) sync runs the file says 2.
    site.repo("web", &site.src("good"));
    let slow = site.slow_rsync(200);
    let child = site
        .command(&["-sync", "web"])
        .env("DSYNC_RSYNC", &slow)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The digit file and the JSON are two files, written one after the other.
    wait_for_what(Duration::from_secs(30), "status 2 and syncing", || {
        std::fs::read_to_string(status.join("dsync-status/web")).is_ok_and(|d| d == "2")
            && job("status") == "syncing"
    });
    let out = child.wait_with_output().unwrap();
    assert_success(&out);
    assert_eq!(digit(), "1");
    assert_eq!(job("status"), "success");
    assert!(job("last_update_ts").as_i64().unwrap() > 1_700_000_000);
    assert!(job("upstream").as_str().unwrap().ends_with("/good/"));
    let next = job("next_schedule_ts").as_i64().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        next > now && next <= now + 3600,
        "no timeset: the next hourly run ({next})"
    );
}

#[test]
fn a_second_run_skips_a_repository_still_syncing() {
    let mut site = Site::new();
    site.upstream("big", 400_000);
    site.serve();
    let save = site.repo("big", &site.src("big"));
    let slow = site.slow_rsync(100);
    let first = site
        .command(&["-sync", "big"])
        .env("DSYNC_RSYNC", &slow)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid_file = site.home().join("run/big.pid");
    wait_for_what(Duration::from_secs(30), "the first sync's pid file", || {
        pid_file.exists()
    });
    let second = site.run(&["-sync", "big"]);
    assert_success(&second);
    assert!(
        String::from_utf8_lossy(&second.stdout)
            .contains("big: previous sync still running, skipped"),
        "{second:?}"
    );
    let mut first = first;
    assert_eq!(site.run(&["-emoff"]).status.code(), Some(0));
    first.wait().unwrap();
    assert!(save.join(".dsync-emoff").exists());
}

#[test]
fn emoff_stops_a_throttled_sync_leaves_a_marker_and_the_next_run_clears_it() {
    let mut site = Site::new();
    site.upstream("slow", 2_000_000);
    site.serve();
    let status = site.root().join("www");
    site.xync(&format!("status={}\n", status.display()));
    let save = site.repo("slow", &site.src("slow"));
    let slow = site.slow_rsync(50);
    let child = site
        .command(&[])
        .env("DSYNC_RSYNC", &slow)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid_file = site.home().join("run/slow.pid");
    wait_for_what(Duration::from_secs(30), "the worker's pid file", || {
        pid_file.exists()
    });
    let worker: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for_what(Duration::from_secs(30), "rsync to be transferring", || {
        site.daemon_log().contains("rsync on slow/")
    });

    let out = site.run(&["-emoff"]);
    assert_success(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stopped the sync of slow"),
        "{out:?}"
    );
    let out = child.wait_with_output().unwrap();
    assert_ne!(
        out.status.code(),
        Some(0),
        "the stopped run reports failure"
    );
    // SAFETY: signal 0 only checks for existence.
    assert!(
        unsafe { libc::kill(-worker, 0) } != 0,
        "the worker's group is gone"
    );
    assert_no_rsync_into(&save);
    assert!(save.join(".dsync-emoff").exists());
    assert_eq!(
        std::fs::read_to_string(status.join("dsync-status/slow")).unwrap(),
        "0"
    );

    // Next start: marker removed, and (unthrottled) the sync completes.
    let out = site.run(&[]);
    assert_success(&out);
    assert!(!save.join(".dsync-emoff").exists());
    assert!(save.join("big.bin").exists());
}

#[test]
fn transient_failures_are_tried_again() {
    let mut site = Site::new();
    site.upstream("flaky", 10);
    site.serve();
    let save = site.repo("flaky", &site.src("flaky"));
    // The first transfer fails like a dropped connection (rsync exit 10).
    let flaky = site.root().join("flaky-rsync");
    let marker = site.root().join("failed-once");
    script(
        &flaky,
        &format!(
            "#!/bin/sh\ncase \" $* \" in *--list-only*|*\" --version \"*) exec rsync \"$@\";; esac\n\
             [ -e {m} ] || {{ touch {m}; exit 10; }}\nexec rsync \"$@\"\n",
            m = marker.display()
        ),
    );
    let out = site
        .command(&[])
        .env("DSYNC_RSYNC", &flaky)
        .output()
        .unwrap();
    assert_success(&out);
    assert!(save.join("README").exists());
    let log = site.log("flaky");
    assert!(
        log.contains("try 1/3 failed (10: error in socket I/O)"),
        "{log}"
    );
}

#[test]
fn a_debian_archive_is_synced_in_two_stages_and_stays_consistent() {
    let mut site = Site::new();
    let up = site.root().join("up/debian");
    let spec = ArchiveSpec::default();
    archive::write_revision(&up, &spec, 1).unwrap();
    site.serve();
    let save = site.repo("debian", &site.src("debian"));
    assert_success(&site.run(&[]));
    archive::write_revision(&up, &spec, 2).unwrap();
    assert_success(&site.run(&[]));
    let log = site.log("debian");
    assert!(
        log.contains("stage 1: ") && log.contains("--exclude=Packages*"),
        "{log}"
    );
    assert!(log.contains("stage 2: "), "{log}");
    if support::apt::apt_available() {
        support::apt::check_consistent(&save, &spec).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    } else {
        eprintln!("SKIPPED the apt part of a_debian_archive_is_synced_in_two_stages: no apt-get");
    }
}

#[test]
fn a_pasted_ftpsync_conf_runs_the_ftpsync_engine() {
    let mut site = Site::new();
    let up = site.root().join("up/debian");
    archive::write_revision(&up, &ArchiveSpec::default(), 1).unwrap();
    let port = site.serve();
    let save = site.root().join("mirror/debian");
    std::fs::create_dir_all(&save).unwrap();
    let text = format!(
        "repo=debian\nsave={}\nftpsync=true\nMIRRORNAME=mirror.test\nRSYNC_HOST=127.0.0.1\n\
         RSYNC_PATH=debian\nRSYNC_EXTRA=\"--port={port}\"\nMAILTO=nobody\n",
        save.display()
    );
    std::fs::write(site.home().join("repos/debian.conf"), text).unwrap();
    assert_success(&site.run(&[]));
    let trace = std::fs::read_to_string(save.join("project/trace/mirror.test")).unwrap();
    assert!(trace.contains("Archive serial: 2023061001"), "{trace}");
    assert!(
        site.home().join("logs/debian.log.0").exists(),
        "ftpsync-style logs in the home"
    );
}

#[test]
fn nolog_returns_at_once_and_syncs_in_the_background() {
    let mut site = Site::new();
    site.upstream("bg", 10);
    site.serve();
    let save = site.repo("bg", &site.src("bg"));
    let out = site.run(&["-nolog"]);
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("running in the background"));
    wait_for_what(Duration::from_secs(30), "the background sync", || {
        save.join("README").exists()
    });
    wait_for_what(Duration::from_secs(30), "the background run to end", || {
        std::fs::read_to_string(site.home().join("logs/dsync.log"))
            .is_ok_and(|l| l.contains("bg: success"))
    });
}

#[test]
fn cleanlog_deletes_week_old_logs_only() {
    let site = Site::new();
    let logs = site.home().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("old.log"), "x").unwrap();
    std::fs::write(logs.join("new.log"), "y").unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(8 * 24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(logs.join("old.log"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_success(&site.run(&["-cleanlog"]));
    assert!(!logs.join("old.log").exists());
    assert!(logs.join("new.log").exists());
}

#[test]
fn setup_writes_a_repository_file_that_passes_the_check() {
    let site = Site::new();
    let save = site.root().join("mirror/kali");
    std::fs::create_dir_all(&save).unwrap();
    let out = site.run(&[
        "-setup",
        "-repo",
        "kali",
        "-save",
        &save.display().to_string(),
        "-src",
        "rsync://127.0.0.1:1/kali/",
        "-timeset",
        "00,12",
    ]);
    assert_success(&out);
    let text = std::fs::read_to_string(site.home().join("repos/kali.conf")).unwrap();
    assert!(
        text.contains("repo=kali\n") && text.contains("timeset=00,12\n"),
        "{text}"
    );
    // Interactive form: answers on standard input.
    let mut child = site
        .command(&["-setup"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let answers = format!("arch\n{}\nrsync://127.0.0.1:1/arch/\n\n", save.display());
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answers.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_success(&out);
    assert!(site.home().join("repos/arch.conf").exists());
    // Refuses to overwrite without -force.
    let again = site.run(&[
        "-setup",
        "-repo",
        "kali",
        "-save",
        &save.display().to_string(),
    ]);
    assert_eq!(again.status.code(), Some(1));
}

/// KRFOSS's setup links: `dsync -setup 'https://…/?repo=kali&save=/mirrors/kali'`
/// writes the file the interactive flow would; a key that runs commands is
/// refused by name and nothing is written.
#[test]
fn setup_takes_a_krfoss_link() {
    let site = Site::new();
    let save = site.root().join("mirrors/kali");
    std::fs::create_dir_all(&save).unwrap();
    let link = format!(
        "https://setup.krfoss.org/?repo=kali&save={}&timeset=00%2C12",
        save.display()
    );
    let out = site.run(&["-setup", &link]);
    assert_success(&out);
    let file = site.home().join("repos/kali.conf");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        text,
        format!(
            "# written by dsync -setup\nrepo=kali\nsave={}\ntimeset=00,12\n",
            save.display()
        )
    );
    assert_success(&site.run(&["-test", "-offline"]));

    let evil = "https://setup.krfoss.org/?repo=evil&save=/mirrors/evil&hook1=rm%20-rf%20%2F";
    let out = site.run(&["-setup", evil]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the link sets hook1="),
        "{out:?}"
    );
    assert!(!site.home().join("repos/evil.conf").exists());
}

#[test]
fn logdir_and_logtime_give_each_repository_dated_logs_of_its_own() {
    let mut site = Site::new();
    site.upstream("dated", 10);
    site.serve();
    site.repo("dated", &site.src("dated"));
    site.xync("logdir=true\nlogtime=true\n");
    assert_success(&site.run(&[]));
    let dir = site.home().join("logs/dated");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let dated = regex::Regex::new(r"^logs-\d{8}-\d{4}\.log$").unwrap();
    assert!(names.iter().any(|n| dated.is_match(n)), "{names:?}");
    let log = std::fs::read_to_string(dir.join(&names[0])).unwrap();
    assert!(log.contains("sync of dated done"), "{log}");
}

#[test]
fn a_dsync_true_repository_publishes_its_manifest_after_each_sync() {
    let mut site = Site::new();
    site.upstream("pub", 1000);
    site.serve();
    let save = site.repo("pub", &format!("{}\ndsync=true", site.src("pub")));
    assert_success(&site.run(&["-sync", "pub"]));
    let bytes = std::fs::read(save.join("data.dsync")).expect("data.dsync after the sync");
    let manifest = dsync::dtp::manifest::Manifest::decode(&bytes, &Default::default())
        .expect("a valid manifest");
    let paths: Vec<String> = manifest
        .entries
        .iter()
        .map(|e| e.path.display().to_string())
        .collect();
    assert_eq!(paths, ["README", "big.bin", "sub", "sub/file"]);
    assert!(
        site.log("pub").contains("manifest: 4 entries"),
        "{}",
        site.log("pub")
    );
}
