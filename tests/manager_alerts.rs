//! What an operator hears from unattended runs: webhooks, mail, the wall-clock
//! limit, an emergency stop of the whole run, the unmounted-disk guard and the
//! progress display, each through the real scheduler against a real rsync daemon.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::http::{self, Response};
use support::site::{Site, assert_no_rsync_into, assert_success, script};
use support::wait_for_what;

/// A sendmail stand-in that appends each message to `mail.txt` under the site.
fn sendmail(site: &Site) -> std::path::PathBuf {
    let path = site.root().join("sendmail");
    let out = site.root().join("mail.txt");
    script(
        &path,
        &format!(
            "#!/bin/sh\necho \"ARGS: $*\" >> {o}\ncat >> {o}\n",
            o = out.display()
        ),
    );
    path
}

fn mails(site: &Site) -> String {
    std::fs::read_to_string(site.root().join("mail.txt")).unwrap_or_default()
}

#[test]
fn webhook_hears_every_result_and_mail_only_failures() {
    let mut site = Site::new();
    site.upstream("good", 10);
    let port = site.serve();
    let hook = http::start(|_| Response::status(204));
    site.xync(&format!(
        "webhookurl={}/hook\nmailto=ops@example.org\nretries=1\n",
        hook.url()
    ));
    site.repo("good", &site.src("good"));
    site.repo(
        "broken",
        &format!("src=rsync://127.0.0.1:{port}/no-such-module/"),
    );
    let mailer = sendmail(&site);
    let out = site
        .command(&[])
        .env("DSYNC_SENDMAIL", &mailer)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "one repository failed: {out:?}");

    let requests = hook.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let by_repo = |name: &str| {
        requests
            .iter()
            .map(|r| r.body_json())
            .find(|j| j["repo"] == name)
            .unwrap_or_else(|| panic!("no webhook for {name}: {requests:?}"))
    };
    assert!(
        requests
            .iter()
            .all(|r| r.method == "POST" && r.path == "/hook")
    );
    let good = by_repo("good");
    assert_eq!(
        (good["ok"].as_bool(), good["status"].as_str()),
        (Some(true), Some("success"))
    );
    let broken = by_repo("broken");
    assert_eq!(broken["status"], "failed");
    assert_eq!(
        broken["exit_code"], 5,
        "rsync's 'error starting client-server protocol'"
    );
    assert!(
        broken["message"]
            .as_str()
            .unwrap()
            .contains("client-server protocol"),
        "{broken}"
    );

    let mail = mails(&site);
    assert!(mail.contains("ARGS: -i -- ops@example.org"), "{mail}");
    assert!(mail.contains("] broken: FAILED"), "{mail}");
    assert!(!mail.contains("good: "), "no mail for a success: {mail}");
}

#[test]
fn maxtime_stops_the_whole_sync_frees_the_lock_and_alerts() {
    let mut site = Site::new();
    site.upstream("slow", 3_000_000);
    site.serve();
    let hook = http::start(|_| Response::status(200));
    let status = site.root().join("www");
    site.xync(&format!(
        "maxtime=2s\nstatus={}\nwebhookurl={}/\nmailto=ops@example.org\n",
        status.display(),
        hook.url()
    ));
    // The repository's own mailto= wins over xync.conf's, as for other failures.
    let save = site.repo(
        "slow",
        &format!("{}\nmailto=repo-ops@example.org", site.src("slow")),
    );
    let slow = site.slow_rsync(100);
    let mailer = sendmail(&site);
    let out = site
        .command(&[])
        .env("DSYNC_RSYNC", &slow)
        .env("DSYNC_SENDMAIL", &mailer)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("slow: failed: stopped at the maxtime limit"),
        "{stdout}"
    );

    assert_no_rsync_into(&save);
    assert!(
        !save.join("big.bin").exists(),
        "the big file never completed"
    );
    assert_eq!(
        std::fs::read_to_string(status.join("dsync-status/slow")).unwrap(),
        "0"
    );
    let requests = hook.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        requests[0].body_text().contains("maxtime"),
        "{}",
        requests[0].body_text()
    );
    assert!(mails(&site).contains("slow: FAILED"), "{}", mails(&site));
    assert!(
        mails(&site).contains("ARGS: -i -- repo-ops@example.org"),
        "{}",
        mails(&site)
    );

    // The lock is free: an unthrottled run completes.
    assert_success(&site.run(&["-sync", "slow"]));
    assert!(save.join("big.bin").exists());
}

#[test]
fn emoff_stops_the_scheduler_before_it_starts_queued_repositories() {
    let mut site = Site::new();
    site.upstream("first", 2_000_000);
    site.upstream("second", 10);
    site.serve();
    site.xync("syncps=1\n");
    site.repo("first", &site.src("first"));
    let second = site.repo("second", &site.src("second"));
    let slow = site.slow_rsync(50);
    let run = site
        .command(&[])
        .env("DSYNC_RSYNC", &slow)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid_file = site.home().join("run/first.pid");
    wait_for_what(Duration::from_secs(30), "the first worker", || {
        pid_file.exists()
    });
    let out = site.run(&["-emoff"]);
    assert_success(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("stopped the scheduler"), "{said}");
    assert!(said.contains("stopped the sync of first"), "{said}");
    let out = run.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        !second.join("README").exists(),
        "the queued repository was started"
    );
}

#[test]
fn a_missing_mirror_folder_is_refused_unless_forced() {
    let mut site = Site::new();
    site.upstream("disk", 10);
    site.serve();
    let save = site.repo("disk", &site.src("disk"));
    std::fs::remove_dir(&save).unwrap();
    let out = site.run(&[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not exist (a disk not mounted?)"),
        "{stderr}"
    );
    assert!(stderr.contains("dsync -force"), "{stderr}");
    assert!(!save.exists(), "nothing created without -force");

    let out = site.run(&["-force"]);
    assert_success(&out);
    assert!(save.join("README").exists());
}

#[test]
fn without_a_terminal_progress_is_plain_lines() {
    let mut site = Site::new();
    site.upstream("plain", 300_000);
    site.serve();
    site.repo("plain", &site.src("plain"));
    let slow = site.slow_rsync(300);
    let out = site
        .command(&[])
        .env("DSYNC_RSYNC", &slow)
        .output()
        .unwrap();
    assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("dsync: plain: sync started\n"), "{stdout}");
    assert!(stdout.contains("plain: success ("), "{stdout}");
    assert!(
        !stdout.contains('\r') && !stdout.contains('\x1b'),
        "no terminal codes: {stdout:?}"
    );
    let log = site.log("plain");
    assert!(
        log.contains("Total file size: "),
        "rsync's stats are logged: {log}"
    );
    assert!(
        !log.contains("to-chk="),
        "progress lines stay out of the log: {log}"
    );
    assert!(
        !site.home().join("run/plain.progress").exists(),
        "removed at the end"
    );
}

#[test]
fn on_a_terminal_each_running_repository_has_a_progress_bar() {
    if !support::have_program("script") {
        eprintln!(
            "SKIPPED on_a_terminal_each_running_repository_has_a_progress_bar: no script(1) to give dsync a terminal"
        );
        return;
    }
    let mut site = Site::new();
    site.upstream("tty", 600_000);
    site.serve();
    site.repo("tty", &site.src("tty"));
    let slow = site.slow_rsync(200);
    let dsync = format!(
        "{} -home {}",
        env!("CARGO_BIN_EXE_dsync"),
        site.home().display()
    );
    // script(1) runs dsync on a pseudo-terminal and copies what it draws.
    let out = Command::new("script")
        .args(["-qefc", &dsync, "/dev/null"])
        .env("DSYNC_RSYNC", &slow)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let drawn = String::from_utf8_lossy(&out.stdout);
    // The text without its colours and cursor movements.
    let screen = regex::Regex::new("\x1b\\[[0-9;]*[A-Za-z]")
        .unwrap()
        .replace_all(&drawn, "");
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(screen.contains("tty ["), "a bar named tty: {screen:?}");
    assert!(
        screen.contains("ETA"),
        "rate and ETA from rsync: {screen:?}"
    );
    assert!(screen.contains("files, "), "{screen:?}");
    assert!(screen.contains("tty: success ("), "{screen:?}");
}
