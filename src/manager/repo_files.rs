//! Where dsync finds repository files, for every command alike (`-test`,
//! `-sync`, the scheduler, `-gendsync`, `-emoff`, the status files).
//!
//! KRFOSS's mirror guide has its users `cd ~/dxync` and write `debian.conf`
//! right there, beside `xync.conf`; dsync's own layout is `~/dxync/repos/`.
//! Both are read: every `HOME/*.conf` but `xync.conf` and `upstreams.conf`,
//! and every `HOME/repos/*.conf`. One file name in both places is an error
//! naming both (neither is used: which one was meant is the user's call).
//! Repository-looking `*.conf` files in other folders of the home
//! (`conf/`, `repo/`) are named with the `mv` that makes them count.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::diag::Diagnostic;
use super::home::Home;
use super::repo::{self, Repo};
use super::xync::{self, Parsed, parse_line, raw_lines};

/// Folders of the home that are dsync's own, never repository folders.
const OWN_FOLDERS: &[&str] = &["repos", "dtp", "logs", "run", "cache", "plugins"];

/// Every repository of the home, sorted by file name, and all problems found.
pub fn load(home: &Home) -> (Vec<Repo>, Vec<Diagnostic>) {
    let (files, mut diags) = files(home);
    let (repos, mut found) = repo::load_files(files);
    diags.append(&mut found);
    diags.append(&mut elsewhere(home));
    (repos, diags)
}

/// Where a repository file is read from, for messages ("write NAME.conf in …").
pub fn places(home: &Home) -> String {
    format!(
        "{}/*.conf (beside xync.conf) and {}/*.conf",
        home.root.display(),
        home.repos_dir().display()
    )
}

/// The repository files of both places, sorted by file name; a name in both
/// places is an error, and neither file is read.
fn files(home: &Home) -> (Vec<PathBuf>, Vec<Diagnostic>) {
    let beside = conf_files(&home.root)
        .into_iter()
        .filter(|p| *p != home.xync_conf() && *p != home.catalog());
    let mut by_name: BTreeMap<OsString, Vec<PathBuf>> = BTreeMap::new();
    for path in beside.chain(conf_files(&home.repos_dir())) {
        let name = path.file_name().unwrap_or_default().to_os_string();
        by_name.entry(name).or_default().push(path);
    }
    let mut diags = Vec::new();
    let mut files = Vec::new();
    for (_, mut paths) in by_name {
        if paths.len() == 1 {
            files.append(&mut paths);
            continue;
        }
        diags.push(Diagnostic::error(
            &paths[0],
            0,
            format!(
                "{} and {} are both repository files of the same name: neither is used",
                paths[0].display(),
                paths[1].display()
            ),
            format!(
                "compare the two, keep the one you mean and delete the other (rm {})",
                paths[1].display()
            ),
        ));
    }
    (files, diags)
}

/// `dir/*.conf` that are files (a missing folder has none).
fn conf_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
        .collect();
    files.sort();
    files
}

/// Repository-looking files in the home's other folders, each a warning
/// with the `mv` that makes it count.
fn elsewhere(home: &Home) -> Vec<Diagnostic> {
    let Ok(entries) = std::fs::read_dir(&home.root) else {
        return Vec::new();
    };
    let mut folders: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !OWN_FOLDERS.iter().any(|own| e.file_name() == *own))
        .map(|e| e.path())
        .collect();
    folders.sort();
    let repos = home.repos_dir();
    folders
        .iter()
        .flat_map(|dir| conf_files(dir))
        .filter(|p| looks_like_a_repository(p))
        .map(|path| {
            Diagnostic::warning(
                &path,
                0,
                format!(
                    "this looks like a repository file, but dsync reads repositories only from {}: \
                     it is not used",
                    places(home)
                ),
                format!("mv {} {}/", path.display(), repos.display()),
            )
        })
        .collect()
}

fn looks_like_a_repository(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    raw_lines(&text).any(|line| match parse_line(line.text) {
        // Keys both files take (mailto=, intradd=) say nothing.
        Parsed::Pair { key, .. } => repo::KEYS.contains(&key) && !xync::KEYS.contains(&key),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> (tempfile::TempDir, Home) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home {
            root: dir.path().to_path_buf(),
        };
        std::fs::create_dir_all(home.repos_dir()).unwrap();
        std::fs::write(home.xync_conf(), "syncps=2\n").unwrap();
        std::fs::write(home.catalog(), "kali rsync://h/kali/\n").unwrap();
        (dir, home)
    }

    #[test]
    fn files_beside_xync_conf_and_in_repos_are_both_read() {
        let (_dir, home) = home();
        let root = &home.root;
        std::fs::write(
            root.join("debian.conf"),
            "repo=debian\nsave=/mirror/debian\n",
        )
        .unwrap();
        std::fs::write(home.repos_dir().join("kali.conf"), "save=/m/kali\n").unwrap();
        std::fs::write(root.join("kali.conf.bak"), "repo=kali\n").unwrap();
        let (repos, diags) = load(&home);
        assert!(diags.is_empty(), "{diags:#?}");
        let names: Vec<&str> = repos.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["debian", "kali"]);
    }

    #[test]
    fn one_name_in_both_places_is_an_error_naming_both() {
        let (_dir, home) = home();
        std::fs::write(home.root.join("ubuntu.conf"), "save=/mirrors/ubuntu\n").unwrap();
        std::fs::write(home.repos_dir().join("ubuntu.conf"), "save=/m/u\n").unwrap();
        let (repos, diags) = load(&home);
        assert!(repos.is_empty());
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert!(diags[0].is_error());
        let both = [
            home.root.join("ubuntu.conf"),
            home.repos_dir().join("ubuntu.conf"),
        ];
        for path in both {
            assert!(
                diags[0].message.contains(&path.display().to_string()),
                "{}",
                diags[0]
            );
        }
    }

    #[test]
    fn repository_files_in_other_folders_are_named_with_the_fix() {
        let (_dir, home) = home();
        for folder in ["conf", "repo", "dtp"] {
            std::fs::create_dir_all(home.root.join(folder)).unwrap();
            std::fs::write(
                home.root.join(folder).join("kali.conf"),
                "repo=kali\nsave=/mirrors/kali\n",
            )
            .unwrap();
        }
        std::fs::write(home.root.join("conf/notes.conf"), "mailto=a@b.example\n").unwrap();
        let (repos, diags) = load(&home);
        assert!(repos.is_empty());
        assert_eq!(diags.len(), 2, "dtp/ is the host's own: {diags:#?}");
        assert!(diags.iter().all(|d| !d.is_error()));
        assert!(diags[0].file.ends_with("conf/kali.conf"), "{}", diags[0]);
        assert_eq!(
            diags[0].fix,
            format!(
                "mv {}/conf/kali.conf {}/",
                home.root.display(),
                home.repos_dir().display()
            )
        );
        assert!(diags[1].file.ends_with("repo/kali.conf"), "{}", diags[1]);
    }
}
