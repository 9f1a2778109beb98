//! `dsync -gendsync`: write `data.dsync` at the root of every repository with
//! `dsync=true`, hashing only what changed since the last run.
//!
//! `data.dsync` is the only file of ours in the tree: the hash cache is kept
//! in the home (`HOME/cache/NAME`), and what older versions left in the tree
//! (`.dsync-cache`, temporary files) is moved out or removed here.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::fs::{FlockOperation, flock};

use crate::dtp::manifest::{self, GenStats};
use crate::exit;
use crate::manager::home::Home;
use crate::manager::repo::Repo;

/// Run `-gendsync` for the repositories of `home`; the exit status.
pub fn run(home: &Home) -> u8 {
    let (repos, diags) = crate::manager::repo_files::load(home);
    for d in diags.iter().filter(|d| d.is_error()) {
        eprintln!("{d}");
    }
    let served: Vec<&Repo> = repos.iter().filter(|r| r.dsync).collect();
    if served.is_empty() {
        eprintln!(
            "dsync -gendsync: no repository has dsync=true; add a line dsync=true to the NAME.conf \
             of each repository to serve over DTP (repository files: {})",
            crate::manager::repo_files::places(home)
        );
        return exit::CONFIG;
    }
    let mut failed = false;
    for repo in served {
        match one(home, repo) {
            Ok(line) => println!("{}: {line}", repo.name),
            Err(message) => {
                eprintln!("{}: {message}", repo.name);
                failed = true;
            }
        }
    }
    if failed { exit::FAILURE } else { exit::OK }
}

/// `-gendsync` for one repository: not while it syncs (the tree is changing;
/// the worker writes the manifest itself when the sync succeeds).
fn one(home: &Home, repo: &Repo) -> Result<String, String> {
    let sync_lock = home.run_dir().join(format!("{}.lock", repo.name));
    let Some(_sync) = lock(&sync_lock)? else {
        return Ok("skipped: a sync of it is running; it writes the manifest when done".into());
    };
    after_sync(home, repo)
}

/// Generate and install one manifest; the summary line, or why not. The
/// caller holds the repository's sync lock.
pub fn after_sync(home: &Home, repo: &Repo) -> Result<String, String> {
    let gendsync_lock = home.run_dir().join(format!("gendsync-{}.lock", repo.name));
    let Some(_lock) = lock(&gendsync_lock)? else {
        return Ok("skipped: another dsync -gendsync is writing its manifest".to_string());
    };
    let started = Instant::now();
    let cache = cache_file(home, &repo.name);
    tidy_tree(&repo.save, &cache);
    let spool = cache.parent().unwrap_or(&cache);
    let (header, stats) =
        manifest::generate_and_install(&repo.save, &repo.name, Some(&cache), spool)
            .map_err(|e| format!("cannot make the manifest of {}: {e}", repo.save.display()))?;
    let GenStats {
        hashed,
        reused,
        cache_error,
        ..
    } = stats;
    if let Some(e) = cache_error {
        eprintln!(
            "{}: warning: hash cache not saved ({e}); the next run hashes everything again",
            repo.name
        );
    }
    Ok(format!(
        "{} entries, {} bytes, {hashed} hashed, {reused} reused, in {:.2} s",
        header.entries,
        header.bytes,
        started.elapsed().as_secs_f64()
    ))
}

/// `HOME/cache/NAME`: the hash cache of repository `NAME`, out of its tree.
pub fn cache_file(home: &Home, name: &str) -> PathBuf {
    home.root.join("cache").join(name)
}

/// Move an older version's `SAVE/.dsync-cache` to `cache` (when there is no
/// cache there yet: it saves hashing everything again), then remove what
/// older versions or an interrupted write left in the tree. A failure is a
/// warning: the manifest is still right.
fn tidy_tree(save: &Path, cache: &Path) {
    let old = save.join(manifest::OLD_CACHE);
    let is_file = std::fs::symlink_metadata(&old).is_ok_and(|m| m.is_file());
    if is_file && !cache.exists() {
        let moved = cache
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::rename(&old, cache))
            // Another file system: a copy (a torn one is ignored, never trusted).
            .or_else(|_| std::fs::copy(&old, cache).map(drop));
        match moved {
            Ok(()) => println!(
                "moved the hash cache of an older dsync out of the served tree: {} -> {}",
                old.display(),
                cache.display()
            ),
            Err(e) => eprintln!(
                "warning: cannot move the old hash cache {} to {}: {e}",
                old.display(),
                cache.display()
            ),
        }
    }
    match manifest::remove_leftovers(save) {
        Ok(removed) if !removed.is_empty() => {
            let names: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
            eprintln!(
                "removed from {}: {} (left by an older dsync; nothing but data.dsync of ours belongs in a served tree)",
                save.display(),
                names.join(", ")
            );
        }
        Ok(_) => {}
        Err(e) => eprintln!(
            "warning: cannot remove older dsync files from {}: {e}; remove .dsync-cache and .data.dsync.tmp* there by hand",
            save.display()
        ),
    }
}

/// Take the `flock` of `path` without waiting; `None` when another process
/// holds it. The locks live in `run/`, out of the tree (which may be
/// read-only to everyone but the syncing user): `gendsync-NAME.lock` while a
/// manifest is made, `NAME.lock` while the repository syncs.
fn lock(path: &std::path::Path) -> Result<Option<File>, String> {
    let dir = path.parent().unwrap_or(path);
    let file = std::fs::create_dir_all(dir)
        .and_then(|()| {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
        })
        .map_err(|e| format!("cannot open the lock {}: {e}", path.display()))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn home_with(top: &Path, repos: &[(&str, &str)]) -> Home {
        let home = Home {
            root: top.join("home"),
        };
        std::fs::create_dir_all(home.repos_dir()).unwrap();
        for (name, text) in repos {
            std::fs::write(home.repos_dir().join(format!("{name}.conf")), text).unwrap();
        }
        home
    }

    #[test]
    fn writes_manifests_of_dsync_repositories_only() {
        let top = tempfile::tempdir().unwrap();
        let (a, b) = (top.path().join("a"), top.path().join("b"));
        std::fs::create_dir_all(a.join("d")).unwrap();
        std::fs::write(a.join("d/f"), b"hello").unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let home = home_with(
            top.path(),
            &[
                ("a", &format!("save={}\ndsync=true\n", a.display())),
                ("b", &format!("save={}\n", b.display())),
            ],
        );
        assert_eq!(run(&home), exit::OK);
        let header = manifest::read_header(&a.join("data.dsync")).unwrap();
        assert_eq!(
            (header.repo.as_str(), header.entries, header.bytes),
            ("a", 2, 5)
        );
        assert!(!b.join("data.dsync").exists());
        // The cache is in the home, nothing but the manifest in the tree.
        assert!(cache_file(&home, "a").is_file());
        let mut names: Vec<_> = std::fs::read_dir(&a)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["d", "data.dsync"]);
    }

    #[test]
    fn an_old_cache_in_the_tree_is_moved_to_the_home() {
        let top = tempfile::tempdir().unwrap();
        let a = top.path().join("a");
        std::fs::create_dir_all(&a).unwrap();
        let home = home_with(
            top.path(),
            &[("a", &format!("save={}\ndsync=true\n", a.display()))],
        );
        std::fs::write(a.join(".dsync-cache"), b"old cache").unwrap();
        std::fs::write(a.join(".data.dsync.tmpAbc"), b"torn").unwrap();
        assert_eq!(run(&home), exit::OK);
        assert!(!a.join(".dsync-cache").exists());
        assert!(!a.join(".data.dsync.tmpAbc").exists());
        // Moved, found damaged, rebuilt.
        assert!(cache_file(&home, "a").is_file());
        assert_ne!(std::fs::read(cache_file(&home, "a")).unwrap(), b"old cache");
    }

    #[test]
    fn a_held_lock_skips_the_repository() {
        let top = tempfile::tempdir().unwrap();
        let a = top.path().join("a");
        std::fs::create_dir_all(&a).unwrap();
        let home = home_with(
            top.path(),
            &[("a", &format!("save={}\ndsync=true\n", a.display()))],
        );
        // Another -gendsync, then a sync of the repository, hold their locks.
        for held in ["gendsync-a.lock", "a.lock"] {
            let path = home.run_dir().join(held);
            let held = lock(&path).unwrap().unwrap();
            assert!(lock(&path).unwrap().is_none());
            assert_eq!(run(&home), exit::OK);
            assert!(!a.join("data.dsync").exists(), "{path:?} held");
            drop(held);
        }
        assert_eq!(run(&home), exit::OK);
        assert!(a.join("data.dsync").exists());
    }

    #[test]
    fn exit_codes() {
        let top = tempfile::tempdir().unwrap();
        let b = top.path().join("b");
        std::fs::create_dir_all(&b).unwrap();
        let home = home_with(top.path(), &[("b", &format!("save={}\n", b.display()))]);
        assert_eq!(run(&home), exit::CONFIG);
        let gone = top.path().join("gone");
        std::fs::write(
            home.repos_dir().join("gone.conf"),
            format!("save={}\ndsync=true\n", gone.display()),
        )
        .unwrap();
        assert_eq!(run(&home), exit::FAILURE);
    }
}
