//! Asking the upstream as the run will: the same rsync, transport, user,
//! password (`child_env`) and `RSYNC_EXTRA`; then its trace file, for the
//! archive serial a sync would bring.

use std::process::{Command, Stdio};

use super::{Checks, Report, Source};
use crate::diag::Diagnostic;
use crate::ftpsync::argv;
use crate::ftpsync::settings::{Settings, Transport};

pub fn check(s: &Settings, source: &Source<'_>, checks: Checks, report: &mut Report) {
    match list(s) {
        Ok(()) => {}
        // The dsync layer already probes its repositories' upstreams.
        Err(_) if checks.embedded => return,
        Err(why) => {
            let var = match s.rsync_host.as_str() {
                "" => "RSYNC_SOURCE",
                _ => "RSYNC_HOST",
            };
            report.diags.push(Diagnostic::error(
                source.path,
                source.line(var),
                format!("upstream {} cannot be reached: {why}", s.rsync_source),
                "check RSYNC_HOST, RSYNC_PATH, RSYNC_USER/RSYNC_PASSWORD and that this machine may connect (a port in RSYNC_EXTRA=--port=N)",
            ));
            return;
        }
    }
    report.row(
        "online",
        format!("{} answers; {}", s.rsync_source, trace(s)),
    );
}

/// The rsync words every probe starts with: `RSYNC`, timeouts, `RSYNC_EXTRA`
/// and the transport.
fn rsync_probe(s: &Settings) -> Command {
    let words = argv::rsync_command(s);
    let (program, leading) = words
        .split_first()
        .map_or(("rsync", &[][..]), |(p, r)| (p.as_str(), r));
    let mut cmd = Command::new(program);
    cmd.args(leading).arg("--timeout=20");
    // rsync refuses --contimeout unless it talks to a daemon itself.
    if s.transport == Transport::Daemon {
        cmd.arg("--contimeout=10");
    }
    cmd.args(s.rsync_extra.split_whitespace())
        .args(argv::transport(s))
        .env_clear()
        .envs(s.child_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// `rsync --list-only SOURCE/`.
fn list(s: &Settings) -> Result<(), String> {
    let mut cmd = rsync_probe(s);
    cmd.arg("--list-only")
        .arg(format!("{}/", s.rsync_source.trim_end_matches('/')));
    crate::rsync::run_explained(&mut cmd)
}

/// The upstream's own trace (`project/trace/RSYNC_HOST`, else the archive's
/// `master`): its `Archive serial` and date.
fn trace(s: &Settings) -> String {
    let Ok(dir) = tempfile::tempdir() else {
        return "not fetched (no temporary folder)".into();
    };
    let source = s.rsync_source.trim_end_matches('/');
    for name in [s.rsync_host.as_str(), "master"]
        .into_iter()
        .filter(|n| !n.is_empty())
    {
        let local = dir.path().join("trace");
        let mut cmd = rsync_probe(s);
        cmd.arg(format!("{source}/project/trace/{name}"))
            .arg(&local);
        if crate::rsync::run_explained(&mut cmd).is_err() {
            continue;
        }
        let serial = crate::trace::field(&local, "Archive serial").unwrap_or_else(|| "none".into());
        let date = crate::trace::field(&local, "Date").unwrap_or_else(|| first_line(&local));
        return format!("project/trace/{name}: Archive serial {serial}, {date}");
    }
    "no project/trace/RSYNC_HOST nor project/trace/master upstream".into()
}

fn first_line(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}
