//! `dtp/list.conf`: the served repositories, one folder per line below
//! `webroot=`; the URL name is the folder's last component.
//!
//! KRFOSS's guide writes the lines with a leading slash (`/kali` means
//! `WEBROOT/kali`), so a leading `/` is accepted and means the same as none:
//! every line is below webroot=, never an absolute path of its own.

use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;
use crate::keyvalue::raw_lines;

/// One served repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// The name in URLs (`/NAME/...`).
    pub name: String,
    /// The folder served, `WEBROOT/LINE`.
    pub root: PathBuf,
}

/// URL names the protocol itself uses (`/api/repos`).
const RESERVED: &[&str] = &["api"];

/// Parse `text` (the file `path`); every problem is returned.
pub fn parse(path: &Path, text: &str, webroot: Option<&Path>) -> (Vec<Repo>, Vec<Diagnostic>) {
    let mut repos: Vec<(usize, Repo)> = Vec::new();
    let mut diags = Vec::new();
    let mut webroot_reported = false;
    for line in raw_lines(text) {
        let entry = line.text.trim();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        let n = line.number;
        let components = match components(entry) {
            Ok(c) => c,
            Err((message, fix)) => {
                diags.push(Diagnostic::error(path, n, message, fix));
                continue;
            }
        };
        let Some(webroot) = webroot else {
            if !webroot_reported {
                webroot_reported = true;
                diags.push(Diagnostic::error(
                    path,
                    n,
                    "webroot= is not set in xync.conf, so list.conf's paths mean nothing",
                    "set webroot= in xync.conf to the folder the served paths are in, e.g. webroot=/srv/mirrors",
                ));
            }
            continue;
        };
        let name = components.last().expect("at least one component").clone();
        if RESERVED.contains(&name.as_str()) {
            diags.push(Diagnostic::error(
                path,
                n,
                format!("`{name}` cannot be a repository name: /{name}/ is part of the protocol"),
                format!(
                    "serve the folder under another name (a folder or symlink not called {name})"
                ),
            ));
            continue;
        }
        if let Some((previous, _)) = repos.iter().find(|(_, r)| r.name == name) {
            diags.push(Diagnostic::error(
                path,
                n,
                format!("a second repository named `{name}` (also on line {previous}): URL names must differ"),
                format!("serve only one folder whose last component is {name} (delete line {previous} or {n})"),
            ));
            continue;
        }
        let root = webroot.join(components.join("/"));
        if let Some(problem) = not_served(path, n, entry, &root, webroot) {
            diags.push(problem);
            continue;
        }
        repos.push((n, Repo { name, root }));
    }
    (repos.into_iter().map(|(_, r)| r).collect(), diags)
}

/// The path's components (`.` and empty ones dropped, so a leading `/` too),
/// or why it is refused.
fn components(entry: &str) -> Result<Vec<String>, (String, String)> {
    if entry.chars().any(char::is_control) {
        return Err((
            format!("`{}` holds control characters", entry.escape_default()),
            "write the folder's path on its own line, plain text".into(),
        ));
    }
    let parts: Vec<String> = entry
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect();
    if parts.iter().any(|c| c == "..") {
        return Err((
            format!("`{entry}` holds `..`; only folders below webroot= can be served"),
            "write a path below webroot= without .., or move webroot=".into(),
        ));
    }
    if parts.is_empty() {
        return Err((
            format!("`{entry}` names webroot= itself"),
            "write one folder below webroot= per line, e.g. /debian".into(),
        ));
    }
    Ok(parts)
}

/// Why `root` (line `n`, `entry`) is not served now, if it is not. A folder
/// that does not exist yet is a warning: KRFOSS's guide lists folders before
/// their first sync made them, and the service serves the others meanwhile
/// (a `-reload` once it exists serves it too). Anything else there, or a line
/// that repeats webroot= (a slip, not a folder to come), is an error.
fn not_served(
    path: &Path,
    n: usize,
    entry: &str,
    root: &Path,
    webroot: &Path,
) -> Option<Diagnostic> {
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !repeats_webroot(entry, webroot) => {
            Some(Diagnostic::warning(
                path,
                n,
                format!(
                    "{} does not exist (yet): it is not served until it does",
                    root.display()
                ),
                format!(
                    "once it exists (e.g. after its first sync), run dsync -reload to serve it; \
                     or correct the path (below webroot={}), or delete the line",
                    webroot.display()
                ),
            ))
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Some(Diagnostic::error(
            path,
            n,
            format!("cannot look at {}: {e}", root.display()),
            "let the account the service runs as reach it (chmod o+x on the folders above it)",
        )),
        _ => Some(Diagnostic::error(
            path,
            n,
            format!("{} is not a folder", root.display()),
            missing_fix(entry, webroot),
        )),
    }
}

/// Does the line repeat webroot= (`/mirrors/kali` with webroot=/mirrors,
/// `/mirrors/kali` existing)?
fn repeats_webroot(entry: &str, webroot: &Path) -> bool {
    below_webroot(entry, webroot).is_some()
}

/// The part of `entry` below webroot=, if the line repeats it and that exists.
fn below_webroot<'a>(entry: &'a str, webroot: &Path) -> Option<&'a Path> {
    Path::new(entry)
        .strip_prefix(webroot)
        .ok()
        .filter(|rest| !rest.as_os_str().is_empty() && webroot.join(rest).is_dir())
}

/// The fix for a line whose folder is missing. A line that repeats webroot=
/// (`/mirrors/kali` with webroot=/mirrors) is the likely slip: say so.
fn missing_fix(entry: &str, webroot: &Path) -> String {
    match below_webroot(entry, webroot) {
        Some(rest) => format!(
            "lines are below webroot={w} (/kali means {w}/kali): write /{}",
            rest.display(),
            w = webroot.display()
        ),
        None => format!(
            "create it, correct the path (below webroot={}), or delete the line",
            webroot.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let web = dir.path().join("web");
        for d in ["debian", "archive/ubuntu", "other/debian", "api"] {
            std::fs::create_dir_all(web.join(d)).unwrap();
        }
        (dir, web)
    }

    #[test]
    fn names_are_last_components() {
        let (_d, web) = setup();
        let text = "# comment\n\ndebian\r\n  archive//ubuntu/  \n./x/../debian2\n";
        let (repos, diags) = parse(Path::new("list.conf"), text, Some(&web));
        assert_eq!(repos.len(), 2, "{diags:?}");
        assert_eq!(repos[0].name, "debian");
        assert_eq!(repos[1].name, "ubuntu");
        assert_eq!(repos[1].root, web.join("archive/ubuntu"));
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].line, 5);
        assert!(diags[0].message.contains(".."), "{}", diags[0]);
    }

    #[test]
    fn errors_name_their_lines() {
        let (_d, web) = setup();
        let text = "debian\n/srv/x\nother/debian\nmissing\napi\n/../etc\n/\n";
        let (repos, diags) = parse(Path::new("list.conf"), text, Some(&web));
        assert_eq!(repos.len(), 1);
        let lines: Vec<usize> = diags.iter().map(|d| d.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7], "{diags:#?}");
        assert!(diags.iter().all(|d| !d.fix.is_empty()));
        // Missing folders (`/srv/x` is WEBROOT/srv/x) are warnings: not yet.
        let errors: Vec<usize> = diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.line)
            .collect();
        assert_eq!(errors, [3, 5, 6, 7], "{diags:#?}");
        assert!(
            diags[0].message.contains("web/srv/x does not exist (yet)"),
            "{}",
            diags[0]
        );
        assert!(diags[0].fix.contains("dsync -reload"), "{}", diags[0]);
        assert!(diags[1].message.contains("line 1"), "{}", diags[1]);
        assert!(
            diags[2].message.contains("does not exist (yet)"),
            "{}",
            diags[2]
        );
        assert!(diags[4].message.contains(".."), "{}", diags[4]);
        assert!(diags[5].message.contains("webroot= itself"), "{}", diags[5]);
    }

    /// The DTP host guide's own example, as written.
    #[test]
    fn leading_slashes_are_below_webroot() {
        let dir = tempfile::tempdir().unwrap();
        let web = dir.path().join("mirrors");
        for d in ["kali", "kali-images", "ubuntu"] {
            std::fs::create_dir_all(web.join(d)).unwrap();
        }
        let text = "/kali\n/kali-images\n/ubuntu\n";
        let (repos, diags) = parse(Path::new("list.conf"), text, Some(&web));
        assert!(diags.is_empty(), "{diags:#?}");
        let got: Vec<(&str, PathBuf)> = repos
            .iter()
            .map(|r| (r.name.as_str(), r.root.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("kali", web.join("kali")),
                ("kali-images", web.join("kali-images")),
                ("ubuntu", web.join("ubuntu"))
            ]
        );
        // webroot= repeated in the line: the fix says what to write.
        let repeated = format!("{}/kali\n", web.display());
        let (_, diags) = parse(Path::new("list.conf"), &repeated, Some(&web));
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert!(diags[0].is_error(), "a slip, not a folder to come");
        assert!(diags[0].fix.contains("write /kali"), "{}", diags[0]);
    }

    /// The guide's list before kali-images and ubuntu were synced: kali is
    /// served, the others are warnings, and a file in the way an error.
    #[test]
    fn folders_to_come_are_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let web = dir.path().join("mirrors");
        std::fs::create_dir_all(web.join("kali")).unwrap();
        let text = "/kali\n/kali-images\n/ubuntu\n";
        let (repos, diags) = parse(Path::new("list.conf"), text, Some(&web));
        assert_eq!(repos.len(), 1);
        assert_eq!(repos[0].name, "kali");
        let warned: Vec<usize> = diags
            .iter()
            .filter(|d| !d.is_error())
            .map(|d| d.line)
            .collect();
        assert_eq!(warned, [2, 3], "{diags:#?}");
        std::fs::write(web.join("ubuntu"), "a file").unwrap();
        let (_, diags) = parse(Path::new("list.conf"), text, Some(&web));
        assert!(
            diags[1].is_error() && diags[1].message.contains("not a folder"),
            "{diags:#?}"
        );
    }

    #[test]
    fn without_webroot_one_error() {
        let (repos, diags) = parse(Path::new("list.conf"), "a\nb\n", None);
        assert!(repos.is_empty());
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.contains("webroot"), "{}", diags[0]);
    }
}
