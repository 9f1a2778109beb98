//! `ftpsync-cron [ARCHIVE]`: Debian's ftpsync-cron 20180513+nmu1, for leaf
//! mirrors without push. Run often from cron, it syncs only when the upstream's
//! trace (fetched over HTTP) carries another `Archive serial` than ours, or when
//! we have no trace; while our own sync runs it does nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exit;
use crate::shellconf::{self, Vars};

/// How long the trace fetch may take (curl has no limit; a hung upstream must
/// not pile up cron jobs).
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// Entry point; `args` are the words after the program name.
pub fn run(args: &[String]) -> u8 {
    let archive = args.first().cloned().unwrap_or_default();
    let mut vars = initial_vars(&archive);
    let config = match archive.as_str() {
        "" => "ftpsync.conf".to_string(),
        a => format!("ftpsync-{a}.conf"),
    };
    let file = super::settings::config_file_name(config.trim_end_matches(".conf"));
    let Some(path) = search_config(&vars, &file) else {
        // ftpsync-cron names the sanitised file name.
        eprintln!(
            "Can't read config file {}!",
            super::settings::config_file_name(config.trim_end_matches(".conf"))
        );
        return exit::CONFIG;
    };
    if let Err(e) = shellconf::eval_file(&path, &mut vars) {
        eprintln!("ftpsync-cron: {e}");
        return exit::CONFIG;
    }
    match Plan::from_vars(&vars) {
        Ok(plan) => plan.run(&archive),
        Err(missing) => {
            eprintln!("ftpsync-cron: {missing}");
            exit::FAILURE
        }
    }
}

/// What ftpsync-cron has set before it reads the config.
fn initial_vars(archive: &str) -> Vars {
    let mut vars = Vars::from_env();
    let home = vars.get("HOME").unwrap_or("").to_string();
    vars.set("HOSTNAME", crate::host::name());
    vars.set("VERSION", "20180513+nmu1");
    vars.set("LOCKDIR", format!("{home}/.local/lock/ftpsync"));
    vars.set("LOGDIR", format!("{home}/.local/log/ftpsync"));
    vars.set("ARCHIVE", archive);
    vars.set("NAME", "ftpsync-cron");
    vars.set("PROGRAM", "ftpsync-cron");
    vars
}

/// ftpsync-cron and runmirrors search only these two folders (not `$BASEDIR/etc`).
/// `file` is searched as given (callers sanitise config names with
/// [`super::settings::config_file_name`], as `read_config` does).
pub(super) fn search_config(vars: &Vars, file: &str) -> Option<PathBuf> {
    let home = vars.get("HOME").unwrap_or("");
    [
        Path::new(home).join(".config/ftpsync"),
        super::settings::etc_dir(),
    ]
    .into_iter()
    .map(|dir| dir.join(file))
    .find(|p| p.is_file())
}

/// The settings ftpsync-cron uses, with its defaults.
struct Plan {
    /// `BINDIR` from the config: ftpsync-cron runs `$BINDIR/ftpsync`; unset, we
    /// are that ftpsync and run it in this process.
    bindir: Option<String>,
    mailto: String,
    smtp: Option<String>,
    lock: PathBuf,
    trace_uri: String,
    local_trace: PathBuf,
}

impl Plan {
    /// Fails as bash's `set -u` and `${VAR:?}` do, naming the variable.
    fn from_vars(vars: &Vars) -> Result<Plan, String> {
        let non_empty = |name: &str| vars.get(name).filter(|v| !v.is_empty());
        let mailto = match (non_empty("MAILTO"), non_empty("LOGNAME")) {
            (Some(m), _) | (None, Some(m)) => m.to_string(),
            (None, None) => {
                return Err(
                    "LOGNAME: Environment variable LOGNAME unset, please check your \
                            system or specify MAILTO"
                        .into(),
                );
            }
        };
        let fqdn = crate::host::fqdn();
        let mirrorname = non_empty("MIRRORNAME").unwrap_or(&fqdn).to_string();
        let set = |name: &str| {
            vars.get(name)
                .map(str::to_string)
                .ok_or_else(|| format!("{name}: unbound variable"))
        };
        let to = set("TO")?;
        let lock = match non_empty("LOCK") {
            Some(lock) => PathBuf::from(lock),
            None => PathBuf::from(format!("{to}/Archive-Update-in-Progress-{mirrorname}")),
        };
        let rsync_path = non_empty("RSYNC_PATH").unwrap_or("debian").to_string();
        let host = set("RSYNC_HOST")?;
        Ok(Plan {
            bindir: non_empty("BINDIR").map(str::to_string),
            mailto,
            smtp: non_empty("SMTP_SERVER").map(str::to_string),
            lock,
            trace_uri: format!("http://{host}/{rsync_path}/project/trace/{host}"),
            local_trace: PathBuf::from(format!("{to}/project/trace/{mirrorname}")),
        })
    }

    fn run(&self, archive: &str) -> u8 {
        if lock_is_live(&self.lock) {
            return exit::OK;
        }
        let trace = match fetch(&self.trace_uri) {
            Ok(trace) => trace,
            Err((code, why)) => {
                self.error(&format!("Failed to retrieve {}: {why}", self.trace_uri));
                return code;
            }
        };
        let Some(remote) = serial(&trace) else {
            self.error(&format!(
                "Failed to parse archive serial from {}",
                self.trace_uri
            ));
            return exit::FAILURE;
        };
        let local = std::fs::read_to_string(&self.local_trace)
            .ok()
            .and_then(|t| serial(&t));
        if local.as_deref() == Some(remote.as_str()) {
            return exit::OK;
        }
        let args = [
            "-T".to_string(),
            "cron".to_string(),
            format!("sync:archive:{archive}"),
        ];
        match &self.bindir {
            Some(bindir) => exec_ftpsync(bindir, &args),
            None => super::run("ftpsync", &args),
        }
    }

    /// Log to standard output (cron mails it) and mail MAILTO, as ftpsync-cron's
    /// `error` does.
    fn error(&self, message: &str) {
        print!("{}", crate::log::stamped("ftpsync-cron", message));
        let subject = format!("[ftpsync-cron@{}] ERROR: {message}", crate::host::short());
        let mailer = crate::mail::Mailer::new(&self.mailto, self.smtp.clone());
        if let Err(e) = mailer.send(&subject, &[message.to_string()], &[]) {
            eprintln!("ftpsync-cron: cannot send mail: {e}");
        }
    }
}

/// `exec $BINDIR/ftpsync ARGS`, as ftpsync-cron does.
fn exec_ftpsync(bindir: &str, args: &[String]) -> u8 {
    use std::os::unix::process::CommandExt;
    let program = format!("{bindir}/ftpsync");
    let error = std::process::Command::new(&program).args(args).exec();
    eprintln!("ftpsync-cron: {program}: {error}");
    127
}

/// Our own sync runs when the lock file names a live process.
fn lock_is_live(lock: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(lock) else {
        return false;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// GET with redirects; errors carry the exit code curl would have given
/// (22 HTTP error, 6 unresolved host, 7 no connection, 28 timeout).
fn fetch(uri: &str) -> Result<String, (u8, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .build()
        .into();
    match agent.get(uri).call() {
        Ok(mut response) => response
            .body_mut()
            .read_to_string()
            .map_err(|e| (56, format!("failure receiving data: {e}"))),
        Err(ureq::Error::StatusCode(code)) => {
            Err((22, format!("The requested URL returned error: {code}")))
        }
        Err(e @ ureq::Error::HostNotFound) => Err((6, e.to_string())),
        Err(e @ ureq::Error::Timeout(_)) => Err((28, e.to_string())),
        Err(e) => Err((7, e.to_string())),
    }
}

/// The `Archive serial` field, as ftpsync-cron's awk finds it: the first line
/// whose text before `": "` is exactly the field name.
fn serial(trace: &str) -> Option<String> {
    trace
        .lines()
        .filter_map(|l| l.split_once(": "))
        .find(|(key, _)| *key == "Archive serial")
        .map(|(_, value)| {
            value
                .split(": ")
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_as_awk_finds_it() {
        let trace = "Mon Nov 23 10:00:00 UTC 2026\nDate: x\nArchive serial: 2026112301\nArchive serial: 9\n";
        assert_eq!(serial(trace).as_deref(), Some("2026112301"));
        assert_eq!(serial("Archive serial:2026\n"), None);
        assert_eq!(serial("Archive serial: \n"), None);
        assert_eq!(serial(" Archive serial: 1\n"), None);
        assert_eq!(serial("Archive serial:  1  2 \n").as_deref(), Some("1 2"));
    }
}
