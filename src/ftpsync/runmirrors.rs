//! `runmirrors`: Debian's runmirrors 20180513+nmu1, which pushes the
//! downstream mirrors listed in `runmirrors[-NAME].mirror` over ssh after a
//! sync (ftpsync calls it with `HUB=true`), or by hand.
//!
//! The mirror file has one mirror per line, `TYPE NAME HOST USER [SSHOPTS]`:
//! TYPE `all` (one `sync:all` push), `staged` or `mhop` (stage one everywhere,
//! then stage two once every staged mirror is done), or a line `DELAY SECS
//! [stage1]`. HOST may be `ssh+ftpsync://USER@HOST/ARCHIVE`; SSHOPTS either
//! ssh options (`-o …`) or `PROTO:KEYFILE` (e.g. `2:/home/m/.ssh/key`).
//! Each mirror is pushed in its own thread, as runmirrors backgrounds them;
//! we wait for all of them before exiting (runmirrors leaves them running).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::push::{Context, Push};
use crate::exit;
use crate::log::Log;
use crate::shellconf::{self, Vars};

/// Entry point; `program` names the config (`runmirrors`, or a symlink name).
pub fn run(program: &str, args: &[String]) -> u8 {
    let opts = match parse_args(program, args) {
        Ok(opts) => opts,
        Err(code) => return code,
    };
    let mut vars = initial_vars(&opts.name);
    let file = super::settings::config_file_name(&opts.name);
    let Some(path) = super::cron::search_config(&vars, &file) else {
        eprintln!(
            "Can't read config file {}!",
            super::settings::config_file_name(&opts.name)
        );
        return exit::CONFIG;
    };
    if let Err(e) = shellconf::eval_file(&path, &mut vars) {
        eprintln!("{}: {e}", opts.name);
        return exit::CONFIG;
    }
    match Settings::from_vars(&vars, &opts) {
        Ok(settings) => settings.run(&opts),
        Err(message) => {
            eprintln!("{}: {message}", opts.name);
            exit::FAILURE
        }
    }
}

/// What runmirrors has set before it sources its config.
pub(super) fn initial_vars(name: &str) -> Vars {
    let mut vars = Vars::from_env();
    let home = vars.get("HOME").unwrap_or("").to_string();
    vars.set("HOSTNAME", crate::host::name());
    vars.set("LOCKDIR", format!("{home}/.local/lock/ftpsync"));
    vars.set("LOGDIR", format!("{home}/.local/log/ftpsync"));
    vars.set("NAME", name);
    vars
}

pub(super) struct Options {
    pub(super) name: String,
    conf: String,
    pushkind: String,
    from_ftpsync: bool,
}

const HELP: &str = "\
Usage:

1.) a single parameter with NO leading -.
\t  This will will then be used as the addition for our configfile. Ie. `runmirrors security` will
\t  have us look for runmirrors-security.{conf,mirror} files.

2.) using getopt style parameters:
\t -a [NAME]   - Same as 1.) above, used for the config files. Default empty.
\t -k [TYPE]   - Type of push. all, stage2, mhop. Default mhop.
\t -f          - Run from within the mirrorscript ftpsync. Don't use from commandline!
\t -h          - Print this help and exit";

/// runmirrors' two forms: `runmirrors NAME`, or getopts `-a NAME -k KIND -f -h`.
pub(super) fn parse_args(program: &str, args: &[String]) -> Result<Options, u8> {
    let mut opts = Options {
        name: program.to_string(),
        conf: String::new(),
        pushkind: "mhop".into(),
        from_ftpsync: false,
    };
    match args.first() {
        Some(first) if !first.starts_with('-') => opts.conf = first.clone(),
        Some(_) => {
            let mut words = args.iter();
            while let Some(word) = words.next() {
                match word.as_str() {
                    "-a" => opts.conf = words.next().cloned().unwrap_or_default(),
                    "-k" => opts.pushkind = words.next().cloned().unwrap_or_default(),
                    "-f" => opts.from_ftpsync = true,
                    "-h" => {
                        println!("{program}\n{HELP}");
                        return Err(exit::OK);
                    }
                    w if !w.starts_with('-') => break,
                    _ => {
                        println!("Invalid usage\n{program}\n{HELP}");
                        return Err(exit::FAILURE);
                    }
                }
            }
        }
        None => {}
    }
    if !opts.conf.is_empty() {
        opts.name = format!("{}-{}", opts.name, opts.conf);
    }
    Ok(opts)
}

/// runmirrors.conf with runmirrors' defaults.
pub(super) struct Settings {
    mailto: String,
    smtp: Option<String>,
    pub(super) keyfile: String,
    pub(super) keyfile_abs: PathBuf,
    log: PathBuf,
    logrotate: u32,
    logdir: PathBuf,
    lockdir: PathBuf,
    pub(super) mirrors: Option<PathBuf>,
    ssh_opts: String,
    pusharchive: String,
    pushdelay: Duration,
    pub(super) hooks: [String; 3],
    program: String,
}

impl Settings {
    pub(super) fn from_vars(vars: &Vars, opts: &Options) -> Result<Settings, String> {
        let get = |n: &str| vars.get(n).filter(|v| !v.is_empty()).map(str::to_string);
        let mailto = get("MAILTO").or_else(|| get("LOGNAME")).ok_or(
            "LOGNAME: Environment variable LOGNAME unset, please check your system or specify MAILTO",
        )?;
        let home = vars.get("HOME").unwrap_or("").to_string();
        let logdir = PathBuf::from(get("LOGDIR").unwrap_or_default());
        let keyfile = get("KEYFILE").unwrap_or_else(|| ".ssh/pushmirror".into());
        // `cd && readlink -f "$KEYFILE"`: relative to HOME.
        let keyfile_abs = std::fs::canonicalize(Path::new(&home).join(&keyfile))
            .unwrap_or_else(|_| Path::new(&home).join(&keyfile));
        let number = |n: &str, default: u64| -> Result<u64, String> {
            get(n).map_or(Ok(default), |v| {
                v.parse().map_err(|_| format!("{n}={v} is not a number"))
            })
        };
        let mirrors_file = format!("{}.mirror", opts.name);
        Ok(Settings {
            mailto,
            smtp: get("SMTP_SERVER"),
            keyfile,
            keyfile_abs,
            log: get("LOG")
                .map_or_else(|| logdir.join(format!("{}.log", opts.name)), PathBuf::from),
            logrotate: number("LOGROTATE", 14)? as u32,
            lockdir: PathBuf::from(get("LOCKDIR").unwrap_or_default()),
            logdir,
            mirrors: get("MIRRORS")
                .map(PathBuf::from)
                .or_else(|| super::cron::search_config(vars, &mirrors_file)),
            ssh_opts: get("SSH_OPTS").unwrap_or_else(|| "-o StrictHostKeyChecking=no".into()),
            pusharchive: get("PUSHARCHIVE").unwrap_or_else(|| opts.conf.clone()),
            pushdelay: Duration::from_secs(number("PUSHDELAY", 600)?),
            hooks: [1, 2, 3].map(|n| get(&format!("HOOK{n}")).unwrap_or_default()),
            program: get("PROGRAM").unwrap_or_else(|| opts.name.clone()),
        })
    }

    fn run(&self, opts: &Options) -> u8 {
        for dir in [&self.logdir, &self.lockdir] {
            if let Err(e) = std::fs::create_dir_all(dir) {
                eprintln!("{}: cannot create {}: {e}", self.program, dir.display());
                return exit::FAILURE;
            }
        }
        let _ = crate::log::savelog(&self.log, self.logrotate);
        let log = match Log::open(&self.log, &self.program) {
            Ok(log) => log,
            Err(e) => {
                eprintln!("{}: cannot open {}: {e}", self.program, self.log.display());
                return exit::FAILURE;
            }
        };
        if !self.keyfile_abs.is_file() {
            self.error(&log, &format!("SSH Key {} does not exist", self.keyfile));
            return 5;
        }
        log.line(&format!(
            "Pushing leaf mirrors. Inside ftpsync: {}. Pushkind: {}",
            opts.from_ftpsync, opts.pushkind
        ));
        let code = self.push_all(&log, opts);
        log.line("Mirrorpush done");
        code
    }

    fn push_all(&self, log: &Log, opts: &Options) -> u8 {
        if let Err(code) = self.hook(log, 1) {
            return code;
        }
        let lines = self.mirror_lines();
        let pushlocks: Vec<PathBuf> = lines
            .iter()
            .filter(|l| {
                l.first()
                    .is_some_and(|t| t.starts_with("staged") || t.starts_with("mhop"))
            })
            .filter_map(|l| l.get(1))
            .map(|name| self.lockdir.join(format!("{name}.stage1")))
            .collect();
        let _ = std::fs::remove_file(self.lockdir.join("all_stage1"));
        let mail = |subject: &str, body: &str| self.mail(subject, body);
        let ctx = Context {
            log,
            logdir: self.logdir.clone(),
            lockdir: self.lockdir.clone(),
            ssh_opts: self.ssh_opts.clone(),
            pushkind: opts.pushkind.clone(),
            from_ftpsync: opts.from_ftpsync,
            pushdelay: self.pushdelay,
            pushlocks,
            error_mail: &mail,
        };
        std::thread::scope(|scope| {
            for fields in &lines {
                match self.resolve(log, fields, opts) {
                    Step::Delay(secs, stage1) => delay(&ctx, secs, stage1),
                    Step::Skip => {}
                    Step::Push(push) => {
                        let name = push.name.clone();
                        log.line(&format!("Trigger {name}"));
                        let ctx = &ctx;
                        scope.spawn(move || push.run(ctx));
                        log.line(&format!("Trigger for {name} done"));
                        self.hook(log, 2)?;
                    }
                }
            }
            Ok(())
        })
        .err()
        .unwrap_or_else(|| self.finish(log, opts))
    }

    fn finish(&self, log: &Log, opts: &Options) -> u8 {
        if opts.from_ftpsync && opts.pushkind == "mhop" {
            let all = self.lockdir.join("all_stage1");
            if !all.is_file() {
                self.error(
                    log,
                    "Failed to wait for our mirrors when sending mhop push down.",
                );
            }
        }
        match self.hook(log, 3) {
            Ok(()) => exit::OK,
            Err(code) => code,
        }
    }

    /// The mirror file's lines, split as bash's `read A B C D REST` does.
    pub(super) fn mirror_lines(&self) -> Vec<Vec<String>> {
        let text = self
            .mirrors
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(split_read)
            .collect()
    }

    fn resolve(&self, log: &Log, f: &[String], opts: &Options) -> Step {
        let field = |i: usize| f.get(i).cloned().unwrap_or_default();
        let (kind, name, mut host, mut user, sshopt) =
            (field(0), field(1), field(2), field(3), field(4));
        if kind == "DELAY" {
            return Step::Delay(name.parse().unwrap_or(600), host == "stage1");
        }
        if opts.pushkind == "mhop" && opts.from_ftpsync && kind != "staged" && kind != "mhop" {
            return Step::Skip;
        }
        let (mut proto, mut key, mut ssh_opts) =
            (2, self.keyfile_abs.display().to_string(), String::new());
        let mut archive = self.pusharchive.clone();
        if let Some(url) = parse_url(&host) {
            if url.scheme != "ssh+ftpsync" {
                log.line(&format!(
                    "Trigger {name}: {} have wrong scheme, ignoring",
                    url.host
                ));
                return Step::Skip;
            }
            (user, host) = (url.user, url.host);
            if !url.path.is_empty() {
                archive = url.path.trim_start_matches('/').to_string();
            }
        } else if !sshopt.is_empty() {
            if sshopt.starts_with('-') {
                (ssh_opts, proto) = (sshopt.clone(), 99);
            } else if sshopt.starts_with('1') || sshopt.starts_with('2') {
                proto = if sshopt.starts_with('1') { 1 } else { 2 };
                key = sshopt.get(2..).unwrap_or("").to_string();
            } else {
                self.error(
                    log,
                    &format!("I don't know what is configured for mirror {name}"),
                );
                return Step::Skip;
            }
        }
        Step::Push(Push {
            kind,
            name,
            host,
            user,
            proto,
            key,
            ssh_opts,
            archive,
        })
    }

    /// `HOOKn`; a failing hook ends the run with its status, as in runmirrors.
    fn hook(&self, log: &Log, n: usize) -> Result<(), u8> {
        let script = &self.hooks[n - 1];
        if script.is_empty() {
            return Ok(());
        }
        log.line(&format!("Running hook {n}: {script}"));
        let words = crate::process::command_words(script);
        // In a process group of its own, stopped with us on a signal.
        let code = match words.split_first() {
            Some((program, args)) => {
                crate::process::run(std::process::Command::new(program).args(args))
                    .map_or(127, crate::process::shell_status)
            }
            None => 0,
        };
        let message = format!("Back from hook {n}, got returncode {code}");
        if code == 0 {
            log.line(&message);
            Ok(())
        } else {
            self.error(log, &message);
            Err((code & 0xff) as u8)
        }
    }

    /// Log, then mail MAILTO, as runmirrors' `error` does.
    fn error(&self, log: &Log, message: &str) {
        log.line(message);
        self.mail(message, message);
    }

    fn mail(&self, subject: &str, body: &str) {
        let subject = format!(
            "[{}@{}] ERROR: {subject}",
            self.program,
            crate::host::short()
        );
        let mailer = crate::mail::Mailer::new(&self.mailto, self.smtp.clone());
        let _ = mailer.send(&subject, &[body.to_string()], &[]);
    }
}

enum Step {
    Delay(u64, bool),
    Skip,
    Push(Push),
}

/// `DELAY SECS [stage1]`: sleep, or wait for the staged mirrors' stage one.
fn delay(ctx: &Context<'_>, secs: u64, stage1: bool) {
    let limit = Duration::from_secs(secs);
    if stage1 {
        ctx.log.line(&format!(
            "Delay of {secs} or until staging is finished requested"
        ));
        let deadline = std::time::Instant::now() + limit;
        while !ctx.pushlocks.iter().all(|f| f.is_file()) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        ctx.log.line("Staged delay finished");
    } else {
        ctx.log
            .line(&format!("Delay of {secs} requested, sleeping"));
        std::thread::sleep(limit);
    }
}

/// bash `read A B C D REST`: four whitespace-separated words, then the rest.
fn split_read(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut rest = line.trim();
    while fields.len() < 4 && !rest.is_empty() {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        fields.push(rest[..end].to_string());
        rest = rest[end..].trim_start();
    }
    if !rest.is_empty() {
        fields.push(rest.trim_end().to_string());
    }
    fields
}

struct Url {
    scheme: String,
    user: String,
    host: String,
    path: String,
}

/// runmirrors' `^([a-z.+]+)://(([^@/]+)@)?([^/]+)(/.*)?$`.
fn parse_url(text: &str) -> Option<Url> {
    let re = regex::Regex::new(r"^([a-z.+]+)://(([^@/]+)@)?([^/]+)(/.*)?$").ok()?;
    let c = re.captures(text)?;
    let part = |i| c.get(i).map_or(String::new(), |m| m.as_str().to_string());
    Some(Url {
        scheme: part(1),
        user: part(3),
        host: part(4),
        path: part(5),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_splits_four_words_and_the_rest() {
        assert_eq!(
            split_read("all  m1 host  user"),
            ["all", "m1", "host", "user"]
        );
        assert_eq!(
            split_read("staged m2 h u -o Port=2222 -o X=y "),
            ["staged", "m2", "h", "u", "-o Port=2222 -o X=y"]
        );
        assert_eq!(split_read("DELAY 5"), ["DELAY", "5"]);
    }

    #[test]
    fn urls() {
        let u = parse_url("ssh+ftpsync://mirror@host.example/debian-security").unwrap();
        assert_eq!(
            (
                u.scheme.as_str(),
                u.user.as_str(),
                u.host.as_str(),
                u.path.as_str()
            ),
            ("ssh+ftpsync", "mirror", "host.example", "/debian-security")
        );
        assert!(parse_url("host.example").is_none());
    }
}
