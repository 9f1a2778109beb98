//! A hub's runmirrors setup: read as runmirrors reads it, with the checks
//! that would make its pushes fail (the ssh key, the mirror list, hooks).

use super::find::Found;
use super::{Report, Source};
use crate::diag::Diagnostic;
use crate::ftpsync::runmirrors;
use crate::shellconf::Vars;

pub fn check(found: &Found, env: &Vars) -> Report {
    let text = std::fs::read_to_string(&found.path).unwrap_or_default();
    let source = Source {
        path: &found.path,
        text: &text,
        first_line: 1,
    };
    let mut report = Report {
        title: format!(
            "runmirrors {}: {} (run by ftpsync with HUB=true, or `{}`)",
            if found.archive.is_empty() {
                "(default)"
            } else {
                &found.archive
            },
            found.path.display(),
            format!("dsync runmirrors {}", found.archive).trim_end()
        ),
        ..Report::default()
    };
    let args: Vec<String> = Some(found.archive.clone())
        .filter(|a| !a.is_empty())
        .into_iter()
        .collect();
    let Ok(opts) = runmirrors::parse_args("runmirrors", &args) else {
        return report;
    };
    let mut vars = runmirrors::initial_vars(&opts.name);
    if let Err(e) = crate::shellconf::eval_file(&found.path, &mut vars) {
        let error = crate::ftpsync::settings::SettingsError::Parse(e);
        report
            .diags
            .push(super::errors::diagnostic(&error, &source));
        return report;
    }
    let settings = match runmirrors::Settings::from_vars(&vars, &opts) {
        Ok(settings) => settings,
        Err(message) => {
            report.diags.push(Diagnostic::error(
                &found.path,
                0,
                message,
                "fix the setting runmirrors names",
            ));
            return report;
        }
    };
    key_and_mirrors(&settings, &source, &mut report);
    let path_var = env.get("PATH").unwrap_or("/usr/bin:/bin");
    for (i, hook) in settings.hooks.iter().enumerate() {
        super::runtime::hook_runs(
            &format!("HOOK{}", i + 1),
            hook,
            path_var,
            "",
            &source,
            &mut report,
        );
    }
    report
}

/// runmirrors stops (exit 5) without its key, and pushes nobody without a list.
fn key_and_mirrors(s: &runmirrors::Settings, source: &Source<'_>, report: &mut Report) {
    if s.keyfile_abs.is_file() {
        report.row("KEYFILE", s.keyfile_abs.display().to_string());
    } else {
        report.diags.push(Diagnostic::error(
            source.path,
            source.line("KEYFILE"),
            format!(
                "SSH Key {} does not exist: runmirrors would stop (exit 5)",
                s.keyfile_abs.display()
            ),
            format!(
                "create it: ssh-keygen -t ed25519 -N '' -f {}",
                s.keyfile_abs.display()
            ),
        ));
    }
    let Some(list) = s.mirrors.as_ref().filter(|m| m.is_file()) else {
        report.diags.push(Diagnostic::warning(
            source.path,
            source.line("MIRRORS"),
            "no runmirrors.mirror: runmirrors would push no downstream",
            "list the downstreams, one a line: all NAME HOST USER  (see runmirrors.mirror.sample)",
        ));
        return;
    };
    let lines = s.mirror_lines();
    let count = |kind: &str| {
        lines
            .iter()
            .filter(|l| l.first().is_some_and(|k| k == kind))
            .count()
    };
    report.row(
        "mirrors",
        format!(
            "{}: {} all, {} staged, {} mhop, {} DELAY lines",
            list.display(),
            count("all"),
            count("staged"),
            count("mhop"),
            count("DELAY")
        ),
    );
}
