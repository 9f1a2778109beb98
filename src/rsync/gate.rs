//! The rsync we run must not be one a hostile upstream can take over.
//!
//! rsync before 3.4.0 has CVE-2024-12084..12088: a malicious server can
//! overflow the client's heap, read its memory, and write outside the
//! destination through symlinks. A mirror talks to upstreams it does not
//! control, so such an rsync is refused, unless:
//! - it is 3.4.0 or newer;
//! - it is a Debian/Ubuntu package whose changelog lists all five fixes (the
//!   distributions backported them, e.g. Debian 12's 3.2.7-1+deb12u1);
//! - the operator overrides the check (`allow-vulnerable-rsync=true` in
//!   xync.conf, `ALLOW_VULNERABLE_RSYNC=true` in ftpsync.conf, or
//!   `DSYNC_ALLOW_VULNERABLE_RSYNC=1`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use regex::Regex;

/// The CVEs fixed by rsync 3.4.0 that a backport must list.
pub const CVES: [&str; 5] = [
    "CVE-2024-12084",
    "CVE-2024-12085",
    "CVE-2024-12086",
    "CVE-2024-12087",
    "CVE-2024-12088",
];

/// The first release with the fixes.
pub const FIXED: Release = Release(3, 4, 0);

/// The environment override, for any mode.
pub const OVERRIDE_ENV: &str = "DSYNC_ALLOW_VULNERABLE_RSYNC";

/// An rsync release number, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release(pub u32, pub u32, pub u32);

impl std::fmt::Display for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The release `rsync --version` reports (`rsync  version 3.2.7  protocol …`,
/// also `version v3.4.1`, `3.4.0pre1` counts as 3.4.0's predecessor).
pub fn release_of(version_text: &str) -> Option<Release> {
    let re = Regex::new(r"rsync\s+version\s+v?([0-9]+)\.([0-9]+)(?:\.([0-9]+))?([A-Za-z]*)")
        .expect("static regex");
    let c = re.captures(version_text)?;
    let num = |i: usize| c.get(i).map_or(Ok(0), |m| m.as_str().parse::<u32>());
    let release = Release(num(1).ok()?, num(2).ok()?, num(3).ok()?);
    // A pre-release of X.Y.Z does not have X.Y.Z's fixes.
    let pre = c.get(4).is_some_and(|m| m.as_str().starts_with("pre"));
    if pre && release == FIXED {
        return Some(Release(3, 3, 99));
    }
    Some(release)
}

/// Why an rsync may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// 3.4.0 or newer.
    Fixed(Release),
    /// An older release whose distribution package carries the fixes.
    Backported { release: Release, package: String },
    /// Not known to be fixed, run because the operator said so.
    Overridden(String),
}

impl Accepted {
    /// A line for the log, or `None` when nothing is worth saying.
    pub fn note(&self) -> Option<String> {
        match self {
            Accepted::Fixed(_) => None,
            Accepted::Backported { release, package } => Some(format!(
                "rsync {release} is older than {FIXED}; package {package} lists the fixes for {}..12088",
                CVES[0]
            )),
            Accepted::Overridden(why) => Some(format!(
                "WARNING: running {why} although it may be vulnerable to {}..12088 (overridden)",
                CVES[0]
            )),
        }
    }
}

/// The refusal, with what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to run {what}: {why}; a hostile upstream could take over this machine (CVE-2024-12084..12088). Install rsync {FIXED} or newer (or your distribution's fixed package); to run it anyway, set {override_hint}"
)]
pub struct Refused {
    pub what: String,
    pub why: String,
    pub override_hint: String,
}

/// Judge the rsync `program` that printed `version_text` for `--version`.
/// `allow` is the operator's override; `override_hint` names it in a refusal.
pub fn check(
    program: &str,
    version_text: Option<&str>,
    allow: bool,
    override_hint: &str,
) -> Result<Accepted, Refused> {
    let allow = allow || env_override();
    let release = version_text.and_then(release_of);
    let what = match release {
        Some(r) => format!("rsync {r} ({program})"),
        None => program.to_string(),
    };
    let why = match release {
        Some(r) if r >= FIXED => return Ok(Accepted::Fixed(r)),
        Some(r) => match backport(program) {
            Some(package) => {
                return Ok(Accepted::Backported {
                    release: r,
                    package,
                });
            }
            None => format!("it is older than {FIXED} and no distribution fix was found"),
        },
        None => "its version cannot be told (`--version` printed no rsync version)".to_string(),
    };
    if allow {
        return Ok(Accepted::Overridden(what));
    }
    Err(Refused {
        what,
        why,
        override_hint: format!("{override_hint} or {OVERRIDE_ENV}=1"),
    })
}

/// [`check`] the rsync `program` on this machine: asks it `--version`.
pub fn check_program(program: &str, allow: bool, override_hint: &str) -> Result<Accepted, Refused> {
    let text = super::version_output(&[program.to_string()]);
    check(program, text.as_deref(), allow, override_hint)
}

fn env_override() -> bool {
    std::env::var(OVERRIDE_ENV).is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"))
}

/// The `package version` of the dpkg package owning `program`, when that
/// package's changelog lists every CVE of [`CVES`].
fn backport(program: &str) -> Option<String> {
    let path = std::fs::canonicalize(which(program)?).ok()?;
    let package = dpkg_owner(&path)?;
    let changelog = Path::new("/usr/share/doc")
        .join(&package)
        .join("changelog.Debian.gz");
    if !lists_every_fix(&read_gz(&changelog)?) {
        return None;
    }
    let version = dpkg_query(&["-W", "-f", "${Version}", &package])?;
    Some(format!("{package} {version}"))
}

/// Whether a changelog names each CVE fixed by 3.4.0.
pub fn lists_every_fix(changelog: &str) -> bool {
    CVES.iter().all(|cve| changelog.contains(cve))
}

fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// `dpkg-query -S PATH` → the package name (`rsync: /usr/bin/rsync`).
fn dpkg_owner(path: &Path) -> Option<String> {
    let out = dpkg_query(&["-S", path.to_str()?])?;
    let first = out.lines().next()?;
    let (package, _) = first.split_once(": ")?;
    // `pkg:arch` names the package `pkg`.
    let package = package.split(':').next()?.trim();
    let valid = !package.is_empty()
        && package
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| package.to_string())
}

fn dpkg_query(args: &[&str]) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn read_gz(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let mut text = String::new();
    // A changelog is small; a bound keeps a strange file from costing much.
    flate2::read::GzDecoder::new(file)
        .take(16 << 20)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_are_read_from_version_output() {
        let text = "rsync  version 3.2.7  protocol version 31\nCopyright";
        assert_eq!(release_of(text), Some(Release(3, 2, 7)));
        assert_eq!(
            release_of("rsync  version v3.4.1  protocol version 32"),
            Some(Release(3, 4, 1))
        );
        assert_eq!(
            release_of("rsync version 3.4.0pre1 protocol version 32"),
            Some(Release(3, 3, 99))
        );
        assert_eq!(release_of("openrsync: protocol version 29"), None);
        assert_eq!(release_of(""), None);
    }

    #[test]
    fn new_releases_pass_old_ones_are_refused_with_the_way_out() {
        let new = "rsync  version 3.4.0  protocol version 32";
        assert_eq!(
            check("rsync", Some(new), false, "x=true"),
            Ok(Accepted::Fixed(Release(3, 4, 0)))
        );
        // A stand-in outside any package: no backport can be found.
        let old = "rsync  version 3.2.7  protocol version 31";
        let refused = check("/nonexistent/rsync", Some(old), false, "allow=true").unwrap_err();
        let text = refused.to_string();
        assert!(text.contains("rsync 3.2.7 (/nonexistent/rsync)"), "{text}");
        assert!(text.contains("CVE-2024-12084"), "{text}");
        assert!(text.contains("allow=true or DSYNC_ALLOW_VULNERABLE_RSYNC=1"));
        assert!(matches!(
            check("/nonexistent/rsync", Some(old), true, "x"),
            Ok(Accepted::Overridden(_))
        ));
        assert!(check("/nonexistent/rsync", None, false, "x").is_err());
    }

    #[test]
    fn a_backport_must_list_every_fix() {
        let all = "Import upstream patches for CVE-2024-12084, CVE-2024-12085,\n\
                   CVE-2024-12086, CVE-2024-12087, CVE-2024-12088, CVE-2024-12747";
        assert!(lists_every_fix(all));
        assert!(!lists_every_fix(
            "CVE-2024-12084 CVE-2024-12085 CVE-2024-12086"
        ));
    }
}
