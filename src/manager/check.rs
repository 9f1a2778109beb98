//! `dsync -test`: every problem of a dsync home, each with where it is and what to do.
//!
//! Reads `xync.conf`, the operator's upstream catalog and every repository file; checks
//! that each mirror folder exists and is writable by this user, that no two repositories
//! share (or nest) a folder, that every repository has an upstream and, when asked,
//! that each rsync upstream answers (`rsync --list-only`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::diag::Diagnostic;
use super::home::{Home, user_name};
use super::repo::Repo;
use super::upstream::{self, Source};
use super::xync::{self, key_line};
use crate::access::writable;

/// The rsync general mode runs must not be one a hostile upstream can take
/// over (src/rsync/gate.rs).
fn check_rsync(home: &Home, global: &xync::Global, diags: &mut Vec<Diagnostic>) {
    let verdict = crate::rsync::gate::check_program(
        &super::general::rsync_program(),
        global.allow_vulnerable_rsync,
        "allow-vulnerable-rsync=true in xync.conf",
    );
    let conf = home.xync_conf();
    match verdict {
        Err(refused) => diags.push(Diagnostic::error(
            &conf,
            0,
            format!("{}: {}", refused.what, refused.why),
            format!(
                "install rsync {} or newer (or your distribution's fixed package): a hostile upstream could take this one over (CVE-2024-12084..12088); to run it anyway set {}",
                crate::rsync::gate::FIXED,
                refused.override_hint
            ),
        )),
        Ok(accepted @ crate::rsync::gate::Accepted::Overridden(_)) => {
            diags.push(Diagnostic::warning(
                &conf,
                key_line(&std::fs::read_to_string(&conf).unwrap_or_default(), "allow-vulnerable-rsync"),
                accepted.note().unwrap_or_default(),
                format!("install rsync {} or newer, then delete allow-vulnerable-rsync", crate::rsync::gate::FIXED),
            ))
        }
        Ok(_) => {}
    }
}

/// How many upstreams are probed at the same time.
const PARALLEL_PROBES: usize = 8;

/// Everything `dsync -test` reports; with `reach`, each rsync upstream is also asked
/// for its listing (`rsync --list-only --contimeout=10 --timeout=20 -- URL`).
pub fn check_all(home: &Home, reach: bool) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    if !home.root.is_dir() {
        diags.push(Diagnostic::error(
            &home.root,
            0,
            "the dsync home folder does not exist",
            format!(
                "run dsync once to create it, or: mkdir -p {}",
                home.repos_dir().display()
            ),
        ));
        return diags;
    }
    let (global, mut found) = xync::load(&home.xync_conf());
    diags.append(&mut found);
    check_global_folders(home, &global, &mut diags);
    diags.append(&mut super::host_checks::ipadd(home, &global));
    diags.append(&mut super::host_checks::plugins(home));
    diags.append(&mut super::dtp_host::check(home));
    check_rsync(home, &global, &mut diags);
    let (_, mut found) = upstream::load_catalog(home);
    diags.append(&mut found);
    let (repos, mut found) = super::repo_files::load(home);
    let had_repo_files = !found.is_empty();
    diags.append(&mut found);
    if repos.is_empty() && !had_repo_files {
        diags.push(Diagnostic::warning(
            &home.root,
            0,
            format!(
                "no repositories are configured (dsync reads repositories from {})",
                super::repo_files::places(home)
            ),
            format!(
                "write {}/NAME.conf with two lines, repo=NAME and save=/srv/mirrors/NAME",
                home.root.display()
            ),
        ));
    }

    let mut probes: Vec<Probe> = Vec::new();
    for (i, repo) in repos.iter().enumerate() {
        let text = std::fs::read_to_string(&repo.file).unwrap_or_default();
        let save_line = match key_line(&text, "save") {
            0 => repo
                .ftpsync
                .as_ref()
                .and_then(|b| b.assignment_line("TO"))
                .unwrap_or(0),
            n => n,
        };
        check_save(repo, save_line, &mut diags);
        check_overlap(repo, save_line, &repos[..i], &mut diags);
        if repo.intradd.is_some() && !global.intra {
            let line = key_line(&text, "intradd").max(key_line(&text, "intraadd"));
            diags.push(Diagnostic::warning(
                &repo.file,
                line,
                "intradd= is not used: xync.conf does not set intra=true",
                format!(
                    "add intra=true to {}, or delete the intradd= line",
                    home.xync_conf().display()
                ),
            ));
        }
        match upstream::resolve(repo, &global, home) {
            Err(d) => diags.push(d),
            Ok(Source::Rsync(urls)) | Ok(Source::Ftpsync(urls)) if !urls.is_empty() => {
                let line = key_line(&text, "src");
                for url in urls {
                    probes.push(Probe::new(i, url, line));
                }
            }
            Ok(Source::Ftpsync(_)) => probes.extend(ftpsync_probe(i, repo)),
            Ok(Source::Rsync(_)) => {}
            Ok(Source::Dtp(_)) => {}
        }
    }

    if reach {
        let results = run_probes(&probes);
        for (probe, result) in probes.iter().zip(&results) {
            let Err(why) = result else { continue };
            let repo = &repos[probe.repo];
            let another_works = probes
                .iter()
                .zip(&results)
                .any(|(p, r)| p.repo == probe.repo && r.is_ok());
            let message = format!(
                "upstream {} of repository {} cannot be reached: {why}",
                probe.target, repo.name
            );
            let fix = format!(
                "check the host and port, that this machine may connect to it, and the module name (`rsync --list-only {}` lists the modules the host offers); or give another upstream: src= in {}, or a line in {}",
                host_root(&probe.target),
                repo.file.display(),
                home.catalog().display()
            );
            diags.push(if another_works {
                Diagnostic::warning(&repo.file, probe.line, message, fix)
            } else {
                Diagnostic::error(&repo.file, probe.line, message, fix)
            });
        }
    }
    xync::make_visible(&mut diags);
    diags
}

/// `dsync -test`'s whole answer: what each ftpsync setup of this machine would
/// do (text), then every problem of the home and of those setups.
pub fn test(home: &Home, reach: bool) -> (String, Vec<Diagnostic>) {
    let mut diags = check_all(home, reach);
    let (plans, mut more) = super::ftpsync_check::check(home, reach, &diags);
    diags.append(&mut more);
    (plans, diags)
}

/// `rsync://HOST[:PORT]/` or `HOST::` for an upstream: what lists its modules.
fn host_root(target: &str) -> String {
    if let Some(rest) = target.strip_prefix("rsync://") {
        let authority = rest.split('/').next().unwrap_or(rest);
        format!("rsync://{authority}/")
    } else if let Some((host, _)) = target.split_once("::") {
        format!("{host}::")
    } else {
        target.to_string()
    }
}

/// All diagnostics, one after the other, each with its fix.
pub fn render(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("{d}\n")).collect()
}

/// `3 errors, 1 warning in /home/x/dxync` (or `no problems in …`).
pub fn summary(diags: &[Diagnostic], home: &Home) -> String {
    format!("{} in {}", crate::diag::counts(diags), home.root.display())
}

fn check_global_folders(home: &Home, global: &xync::Global, diags: &mut Vec<Diagnostic>) {
    let conf = home.xync_conf();
    let text = std::fs::read_to_string(&conf).unwrap_or_default();
    let mut folders = vec![(home.logs_dir(), conf.clone(), 0, "log folder")];
    if let Some(status) = &global.status {
        folders.push((
            status.clone(),
            conf.clone(),
            key_line(&text, "status"),
            "status folder",
        ));
    }
    for (dir, file, line, what) in folders {
        match std::fs::metadata(&dir) {
            Err(_) => diags.push(Diagnostic::warning(
                file,
                line,
                format!("the {what} {} does not exist", dir.display()),
                format!("mkdir -p {}", dir.display()),
            )),
            Ok(meta) if !meta.is_dir() => diags.push(Diagnostic::error(
                file,
                line,
                format!("the {what} {} is not a folder", dir.display()),
                format!(
                    "move it away and create the folder: mv {0} {0}.old && mkdir -p {0}",
                    dir.display()
                ),
            )),
            Ok(meta) => {
                if !writable(&dir) {
                    diags.push(not_writable(&file, line, what, &dir, &meta));
                }
            }
        }
    }
}

fn check_save(repo: &Repo, line: usize, diags: &mut Vec<Diagnostic>) {
    let save = &repo.save;
    match std::fs::metadata(save) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => diags.push(Diagnostic::error(
            &repo.file,
            line,
            format!("the mirror folder {} does not exist", save.display()),
            format!("mkdir -p {}", save.display()),
        )),
        Err(e) => diags.push(Diagnostic::error(
            &repo.file,
            line,
            format!("the mirror folder {} cannot be read: {e}", save.display()),
            format!(
                "make every folder above it searchable by {}",
                user_name(current_uid())
            ),
        )),
        Ok(meta) if !meta.is_dir() => diags.push(Diagnostic::error(
            &repo.file,
            line,
            format!("the mirror folder {} is not a folder", save.display()),
            format!(
                "point save= at a folder, or: mv {0} {0}.old && mkdir -p {0}",
                save.display()
            ),
        )),
        Ok(meta) => {
            if !writable(save) {
                diags.push(not_writable(&repo.file, line, "mirror folder", save, &meta));
            }
        }
    }
}

fn check_overlap(repo: &Repo, line: usize, earlier: &[Repo], diags: &mut Vec<Diagnostic>) {
    for other in earlier {
        let (a, b) = (&repo.save, &other.save);
        let (message, outer) = if a == b {
            (
                format!(
                    "repository {} uses the same mirror folder {} as repository {} ({})",
                    repo.name,
                    a.display(),
                    other.name,
                    other.file.display()
                ),
                b,
            )
        } else if a.starts_with(b) || b.starts_with(a) {
            let (inner, outer) = if a.starts_with(b) { (a, b) } else { (b, a) };
            (
                format!(
                    "the mirror folder {} of repository {} and {} of repository {} ({}) are inside one another: syncing {} would delete {}",
                    a.display(),
                    repo.name,
                    b.display(),
                    other.name,
                    other.file.display(),
                    outer.display(),
                    inner.display()
                ),
                outer,
            )
        } else {
            continue;
        };
        let parent = outer.parent().unwrap_or(Path::new("/srv/mirrors"));
        let suggestion = parent.join(&repo.name);
        let suggestion =
            if suggestion == *a || suggestion.starts_with(b) || b.starts_with(&suggestion) {
                PathBuf::from("/srv/mirrors").join(&repo.name)
            } else {
                suggestion
            };
        diags.push(Diagnostic::error(
            &repo.file,
            line,
            message,
            format!(
                "give each repository a folder of its own, e.g. save={} in {}",
                suggestion.display(),
                repo.file.display()
            ),
        ));
    }
}

fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

fn not_writable(
    file: &Path,
    line: usize,
    what: &str,
    dir: &Path,
    meta: &std::fs::Metadata,
) -> Diagnostic {
    use std::os::unix::fs::MetadataExt;
    let me = user_name(current_uid());
    let owner = user_name(meta.uid());
    Diagnostic::error(
        file,
        line,
        format!(
            "the {what} {} is not writable by {me} (it belongs to {owner}, mode {:o})",
            dir.display(),
            meta.mode() & 0o7777
        ),
        format!(
            "as root: chown -R {me} {}  (or run dsync as {owner})",
            dir.display()
        ),
    )
}

/// One upstream to ask for its listing.
struct Probe {
    repo: usize,
    target: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    line: usize,
}

impl Probe {
    fn new(repo: usize, target: String, line: usize) -> Probe {
        Probe {
            repo,
            target,
            args: Vec::new(),
            env: Vec::new(),
            line,
        }
    }
}

/// The upstream an ftpsync block names, as ftpsync's stage-one rsync would reach it.
/// `None` for transports over ssh or TLS, which this check does not set up.
fn ftpsync_probe(index: usize, repo: &Repo) -> Option<Probe> {
    let block = repo.ftpsync.as_ref()?;
    let vars = block.eval(&repo.file).ok()?;
    let get = |name: &str| vars.get(name).filter(|v| !v.is_empty());
    let transport = get("RSYNC_TRANSPORT").unwrap_or(if get("RSYNC_SSL") == Some("true") {
        "ssl"
    } else {
        "undefined"
    });
    if transport != "undefined" {
        return None;
    }
    // The trailing `/` lists the module's contents rather than its name.
    let target = format!("{}/", block.pasted_upstream(&vars)?.trim_end_matches('/'));
    let line = block
        .assignment_line("RSYNC_SOURCE")
        .or(block.assignment_line("RSYNC_HOST"));
    let mut probe = Probe::new(index, target, line.unwrap_or(block.first_line - 1));
    if let Some(extra) = get("RSYNC_EXTRA") {
        let words = shell_words::split(extra).unwrap_or_default();
        probe.args = words
            .into_iter()
            .filter(|w| w.starts_with("--port="))
            .collect();
    }
    if let Some(password) = get("RSYNC_PASSWORD") {
        probe.env.push(("RSYNC_PASSWORD".into(), password.into()));
    }
    Some(probe)
}

/// Ask every upstream (each distinct one once, several at a time).
fn run_probes(probes: &[Probe]) -> Vec<Result<(), String>> {
    let mut results: Vec<Option<Result<(), String>>> = vec![None; probes.len()];
    let distinct: Vec<usize> = (0..probes.len())
        .filter(|&i| {
            !probes[..i]
                .iter()
                .any(|p| p.target == probes[i].target && p.args == probes[i].args)
        })
        .collect();
    for chunk in distinct.chunks(PARALLEL_PROBES) {
        let answers: Vec<Result<(), String>> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|&i| s.spawn(move || probe(&probes[i])))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("the probe panicked".into()))
                })
                .collect()
        });
        for (&i, answer) in chunk.iter().zip(answers) {
            results[i] = Some(answer);
        }
    }
    (0..probes.len())
        .map(|i| {
            let first = (0..=i)
                .find(|&j| probes[j].target == probes[i].target && probes[j].args == probes[i].args)
                .unwrap_or(i);
            results[first].clone().unwrap_or(Ok(()))
        })
        .collect()
}

/// `rsync --list-only --contimeout=10 --timeout=20 [--port=N] -- TARGET`.
fn probe(p: &Probe) -> Result<(), String> {
    let mut cmd = Command::new("rsync");
    cmd.args(["--list-only", "--contimeout=10", "--timeout=20"])
        .args(&p.args)
        .arg("--")
        .arg(&p.target)
        .envs(p.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    crate::rsync::run_explained(&mut cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries() {
        let home = Home {
            root: PathBuf::from("/home/x/dxync"),
        };
        assert_eq!(summary(&[], &home), "no problems in /home/x/dxync");
        let e = Diagnostic::error("/f", 1, "bad", "fix it");
        let w = Diagnostic::warning("/f", 2, "odd", "");
        let all = [e.clone(), e.clone(), e.clone(), w.clone()];
        assert_eq!(summary(&all, &home), "3 errors, 1 warning in /home/x/dxync");
        assert_eq!(
            summary(&[w.clone(), w], &home),
            "0 errors, 2 warnings in /home/x/dxync"
        );
        assert_eq!(render(&[e]), "/f:1: error: bad\n    fix: fix it\n");
    }

    #[test]
    fn missing_home_is_one_error() {
        let home = Home {
            root: PathBuf::from("/nonexistent/dsync-home"),
        };
        let d = check_all(&home, false);
        assert_eq!(d.len(), 1);
        assert!(d[0].fix.contains("mkdir -p /nonexistent/dsync-home/repos"));
    }
}
