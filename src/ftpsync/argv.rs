//! The rsync command line, word for word as ftpsync builds it.
//!
//! ftpsync expands `RSYNC_EXTRA`, `RSYNC_OPTIONS`, `EXCLUDE`, `RSYNC_OPTIONS1/2` and
//! the `ARCH_*` lists unquoted, so the shell splits them at whitespace (quotes
//! inside the values are *not* honoured). We split the same way, so a pasted config
//! yields the same argv; unlike the shell we never glob the words.

use std::path::Path;

use super::settings::{DEFAULT_OPTIONS, DEFAULT_OPTIONS_OLD, Settings, Transport};

/// Files in the mirror that belong to this mirror, not the upstream: never taken
/// from upstream and never deleted.
pub fn own_files(mirrorname: &str) -> Vec<String> {
    vec![
        format!("Archive-Update-in-Progress-{mirrorname}"),
        format!("Archive-Update-Required-{mirrorname}"),
        format!("project/trace/{mirrorname}"),
        format!("project/trace/{mirrorname}-stage1"),
        "project/trace/_hierarchy".to_string(),
        "project/trace/_traces".to_string(),
    ]
}

fn words(value: &str) -> impl Iterator<Item = String> + '_ {
    value.split_whitespace().map(str::to_string)
}

/// The rsync command split into program and leading arguments (`RSYNC`).
pub fn rsync_command(settings: &Settings) -> Vec<String> {
    words(&settings.rsync).collect()
}

/// Everything up to and including source and destination; the stage options
/// follow (ftpsync appends them after the paths, which rsync accepts).
pub fn base(settings: &Settings, protocol: Option<u32>) -> Vec<String> {
    let mut argv = rsync_command(settings);
    argv.push("--quiet".into());
    argv.push("--log-file".into());
    argv.push(settings.log_rsync.to_string_lossy().into_owned());
    for file in own_files(&settings.mirrorname) {
        argv.push(format!("--filter=exclude_/{file}"));
        argv.push(format!("--filter=protect_/{file}"));
    }
    for rule in [
        "include_/project/",
        "protect_/project/",
        "include_/project/trace/",
        "protect_/project/trace/",
        "include_/project/trace/*",
    ] {
        argv.push(format!("--filter={rule}"));
    }
    argv.extend(words(&settings.rsync_extra));
    argv.push(format!("--bwlimit={}", settings.rsync_bw));
    let default_options = if protocol.unwrap_or(0) >= 31 {
        DEFAULT_OPTIONS
    } else {
        DEFAULT_OPTIONS_OLD
    };
    argv.extend(words(
        settings.rsync_options.as_deref().unwrap_or(default_options),
    ));
    argv.extend(words(&settings.exclude));
    // rsync's --delay-updates directory is not world-readable upstream.
    argv.push("--exclude=.~tmp~/".into());
    argv.extend(transport(settings));
    argv.extend(arch_filters(&settings.arch_include, &settings.arch_exclude));
    argv.push(settings.rsync_source.clone());
    argv.push(settings.to.clone());
    argv
}

/// How rsync reaches the upstream: nothing for the daemon protocol, `-e ssh`,
/// or `-e rsync-ssl-tunnel` (from `BINDIR` when set).
pub fn transport(settings: &Settings) -> Vec<String> {
    match settings.transport {
        Transport::Daemon => Vec::new(),
        Transport::Ssh => vec!["-e".to_string(), "ssh".to_string()],
        Transport::Ssl => {
            let tunnel = match settings.bindir.as_str() {
                "" => "rsync-ssl-tunnel".to_string(),
                dir => format!("{dir}/rsync-ssl-tunnel"),
            };
            vec!["-e".to_string(), tunnel]
        }
    }
}

/// The full argv of one stage.
pub fn stage(base: &[String], stage_options: &str) -> Vec<String> {
    base.iter().cloned().chain(words(stage_options)).collect()
}

/// Options rsync accepts only towards a daemon; a local run refuses them.
const DAEMON_ONLY: &[&str] = &["--contimeout", "--password-file", "--port"];

/// The shrink guard's count of the mirror: stage one's own argv (`base` and
/// `stage_options`) with the mirror `to` as the source and an empty `scratch`
/// folder as the destination, as a dry run whose `--stats` go to `log_file`.
/// The same filters (`EXCLUDE`, `ARCH_*`, the stage options) then apply to
/// both counts, so an operator who narrows `ARCH_INCLUDE` does not trip it.
pub fn local_count(
    base: &[String],
    stage_options: &str,
    to: &str,
    log_file: &Path,
    scratch: &Path,
) -> Vec<String> {
    let mut argv = base.to_vec();
    if let [.., source, dest] = argv.as_mut_slice() {
        *source = format!("{}/", to.trim_end_matches('/'));
        *dest = scratch.to_string_lossy().into_owned();
    }
    argv.extend(words(stage_options));
    let mut out = Vec::with_capacity(argv.len() + 2);
    let mut words = argv.into_iter();
    while let Some(word) = words.next() {
        let name = word.split('=').next().unwrap_or_default();
        if DAEMON_ONLY.contains(&name) || name == "--log-file" {
            if !word.contains('=') {
                words.next();
            }
            continue;
        }
        out.push(word);
    }
    out.push("--dry-run".into());
    out.push(format!("--log-file={}", log_file.display()));
    // No line per file: only the stats are read.
    out.push("--log-file-format=".into());
    out
}

/// `ARCH_EXCLUDE` / `ARCH_INCLUDE` as rsync filter rules.
pub fn arch_filters(include: &str, exclude: &str) -> Vec<String> {
    let mut rules = Vec::new();
    if !exclude.is_empty() {
        for arch in exclude.split_whitespace() {
            arch_rules(&mut rules, "exclude", arch);
        }
        arch_rules(&mut rules, "include", "*");
        arch_rules(&mut rules, "include", "source");
    } else if !include.is_empty() {
        let mut binary = false;
        for arch in include.split_whitespace() {
            arch_rules(&mut rules, "include", arch);
            binary |= arch != "source";
        }
        if binary {
            arch_rules(&mut rules, "include", "all");
        }
        arch_rules(&mut rules, "exclude", "*");
        arch_rules(&mut rules, "exclude", "source");
    }
    rules
}

fn arch_rules(rules: &mut Vec<String>, verb: &str, arch: &str) {
    let patterns: Vec<String> = if arch == "source" {
        vec![
            "/dists/**/source/".into(),
            "/pool/**/*.tar.*".into(),
            "/pool/**/*.diff.*".into(),
            "/pool/**/*.dsc".into(),
        ]
    } else {
        vec![
            format!("/dists/**/binary-{arch}/"),
            format!("/dists/**/installer-{arch}/"),
            format!("/dists/**/Contents-{arch}.gz"),
            format!("/dists/**/Contents-udeb-{arch}.gz"),
            format!("/dists/**/Contents-{arch}.diff/"),
            format!("/indices/**/arch-{arch}.files"),
            format!("/indices/**/arch-{arch}.list.gz"),
            format!("/pool/**/*_{arch}.deb"),
            format!("/pool/**/*_{arch}.udeb"),
            format!("/pool/**/*_{arch}.changes"),
        ]
    };
    rules.extend(patterns.into_iter().map(|p| format!("--filter={verb}_{p}")));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_count_is_stage_one_turned_towards_the_mirror() {
        let base: Vec<String> = [
            "rsync",
            "--quiet",
            "--log-file",
            "/log/rsync-ftpsync.log",
            "--port=8873",
            "--contimeout",
            "10",
            "--password-file=/etc/pw",
            "--stats",
            "--filter=exclude_/dists/**/binary-arm64/",
            "up::debian",
            "/srv/mirror/",
        ]
        .map(String::from)
        .to_vec();
        let argv = local_count(
            &base,
            "--exclude=Packages*",
            "/srv/mirror/",
            Path::new("/tmp/c/stats.log"),
            Path::new("/tmp/c/empty"),
        );
        assert_eq!(
            argv,
            [
                "rsync",
                "--quiet",
                "--stats",
                "--filter=exclude_/dists/**/binary-arm64/",
                "/srv/mirror/",
                "/tmp/c/empty",
                "--exclude=Packages*",
                "--dry-run",
                "--log-file=/tmp/c/stats.log",
                "--log-file-format=",
            ]
        );
    }
}
