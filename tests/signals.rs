//! Case 6 of tests/README.md: SIGTERM, SIGINT and SIGKILL at every stage of a
//! sync, in ftpsync mode, in the dsync layer (the scheduler and its workers)
//! and over DTP. After each signal:
//!
//! - no process of that run survives: the rsync wrapper and the hook record
//!   their pids (each leads a process group of its own), the worker's pid
//!   comes from `run/NAME.pid`, and `/proc` is searched for those groups and
//!   for anything with the scenario's folder on its command line;
//! - the lock is gone, or stale (a dead pid) and taken over by the next run;
//! - the mirror still shows the old revision whole: the old `Release`, real
//!   `apt-get update` passes and every referenced file has its hash;
//! - the next run completes, leaves no temporary files, and the tree equals
//!   the upstream's revision 2.
//!
//! Each scenario starts from a mirror a first complete sync brought to
//! revision 1 (a copy of one template per test), with the upstream at
//! revision 2. To keep a stage busy, the upstream has a 2 MB file fetched in
//! stage one (`pool/main/big-stage1.bin`) and one fetched in stage two
//! (`ls-lR.big`, an index by ftpsync's rules), and the stage under test is
//! throttled to 100 KiB/s: by an rsync wrapper (`RSYNC=`, `DSYNC_RSYNC`) or by
//! the DTP host's `dtp-bwlimit`. Tests wait for a marker (a pid file, the
//! hook's marker file, the big file's temporary file past its first 100 KiB),
//! never for time to pass. Scenarios of one test run one after the other
//! and all run even when one fails; the failure names each that did (mode,
//! stage, signal, and which process got it).

mod support;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::apt::{self, CheckOptions};
use support::archive::{self, ArchiveSpec};
use support::dtp_host::DtpHost;
use support::mirrors;
use support::procs;
use support::rsyncd::RsyncDaemon;
use support::site::script;

/// Bytes of each big file that keeps a throttled stage busy (~20 s).
const BIG: usize = 2_000_000;
/// KiB/s of a throttled stage.
const THROTTLE_KIB: u64 = 100;
/// Bytes of a big file written before the signal: one second of a
/// throttled stage.
const UNDER_WAY: u64 = 100 * 1024;
/// How long a stage may take to show its marker.
const MARKER_WITHIN: Duration = Duration::from_secs(30);
/// How long the signalled process may take to end: dsync gives a child group
/// 5 s between SIGTERM and SIGKILL.
const EXIT_WITHIN: Duration = Duration::from_secs(10);
/// How long the processes of a run may take to follow it: a group whose
/// parent died outright gets SIGTERM and, 5 s later, SIGKILL.
const GONE_WITHIN: Duration = Duration::from_secs(8);

const STAGE1_BIG: &str = "pool/main/big-stage1.bin";
const STAGE2_BIG: &str = "ls-lR.big";
const RELEASE: &str = "dists/bookworm/Release";

fn spec() -> ArchiveSpec {
    ArchiveSpec {
        suites: vec!["bookworm".into()],
        components: vec!["main".into(), "contrib".into()],
        archs: vec!["amd64".into()],
        packages_per_component: 3,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    One,
    Hook2,
    Two,
}

impl Stage {
    fn describe(self) -> &'static str {
        match self {
            Stage::One => "during stage one",
            Stage::Hook2 => "during hook2",
            Stage::Two => "during stage two",
        }
    }

    /// The big file this stage is fetching when the signal comes, if any.
    fn in_flight(self) -> Option<&'static str> {
        match self {
            Stage::One => Some(STAGE1_BIG),
            Stage::Hook2 => None,
            Stage::Two => Some(STAGE2_BIG),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sig {
    Term,
    Int,
    Kill,
}

impl Sig {
    fn number(self) -> i32 {
        match self {
            Sig::Term => libc::SIGTERM,
            Sig::Int => libc::SIGINT,
            Sig::Kill => libc::SIGKILL,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Sig::Term => "SIGTERM",
            Sig::Int => "SIGINT",
            Sig::Kill => "SIGKILL",
        }
    }
}

/// How a scenario whose hook2 waits in a background subshell is named.
const HOOK_CHILD: &str = " (hook2 waiting in a background subshell)";

/// Which process of the dsync layer gets the signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// `dsync -home HOME`, the process cron starts.
    Scheduler,
    /// `dsync -home HOME __worker NAME`, the one repository's sync.
    Worker,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Scheduler => "the scheduler",
            Target::Worker => "the worker",
        }
    }
}

/// rsync, throttled in the stage named by `throttle`; records its pid (the
/// wrapper execs rsync, so `$$` is rsync's pid and its process group).
const WRAPPER: &str = r#"#!/bin/sh
case " $* " in *" --version "*|*" --list-only "*) exec rsync "$@";; esac
case " $* " in *" --exclude=Packages* "*) stage=1;; *) stage=2;; esac
echo $$ >> @ROOT@/rsync-pids
echo $$ > @ROOT@/rsync-$stage.pid
bw=0
[ "$(cat @ROOT@/throttle 2>/dev/null)" = $stage ] && bw=@KIB@
found=
for a do
  shift
  case "$a" in --bwlimit=*) a=--bwlimit=$bw; found=1;; esac
  set -- "$@" "$a"
done
[ -n "$found" ] || set -- --bwlimit=$bw "$@"
exec rsync "$@"
"#;

/// hook2: notes that it ran, passes at once unless `block-hook2` exists;
/// then records its pid (it leads its process group), says it started and
/// waits for `release`: itself, or (with `hook2-background`) through a
/// subshell it starts in the background, as hooks running pipelines or
/// helpers do.
const HOOK2: &str = r#"#!/bin/sh
echo ran >> @ROOT@/hook2-runs
[ -e @ROOT@/block-hook2 ] || exit 0
echo $$ > @ROOT@/hook2.pid
if [ -e @ROOT@/hook2-background ]; then
  ( while [ ! -e @ROOT@/release ]; do sleep 0.1; done ) &
  touch @ROOT@/hook2-started
  wait
else
  touch @ROOT@/hook2-started
  while [ ! -e @ROOT@/release ]; do sleep 0.1; done
fi
"#;

/// One signal at one stage: a folder of its own with the rsync wrapper and
/// the hook, the run under test, and what it started. Whatever survives is
/// killed on drop, so a failing scenario leaves nothing running.
struct Scenario {
    dir: tempfile::TempDir,
    label: String,
    child: Option<Child>,
    /// Process groups tracked besides the wrapper's and the hook's.
    groups: Vec<i32>,
}

impl Scenario {
    fn new(label: String) -> Scenario {
        let dir = tempfile::Builder::new()
            .prefix("dsync-signals-")
            .tempdir()
            .unwrap();
        let sc = Scenario {
            dir,
            label,
            child: None,
            groups: Vec::new(),
        };
        let r = sc.root().display().to_string();
        script(
            &sc.wrapper(),
            &WRAPPER
                .replace("@ROOT@", &r)
                .replace("@KIB@", &THROTTLE_KIB.to_string()),
        );
        script(&sc.hook2(), &HOOK2.replace("@ROOT@", &r));
        std::fs::create_dir_all(sc.mirror()).unwrap();
        sc
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn mirror(&self) -> PathBuf {
        self.root().join("mirror")
    }

    fn wrapper(&self) -> PathBuf {
        self.root().join("rsync-wrapper")
    }

    fn hook2(&self) -> PathBuf {
        self.root().join("hook2")
    }

    /// The scenario's folder: on the command line of every process of its run.
    fn needle(&self) -> String {
        self.root().display().to_string()
    }

    /// Let hook2 wait through a background subshell of its own.
    fn hook_child(&self, yes: bool) {
        if yes {
            std::fs::write(self.root().join("hook2-background"), "").unwrap();
        }
    }

    /// Make `stage` slow (throttled) or blocking (hook2).
    fn arm(&self, stage: Stage) {
        match stage {
            Stage::One => std::fs::write(self.root().join("throttle"), "1").unwrap(),
            Stage::Two => std::fs::write(self.root().join("throttle"), "2").unwrap(),
            Stage::Hook2 => std::fs::write(self.root().join("block-hook2"), "").unwrap(),
        }
    }

    /// Everything at full speed again, and a blocked hook let go.
    fn disarm(&self) {
        let _ = std::fs::remove_file(self.root().join("throttle"));
        let _ = std::fs::remove_file(self.root().join("block-hook2"));
        std::fs::write(self.root().join("release"), "").unwrap();
    }

    fn spawn(&mut self, mut cmd: Command) {
        let out = std::fs::File::create(self.root().join("out")).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn child_pid(&self) -> i32 {
        self.child.as_ref().expect("spawned").id() as i32
    }

    /// What the run under test printed.
    fn output(&self) -> String {
        std::fs::read_to_string(self.root().join("out")).unwrap_or_default()
    }

    /// Wait for `cond`; fail at once, with the logs, if the run ends first.
    #[track_caller]
    fn wait_until(&mut self, what: &str, mut cond: impl FnMut() -> bool, log: &dyn Fn() -> String) {
        let start = Instant::now();
        loop {
            if cond() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "{}: the run ended ({status}) before {what}\noutput:\n{}\nlog:\n{}",
                    self.label,
                    self.output(),
                    log()
                );
            }
            if start.elapsed() > MARKER_WITHIN {
                panic!(
                    "{}: no {what} after {MARKER_WITHIN:?}\noutput:\n{}\nlog:\n{}",
                    self.label,
                    self.output(),
                    log()
                );
            }
            // Signal soon after the marker: right after a child starts is a
            // moment of the run like any other.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Wait until the run is inside `stage`: its rsync (or DTP download) is
    /// writing the stage's big file, or hook2 runs.
    #[track_caller]
    fn wait_for_stage(&mut self, stage: Stage, rsync: bool, log: &dyn Fn() -> String) {
        let root = self.root().to_path_buf();
        let mirror = self.mirror();
        match stage {
            Stage::Hook2 => {
                self.wait_until("hook2 running", || root.join("hook2-started").exists(), log)
            }
            Stage::One | Stage::Two => {
                let n = if stage == Stage::One { 1 } else { 2 };
                let big = Path::new(stage.in_flight().unwrap());
                let what = format!(
                    "stage {n} writing {UNDER_WAY} bytes into a temporary file of {}",
                    big.display()
                );
                self.wait_until(
                    &what,
                    || {
                        (!rsync || root.join(format!("rsync-{n}.pid")).exists())
                            && being_written(&mirror, big)
                    },
                    log,
                )
            }
        }
    }

    /// The process groups of the run: every rsync the wrapper started, the
    /// hook, and those added by the test (the worker).
    fn tracked_groups(&self) -> Vec<i32> {
        let mut groups = self.groups.clone();
        let pids = std::fs::read_to_string(self.root().join("rsync-pids")).unwrap_or_default();
        groups.extend(pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        groups.extend(procs::read_pid(&self.root().join("hook2.pid")));
        groups.retain(|&g| g > 1);
        groups
    }

    fn signal(&self, pid: i32, sig: Sig) {
        // SAFETY: kill(2) on a process this scenario started.
        let rc = unsafe { libc::kill(pid, sig.number()) };
        assert_eq!(rc, 0, "{}: cannot signal {pid}", self.label);
    }

    /// Wait for the run under test to end.
    #[track_caller]
    fn wait_exit(&mut self, log: &dyn Fn() -> String) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > EXIT_WITHIN {
                panic!(
                    "{}: still running {EXIT_WITHIN:?} after the signal\noutput:\n{}\nlog:\n{}",
                    self.label,
                    self.output(),
                    log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// No rsync, receiver, hook, worker, or anything else of the run lives on.
    #[track_caller]
    fn assert_nothing_survives(&self, log: &dyn Fn() -> String) {
        if let Err(left) = procs::wait_gone(&self.tracked_groups(), &self.needle(), GONE_WITHIN) {
            let list: Vec<String> = left.iter().map(|p| p.to_string()).collect();
            panic!(
                "{}: {} process(es) of the run still alive {GONE_WITHIN:?} after it ended:\n{}\nlog:\n{}",
                self.label,
                list.len(),
                list.join("\n"),
                log()
            );
        }
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = std::fs::write(self.root().join("release"), "");
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        procs::kill_survivors(&self.tracked_groups(), &self.needle());
    }
}

/// Is a temporary file of `rel` (rsync's `.NAME.XXXXXX`, DTP's
/// `.NAME.dsync-part`), beside it or in rsync's `.~tmp~`, past its first
/// [`UNDER_WAY`] bytes? By then the small files of the stage are done (they
/// share the throttled bandwidth) and the big one is all that is in flight.
fn being_written(mirror: &Path, rel: &Path) -> bool {
    let dir = mirror.join(rel.parent().unwrap());
    let prefix = format!(".{}", rel.file_name().unwrap().to_string_lossy());
    [dir.clone(), dir.join(".~tmp~")].iter().any(|d| {
        std::fs::read_dir(d).is_ok_and(|rd| {
            rd.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with(&prefix)
                    && e.metadata().is_ok_and(|m| m.len() >= UNDER_WAY)
            })
        })
    })
}

/// A file of [`BIG`] bytes that do not compress.
fn big_file(path: &Path, seed: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let data: Vec<u8> = (0..BIG as u32)
        .map(|i| ((i ^ seed).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(path, data).unwrap();
}

/// `cp -a`: a scenario starts from the template mirror, mtimes and all.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

fn check_options() -> CheckOptions {
    CheckOptions {
        apt: apt::apt_available(),
        ..CheckOptions::default()
    }
}

/// Right after the signal: the old `Release` is in place, apt sees the old
/// revision whole, and the file the stage was fetching is not published.
#[track_caller]
fn assert_old_revision_whole(label: &str, mirror: &Path, old_release: &[u8], stage: Stage) {
    let release = std::fs::read(mirror.join(RELEASE)).unwrap_or_default();
    assert!(
        release == old_release,
        "{label}: Release changed; the old indices must stay until stage two completes"
    );
    if let Err(problems) = apt::check_consistent_with(mirror, &spec(), &check_options()) {
        panic!(
            "{label}: the mirror is not the old revision whole:\n{}",
            problems.join("\n")
        );
    }
    if let Some(big) = stage.in_flight() {
        assert!(
            !mirror.join(big).exists(),
            "{label}: {big}, interrupted mid-transfer, was published"
        );
    }
}

/// After the next run: the tree is the upstream's revision 2 and nothing
/// temporary is left.
#[track_caller]
fn assert_synced(label: &str, mirror: &Path, upstream: &Path) {
    let diff = mirrors::differences(upstream, mirror);
    assert!(
        diff.is_empty(),
        "{label}: after the next run the mirror differs from revision 2:\n{}",
        diff.join("\n")
    );
    assert_eq!(
        archive::read_serial(mirror),
        Some(archive::serial(2)),
        "{label}: after the next run"
    );
    let left = mirrors::leftovers(mirror);
    assert!(
        left.is_empty(),
        "{label}: the next run left temporary files:\n{}",
        left.join("\n")
    );
}

#[track_caller]
fn assert_killed_by(label: &str, status: ExitStatus, signal: i32) {
    assert_eq!(
        status.signal(),
        Some(signal),
        "{label}: expected death by signal {signal}, got {status}"
    );
}

/// Run `case` for every item, even after one fails; then fail naming every
/// scenario that did (each message starts with its mode, stage and signal).
fn every<T: Copy>(items: &[T], case: impl Fn(T)) {
    let mut failed = Vec::new();
    for &item in items {
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(item))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            failed.push(message);
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} scenarios failed:\n\n{}",
        failed.len(),
        items.len(),
        failed.join("\n\n")
    );
}

/// An rsync daemon serving revision 1 (module `rev1`) and revision 2 with the
/// two big files (module `debian`).
struct RsyncUpstream {
    dir: tempfile::TempDir,
    daemon: RsyncDaemon,
}

impl RsyncUpstream {
    fn start() -> RsyncUpstream {
        let dir = tempfile::tempdir().unwrap();
        let (rev1, rev2) = (dir.path().join("rev1"), dir.path().join("rev2"));
        archive::write_revision(&rev1, &spec(), 1).unwrap();
        archive::write_revision(&rev2, &spec(), 2).unwrap();
        big_file(&rev2.join(STAGE1_BIG), 1);
        big_file(&rev2.join(STAGE2_BIG), 2);
        let daemon = RsyncDaemon::start("127.0.0.1", &[("rev1", &rev1), ("debian", &rev2)]);
        RsyncUpstream { dir, daemon }
    }

    fn rev2(&self) -> PathBuf {
        self.dir.path().join("rev2")
    }

    fn port(&self) -> u16 {
        self.daemon.port()
    }
}

// ---------------------------------------------------------------------------
// ftpsync mode
// ---------------------------------------------------------------------------

/// An upstream, and a mirror `dsync ftpsync` brought to revision 1.
struct FtpsyncFixture {
    up: RsyncUpstream,
    template: Scenario,
    old_release: Vec<u8>,
}

impl FtpsyncFixture {
    fn new() -> FtpsyncFixture {
        let up = RsyncUpstream::start();
        let template = Scenario::new("ftpsync mode, the first sync".into());
        ftpsync_conf(&template, up.port(), "rev1");
        let out = ftpsync_command(&template).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "the first sync: {out:?}\n{}",
            ftpsync_log(template.root())
        );
        let old_release = std::fs::read(template.mirror().join(RELEASE)).unwrap();
        FtpsyncFixture {
            up,
            template,
            old_release,
        }
    }
}

fn ftpsync_conf(sc: &Scenario, port: u16, module: &str) {
    let conf = sc.root().join("home/.config/ftpsync");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("ftpsync.conf"),
        format!(
            "MIRRORNAME=mirror.test\nTO={m}/\nRSYNC_HOST=127.0.0.1\nRSYNC_PATH={module}\n\
             RSYNC_EXTRA=\"--port={port}\"\nRSYNC={w}\nHOOK2={h}\nLOGDIR={r}/log\nMAILTO=nobody\n",
            m = sc.mirror().display(),
            w = sc.wrapper().display(),
            h = sc.hook2().display(),
            r = sc.root().display()
        ),
    )
    .unwrap();
}

fn ftpsync_command(sc: &Scenario) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dsync"));
    cmd.arg("ftpsync")
        .env("HOME", sc.root().join("home"))
        .env("LOGNAME", "nobody")
        .env("DSYNC_SENDMAIL", "/bin/true")
        .env_remove("SSH_ORIGINAL_COMMAND");
    cmd
}

fn ftpsync_log(root: &Path) -> String {
    let log = root.join("log");
    let read = |name: &str| std::fs::read_to_string(log.join(name)).unwrap_or_default();
    format!(
        "{}{}--- rsync-ftpsync.error:\n{}",
        read("ftpsync.log"),
        read("ftpsync.log.0"),
        read("rsync-ftpsync.error.0")
    )
}

/// `dsync ftpsync` gets `sig` at `stage`: it ends as ftpsync would (128+N,
/// or killed), nothing of it survives, the lock is gone or stale, apt sees
/// revision 1 whole, and the next run brings revision 2.
fn ftpsync_case(fx: &FtpsyncFixture, stage: Stage, sig: Sig) {
    ftpsync_case_with(fx, stage, sig, false)
}

/// [`ftpsync_case`]; with `hook_child`, hook2 waits through a subshell.
fn ftpsync_case_with(fx: &FtpsyncFixture, stage: Stage, sig: Sig, hook_child: bool) {
    let label = format!(
        "ftpsync mode, {} {}{}",
        sig.name(),
        stage.describe(),
        if hook_child { HOOK_CHILD } else { "" }
    );
    let mut sc = Scenario::new(label.clone());
    sc.hook_child(hook_child);
    let mirror = sc.mirror();
    copy_tree(&fx.template.mirror(), &mirror);
    ftpsync_conf(&sc, fx.up.port(), "debian");
    sc.arm(stage);
    sc.spawn(ftpsync_command(&sc));
    let root = sc.root().to_path_buf();
    let log_of = move || ftpsync_log(&root);
    sc.wait_for_stage(stage, true, &log_of);
    sc.signal(sc.child_pid(), sig);
    let status = sc.wait_exit(&log_of);
    match sig {
        Sig::Kill => assert_killed_by(&label, status, libc::SIGKILL),
        _ => assert_eq!(
            status.code(),
            Some(128 + sig.number()),
            "{label}: exit status\n{}",
            log_of()
        ),
    }
    sc.assert_nothing_survives(&log_of);
    let lock = mirror.join("Archive-Update-in-Progress-mirror.test");
    if sig == Sig::Kill {
        if let Some(pid) = procs::read_pid(&lock) {
            assert!(
                !procs::alive(pid),
                "{label}: the lock names {pid}, which still runs"
            );
        }
    } else {
        assert!(!lock.exists(), "{label}: lock left behind\n{}", log_of());
        assert!(
            log_of().contains(&format!("Interrupted by signal {}", sig.number())),
            "{label}: {}",
            log_of()
        );
    }
    assert_old_revision_whole(&label, &mirror, &fx.old_release, stage);

    sc.disarm();
    let out = ftpsync_command(&sc).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{label}: the next run: {out:?}\n{}",
        log_of()
    );
    assert_synced(&label, &mirror, &fx.up.rev2());
}

#[test]
fn ftpsync_mode_sigterm_and_sigint_at_every_stage_and_sigkill_during_hook2() {
    let fx = FtpsyncFixture::new();
    every(
        &[
            (Stage::One, Sig::Term),
            (Stage::One, Sig::Int),
            (Stage::Hook2, Sig::Term),
            (Stage::Hook2, Sig::Int),
            (Stage::Hook2, Sig::Kill),
            (Stage::Two, Sig::Term),
            (Stage::Two, Sig::Int),
        ],
        |(stage, sig)| ftpsync_case(&fx, stage, sig),
    );
}

#[test]
fn ftpsync_mode_sigkill_during_either_rsync_stage_takes_the_whole_rsync_down() {
    let fx = FtpsyncFixture::new();
    every(&[Stage::One, Stage::Two], |stage| {
        ftpsync_case(&fx, stage, Sig::Kill)
    });
}

// ---------------------------------------------------------------------------
// The dsync layer: the scheduler, its worker, general mode
// ---------------------------------------------------------------------------

/// A dsync home in the scenario's folder: `status=` for the status files,
/// and one repository `debian` (`src` for general mode, or `dsync-url`).
fn layer_home(sc: &Scenario, upstream: &str) {
    let home = sc.root().join("home");
    std::fs::create_dir_all(home.join("repos")).unwrap();
    std::fs::write(
        home.join("xync.conf"),
        format!("status={}\n", sc.root().join("www").display()),
    )
    .unwrap();
    std::fs::write(
        home.join("repos/debian.conf"),
        format!(
            "repo=debian\nsave={}\n{upstream}\nhook2={}\n",
            sc.mirror().display(),
            sc.hook2().display()
        ),
    )
    .unwrap();
}

/// `dsync -home HOME`, as cron runs it, with the scenario's rsync wrapper.
fn layer_command(sc: &Scenario) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dsync"));
    cmd.arg("-home")
        .arg(sc.root().join("home"))
        .env("DSYNC_RSYNC", sc.wrapper())
        .env("DSYNC_RETRY_WAIT", "1")
        .env("DSYNC_SENDMAIL", "/bin/true")
        .env_remove("DSYNC_DTP_STOP_AFTER_STAGE1");
    cmd
}

fn layer_log(root: &Path) -> String {
    let home = root.join("home");
    let read = |rel: &str| std::fs::read_to_string(home.join(rel)).unwrap_or_default();
    format!(
        "{}--- out:\n{}",
        read("logs/debian.log"),
        std::fs::read_to_string(root.join("out")).unwrap_or_default()
    )
}

/// Whether anyone holds the repository lock (`run/NAME.lock`, a flock).
fn repo_lock_held(sc: &Scenario) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(sc.root().join("home/run/debian.lock")) else {
        return false;
    };
    // SAFETY: flock on a descriptor we own; released by the unlock or the close.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
    }
    rc != 0
}

/// The dsync layer once the signalled run is over: the repository lock is
/// free; unless SIGKILL left it no time, the worker removed its pid file and
/// marked the sync failed (after SIGKILL the status says "syncing" until
/// the next run, checked by [`assert_layer_next_run`]).
#[track_caller]
fn assert_layer_after_signal(sc: &Scenario, sig: Sig, log: &dyn Fn() -> String) {
    let label = &sc.label;
    assert!(
        !repo_lock_held(sc),
        "{label}: the repository lock run/debian.lock is still held\n{}",
        log()
    );
    if sig != Sig::Kill {
        assert!(
            !sc.root().join("home/run/debian.pid").exists(),
            "{label}: run/debian.pid left\n{}",
            log()
        );
        assert_eq!(
            mirrors::job_status(&sc.root().join("www"), "debian"),
            ("0".to_string(), "failed".to_string()),
            "{label}: the status files say the sync failed\n{}",
            log()
        );
    }
}

#[track_caller]
fn assert_layer_next_run(sc: &Scenario, log: &dyn Fn() -> String) {
    let label = &sc.label;
    let out = layer_command(sc).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{label}: the next run: {out:?}\n{}",
        log()
    );
    assert_eq!(
        mirrors::job_status(&sc.root().join("www"), "debian"),
        ("1".to_string(), "success".to_string()),
        "{label}: the status files after the next run\n{}",
        log()
    );
    assert!(
        !sc.root().join("home/run/debian.pid").exists(),
        "{label}: run/debian.pid left after the next run"
    );
    assert!(!repo_lock_held(sc), "{label}: lock held after the next run");
}

/// Start the scheduler, wait for `stage`, signal `target`; then check how
/// the scheduler ended, that nothing of the run survives, and the lock and
/// status files.
fn layer_signal(
    sc: &mut Scenario,
    stage: Stage,
    target: Target,
    sig: Sig,
    rsync: bool,
    log: &dyn Fn() -> String,
) {
    let label = sc.label.clone();
    sc.arm(stage);
    sc.spawn(layer_command(sc));
    sc.wait_for_stage(stage, rsync, log);
    let worker = procs::read_pid(&sc.root().join("home/run/debian.pid"))
        .unwrap_or_else(|| panic!("{label}: no run/debian.pid while syncing\n{}", log()));
    // The worker leads a process group of its own.
    sc.groups.push(worker);
    let pid = match target {
        Target::Scheduler => sc.child_pid(),
        Target::Worker => worker,
    };
    sc.signal(pid, sig);
    let status = sc.wait_exit(log);
    match (target, sig) {
        (Target::Scheduler, Sig::Kill) => assert_killed_by(&label, status, libc::SIGKILL),
        // The worker failed, so the scheduler's run did.
        _ => assert_eq!(status.code(), Some(1), "{label}: exit status\n{}", log()),
    }
    sc.assert_nothing_survives(log);
    assert_layer_after_signal(sc, sig, log);
}

/// An upstream, and a mirror the dsync layer (general mode, two stages)
/// brought to revision 1.
struct LayerFixture {
    up: RsyncUpstream,
    template: Scenario,
    old_release: Vec<u8>,
}

impl LayerFixture {
    fn new() -> LayerFixture {
        let up = RsyncUpstream::start();
        let template = Scenario::new("dsync layer, the first sync".into());
        layer_home(
            &template,
            &format!("src=rsync://127.0.0.1:{}/rev1/", up.port()),
        );
        let out = layer_command(&template).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "the first sync: {out:?}\n{}",
            layer_log(template.root())
        );
        let old_release = std::fs::read(template.mirror().join(RELEASE)).unwrap();
        LayerFixture {
            up,
            template,
            old_release,
        }
    }
}

fn layer_case(fx: &LayerFixture, stage: Stage, target: Target, sig: Sig) {
    let label = format!(
        "dsync layer (general mode), {} to {} {}",
        sig.name(),
        target.name(),
        stage.describe()
    );
    let mut sc = Scenario::new(label.clone());
    copy_tree(&fx.template.mirror(), &sc.mirror());
    layer_home(
        &sc,
        &format!("src=rsync://127.0.0.1:{}/debian/", fx.up.port()),
    );
    let root = sc.root().to_path_buf();
    let log = move || layer_log(&root);
    layer_signal(&mut sc, stage, target, sig, true, &log);
    assert_old_revision_whole(&label, &sc.mirror(), &fx.old_release, stage);
    sc.disarm();
    assert_layer_next_run(&sc, &log);
    assert_synced(&label, &sc.mirror(), &fx.up.rev2());
}

#[test]
fn dsync_layer_sigterm_and_sigint_to_the_scheduler_during_either_rsync_stage() {
    let fx = LayerFixture::new();
    every(
        &[
            (Stage::One, Sig::Term),
            (Stage::One, Sig::Int),
            (Stage::Two, Sig::Term),
            (Stage::Two, Sig::Int),
        ],
        |(stage, sig)| layer_case(&fx, stage, Target::Scheduler, sig),
    );
}

#[test]
fn dsync_layer_sigkill_of_the_scheduler_or_the_worker_during_either_rsync_stage() {
    let fx = LayerFixture::new();
    every(
        &[
            (Stage::One, Target::Scheduler),
            (Stage::One, Target::Worker),
            (Stage::Two, Target::Scheduler),
            (Stage::Two, Target::Worker),
        ],
        |(stage, target)| layer_case(&fx, stage, target, Sig::Kill),
    );
}

#[test]
fn dsync_layer_signals_during_hook2_in_general_mode() {
    let fx = LayerFixture::new();
    assert!(
        fx.template.root().join("hook2-runs").exists(),
        "general mode never ran the repository's hook2= between its two stages:\n{}",
        layer_log(fx.template.root())
    );
    every(
        &[
            (Target::Scheduler, Sig::Term),
            (Target::Scheduler, Sig::Int),
            (Target::Scheduler, Sig::Kill),
            (Target::Worker, Sig::Kill),
        ],
        |(target, sig)| layer_case(&fx, Stage::Hook2, target, sig),
    );
}

// ---------------------------------------------------------------------------
// DTP
// ---------------------------------------------------------------------------

/// A DTP host (`dsync -service`) and a mirror the dsync layer brought to
/// revision 1 from it; the host then serves revision 2 with the big files.
struct DtpFixture {
    host: std::cell::RefCell<DtpHost>,
    template: Scenario,
    old_release: Vec<u8>,
    /// Whether the served tree has the stage-one big file now.
    with_stage1_big: std::cell::Cell<Option<bool>>,
}

impl DtpFixture {
    fn new() -> DtpFixture {
        let host = DtpHost::start(&["debian"], 0);
        archive::write_revision(&host.root("debian"), &spec(), 1).unwrap();
        host.gendsync("debian");
        let template = Scenario::new("DTP, the first sync".into());
        layer_home(&template, &format!("dsync-url={}", host.url("debian")));
        let out = layer_command(&template).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "the first sync: {out:?}\n{}\nservice:\n{}",
            layer_log(template.root()),
            host.output()
        );
        let old_release = std::fs::read(template.mirror().join(RELEASE)).unwrap();
        DtpFixture {
            host: std::cell::RefCell::new(host),
            template,
            old_release,
            with_stage1_big: std::cell::Cell::new(None),
        }
    }

    /// Serve revision 2 with the big file of stage two, and the one of stage
    /// one unless stage two is the one under test (stage one must then be
    /// quick under the same limit); throttle all but the hook2 scenarios.
    fn prepare(&self, stage: Stage) {
        let mut host = self.host.borrow_mut();
        let with_stage1_big = stage != Stage::Two;
        if self.with_stage1_big.get() != Some(with_stage1_big) {
            let root = host.root("debian");
            archive::write_revision(&root, &spec(), 2).unwrap();
            if with_stage1_big {
                big_file(&root.join(STAGE1_BIG), 1);
            }
            big_file(&root.join(STAGE2_BIG), 2);
            host.gendsync("debian");
            self.with_stage1_big.set(Some(with_stage1_big));
        }
        host.set_bwlimit(if stage == Stage::Hook2 {
            0
        } else {
            THROTTLE_KIB
        });
    }
}

fn dtp_case(fx: &DtpFixture, stage: Stage, target: Target, sig: Sig) {
    dtp_case_with(fx, stage, target, sig, false)
}

/// [`dtp_case`]; with `hook_child`, hook2 waits through a subshell.
fn dtp_case_with(fx: &DtpFixture, stage: Stage, target: Target, sig: Sig, hook_child: bool) {
    let label = format!(
        "DTP, {} to {} {}{}",
        sig.name(),
        target.name(),
        match stage {
            Stage::One => "during the stage-one download",
            Stage::Hook2 => "during hook2",
            Stage::Two => "during the stage-two download",
        },
        if hook_child { HOOK_CHILD } else { "" }
    );
    fx.prepare(stage);
    let mut sc = Scenario::new(label.clone());
    sc.hook_child(hook_child);
    copy_tree(&fx.template.mirror(), &sc.mirror());
    layer_home(
        &sc,
        &format!("dsync-url={}", fx.host.borrow().url("debian")),
    );
    let root = sc.root().to_path_buf();
    let log = move || layer_log(&root);
    layer_signal(&mut sc, stage, target, sig, false, &log);
    assert_old_revision_whole(&label, &sc.mirror(), &fx.old_release, stage);
    sc.disarm();
    fx.host.borrow_mut().set_bwlimit(0);
    assert_layer_next_run(&sc, &log);
    assert_synced(&label, &sc.mirror(), &fx.host.borrow().root("debian"));
}

#[test]
fn dtp_signals_during_hook2() {
    let fx = DtpFixture::new();
    every(
        &[
            (Target::Scheduler, Sig::Term),
            (Target::Scheduler, Sig::Int),
            (Target::Scheduler, Sig::Kill),
            (Target::Worker, Sig::Kill),
        ],
        |(target, sig)| dtp_case(&fx, Stage::Hook2, target, sig),
    );
}

#[test]
fn dtp_sigkill_of_the_scheduler_or_the_worker_during_either_download() {
    let fx = DtpFixture::new();
    every(
        &[
            (Stage::One, Target::Scheduler),
            (Stage::One, Target::Worker),
            (Stage::Two, Target::Scheduler),
            (Stage::Two, Target::Worker),
        ],
        |(stage, target)| dtp_case(&fx, stage, target, Sig::Kill),
    );
}

#[test]
fn dtp_sigterm_and_sigint_to_the_scheduler_during_either_download() {
    let fx = DtpFixture::new();
    every(
        &[
            (Stage::One, Sig::Term),
            (Stage::One, Sig::Int),
            (Stage::Two, Sig::Term),
            (Stage::Two, Sig::Int),
        ],
        |(stage, sig)| dtp_case(&fx, stage, Target::Scheduler, sig),
    );
}

// ---------------------------------------------------------------------------
// A hook's own children
// ---------------------------------------------------------------------------

/// SIGKILL leaves dsync no time to stop anything: what it started must die
/// with it all the same, the hook's children too (a hook running a pipeline
/// or a helper in the background), not only the hook's shell. The signal
/// comes within a millisecond or two of the hook's start, so each mode runs
/// three times: a SIGKILL soon after a child starts must not find its
/// protection still starting up.
#[test]
fn sigkill_during_hook2_takes_the_hooks_own_children_down() {
    let fx = FtpsyncFixture::new();
    let dtp = DtpFixture::new();
    let rounds: Vec<(bool, u32)> = (1..=3)
        .flat_map(|round| [(true, round), (false, round)])
        .collect();
    every(&rounds, |(ftpsync, _round)| {
        if ftpsync {
            ftpsync_case_with(&fx, Stage::Hook2, Sig::Kill, true)
        } else {
            dtp_case_with(&dtp, Stage::Hook2, Target::Worker, Sig::Kill, true)
        }
    });
}
