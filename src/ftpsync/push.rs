//! Triggering one downstream mirror over ssh, as runmirrors' `signal` does:
//! `all` is one `sync:all` push; `staged` and `mhop` push `sync:stage1`,
//! wait until every staged sibling has finished its stage one (their
//! `LOCKDIR/NAME.stage1` files), then push `sync:stage2`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::log::Log;

/// How often the stage-one lock files are looked at (runmirrors: 5 s).
const POLL: Duration = Duration::from_millis(200);

/// One line of `runmirrors.mirror`, resolved.
#[derive(Debug, Clone)]
pub struct Push {
    /// `all`, `staged` or `mhop`.
    pub kind: String,
    pub name: String,
    pub host: String,
    pub user: String,
    /// 1 or 2 (ssh's protocol flag), or 99: none.
    pub proto: u8,
    pub key: String,
    /// Extra ssh options of this mirror (the `-o …` form of the mirror file).
    pub ssh_opts: String,
    pub archive: String,
}

/// What every push of one runmirrors run shares.
pub struct Context<'a> {
    pub log: &'a Log,
    pub logdir: PathBuf,
    pub lockdir: PathBuf,
    /// `SSH_OPTS` of runmirrors.conf.
    pub ssh_opts: String,
    /// `-k`: all, stage2 or mhop.
    pub pushkind: String,
    pub from_ftpsync: bool,
    pub pushdelay: Duration,
    /// The `.stage1` files of every staged or mhop mirror.
    pub pushlocks: Vec<PathBuf>,
    /// Called with (subject, body) when a trigger fails.
    pub error_mail: &'a (dyn Fn(&str, &str) + Sync),
}

impl Push {
    /// ssh's options for this mirror, in runmirrors' order.
    fn ssh_options(&self, ctx: &Context<'_>) -> Vec<String> {
        let mut words = format!(
            "-o user={} -o BatchMode=yes -o ServerAliveInterval=45 -o ConnectTimeout=45 \
             -o PasswordAuthentication=no",
            self.user
        );
        for (cond, extra) in [
            (!ctx.ssh_opts.is_empty(), ctx.ssh_opts.clone()),
            (!self.key.is_empty(), format!("-i {}", self.key)),
            (!self.ssh_opts.is_empty(), self.ssh_opts.clone()),
            (self.proto != 99, format!("-{}", self.proto)),
        ] {
            if cond {
                words.push(' ');
                words.push_str(&extra);
            }
        }
        words.split_whitespace().map(str::to_string).collect()
    }

    /// The words after `sync:archive:ARCHIVE` that every push of this mirror carries.
    fn push_args(&self, ctx: &Context<'_>) -> String {
        let mut args = format!(" sync:archive:{}", self.archive);
        if ctx.pushkind == "mhop" && self.kind == "mhop" {
            args.push_str(" sync:mhop");
        }
        args
    }

    /// Trigger this mirror; pushes of other kinds do nothing, as in runmirrors.
    pub fn run(&self, ctx: &Context<'_>) {
        let mirror_log = ctx.logdir.join(format!("{}.log", self.name));
        append(&mirror_log, &format!("{}\n", crate::trace::date_u()));
        let args = self.push_args(ctx);
        match self.kind.as_str() {
            "all" => self.ssh(ctx, "normal", &format!("{args} sync:all")),
            "staged" | "mhop" => {
                if ctx.pushkind != "stage2" {
                    self.ssh(ctx, "first stage", &format!("{args} sync:stage1"));
                    let own = ctx.lockdir.join(format!("{}.stage1", self.name));
                    append(&own, "");
                    if !wait_for_pushlocks(ctx) {
                        self.report_missing(ctx, &mirror_log);
                    }
                    let _ = std::fs::remove_file(&own);
                }
                if !(ctx.from_ftpsync && ctx.pushkind == "mhop") {
                    self.ssh(ctx, "second stage", &format!("{args} sync:stage2"));
                }
            }
            _ => {}
        }
    }

    fn report_missing(&self, ctx: &Context<'_>, mirror_log: &Path) {
        mirror_line(
            ctx,
            mirror_log,
            "Failed to wait for all other mirrors. Failed ones are:",
        );
        for file in ctx.pushlocks.iter().filter(|f| !f.is_file()) {
            mirror_line(ctx, mirror_log, &file.display().to_string());
            ctx.log.line(&format!(
                "Missing Pushlockfile {} after waiting for more than {} seconds, continuing",
                file.display(),
                ctx.pushdelay.as_secs()
            ));
        }
    }

    /// `ssh -n HOST OPTIONS… "ARGS"`, its output appended to the mirror's log.
    /// Unlike runmirrors (whose pipeline through tee hides ssh's status), a
    /// failed trigger is reported and mailed.
    fn ssh(&self, ctx: &Context<'_>, what: &str, command: &str) {
        let mirror_log = ctx.logdir.join(format!("{}.log", self.name));
        mirror_line(ctx, &mirror_log, &format!("Sending {what} trigger"));
        let mut cmd = Command::new("ssh");
        cmd.arg("-n")
            .arg(&self.host)
            .args(self.ssh_options(ctx))
            .arg(command)
            .stdin(Stdio::null());
        let (code, output) = match cmd.output() {
            Ok(out) => {
                let mut text = out.stdout;
                text.extend_from_slice(&out.stderr);
                (crate::process::shell_status(out.status), text)
            }
            Err(e) => (255, format!("cannot run ssh: {e}\n").into_bytes()),
        };
        append_bytes(&mirror_log, &output);
        if code == 255 {
            let message = format!("{what} trigger failed: {}", self.host);
            ctx.log.line(&message);
            (ctx.error_mail)(&message, &String::from_utf8_lossy(&output));
        } else {
            ctx.log
                .line(&format!("{what} trigger succeeded: {}", self.host));
        }
    }
}

/// Until every staged mirror has done its stage one (or `all_stage1` says a
/// sibling gave up), at most `pushdelay`; then `all_stage1` ends every other
/// wait too. False on timeout.
fn wait_for_pushlocks(ctx: &Context<'_>) -> bool {
    let all_stage1 = ctx.lockdir.join("all_stage1");
    let deadline = Instant::now() + ctx.pushdelay;
    let done = loop {
        if ctx.pushlocks.iter().all(|f| f.is_file()) || all_stage1.is_file() {
            break true;
        }
        if Instant::now() >= deadline || crate::signals::received().is_some() {
            break false;
        }
        std::thread::sleep(POLL);
    };
    append(&all_stage1, "");
    done
}

/// A line in runmirrors' `msg` format in the log of one pushed mirror.
fn mirror_line(ctx: &Context<'_>, mirror_log: &Path, message: &str) {
    if let Ok(log) = ctx.log.sibling(mirror_log) {
        log.line(message);
    }
}

fn append(path: &Path, text: &str) {
    append_bytes(path, text.as_bytes());
}

/// Mirror logs and lock files: a failure to write one must not stop a push.
fn append_bytes(path: &Path, bytes: &[u8]) {
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = file.write_all(bytes);
    }
}
