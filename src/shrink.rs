//! The shrink guard: an upstream that suddenly lists far fewer files than the
//! mirror holds is broken (an unmounted disk, a half-deleted tree), not a
//! smaller archive. Deleting to match it would empty the mirror, so such a
//! sync is refused before anything is deleted and before a trace is written.
//!
//! `max-delete` bounds deletions too, but only counts them while rsync is
//! already deleting; this check compares whole counts before the deleting
//! stage starts. Both modes count regular files only.

use std::io;
use std::path::Path;

/// The refusal, with what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "upstream lists only {upstream} regular files, fewer than {percent}% of the {local} in {save}: refusing to delete anything (upstream broken or emptied?). If it really shrank, set {knob} for one run"
)]
pub struct Shrunk {
    pub upstream: u64,
    pub local: u64,
    pub percent: String,
    pub save: String,
    /// The setting that turns the guard off (`min-upstream-ratio=0 in xync.conf`).
    pub knob: String,
}

/// Refuse when `upstream < ratio * local`. A ratio of 0 or an empty mirror
/// never refuses.
pub fn check(upstream: u64, local: u64, ratio: f64, save: &Path, knob: &str) -> Result<(), Shrunk> {
    if ratio <= 0.0 || local == 0 || (upstream as f64) >= ratio * local as f64 {
        return Ok(());
    }
    Err(Shrunk {
        upstream,
        local,
        percent: format!("{}", (ratio * 100.0 * 100.0).round() / 100.0),
        save: save.display().to_string(),
        knob: knob.to_string(),
    })
}

/// The mirror's count the guard compares with, or 0 (the guard never
/// refuses then) when `ratio` turns it off: no walk is spent on it.
pub fn mirror_files(root: &Path, ratio: f64) -> io::Result<u64> {
    if ratio <= 0.0 {
        return Ok(0);
    }
    count_local_files(root)
}

/// Regular files beneath `root`, symlinks not followed; rsync's `.~tmp~`
/// folders are not counted. A missing `root` holds none.
fn count_local_files(root: &Path) -> io::Result<u64> {
    let mut count = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound && dir == root => return Ok(0),
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
        };
        for entry in entries {
            let entry = entry?;
            // The directory entry's type: no stat, and a symlink stays a symlink.
            let kind = entry.file_type()?;
            if kind.is_dir() && entry.file_name() != ".~tmp~" {
                pending.push(entry.path());
            } else if kind.is_file() {
                count += 1;
            }
        }
    }
    Ok(count)
}

/// The regular-file count of rsync's `--stats` line `Number of files: 1,234
/// (reg: 1,000, dir: 200, link: 34)`, also as `--log-file` writes it (after
/// `2026/11/23 12:00:00 [123] `); `None` for any other line. Callers take
/// the last such line: rsync prints its stats after every file name, so a
/// file named like a stats line cannot stand in for them.
pub fn rsync_stats_regular_files(line: &str) -> Option<u64> {
    let line = line.trim();
    let line = strip_log_file_prefix(line).unwrap_or(line);
    let rest = line.strip_prefix("Number of files:")?;
    let Some((_, after)) = rest.split_once("reg:") else {
        // `Number of files: 1 (dir: 1)`: no regular file at all.
        return Some(0);
    };
    let digits: String = after
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == '.')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `2026/11/23 12:00:00 [123] rest` → `rest`.
fn strip_log_file_prefix(line: &str) -> Option<&str> {
    let (stamp, rest) = line.split_at_checked(20)?;
    let date_ok = stamp.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'/',
        10 | 19 => b == b' ',
        13 | 16 => b == b':',
        _ => b.is_ascii_digit(),
    });
    let (pid, rest) = rest.strip_prefix('[')?.split_once("] ")?;
    (date_ok && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_only_below_the_ratio() {
        let save = Path::new("/srv/m");
        assert!(check(50, 100, 0.5, save, "k").is_ok());
        assert!(check(0, 0, 0.5, save, "k").is_ok());
        assert!(check(0, 100, 0.0, save, "k").is_ok());
        let e = check(49, 100, 0.5, save, "min-upstream-ratio=0 in xync.conf").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("only 49 regular files"), "{text}");
        assert!(text.contains("50% of the 100 in /srv/m"), "{text}");
        assert!(
            text.contains("set min-upstream-ratio=0 in xync.conf for one run"),
            "{text}"
        );
    }

    #[test]
    fn reads_rsync_stats() {
        let f = rsync_stats_regular_files;
        assert_eq!(
            f("Number of files: 1234 (reg: 1000, dir: 200, link: 34)"),
            Some(1000)
        );
        assert_eq!(
            f("Number of files: 1,234 (reg: 1,000, dir: 234)"),
            Some(1000)
        );
        assert_eq!(f("Number of files: 1 (dir: 1)"), Some(0));
        assert_eq!(f("Number of regular files transferred: 3"), None);
        assert_eq!(f("sent 10 bytes"), None);
        assert_eq!(
            f("2026/11/23 12:59:27 [30928] Number of files: 5 (reg: 3, dir: 2)"),
            Some(3)
        );
        // An itemized file name is not a stats line.
        assert_eq!(
            f("2026/11/23 12:59:27 [30928] >f+++++++++ Number of files: 9 (reg: 9)"),
            None
        );
    }

    #[test]
    fn counts_regular_files_but_not_links_or_rsync_temp() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join("a/.~tmp~")).unwrap();
        std::fs::write(root.join("a/b/one"), "1").unwrap();
        std::fs::write(root.join("two"), "2").unwrap();
        std::fs::write(root.join("a/.~tmp~/pending"), "3").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        assert_eq!(count_local_files(root).unwrap(), 2);
        assert_eq!(count_local_files(&root.join("missing")).unwrap(), 0);
    }
}
