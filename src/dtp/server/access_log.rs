//! The access log (dsync's `HOME/logs/dtp-access.log`): one line per request, and per refused
//! connection: time, client address, method, target as sent, status, body
//! bytes sent, duration; a batch (protocol 1.1) adds how many files it named.
//!
//! ```text
//! 2025-11-23T08:55:54.120+09:00 192.0.2.7 GET "/debian/dists/Release" 200 1234 0.004s
//! 2025-11-23T08:55:54.300+09:00 192.0.2.7 POST "/debian/data.dsync" 200 81234 0.020s files=40
//! ```
//! `-` stands for a method or target never read (a connection refused before
//! its request arrived, a request line that never ended).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rustix::fs::{AtFlags, Mode, OFlags};

/// The log file, and its folder held open: a service that dropped root
/// after opening both (in root's home, closed to its account) may still
/// look in that folder, so [`AccessLog::reopen`] tells a rotated log from
/// one it merely cannot reach by its path.
#[derive(Debug)]
pub struct AccessLog {
    path: PathBuf,
    dir: Option<OwnedFd>,
    name: OsString,
    file: Mutex<File>,
}

/// One line.
#[derive(Debug, Clone)]
pub struct Record {
    pub client: IpAddr,
    pub method: String,
    pub target: String,
    pub status: u16,
    pub bytes: u64,
    pub duration: Duration,
    /// Files a batch named.
    pub files: Option<u64>,
}

impl AccessLog {
    pub fn open(path: &Path) -> io::Result<AccessLog> {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = rustix::fs::open(
            parent,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok();
        Ok(AccessLog {
            path: path.to_path_buf(),
            dir,
            name: path.file_name().unwrap_or(path.as_os_str()).to_os_string(),
            file: Mutex::new(append(path)?),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open the file again if logrotate moved it away (the name no longer
    /// names the open file); true if it did. Otherwise the open file is kept,
    /// and so it is when the folder cannot be looked in (nothing tells a
    /// rotation then): writing on where it writes loses no line.
    pub fn reopen(&self) -> io::Result<bool> {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let open = file.metadata()?;
        match self.stat_named() {
            Ok((dev, ino)) if (open.dev(), open.ino()) == (dev, ino) => return Ok(false),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(false),
            Err(e) => return Err(e),
        }
        *file = self.append_named()?;
        Ok(true)
    }

    /// Device and inode of the file the log's name names now.
    fn stat_named(&self) -> io::Result<(u64, u64)> {
        match &self.dir {
            Some(dir) => {
                let st = rustix::fs::statat(dir, self.name.as_os_str(), AtFlags::empty())?;
                Ok((st.st_dev, st.st_ino))
            }
            None => std::fs::metadata(&self.path).map(|m| (m.dev(), m.ino())),
        }
    }

    /// The log's name opened (created) for appending, in the held folder.
    fn append_named(&self) -> io::Result<File> {
        match &self.dir {
            Some(dir) => {
                let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::APPEND | OFlags::CLOEXEC;
                let fd = rustix::fs::openat(dir, self.name.as_os_str(), flags, Mode::from(0o644))?;
                Ok(File::from(fd))
            }
            None => append(&self.path),
        }
    }

    /// Write one line, in one write so lines of concurrent requests never mix.
    /// A log that cannot be written must not stop a download.
    pub fn write(&self, record: &Record) {
        let line = format_line(record, &chrono::Local::now());
        let file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = (&*file).write_all(line.as_bytes());
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn format_line<Tz: chrono::TimeZone>(r: &Record, now: &chrono::DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    format!(
        "{} {} {} \"{}\" {} {} {:.3}s{}\n",
        now.format("%Y-%m-%dT%H:%M:%S%.3f%:z"),
        r.client.to_canonical(),
        visible(&r.method),
        visible(&r.target),
        r.status,
        r.bytes,
        r.duration.as_secs_f64(),
        r.files.map_or_else(String::new, |n| format!(" files={n}"))
    )
}

/// Whatever a client sent, printable and unable to break the line or the
/// quotes: other bytes as `%XX`.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'"' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let r = Record {
            client: "::ffff:127.0.0.1".parse().unwrap(),
            method: "GET".into(),
            target: "/a b\"\n\u{1b}".into(),
            status: 404,
            bytes: 12,
            duration: Duration::from_millis(1500),
            files: None,
        };
        let now = chrono::DateTime::parse_from_rfc3339("2025-01-02T03:04:05+09:00").unwrap();
        assert_eq!(
            format_line(&r, &now),
            "2025-01-02T03:04:05.000+09:00 127.0.0.1 GET \"/a%20b%22%0A%1B\" 404 12 1.500s\n"
        );
    }

    #[test]
    fn lines_are_appended_and_survive_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dtp-access.log");
        let log = AccessLog::open(&path).unwrap();
        let r = Record {
            client: "192.0.2.1".parse().unwrap(),
            method: "-".into(),
            target: "-".into(),
            status: 403,
            bytes: 0,
            duration: Duration::ZERO,
            files: None,
        };
        log.write(&r);
        assert!(!log.reopen().unwrap(), "still in place: kept");
        log.write(&r);
        std::fs::rename(&path, dir.path().join("old")).unwrap();
        assert!(log.reopen().unwrap());
        log.write(&r);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        let old = std::fs::read_to_string(dir.path().join("old")).unwrap();
        assert_eq!(old.lines().count(), 2);
    }
}
