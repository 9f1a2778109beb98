//! Repository files where dsync does not read them. KRFOSS's guides never say
//! which folder holds `NAME.conf`, so users copy theirs beside `xync.conf`;
//! dsync reads only `repos/`, and a file it ignores must not go unnoticed.

use std::path::Path;

use super::diag::Diagnostic;
use super::home::Home;
use super::xync::{self, Parsed, parse_line, raw_lines};

/// Files beside `xync.conf` named `*.conf` that set a repository key
/// (`repo=`, `save=`, `ftpsync=`…), each an error with the `mv` that fixes it.
pub fn check(home: &Home) -> Vec<Diagnostic> {
    let Ok(entries) = std::fs::read_dir(&home.root) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf") && p.is_file())
        .filter(|p| *p != home.xync_conf() && *p != home.catalog())
        .filter(|p| looks_like_a_repository(p))
        .collect();
    paths.sort();
    paths.iter().map(|p| diagnostic(home, p)).collect()
}

fn looks_like_a_repository(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    raw_lines(&text).any(|line| match parse_line(line.text) {
        // Keys both files take (mailto=, intradd=) say nothing.
        Parsed::Pair { key, .. } => super::repo::KEYS.contains(&key) && !xync::KEYS.contains(&key),
        _ => false,
    })
}

fn diagnostic(home: &Home, path: &Path) -> Diagnostic {
    let repos = home.repos_dir();
    let name = path.file_name().unwrap_or_default();
    let target = repos.join(name);
    let fix = if target.exists() {
        format!(
            "{} exists too: compare the two, keep the one you mean in {} and delete the other",
            target.display(),
            repos.display()
        )
    } else {
        format!("mv {} {}/", path.display(), repos.display())
    };
    Diagnostic::error(
        path,
        0,
        format!(
            "this looks like a repository file, but dsync reads repositories only from {}/*.conf: it is not used",
            repos.display()
        ),
        fix,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_files_beside_xync_conf_are_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home {
            root: dir.path().to_path_buf(),
        };
        std::fs::create_dir_all(home.repos_dir()).unwrap();
        let root = &home.root;
        std::fs::write(root.join("kali.conf"), "repo=kali\nsave=/mirrors/kali\n").unwrap();
        std::fs::write(root.join("ubuntu.conf"), "save=/mirrors/ubuntu\n").unwrap();
        std::fs::write(home.repos_dir().join("ubuntu.conf"), "save=/m/u\n").unwrap();
        // Not repositories: the global files, other settings, other names.
        std::fs::write(home.xync_conf(), "syncps=2\n").unwrap();
        std::fs::write(home.catalog(), "kali rsync://h/kali/\n").unwrap();
        std::fs::write(root.join("notes.conf"), "mailto=a@b.example\n").unwrap();
        std::fs::write(root.join("kali.conf.bak"), "repo=kali\n").unwrap();
        let d = check(&home);
        assert_eq!(d.len(), 2, "{d:#?}");
        assert!(d.iter().all(Diagnostic::is_error));
        assert!(d[0].file.ends_with("kali.conf"), "{}", d[0]);
        let repos = home.repos_dir().display().to_string();
        assert!(
            d[0].message.contains(&format!("only from {repos}/*.conf")),
            "{}",
            d[0]
        );
        assert_eq!(
            d[0].fix,
            format!("mv {}/kali.conf {repos}/", root.display())
        );
        assert!(d[1].fix.contains("exists too"), "{}", d[1]);
    }
}
