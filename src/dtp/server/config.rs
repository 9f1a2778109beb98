//! The host's whole configuration, read and checked at once: `HOME/dtp/`
//! (list, firewall, motd) and the `webroot=` and `dtp-*` keys of xync.conf.

use std::io::{self, Write};
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::firewall::{self, Firewall};
use super::list::{self, Repo};
use super::motd;
use crate::diag::Diagnostic;
use crate::manager::home::Home;
use crate::manager::xync;

/// Everything the service needs to know; replaced as a whole on reload.
#[derive(Debug, Clone)]
pub struct Config {
    pub repos: Vec<Repo>,
    pub firewall: Firewall,
    pub motd: Option<PathBuf>,
    /// `dtp-listen`, read at start only (a reload keeps the socket).
    pub listen: SocketAddr,
    /// `dtp-maxconn`: connections per client address.
    pub maxconn: usize,
    /// `dtp-bwlimit` in bytes per second per client address.
    pub bwlimit: Option<u64>,
    /// `dtp-user`: the account a service started as root runs as, read at
    /// start only (a reload cannot change who the service is).
    pub user: Option<String>,
}

impl Config {
    pub fn repo(&self, name: &str) -> Option<&Repo> {
        self.repos.iter().find(|r| r.name == name)
    }
}

/// A configuration without errors, and its warnings.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

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

/// Read every file. Any error (in these files or xync.conf) refuses the
/// whole: the service must not run with a configuration other than written.
pub fn load(home: &Home) -> Result<Loaded, Vec<Diagnostic>> {
    let (global, mut diags) = xync::load(&home.xync_conf());
    let dir = dtp_dir(home);
    let text = |name: &str, diags: &mut Vec<Diagnostic>| read(&dir.join(name), diags);

    let list_path = dir.join("list.conf");
    let list_text = text("list.conf", &mut diags);
    let (repos, d) = list::parse(&list_path, &list_text, global.webroot.as_deref());
    diags.extend(d);
    if repos.is_empty() && !diags.iter().any(|d| d.file == list_path) {
        diags.push(Diagnostic::warning(
            &list_path,
            0,
            "no repository is listed: the service serves nothing",
            "write the folders to serve below webroot=, one per line (e.g. /debian); then dsync -reload",
        ));
    }

    let fw_text = text("firewall.conf", &mut diags);
    let (firewall, d) = firewall::parse(&dir.join("firewall.conf"), &fw_text);
    diags.extend(d);

    let motd_text = text("motd.conf", &mut diags);
    let (motd, d) = motd::resolve(&dir.join("motd.conf"), &motd_text);
    diags.extend(d);

    let listen = parse_listen(&global.dtp_listen).unwrap_or_else(default_listen);
    let config = Config {
        repos,
        firewall,
        motd,
        listen,
        maxconn: global.dtp_maxconn,
        bwlimit: (global.dtp_bwlimit > 0).then(|| global.dtp_bwlimit.saturating_mul(1024)),
        user: global.dtp_user,
    };
    if diags.iter().any(Diagnostic::is_error) {
        Err(diags)
    } else {
        Ok(Loaded {
            config,
            warnings: diags,
        })
    }
}

/// `ADDRESS:PORT`, or a bare `PORT` meaning every address (`[::]:PORT`).
pub fn parse_listen(value: &str) -> Option<SocketAddr> {
    let value = value.trim();
    if let Ok(port) = value.parse::<u16>() {
        return Some(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)));
    }
    value.parse().ok()
}

fn default_listen() -> SocketAddr {
    parse_listen(xync::DTP_LISTEN_DEFAULT).expect("the default parses")
}

/// A host file's text; a missing file is empty (its defaults), an unreadable
/// one an error.
fn read(path: &Path, diags: &mut Vec<Diagnostic>) -> String {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                diags.push(Diagnostic::error(
                    path,
                    0,
                    "not UTF-8 text",
                    "save the file as UTF-8 (e.g. iconv -t UTF-8)",
                ));
                String::new()
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            diags.push(Diagnostic::error(
                path,
                0,
                format!("cannot read: {e}"),
                format!("make {} a readable file (chmod 644)", path.display()),
            ));
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        for (text, want) in [
            ("47921", "[::]:47921"),
            ("[::]:80", "[::]:80"),
            ("0.0.0.0:8080", "0.0.0.0:8080"),
            ("127.0.0.1:1", "127.0.0.1:1"),
            ("[::1]:9", "[::1]:9"),
        ] {
            assert_eq!(parse_listen(text), Some(want.parse().unwrap()), "{text}");
        }
        assert_eq!(parse_listen("everywhere"), None);
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
