//! Status a web page can read.
//!
//! Two views of the same facts, both replaced atomically (temporary file in the same
//! folder, then `rename`), so a reader never sees half a file:
//!
//! - `DIR/dsync-status/REPO` (only with a `status` folder configured): one digit,
//!   `0` failed, `1` succeeded, `2` syncing, as the reference tool documents. The
//!   file holds the bare digit **without a trailing newline**, so pages that compare
//!   the whole content (`=== "1"`) work; `read`/`cat`-based scripts still see it.
//! - the JSON list of jobs, with the fields of tunasync's `/jobs` answer that existing
//!   mirror web pages read (`name`, `is_master`, `status`, `last_update[_ts]`,
//!   `last_started[_ts]`, `last_ended[_ts]`, `next_schedule[_ts]`, `upstream`,
//!   `size`), sorted by name. Times are local time as `2006-01-02 15:04:05 -0700`
//!   and Unix seconds; an unknown time is Go's zero time, as tunasync writes it.
//!
//! Several worker processes update different repositories at once: every
//! read-modify-write of the JSON file happens under an exclusive `flock` on the
//! sibling file `JSON.lock`. A JSON file that cannot be parsed is moved aside to
//! `JSON.corrupt` and the list starts afresh, so one bad write (or a hand edit)
//! never stops status updates for good.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{Local, TimeZone};
use serde_json::{Map, Value};

/// A repository's state, as the one-digit file `STATUS/dsync-status/REPO` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// `0`
    Failed,
    /// `1`
    Success,
    /// `2`
    Syncing,
}

impl State {
    /// The digit of the status file.
    pub fn digit(self) -> char {
        match self {
            State::Failed => '0',
            State::Success => '1',
            State::Syncing => '2',
        }
    }

    /// tunasync's name for the state (`status` in the JSON).
    pub fn tunasync(self) -> &'static str {
        match self {
            State::Failed => "failed",
            State::Success => "success",
            State::Syncing => "syncing",
        }
    }
}

/// What the JSON status (tunasync's `/jobs` fields) says about one repository.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobInfo {
    /// An empty string keeps the previous value, like the `None` fields below.
    pub upstream: String,
    /// Bytes of the mirror after the last successful sync, if known.
    pub size: Option<u64>,
    /// Unix seconds.
    pub last_started: Option<i64>,
    pub last_ended: Option<i64>,
    /// End of the last successful sync.
    pub last_update: Option<i64>,
    pub next_schedule: Option<i64>,
}

/// Writes `DIR/dsync-status/REPO` (when a status folder is configured) and the JSON
/// list of jobs `JSON` (`DIR/dsync-jobs.json`, or `HOME/dsync-jobs.json` without one).
/// Safe with several worker processes updating different repositories at once.
#[derive(Debug, Clone)]
pub struct StatusStore {
    pub dir: Option<PathBuf>,
    pub json: PathBuf,
}

/// Go's zero `time.Time` as tunasync prints it for a time never set.
pub const ZERO_TIME: &str = "0001-01-01 00:00:00 +0000";
/// `time.Time{}.Unix()`.
pub const ZERO_TS: i64 = -62_135_596_800;
/// Go's `2006-01-02 15:04:05 -0700`.
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S %z";

/// The time fields of an entry, by base name (`NAME` and `NAME_ts`).
const TIME_FIELDS: [&str; 4] = ["last_update", "last_started", "last_ended", "next_schedule"];

impl StatusStore {
    /// Record `state` for `repo`, merging `info` into its JSON entry (fields that are
    /// `None` keep their previous value).
    pub fn set(&self, repo: &str, state: State, info: &JobInfo) -> io::Result<()> {
        check_name(repo)?;
        if let Some(dir) = &self.dir {
            let folder = dir.join("dsync-status");
            fs::create_dir_all(&folder)?;
            write_atomic(&folder.join(repo), state.digit().to_string().as_bytes())?;
        }
        self.update_json(repo, state, info)
    }

    fn update_json(&self, repo: &str, state: State, info: &JobInfo) -> io::Result<()> {
        if let Some(parent) = parent_of(&self.json) {
            fs::create_dir_all(parent)?;
        }
        let _lock = lock_exclusive(&sibling(&self.json, ".lock"))?;
        let mut jobs = match read_for_update(&self.json)? {
            Some(jobs) => jobs,
            None => {
                // Unparseable: keep it for a human to look at, start afresh.
                fs::rename(&self.json, sibling(&self.json, ".corrupt"))?;
                Vec::new()
            }
        };
        let previous = jobs
            .iter()
            .position(|job| job_name(job) == Some(repo))
            .map(|i| jobs.swap_remove(i));
        let previous = match previous {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        jobs.push(Value::Object(merge(previous, repo, state, info, &Local)));
        jobs.sort_by(|a, b| job_name(a).cmp(&job_name(b)));
        let mut text = serde_json::to_vec_pretty(&jobs).map_err(io::Error::other)?;
        text.push(b'\n');
        write_atomic(&self.json, &text)
    }
}

/// The jobs of a JSON status file; a missing file is an empty list, a file that is
/// not a JSON array is `InvalidData`.
pub fn read_jobs(json: &Path) -> io::Result<Vec<Value>> {
    let text = match fs::read(json) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    serde_json::from_slice(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", json.display()),
        )
    })
}

/// `Ok(None)` when the file exists but is not a list of named jobs.
fn read_for_update(json: &Path) -> io::Result<Option<Vec<Value>>> {
    let text = match fs::read(json) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(Vec::new())),
        Err(e) => return Err(e),
    };
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(Vec::new()));
    }
    Ok(serde_json::from_slice::<Vec<Value>>(&text)
        .ok()
        .filter(|jobs| jobs.iter().all(|job| job_name(job).is_some())))
}

fn job_name(job: &Value) -> Option<&str> {
    job.get("name").and_then(Value::as_str)
}

/// The entry for `repo`: `previous` (possibly empty) with `state` and the known
/// fields of `info` written over it. Unknown fields of `previous` are kept.
fn merge<Tz: TimeZone>(
    mut job: Map<String, Value>,
    repo: &str,
    state: State,
    info: &JobInfo,
    tz: &Tz,
) -> Map<String, Value>
where
    Tz::Offset: std::fmt::Display,
{
    let new_times = [
        info.last_update,
        info.last_started,
        info.last_ended,
        info.next_schedule,
    ];
    for (field, new) in TIME_FIELDS.into_iter().zip(new_times) {
        let ts_field = format!("{field}_ts");
        let old = job
            .get(&ts_field)
            .and_then(Value::as_i64)
            .filter(|&ts| ts != ZERO_TS);
        let (text, ts) = format_time(new.or(old), tz);
        job.insert(field.into(), text.into());
        job.insert(ts_field, ts.into());
    }
    job.insert("name".into(), repo.into());
    job.insert("is_master".into(), true.into());
    job.insert("status".into(), state.tunasync().into());
    if !info.upstream.is_empty() || !job.get("upstream").is_some_and(Value::is_string) {
        job.insert("upstream".into(), info.upstream.clone().into());
    }
    match info.size {
        Some(bytes) => {
            job.insert("size".into(), human_size(bytes).into());
        }
        None if job.get("size").is_some_and(Value::is_string) => {}
        None => {
            job.insert("size".into(), "unknown".into());
        }
    }
    job
}

/// A time as tunasync writes it: text in `tz` and Unix seconds; `None` (or a time
/// chrono cannot represent) is Go's zero time.
fn format_time<Tz: TimeZone>(ts: Option<i64>, tz: &Tz) -> (String, i64)
where
    Tz::Offset: std::fmt::Display,
{
    match ts.and_then(|ts| tz.timestamp_opt(ts, 0).single().map(|t| (t, ts))) {
        Some((time, ts)) => (time.format(TIME_FORMAT).to_string(), ts),
        None => (ZERO_TIME.to_string(), ZERO_TS),
    }
}

/// A size as tunasync shows it: the figure of rsync's `-h` statistics (`1.50M`,
/// `270.52G`: units of 1000, two decimals), bytes below 1000 as a plain number.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [char; 6] = ['K', 'M', 'G', 'T', 'P', 'E'];
    if bytes < 1000 {
        return bytes.to_string();
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    value /= 1000.0;
    // 999.995 and up would print as `1000.00`: move to the next unit instead.
    while value >= 999.995 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.2}{}", UNITS[unit])
}

/// A repository name must be one plain file name.
fn check_name(repo: &str) -> io::Result<()> {
    if repo.is_empty() || repo == "." || repo == ".." || repo.contains(['/', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad repository name {repo:?}"),
        ));
    }
    Ok(())
}

fn parent_of(path: &Path) -> Option<&Path> {
    path.parent().filter(|p| !p.as_os_str().is_empty())
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Replace `path` by a file holding `content`, readable by a web server (0644).
fn write_atomic(path: &Path, content: &[u8]) -> io::Result<()> {
    let folder = parent_of(path).unwrap_or(Path::new("."));
    let prefix = format!(
        ".{}.",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(Permissions::from_mode(0o644))
        .tempfile_in(folder)?;
    tmp.write_all(content)?;
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// An exclusive `flock` on `path` (created if needed), released when the file closes.
fn lock_exclusive(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    loop {
        // SAFETY: flock on a valid descriptor has no memory-safety preconditions.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(file);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, Utc};

    fn store(dir: &Path) -> StatusStore {
        StatusStore {
            dir: Some(dir.to_path_buf()),
            json: dir.join("dsync-jobs.json"),
        }
    }

    fn job(jobs: &[Value], name: &str) -> Value {
        jobs.iter()
            .find(|j| j["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no job {name} in {jobs:?}"))
    }

    #[test]
    fn state_digits_are_bare() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        for (state, digit, name) in [
            (State::Syncing, "2", "syncing"),
            (State::Success, "1", "success"),
            (State::Failed, "0", "failed"),
        ] {
            s.set("kali", state, &JobInfo::default()).unwrap();
            let file = tmp.path().join("dsync-status/kali");
            assert_eq!(fs::read_to_string(&file).unwrap(), digit);
            let mode = fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o044, 0o044, "readable by a web server: {mode:o}");
            let jobs = read_jobs(&s.json).unwrap();
            assert_eq!(job(&jobs, "kali")["status"], name);
        }
        // Only the two status views and the lock: no temporary files left behind.
        let mut names: Vec<String> = fs::read_dir(tmp.path())
            .unwrap()
            .chain(fs::read_dir(tmp.path().join("dsync-status")).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "dsync-jobs.json",
                "dsync-jobs.json.lock",
                "dsync-status",
                "kali"
            ]
        );
    }

    #[test]
    fn without_status_folder_only_json() {
        let tmp = tempfile::tempdir().unwrap();
        let s = StatusStore {
            dir: None,
            json: tmp.path().join("home/dsync-jobs.json"),
        };
        s.set("arch", State::Success, &JobInfo::default()).unwrap();
        assert!(!tmp.path().join("dsync-status").exists());
        assert_eq!(read_jobs(&s.json).unwrap().len(), 1);
    }

    #[test]
    fn bad_repo_names_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        for bad in ["", ".", "..", "a/b", "../x"] {
            let err = s.set(bad, State::Success, &JobInfo::default()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn set_merges_and_sorts() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        s.set(
            "ubuntu",
            State::Syncing,
            &JobInfo {
                upstream: "rsync://archive.ubuntu.com/ubuntu/".into(),
                last_started: Some(1_700_000_000),
                next_schedule: Some(1_700_021_600),
                ..JobInfo::default()
            },
        )
        .unwrap();
        s.set("debian", State::Syncing, &JobInfo::default())
            .unwrap();
        s.set(
            "ubuntu",
            State::Success,
            &JobInfo {
                size: Some(1_500_000_000),
                last_ended: Some(1_700_000_042),
                last_update: Some(1_700_000_042),
                ..JobInfo::default()
            },
        )
        .unwrap();
        let jobs = read_jobs(&s.json).unwrap();
        let names: Vec<&str> = jobs.iter().map(|j| j["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["debian", "ubuntu"]);
        let u = job(&jobs, "ubuntu");
        assert_eq!(u["status"], "success");
        assert_eq!(u["is_master"], true);
        assert_eq!(u["upstream"], "rsync://archive.ubuntu.com/ubuntu/");
        assert_eq!(u["last_started_ts"], 1_700_000_000);
        assert_eq!(u["next_schedule_ts"], 1_700_021_600);
        assert_eq!(u["last_ended_ts"], 1_700_000_042);
        assert_eq!(u["last_update_ts"], 1_700_000_042);
        assert_eq!(u["size"], "1.50G");
        // A later failure keeps the last successful update and the size.
        s.set(
            "ubuntu",
            State::Failed,
            &JobInfo {
                last_started: Some(1_700_021_600),
                last_ended: Some(1_700_021_700),
                ..JobInfo::default()
            },
        )
        .unwrap();
        let u = job(&read_jobs(&s.json).unwrap(), "ubuntu");
        assert_eq!(u["status"], "failed");
        assert_eq!(u["last_update_ts"], 1_700_000_042);
        assert_eq!(u["last_started_ts"], 1_700_021_600);
        assert_eq!(u["size"], "1.50G");
        assert_eq!(u["upstream"], "rsync://archive.ubuntu.com/ubuntu/");
        let d = job(&read_jobs(&s.json).unwrap(), "debian");
        assert_eq!(d["size"], "unknown");
        assert_eq!(d["upstream"], "");
    }

    #[test]
    fn unknown_fields_of_an_entry_survive() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        fs::write(&s.json, r#"[{"name":"kali","note":"kept","size":"3.00T"}]"#).unwrap();
        s.set("kali", State::Syncing, &JobInfo::default()).unwrap();
        let k = job(&read_jobs(&s.json).unwrap(), "kali");
        assert_eq!(k["note"], "kept");
        assert_eq!(k["size"], "3.00T");
        assert_eq!(k["status"], "syncing");
    }

    #[test]
    fn time_formats() {
        let kst = FixedOffset::east_opt(9 * 3600).unwrap();
        assert_eq!(
            format_time(Some(1_700_000_000), &kst),
            ("2023-11-15 07:13:20 +0900".to_string(), 1_700_000_000)
        );
        assert_eq!(
            format_time(Some(1_700_000_000), &Utc),
            ("2023-11-14 22:13:20 +0000".to_string(), 1_700_000_000)
        );
        let west = FixedOffset::west_opt(7 * 3600).unwrap();
        assert_eq!(
            format_time(Some(0), &west).0,
            "1969-12-31 17:00:00 -0700".to_string()
        );
        // Local time, whatever this machine's zone: it reads back as the same instant.
        let (text, ts) = format_time(Some(1_700_000_000), &Local);
        assert_eq!(ts, 1_700_000_000);
        let parsed = chrono::DateTime::parse_from_str(&text, TIME_FORMAT).unwrap();
        assert_eq!(parsed.timestamp(), 1_700_000_000);
    }

    #[test]
    fn zero_time_for_unset_fields() {
        assert_eq!(
            format_time(None, &Local),
            ("0001-01-01 00:00:00 +0000".to_string(), -62_135_596_800)
        );
        assert_eq!(format_time(Some(i64::MAX), &Utc).1, ZERO_TS);
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        s.set("kali", State::Syncing, &JobInfo::default()).unwrap();
        let k = job(&read_jobs(&s.json).unwrap(), "kali");
        for field in TIME_FIELDS {
            assert_eq!(k[field], ZERO_TIME, "{field}");
            assert_eq!(k[format!("{field}_ts")], ZERO_TS, "{field}");
        }
    }

    #[test]
    fn human_sizes_like_rsync_h() {
        assert_eq!(human_size(0), "0");
        assert_eq!(human_size(999), "999");
        assert_eq!(human_size(1000), "1.00K");
        assert_eq!(human_size(1_500_000), "1.50M");
        assert_eq!(human_size(270_520_000_000), "270.52G");
        assert_eq!(human_size(1_460_000_000_000), "1.46T");
        assert_eq!(human_size(999_999_999), "1.00G");
        assert_eq!(human_size(u64::MAX), "18.45E");
    }

    #[test]
    fn corrupt_json_is_moved_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        for bad in ["{not json", r#"{"name":"x"}"#, r#"[1, 2]"#] {
            fs::write(&s.json, bad).unwrap();
            s.set("kali", State::Success, &JobInfo::default()).unwrap();
            let jobs = read_jobs(&s.json).unwrap();
            assert_eq!(jobs.len(), 1, "{bad}");
            assert_eq!(
                fs::read_to_string(tmp.path().join("dsync-jobs.json.corrupt")).unwrap(),
                bad
            );
        }
        // An empty file (say, made by `touch`) is just an empty list.
        fs::write(&s.json, "").unwrap();
        fs::remove_file(tmp.path().join("dsync-jobs.json.corrupt")).unwrap();
        s.set("kali", State::Success, &JobInfo::default()).unwrap();
        assert!(!tmp.path().join("dsync-jobs.json.corrupt").exists());
        // read_jobs itself reports corruption rather than hiding it.
        fs::write(&s.json, "[").unwrap();
        let err = read_jobs(&s.json).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            read_jobs(&tmp.path().join("missing.json"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let repo = format!("repo{t}");
                    for i in 0..20 {
                        // A fresh store per call, as separate worker processes have.
                        let state = match i % 3 {
                            0 => State::Syncing,
                            1 => State::Failed,
                            _ => State::Success,
                        };
                        let info = JobInfo {
                            last_started: Some(1_700_000_000 + i),
                            ..JobInfo::default()
                        };
                        store(&dir).set(&repo, state, &info).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let jobs = read_jobs(&dir.join("dsync-jobs.json")).unwrap();
        assert_eq!(jobs.len(), 8);
        for t in 0..8 {
            let repo = format!("repo{t}");
            let j = job(&jobs, &repo);
            // i = 19: 19 % 3 == 1, Failed.
            assert_eq!(j["status"], "failed", "{repo}");
            assert_eq!(j["last_started_ts"], 1_700_000_019, "{repo}");
            let digit = fs::read_to_string(dir.join("dsync-status").join(&repo)).unwrap();
            assert_eq!(digit, "0");
        }
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
