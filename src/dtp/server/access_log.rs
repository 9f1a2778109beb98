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

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug)]
pub struct AccessLog {
    path: PathBuf,
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
        Ok(AccessLog {
            path: path.to_path_buf(),
            file: Mutex::new(append(path)?),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open the file again if logrotate moved it away (the path no longer
    /// names the open file); true if it did. A file still in place is kept:
    /// a service that dropped root could not open it again.
    pub fn reopen(&self) -> io::Result<bool> {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let (Ok(open), Ok(named)) = (file.metadata(), std::fs::metadata(&self.path))
            && (open.dev(), open.ino()) == (named.dev(), named.ino())
        {
            return Ok(false);
        }
        *file = append(&self.path)?;
        Ok(true)
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
