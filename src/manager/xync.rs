//! `xync.conf`, the global settings.
//!
//! The file is `key=value` lines: spaces around `=` are tolerated, `#` starts a comment
//! (a whole line, or after whitespace at the end of a line), blank lines are ignored,
//! CRLF line ends work. Keys are case-sensitive. Every problem is reported with its line
//! and a concrete fix; a bad value keeps the default. The same line syntax is used by
//! repository files ([`super::repo`]); its lexer, [`crate::keyvalue`], is shared
//! with them and with the DTP host's files.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::diag::Diagnostic;
pub(crate) use crate::keyvalue::{Parsed, RawLine, key_line, parse_line, raw_lines};

#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    /// `syncps`: repositories synced at the same time, 1–100 (default 1).
    pub syncps: usize,
    /// `ipadd`: local addresses; concurrent rsyncs bind them round-robin.
    pub ipadd: Vec<String>,
    /// `intra`: intranet mode (`intradd` gives the upstream).
    pub intra: bool,
    /// `intradd` (or `intraadd`): `IP[:PORT]` of the intranet upstream of every
    /// repository with `intra=true`; a repository's own `intradd=` wins.
    pub intradd: Option<String>,
    /// `logdir`: one log folder per repository.
    pub logdir: bool,
    /// `logtime`: timestamped log names (`logs-YYYYMMDD-HHMM.log`).
    pub logtime: bool,
    /// `pass-error-temp`: rsync 23/24 are not failures; temp files excluded.
    pub pass_error_temp: bool,
    /// `webhookurl`
    pub webhookurl: Option<String>,
    /// `status`: folder for `dsync-status/REPO` files and `dsync-jobs.json`.
    pub status: Option<PathBuf>,
    /// `webroot` (DTP host).
    pub webroot: Option<PathBuf>,
    /// `api`: URL of a JSON list of repositories and their upstreams.
    pub api: Option<String>,
    /// `mailto`: alert mails go here (and `MAILTO` in the environment).
    pub mailto: Option<String>,
    /// `smtp`: `host[:port]` of an SMTP relay; default local sendmail.
    pub smtp: Option<String>,
    /// `maxtime`: wall-clock limit of one repository's sync (default 12 h).
    pub maxtime: Duration,
    /// `max-delete`: deletions one sync may do in general mode (default 40000).
    pub max_delete: u64,
    /// `retries`: tries per sync for transient failures (default 3).
    pub retries: u32,
    /// `timeout`: rsync --timeout seconds (default 600) and `contimeout` (default 60).
    pub timeout: u64,
    pub contimeout: u64,
    /// `dtp-listen`: where the DTP service listens, `ADDRESS:PORT` or a bare
    /// `PORT` (default `[::]:47921`, every address of both families).
    pub dtp_listen: String,
    /// `dtp-maxconn`: DTP connections one client address may hold, 1-10000
    /// (default 64: a client opens `dtp-connections`, 50 by default).
    pub dtp_maxconn: usize,
    /// `dtp-connections`: parallel downloads of a DTP sync (default 50).
    pub dtp_connections: usize,
    /// `dtp-bwlimit`: KiB/s one client address may download from the DTP
    /// service, shared by its connections; 0 is no limit (the default).
    pub dtp_bwlimit: u64,
    /// `dtp-min-rate`: the least average rate, bytes/s, of each phase of a DTP
    /// sync after its grace period (`timeout`, at most 60 s); 0 is no floor.
    pub dtp_min_rate: u64,
    /// `dtp-user`: the account the DTP service drops to after binding its
    /// port when started as root (a root service refuses to run without it).
    pub dtp_user: Option<String>,
    /// `min-upstream-ratio`: a sync whose upstream lists fewer regular files
    /// than this fraction of the local mirror's is refused before anything is
    /// deleted (default 0.5; 0 turns the check off).
    pub min_upstream_ratio: f64,
    /// `allow-vulnerable-rsync`: run an rsync older than 3.4.0 that carries no
    /// distribution fix for CVE-2024-12084..12088 (default false: refuse).
    pub allow_vulnerable_rsync: bool,
}

/// The default of `dtp-listen`.
pub const DTP_LISTEN_DEFAULT: &str = "[::]:47921";

impl Default for Global {
    fn default() -> Self {
        Global {
            syncps: 1,
            ipadd: Vec::new(),
            intra: false,
            intradd: None,
            logdir: false,
            logtime: false,
            pass_error_temp: false,
            webhookurl: None,
            status: None,
            webroot: None,
            api: None,
            mailto: None,
            smtp: None,
            maxtime: Duration::from_secs(12 * 3600),
            max_delete: 40000,
            retries: 3,
            timeout: 600,
            contimeout: 60,
            dtp_listen: DTP_LISTEN_DEFAULT.to_string(),
            dtp_maxconn: 64,
            dtp_connections: 50,
            dtp_bwlimit: 0,
            dtp_min_rate: crate::dtp::client::DEFAULT_MIN_RATE,
            dtp_user: None,
            min_upstream_ratio: 0.5,
            allow_vulnerable_rsync: false,
        }
    }
}

/// Every key xync.conf knows, as documented.
pub const KEYS: &[&str] = &[
    "syncps",
    "ipadd",
    "intra",
    "intradd",
    "logdir",
    "logtime",
    "pass-error-temp",
    "rokfoss-sync",
    "webhookurl",
    "status",
    "webroot",
    "api",
    "mailto",
    "smtp",
    "maxtime",
    "max-delete",
    "retries",
    "timeout",
    "contimeout",
    "dtp-listen",
    "dtp-connections",
    "dtp-maxconn",
    "dtp-bwlimit",
    "dtp-min-rate",
    "dtp-user",
    "min-upstream-ratio",
    "allow-vulnerable-rsync",
];

/// Parse `text` (the file `path`): every problem is returned, never only the first.
/// Unknown keys are warnings; bad values are errors (the default is kept).
pub fn parse(path: &Path, text: &str) -> (Global, Vec<Diagnostic>) {
    let mut global = Global::default();
    let mut diags = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for line in raw_lines(text) {
        let (key, value) = match parse_line(line.text) {
            Parsed::Blank => continue,
            Parsed::Malformed => {
                diags.push(malformed(path, &line, "syncps=2"));
                continue;
            }
            Parsed::Pair { key, value } => (key, value),
        };
        let n = line.number;
        let written = key;
        // `intraadd` is the manual's second spelling of `intradd`.
        let key = if key == "intraadd" { "intradd" } else { key };
        let Some(&key) = KEYS.iter().find(|k| **k == key) else {
            diags.push(unknown_key(
                path,
                n,
                key,
                &value,
                KEYS,
                &OTHER_FILE_KEYS_REPO,
            ));
            continue;
        };
        if let Some(previous) = seen.insert(key, n) {
            diags.push(duplicate(path, n, key, previous));
        }
        if value.is_empty() {
            diags.push(empty_value(path, n, key));
            continue;
        }
        match apply(&mut global, key, written, &value) {
            Ok(None) => {}
            Ok(Some((message, fix))) => diags.push(Diagnostic::warning(path, n, message, fix)),
            Err((message, fix)) => diags.push(Diagnostic::error(path, n, message, fix)),
        }
    }
    if let (Some(address), false) = (&global.intradd, global.intra) {
        diags.push(ignored_intradd(path, seen["intradd"], address));
    }
    make_visible(&mut diags);
    (global, diags)
}

/// `intradd=` with intranet mode off: the user meant the intranet and would
/// silently mirror from public hosts instead.
fn ignored_intradd(path: &Path, line: usize, address: &str) -> Diagnostic {
    Diagnostic::warning(
        path,
        line,
        format!(
            "intradd={address} is not used while intra=false (the default): every repository \
             syncs from its public upstream instead"
        ),
        format!(
            "add intra=true to {} to sync from {address}, or delete the intradd= line",
            path.display()
        ),
    )
}

/// Read and parse `path`; a missing file gives the defaults and no diagnostic.
pub fn load(path: &Path) -> (Global, Vec<Diagnostic>) {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => parse(path, &text),
            Err(e) => (
                Global::default(),
                vec![Diagnostic::error(
                    path,
                    0,
                    format!(
                        "not UTF-8 text (invalid byte at offset {})",
                        e.utf8_error().valid_up_to()
                    ),
                    "save the file as UTF-8 (e.g. iconv -t UTF-8), with key=value lines",
                )],
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Global::default(), Vec::new()),
        Err(e) => (
            Global::default(),
            vec![Diagnostic::error(
                path,
                0,
                format!("cannot read: {e}"),
                format!("make {} a readable file (chmod 644)", path.display()),
            )],
        ),
    }
}

/// Repository keys, named when they are found in xync.conf by mistake (the
/// keys both files take, like `mailto`, are known here and never reach it).
const OTHER_FILE_KEYS_REPO: OtherFile = OtherFile {
    keys: super::repo::KEYS,
    advice: "is a repository setting: move it to repos/NAME.conf",
};

type Problem = (String, String);

/// Apply one known key (as `written` in the file, for messages).
/// `Ok(Some(warning))` for accepted values worth a remark.
fn apply(
    g: &mut Global,
    key: &str,
    written: &str,
    value: &str,
) -> Result<Option<Problem>, Problem> {
    match key {
        "syncps" => g.syncps = number_in(key, value, 1, 100, "4")? as usize,
        "ipadd" => g.ipadd = ip_list(value)?,
        "intra" => g.intra = boolean(key, value)?,
        "intradd" => g.intradd = Some(intranet_address(written, value)?),
        "logdir" => g.logdir = boolean(key, value)?,
        "logtime" => g.logtime = boolean(key, value)?,
        "pass-error-temp" => g.pass_error_temp = boolean(key, value)?,
        // KRFOSS's own sample says rokfoss-sync=false: only `true` is worth a word.
        "rokfoss-sync" => {
            if !boolean(key, value)? {
                return Ok(None);
            }
            return Ok(Some((
                format!(
                    "rokfoss-sync={value} has no effect in dsync (it is the ROKFOSS project's private reporting)"
                ),
                "delete the rokfoss-sync line".to_string(),
            )));
        }
        "webhookurl" => {
            g.webhookurl = Some(http_url(
                key,
                value,
                "https://hooks.slack.com/services/T000/B000/XXXX",
            )?)
        }
        "status" => g.status = Some(absolute_dir(key, value, "/var/www/html/status")?),
        "webroot" => g.webroot = Some(absolute_dir(key, value, "/srv/mirrors")?),
        "api" => g.api = Some(http_url(key, value, "https://api.example.org/repos.json")?),
        "mailto" => g.mailto = Some(mail_list(key, value)?),
        "smtp" => g.smtp = Some(smtp_relay(value)?),
        "maxtime" => g.maxtime = duration_limit(key, value)?,
        "max-delete" => g.max_delete = number_in(key, value, 0, u64::MAX, "40000")?,
        "retries" => g.retries = number_in(key, value, 1, 10, "3")? as u32,
        "timeout" => g.timeout = number_in(key, value, 0, u64::MAX, "600")?,
        "contimeout" => g.contimeout = number_in(key, value, 0, u64::MAX, "60")?,
        "dtp-listen" => {
            if value.parse::<std::net::SocketAddr>().is_err() && value.parse::<u16>().is_err() {
                return Err((
                    format!("dtp-listen={value} is not ADDRESS:PORT or PORT"),
                    "write the address and port the DTP service listens on, e.g. dtp-listen=[::]:47921 or dtp-listen=0.0.0.0:47921".into(),
                ));
            }
            g.dtp_listen = value.to_string();
        }
        "dtp-connections" => g.dtp_connections = number_in(key, value, 1, 1000, "50")? as usize,
        "dtp-maxconn" => g.dtp_maxconn = number_in(key, value, 1, 10000, "64")? as usize,
        "dtp-bwlimit" => g.dtp_bwlimit = number_in(key, value, 0, 100_000_000, "10240")?,
        "dtp-min-rate" => g.dtp_min_rate = number_in(key, value, 0, u64::MAX, "16384")?,
        "dtp-user" => g.dtp_user = Some(account(key, value)?),
        "min-upstream-ratio" => g.min_upstream_ratio = ratio(key, value)?,
        "allow-vulnerable-rsync" => g.allow_vulnerable_rsync = boolean(key, value)?,
        _ => unreachable!("{key} is in KEYS but not handled"),
    }
    Ok(None)
}

/// `IP` or `IP:PORT` (`[v6]:PORT`) of an intranet upstream.
pub(crate) fn intranet_address(key: &str, value: &str) -> Result<String, Problem> {
    let ok = split_host_port(value)
        .is_some_and(|(host, port)| host.parse::<IpAddr>().is_ok() && port != Some(0));
    if ok {
        return Ok(value.to_string());
    }
    Err((
        format!("{key}={value} is not IP or IP:PORT"),
        format!(
            "write the intranet upstream's IP address, optionally with :PORT, e.g. {key}=10.1.1.50 or {key}=10.1.1.50:873"
        ),
    ))
}

/// A user name as useradd accepts it (letters, digits, `_`, `-`, `.`, not
/// starting with `-`), or a numeric uid.
fn account(key: &str, value: &str) -> Result<String, Problem> {
    let ok = !value.is_empty()
        && value.len() <= 32
        && !value.starts_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(value.to_string())
    } else {
        Err((
            format!("{key}={value} is not a user name"),
            format!(
                "write the name of an unprivileged account that may read the mirrors, e.g. {key}=nobody"
            ),
        ))
    }
}

/// A fraction from 0 to 1 (`0.5`), or a percentage (`50%`).
fn ratio(key: &str, value: &str) -> Result<f64, Problem> {
    let parsed = match value.strip_suffix('%') {
        Some(percent) => percent.parse::<f64>().map(|p| p / 100.0),
        None => value.parse::<f64>(),
    };
    match parsed {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err((
            format!("{key}={value} is not a fraction from 0 to 1"),
            format!(
                "write a fraction or a percentage, e.g. {key}=0.5 or {key}=50% (0 turns the check off)"
            ),
        )),
    }
}

fn number_in(key: &str, value: &str, min: u64, max: u64, example: &str) -> Result<u64, Problem> {
    let range = if max == u64::MAX {
        format!("a whole number of {min} or more")
    } else {
        format!("a whole number from {min} to {max}")
    };
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(n) => Err((
            format!("{key}={n} is out of range: it must be {range}"),
            format!("write {range}, e.g. {key}={example}"),
        )),
        Err(_) => Err((
            format!("{key}={value} is not a number"),
            format!("write {range} (digits only, no unit), e.g. {key}={example}"),
        )),
    }
}

/// `maxtime`: hours (a plain number, 1-168), or with a unit: `90s`, `30m`, `6h`;
/// at least 1 second, at most a week.
fn duration_limit(key: &str, value: &str) -> Result<Duration, Problem> {
    let (digits, unit) = match value.char_indices().last() {
        Some((i, 's')) => (&value[..i], 1),
        Some((i, 'm')) => (&value[..i], 60),
        Some((i, 'h')) => (&value[..i], 3600),
        _ => {
            return Ok(Duration::from_secs(
                number_in(key, value, 1, 168, "12")? * 3600,
            ));
        }
    };
    let week = 168 * 3600;
    match digits.parse::<u64>() {
        Ok(n) if n >= 1 && n.saturating_mul(unit) <= week => Ok(Duration::from_secs(n * unit)),
        _ => Err((
            format!("{key}={value} is not a time from 1 second to 168 hours"),
            format!("write hours (e.g. {key}=12), or a number with s, m or h (e.g. {key}=90m)"),
        )),
    }
}

/// `true`/`false`, also `yes`/`no` and `1`/`0`, in any case.
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

pub(crate) fn boolean(key: &str, value: &str) -> Result<bool, Problem> {
    parse_bool(value).ok_or_else(|| {
        (
            format!(
                "{key}={value} is not a boolean: allowed values are true, false, yes, no, 1, 0"
            ),
            format!("write {key}=true or {key}=false"),
        )
    })
}

fn ip_list(value: &str) -> Result<Vec<String>, Problem> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for item in value.split(',').map(str::trim) {
        match item.parse::<IpAddr>() {
            Ok(ip) => out.push(ip.to_string()),
            Err(_) => bad.push(format!("`{item}`")),
        }
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        Err((
            format!("ipadd: {} is not an IP address", bad.join(", ")),
            "write this machine's addresses separated by commas, e.g. ipadd=192.0.2.10,192.0.2.11"
                .into(),
        ))
    }
}

/// Control characters of the files' values (an escape sequence, a bell) shown as
/// escapes in messages and fixes, so printing a diagnostic cannot garble a terminal.
pub(crate) fn make_visible(diags: &mut [Diagnostic]) {
    let visible = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    };
    for d in diags {
        d.message = visible(&d.message);
        d.fix = visible(&d.fix);
    }
}

/// Whitespace, control characters (newlines, tabs, escapes) anywhere in a value.
pub(crate) fn has_space_or_control(value: &str) -> bool {
    value.chars().any(|c| c.is_whitespace() || c.is_control())
}

pub(crate) fn http_url(key: &str, value: &str, example: &str) -> Result<String, Problem> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty() && !rest.starts_with('/') && !has_space_or_control(value) =>
        {
            Ok(value.to_string())
        }
        _ => Err((
            format!("{key}={value} is not an http:// or https:// URL"),
            format!("write the full URL, e.g. {key}={example}"),
        )),
    }
}

fn absolute_dir(key: &str, value: &str, example: &str) -> Result<PathBuf, Problem> {
    if value.starts_with('/') && !value.chars().any(char::is_control) {
        Ok(PathBuf::from(value))
    } else {
        Err((
            format!("{key}={value} is not an absolute path"),
            format!("write the folder's full path, starting with /, e.g. {key}={example}"),
        ))
    }
}

/// A comma list of mail addresses or local user names.
pub(crate) fn mail_list(key: &str, value: &str) -> Result<String, Problem> {
    let ok = value.split(',').map(str::trim).all(|a| {
        !a.is_empty()
            && !a.starts_with('-')
            && !has_space_or_control(a)
            && a.split('@').count() <= 2
            && !a.starts_with('@')
            && !a.ends_with('@')
    });
    if ok {
        Ok(value.to_string())
    } else {
        Err((
            format!("{key}={value} is not a list of mail addresses"),
            format!("write addresses separated by commas, e.g. {key}=mirror-admins@example.org"),
        ))
    }
}

fn smtp_relay(value: &str) -> Result<String, Problem> {
    let bad = || {
        (
            format!("smtp={value} is not host[:port]"),
            "write the relay's name and, if not 25, its port, e.g. smtp=mail.example.org:587"
                .into(),
        )
    };
    let (host, port) = split_host_port(value).ok_or_else(bad)?;
    if !valid_host(host) || port.is_some_and(|p| p == 0) {
        return Err(bad());
    }
    Ok(value.to_string())
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 address.
/// `None` when the port is not a number.
pub(crate) fn split_host_port(value: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?.parse().ok()?))),
        };
    }
    if value.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some((value, None));
    }
    match value.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((value, None)),
    }
}

/// A host name or IP address that is safe on a command line.
pub(crate) fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && !host.starts_with('-')
        && (host.parse::<IpAddr>().is_ok()
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
}

// ---------------------------------------------------------------------------------
// Diagnostics shared with repository files (the line syntax is [`crate::keyvalue`]).

/// Keys that belong in the other kind of file, and what to say about them.
pub(crate) struct OtherFile {
    pub keys: &'static [&'static str],
    pub advice: &'static str,
}

pub(crate) fn malformed(path: &Path, line: &RawLine, example: &str) -> Diagnostic {
    let shown: String = line.text.trim().chars().take(60).collect();
    Diagnostic::error(
        path,
        line.number,
        format!("`{shown}` is not a key=value line"),
        format!(
            "write key=value (e.g. {example}), or put # in front of the line to make it a comment"
        ),
    )
}

pub(crate) fn unknown_key(
    path: &Path,
    line: usize,
    key: &str,
    value: &str,
    known: &[&str],
    other: &OtherFile,
) -> Diagnostic {
    if other.keys.contains(&key) {
        return Diagnostic::warning(
            path,
            line,
            format!("`{key}` {}; it is ignored here", other.advice),
            format!("delete the line here and write {key}={value} in the right file"),
        );
    }
    match suggest(key, known) {
        Some(s) => Diagnostic::warning(
            path,
            line,
            format!("unknown key `{key}` (ignored); did you mean `{s}`?"),
            format!("write {s}={value}"),
        ),
        None => Diagnostic::warning(
            path,
            line,
            format!("unknown key `{key}` (ignored)"),
            format!(
                "delete the line, or use one of the known keys: {}",
                known.join(", ")
            ),
        ),
    }
}

pub(crate) fn duplicate(path: &Path, line: usize, key: &str, previous: usize) -> Diagnostic {
    Diagnostic::warning(
        path,
        line,
        format!("`{key}` is set again (also on line {previous}); this last value is used"),
        format!("delete one of the two {key}= lines (line {previous} or {line})"),
    )
}

pub(crate) fn empty_value(path: &Path, line: usize, key: &str) -> Diagnostic {
    Diagnostic::warning(
        path,
        line,
        format!("`{key}=` has no value; the line is ignored"),
        format!("write a value after {key}=, or delete the line"),
    )
}

/// The known key closest to `key`, if it is within edit distance 2 (case counts as
/// a difference, but `SYNCPS` still finds `syncps`); a key that is the start of a
/// known one (`webhook` → `webhookurl`) is closest of all.
pub(crate) fn suggest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = key.to_lowercase();
    known
        .iter()
        .map(|k| {
            let prefix = lower.len() >= 4 && k.starts_with(lower.as_str());
            let d = if prefix {
                0
            } else {
                edit_distance(key, k).min(edit_distance(&lower, k))
            };
            (d, *k)
        })
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diag
            } else {
                1 + diag.min(above).min(row[j])
            };
            diag = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::diag::Severity;

    fn p(text: &str) -> (Global, Vec<Diagnostic>) {
        parse(Path::new("/h/xync.conf"), text)
    }

    fn only(diags: &[Diagnostic]) -> &Diagnostic {
        assert_eq!(diags.len(), 1, "{diags:#?}");
        &diags[0]
    }

    #[test]
    fn intranet_address_in_both_spellings() {
        let (g, d) = p("intra=true\nintraadd=10.1.1.50\n");
        assert!(d.is_empty(), "{d:#?}");
        assert_eq!(g.intradd.as_deref(), Some("10.1.1.50"));
        let (_, d) = p("intra=true\nintradd=10.1.1.50\nintraadd=10.1.1.51\n");
        assert_eq!(d.len(), 1, "{d:#?}");
        let (g, d) = p("intradd=fileserver\n");
        assert!(d[0].is_error() && d[0].message.contains("not IP or IP:PORT"));
        assert_eq!(g.intradd, None);
    }

    #[test]
    fn intradd_without_intra_true_is_named_with_the_fix() {
        for text in ["intradd=10.1.1.50\n", "intra=false\nintraadd=10.1.1.50\n"] {
            let (_, d) = p(text);
            let d = only(&d);
            assert!(!d.is_error());
            assert_eq!(d.line, text.lines().count());
            assert!(d.message.contains("not used while intra=false"), "{d}");
            assert!(d.fix.starts_with("add intra=true to /h/xync.conf"), "{d}");
        }
    }

    #[test]
    fn empty_and_comments_give_defaults() {
        let (g, d) = p("# comment\n\n   # indented comment\n\r\n");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(g, Global::default());
    }

    #[test]
    fn every_key_is_read() {
        let text = "\u{feff}syncps = 4\r\nipadd=192.0.2.1, 2001:db8::1,10.0.0.2\nintra=yes\nintradd=10.1.1.50:873\nlogdir=1\n\
            logtime=TRUE\npass-error-temp=true\nwebhookurl=https://hooks.slack.com/x\n\
            status=/var/www/status\nwebroot=/srv/www\napi=http://127.0.0.1:9/list\n\
            mailto=a@example.org,root\nsmtp=mail.example.org:587\nmaxtime=6\nmax-delete=100\n\
            retries=5\ntimeout=300 # seconds\ncontimeout='30'\ndtp-listen=0.0.0.0:47921\n\
            dtp-connections=50\ndtp-maxconn=3\ndtp-bwlimit=100\ndtp-min-rate=0\n";
        let (g, d) = p(text);
        assert!(d.is_empty(), "{d:#?}");
        assert_eq!(g.syncps, 4);
        assert_eq!(g.ipadd, ["192.0.2.1", "2001:db8::1", "10.0.0.2"]);
        assert!(g.intra && g.logdir && g.logtime && g.pass_error_temp);
        assert_eq!(g.intradd.as_deref(), Some("10.1.1.50:873"));
        assert_eq!(g.webhookurl.as_deref(), Some("https://hooks.slack.com/x"));
        assert_eq!(g.status, Some(PathBuf::from("/var/www/status")));
        assert_eq!(g.webroot, Some(PathBuf::from("/srv/www")));
        assert_eq!(g.api.as_deref(), Some("http://127.0.0.1:9/list"));
        assert_eq!(g.mailto.as_deref(), Some("a@example.org,root"));
        assert_eq!(g.smtp.as_deref(), Some("mail.example.org:587"));
        assert_eq!(g.maxtime, Duration::from_secs(6 * 3600));
        for (text, secs) in [("90s", 90), ("30m", 1800), ("2h", 7200), ("168h", 604_800)] {
            assert_eq!(
                duration_limit("maxtime", text),
                Ok(Duration::from_secs(secs))
            );
        }
        for bad in ["0s", "169h", "10x", "m", "-5m", "1.5h"] {
            assert!(duration_limit("maxtime", bad).is_err(), "{bad}");
        }
        assert_eq!(
            (g.max_delete, g.retries, g.timeout, g.contimeout),
            (100, 5, 300, 30)
        );
        assert_eq!(
            (g.dtp_listen.as_str(), g.dtp_maxconn, g.dtp_bwlimit),
            ("0.0.0.0:47921", 3, 100)
        );
        assert_eq!(g.dtp_min_rate, 0);
        assert_eq!(Global::default().dtp_min_rate, 16384);
    }

    #[test]
    fn bad_values_are_errors_with_line_and_fix_and_keep_defaults() {
        let text = "syncps=0\ncontimeout=abc\nintra=maybe\nipadd=1.2.3.4,nope\nwebhookurl=hooks.slack.com/x\n\
                    status=relative/dir\napi=ftp://x\nsmtp=mail example\nmaxtime=169\nretries=11\n\
                    max-delete=-1\ntimeout=10s\nmailto=-oQ/tmp\ndtp-listen=everywhere\n";
        let (g, d) = p(text);
        assert_eq!(d.len(), 14, "{d:#?}");
        assert!(d.iter().all(|d| d.is_error()), "{d:#?}");
        for (i, d) in d.iter().enumerate() {
            assert_eq!(d.line, i + 1, "{d}");
            assert!(!d.fix.is_empty(), "{d}");
        }
        assert!(d[0].message.contains("out of range"), "{}", d[0]);
        assert_eq!(
            d[0].fix,
            "write a whole number from 1 to 100, e.g. syncps=4"
        );
        assert!(
            d[2].message.contains("true, false, yes, no, 1, 0"),
            "{}",
            d[2]
        );
        assert_eq!(d[2].fix, "write intra=true or intra=false");
        assert!(d[3].message.contains("`nope`"), "{}", d[3]);
        assert!(d[5].fix.contains("starting with /"), "{}", d[5]);
        assert_eq!(g, Global::default());
    }

    #[test]
    fn unknown_keys_warn_with_suggestion() {
        let (_, d) =
            p("syncp=3\nSyncps=3\npass_error_temp=true\ncompletely-unrelated=1\nsave=/x\n");
        assert_eq!(d.len(), 5);
        assert!(d.iter().all(|d| d.severity == Severity::Warning));
        assert!(d[0].message.contains("did you mean `syncps`"), "{}", d[0]);
        assert_eq!(d[0].fix, "write syncps=3");
        assert_eq!(d[1].fix, "write syncps=3");
        assert_eq!(d[2].fix, "write pass-error-temp=true");
        assert!(!d[3].message.contains("did you mean"));
        assert!(d[3].fix.contains("known keys: syncps"), "{}", d[3].fix);
        assert!(d[4].message.contains("repository setting"), "{}", d[4]);
        // Every repository key, also the ones added later than this list's
        // first version.
        for key in super::super::repo::KEYS
            .iter()
            .filter(|k| !KEYS.contains(k) && **k != "intraadd")
        {
            let (_, d) = p(&format!("{key}=x\n"));
            assert!(
                d[0].message.contains("repository setting"),
                "{key}: {}",
                d[0]
            );
        }
    }

    #[test]
    fn duplicates_warn_and_last_wins() {
        let (g, d) = p("syncps=2\n\nsyncps=5\n");
        let d = only(&d);
        assert_eq!((d.severity, d.line), (Severity::Warning, 3));
        assert!(d.message.contains("line 1"), "{d}");
        assert_eq!(g.syncps, 5);
    }

    #[test]
    fn rokfoss_sync_is_accepted_with_a_warning() {
        let (_, d) = p("rokfoss-sync=true\n");
        let d = only(&d);
        assert_eq!(d.severity, Severity::Warning);
        assert!(d.message.contains("no effect"), "{d}");
        let (_, d) = p("rokfoss-sync=perhaps\n");
        assert!(only(&d).is_error());
        let (_, d) = p("rokfoss-sync=false\n");
        assert!(d.is_empty(), "{d:#?}");
    }

    #[test]
    fn malformed_and_empty_lines() {
        let (_, d) = p("just words\n=value\nsyncps=\n");
        assert_eq!(d.len(), 3, "{d:#?}");
        assert!(d[0].is_error() && d[1].is_error());
        assert!(d[0].fix.contains("key=value"), "{}", d[0]);
        assert_eq!(d[2].severity, Severity::Warning);
        assert_eq!(d[2].line, 3);
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(suggest("retry", KEYS), None);
        assert_eq!(suggest("retires", KEYS), Some("retries"));
        assert_eq!(suggest("webhook", KEYS), Some("webhookurl"));
        assert_eq!(suggest("webroo", KEYS), Some("webroot"));
        assert_eq!(suggest("zzz", KEYS), None);
        assert_eq!(suggest("webhookur", KEYS), Some("webhookurl"));
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("h:25"), Some(("h", Some(25))));
        assert_eq!(split_host_port("[::1]:25"), Some(("::1", Some(25))));
        assert_eq!(split_host_port("::1"), Some(("::1", None)));
        assert_eq!(split_host_port("h:x"), None);
        assert!(!valid_host("-oProxy"));
        assert!(!valid_host("a b"));
    }

    #[test]
    fn missing_file_is_defaults() {
        let (g, d) = load(Path::new("/nonexistent/dsync/xync.conf"));
        assert!(d.is_empty());
        assert_eq!(g, Global::default());
    }
}
