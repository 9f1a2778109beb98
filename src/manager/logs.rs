//! Old logs go: `-cleanlog`, and automatically at every run.

use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Logs older than this are deleted.
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Delete files below `dir` last modified more than `max_age` ago, and folders
/// left empty by that. Returns how many files were deleted.
pub fn clean(dir: &Path, max_age: Duration) -> io::Result<usize> {
    let cutoff = SystemTime::now()
        .checked_sub(max_age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    clean_below(dir, cutoff, false)
}

fn clean_below(dir: &Path, cutoff: SystemTime, remove_if_empty: bool) -> io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut deleted = 0;
    for entry in entries.flatten() {
        let meta = entry.metadata()?;
        if meta.is_dir() {
            deleted += clean_below(&entry.path(), cutoff, true)?;
        } else if meta.modified()? < cutoff {
            std::fs::remove_file(entry.path())?;
            deleted += 1;
        }
    }
    if remove_if_empty && std::fs::read_dir(dir)?.next().is_none() {
        std::fs::remove_dir(dir)?;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_files_go() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("kali/old.log");
        let new = dir.path().join("new.log");
        std::fs::create_dir_all(old.parent().unwrap()).unwrap();
        std::fs::write(&old, "x").unwrap();
        std::fs::write(&new, "y").unwrap();
        let ten_days_ago = SystemTime::now() - Duration::from_secs(10 * 24 * 3600);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(ten_days_ago)
            .unwrap();
        assert_eq!(clean(dir.path(), MAX_AGE).unwrap(), 1);
        assert!(!old.exists() && !old.parent().unwrap().exists());
        assert!(new.exists());
    }
}
