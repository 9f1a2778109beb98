//! `dsync -test` on a machine that runs ftpsync today: every ftpsync setup of
//! this user (src/ftpsync/check), and the `ftpsync=true` blocks of this home's
//! repository files, which the repository checks have partly covered already.

use super::diag::Diagnostic;
use super::home::Home;
use super::{upstream, worker, xync};
use crate::ftpsync::check::{self, Checks, Report, Source};
use crate::ftpsync::cli::Request;
use crate::ftpsync::settings::{self, SettingsError};

/// What each setup would do (text) and its problems; `reported` are the
/// diagnostics the home's own checks found, which are not repeated.
pub fn check(home: &Home, reach: bool, reported: &[Diagnostic]) -> (String, Vec<Diagnostic>) {
    let (mut reports, hints) = check::all(Checks {
        reach,
        embedded: false,
    });
    reports.extend(blocks(home, reach, reported));
    let mut text = String::new();
    let mut diags = Vec::new();
    for report in reports {
        text.push_str(&report.render());
        diags.extend(report.diags);
    }
    diags.extend(hints);
    xync::make_visible(&mut diags);
    (text, diags)
}

/// Each repository file's ftpsync block, as `dsync -sync NAME` would run it.
fn blocks(home: &Home, reach: bool, reported: &[Diagnostic]) -> Vec<Report> {
    let (global, _) = xync::load(&home.xync_conf());
    let (repos, _) = super::repo_files::load(home);
    let mut reports = Vec::new();
    for repo in &repos {
        let logdir = worker::log_path(home, &global, &repo.name);
        let logdir = logdir.parent().unwrap_or(&home.root);
        // The upstream the repository layer chose, as the sync will use it.
        let chosen = match upstream::resolve(repo, &global, home) {
            Ok(upstream::Source::Ftpsync(urls)) => urls.into_iter().next(),
            _ => None,
        };
        let Some(config) = worker::ftpsync_config(repo, &global, logdir, chosen.as_deref()) else {
            continue;
        };
        let mut report = Report {
            title: format!(
                "repository {}: ftpsync block of {} from line {} (run by `dsync -sync {}`)",
                repo.name,
                repo.file.display(),
                config.first_line,
                repo.name
            ),
            ..Report::default()
        };
        let has_errors =
            |file: &std::path::Path| reported.iter().any(|d| d.is_error() && d.file == file);
        if has_errors(&repo.file) {
            report
                .rows
                .push(("skipped".into(), "its errors are listed below".into()));
            reports.push(report);
            continue;
        }
        let source = Source {
            path: &repo.file,
            text: config.text,
            first_line: config.first_line,
        };
        let name = config.name.to_string();
        match config
            .eval(&Request::default())
            .and_then(|mut vars| settings::resolve(&name, repo.file.clone(), &mut vars))
        {
            Ok(s) => check::loaded(
                &s,
                &source,
                Checks {
                    reach,
                    embedded: true,
                },
                &mut report,
            ),
            // xync.conf's own rsync refusal covers the block's.
            Err(SettingsError::VulnerableRsync(_)) if has_errors(&home.xync_conf()) => {}
            Err(e) => report.diags.push(check::refused(&e, &source)),
        }
        reports.push(report);
    }
    reports
}
