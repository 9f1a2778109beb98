//! The switch itself: cron lines and ssh forced commands that still run
//! Debian's `ftpsync`, `ftpsync-cron` or `runmirrors` rather than dsync.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::diag::Diagnostic;

/// Cron runs jobs with this `PATH` unless the crontab sets one.
const CRON_PATH: &str = "/usr/bin:/bin";

/// One hint per line of the user's crontab and `~/.ssh/authorized_keys` that
/// runs one of Debian's scripts.
pub fn hints() -> Vec<Diagnostic> {
    let mut hints = Vec::new();
    if let Some((file, text)) = crontab() {
        let path = crontab_path(&text).unwrap_or_else(|| CRON_PATH.to_string());
        hints.extend(scan(&file, &text, &path));
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let keys = home.join(".ssh/authorized_keys");
    if let Ok(text) = std::fs::read_to_string(&keys) {
        let path = std::env::var("PATH").unwrap_or_else(|_| CRON_PATH.to_string());
        hints.extend(scan(&keys, &text, &path));
    }
    hints
}

/// The crontab: `DSYNC_CRONTAB` (a file, for tests), else `crontab -l`, else
/// cron's spool file of this user (readable by root without `crontab`).
fn crontab() -> Option<(PathBuf, String)> {
    let read = |file: PathBuf| std::fs::read_to_string(&file).ok().map(|t| (file, t));
    if let Some(file) = std::env::var_os("DSYNC_CRONTAB") {
        return read(PathBuf::from(file));
    }
    let listed = Command::new("crontab")
        .arg("-l")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success());
    match listed {
        Some(out) => Some((
            PathBuf::from("crontab -l"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )),
        None => read(Path::new("/var/spool/cron/crontabs").join(super::me())),
    }
}

/// A `PATH=` line of the crontab.
fn crontab_path(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .filter_map(|l| l.trim().strip_prefix("PATH="))
        .map(|p| p.trim_matches('"').to_string())
        .next()
}

fn scan(file: &Path, text: &str, path_var: &str) -> Vec<Diagnostic> {
    let dsync = std::env::current_exe()
        .ok()
        .and_then(|e| e.canonicalize().ok());
    let mut hints = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let Some((command, program)) = debian_script(line) else {
            continue;
        };
        let runs = resolve(&program, path_var);
        let canonical = runs.as_ref().and_then(|p| p.canonicalize().ok());
        if canonical.is_some() && canonical == dsync {
            continue; // a compat link: already dsync
        }
        let what = runs.map_or_else(
            || "a program not found".to_string(),
            |p| p.display().to_string(),
        );
        hints.push(Diagnostic::warning(
            file,
            i + 1,
            format!("`{command}` runs Debian's script ({what}), not dsync"),
            format!(
                "replace `{command}` by `{}`, or run compat/install-links (links the Debian names to dsync)",
                dsync_form(&command, &program)
            ),
        ));
    }
    hints
}

/// The command from the first word naming `ftpsync[-X]` or `runmirrors[-X]`
/// (not after `dsync`) to the end of that command; and that word.
fn debian_script(line: &str) -> Option<(String, String)> {
    let separators = |c: char| c.is_whitespace() || "\"';&|=()`".contains(c);
    let mut previous = "";
    let mut offset = 0;
    for token in line.split_inclusive(separators) {
        let start = offset;
        offset += token.len();
        let word = token.trim_end_matches(separators);
        if word.is_empty() {
            continue;
        }
        let base = word.rsplit('/').next().unwrap_or(word);
        let script = ["ftpsync", "runmirrors"]
            .iter()
            .any(|s| base == *s || base.strip_prefix(s).is_some_and(|r| r.starts_with('-')));
        if script && previous != "dsync" {
            let rest = &line[start..];
            let end = rest
                .find(|c: char| ";&|\"'>`)".contains(c))
                .unwrap_or(rest.len());
            return Some((rest[..end].trim().to_string(), word.to_string()));
        }
        previous = word.rsplit('/').next().unwrap_or(word);
    }
    None
}

/// The same command run by dsync: `dsync ftpsync sync:all`, and
/// `ftpsync-NAME` (which names the archive) as `sync:archive:NAME`.
fn dsync_form(command: &str, program: &str) -> String {
    let rest = command.strip_prefix(program).unwrap_or("");
    let base = program.rsplit('/').next().unwrap_or(program);
    match base.split_once('-') {
        Some(("ftpsync", "cron")) | None => format!("dsync {base}{rest}"),
        Some(("ftpsync", archive)) => format!("dsync ftpsync sync:archive:{archive}{rest}"),
        Some((script, name)) => format!("dsync {script} {name}{rest}"),
    }
}

/// What the word runs: a path (`~/` is `HOME`), or the first match in `PATH`.
fn resolve(program: &str, path_var: &str) -> Option<PathBuf> {
    let home = std::env::var("HOME").unwrap_or_default();
    let program = match program.strip_prefix("~/") {
        Some(rest) => format!("{home}/{rest}"),
        None => program.to_string(),
    };
    super::which(&program, path_var).filter(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_scripts_not_dsync_nor_config_paths() {
        let found = |l: &str| debian_script(l).map(|(c, p)| format!("{c} | {p}"));
        assert_eq!(
            found("*/5 * * * * ftpsync sync:all >/dev/null 2>&1").as_deref(),
            Some("ftpsync sync:all | ftpsync")
        );
        assert_eq!(
            found("0 * * * * /home/m/bin/ftpsync-cron security").as_deref(),
            Some("/home/m/bin/ftpsync-cron security | /home/m/bin/ftpsync-cron")
        );
        assert_eq!(
            found(r#"command="~/bin/ftpsync sync:all",no-pty ssh-ed25519 AAAA"#).as_deref(),
            Some("~/bin/ftpsync sync:all | ~/bin/ftpsync")
        );
        assert_eq!(found("*/5 * * * * dsync ftpsync sync:all"), None);
        assert_eq!(
            dsync_form("/usr/bin/ftpsync sync:all", "/usr/bin/ftpsync"),
            "dsync ftpsync sync:all"
        );
        assert_eq!(
            dsync_form("ftpsync-security sync:all", "ftpsync-security"),
            "dsync ftpsync sync:archive:security sync:all"
        );
        assert_eq!(
            dsync_form("ftpsync-cron", "ftpsync-cron"),
            "dsync ftpsync-cron"
        );
        assert_eq!(found("0 1 * * * cat ~/.config/ftpsync/ftpsync.conf"), None);
    }
}
