//! ftpsync-style log files: one line per event, and `savelog` rotation.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An append-only log in ftpsync's format:
/// `Nov 23 08:55:54 host PROGRAM[PID]: message`.
#[derive(Debug)]
pub struct Log {
    path: PathBuf,
    file: File,
    prefix_host: String,
    program: String,
    pid: u32,
}

impl Log {
    pub fn open(path: &Path, program: &str) -> io::Result<Log> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Log {
            path: path.to_path_buf(),
            file,
            prefix_host: crate::host::short(),
            program: program.to_string(),
            pid: std::process::id(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write one log line. A log that cannot be written must not stop a sync.
    pub fn line(&self, message: &str) {
        let line = render(&self.prefix_host, &self.program, self.pid, message);
        let _ = (&self.file).write_all(line.as_bytes());
    }

    /// Another log file written under this log's program name (runmirrors'
    /// log per pushed mirror).
    pub fn sibling(&self, path: &Path) -> io::Result<Log> {
        Log::open(path, &self.program)
    }

    /// A handle for a child's stdout/stderr, which ftpsync sends into its log.
    pub fn child_output(&self) -> io::Result<File> {
        self.file.try_clone()
    }
}

/// One line as ftpsync's `msg` writes it, for output that is not a log file
/// (ftpsync-cron's messages on standard output).
pub fn stamped(program: &str, message: &str) -> String {
    render(&crate::host::short(), program, std::process::id(), message)
}

/// `Nov 23 08:55:54 host PROGRAM[PID]: message` and a newline.
fn render(host: &str, program: &str, pid: u32, message: &str) -> String {
    let stamp = chrono::Local::now().format("%b %d %H:%M:%S");
    format!("{stamp} {host} {program}[{pid}]: {message}\n")
}

/// Rotate `path` as ftpsync's `savelog` does: `path.N-1` → `path.N` down to
/// `path` → `path.0`, keeping `count + 1` old files.
pub fn savelog(path: &Path, count: u32) -> io::Result<()> {
    let numbered = |n: u32| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    for n in (1..=count).rev() {
        let prev = numbered(n - 1);
        if prev.exists() {
            std::fs::rename(&prev, numbered(n))?;
        }
    }
    if path.exists() {
        std::fs::rename(path, numbered(0))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::savelog;

    #[test]
    fn savelog_shifts_and_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        for round in 0..5 {
            std::fs::write(&log, format!("{round}")).unwrap();
            savelog(&log, 2).unwrap();
        }
        assert!(!log.exists());
        let read = |n: u32| std::fs::read_to_string(dir.path().join(format!("x.log.{n}"))).unwrap();
        assert_eq!(read(0), "4");
        assert_eq!(read(1), "3");
        assert_eq!(read(2), "2");
        assert!(!dir.path().join("x.log.3").exists());
    }
}
