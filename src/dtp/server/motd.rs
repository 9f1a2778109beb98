//! `dtp/motd.conf`: `경로=/path/of/motd` (the key is Korean for "path", as the
//! reference tool's). Without it, the `motd file` of `/etc/rsyncd.conf`, so a
//! host that already greets rsync clients greets DTP clients the same way.

use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;
use crate::keyvalue::{Parsed, parse_line, raw_lines};

/// The key of motd.conf.
pub const KEY: &str = "경로";

/// Where rsync's daemon keeps its settings.
pub const RSYNCD_CONF: &str = "/etc/rsyncd.conf";

/// The motd file named by motd.conf (`None` if it names none), and problems.
pub fn parse(path: &Path, text: &str) -> (Option<PathBuf>, Vec<Diagnostic>) {
    let mut motd = None;
    let mut diags = Vec::new();
    for line in raw_lines(text) {
        let n = line.number;
        match parse_line(line.text) {
            Parsed::Blank => {}
            Parsed::Pair { key, value } if key == KEY => {
                if value.starts_with('/') && !value.chars().any(char::is_control) {
                    motd = Some(PathBuf::from(value));
                } else {
                    diags.push(Diagnostic::error(
                        path,
                        n,
                        format!("{KEY}={value} is not an absolute path"),
                        format!("write the motd file's full path, e.g. {KEY}=/etc/dsync-motd.txt"),
                    ));
                }
            }
            Parsed::Pair { key, .. } => diags.push(Diagnostic::error(
                path,
                n,
                format!("unknown key `{key}`: motd.conf knows only {KEY}="),
                format!("write {KEY}=/path/of/the/motd"),
            )),
            Parsed::Malformed => diags.push(Diagnostic::error(
                path,
                n,
                "not a key=value line",
                format!("write {KEY}=/path/of/the/motd, or put # in front of the line"),
            )),
        }
    }
    (motd, diags)
}

/// `motd file = PATH` of rsyncd.conf's global section. rsync compares
/// parameter names ignoring case and spaces, so `motdfile` counts too.
pub fn from_rsyncd(text: &str) -> Option<PathBuf> {
    let mut motd = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            break;
        }
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key: String = key
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if key == "motdfile" && !value.trim().is_empty() {
            motd = Some(PathBuf::from(value.trim()));
        }
    }
    motd
}

/// The motd to show: motd.conf's, else rsyncd.conf's; a warning when the
/// file named does not exist (the service runs without).
pub fn resolve(path: &Path, text: &str) -> (Option<PathBuf>, Vec<Diagnostic>) {
    let (explicit, mut diags) = parse(path, text);
    let chosen = explicit.or_else(|| {
        std::fs::read_to_string(RSYNCD_CONF)
            .ok()
            .and_then(|t| from_rsyncd(&t))
    });
    if let Some(file) = &chosen
        && !file.is_file()
    {
        diags.push(Diagnostic::warning(
            path,
            0,
            format!(
                "the motd file {} does not exist; no motd is shown",
                file.display()
            ),
            format!("create it, or set {KEY}= to an existing file"),
        ));
    }
    (chosen, diags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn korean_key() {
        let (m, d) = parse(Path::new("motd.conf"), "# c\n경로 = /etc/motd.txt\n");
        assert!(d.is_empty());
        assert_eq!(m, Some(PathBuf::from("/etc/motd.txt")));
        let (m, d) = parse(Path::new("motd.conf"), "경로=relative\npath=/x\n");
        assert_eq!(m, None);
        assert_eq!(d.iter().map(|d| d.line).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn rsyncd_global_section_only() {
        let text = "uid = nobody\n  Motd File = /etc/rsync.motd\n[debian]\nmotd file = /x\n";
        assert_eq!(from_rsyncd(text), Some(PathBuf::from("/etc/rsync.motd")));
        assert_eq!(from_rsyncd("[m]\nmotd file=/x\n"), None);
        assert_eq!(
            from_rsyncd("# motd file = /x\nmotdfile=/y\n"),
            Some(PathBuf::from("/y"))
        );
    }
}
