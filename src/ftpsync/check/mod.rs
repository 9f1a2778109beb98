//! `-test` for an ftpsync setup: what a run would do and what would stop it,
//! found before the switch from Debian's ftpsync to dsync.
//!
//! Every config is read the way a run reads it (`settings::initial_vars`,
//! `shellconf`, `settings::resolve`) and its rsync command lines come from
//! [`super::argv`], so the report cannot drift from what `dsync ftpsync` does.
//! The dsync layer adds its own repository files' ftpsync blocks
//! (src/manager/ftpsync_check.rs).

mod differs;
mod errors;
mod find;
mod hub;
mod online;
mod plan;
mod runtime;
mod switch;

use std::path::{Path, PathBuf};

use super::cli::Request;
use super::settings::{self, Settings};
use crate::diag::Diagnostic;

pub use errors::diagnostic as refused;
pub use find::{Found, find_all};

/// What `-test` says about one archive (or one runmirrors setup).
#[derive(Debug, Default)]
pub struct Report {
    /// `ftpsync archive "security": /etc/ftpsync/ftpsync-security.conf`
    pub title: String,
    /// The evaluated settings that matter, the command lines and the checks
    /// passed, as label and value.
    pub rows: Vec<(String, String)>,
    pub diags: Vec<Diagnostic>,
}

impl Report {
    fn row(&mut self, label: &str, value: impl Into<String>) {
        self.rows.push((label.to_string(), value.into()));
    }

    /// The title, then one aligned row a line.
    pub fn render(&self) -> String {
        let mut out = format!("{}\n", self.title);
        for (label, value) in &self.rows {
            out.push_str(&format!("  {label:<10} {value}\n"));
        }
        out
    }
}

/// Which checks a report makes.
#[derive(Debug, Clone, Copy)]
pub struct Checks {
    /// Ask the upstream (`-test` without `-offline`).
    pub reach: bool,
    /// The dsync layer already checks `TO` and reaches the upstream of its
    /// repository files: say nothing twice.
    pub embedded: bool,
}

/// Where a config's text is, so messages name the line that sets a variable.
pub struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    /// The line of `path` on which `text` starts (1 for a whole file).
    pub first_line: usize,
}

impl Source<'_> {
    /// The line that (last) sets `var`, or 0 when the default is used.
    pub fn line(&self, var: &str) -> usize {
        crate::shellconf::assignment_line(self.text, var).map_or(0, |n| n + self.first_line - 1)
    }
}

/// `-test` for one config file, found as ftpsync finds it for `name`
/// (`ftpsync` or `ftpsync-ARCHIVE`).
pub fn config_file(found: &Found, checks: Checks) -> Report {
    let text = std::fs::read_to_string(&found.path).unwrap_or_default();
    let source = Source {
        path: &found.path,
        text: &text,
        first_line: 1,
    };
    let request = Request {
        archive: found.archive.clone(),
        ..Request::default()
    };
    let mut report = Report {
        title: format!(
            "ftpsync {}: {} (run as `{}`)",
            archive_label(&found.archive),
            found.path.display(),
            invocation(&found.archive)
        ),
        ..Report::default()
    };
    let mut vars = settings::initial_vars(&found.name, &request);
    let evaluated = crate::shellconf::eval_file(&found.path, &mut vars)
        .map_err(settings::SettingsError::from)
        .and_then(|()| settings::resolve(&found.name, found.path.clone(), &mut vars));
    match evaluated {
        Err(e) => {
            report.row(
                "refused",
                "`dsync ftpsync` would not run it: see the error below",
            );
            report.diags.push(errors::diagnostic(&e, &source));
        }
        Ok(s) => loaded(&s, &source, checks, &mut report),
    }
    report.diags.extend(found.shadows.iter().map(|other| {
        Diagnostic::warning(
            other,
            0,
            format!(
                "never read: ftpsync reads {} for this archive, which comes first",
                found.path.display()
            ),
            format!(
                "merge what you need into {} and delete this file",
                found.path.display()
            ),
        )
    }));
    report
}

/// Everything after a successful load: the plan, the run-time checks, the
/// upstream (when asked) and where dsync differs.
pub fn loaded(s: &Settings, source: &Source<'_>, checks: Checks, report: &mut Report) {
    plan::settings(s, report);
    runtime::check_all(s, source, checks, report);
    plan::stages(s, report);
    if checks.reach {
        online::check(s, source, checks, report);
    }
    differs::lines(s, source, report);
}

/// `"security"` or `(default)` for the archive ftpsync runs without `sync:archive:`.
fn archive_label(archive: &str) -> String {
    match archive {
        "" => "archive (default)".to_string(),
        name => format!("archive \"{name}\""),
    }
}

/// The command that runs this archive under dsync.
fn invocation(archive: &str) -> String {
    match archive {
        "" => "dsync ftpsync sync:all".to_string(),
        name => format!("dsync ftpsync sync:archive:{name} sync:all"),
    }
}

/// Every ftpsync setup this user has: each archive's config, the runmirrors
/// setups of a hub, and the cron lines and forced commands that still run
/// Debian's scripts.
pub fn all(checks: Checks) -> (Vec<Report>, Vec<Diagnostic>) {
    let vars = settings::initial_vars("ftpsync", &Request::default());
    let found = find_all(&vars);
    let mut reports: Vec<Report> = found
        .archives
        .iter()
        .map(|f| config_file(f, checks))
        .collect();
    reports.extend(found.hubs.iter().map(|h| hub::check(h, &vars)));
    (reports, switch::hints())
}

/// `dsync ftpsync -test [-offline]`: the one archive this invocation would run.
pub fn one(program: &str, args: &[String]) -> u8 {
    let offline = args.iter().any(|a| a == "-offline");
    let rest: Vec<String> = args
        .iter()
        .filter(|a| !matches!(a.as_str(), "-test" | "-offline"))
        .cloned()
        .collect();
    let request = match super::cli::parse(&rest, None) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("{program}: {e}");
            return crate::exit::USAGE;
        }
    };
    let name = match request.archive.as_str() {
        "" => program.to_string(),
        archive => format!("{program}-{archive}"),
    };
    let vars = settings::initial_vars(&name, &request);
    let checks = Checks {
        reach: !offline,
        embedded: false,
    };
    let Some(found) = find::named(&vars, &name, &request.archive) else {
        let file = settings::config_file_name(&name);
        let dirs: Vec<String> = settings::config_dirs(&vars)
            .iter()
            .map(|d| d.join(&file).display().to_string())
            .collect();
        eprintln!("Can't read config file {file}!");
        eprintln!("{program}: looked for: {}", dirs.join(", "));
        return crate::exit::CONFIG;
    };
    let report = config_file(&found, checks);
    let mut diags = report.diags.clone();
    diags.extend(switch::hints());
    print!("{}", report.render());
    diags.iter().for_each(|d| println!("{d}"));
    println!("{program} -test: {}", crate::diag::counts(&diags));
    if diags.iter().any(Diagnostic::is_error) {
        crate::exit::CONFIG
    } else {
        crate::exit::OK
    }
}

/// The login name of this process's user, for messages.
fn me() -> String {
    let uid = nix::unistd::Uid::current();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {uid}"), |u| u.name)
}

/// `PATH` lookup as the shell does it; a name with a `/` is taken as a path.
fn which(program: &str, path_var: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| crate::access::executable(p))
}
