//! The DTP host service: serves manifests and files read-only over HTTP/1.1.
//!
//! It knows no dsync home: its caller (dsync's `manager::dtp_host`) hands
//! it plain values and paths ([`Host`]) and a [`Loader`] that reads the
//! configuration again.
//!
//! - Configuration ([`config`]): the host files `list.conf`, `firewall.conf`,
//!   `motd.conf` ([`Files`], parsed here) and the [`Settings`] `webroot`,
//!   `listen`, `maxconn`, `bwlimit`, `user` (dsync's xync.conf). SIGHUP has the
//!   [`Loader`] read it all again (not `listen`); a configuration with errors is
//!   logged and the old one kept. The motd is read with it ([`motd::Motd`]),
//!   a folder of `list.conf` not there yet is a warning ([`list`]).
//! - Safety: targets are checked raw and decoded ([`paths`]); files are opened
//!   below the repository root with `openat2`, no symlink followed, regular
//!   files only (`open`); our own temporary files are never served.
//! - Limits: a per-address connection cap (503), a deadline for request heads
//!   and idle keep-alive, a deadline for stuck writes, an optional per-address
//!   bandwidth limit shared by that address's downloads, and a budget of file
//!   descriptors (`descriptors`: the soft limit raised to the hard one, each
//!   socket and open file counted, 503 when it is spent).
//! - Privileges ([`privileges`]): started as root, the service binds, opens
//!   its access log and writes its pid file, then becomes `dtp-user` for good
//!   (`nobody` without one, as rsync's daemon) before it listens; then it
//!   refuses served trees its account could write or not read (warns, when
//!   not started as root). It keeps its home open to read the configuration
//!   again on reload (`held_home`).
//! - Log: [`Host::access_log`], one line per request or refusal; service
//!   messages on standard error.
//!
//! The environment shortens the timeouts for tests, in milliseconds:
//! `DSYNC_DTP_HEADER_TIMEOUT_MS` (request head and idle keep-alive, default
//! 10000), `DSYNC_DTP_WRITE_TIMEOUT_MS` (stuck write, 60000),
//! `DSYNC_DTP_GRACE_MS` (transfers finishing after SIGTERM, 5000).

mod access_log;
mod batch;
mod body;
pub mod config;
mod conn;
mod descriptors;
pub mod firewall;
mod headers;
mod held_home;
mod http;
mod io;
mod limits;
pub mod list;
mod listener;
pub mod motd;
mod open;
pub mod paths;
pub mod privileges;
mod range;
mod refuse;
mod run;
mod sendfile;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use config::{Config, Files, Loaded, Loader, Settings, parse_listen};
pub use listener::reachable;
pub use privileges::{Account, Identity};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot start: {0}")]
    Runtime(std::io::Error),
    #[error("cannot open the access log {}: {source}", path.display())]
    AccessLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Root without an account to become: [`privileges::identity`] says it
    /// with its fix; this is the last guard.
    #[error("started as root, it has no account to become: set dtp-user= in xync.conf")]
    Root,
    #[error("cannot drop root's privileges to {account}: {detail}")]
    Privileges { account: String, detail: String },
    /// Served trees the service must not serve as it runs, one line each.
    #[error("{}", .0.join("\n"))]
    Trees(Vec<String>),
    #[error("{0}")]
    Run(std::io::Error),
}

impl ServeError {
    /// Did the service stop before it served anything?
    pub fn before_serving(&self) -> bool {
        !matches!(self, ServeError::Run(_))
    }
}

/// Where the service keeps its files, and what reads its configuration.
pub struct Host {
    /// The folder the configuration is read below: what [`Host::load`] is
    /// given, held open by a service about to drop root.
    pub home: PathBuf,
    /// Reads the configuration again on reload.
    pub load: Loader,
    /// The access log; its folder is created.
    pub access_log: PathBuf,
}

/// Serve `config` until SIGTERM or SIGINT, as `identity` says. In this order:
/// open the access log, bind, call `on_bound` with the address bound (the pid
/// file is written there), become `dtp-user` if started as root, check the
/// served trees, and only then listen: a client connecting earlier is refused.
pub fn serve(
    host: Host,
    config: Config,
    identity: Identity,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    if privileges::is_root() && identity == Identity::Stay {
        return Err(ServeError::Root);
    }
    let limit = descriptors::raise_limit();
    // Network-bound: a few threads do; reads run on the blocking pool.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .max_blocking_threads(64)
        .thread_name("dtp")
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let Host {
        home,
        load,
        access_log: log_path,
    } = host;
    let log = log_path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| access_log::AccessLog::open(&log_path))
        .map_err(|source| ServeError::AccessLog {
            path: log_path,
            source,
        })?;
    runtime.block_on(async {
        let addr = config.listen;
        let (socket, note) =
            listener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
        if let Some(note) = note {
            say(&note);
        }
        let bound = socket.local_addr().map_err(ServeError::Runtime)?;
        on_bound(bound);
        // Opened while still root: a root's home may be closed to the account.
        let held = match &identity {
            Identity::Drop(_) => held_home::HeldHome::open(&home, load),
            Identity::Stay => held_home::HeldHome::by_path(&home, load),
        };
        let dropped = match identity {
            Identity::Drop(account) => {
                privileges::become_account(&account).map_err(|detail| {
                    ServeError::Privileges {
                        account: account.to_string(),
                        detail,
                    }
                })?;
                say(&format!(
                    "running as {account}, groups {:?}: root's privileges are dropped for good{}",
                    account.groups,
                    if account.by_default {
                        " (xync.conf sets no dtp-user=: the default, as rsync's daemon)"
                    } else {
                        ""
                    }
                ));
                Some(account)
            }
            Identity::Stay => {
                if let Some(spec) = &config.user {
                    let me = privileges::current_account();
                    let uid = rustix::process::geteuid().as_raw().to_string();
                    if *spec != me && *spec != uid {
                        say(&format!(
                            "dtp-user={spec} is used only by a service started as root; this one runs as {me}"
                        ));
                    }
                }
                None
            }
        };
        let check = privileges::check_trees(&config, dropped.is_some());
        for warning in &check.warnings {
            say(warning);
        }
        if !check.refusals.is_empty() {
            let mut lines = check.refusals;
            if let Some(account) = dropped.as_ref().filter(|a| a.by_default) {
                lines.push(format!(
                    "({} is the account a service started as root runs as when xync.conf sets no \
                     dtp-user=, as rsync's daemon does)",
                    account.name
                ));
            }
            return Err(ServeError::Trees(lines));
        }
        if let Some(account) = &dropped
            && let Err(diags) = held.load()
        {
            let first = diags
                .iter()
                .find(|d| d.is_error())
                .map_or_else(String::new, ToString::to_string);
            say(&format!(
                "warning: a reload (-reload, SIGHUP) would fail: read as {}, the configuration has errors: {first}",
                account.name
            ));
        }
        let listener =
            listener::listen(socket).map_err(|source| ServeError::Bind { addr: bound, source })?;
        say(&format!("listening on {bound}: {}", summary(&config)));
        let budget = descriptors::Budget::new(limit.now, descriptors::open_now());
        say_budget(limit, &budget);
        let timeouts = state::Timeouts::from_env();
        let shared = Arc::new(state::Shared::new(config, log, timeouts, budget));
        run::run(listener, shared, held, dropped)
            .await
            .map_err(ServeError::Run)
    })
}

/// One line about a configuration, for the service log.
pub(crate) fn summary(config: &Config) -> String {
    let names: Vec<&str> = config.repos.iter().map(|r| r.name.as_str()).collect();
    let firewall = if config.firewall.is_open() {
        "open to every address".to_string()
    } else {
        format!("{} allowed address entries", config.firewall.entries())
    };
    let bw = match config.bwlimit {
        Some(b) => format!("{} KiB/s per address", b / 1024),
        None => "no bandwidth limit".into(),
    };
    format!(
        "serving {} ({firewall}; {} connections per address; {bw})",
        if names.is_empty() {
            "nothing".to_string()
        } else {
            names.join(", ")
        },
        config.maxconn
    )
}

/// The descriptor limit and what clients may use of it, for the service log.
fn say_budget(limit: descriptors::Limit, budget: &descriptors::Budget) {
    let raised = if limit.now > limit.was {
        format!(" (raised from {} to the hard limit)", limit.was)
    } else {
        String::new()
    };
    say(&format!(
        "file descriptors: limit {}{raised}, {} for connections and open files",
        limit.now,
        budget.size()
    ));
    if budget.is_small() {
        say(&format!(
            "warning: {} file descriptors are few for a service: raise its limit              (LimitNOFILE= in its unit, or ulimit -Hn)",
            limit.now
        ));
    }
}

/// A line of the service log (standard error), timestamped.
pub(crate) fn say(message: &str) {
    eprintln!(
        "{} dsync-dtp[{}]: {message}",
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S"),
        std::process::id()
    );
}
