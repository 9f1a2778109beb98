//! The sync itself, once the settings are known: lock, hooks, stages, traces,
//! and the cleanup ftpsync does on every exit.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::argv;
use super::cli::Request;
use super::settings::Settings;
use crate::beneath::Root;
use crate::exit;
use crate::lock::{self, LockError, SyncLock};
use crate::log::{Log, savelog};
use crate::mail::Mailer;
use crate::rsync::{self, Outcome};
use crate::trace::{self, TraceInfo};

/// Why a run stopped early: the exit status to return.
type Stop = u8;

struct Engine {
    s: Settings,
    req: Request,
    to: PathBuf,
    log: Log,
    mailer: Mailer,
    base: Vec<String>,
    date_started: String,
    stage1_secs: u64,
    stage2_secs: u64,
    /// Something was reported with `error` (makes a success mail say ERROR).
    log_error: bool,
    lock: SyncLock,
}

pub fn run(s: Settings, req: Request) -> u8 {
    let base = argv::base(&s, s.rsync_protocol);
    let date_started = trace::date_rfc822();
    if !s.basedir.is_empty()
        && let Err(e) = std::env::set_current_dir(&s.basedir)
    {
        // ftpsync's own line (bash's), then what to do on a line of its own.
        eprintln!(
            "{}: cd: {}: {}",
            s.name,
            s.basedir,
            crate::process::strerror(&e)
        );
        eprintln!(
            "{}: BASEDIR={} must be a folder that exists (ftpsync's base folder); \
             fix it or leave BASEDIR unset",
            s.name, s.basedir
        );
        return exit::FAILURE;
    }
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe {
        libc::umask(0o022);
    }
    let to = PathBuf::from(&s.to);
    // TO is the operator's (a symlink to another disk is fine); below it the
    // tree is the upstream's, and trace folders are never made through symlinks.
    let made = std::fs::create_dir_all(&to)
        .and_then(|()| Root::open(&to))
        .and_then(|root| root.create_dirs(Path::new(trace::TRACE_DIR)));
    if let Err(e) = made {
        eprintln!(
            "{}: cannot create {}: {e}",
            s.name,
            to.join(trace::TRACE_DIR).display()
        );
        return exit::FAILURE;
    }
    // Announce the need for a sync before checking the lock: a run already in
    // progress sees this file and repeats its stages (a push while it runs).
    let update_required = in_to(&s.to, &format!("Archive-Update-Required-{}", s.mirrorname));
    if let Err(e) = touch(&update_required) {
        eprintln!(
            "{}: cannot create {}: {e}",
            s.name,
            update_required.display()
        );
        return exit::FAILURE;
    }
    let lock_path = in_to(
        &s.to,
        &format!("Archive-Update-in-Progress-{}", s.mirrorname),
    );
    let lock = match lock::acquire(&to, &lock_path) {
        Ok(lock) => lock,
        Err(e @ LockError::Held { .. }) => {
            println!("{e}");
            return exit::FAILURE;
        }
        Err(e) => {
            eprintln!("{}: {e}", s.name);
            return exit::FAILURE;
        }
    };
    let log = match Log::open(&s.log, &s.program) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("{}: cannot open log {}: {e}", s.name, s.log.display());
            lock.remove_file();
            return exit::FAILURE;
        }
    };
    let mut engine = Engine {
        mailer: Mailer::new(&s.mailto, s.smtp_server.clone()),
        s,
        req,
        to,
        log,
        base,
        date_started,
        stage1_secs: 0,
        stage2_secs: 0,
        log_error: false,
        lock,
    };
    let rc = match engine.sync() {
        Ok(()) => exit::OK,
        Err(code) => code,
    };
    engine.cleanup(rc)
}

/// `$TO/name` spelled as ftpsync spells it (a `TO` ending in `/` gives `//`), so
/// log lines read the same.
fn in_to(to: &str, name: &str) -> PathBuf {
    PathBuf::from(format!("{to}/{name}"))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The last `--stats` regular-file count written to `path` after byte `from`.
fn stats_since(path: &Path, from: u64) -> Option<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut text = Vec::new();
    file.read_to_end(&mut text).ok()?;
    String::from_utf8_lossy(&text)
        .lines()
        .rev()
        .find_map(crate::shrink::rsync_stats_regular_files)
}

/// Create a marker file in TO (`Archive-Update-Required-*`), never through
/// a symlink the upstream left under that name.
fn touch(path: &Path) -> std::io::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    };
    Root::open(dir)?.touch(Path::new(name))
}

impl Engine {
    fn update_required(&self) -> PathBuf {
        in_to(
            &self.s.to,
            &format!("Archive-Update-Required-{}", self.s.mirrorname),
        )
    }

    fn sync(&mut self) -> Result<(), Stop> {
        self.log.line("Mirrorsync start");
        if let Ok(conn) = std::env::var("SSH_CONNECTION")
            && let Some(from) = conn.split(' ').next().filter(|f| !f.is_empty())
        {
            self.log.line(&format!("We got pushed from {from}"));
        }
        if self.req.callback && (self.s.callback_host == "none" || self.s.callback_key == "none") {
            self.req.callback = false;
            self.error("We are asked to call back, but we do not know where to and do not have a key, ignoring callback");
        }
        if let Some(note) = self.s.rsync_gate_note.clone() {
            self.log.line(&note);
        }
        self.hook(1)?;
        let local_files = self.local_files()?;
        let mut uip_retries = 0;
        while self.update_required().exists() {
            self.log.line(&format!(
                "Running mirrorsync, update is required, {} exists",
                self.update_required().display()
            ));
            let stats_from = file_len(&self.s.log_rsync);
            let result = self.stage_one()?;
            let _ = std::fs::remove_file(self.update_required());
            self.check(result, 1, exit::STAGE1_FAILED)?;
            self.shrink_guard(local_files, stats_from)?;
            self.hook(2)?;
            let result = self.stage_two(&mut uip_retries)?;
            self.check(result, 2, exit::STAGE2_FAILED)?;
            self.hook(3)?;
        }
        self.write_traces();
        self.hook(4)?;
        if self.req.callback {
            self.callback();
        }
        // Downstreams must not see our lock when we trigger them.
        self.lock.remove_file();
        if self.s.hub && (self.req.stage2 || self.req.all || self.req.mhop) {
            self.trigger_downstreams()?;
            self.hook(5)?;
        }
        Ok(())
    }

    /// Regular files of the mirror before stage one, when `MIN_UPSTREAM_RATIO`
    /// asks for the shrink guard and stage one runs (0 otherwise). rsync
    /// counts them with stage one's own filters (argv::local_count); if it
    /// cannot, every regular file counts, which errs on the side of refusing.
    fn local_files(&mut self) -> Result<u64, Stop> {
        if !(self.req.stage1 || self.req.all) || self.s.min_upstream_ratio <= 0.0 {
            return Ok(0);
        }
        let counted = self.count_like_stage_one();
        self.interrupted()?;
        match counted {
            Ok(Some(count)) => return Ok(count),
            Ok(None) => self
                .log
                .line("rsync printed no file count (no --stats): the shrink check was skipped"),
            Err(why) => self.log.line(&format!(
                "cannot count the mirror with stage one's filters ({why}); counting every file"
            )),
        }
        crate::shrink::mirror_files(&self.to, self.s.min_upstream_ratio).map_err(|e| {
            self.error(&format!("ERROR: cannot count the files of the mirror: {e}"));
            exit::FAILURE
        })
    }

    /// The mirror's regular files as stage one's rsync filters see them
    /// (`None` without `--stats`). Nothing of it is left in the mirror.
    fn count_like_stage_one(&mut self) -> Result<Option<u64>, String> {
        let scratch = tempfile::Builder::new()
            .prefix("dsync-count-")
            .tempdir()
            .map_err(|e| format!("temporary folder: {e}"))?;
        let log_file = scratch.path().join("stats.log");
        let empty = scratch.path().join("empty");
        std::fs::create_dir(&empty).map_err(|e| format!("{}: {e}", empty.display()))?;
        let argv = argv::local_count(
            &self.base,
            &self.s.rsync_options1,
            &self.s.to,
            &log_file,
            &empty,
        );
        let (program, args) = argv.split_first().ok_or("no rsync command")?;
        let mut cmd = self.child_command(program, args);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let status = crate::process::run(&mut cmd).map_err(|e| format!("{program}: {e}"))?;
        match crate::process::shell_status(status) {
            0 | 24 => Ok(stats_since(&log_file, 0)),
            code => Err(format!("rsync exit code {code}")),
        }
    }

    /// Stage two deletes: refuse it when stage one's `--stats` (written to
    /// rsync's `--log-file` after `stats_from`) show a shrunken upstream.
    fn shrink_guard(&mut self, local_files: u64, stats_from: u64) -> Result<(), Stop> {
        if local_files == 0 {
            return Ok(());
        }
        let Some(upstream) = stats_since(&self.s.log_rsync, stats_from) else {
            self.log
                .line("rsync printed no file count (no --stats): the shrink check was skipped");
            return Ok(());
        };
        let knob = format!("MIN_UPSTREAM_RATIO=0 in {}", self.s.config_path.display());
        match crate::shrink::check(
            upstream,
            local_files,
            self.s.min_upstream_ratio,
            &self.to,
            &knob,
        ) {
            Ok(()) => Ok(()),
            Err(shrunk) => {
                self.error(&format!("ERROR: {shrunk}"));
                Err(exit::FAILURE)
            }
        }
    }

    /// Stage one, repeated while pushes keep coming in.
    fn stage_one(&mut self) -> Result<i32, Stop> {
        if !(self.req.stage1 || self.req.all) {
            // A stage-two-only push: the stage-one time comes from its trace.
            let stage1 = self
                .to
                .join(format!("project/trace/{}-stage1", self.s.mirrorname));
            if let Some(secs) = trace::field(&stage1, "Total time spent in stage1 rsync") {
                self.stage1_secs = secs.parse().unwrap_or(0);
            }
            return Ok(0);
        }
        let mut result = 0;
        while self.update_required().exists() {
            let _ = std::fs::remove_file(self.update_required());
            let started = Instant::now();
            let argv = argv::stage(&self.base, &self.s.rsync_options1);
            result = self.run_rsync("stage1", &argv)?;
            self.stage1_secs += started.elapsed().as_secs();
            self.log
                .line(&format!("Back from rsync with returncode {result}"));
        }
        Ok(result)
    }

    /// Stage two, unless the upstream is itself mid-update.
    fn stage_two(&mut self, uip_retries: &mut u32) -> Result<i32, Stop> {
        if !(self.req.stage2 || self.req.all) {
            return Ok(0);
        }
        if self.upstream_update_in_progress() {
            self.log
                .line("Upstream archive update in progress, skipping stage2");
            if *uip_retries < self.s.uipretries {
                self.log
                    .line(&format!("Retrying update in {}", self.s.uipsleep));
                let _ = touch(&self.update_required());
                *uip_retries += 1;
                self.sleep(Duration::from_secs(self.s.uipsleep))?;
                return Ok(0);
            }
            self.error(&format!(
                "Update has been retried {} times, aborting",
                uip_retries
            ));
            self.log
                .line("Perhaps upstream is still updating or there's a stale AUIP file");
            return Ok(1);
        }
        let started = Instant::now();
        let argv = argv::stage(&self.base, &self.s.rsync_options2);
        let result = self.run_rsync("stage2", &argv)?;
        self.stage2_secs += started.elapsed().as_secs();
        self.log
            .line(&format!("Back from rsync with returncode {result}"));
        Ok(result)
    }

    /// Did stage one bring in another mirror's `Archive-Update-in-Progress-*`?
    /// Such files are removed (stage one brings them back while upstream is busy).
    fn upstream_update_in_progress(&mut self) -> bool {
        let mut names: Vec<String> = std::fs::read_dir(&self.to)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("Archive-Update-in-Progress-"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        if names.is_empty() {
            self.error("Lock file is missing, this should not happen");
        }
        let ours = self
            .lock
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        let mut in_progress = false;
        for name in names {
            if Some(&name) == ours.as_ref() {
                continue;
            }
            let path = in_to(&self.s.to, &name);
            if path.is_file() {
                let _ = std::fs::remove_file(&path);
            } else {
                self.log.line(&format!(
                    "AUIP file '{}' is not really a file, weird",
                    path.display()
                ));
            }
            in_progress = true;
        }
        in_progress
    }

    /// ftpsync's `check_rsync`: log the speed, then accept, retry, or fail.
    fn check(&mut self, result: i32, step: u8, code: u8) -> Result<(), Stop> {
        if let Some(speed) = rsync::last_speed_kib(&self.s.log_rsync) {
            self.log.line(&format!(
                "Latest recorded rsync transfer speed: {speed} KB/s"
            ));
        }
        let outcome = rsync::classify(result);
        if outcome == Outcome::Ok {
            return Ok(());
        }
        if outcome == Outcome::Failed {
            self.error(&format!(
                "ERROR: Sync step {step} went wrong, got errorcode {result}. Logfile: {}",
                self.log.path().display()
            ));
        }
        if outcome == Outcome::RetryIfPushed && self.update_required().exists() {
            self.log.line(&format!(
                "We got error {result} from rsync, but a second push went in hence ignoring this error for now"
            ));
            return Ok(());
        }
        self.log.line(&format!(
            "rsync exit code {result}: {}",
            rsync::meaning(result)
        ));
        Err(code)
    }

    fn child_command(&self, program: &str, args: &[String]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(self.s.child_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    /// Run one rsync stage, its output appended to `rsync-NAME.error`.
    fn run_rsync(&mut self, stage: &str, argv: &[String]) -> Result<i32, Stop> {
        self.log
            .line(&format!("Running {stage}: {}", argv.join(" ")));
        let Some((program, args)) = argv.split_first() else {
            return Ok(1);
        };
        let output = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.s.log_rsync_error);
        let Ok(output) = output else {
            return Ok(1);
        };
        let mut cmd = self.child_command(program, args);
        cmd.stdout(output.try_clone().map(Stdio::from).unwrap_or(Stdio::null()))
            .stderr(output);
        let status = match crate::process::run(&mut cmd) {
            Ok(status) => crate::process::shell_status(status),
            Err(e) => {
                self.cannot_run(program, &e);
                127
            }
        };
        self.interrupted()?;
        Ok(status)
    }

    /// Run hook `n` if configured. A failing hook stops the run with the hook's
    /// status, as ftpsync (running under `set -e`) does.
    fn hook(&mut self, n: usize) -> Result<(), Stop> {
        let script = self.s.hooks[n - 1].clone();
        if script.is_empty() {
            return Ok(());
        }
        self.log.line(&format!("Running hook {n}: {script}"));
        // Unlike ftpsync (which drops them), arguments reach the hook; quotes group words.
        let words = crate::process::command_words(&script);
        let result = match words.split_first() {
            None => 0,
            Some((program, args)) => self.run_logged(program, args),
        };
        self.interrupted()?;
        let message = format!("Back from hook {n}, got returncode {result}");
        if result != 0 {
            self.error(&message);
            return Err((result & 0xff) as u8);
        }
        self.log.line(&message);
        Ok(())
    }

    /// Say in the log that `program` could not be started: bash's own line
    /// (unstamped, as ftpsync's log has it), then ours.
    fn cannot_run(&self, program: &str, e: &std::io::Error) {
        use std::io::Write;
        if let Ok(mut out) = self.log.child_output() {
            let _ = writeln!(out, "{}", crate::process::bash_cannot_run(program, e));
        }
        self.log.line(&format!(
            "cannot run {program}: check that it exists and is executable"
        ));
    }

    /// Run a helper (hook, ssh, runmirrors) with its output in our log.
    fn run_logged(&mut self, program: &str, args: &[String]) -> i32 {
        let mut cmd = self.child_command(program, args);
        if let Ok(out) = self.log.child_output() {
            cmd.stderr(out.try_clone().map(Stdio::from).unwrap_or(Stdio::null()))
                .stdout(out);
        }
        match crate::process::run(&mut cmd) {
            Ok(status) => crate::process::shell_status(status),
            Err(e) => {
                self.cannot_run(program, &e);
                exit::HOOK_NOT_RUNNABLE as i32
            }
        }
    }

    fn callback(&mut self) {
        let args: Vec<String> = [
            "-n",
            "-o",
            "BatchMode=yes",
            "-o",
            "ServerAliveInterval=45",
            "-o",
            "ConnectTimeout=45",
            "-o",
            "PasswordAuthentication=no",
            "-i",
            &self.s.callback_key,
            &format!("-ouser {}", self.s.callback_user),
            &self.s.callback_host,
            &format!("callback:{}", crate::host::name()),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        self.run_logged("ssh", &args);
    }

    /// `HUB=true`: hand over to runmirrors, as ftpsync does.
    fn trigger_downstreams(&mut self) -> Result<(), Stop> {
        let mut args = String::new();
        if !self.req.archive.is_empty() {
            args = format!("-a {}", self.req.archive);
        }
        args.push_str(" -f");
        if self.req.stage1 {
            args.push_str(" -k mhop");
        } else if self.req.stage2 {
            args.push_str(" -k stage2");
        } else if self.req.all {
            args.push_str(" -k all");
        }
        self.log
            .line(&format!("Trigger slave mirrors using {args}"));
        let program = match self.s.bindir.as_str() {
            "" => "runmirrors".to_string(),
            dir => format!("{dir}/runmirrors"),
        };
        let words: Vec<String> = args.split_whitespace().map(str::to_string).collect();
        let result = self.run_logged(&program, &words);
        self.interrupted()?;
        if result != 0 {
            self.error(&format!("{program} failed with returncode {result}"));
            return Err((result & 0xff) as u8);
        }
        self.log.line("Trigger slave done");
        Ok(())
    }

    fn write_traces(&mut self) {
        let info = TraceInfo {
            date_started: self.date_started.clone(),
            mirrorname: self.s.mirrorname.clone(),
            tracehost: self.s.tracehost.clone(),
            about: self.s.info.clone(),
            arch_include: self.s.arch_include.clone(),
            arch_exclude: self.s.arch_exclude.clone(),
            upstream: self.s.rsync_host.clone(),
            transport: self.s.transport.trace_name().to_string(),
            bytes_received: rsync::total_bytes_received(&self.s.log_rsync),
            stage1_secs: self.stage1_secs,
            stage2_secs: self.stage2_secs,
        };
        let trace_dir = self.to.join(trace::TRACE_DIR);
        let stage1_trace = format!("{}-stage1", self.s.mirrorname);
        let result = Root::open(&self.to).and_then(|root| {
            if self.req.stage2 || self.req.all {
                trace::write_all(&root, &self.s.mirrorname, &info)?;
                if self.req.all {
                    let _ = root.remove_file(&Path::new(trace::TRACE_DIR).join(&stage1_trace));
                }
                Ok(())
            } else if self.req.stage1 {
                trace::write_all(&root, &stage1_trace, &info)
            } else {
                Ok(())
            }
        });
        if let Err(e) = result {
            self.error(&format!(
                "cannot write trace files in {}: {e}",
                trace_dir.display()
            ));
        }
    }

    /// Log `message`, remember there was an error, and mail it right away.
    fn error(&mut self, message: &str) {
        self.log.line(message);
        self.log_error = true;
        let subject = format!(
            "[{}@{}] ERROR: {message}",
            self.s.program,
            crate::host::short()
        );
        if let Err(e) = self.mailer.send(&subject, &[message.to_string()], &[]) {
            self.log.line(&format!("cannot send mail: {e}"));
        }
    }

    fn interrupted(&self) -> Result<(), Stop> {
        match crate::signals::received() {
            Some(signal) => {
                self.log
                    .line(&format!("Interrupted by signal {signal}, stopping"));
                Err(exit::for_signal(signal))
            }
            None => Ok(()),
        }
    }

    /// Sleep, but wake up for a termination signal.
    fn sleep(&self, total: Duration) -> Result<(), Stop> {
        let deadline = Instant::now() + total;
        while Instant::now() < deadline {
            self.interrupted()?;
            std::thread::sleep(Duration::from_millis(200).min(deadline - Instant::now()));
        }
        self.interrupted()
    }

    /// What ftpsync does on every exit: log, mail, rotate logs, drop the lock.
    fn cleanup(self, rc: u8) -> u8 {
        self.log.line(if rc > 0 {
            "Mirrorsync done with errors"
        } else {
            "Mirrorsync done"
        });
        self.mail_report(rc);
        for path in [&self.s.log_rsync, &self.s.log_rsync_error, &self.s.log] {
            if let Err(e) = savelog(path, self.s.logrotate) {
                eprintln!("{}: cannot rotate {}: {e}", self.s.name, path.display());
            }
        }
        self.lock.remove_file();
        rc
    }

    fn mail_report(&self, rc: u8) {
        let rsync_errors = std::fs::metadata(&self.s.log_rsync_error).is_ok_and(|m| m.len() > 0);
        let log = self.s.log.as_path();
        let (subject, mut attachments): (&str, Vec<&Path>) = if rsync_errors {
            ("ERROR: rsync errors", vec![&self.s.log_rsync_error, log])
        } else if rc > 0 {
            ("ERROR", vec![log])
        } else if !self.s.errors_only {
            (if self.log_error { "ERROR" } else { "SUCCESS" }, vec![log])
        } else {
            return;
        };
        if self.s.full_logs {
            attachments.push(&self.s.log_rsync);
        }
        let subject = format!("[{}@{}] {subject}", self.s.program, crate::host::short());
        if let Err(e) = self.mailer.send(&subject, &[], &attachments) {
            self.log.line(&format!("cannot send mail: {e}"));
        }
    }
}
