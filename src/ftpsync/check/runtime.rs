//! What ftpsync finds out only when it runs: the mirror folder, the lock, the
//! hooks, rsync itself, the log folder and the mail.

use std::path::{Path, PathBuf};

use super::{Checks, Report, Source};
use crate::access::{executable, writable};
use crate::diag::Diagnostic;
use crate::ftpsync::settings::Settings;

pub fn check_all(s: &Settings, source: &Source<'_>, checks: Checks, report: &mut Report) {
    if !checks.embedded {
        mirror_folder(s, source, report);
    }
    lock(s, report);
    hooks(s, source, report);
    helpers(s, source, report);
    rsync(s, source, checks, report);
    log_folder(s, source, report);
    mail(s, source, report);
}

/// `TO` must be a folder this user can write; ftpsync creates it (`mkdir -p`)
/// when it is missing and its parent allows.
fn mirror_folder(s: &Settings, source: &Source<'_>, report: &mut Report) {
    let to = Path::new(&s.to);
    let line = source.line("TO");
    let me = super::me();
    let problem = match std::fs::metadata(to) {
        Ok(m) if !m.is_dir() => Some(format!("TO={} is not a folder", s.to)),
        Ok(_) if !writable(to) => Some(format!(
            "TO={} is not writable by {me} (a read-only mount, an immutable folder or its permissions)",
            s.to
        )),
        Ok(_) => {
            report.row("TO check", format!("exists, writable by {me}"));
            None
        }
        Err(_) => match creatable(to) {
            Some(parent) => {
                report.row(
                    "TO check",
                    format!("missing; the first run creates it in {}", parent.display()),
                );
                None
            }
            None => Some(format!(
                "TO={} does not exist and cannot be created by {me}",
                s.to
            )),
        },
    };
    if let Some(message) = problem {
        report.diags.push(Diagnostic::error(
            source.path,
            line,
            message,
            format!(
                "as root: mkdir -p {0} && chown {me} {0}  (or point TO at the mirror)",
                s.to
            ),
        ));
    }
}

/// The nearest existing folder above `path`, if this user may create in it.
fn creatable(path: &Path) -> Option<PathBuf> {
    let parent = path.ancestors().skip(1).find(|p| p.exists())?;
    (parent.is_dir() && writable(parent)).then(|| parent.to_path_buf())
}

/// A sync already running (its PID alive, or dsync's kernel lock held) makes
/// a run give up at once.
fn lock(s: &Settings, report: &mut Report) {
    let to = Path::new(&s.to);
    let lock_path = PathBuf::from(format!(
        "{}/Archive-Update-in-Progress-{}",
        s.to, s.mirrorname
    ));
    match crate::lock::holder(to, &lock_path) {
        None => report.row("lock", format!("free ({})", lock_path.display())),
        Some(pid) => report.diags.push(Diagnostic::warning(
            &lock_path,
            0,
            format!(
                "the lock is held by PID {pid} ({}): a run now would stop at once",
                process_name(&pid)
            ),
            "let that sync finish (or stop it) before running dsync on this mirror",
        )),
    }
}

/// `/proc/PID/cmdline`, spaces between the words.
fn process_name(pid: &str) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|b| {
            let words: Vec<String> = b
                .split(|c| *c == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            words.join(" ")
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "unknown process".into())
}

/// Each hook's program must exist and be executable: a failing hook stops
/// the sync at its point.
fn hooks(s: &Settings, source: &Source<'_>, report: &mut Report) {
    let path_var = s
        .child_env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or("/usr/local/bin:/usr/bin:/bin", |(_, v)| v.as_str());
    for (i, hook) in s.hooks.iter().enumerate() {
        hook_runs(
            &format!("HOOK{}", i + 1),
            hook,
            path_var,
            &s.basedir,
            source,
            report,
        );
    }
}

/// One hook, `var` set to `hook`: say what runs, or why it cannot.
pub fn hook_runs(
    var: &str,
    hook: &str,
    path_var: &str,
    basedir: &str,
    source: &Source<'_>,
    report: &mut Report,
) {
    let words = crate::process::command_words(hook);
    let Some(program) = words.first() else { return };
    // The engine runs hooks from BASEDIR when it is set.
    let found = super::which(program, path_var).map(|p| match basedir {
        "" => p,
        base => Path::new(base).join(p),
    });
    match found.filter(|p| executable(p)) {
        Some(path) => report.row(var, format!("{hook}  ({} is executable)", path.display())),
        None => report.diags.push(Diagnostic::error(
            source.path,
            source.line(var),
            format!("{var}={hook}: {program} does not exist or is not executable; the run would stop there"),
            format!("install the hook, or: chmod +x {program}  (or delete the {var} line)"),
        )),
    }
}

/// The programs a run starts besides rsync: the transport's (`ssh`,
/// `rsync-ssl-tunnel`) and, with `HUB=true`, `runmirrors` and its config.
fn helpers(s: &Settings, source: &Source<'_>, report: &mut Report) {
    let path_var = std::env::var("PATH").unwrap_or_default();
    let mut programs: Vec<(&str, String)> = Vec::new();
    if let Some(program) = crate::ftpsync::argv::transport(s).get(1) {
        programs.push(("RSYNC_TRANSPORT", program.clone()));
    }
    if s.hub {
        let runmirrors = match s.bindir.as_str() {
            "" => "runmirrors".to_string(),
            dir => format!("{dir}/runmirrors"),
        };
        programs.push(("HUB", runmirrors));
        hub_config(s, source, report);
    }
    for (var, program) in programs {
        if super::which(&program, &path_var).is_some_and(|p| executable(&p)) {
            continue;
        }
        report.diags.push(Diagnostic::error(
            source.path,
            source.line(var),
            format!("{var} needs {program}, which is not an executable on PATH"),
            "install it, or run compat/install-links (dsync is rsync-ssl-tunnel and runmirrors too)",
        ));
    }
}

/// `HUB=true` hands over to `runmirrors [-a ARCHIVE]`, which stops (exit 78)
/// without its config.
fn hub_config(s: &Settings, source: &Source<'_>, report: &mut Report) {
    let name = match s.name.strip_prefix("ftpsync-") {
        Some(archive) => format!("runmirrors-{archive}"),
        None => "runmirrors".to_string(),
    };
    let file = crate::ftpsync::settings::config_file_name(&name);
    let vars = crate::shellconf::Vars::from_env();
    if crate::ftpsync::cron::search_config(&vars, &file).is_none() {
        report.diags.push(Diagnostic::error(
            source.path,
            source.line("HUB"),
            format!("HUB=true, but there is no {file} (in ~/.config/ftpsync or /etc/ftpsync): runmirrors would stop with exit 78"),
            format!("write ~/.config/ftpsync/{file} and its .mirror list, or set HUB=false"),
        ));
    }
}

/// The CVE gate (src/rsync/gate.rs) has passed when the settings resolved;
/// say which rsync and why it may run.
fn rsync(s: &Settings, source: &Source<'_>, checks: Checks, report: &mut Report) {
    let program = crate::ftpsync::argv::rsync_command(s)
        .into_iter()
        .next()
        .unwrap_or_else(|| "rsync".into());
    // Refusals are settings errors already; here only the verdict is shown.
    let verdict = crate::rsync::gate::check_program(&program, true, "");
    use crate::rsync::gate::Accepted;
    match verdict {
        Ok(Accepted::Fixed(release)) => report.row(
            "rsync",
            format!("rsync {release} ({program}), passes the CVE gate"),
        ),
        Ok(Accepted::Backported { release, package }) => report.row(
            "rsync",
            format!("rsync {release} ({program}), passes the CVE gate: {package} has the fixes"),
        ),
        // xync.conf's override is reported by the dsync layer's own check.
        Ok(Accepted::Overridden(what)) if checks.embedded => report.row(
            "rsync",
            format!("{what}: may be vulnerable, allowed by xync.conf"),
        ),
        Ok(accepted @ Accepted::Overridden(_)) => report.diags.push(Diagnostic::warning(
            source.path,
            source.line("ALLOW_VULNERABLE_RSYNC"),
            accepted.note().unwrap_or_default(),
            format!(
                "install rsync {} or newer, then delete ALLOW_VULNERABLE_RSYNC",
                crate::rsync::gate::FIXED
            ),
        )),
        Err(_) => {}
    }
}

/// ftpsync creates `LOGDIR` and writes its logs there before anything else.
fn log_folder(s: &Settings, source: &Source<'_>, report: &mut Report) {
    let dir = &s.logdir;
    let fine = match dir.is_dir() {
        true => writable(dir),
        false => creatable(dir).is_some(),
    };
    if fine {
        return;
    }
    report.diags.push(Diagnostic::error(
        source.path,
        source.line("LOGDIR"),
        format!(
            "LOGDIR={} is not writable by {} (nor can it be created)",
            dir.display(),
            super::me()
        ),
        format!(
            "as root: mkdir -p {0} && chown {1} {0}  (or set LOGDIR to a folder you own)",
            dir.display(),
            super::me()
        ),
    ));
}

/// Reports go to `MAILTO` through `SMTP_SERVER` or the local sendmail.
fn mail(s: &Settings, source: &Source<'_>, report: &mut Report) {
    if let Some(server) = &s.smtp_server {
        report.row("mail", format!("to {} through SMTP {server}", s.mailto));
        return;
    }
    let sendmail = crate::mail::sendmail_path();
    if executable(&sendmail) {
        report.row(
            "mail",
            format!("to {} through {}", s.mailto, sendmail.display()),
        );
        return;
    }
    report.diags.push(Diagnostic::warning(
        source.path,
        source.line("MAILTO"),
        format!(
            "mail to {} cannot be sent: {} does not exist (no SMTP_SERVER either); error reports would be lost",
            s.mailto,
            sendmail.display()
        ),
        "install a mail transport (apt install dma, or postfix), or set SMTP_SERVER=host[:port]",
    ));
}
