//! One repository's sync, run in a process of its own (`dsync __worker NAME`),
//! so the scheduler can stop it, and everything it started, as one process
//! group: on `maxtime`, on `-emoff`, or when the scheduler itself is stopped.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::general::{self, Job, Outcome};
use super::home::Home;
use super::notify::{self, Event};
use super::progress;
use super::repo::Repo;
use super::status::{JobInfo, State, StatusStore};
use super::upstream::{self, Source};
use super::xync::{self, Global};
use crate::exit;
use crate::log::Log;

/// The marker `-emoff` leaves in a stopped repository's folder; a name the
/// DTP protocol defines (a manifest never lists it).
pub use crate::dtp::manifest::EMOFF_MARKER;

/// Entry point of the worker process: `dsync -home H __worker NAME [ADDRESS]`.
pub fn main(home: &Home, name: &str, address: Option<&str>) -> u8 {
    let (global, _) = xync::load(&home.xync_conf());
    let (repos, _) = super::repo_files::load(home);
    let Some(repo) = repos.into_iter().find(|r| r.name == name) else {
        eprintln!(
            "dsync: no repository {name} in {}",
            super::repo_files::places(home)
        );
        return exit::CONFIG;
    };
    let _lock = match RepoLock::take(home, name) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            eprintln!("dsync: {name}: previous sync still running, skipped");
            return exit::SKIPPED;
        }
        Err(e) => {
            eprintln!("dsync: {name}: {e}");
            return exit::FAILURE;
        }
    };
    Worker::new(home, &global, &repo, address).run()
}

/// The per-repository lock (a `flock` on `run/NAME.lock`) and the pid file
/// `run/NAME.pid` through which `-emoff` finds the worker.
struct RepoLock {
    _file: File,
    pid_file: PathBuf,
}

impl RepoLock {
    fn take(home: &Home, name: &str) -> std::io::Result<Option<RepoLock>> {
        std::fs::create_dir_all(home.run_dir())?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(home.run_dir().join(format!("{name}.lock")))?;
        // SAFETY: flock on a valid descriptor.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Ok(None);
        }
        let pid_file = home.run_dir().join(format!("{name}.pid"));
        std::fs::write(&pid_file, format!("{}\n", std::process::id()))?;
        Ok(Some(RepoLock {
            _file: file,
            pid_file,
        }))
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// The ftpsync block of `repo` as a sync runs it (and `-test` reads it): `TO`
/// and `LOGDIR` from the repository, `MAILTO` and xync.conf's guards as
/// defaults the block may override, and `upstream` (an rsync URL the
/// repository layer chose: intranet mode, or the catalog for a block without
/// `RSYNC_HOST`) in place of the block's own.
pub fn ftpsync_config<'a>(
    repo: &'a Repo,
    global: &Global,
    logdir: &Path,
    upstream: Option<&str>,
) -> Option<crate::ftpsync::Embedded<'a>> {
    let block = repo.ftpsync.as_ref()?;
    Some(crate::ftpsync::Embedded {
        name: &repo.name,
        file: &repo.file,
        text: &block.text,
        first_line: block.first_line,
        defaults: vec![
            ("TO", repo.save.to_string_lossy().into_owned()),
            ("LOGDIR", logdir.to_string_lossy().into_owned()),
            ("MAILTO", ftpsync_mailto(repo, global)),
            ("MIN_UPSTREAM_RATIO", global.min_upstream_ratio.to_string()),
            (
                "ALLOW_VULNERABLE_RSYNC",
                global.allow_vulnerable_rsync.to_string(),
            ),
        ],
        overrides: upstream.map(upstream::ftpsync_vars).unwrap_or_default(),
    })
}

/// Where the ftpsync engine's mails go unless the block says `MAILTO=`: the
/// repository's `mailto=`, xync.conf's, `$LOGNAME` (ftpsync's own default,
/// which cron sets but a systemd service may not), else the running account.
fn ftpsync_mailto(repo: &Repo, global: &Global) -> String {
    let configured = repo.mailto.clone().or(global.mailto.clone());
    let logname = std::env::var("LOGNAME").ok().filter(|l| !l.is_empty());
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    configured
        .or(logname)
        .unwrap_or_else(|| super::home::user_name(uid))
}

/// Where a repository's log goes: `logs/NAME.log`, `logs/NAME/NAME.log` with
/// `logdir`, and time-stamped names (`logs-YYYYMMDD-HHMM.log`) with `logtime`.
pub fn log_path(home: &Home, global: &Global, name: &str) -> PathBuf {
    let dir = if global.logdir {
        home.logs_dir().join(name)
    } else {
        home.logs_dir()
    };
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M");
    let file = match (global.logdir, global.logtime) {
        (true, true) => format!("logs-{stamp}.log"),
        (false, true) => format!("{name}-{stamp}.log"),
        _ => format!("{name}.log"),
    };
    dir.join(file)
}

struct Worker<'a> {
    home: &'a Home,
    global: &'a Global,
    repo: &'a Repo,
    address: Option<&'a str>,
    log: Log,
    log_path: PathBuf,
    status: StatusStore,
    started: i64,
}

/// How a sync ended: success, or the exit code and what it means.
type SyncResult = Result<(), (i32, String)>;

impl<'a> Worker<'a> {
    fn new(home: &'a Home, global: &'a Global, repo: &'a Repo, address: Option<&'a str>) -> Self {
        let log_path = log_path(home, global, &repo.name);
        if let Some(dir) = log_path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let log = Log::open(&log_path, "dsync").unwrap_or_else(|_| {
            Log::open(Path::new("/dev/null"), "dsync").expect("/dev/null opens")
        });
        Worker {
            home,
            global,
            repo,
            address,
            log,
            log_path,
            status: status_store(home, global),
            started: chrono::Utc::now().timestamp(),
        }
    }

    fn run(self) -> u8 {
        let name = &self.repo.name;
        self.log.line(&format!("sync of {name} starts"));
        let upstream = upstream::resolve(self.repo, self.global, self.home);
        if !self.global.intra
            && let Some(address) = self.repo.intradd.as_ref().or(self.global.intradd.as_ref())
        {
            self.log.line(&format!(
                "warning: intradd={address} is not used while xync.conf has intra=false: \
                 syncing from the public upstream; add intra=true to {} to sync from {address}",
                self.home.xync_conf().display()
            ));
        }
        let upstream_text = match &upstream {
            Ok(Source::Rsync(urls)) => urls.first().cloned().unwrap_or_default(),
            Ok(Source::Ftpsync(urls)) => urls.first().cloned().unwrap_or("ftpsync".into()),
            Ok(Source::Dtp(url)) => url.clone(),
            Err(_) => String::new(),
        };
        self.set_status(State::Syncing, |info| {
            info.upstream = upstream_text.clone();
            info.last_started = Some(self.started);
        });
        let result = match upstream {
            Err(diag) => Err((exit::CONFIG as i32, diag.to_string())),
            Ok(source) => {
                let result = self.with_retries(&source);
                if result.is_ok() && self.repo.dsync && !matches!(source, Source::Dtp(_)) {
                    self.publish();
                }
                if result.is_ok() {
                    self.push_downstreams();
                }
                result
            }
        };
        self.finish(result)
    }

    /// `push=`: trigger each downstream over ssh (`sync:all`, runmirrors' `all`
    /// push), all at once, and wait for them; a failed trigger is logged and
    /// mailed, the sync itself stays a success.
    fn push_downstreams(&self) {
        use crate::ftpsync::push::{Context, Push};
        if self.repo.push.is_empty() {
            return;
        }
        let key = self.repo.pushkey.clone().unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".ssh/pushmirror")
        });
        let mailto = self
            .repo
            .mailto
            .clone()
            .or_else(|| self.global.mailto.clone());
        let mail = |subject: &str, body: &str| {
            if let Some(to) = &mailto {
                let subject = format!(
                    "[dsync@{}] {}: {subject}",
                    crate::host::short(),
                    self.repo.name
                );
                let mailer =
                    crate::mail::Mailer::new(&to.replace(',', " "), self.global.smtp.clone());
                let _ = mailer.send(&subject, &[body.to_string()], &[]);
            }
        };
        let ctx = Context {
            log: &self.log,
            logdir: self
                .log_path
                .parent()
                .unwrap_or(&self.home.root)
                .to_path_buf(),
            lockdir: self.home.run_dir(),
            // Trust a downstream's host key on first use, never a changed one.
            ssh_opts: "-o StrictHostKeyChecking=accept-new".into(),
            pushkind: "all".into(),
            from_ftpsync: false,
            pushdelay: Duration::ZERO,
            pushlocks: Vec::new(),
            error_mail: &mail,
        };
        let pushes: Vec<Push> = self
            .repo
            .push
            .iter()
            .map(|t| Push {
                kind: "all".into(),
                name: format!("{}-push-{}", self.repo.name, t.host),
                host: t.host.clone(),
                user: t.user.clone(),
                proto: 99,
                key: key.display().to_string(),
                ssh_opts: t.port.map(|p| format!("-p {p}")).unwrap_or_default(),
                archive: String::new(),
            })
            .collect();
        std::thread::scope(|scope| {
            for push in &pushes {
                self.log
                    .line(&format!("Trigger {}@{}", push.user, push.host));
                let ctx = &ctx;
                scope.spawn(move || push.run(ctx));
            }
        });
    }

    /// `dsync=true`: write the DTP manifest of the tree just synced (a DTP
    /// sync installs its upstream's verified manifest instead). A failure here
    /// is logged; the sync itself succeeded.
    fn publish(&self) {
        match super::dtp_host::gendsync::after_sync(self.home, self.repo) {
            Ok(summary) => self.log.line(&format!("manifest: {summary}")),
            Err(e) => self.log.line(&format!("manifest not written: {e}")),
        }
    }

    /// Up to `retries` tries; only transient failures are tried again, after a
    /// growing pause (`DSYNC_RETRY_WAIT` seconds, default 30, times the try).
    fn with_retries(&self, source: &Source) -> SyncResult {
        let wait: u64 = std::env::var("DSYNC_RETRY_WAIT")
            .ok()
            .and_then(|w| w.parse().ok())
            .unwrap_or(30);
        let tries = self.global.retries.max(1);
        let mut last = Ok(());
        for attempt in 1..=tries {
            let (result, transient) = self.sync_once(source);
            if result.is_ok() || !transient || crate::signals::received().is_some() {
                return result;
            }
            if let Err((code, why)) = &result {
                self.log
                    .line(&format!("try {attempt}/{tries} failed ({code}: {why})"));
            }
            last = result;
            if attempt < tries {
                let pause = Duration::from_secs(wait * u64::from(attempt));
                self.log
                    .line(&format!("trying again in {} s", pause.as_secs()));
                if !sleep_unless_signalled(pause) {
                    break;
                }
            }
        }
        last
    }

    /// One try: the result and whether a failure is worth another try.
    fn sync_once(&self, source: &Source) -> (SyncResult, bool) {
        match source {
            Source::Ftpsync(urls) if urls.is_empty() => self.run_ftpsync(None),
            Source::Ftpsync(urls) => {
                // Each upstream in turn until one works, as general mode does.
                let mut outcome = (Ok(()), false);
                for url in urls {
                    outcome = self.run_ftpsync(Some(url));
                    if outcome.0.is_ok() || !outcome.1 {
                        break;
                    }
                }
                outcome
            }
            Source::Dtp(url) => self.run_dtp(url),
            Source::Rsync(urls) => self.run_rsync(urls),
        }
    }

    /// DTP: every `ipadd` address in turn, one connection pool per address;
    /// ftpsync's hooks and trace files around it.
    fn run_dtp(&self, url: &str) -> (SyncResult, bool) {
        use crate::dtp::client::{self, ClientOptions};
        let started = Instant::now();
        let date_started = crate::trace::date_u();
        let mirrorname = crate::host::fqdn();
        let mut options = ClientOptions::new(url, self.repo.save.clone());
        options.addresses = self
            .global
            .ipadd
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        options.connections = self.global.dtp_connections;
        options.max_delete = self.global.max_delete;
        options.min_upstream_ratio = self.global.min_upstream_ratio;
        options.timeout = Duration::from_secs(self.global.timeout);
        options.min_rate = self.global.dtp_min_rate;
        options.redirects = self.repo.dtp_redirects;
        options.protect = vec![PathBuf::from(crate::trace::TRACE_DIR).join(&mirrorname)];
        // Our trace changes the installed manifest after each sync: keep the
        // upstream's ETag apart, so an unchanged upstream still answers 304.
        options.etag_file = Some(self.home.run_dir().join(format!("{}.etag", self.repo.name)));
        // Tests shorten ftpsync's UIPSLEEP of 5 minutes.
        if let Some(secs) = std::env::var("DSYNC_UIPSLEEP")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            options.uip_sleep = Duration::from_secs(secs);
        }
        if let Err(failed) = self.hook(1) {
            return (Err(failed), false);
        }
        self.log
            .line(&format!("DTP from {url} into {}", self.repo.save.display()));
        let stage1_done = std::cell::Cell::new(started.elapsed());
        let after_stage = |stage: u8| {
            if stage == 1 {
                stage1_done.set(started.elapsed());
            }
            self.hook(stage + 1).map_err(|(_, why)| why)
        };
        let summary = match client::sync_with_hooks(
            &options,
            &|line: &str| self.log.line(line),
            &after_stage,
        ) {
            Ok(summary) => summary,
            Err(e) => {
                self.log.line(&format!("DTP failed: {e}"));
                return (Err((exit::FAILURE as i32, e.to_string())), e.is_transient());
            }
        };
        if summary.unchanged {
            // Like ftpsync-cron, an unchanged upstream leaves the tree as it is:
            // a new trace would make the installed manifest lie, and mending it
            // costs a pass over every entry (the status files say we looked).
            self.log.line("DTP: nothing changed upstream");
            return match self.hook(4) {
                Ok(()) => (Ok(()), false),
                Err(failed) => (Err(failed), false),
            };
        } else {
            self.log.line(&format!(
                "DTP: {} entries, fetched {} files ({} bytes), deleted {}",
                summary.entries, summary.fetched_files, summary.fetched_bytes, summary.deleted
            ));
        }
        let info = crate::trace::TraceInfo {
            date_started,
            tracehost: mirrorname.clone(),
            mirrorname,
            about: crate::trace::MirrorInfo {
                trigger: "cron".into(),
                ..Default::default()
            },
            upstream: url.to_string(),
            transport: "dtp".into(),
            bytes_received: summary.fetched_bytes,
            stage1_secs: stage1_done.get().as_secs(),
            stage2_secs: started
                .elapsed()
                .saturating_sub(stage1_done.get())
                .as_secs(),
            ..Default::default()
        };
        self.write_trace(&info);
        match self.hook(4) {
            Ok(()) => (Ok(()), false),
            Err(failed) => (Err(failed), false),
        }
    }

    /// A Debian-style tree (one with `project/trace/`) gets our trace file and
    /// `_hierarchy`, as ftpsync writes them, after every sync that changed it.
    fn write_trace(&self, info: &crate::trace::TraceInfo) {
        let save = &self.repo.save;
        let file = save.join(crate::trace::TRACE_DIR).join(&info.mirrorname);
        let root = match crate::beneath::Root::open(save) {
            Ok(root) => root,
            Err(e) => {
                self.log
                    .line(&format!("cannot write the trace {}: {e}", file.display()));
                return;
            }
        };
        // Not a Debian-style tree: no traces. A symlink there is no folder
        // of the tree's either; say so, as writing through it is refused.
        if !root.is_dir(Path::new(crate::trace::TRACE_DIR)) {
            if std::fs::symlink_metadata(save.join(crate::trace::TRACE_DIR)).is_ok()
                || std::fs::symlink_metadata(save.join("project")).is_ok_and(|m| !m.is_dir())
            {
                self.log.line(&format!(
                    "not writing the trace {}: {} is a symlink or not a folder, and nothing \
                     is written through symlinks in a mirror",
                    file.display(),
                    save.join(crate::trace::TRACE_DIR).display()
                ));
            }
            return;
        }
        if let Err(e) = crate::trace::write_all(&root, &info.mirrorname, info) {
            self.log
                .line(&format!("cannot write the trace {}: {e}", file.display()));
            return;
        }
        // The installed manifest is the upstream's: make it list what we
        // just wrote, or our own DTP downstreams would find hashes that lie.
        let written: Vec<PathBuf> = [
            info.mirrorname.as_str(),
            "_hierarchy",
            "_hierarchy.mirror",
            "_traces",
        ]
        .iter()
        .map(|f| PathBuf::from(crate::trace::TRACE_DIR).join(f))
        .collect();
        if save.join(crate::dtp::MANIFEST).exists()
            && let Err(e) = crate::dtp::manifest::refresh(save, &written)
        {
            self.log
                .line(&format!("cannot update {}: {e}", crate::dtp::MANIFEST));
        }
    }

    /// Run `hookN=` if set; its failure ends the sync with its exit code, as
    /// a failing hook ends ftpsync.
    fn hook(&self, n: u8) -> SyncResult {
        let Some(command) = &self.repo.hooks[usize::from(n) - 1] else {
            return Ok(());
        };
        self.log.line(&format!("Running hook {n}: {command}"));
        let words = crate::process::command_words(command);
        let code = self.run_logged(&words);
        self.log
            .line(&format!("Back from hook {n}, got returncode {code}"));
        if code == 0 {
            Ok(())
        } else {
            Err((
                code,
                format!("hook {n} ({command}) failed with exit code {code}"),
            ))
        }
    }

    /// ftpsync's engine on the block, from `upstream` when the repository
    /// layer chose it: the result and whether a failure is worth another try.
    fn run_ftpsync(&self, upstream: Option<&str>) -> (SyncResult, bool) {
        if let Some(url) = upstream {
            self.log.line(&format!("ftpsync mode from {url}"));
        }
        let logdir = self.log_path.parent().unwrap_or(&self.home.root);
        let code = match ftpsync_config(self.repo, self.global, logdir, upstream) {
            Some(config) => i32::from(crate::ftpsync::run_embedded(&config)),
            None => exit::CONFIG as i32,
        };
        let transient = code == exit::STAGE1_FAILED as i32 || code == exit::STAGE2_FAILED as i32;
        match code == exit::OK as i32 {
            true => (Ok(()), false),
            false => (Err((code, ftpsync_meaning(code))), transient),
        }
    }

    /// General mode: each upstream URL in turn until one works.
    fn run_rsync(&self, urls: &[String]) -> (SyncResult, bool) {
        if let Err(refused) = self.rsync_gate() {
            return (Err((exit::FAILURE as i32, refused)), false);
        }
        // Counted once, before any upstream may have added to the mirror.
        let local_files = match self.local_files() {
            Ok(n) => n,
            Err(failed) => return (Err(failed), false),
        };
        let mut outcome = (
            Err((exit::CONFIG as i32, "no upstream URL".to_string())),
            false,
        );
        for url in urls {
            let two_stage =
                general::looks_like_debian(&self.repo.save, url, self.global, self.address);
            let job = Job {
                src: url,
                save: &self.repo.save,
                address: self.address,
                global: self.global,
                two_stage,
                guarded: local_files > 0,
            };
            outcome = self.run_stages(&job, local_files);
            if outcome.0.is_ok() || !outcome.1 {
                break;
            }
        }
        outcome
    }

    /// The rsync version check (src/rsync/gate.rs); its note goes to the log.
    fn rsync_gate(&self) -> Result<(), String> {
        match crate::rsync::gate::check_program(
            &general::rsync_program(),
            self.global.allow_vulnerable_rsync,
            "allow-vulnerable-rsync=true in xync.conf",
        ) {
            Ok(accepted) => {
                if let Some(note) = accepted.note() {
                    self.log.line(&note);
                }
                Ok(())
            }
            Err(refused) => {
                self.log.line(&refused.to_string());
                Err(refused.to_string())
            }
        }
    }

    /// Regular files the mirror holds, for the shrink guard (0: guard off).
    fn local_files(&self) -> Result<u64, (i32, String)> {
        crate::shrink::mirror_files(&self.repo.save, self.global.min_upstream_ratio).map_err(|e| {
            (
                exit::FAILURE as i32,
                format!("cannot count the files of the mirror: {e}"),
            )
        })
    }

    fn run_stages(&self, job: &Job<'_>, local_files: u64) -> (SyncResult, bool) {
        if let Err(e) = std::fs::create_dir_all(job.save) {
            return (
                Err((
                    exit::FAILURE as i32,
                    format!("cannot create {}: {e}", job.save.display()),
                )),
                false,
            );
        }
        // ftpsync's hook points: hook1 before, hook2 between the stages,
        // hook3 after the last, hook4 at the end.
        if let Err(failed) = self.hook(1) {
            return (Err(failed), false);
        }
        let stages = general::stages(job);
        let last = stages.len() - 1;
        for (n, argv) in stages.iter().enumerate() {
            self.log
                .line(&format!("stage {}: {}", n + 1, argv.join(" ")));
            let (code, upstream_files) = self.run_counting(argv);
            self.log.line(&format!(
                "rsync exit code {code}: {}",
                crate::rsync::meaning(code)
            ));
            if crate::signals::received().is_some() {
                return (Err((code, "stopped by a signal".into())), false);
            }
            match general::classify(code, self.global.pass_error_temp) {
                Outcome::Ok => {}
                Outcome::Transient => return (Err((code, crate::rsync::meaning(code))), true),
                Outcome::Failed => return (Err((code, crate::rsync::meaning(code))), false),
            }
            if n < last
                && let Err(refused) = self.shrink_guard(upstream_files, local_files)
            {
                return (Err((exit::FAILURE as i32, refused)), false);
            }
            let hook = if n < last { 2 } else { 3 };
            if let Err(failed) = self.hook(hook) {
                return (Err(failed), false);
            }
        }
        match self.hook(4) {
            Ok(()) => (Ok(()), false),
            Err(failed) => (Err(failed), false),
        }
    }

    /// Before the deleting stage: the upstream's regular-file count, from the
    /// first stage's `--stats`, against the mirror's.
    fn shrink_guard(&self, upstream: Option<u64>, local: u64) -> Result<(), String> {
        let Some(upstream) = upstream else {
            self.log
                .line("rsync printed no file count: the shrink check was skipped");
            return Ok(());
        };
        crate::shrink::check(
            upstream,
            local,
            self.global.min_upstream_ratio,
            &self.repo.save,
            "min-upstream-ratio=0 in xync.conf",
        )
        .map_err(|shrunk| {
            self.log.line(&shrunk.to_string());
            shrunk.to_string()
        })
    }

    /// Run a hook with its output appended to the repository's log.
    fn run_logged(&self, argv: &[String]) -> i32 {
        self.run_counting(argv).0
    }

    /// Run rsync (or a hook) with stderr appended to the repository's log,
    /// and stdout too but for its progress lines, which go to
    /// `run/NAME.progress`; also the regular-file count of its `--stats`.
    fn run_counting(&self, argv: &[String]) -> (i32, Option<u64>) {
        let Some((program, args)) = argv.split_first() else {
            return (1, None);
        };
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped());
        let log = self.log.child_output();
        if let Some(err) = log.as_ref().ok().and_then(|f| f.try_clone().ok()) {
            cmd.stderr(err);
        }
        let mut child = match crate::process::spawn(&mut cmd) {
            Ok(child) => child,
            Err(e) => {
                self.log.line(&format!("cannot run {program}: {e}"));
                return (127, None);
            }
        };
        let progress_file = progress::file(&self.home.run_dir(), &self.repo.name);
        let copier = child.take_stdout().map(|stdout| {
            let log: Box<dyn std::io::Write + Send> = match log {
                Ok(file) => Box::new(file),
                Err(_) => Box::new(std::io::sink()),
            };
            std::thread::spawn(move || progress::split_output(stdout, log, &progress_file))
        });
        let status = child.wait();
        let mut count = None;
        match copier.map(|c| c.join()) {
            Some(Ok(Ok(n))) => count = n,
            Some(Ok(Err(e))) => self.log.line(&format!("cannot copy rsync's output: {e}")),
            _ => {}
        }
        match status {
            Ok(status) => (crate::process::shell_status(status), count),
            Err(e) => {
                self.log.line(&format!("lost {program}: {e}"));
                (127, None)
            }
        }
    }

    fn set_status(&self, state: State, fill: impl FnOnce(&mut JobInfo)) {
        let mut info = JobInfo::default();
        fill(&mut info);
        if let Err(e) = self.status.set(&self.repo.name, state, &info) {
            self.log.line(&format!("cannot write status: {e}"));
        }
    }

    fn finish(self, result: SyncResult) -> u8 {
        let _ = std::fs::remove_file(progress::file(&self.home.run_dir(), &self.repo.name));
        let ended = chrono::Utc::now().timestamp();
        let name = &self.repo.name;
        let (ok, code, message) = match &result {
            Ok(()) => (true, 0, format!("synced in {} s", ended - self.started)),
            Err((code, why)) => (false, *code, why.clone()),
        };
        let size = if ok { self.mirror_size() } else { None };
        self.set_status(if ok { State::Success } else { State::Failed }, |info| {
            info.last_ended = Some(ended);
            info.next_schedule = Some(super::schedule::next_run(
                self.repo.timeset.as_deref(),
                chrono::Local::now(),
            ));
            if ok {
                info.last_update = Some(ended);
                info.size = size;
            }
        });
        self.log.line(&format!(
            "sync of {name} {}: {message}",
            if ok { "done" } else { "FAILED" }
        ));
        let event = Event {
            repo: name.clone(),
            ok,
            message,
            host: crate::host::fqdn(),
            started: self.started,
            ended,
            exit_code: code,
        };
        if crate::signals::received().is_some() {
            // Stopped by -emoff (the operator's own act) or by the scheduler at
            // maxtime, which sends that alert itself: no second alert.
            self.log
                .line("stopped by a signal: no alert from the worker");
        } else {
            self.notify(&event);
        }
        if ok { exit::OK } else { exit::FAILURE }
    }

    /// Webhook on every result; mail on failures only (as ftpsync's ERRORSONLY).
    fn notify(&self, event: &Event) {
        let mailto = self.repo.mailto.as_deref();
        for failure in notify::alert(self.global, mailto, event, Some(&self.log_path)) {
            self.log.line(&failure);
        }
    }

    /// The mirror's size from the last rsync's `--stats` (`Total file size: N bytes`).
    fn mirror_size(&self) -> Option<u64> {
        let mut file = File::open(&self.log_path).ok()?;
        let len = file.metadata().ok()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))
            .ok()?;
        let mut tail = String::new();
        file.read_to_string(&mut tail).ok()?;
        tail.lines()
            .rev()
            .find_map(|l| l.strip_prefix("Total file size: "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.replace(',', "").parse().ok())
    }
}

/// The status store for this home: `status=DIR` if set, else the home.
pub fn status_store(home: &Home, global: &Global) -> StatusStore {
    let json_dir = global.status.clone().unwrap_or_else(|| home.root.clone());
    StatusStore {
        dir: global.status.clone(),
        json: json_dir.join("dsync-jobs.json"),
    }
}

fn ftpsync_meaning(code: i32) -> String {
    match u8::try_from(code) {
        Ok(exit::STAGE1_FAILED) => "ftpsync stage one failed".into(),
        Ok(exit::STAGE2_FAILED) => "ftpsync stage two failed".into(),
        Ok(exit::CONFIG) => "ftpsync configuration error".into(),
        _ => format!("ftpsync exit code {code}"),
    }
}

/// Sleep `total`, returning false early if a termination signal arrives.
fn sleep_unless_signalled(total: Duration) -> bool {
    let deadline = Instant::now() + total;
    while Instant::now() < deadline {
        if crate::signals::received().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100).min(deadline - Instant::now()));
    }
    crate::signals::received().is_none()
}
