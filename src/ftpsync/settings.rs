//! From `ftpsync.conf` to one checked [`Settings`]: where the file is found, and
//! every default exactly as ftpsync 20180513+nmu1 sets it.

use std::path::{Path, PathBuf};

use crate::shellconf::{self, ShellConfError, Vars};
use crate::trace::MirrorInfo;

use super::cli::Request;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("Can't read config file {name}!")]
    NoConfig {
        name: String,
        searched: Vec<PathBuf>,
    },
    #[error("{0}")]
    Parse(#[from] ShellConfError),
    /// A variable ftpsync requires (`${VAR:?message}`).
    #[error("{var}: {message}")]
    Missing { var: &'static str, message: String },
    #[error("ARCH_EXCLUDE and ARCH_INCLUDE are mutually exclusive.  Set only one.")]
    BothArchFilters,
    /// A path or host rsync would read as an option (`TO=--rsh=…`).
    #[error(
        "{var}={value:?} in {path}: starts with '-', so rsync would take it for an option; write the real {var} (an absolute path or a host name)"
    )]
    OptionLike {
        var: &'static str,
        value: String,
        path: PathBuf,
    },
    #[error("{0}")]
    VulnerableRsync(#[from] crate::rsync::gate::Refused),
    #[error("Unknown rsync transport configured ({0})")]
    UnknownTransport(String),
    #[error(
        "{var}={value:?} in {path}: not a whole number; write digits only, e.g. {var}={default}"
    )]
    NotANumber {
        var: &'static str,
        value: String,
        path: PathBuf,
        default: String,
    },
}

/// How rsync reaches the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain rsync daemon protocol (`undefined` in the trace, as ftpsync writes it).
    Daemon,
    Ssh,
    Ssl,
}

impl Transport {
    pub fn trace_name(&self) -> &'static str {
        match self {
            Transport::Daemon => "undefined",
            Transport::Ssh => "ssh",
            Transport::Ssl => "ssl",
        }
    }
}

/// Everything a run needs, resolved once.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `ftpsync` or `ftpsync-ARCHIVE`: names the config and the log files.
    pub name: String,
    pub config_path: PathBuf,
    pub mirrorname: String,
    /// `TO` as written (a trailing slash matters to rsync and is kept).
    pub to: String,
    pub mailto: String,
    pub hub: bool,
    pub rsync_host: String,
    pub rsync_source: String,
    pub transport: Transport,
    pub arch_include: String,
    pub arch_exclude: String,
    pub exclude: String,
    pub logdir: PathBuf,
    pub lockdir: PathBuf,
    pub log: PathBuf,
    pub log_rsync: PathBuf,
    pub log_rsync_error: PathBuf,
    pub errors_only: bool,
    pub full_logs: bool,
    pub logrotate: u32,
    pub uipsleep: u64,
    pub uipretries: u32,
    pub tracehost: String,
    pub rsync: String,
    /// What `RSYNC --version` reported; chooses the default `RSYNC_OPTIONS`.
    pub rsync_protocol: Option<u32>,
    /// What the rsync check has to say (a backport used, an override), for the log.
    pub rsync_gate_note: Option<String>,
    /// `MIN_UPSTREAM_RATIO` (ours; default 0.5, 0 turns it off): stage two is
    /// not run when stage one's upstream lists fewer regular files than this
    /// fraction of the mirror's, counted with the same filters (src/shrink.rs).
    pub min_upstream_ratio: f64,
    pub rsync_extra: String,
    pub rsync_bw: String,
    /// `RSYNC_OPTIONS` if set; otherwise chosen from the rsync protocol version.
    pub rsync_options: Option<String>,
    pub rsync_options1: String,
    pub rsync_options2: String,
    pub callback_user: String,
    pub callback_host: String,
    pub callback_key: String,
    pub hooks: [String; 5],
    pub program: String,
    pub basedir: String,
    pub bindir: String,
    pub info: MirrorInfo,
    pub smtp_server: Option<String>,
    /// The environment children (rsync, hooks) get: exported variables plus
    /// `RSYNC_PASSWORD`, `RSYNC_PROXY` and, for ssl, `RSYNC_SSL_*`.
    pub child_env: Vec<(String, String)>,
}

/// Directories searched for the config, in order.
pub fn config_dirs(vars: &Vars) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    // A git checkout of archvsync keeps its config in $BASEDIR/etc.
    if let Some(base) = vars.get("BASEDIR").filter(|b| !b.is_empty()) {
        dirs.push(Path::new(base).join("etc"));
    }
    let home = vars.get("HOME").unwrap_or("");
    dirs.push(Path::new(home).join(".config/ftpsync"));
    dirs.push(etc_dir());
    dirs
}

/// `/etc/ftpsync`, or the folder `DSYNC_ETC_FTPSYNC` names: tests (and `-test`
/// on a machine with its own setup) must not read this machine's configs.
pub fn etc_dir() -> PathBuf {
    std::env::var_os("DSYNC_ETC_FTPSYNC")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/etc/ftpsync"), PathBuf::from)
}

/// The config file name for `name`, made safe as ftpsync does.
pub fn config_file_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .collect::<String>()
        + ".conf"
}

/// The variables ftpsync has set before it sources the config, which the config
/// may read or override.
pub fn initial_vars(name: &str, request: &Request) -> Vars {
    let mut vars = Vars::from_env();
    let home = vars.get("HOME").unwrap_or("").to_string();
    let flag = |b: bool| if b { "true" } else { "false" };
    // Variables bash itself provides, which configs use (`MIRRORNAME=$HOSTNAME`).
    vars.set("HOSTNAME", crate::host::name());
    // SAFETY: getuid/geteuid cannot fail.
    let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    vars.set("UID", uid.to_string());
    vars.set("EUID", euid.to_string());
    if vars.get("PWD").is_none()
        && let Ok(dir) = std::env::current_dir()
    {
        vars.set("PWD", dir.to_string_lossy());
    }
    vars.set("VERSION", "20180513+nmu1");
    vars.set("NAME", name);
    vars.set("ARCHIVE", request.archive.as_str());
    vars.set("SYNCSTAGE1", flag(request.stage1));
    vars.set("SYNCSTAGE2", flag(request.stage2));
    vars.set("SYNCALL", flag(request.all));
    vars.set("SYNCMHOP", flag(request.mhop));
    vars.set("SYNCCALLBACK", flag(request.callback));
    vars.set("LOCKDIR", format!("{home}/.local/lock/ftpsync"));
    vars.set("LOGDIR", format!("{home}/.local/log/ftpsync"));
    if let Some(trigger) = &request.trigger {
        vars.set("INFO_TRIGGER", trigger.as_str());
    }
    vars
}

/// Find and evaluate the config file into `vars`; returns its path.
pub fn load(name: &str, vars: &mut Vars) -> Result<PathBuf, SettingsError> {
    let file = config_file_name(name);
    let searched: Vec<PathBuf> = config_dirs(vars)
        .into_iter()
        .map(|d| d.join(&file))
        .collect();
    let path = searched
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| SettingsError::NoConfig {
            name: file.clone(),
            searched: searched.clone(),
        })?;
    shellconf::eval_file(&path, vars)?;
    Ok(path)
}

/// Read a variable the way `${VAR:-default}` does: unset and empty both give the default.
fn or(vars: &Vars, name: &str, default: &str) -> String {
    match vars.get(name) {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => default.to_string(),
    }
}

/// Apply ftpsync's defaults and checks, in its order.
pub fn resolve(
    name: &str,
    config_path: PathBuf,
    vars: &mut Vars,
) -> Result<Settings, SettingsError> {
    let fqdn = crate::host::fqdn();
    let mirrorname = or(vars, "MIRRORNAME", &fqdn);
    let to = or(vars, "TO", "/srv/mirrors/debian/");
    not_an_option(vars, "TO", &config_path)?;
    let mailto = match vars.get("MAILTO").filter(|v| !v.is_empty()) {
        Some(m) => m.to_string(),
        None => vars
            .get("LOGNAME")
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or(SettingsError::Missing {
                var: "LOGNAME",
                message:
                    "Environment variable LOGNAME unset, please check your system or specify MAILTO"
                        .into(),
            })?,
    };
    let hub = or(vars, "HUB", "false") == "true";

    let explicit_source = vars
        .get("RSYNC_SOURCE")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let rsync_host = or(vars, "RSYNC_HOST", "");
    not_an_option(vars, "RSYNC_HOST", &config_path)?;
    not_an_option(vars, "RSYNC_SOURCE", &config_path)?;
    let rsync_source = match explicit_source {
        Some(source) => source,
        None => {
            if rsync_host.is_empty() {
                return Err(SettingsError::Missing {
                    var: "RSYNC_HOST",
                    message: format!(
                        "Missing a host to mirror from, please set RSYNC_HOST variable in {}",
                        config_path.display()
                    ),
                });
            }
            let path = or(vars, "RSYNC_PATH", "debian");
            match vars.get("RSYNC_USER").filter(|u| !u.is_empty()) {
                Some(user) => format!("{user}@{rsync_host}::{path}"),
                None => format!("{rsync_host}::{path}"),
            }
        }
    };
    let ssl_default = if vars.get("RSYNC_SSL") == Some("true") {
        "ssl"
    } else {
        "undefined"
    };
    let transport_name = or(vars, "RSYNC_TRANSPORT", ssl_default);

    let logdir = PathBuf::from(or(vars, "LOGDIR", ""));
    let log = match vars.get("LOG").filter(|l| !l.is_empty()) {
        Some(l) => PathBuf::from(l),
        None => logdir.join(format!("{name}.log")),
    };
    // ftpsync asks rsync for its protocol version here, before checking the
    // transport and architecture settings (visible to an RSYNC= wrapper).
    let rsync = or(vars, "RSYNC", "rsync");
    let rsync_argv: Vec<String> = rsync.split_whitespace().map(str::to_string).collect();
    let version_text = crate::rsync::version_output(&rsync_argv);
    let rsync_protocol = version_text.as_deref().and_then(crate::rsync::protocol_of);
    // Not ftpsync's: an rsync a hostile upstream can take over is refused
    // before anything is touched (src/rsync/gate.rs).
    let rsync_gate = crate::rsync::gate::check(
        rsync_argv.first().map_or("rsync", String::as_str),
        version_text.as_deref(),
        vars.get("ALLOW_VULNERABLE_RSYNC") == Some("true"),
        &format!("ALLOW_VULNERABLE_RSYNC=true in {}", config_path.display()),
    )?;
    let transport = match transport_name.as_str() {
        "undefined" => Transport::Daemon,
        "ssh" => Transport::Ssh,
        "ssl" => Transport::Ssl,
        other => return Err(SettingsError::UnknownTransport(other.to_string())),
    };
    let arch_include = or(vars, "ARCH_INCLUDE", "");
    let arch_exclude = or(vars, "ARCH_EXCLUDE", "");
    if !arch_include.is_empty() && !arch_exclude.is_empty() {
        return Err(SettingsError::BothArchFilters);
    }

    let hooks = ["HOOK1", "HOOK2", "HOOK3", "HOOK4", "HOOK5"].map(|h| or(vars, h, ""));
    let settings = Settings {
        name: name.to_string(),
        config_path: config_path.clone(),
        mirrorname,
        to,
        mailto,
        hub,
        rsync_host,
        rsync_source,
        transport,
        arch_include,
        arch_exclude,
        exclude: or(vars, "EXCLUDE", ""),
        log_rsync: logdir.join(format!("rsync-{name}.log")),
        log_rsync_error: logdir.join(format!("rsync-{name}.error")),
        lockdir: PathBuf::from(or(vars, "LOCKDIR", "")),
        logdir,
        log,
        errors_only: or(vars, "ERRORSONLY", "true") != "false",
        full_logs: or(vars, "FULLLOGS", "false") == "true",
        logrotate: number(vars, "LOGROTATE", 14, &config_path)?,
        uipsleep: number(vars, "UIPSLEEP", 1200, &config_path)?,
        uipretries: number(vars, "UIPRETRIES", 3, &config_path)?,
        tracehost: or(vars, "TRACEHOST", &fqdn),
        rsync,
        rsync_protocol,
        rsync_gate_note: rsync_gate.note(),
        min_upstream_ratio: ratio(vars, "MIN_UPSTREAM_RATIO", &config_path)?,
        rsync_extra: or(vars, "RSYNC_EXTRA", ""),
        rsync_bw: or(vars, "RSYNC_BW", "0"),
        rsync_options: vars
            .get("RSYNC_OPTIONS")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        rsync_options1: or(vars, "RSYNC_OPTIONS1", DEFAULT_OPTIONS1),
        rsync_options2: or(vars, "RSYNC_OPTIONS2", DEFAULT_OPTIONS2),
        callback_user: or(vars, "CALLBACKUSER", "archvsync"),
        callback_host: or(vars, "CALLBACKHOST", "none"),
        callback_key: or(vars, "CALLBACKKEY", "none"),
        hooks,
        program: or(vars, "PROGRAM", name),
        basedir: or(vars, "BASEDIR", ""),
        bindir: or(vars, "BINDIR", ""),
        info: MirrorInfo {
            maintainer: or(vars, "INFO_MAINTAINER", ""),
            sponsor: or(vars, "INFO_SPONSOR", ""),
            country: or(vars, "INFO_COUNTRY", ""),
            location: or(vars, "INFO_LOCATION", ""),
            throughput: or(vars, "INFO_THROUGHPUT", ""),
            trigger: or(vars, "INFO_TRIGGER", ""),
        },
        smtp_server: vars
            .get("SMTP_SERVER")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        child_env: child_env(vars, &transport),
    };
    Ok(settings)
}

/// ftpsync exports `RSYNC_PASSWORD` and `RSYNC_PROXY` (empty if unset) and, for
/// the ssl transport, the `RSYNC_SSL_*` settings the tunnel helper reads.
fn child_env(vars: &mut Vars, transport: &Transport) -> Vec<(String, String)> {
    let mut exported = vec![
        ("RSYNC_PASSWORD", or(vars, "RSYNC_PASSWORD", "")),
        ("RSYNC_PROXY", or(vars, "RSYNC_PROXY", "")),
    ];
    if *transport == Transport::Ssl {
        exported.push(("RSYNC_SSL_PORT", or(vars, "RSYNC_SSL_PORT", "1873")));
        exported.push((
            "RSYNC_SSL_CAPATH",
            or(vars, "RSYNC_SSL_CAPATH", "/etc/ssl/certs"),
        ));
        exported.push(("RSYNC_SSL_METHOD", or(vars, "RSYNC_SSL_METHOD", "stunnel")));
    }
    for (name, value) in exported {
        vars.set(name, value);
        vars.export(name);
    }
    vars.exported()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A number setting. ftpsync would only fail on garbage mid-sync (bash arithmetic
/// or `sleep`); we refuse it before touching anything.
fn number<T: std::str::FromStr + std::fmt::Display>(
    vars: &Vars,
    var: &'static str,
    default: T,
    path: &Path,
) -> Result<T, SettingsError> {
    match vars.get(var).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(value) => value.trim().parse().map_err(|_| SettingsError::NotANumber {
            var,
            value: value.to_string(),
            path: path.to_path_buf(),
            default: default.to_string(),
        }),
    }
}

/// Refuse a value of `var` that rsync would parse as an option: ftpsync puts
/// `TO` and the source on rsync's command line without `--`.
fn not_an_option(vars: &Vars, var: &'static str, path: &Path) -> Result<(), SettingsError> {
    match vars.get(var) {
        Some(value) if value.starts_with('-') => Err(SettingsError::OptionLike {
            var,
            value: value.to_string(),
            path: path.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

/// A fraction from 0 to 1 ([`DEFAULT_MIN_UPSTREAM_RATIO`] when unset).
fn ratio(vars: &Vars, var: &'static str, path: &Path) -> Result<f64, SettingsError> {
    let value: f64 = number(vars, var, DEFAULT_MIN_UPSTREAM_RATIO, path)?;
    if (0.0..=1.0).contains(&value) {
        return Ok(value);
    }
    Err(SettingsError::NotANumber {
        var,
        value: value.to_string(),
        path: path.to_path_buf(),
        default: "0.5".into(),
    })
}

/// `MIN_UPSTREAM_RATIO` unset: on, unlike ftpsync (which has no such guard),
/// because an emptied upstream would otherwise empty the mirror.
pub const DEFAULT_MIN_UPSTREAM_RATIO: f64 = 0.5;
/// ftpsync's stage-one options: everything except the index files.
pub const DEFAULT_OPTIONS1: &str = "--include=*.diff/ --exclude=*.diff/Index --exclude=Packages* --exclude=Sources* --exclude=Release* --exclude=InRelease --include=i18n/by-hash --exclude=i18n/* --exclude=ls-lR*";
/// ftpsync's stage-two options: the rest, with deletions, applied at once.
pub const DEFAULT_OPTIONS2: &str =
    "--max-delete=40000 --delay-updates --delete --delete-delay --delete-excluded";
/// `RSYNC_OPTIONS` default for rsync protocol ≥ 31.
pub const DEFAULT_OPTIONS: &str = "-prltvHSB8192 --safe-links --chmod=D755,F644 --timeout 120 --stats --no-human-readable --no-inc-recursive";
/// `RSYNC_OPTIONS` default for older rsync (no `--chmod`).
pub const DEFAULT_OPTIONS_OLD: &str =
    "-prltvHSB8192 --safe-links --timeout 120 --stats --no-human-readable --no-inc-recursive";
