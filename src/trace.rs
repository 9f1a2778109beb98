//! Trace files under `project/trace/`, in the format Debian's mirror checkers read.
//!
//! Every line after the first matches `^[\w -]+:`, and `Used ftpsync version:` is
//! purely numeric (`20180513`): checkers ignore a version like `20180513+nmu1`.
//! `Creator:` starts with `ftpsync 20180513` for tools that look for ftpsync and
//! names dsync in parentheses so a human can tell.
//!
//! They are files of ours inside the published tree, which the upstream fills:
//! every read and write goes through [`crate::beneath`], so a symlink the
//! upstream put at `project/trace` or at any trace name (`_hierarchy.new ->
//! ../../dists/stable/Release`) is never written or read through.

use std::io;
use std::path::Path;

use crate::beneath::Root;

use chrono::Utc;

/// The ftpsync release whose behaviour we reproduce.
pub const FTPSYNC_VERSION: &str = "20180513";
pub const TRACE_DIR: &str = "project/trace";
pub const HIERARCHY: &str = "project/trace/_hierarchy";
pub const TRACE_LIST: &str = "project/trace/_traces";

/// What a trace file reports about one sync.
#[derive(Debug, Clone, Default)]
pub struct TraceInfo {
    pub date_started: String,
    pub mirrorname: String,
    pub tracehost: String,
    pub about: MirrorInfo,
    pub arch_include: String,
    pub arch_exclude: String,
    /// `RSYNC_HOST`, or empty (written as `unknown`).
    pub upstream: String,
    pub transport: String,
    pub bytes_received: u64,
    pub stage1_secs: u64,
    pub stage2_secs: u64,
}

/// What the operator says about the mirror (ftpsync's `INFO_*` variables).
#[derive(Debug, Clone, Default)]
pub struct MirrorInfo {
    pub maintainer: String,
    pub sponsor: String,
    pub country: String,
    pub location: String,
    pub throughput: String,
    pub trigger: String,
}

/// `date -u` in the POSIX locale: `Mon Nov 23 08:55:54 UTC 2026`.
pub fn date_u() -> String {
    Utc::now().format("%a %b %e %H:%M:%S UTC %Y").to_string()
}

/// `date -u -R`: `Mon, 23 Nov 2026 08:55:54 +0000`.
pub fn date_rfc822() -> String {
    Utc::now().format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// The trace text for the mirror at `root`.
pub fn content(root: &Root, info: &TraceInfo) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: &str| {
        out.push_str(key);
        out.push_str(": ");
        out.push_str(value);
        out.push('\n');
    };
    let first = date_u();
    line("Date", &date_rfc822());
    line("Date-Started", &info.date_started);
    let master = Path::new(TRACE_DIR).join("master");
    if let Ok(Some(text)) = root.read(&master) {
        let serial = field_of(&String::from_utf8_lossy(&text), "Archive serial")
            .unwrap_or_else(|| "unknown".into());
        line("Archive serial", &serial);
    }
    line("Used ftpsync version", FTPSYNC_VERSION);
    let creator = format!(
        "ftpsync {FTPSYNC_VERSION} (dsync {})",
        env!("CARGO_PKG_VERSION")
    );
    line("Creator", &creator);
    line("Running on host", &info.tracehost);
    for (key, value) in [
        ("Maintainer", &info.about.maintainer),
        ("Sponsor", &info.about.sponsor),
        ("Country", &info.about.country),
        ("Location", &info.about.location),
        ("Throughput", &info.about.throughput),
        ("Trigger", &info.about.trigger),
    ] {
        if !value.is_empty() {
            line(key, value);
        }
    }
    let archs = architectures(root);
    if !archs.is_empty() {
        line("Architectures", &archs);
    }
    let config = if !info.arch_include.is_empty() {
        format!("INCLUDE {}", config_words(&info.arch_include))
    } else if !info.arch_exclude.is_empty() {
        format!("EXCLUDE {}", config_words(&info.arch_exclude))
    } else {
        "ALL".to_string()
    };
    line("Architectures-Configuration", &config);
    let upstream = if info.upstream.is_empty() {
        "unknown"
    } else {
        &info.upstream
    };
    line("Upstream-mirror", upstream);
    line("Rsync-Transport", &info.transport);
    if info.bytes_received > 0 {
        line(
            "Total bytes received in rsync",
            &info.bytes_received.to_string(),
        );
    }
    let total = info.stage1_secs + info.stage2_secs;
    line(
        "Total time spent in stage1 rsync",
        &info.stage1_secs.to_string(),
    );
    line(
        "Total time spent in stage2 rsync",
        &info.stage2_secs.to_string(),
    );
    line("Total time spent in rsync", &total.to_string());
    if let Some(rate) = info.bytes_received.checked_div(total) {
        line("Average rate", &format!("{rate} B/s"));
    }
    format!("{first}\n{out}")
}

/// Words sorted and de-duplicated, each followed by a space (as `sort -u | tr '\n' ' '`).
fn sorted_words(words: &str) -> String {
    sorted_lines(words.split_whitespace())
}

/// `tr ' ' '\n' <<< "$VALUE" | sort -u | tr '\n' ' '`, as ftpsync writes the
/// `ARCH_*` settings: split at single spaces, so doubled spaces give an empty
/// entry, which sorts first and shows as an extra space.
fn config_words(value: &str) -> String {
    sorted_lines(value.split(' '))
}

fn sorted_lines<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    let mut list: Vec<&str> = lines.collect();
    list.sort_unstable();
    list.dedup();
    list.iter().map(|w| format!("{w} ")).collect()
}

/// Architectures that have `Packages.*` (as `binary-ARCH`) or `Sources.*` (as
/// `source`) indices under `dists`, sorted, each followed by a space.
fn architectures(root: &Root) -> String {
    let mut found = Vec::new();
    let _ = root.walk(Path::new("dists"), &mut |path, _| {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let parent = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("");
        if name.starts_with("Packages.") {
            if let Some(arch) = parent.strip_prefix("binary-") {
                found.push(arch.to_string());
            }
        } else if name.starts_with("Sources.") && parent == "source" {
            found.push("source".to_string());
        }
    });
    sorted_words(&found.join(" "))
}

/// The value of `key` in a trace file, as ftpsync's `extract_trace_field`: the text
/// between `key: ` and the next `: `, whitespace squeezed.
pub fn field(path: &Path, key: &str) -> Option<String> {
    field_of(&std::fs::read_to_string(path).ok()?, key)
}

/// [`field`] of a trace's text.
pub fn field_of(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut parts = line.split(": ");
        if parts.next()? != key {
            return None;
        }
        let value = parts
            .next()?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        (!value.is_empty()).then_some(value)
    })
}

/// Trace files are world-readable, as ftpsync's (umask 022).
const MODE: u32 = 0o644;

/// Write the trace file `project/trace/NAME` of the mirror at `root`, then
/// `_hierarchy`, `_hierarchy.mirror` and `_traces`, each atomically and
/// beneath the root (see [`Root::write_atomic`]). A `project/trace` that is a
/// symlink, or a symlink on the way to it, is an error: nothing is written.
pub fn write_all(root: &Root, name: &str, info: &TraceInfo) -> io::Result<()> {
    let dir = Path::new(TRACE_DIR);
    if !root.is_dir(dir) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}/{TRACE_DIR} is not a folder (a symlink, or a symlink on the way to it):                  trace files are never written through symlinks; make it a real folder",
                root.path().display()
            ),
        ));
    }
    root.write_atomic(&dir.join(name), content(root, info).as_bytes(), MODE)?;
    let mirror_copy = format!("{HIERARCHY}.mirror");
    let mut text = match root.read(Path::new(&mirror_copy))? {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => String::new(),
    };
    let upstream = if info.upstream.is_empty() {
        "unknown"
    } else {
        &info.upstream
    };
    text.push_str(&format!(
        "{name} {} {} {upstream}\n",
        info.mirrorname, info.tracehost
    ));
    root.write_atomic(Path::new(HIERARCHY), text.as_bytes(), MODE)?;
    root.write_atomic(Path::new(&mirror_copy), text.as_bytes(), MODE)?;
    let list = trace_list(root)?;
    root.write_atomic(Path::new(TRACE_LIST), list.as_bytes(), MODE)
}

/// Trace files below `project/trace` whose names do not start with `_` (nor
/// `.` at the top), oldest first, as `ls -1rt $(find * -type f ! -name '_*')`.
fn trace_list(root: &Root) -> io::Result<String> {
    let mut files = Vec::new();
    root.walk(Path::new(TRACE_DIR), &mut |rel, st| {
        let hidden_at_top = rel
            .components()
            .next()
            .is_some_and(|c| c.as_os_str().as_encoded_bytes().starts_with(b"."));
        let base = rel
            .file_name()
            .map(|n| n.as_encoded_bytes())
            .unwrap_or_default();
        let is_file = rustix::fs::FileType::from_raw_mode(st.st_mode as _)
            == rustix::fs::FileType::RegularFile;
        if is_file && !hidden_at_top && !base.starts_with(b"_") {
            files.push((
                (st.st_mtime, st.st_mtime_nsec),
                rel.to_string_lossy().into_owned(),
            ));
        }
    })?;
    // ls -t: newest first, ties by name; -r reverses both.
    files.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(&a.1)));
    Ok(files.into_iter().map(|(_, name)| name + "\n").collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_after_the_first_is_checker_friendly() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dists/x/main/binary-amd64")).unwrap();
        std::fs::write(dir.path().join("dists/x/main/binary-amd64/Packages.gz"), "").unwrap();
        let info = TraceInfo {
            mirrorname: "m.example.org".into(),
            about: MirrorInfo {
                country: "DE".into(),
                ..MirrorInfo::default()
            },
            arch_exclude: "source  i386 i386".into(),
            stage1_secs: 2,
            stage2_secs: 1,
            bytes_received: 300,
            ..TraceInfo::default()
        };
        let text = content(&Root::open(dir.path()).unwrap(), &info);
        let re = regex::Regex::new(r"^[\w -]+:").unwrap();
        for line in text.lines().skip(1) {
            assert!(re.is_match(line), "{line:?}");
        }
        assert!(text.contains("\nUsed ftpsync version: 20180513\n"));
        assert!(text.contains("\nArchitectures: amd64 \n"));
        assert!(text.contains("\nArchitectures-Configuration: EXCLUDE  i386 source \n"));
        assert!(text.contains("\nAverage rate: 100 B/s\n"));
        assert!(text.contains("\nUpstream-mirror: unknown\n"));
    }
}
