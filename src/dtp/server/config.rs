//! The host's whole configuration, read and checked at once: the host files
//! ([`Files`]: list, firewall, motd) and the [`Settings`] given as values
//! (dsync's home layer reads them from xync.conf).

use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::firewall::{self, Firewall};
use super::list::{self, Repo};
use super::motd;
use crate::diag::Diagnostic;

/// Everything the service needs to know; replaced as a whole on reload.
#[derive(Debug, Clone)]
pub struct Config {
    pub repos: Vec<Repo>,
    pub firewall: Firewall,
    /// The motd, read with the rest (see [`motd::Motd`]).
    pub motd: Option<motd::Motd>,
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

/// Reads the whole configuration below a folder, the service's home: the
/// one given to [`super::serve`], or, once root is dropped, the path of a
/// descriptor held open on it (`held_home`). The service calls it on every
/// reload; its caller, who knows which files are where, provides it.
pub type Loader = Arc<dyn Fn(&Path) -> Result<Loaded, Vec<Diagnostic>> + Send + Sync>;

/// Where the host files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// The served repositories ([`list`]).
    pub list: PathBuf,
    /// The addresses allowed ([`firewall`]).
    pub firewall: PathBuf,
    /// Where the motd is ([`motd`]).
    pub motd: PathBuf,
    /// The motd as a privileged command handed it over ([`motd::hand_over`]).
    pub motd_copy: PathBuf,
}

impl Files {
    /// `list.conf`, `firewall.conf`, `motd.conf` and `service.motd` in `dir`.
    pub fn in_dir(dir: &Path) -> Files {
        Files {
            list: dir.join("list.conf"),
            firewall: dir.join("firewall.conf"),
            motd: dir.join("motd.conf"),
            motd_copy: dir.join("service.motd"),
        }
    }
}

/// The settings that are not host files (dsync reads them from the
/// `webroot=` and `dtp-*` keys of its xync.conf), as values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The folder the lines of `list.conf` are below.
    pub webroot: Option<PathBuf>,
    /// See [`Config::listen`].
    pub listen: SocketAddr,
    /// See [`Config::maxconn`].
    pub maxconn: usize,
    /// See [`Config::bwlimit`].
    pub bwlimit: Option<u64>,
    /// See [`Config::user`].
    pub user: Option<String>,
}

/// Read the host files `files` and make the configuration of them and
/// `settings`. `diags` are the problems already found where the settings
/// come from. Any error, there or in these files, refuses the whole: the
/// service must not run with a configuration other than written.
pub fn load(
    files: &Files,
    settings: Settings,
    mut diags: Vec<Diagnostic>,
) -> Result<Loaded, Vec<Diagnostic>> {
    let list_path = &files.list;
    let list_text = read(list_path, &mut diags);
    let (repos, d) = list::parse(list_path, &list_text, settings.webroot.as_deref());
    diags.extend(d);
    if repos.is_empty() && !diags.iter().any(|d| d.file == *list_path) {
        diags.push(Diagnostic::warning(
            list_path,
            0,
            "no repository is listed: the service serves nothing",
            "write the folders to serve below webroot=, one per line (e.g. /debian); then dsync -reload",
        ));
    }

    let fw_text = read(&files.firewall, &mut diags);
    let (firewall, d) = firewall::parse(&files.firewall, &fw_text);
    diags.extend(d);

    let motd_text = read(&files.motd, &mut diags);
    let (motd, d) = motd::resolve(&files.motd, &motd_text, &files.motd_copy);
    diags.extend(d);

    let config = Config {
        repos,
        firewall,
        motd,
        listen: settings.listen,
        maxconn: settings.maxconn,
        bwlimit: settings.bwlimit,
        user: settings.user,
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
pub(crate) mod tests {
    use super::*;

    /// The settings of an xync.conf that sets nothing but `webroot`.
    pub(crate) fn settings(webroot: Option<&Path>) -> Settings {
        Settings {
            webroot: webroot.map(Path::to_path_buf),
            listen: SocketAddr::from((Ipv6Addr::UNSPECIFIED, crate::dtp::DEFAULT_PORT)),
            maxconn: 64,
            bwlimit: None,
            user: None,
        }
    }

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
    }
}
