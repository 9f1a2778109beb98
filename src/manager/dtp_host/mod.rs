//! The DTP host as dsync runs it from its home: the commands that read the
//! home's files and hand the protocol layer ([`crate::dtp`]) plain values.
//!
//! - here: where the host files are (`HOME/dtp/`), their samples, and the
//!   whole configuration read from them and xync.conf ([`load`], also the
//!   service's [`loader`] on reload)
//! - [`service`]: `-service`, `-service -foreground`, `-stop-service`,
//!   `-reload`, and the pid file
//! - [`startup`]: `-startup`, the systemd unit
//! - [`gendsync`]: `-gendsync`, a manifest for every `dsync=true` repository,
//!   its hash cache under the home

pub mod gendsync;
pub mod service;
pub mod startup;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::Diagnostic;
use crate::dtp::server::{self, Files, Loaded, Loader, Settings};
use crate::manager::home::Home;
use crate::manager::xync;

/// The host files, as the first `-service` writes them (`etc/dtp/`).
pub const SAMPLES: &[(&str, &str)] = &[
    ("list.conf", include_str!("../../../etc/dtp/list.conf")),
    (
        "firewall.conf",
        include_str!("../../../etc/dtp/firewall.conf"),
    ),
    ("motd.conf", include_str!("../../../etc/dtp/motd.conf")),
];

/// `HOME/dtp`
pub fn dtp_dir(home: &Home) -> PathBuf {
    home.root.join("dtp")
}

/// `HOME/dtp/list.conf`, `firewall.conf`, `motd.conf`
pub fn files(home: &Home) -> Files {
    Files::in_dir(&dtp_dir(home))
}

/// `HOME/logs/dtp-access.log`
pub fn access_log_path(home: &Home) -> PathBuf {
    home.logs_dir().join("dtp-access.log")
}

/// Create `HOME/dtp/` and each missing host file from its sample; returns the
/// files created.
pub fn ensure_files(home: &Home) -> io::Result<Vec<PathBuf>> {
    let dir = dtp_dir(home);
    std::fs::create_dir_all(&dir)?;
    let mut created = Vec::new();
    for (name, text) in SAMPLES {
        let path = dir.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(text.as_bytes())?;
                created.push(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(created)
}

/// Read every file: the host files and the `webroot=` and `dtp-*` keys of
/// xync.conf. Any error (in these files or xync.conf) refuses the whole.
pub fn load(home: &Home) -> Result<Loaded, Vec<Diagnostic>> {
    let (settings, diags) = settings(home);
    server::config::load(&files(home), settings, diags)
}

/// What `dsync -test` says of the DTP host files, once `-service` made
/// them (`HOME/dtp/`); xync.conf's own problems are reported by -test already.
pub fn check(home: &Home) -> Vec<Diagnostic> {
    if !dtp_dir(home).is_dir() {
        return Vec::new();
    }
    let (settings, _) = settings(home);
    match server::config::load(&files(home), settings, Vec::new()) {
        Ok(loaded) => loaded.warnings,
        Err(diags) => diags,
    }
}

/// The `webroot=` and `dtp-*` keys of xync.conf, and its problems.
fn settings(home: &Home) -> (Settings, Vec<Diagnostic>) {
    let (global, diags) = xync::load(&home.xync_conf());
    let settings = Settings {
        webroot: global.webroot,
        listen: server::parse_listen(&global.dtp_listen).unwrap_or_else(default_listen),
        maxconn: global.dtp_maxconn,
        bwlimit: (global.dtp_bwlimit > 0).then(|| global.dtp_bwlimit.saturating_mul(1024)),
        user: global.dtp_user,
    };
    (settings, diags)
}

/// Hand the motd `loaded` read to the service (`HOME/dtp/service.motd`), for
/// its reloads as an account that may not read the file (see
/// [`server::motd::Motd`]). Run by `-service` and `-reload`; a failure is a
/// warning, as a motd is.
pub fn hand_over_motd(home: &Home, loaded: &Loaded) {
    let copy = files(home).motd_copy;
    if let Err(e) = server::motd::hand_over(&copy, loaded.config.motd.as_ref()) {
        eprintln!(
            "dsync: warning: cannot write {} ({e}): a reload by the service may show no motd",
            copy.display()
        );
    }
}

/// [`load`] of the home below the folder given: what the service reads its
/// configuration again with on reload (through a descriptor of the home,
/// once it dropped root).
pub fn loader() -> Loader {
    Arc::new(|root: &Path| {
        load(&Home {
            root: root.to_path_buf(),
        })
    })
}

/// The service as `-service -foreground` runs it from `home`.
pub fn host(home: &Home) -> server::Host {
    server::Host {
        home: home.root.clone(),
        load: loader(),
        access_log: access_log_path(home),
    }
}

fn default_listen() -> SocketAddr {
    server::parse_listen(xync::DTP_LISTEN_DEFAULT).expect("the default parses")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_listen_address() {
        assert_eq!(default_listen().port(), crate::dtp::DEFAULT_PORT);
    }

    #[test]
    fn samples_are_written_once_and_parse_clean() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::locate(Some(dir.path()));
        let created = ensure_files(&home).unwrap();
        assert_eq!(created.len(), 3);
        assert!(ensure_files(&home).unwrap().is_empty());
        std::fs::write(
            home.xync_conf(),
            format!("webroot={}\n", dir.path().display()),
        )
        .unwrap();
        let loaded = load(&home).unwrap();
        assert!(loaded.config.repos.is_empty() && loaded.config.firewall.is_open());
        assert_eq!(loaded.config.maxconn, 64);
        assert_eq!(loaded.config.bwlimit, None);
        // Only "nothing listed", and possibly this machine's rsyncd motd.
        assert!(
            loaded
                .warnings
                .iter()
                .any(|d| d.message.contains("no repository"))
        );
    }

    #[test]
    fn errors_of_every_file_are_gathered() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::locate(Some(dir.path()));
        let d = dtp_dir(&home);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::create_dir_all(dir.path().join("web/debian")).unwrap();
        std::fs::write(
            home.xync_conf(),
            format!("webroot={}/web\ndtp-bwlimit=8\n", dir.path().display()),
        )
        .unwrap();
        std::fs::write(d.join("list.conf"), "debian\n").unwrap();
        std::fs::write(d.join("firewall.conf"), "allow=127.0.0.1\n").unwrap();
        let loaded = load(&home).unwrap();
        assert_eq!(loaded.config.repos[0].name, "debian");
        assert_eq!(loaded.config.bwlimit, Some(8192));
        std::fs::write(d.join("firewall.conf"), "\nallow=300.1.1.1\n").unwrap();
        std::fs::write(d.join("list.conf"), "../x\n").unwrap();
        let errors = load(&home).unwrap_err();
        let at: Vec<String> = errors
            .iter()
            .filter(|d| d.is_error())
            .map(|d| {
                format!(
                    "{}:{}",
                    d.file.file_name().unwrap().to_string_lossy(),
                    d.line
                )
            })
            .collect();
        assert_eq!(at, ["list.conf:1", "firewall.conf:2"]);
    }
}
