//! ftpsync mode where we go beyond the shell script (or where the script cannot
//! be compared): mail reports, hooks with arguments, the kernel lock, signals,
//! and config errors that name file, line and column.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use support::archive::{self, ArchiveSpec};
use support::rsyncd::RsyncDaemon;
use support::wait_for_what;

/// A mirror host: a home with `ftpsync.conf`, a mirror, logs, and a `sendmail`
/// stand-in that stores each mail it is given.
struct Site {
    dir: tempfile::TempDir,
    _daemon: Option<RsyncDaemon>,
    _upstream: Option<tempfile::TempDir>,
}

impl Site {
    /// A site syncing from a fresh upstream archive; `extra` is appended to the config.
    fn new(extra: &str) -> Site {
        let upstream = tempfile::tempdir().unwrap();
        archive::write_revision(upstream.path(), &ArchiveSpec::default(), 1).unwrap();
        let daemon = RsyncDaemon::start("127.0.0.1", &[("debian", upstream.path())]);
        let port = daemon.port();
        let mut site = Site::bare(&format!(
            "RSYNC_HOST=127.0.0.1\nRSYNC_EXTRA=\"--port={port}\"\n{extra}"
        ));
        site._daemon = Some(daemon);
        site._upstream = Some(upstream);
        site
    }

    /// A site with only the common lines and `extra`.
    fn bare(extra: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("home/.config/ftpsync")).unwrap();
        std::fs::create_dir_all(root.join("mail")).unwrap();
        let conf = format!(
            "MIRRORNAME=mirror.test\nTO={r}/mirror/\nLOGDIR={r}/log\nMAILTO=ops@example.org\n{extra}\n",
            r = root.display()
        )
        .replace("{ROOT}", &root.display().to_string());
        std::fs::write(root.join("home/.config/ftpsync/ftpsync.conf"), conf).unwrap();
        write_script(
            &root.join("sendmail"),
            &format!(
                "#!/bin/sh\necho \"$@\" > {r}/mail/$$.args\ncat > {r}/mail/$$.msg\n",
                r = root.display()
            ),
        );
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_dsync"), root.join("ftpsync")).unwrap();
        Site {
            dir,
            _daemon: None,
            _upstream: None,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.root().join("ftpsync"));
        cmd.args(args)
            .env("HOME", self.root().join("home"))
            .env("LOGNAME", "nobody")
            .env("DSYNC_SENDMAIL", self.root().join("sendmail"))
            .env_remove("SSH_ORIGINAL_COMMAND");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn spawn(&self) -> Child {
        self.command(&[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Every mail sent, as (sendmail arguments, message), oldest first.
    fn mails(&self) -> Vec<(String, String)> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(self.root().join("mail"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "msg"))
            .collect();
        found.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        found
            .iter()
            .map(|msg| {
                let args = std::fs::read_to_string(msg.with_extension("args")).unwrap();
                (
                    args.trim().to_string(),
                    std::fs::read_to_string(msg).unwrap(),
                )
            })
            .collect()
    }

    fn lock_file(&self) -> PathBuf {
        self.root()
            .join("mirror/Archive-Update-in-Progress-mirror.test")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root().join("log/ftpsync.log.0")).unwrap_or_default()
    }
}

fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The Subject header, unfolded (RFC 5322 folds long headers onto indented lines).
fn subject(message: &str) -> String {
    let unfolded = message
        .replace("\r\n", "\n")
        .replace("\n ", " ")
        .replace("\n\t", " ");
    unfolded
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("")
        .to_string()
}

#[test]
fn failed_sync_mails_the_error_and_the_logs() {
    let site = Site::new("RSYNC_PATH=no-such-module");
    let out = site.run(&[]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let mails = site.mails();
    let host = support_short_host();
    assert_eq!(
        mails.len(),
        2,
        "an immediate error mail and the final report"
    );
    assert_eq!(mails[0].0, "-i -- ops@example.org");
    assert_eq!(
        subject(&mails[0].1),
        format!(
            "[ftpsync@{host}] ERROR: ERROR: Sync step 1 went wrong, got errorcode 5. Logfile: {}/log/ftpsync.log",
            site.root().display()
        )
    );
    assert_eq!(
        subject(&mails[1].1),
        format!("[ftpsync@{host}] ERROR: rsync errors")
    );
    assert!(mails[1].1.contains("Auto-Submitted: auto-generated"));
    // rsync's stderr and our log travel as attachments.
    assert!(
        mails[1].1.contains("filename=\"rsync-ftpsync.error\""),
        "{}",
        mails[1].1
    );
    assert!(mails[1].1.contains("filename=\"ftpsync.log\""));
    assert!(
        mails[1].1.contains("Unknown module"),
        "rsync's own message is in the mail"
    );
    // The rsync exit code is explained in the log.
    assert!(
        site.log()
            .contains("rsync exit code 5: error starting client-server protocol")
    );
}

#[test]
fn success_is_silent_unless_errorsonly_is_false() {
    let quiet = Site::new("");
    assert_eq!(quiet.run(&[]).status.code(), Some(0));
    assert!(quiet.mails().is_empty(), "no mail after a clean sync");

    let chatty = Site::new("ERRORSONLY=false\nFULLLOGS=true");
    assert_eq!(chatty.run(&[]).status.code(), Some(0));
    let mails = chatty.mails();
    assert_eq!(mails.len(), 1);
    assert!(
        subject(&mails[0].1).ends_with("] SUCCESS"),
        "{}",
        mails[0].1
    );
    assert!(
        mails[0].1.contains("filename=\"rsync-ftpsync.log\""),
        "FULLLOGS attaches rsync's log"
    );
}

#[test]
fn hooks_receive_their_arguments() {
    let site = Site::new("HOOK1=\"{ROOT}/hook 'first arg' second\"");
    write_script(
        &site.root().join("hook"),
        &format!(
            "#!/bin/sh\nprintf '%s|' \"$@\" > {}/hook-args\n",
            site.root().display()
        ),
    );
    assert_eq!(site.run(&[]).status.code(), Some(0));
    let args = std::fs::read_to_string(site.root().join("hook-args")).unwrap();
    assert_eq!(args, "first arg|second|");
}

/// A site whose HOOK1 announces it runs, then waits until the test lets it go.
fn blocked_site() -> Site {
    let site = Site::new("HOOK1={ROOT}/block");
    let r = site.root().display();
    write_script(
        &site.root().join("block"),
        &format!("#!/bin/sh\ntouch {r}/started\nwhile [ ! -e {r}/release ]; do sleep 0.05; done\n"),
    );
    site
}

/// Start a run of `site` and wait until it sits in its blocking HOOK1.
fn start_blocked(site: &Site) -> Child {
    let child = site.spawn();
    let started = site.root().join("started");
    wait_for_what(Duration::from_secs(30), "HOOK1 to start", || {
        started.exists()
    });
    child
}

fn release(site: &Site) {
    std::fs::write(site.root().join("release"), "").unwrap();
}

#[test]
fn second_run_refuses_while_the_first_holds_the_lock() {
    let site = blocked_site();
    let first = start_blocked(&site);

    let second = site.run(&[]);
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert_eq!(
        stdout.trim(),
        format!(
            "Unable to start rsync, lock file still exists, PID {}",
            first.id()
        )
    );

    release(&site);
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    assert!(!site.lock_file().exists(), "lock removed after the run");
}

#[test]
fn lock_held_by_a_dead_process_but_flocked_is_still_refused() {
    // The PID file names a dead process, yet another dsync holds the kernel lock:
    // the PID check alone (ftpsync's) would let a second sync run into the same tree.
    let site = blocked_site();
    let mut first = start_blocked(&site);
    std::fs::write(site.lock_file(), "999999999\n").unwrap();
    let second = site.run(&[]);
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    release(&site);
    assert_eq!(first.wait().unwrap().code(), Some(0));
}

#[test]
fn sigterm_stops_the_hook_group_removes_the_lock_and_exits_143() {
    let site = blocked_site();
    let child = start_blocked(&site);
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{out:?}");
    assert!(!site.lock_file().exists(), "lock removed on SIGTERM");
    let log = site.log();
    assert!(log.contains("Interrupted by signal 15"), "{log}");
    assert!(log.contains("Mirrorsync done with errors"), "{log}");
    // The hook's `sleep` loop was in the hook's group and must be gone too.
    let hook_alive = Command::new("pgrep")
        .args(["-f", &site.root().join("block").display().to_string()])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(!hook_alive, "the hook survived our SIGTERM");
}

#[test]
fn unsupported_config_is_refused_with_file_line_and_column() {
    let site = Site::bare("RSYNC_HOST=example.org\nif true; then TO=/x; fi");
    let out = site.run(&[]);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let conf = site.root().join("home/.config/ftpsync/ftpsync.conf");
    assert!(
        stderr.contains(&format!("{}:6:1:", conf.display())),
        "names file:line:column: {stderr}"
    );
    assert!(!site.root().join("mirror").exists(), "nothing touched");
}

#[test]
fn garbage_numbers_are_refused_before_syncing() {
    let site = Site::bare("RSYNC_HOST=example.org\nUIPSLEEP=20min");
    let out = site.run(&[]);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("UIPSLEEP=\"20min\""), "{stderr}");
    assert!(stderr.contains("not a whole number"), "{stderr}");
}

fn support_short_host() -> String {
    let out = Command::new("hostname").arg("-s").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn config_is_found_in_basedir_etc_for_a_git_checkout_layout() {
    let site = Site::new("");
    let conf = site.root().join("home/.config/ftpsync/ftpsync.conf");
    let basedir = site.root().join("archvsync");
    std::fs::create_dir_all(basedir.join("etc")).unwrap();
    std::fs::rename(&conf, basedir.join("etc/ftpsync.conf")).unwrap();
    let out = site.command(&[]).env("BASEDIR", &basedir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        site.root()
            .join("mirror/project/trace/mirror.test")
            .exists()
    );
}

/// A one-connection SMTP server speaking just enough of RFC 5321 to accept a
/// message; returns the DATA it received.
fn smtp_listener() -> (u16, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut out = stream;
        out.write_all(b"220 test ESMTP\r\n").unwrap();
        let mut data = String::new();
        let mut in_data = false;
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if in_data {
                if line == ".\r\n" {
                    in_data = false;
                    out.write_all(b"250 queued\r\n").unwrap();
                } else {
                    data.push_str(&line);
                }
            } else {
                let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                let reply: &[u8] = match verb.as_str() {
                    "EHLO" | "HELO" => b"250 test\r\n",
                    "DATA" => {
                        in_data = true;
                        b"354 go on\r\n"
                    }
                    "QUIT" => {
                        out.write_all(b"221 bye\r\n").unwrap();
                        break;
                    }
                    _ => b"250 ok\r\n",
                };
                out.write_all(reply).unwrap();
            }
            line.clear();
        }
        data
    });
    (port, handle)
}

#[test]
fn smtp_server_option_delivers_the_report_over_smtp() {
    let (port, server) = smtp_listener();
    let site = Site::new(&format!("ERRORSONLY=false\nSMTP_SERVER=127.0.0.1:{port}"));
    let out = site.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let data = server.join().unwrap();
    assert!(subject(&data).ends_with("] SUCCESS"), "{data}");
    assert!(data.contains("To: ops@example.org"), "{data}");
    assert!(site.mails().is_empty(), "sendmail was not used");
}

/// A site whose upstream has one large file and whose rsync is throttled, so a
/// sync is reliably still transferring when the test interrupts it. The rsync
/// wrapper records the rsync PID (it execs rsync, keeping its PID) of the
/// transfer: not of `--version`, nor of the shrink guard's short local count
/// (the dry run ending in `--log-file-format=`), which come before it.
fn slow_site() -> Site {
    let site = Site::new("RSYNC={ROOT}/rsync-wrapper\nRSYNC_BW=20");
    let upstream = site._upstream.as_ref().unwrap().path();
    let big: Vec<u8> = (0..8_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(upstream.join("pool/main/big.bin"), big).unwrap();
    let r = site.root().display();
    write_script(
        &site.root().join("rsync-wrapper"),
        &format!(
            "#!/bin/sh\ncase \"$*\" in --version|*--log-file-format=) ;; *) echo $$ > {r}/rsync.pid;; esac\nexec rsync \"$@\"\n"
        ),
    );
    site
}

fn process_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn wait_for_rsync(site: &Site) -> i32 {
    let pid_file = site.root().join("rsync.pid");
    wait_for_what(Duration::from_secs(30), "rsync to start", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.trim().parse::<i32>().is_ok())
    });
    std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// SIGTERM, SIGINT (Ctrl-C) and SIGHUP (a closed terminal) while rsync runs:
/// exit 128+N, no member of rsync's group survives, the lock is gone and no
/// half-written file is published.
#[test]
fn sigterm_during_rsync_stops_the_whole_rsync_group() {
    for (signal, code) in [
        (libc::SIGTERM, 143),
        (libc::SIGINT, 130),
        (libc::SIGHUP, 129),
    ] {
        let site = slow_site();
        let child = site.spawn();
        let rsync = wait_for_rsync(&site);
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "signal {signal}: {out:?}");
        // SAFETY: kill(-pgid, 0) only checks whether any member of the group exists.
        let group_alive = unsafe { libc::kill(-rsync, 0) == 0 };
        assert!(
            !group_alive,
            "signal {signal}: an rsync of group {rsync} survived"
        );
        assert!(!site.lock_file().exists(), "signal {signal}: lock left");
        assert!(
            !site.root().join("mirror/pool/main/big.bin").exists(),
            "signal {signal}: no half file published"
        );
    }
}

#[test]
fn sigkill_of_dsync_takes_rsync_down_and_the_next_run_completes() {
    let site = slow_site();
    let mut child = site.spawn();
    let rsync = wait_for_rsync(&site);
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for_what(
        Duration::from_secs(10),
        "rsync to die with its parent",
        || !process_exists(rsync),
    );
    // The stale lock (dead PID, no flock) is taken over; unthrottled, it completes.
    assert!(
        site.lock_file().exists(),
        "SIGKILL leaves the lock file behind"
    );
    let conf = site.root().join("home/.config/ftpsync/ftpsync.conf");
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("RSYNC_BW=20", "RSYNC_BW=0");
    std::fs::write(&conf, text).unwrap();
    let out = site.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(site.root().join("mirror/pool/main/big.bin").exists());
    assert!(!site.lock_file().exists());
}

#[test]
fn upstream_update_in_progress_is_waited_out() {
    // Upstream is mid-update during our first stage one; HOOK2 plays the upstream
    // finishing its update. Stage two must wait for a clean stage one.
    let site = Site::new("UIPSLEEP=1\nUIPRETRIES=2\nHOOK2={ROOT}/upstream-done");
    let upstream = site._upstream.as_ref().unwrap().path();
    let busy = upstream.join("Archive-Update-in-Progress-upstream.example");
    std::fs::write(&busy, "42\n").unwrap();
    write_script(
        &site.root().join("upstream-done"),
        &format!("#!/bin/sh\nrm -f {}\n", busy.display()),
    );
    let out = site.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let log = site.log();
    assert!(
        log.contains("Upstream archive update in progress, skipping stage2"),
        "{log}"
    );
    assert!(log.contains("Retrying update in 1"), "{log}");
    assert_eq!(log.matches("Running stage1:").count(), 2, "{log}");
    assert_eq!(log.matches("Running stage2:").count(), 1, "{log}");
    assert!(
        !site
            .root()
            .join("mirror/Archive-Update-in-Progress-upstream.example")
            .exists()
    );
    assert!(site.root().join("mirror/dists/bookworm/Release").exists());
}
