//! General mode: a repository without `ftpsync=true` is mirrored with rsync and
//! safe defaults, in two stages when the tree looks like a Debian/Ubuntu archive.

use std::path::Path;
use std::process::{Command, Stdio};

use super::xync::Global;
use crate::ftpsync::settings::DEFAULT_OPTIONS1;

/// What one rsync exit status means for a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Worth another try: the connection or the upstream hiccuped.
    Transient,
    Failed,
}

/// 0 is success, 24 (files vanished upstream) too; with `pass-error-temp` also
/// 23 (some files could not be transferred, typically upstream temp files).
/// Socket, protocol-stream, timeout and connection errors are transient.
pub fn classify(code: i32, pass_error_temp: bool) -> Outcome {
    match code {
        0 | 24 => Outcome::Ok,
        23 if pass_error_temp => Outcome::Ok,
        10 | 12 | 30 | 35 | 255 => Outcome::Transient,
        _ => Outcome::Failed,
    }
}

/// Where one repository is synced from and to, and how.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    /// `rsync://host[:port]/module/…/` (ends in `/`).
    pub src: &'a str,
    pub save: &'a Path,
    /// `--address` to bind (an `ipadd` entry), if any.
    pub address: Option<&'a str>,
    pub global: &'a Global,
    /// Debian-style ordering: everything but indices first, then the rest.
    pub two_stage: bool,
    /// The shrink guard is on and the mirror holds files: a tree that is not
    /// Debian-style also gets a first stage that deletes nothing, whose
    /// `--stats` count the guard checks before the deleting stage.
    pub guarded: bool,
}

/// The rsync program: `DSYNC_RSYNC` (a path, e.g. a newer rsync build) or `rsync`.
pub fn rsync_program() -> String {
    std::env::var("DSYNC_RSYNC").unwrap_or_else(|_| "rsync".to_string())
}

/// The rsync command lines of a sync, one per stage, in order.
pub fn stages(job: &Job<'_>) -> Vec<Vec<String>> {
    let g = job.global;
    let mut common: Vec<String> = vec![
        rsync_program(),
        "-rlptH".into(),
        "--safe-links".into(),
        "--no-motd".into(),
        "--stats".into(),
        "--no-human-readable".into(),
        // The whole file list first, as ftpsync does: hard links across
        // folders are found, and `--stats` counts the whole upstream.
        "--no-inc-recursive".into(),
        // Overall progress, which the worker keeps out of the log (see progress.rs).
        "--info=progress2".into(),
        format!("--timeout={}", g.timeout),
        format!("--contimeout={}", g.contimeout),
        // rsync's --delay-updates folder, upstream's or ours, is never mirrored.
        "--exclude=.~tmp~/".into(),
    ];
    if g.pass_error_temp {
        // rsync's in-flight temp files (`.name.AbC123`) of an upstream mid-update.
        common.push(
            "--exclude=.*.[A-Za-z0-9][A-Za-z0-9][A-Za-z0-9][A-Za-z0-9][A-Za-z0-9][A-Za-z0-9]"
                .into(),
        );
    }
    if let Some(address) = job.address {
        common.push(format!("--address={address}"));
    }
    let finish = vec![
        "--delay-updates".to_string(),
        "--delete".into(),
        "--delete-delay".into(),
        format!("--max-delete={}", g.max_delete),
    ];
    let paths = |mut argv: Vec<String>| {
        argv.push("--".into());
        argv.push(with_slash(job.src));
        argv.push(with_slash(&job.save.to_string_lossy()));
        argv
    };
    let mut out = Vec::new();
    if job.two_stage {
        let mut first = common.clone();
        first.extend(DEFAULT_OPTIONS1.split_whitespace().map(str::to_string));
        out.push(paths(first));
    } else if job.guarded {
        let mut first = common.clone();
        first.push("--delay-updates".into());
        out.push(paths(first));
    }
    let mut last = common;
    last.extend(finish);
    out.push(paths(last));
    out
}

fn with_slash(path: &str) -> String {
    if path.ends_with('/') {
        path.to_string()
    } else {
        format!("{path}/")
    }
}

/// Does this repository hold a Debian-style archive (`dists/` and `pool/`)?
/// The local mirror says so once synced; before that, ask the upstream.
pub fn looks_like_debian(save: &Path, src: &str, global: &Global, address: Option<&str>) -> bool {
    if save.join("dists").is_dir() && save.join("pool").is_dir() {
        return true;
    }
    let mut cmd = Command::new(rsync_program());
    cmd.arg("--list-only")
        .arg("--no-motd")
        .arg(format!("--contimeout={}", global.contimeout))
        .arg(format!("--timeout={}", global.timeout));
    if let Some(address) = address {
        cmd.arg(format!("--address={address}"));
    }
    cmd.arg("--")
        .arg(with_slash(src))
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    let Ok(out) = cmd.output() else {
        return false;
    };
    let listing = String::from_utf8_lossy(&out.stdout);
    let has = |name: &str| {
        listing
            .lines()
            .any(|l| l.starts_with('d') && l.split_whitespace().last() == Some(name))
    };
    has("dists") && has("pool")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_trees_get_two_stages_with_deletions_last() {
        let global = Global::default();
        let job = Job {
            src: "rsync://127.0.0.1:873/debian",
            save: Path::new("/srv/debian"),
            address: Some("127.0.0.2"),
            global: &global,
            two_stage: true,
            guarded: true,
        };
        let stages = stages(&job);
        assert_eq!(stages.len(), 2);
        assert!(stages[0].contains(&"--exclude=Packages*".to_string()));
        assert!(!stages[0].iter().any(|a| a.starts_with("--delete")));
        assert!(stages[1].contains(&"--max-delete=40000".to_string()));
        for stage in &stages {
            for safety in [
                "--safe-links",
                "--no-inc-recursive",
                "--timeout=600",
                "--contimeout=60",
            ] {
                assert!(stage.contains(&safety.to_string()), "{safety}");
            }
            assert!(stage.contains(&"--address=127.0.0.2".to_string()));
            assert_eq!(
                &stage[stage.len() - 3..],
                ["--", "rsync://127.0.0.1:873/debian/", "/srv/debian/"]
            );
        }
    }

    #[test]
    fn a_guarded_tree_gets_a_first_stage_that_deletes_nothing() {
        let global = Global::default();
        let mut job = Job {
            src: "rsync://127.0.0.1:873/arch",
            save: Path::new("/srv/arch"),
            address: None,
            global: &global,
            two_stage: false,
            guarded: false,
        };
        assert_eq!(stages(&job).len(), 1);
        job.guarded = true;
        let stages = stages(&job);
        assert_eq!(stages.len(), 2);
        assert!(!stages[0].iter().any(|a| a.starts_with("--delete")));
        assert!(stages[0].contains(&"--stats".to_string()));
        assert!(stages[1].contains(&"--delete-delay".to_string()));
    }

    #[test]
    fn exit_codes() {
        assert_eq!(classify(23, false), Outcome::Failed);
        assert_eq!(classify(23, true), Outcome::Ok);
        assert_eq!(classify(10, false), Outcome::Transient);
        assert_eq!(classify(25, false), Outcome::Failed);
    }
}
