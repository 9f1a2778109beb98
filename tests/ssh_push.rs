//! Push triggers over real ssh, as Debian mirrors trigger each other: the upstream runs
//! `ssh mirror@downstream sync:all`, the downstream's `authorized_keys` forces the command
//! (`command="ftpsync",restrict ssh-ed25519 …`), and our binary runs as ftpsync with
//! `SSH_ORIGINAL_COMMAND=sync:all`, syncs from the upstream's rsync daemon and writes
//! `Trigger: ssh` into its trace. Everything is real: OpenSSH's sshd and ssh client
//! (`support::sshd`), rsync daemon, and apt for the consistency check.
//!
//! The forced command is `env HOME=… DSYNC_SENDMAIL=/bin/true …/dsync ftpsync`: sshd logs in
//! the current user (root in CI) with its real home, so the command names the test's home
//! (where `.config/ftpsync/ftpsync.conf` is) itself.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use support::apt;
use support::archive::{self, ArchiveInfo, ArchiveSpec};
use support::rsyncd::RsyncDaemon;
use support::sshd::{self, ClientKey, Sshd, sh_quote};

/// How long one pushed sync may take before the test fails instead of hanging.
const PUSH_TIMEOUT: Duration = Duration::from_secs(120);
const MIRRORNAME: &str = "mirror.test";

/// `SKIPPED <test>: <why>` and true if ssh cannot be tested here.
fn skip(test: &str) -> bool {
    match sshd::skip_reason() {
        Some(why) => {
            eprintln!("SKIPPED {test}: {why}");
            true
        }
        None => false,
    }
}

/// An upstream archive served by a real rsync daemon, and a downstream mirror whose
/// `authorized_keys` forces our ftpsync for `key`, behind a real sshd.
struct Push {
    dir: tempfile::TempDir,
    upstream: PathBuf,
    spec: ArchiveSpec,
    _daemon: RsyncDaemon,
    key: ClientKey,
    sshd: Sshd,
}

impl Push {
    /// Upstream at revision 1; the mirror is empty until the first push.
    fn new() -> Push {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let spec = ArchiveSpec::default();
        let upstream = root.join("upstream");
        archive::write_revision(&upstream, &spec, 1).unwrap();
        let daemon = RsyncDaemon::start("127.0.0.1", &[("debian", &upstream)]);

        let home = root.join("home");
        let conf_dir = home.join(".config/ftpsync");
        std::fs::create_dir_all(&conf_dir).unwrap();
        std::fs::write(
            conf_dir.join("ftpsync.conf"),
            format!(
                "MIRRORNAME={MIRRORNAME}\nTO={r}/mirror/\nRSYNC_HOST=127.0.0.1\n\
                 RSYNC_PATH=debian\nRSYNC_EXTRA=\"{port}\"\nLOGDIR={r}/log\n\
                 LOCKDIR={r}/lock\nMAILTO=nobody\n",
                r = root.display(),
                port = daemon.port_option(),
            ),
        )
        .unwrap();

        let key = ClientKey::new(&root.join("keys"));
        let command = format!(
            "env HOME={} DSYNC_SENDMAIL=/bin/true {} ftpsync",
            sh_quote(&home.display().to_string()),
            sh_quote(env!("CARGO_BIN_EXE_dsync")),
        );
        let sshd = Sshd::start(&[key.forced_command(&command)]);
        Push {
            dir,
            upstream,
            spec,
            _daemon: daemon,
            key,
            sshd,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn mirror(&self) -> PathBuf {
        self.root().join("mirror")
    }

    /// `ssh USER@127.0.0.1 WORDS` with `key`, as an upstream's runmirrors would.
    fn push_with(&self, key: &ClientKey, words: &str) -> Output {
        sshd::output_within(self.sshd.ssh(key, words), PUSH_TIMEOUT)
    }

    fn push(&self, words: &str) -> Output {
        self.push_with(&self.key, words)
    }

    /// Move the upstream to revision `rev`.
    fn upstream_to(&self, rev: u32) -> ArchiveInfo {
        archive::write_revision(&self.upstream, &self.spec, rev).unwrap()
    }

    fn trace(&self, name: &str) -> String {
        let path = self.mirror().join("project/trace").join(name);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}\n{}", path.display(), self.diagnostics()))
    }

    /// The log of the last run (ftpsync rotates its log on exit, to `ftpsync.log.0`).
    fn ftpsync_log(&self) -> String {
        std::fs::read_to_string(self.root().join("log/ftpsync.log.0")).unwrap_or_default()
    }

    fn release(&self, tree: &Path) -> Vec<u8> {
        std::fs::read(tree.join("dists/bookworm/Release")).unwrap()
    }

    /// sshd's and ftpsync's logs, for failure messages.
    fn diagnostics(&self) -> String {
        format!(
            "--- sshd log:\n{}--- ftpsync log:\n{}",
            self.sshd.log(),
            self.ftpsync_log()
        )
    }

    /// Panic unless `out` is a success.
    #[track_caller]
    fn assert_success(&self, out: &Output, what: &str) {
        assert!(
            out.status.success(),
            "{what}: {}\n{}",
            sshd::describe(out),
            self.diagnostics()
        );
    }

    /// Every file of the upstream revision `info` is in the mirror with the same content.
    #[track_caller]
    fn assert_mirror_has(&self, info: &ArchiveInfo) {
        let mut wrong = Vec::new();
        for file in &info.all_files {
            let want = std::fs::read(self.upstream.join(file)).unwrap();
            match std::fs::read(self.mirror().join(file)) {
                Ok(got) if got == want => {}
                Ok(_) => wrong.push(format!("differs: {file}")),
                Err(e) => wrong.push(format!("{file}: {e}")),
            }
        }
        for (link, target) in &info.symlinks {
            match std::fs::read_link(self.mirror().join(link)) {
                Ok(t) if t == Path::new(target) => {}
                other => wrong.push(format!("symlink {link}: {other:?}, want {target}")),
            }
        }
        wrong.truncate(20);
        assert!(
            wrong.is_empty(),
            "mirror is not revision {}:\n{}",
            info.rev,
            wrong.join("\n")
        );
    }

    /// Real `apt-get update` against the mirror plus every hash, if apt is installed.
    #[track_caller]
    fn assert_apt_consistent(&self, test: &str, when: &str) {
        if !apt::apt_available() {
            eprintln!("SKIPPED the apt check of {test} ({when}): apt-get is not installed");
            return;
        }
        if let Err(problems) = apt::check_consistent(&self.mirror(), &self.spec) {
            panic!("{when}: mirror is not consistent:\n{}", problems.join("\n"));
        }
    }
}

/// `KEY: VALUE` line of a trace file.
fn field<'a>(trace: &'a str, key: &str) -> Option<&'a str> {
    trace
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
}

#[test]
fn sync_all_pushed_over_ssh_mirrors_the_archive() {
    let test = "sync_all_pushed_over_ssh_mirrors_the_archive";
    if skip(test) {
        return;
    }
    let push = Push::new();
    let info = push.upstream_to(1);

    let out = push.push("sync:all");
    push.assert_success(&out, "ssh … sync:all");

    push.assert_mirror_has(&info);
    let trace = push.trace(MIRRORNAME);
    assert_eq!(field(&trace, "Trigger"), Some("ssh"), "{trace}");
    assert_eq!(
        field(&trace, "Archive serial"),
        Some(info.serial.as_str()),
        "{trace}"
    );
    // ftpsync notes who pushed (SSH_CONNECTION), and sshd ran the forced command.
    assert!(
        push.ftpsync_log().contains("We got pushed from 127.0.0.1"),
        "{}",
        push.diagnostics()
    );
    let sshd_log = push.sshd.log();
    assert!(
        sshd_log.contains("Starting session: forced-command (key-option)"),
        "{sshd_log}"
    );
    assert!(
        !push
            .mirror()
            .join(format!("project/trace/{MIRRORNAME}-stage1"))
            .exists(),
        "sync:all leaves no stage1 trace"
    );
    push.assert_apt_consistent(test, "after sync:all");
}

#[test]
fn staged_push_stage1_then_stage2() {
    let test = "staged_push_stage1_then_stage2";
    if skip(test) {
        return;
    }
    let push = Push::new();
    let rev1 = push.upstream_to(1);
    let out = push.push("sync:all");
    push.assert_success(&out, "initial ssh … sync:all");
    push.assert_mirror_has(&rev1);
    let old_release = push.release(&push.mirror());

    // The upstream moves on, then pushes its downstream in two steps, as runmirrors does
    // for PUSHTYPE=staged.
    let rev2 = push.upstream_to(2);
    assert_ne!(push.release(&push.upstream), old_release);

    let out = push.push("sync:stage1");
    push.assert_success(&out, "ssh … sync:stage1");
    let stage1 = push.trace(&format!("{MIRRORNAME}-stage1"));
    assert_eq!(field(&stage1, "Trigger"), Some("ssh"), "{stage1}");
    assert_eq!(
        push.release(&push.mirror()),
        old_release,
        "stage1 must not touch Release"
    );
    let main = push.trace(MIRRORNAME);
    assert_eq!(
        field(&main, "Archive serial"),
        Some(rev1.serial.as_str()),
        "the main trace still describes revision 1 after stage1:\n{main}"
    );
    // Stage 1 brought the new pool files.
    for (file, _) in &rev2.pool_files {
        assert!(
            push.mirror().join(file).is_file(),
            "after stage1, {file} of revision 2 is missing"
        );
    }
    push.assert_apt_consistent(test, "after sync:stage1");

    let out = push.push("sync:stage2");
    push.assert_success(&out, "ssh … sync:stage2");
    push.assert_mirror_has(&rev2);
    let main = push.trace(MIRRORNAME);
    assert_eq!(field(&main, "Trigger"), Some("ssh"), "{main}");
    assert_eq!(
        field(&main, "Archive serial"),
        Some(rev2.serial.as_str()),
        "{main}"
    );
    push.assert_apt_consistent(test, "after sync:stage2");
}

#[test]
fn unknown_pushed_word_is_warned_and_ignored() {
    let test = "unknown_pushed_word_is_warned_and_ignored";
    if skip(test) {
        return;
    }
    let push = Push::new();
    let info = push.upstream_to(1);

    let out = push.push("sync:all sync:frobnicate");
    push.assert_success(&out, "ssh … sync:all sync:frobnicate");
    // ftpsync echoes this before it opens its log, so it reaches the pushing side.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Unknown option sync:frobnicate ignored"),
        "{}",
        sshd::describe(&out)
    );
    push.assert_mirror_has(&info);
    assert_eq!(field(&push.trace(MIRRORNAME), "Trigger"), Some("ssh"));
}

#[test]
fn key_not_in_authorized_keys_is_refused_and_nothing_runs() {
    let test = "key_not_in_authorized_keys_is_refused_and_nothing_runs";
    if skip(test) {
        return;
    }
    let push = Push::new();
    let stranger = ClientKey::new(&push.root().join("stranger"));

    let out = push.push_with(&stranger, "sync:all");
    assert_eq!(out.status.code(), Some(255), "{}", sshd::describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied (publickey)"),
        "{}",
        sshd::describe(&out)
    );
    assert!(!push.mirror().exists(), "no sync ran");
    assert!(!push.root().join("log").exists(), "ftpsync never started");
    let sshd_log = push.sshd.log();
    assert!(!sshd_log.contains("Accepted publickey"), "{sshd_log}");
    assert!(!sshd_log.contains("Starting session"), "{sshd_log}");

    // The authorized key still gets in on the same server.
    let out = push.push("sync:all");
    push.assert_success(&out, "ssh … sync:all with the authorized key");
    assert!(push.mirror().join("dists/bookworm/Release").is_file());
}

/// The harness itself: dropping the server ends a session still running its forced command
/// (sshd runs it in a session of its own, outside the server's process group), and the
/// client sees the connection end.
#[test]
fn dropping_the_server_ends_running_sessions() {
    let test = "dropping_the_server_ends_running_sessions";
    if skip(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = ClientKey::new(dir.path());
    let pid_file = dir.path().join("pid");
    let command = format!(
        "echo $$ > {}; exec sleep 600",
        sh_quote(&pid_file.display().to_string())
    );
    let server = Sshd::start(&[key.forced_command(&command)]);
    let client = server.ssh(&key, "sync:all");
    let session = std::thread::spawn(move || sshd::output_within(client, PUSH_TIMEOUT));
    support::wait_for_what(
        Duration::from_secs(30),
        "the forced command to write its pid",
        || std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n')),
    );
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    drop(server);
    // Gone, or a zombie waiting for init to reap it.
    support::wait_for_what(Duration::from_secs(10), "the forced command to die", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('Z'))
            })
            .unwrap_or(true)
    });
    let out = session.join().unwrap();
    assert_eq!(out.status.code(), Some(255), "{}", sshd::describe(&out));
}

/// `push=` in a dsync repository file: after its own sync, the repository
/// triggers its downstream over ssh as runmirrors' `all` push would, and the
/// downstream's forced ftpsync syncs with `Trigger: ssh`.
#[test]
fn a_dsync_repository_pushes_its_downstream_after_a_sync() {
    if skip("a_dsync_repository_pushes_its_downstream_after_a_sync") {
        return;
    }
    let push = Push::new();
    let root = push.root();
    let hub_home = root.join("hub-home");
    let dxync = root.join("dxync");
    let hub = root.join("hub");
    std::fs::create_dir_all(dxync.join("repos")).unwrap();
    std::fs::create_dir_all(&hub).unwrap();
    std::fs::create_dir_all(&hub_home).unwrap();
    std::fs::write(
        dxync.join("repos/hub.conf"),
        format!(
            "save={}\nsrc=rsync://127.0.0.1:{}/debian/\npush={}@127.0.0.1:{}\npushkey={}\n",
            hub.display(),
            push._daemon.port(),
            push.sshd.user(),
            push.sshd.port(),
            push.key.path().display()
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dsync"));
    cmd.arg("-home")
        .arg(&dxync)
        .args(["-sync", "hub"])
        .env("HOME", &hub_home)
        .env("DSYNC_SENDMAIL", "/bin/true");
    let out = sshd::output_within(cmd, PUSH_TIMEOUT);
    let log = std::fs::read_to_string(dxync.join("logs/hub.log")).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{log}",
        sshd::describe(&out)
    );
    assert!(hub.join("dists").is_dir(), "the hub synced itself first");
    assert!(
        log.contains("normal trigger succeeded: 127.0.0.1"),
        "{log}\n{}",
        push.sshd.log()
    );
    let trace = push.trace(MIRRORNAME);
    assert!(trace.contains("Trigger: ssh"), "{trace}");
    if apt::apt_available() {
        apt::check_consistent(&push.mirror(), &push.spec)
            .unwrap_or_else(|p| panic!("{}", p.join("\n")));
    }
}

/// `runmirrors` (ours) pushing a staged downstream through the real sshd:
/// stage one, then (its stage-one lock seen) stage two; the downstream ends at
/// the new revision with `Trigger: ssh` and both traces.
#[test]
fn runmirrors_pushes_a_staged_downstream_over_real_ssh() {
    if skip("runmirrors_pushes_a_staged_downstream_over_real_ssh") {
        return;
    }
    let push = Push::new();
    let root = push.root();
    assert!(
        push.push("sync:all").status.success(),
        "{}",
        push.diagnostics()
    );
    let rev2 = push.upstream_to(2);

    let hub_home = root.join("hub-home");
    let conf = hub_home.join(".config/ftpsync");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("runmirrors.conf"),
        format!(
            "KEYFILE={}\nLOGDIR={r}/hub-log\nLOCKDIR={r}/hub-lock\nMAILTO=nobody\nPUSHDELAY=60\n\
             SSH_OPTS=\"-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes\"\n",
            push.key.path().display(),
            r = root.display()
        ),
    )
    .unwrap();
    std::fs::write(
        conf.join("runmirrors.mirror"),
        format!(
            "staged down 127.0.0.1 {} -o Port={}\n",
            push.sshd.user(),
            push.sshd.port()
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dsync"));
    cmd.args(["runmirrors", "-k", "all"])
        .env("HOME", &hub_home)
        .env("DSYNC_SENDMAIL", "/bin/true");
    let out = sshd::output_within(cmd, PUSH_TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{}", sshd::describe(&out));

    let pushes = std::fs::read_to_string(root.join("hub-log/down.log")).unwrap();
    let first = pushes.find("Sending first stage trigger").expect(&pushes);
    let second = pushes.find("Sending second stage trigger").expect(&pushes);
    assert!(first < second, "{pushes}");
    let trace = push.trace(MIRRORNAME);
    assert!(
        trace.contains(&format!("Archive serial: {}", rev2.serial)),
        "{trace}"
    );
    assert!(trace.contains("Trigger: ssh"), "{trace}");
    assert!(
        push.trace(&format!("{MIRRORNAME}-stage1"))
            .contains("Trigger: ssh")
    );
    let main_log = std::fs::read_to_string(root.join("hub-log/runmirrors.log")).unwrap();
    for line in [
        "first stage trigger succeeded: 127.0.0.1",
        "second stage trigger succeeded: 127.0.0.1",
    ] {
        assert!(main_log.contains(line), "{line}:\n{main_log}");
    }
}
