//! `dtp/motd.conf`: `경로=/path/of/motd` (the key is Korean for "path", as the
//! reference tool's). Without it, the `motd file` of `/etc/rsyncd.conf`, so a
//! host that already greets rsync clients greets DTP clients the same way.

use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;
use crate::keyvalue::{Parsed, parse_line, raw_lines};

/// The key of motd.conf.
pub const KEY: &str = "경로";

/// Where rsync's daemon keeps its settings.
pub const RSYNCD_CONF: &str = "/etc/rsyncd.conf";

/// The most of a motd file shown (and read).
pub const MAX: u64 = 64 * 1024;

/// The motd the service shows, read when the configuration is.
///
/// It is read with the configuration, not per request: a service started as
/// root reads it before it drops root, so a motd only root may read (in
/// root's home, as KRFOSS's guide places it) is shown all the same. A reload
/// runs as the dropped account; it reads the copy the root-run `dsync
/// -reload` handed over ([`hand_over`]) when it may not read the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Motd {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its text (at most [`MAX`] bytes of it, invalid UTF-8 replaced).
    pub text: String,
}

/// The motd file named by motd.conf (`None` if it names none), and problems.
pub fn parse(path: &Path, text: &str) -> (Option<PathBuf>, Vec<Diagnostic>) {
    let mut motd = None;
    let mut diags = Vec::new();
    for line in raw_lines(text) {
        let n = line.number;
        match parse_line(line.text) {
            Parsed::Blank => {}
            Parsed::Pair { key, value } if key == KEY => {
                if value.starts_with('/') && !value.chars().any(char::is_control) {
                    motd = Some(PathBuf::from(value));
                } else {
                    diags.push(Diagnostic::error(
                        path,
                        n,
                        format!("{KEY}={value} is not an absolute path"),
                        format!("write the motd file's full path, e.g. {KEY}=/etc/dsync-motd.txt"),
                    ));
                }
            }
            Parsed::Pair { key, .. } => diags.push(Diagnostic::error(
                path,
                n,
                format!("unknown key `{key}`: motd.conf knows only {KEY}="),
                format!("write {KEY}=/path/of/the/motd"),
            )),
            Parsed::Malformed => diags.push(Diagnostic::error(
                path,
                n,
                "not a key=value line",
                format!("write {KEY}=/path/of/the/motd, or put # in front of the line"),
            )),
        }
    }
    (motd, diags)
}

/// `motd file = PATH` of rsyncd.conf's global section. rsync compares
/// parameter names ignoring case and spaces, so `motdfile` counts too.
pub fn from_rsyncd(text: &str) -> Option<PathBuf> {
    let mut motd = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            break;
        }
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key: String = key
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if key == "motdfile" && !value.trim().is_empty() {
            motd = Some(PathBuf::from(value.trim()));
        }
    }
    motd
}

/// The motd to show: motd.conf's, else rsyncd.conf's, read now. `copy` is
/// what a privileged `dsync -reload` handed over ([`hand_over`]), used when
/// this process may not read the file itself. A motd that cannot be read is
/// a warning: the service runs without.
pub fn resolve(path: &Path, text: &str, copy: &Path) -> (Option<Motd>, Vec<Diagnostic>) {
    let (explicit, mut diags) = parse(path, text);
    // The file naming the motd: motd.conf, else rsyncd.conf.
    let named_by = if explicit.is_some() {
        path
    } else {
        Path::new(RSYNCD_CONF)
    };
    let chosen = explicit.or_else(|| {
        std::fs::read_to_string(RSYNCD_CONF)
            .ok()
            .and_then(|t| from_rsyncd(&t))
    });
    let Some(file) = chosen else {
        return (None, diags);
    };
    if let Err(why) = may_read_for(named_by, &file) {
        diags.push(Diagnostic::warning(
            path,
            0,
            why,
            "name a motd file owned by the account that owns the file naming it",
        ));
        return (None, diags);
    }
    match read_capped(&file) {
        Ok(text) => return (Some(Motd { path: file, text }), diags),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            if let Some(motd) = handed_over(copy, &file) {
                return (Some(motd), diags);
            }
            diags.push(Diagnostic::warning(
                path,
                0,
                format!(
                    "the motd file {} is not readable by {} ({e}); no motd is shown",
                    file.display(),
                    super::privileges::current_account()
                ),
                "run dsync -reload as root (it hands the motd to the service), \
                 or make the file readable by the service's account",
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => diags.push(Diagnostic::warning(
            path,
            0,
            format!(
                "the motd file {} does not exist; no motd is shown",
                file.display()
            ),
            format!("create it, or set {KEY}= to an existing file"),
        )),
        Err(e) => diags.push(Diagnostic::warning(
            path,
            0,
            format!(
                "cannot read the motd file {} ({e}); no motd is shown",
                file.display()
            ),
            format!("make it a readable regular file, or set {KEY}= to one"),
        )),
    }
    (None, diags)
}

/// As root, read `file` only if root or `file`'s owner owns `named_by`, the
/// file naming it: the motd is shown to every client, and the owner of a
/// home in which root runs `-service` must not have root publish a file
/// they may not read (`경로=/etc/shadow`). Others read what they may.
fn may_read_for(named_by: &Path, file: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let (Ok(naming), Ok(motd)) = (std::fs::metadata(named_by), std::fs::metadata(file)) else {
        return Ok(()); // nothing to protect, or reading it says why
    };
    if naming.uid() == 0 || naming.uid() == motd.uid() {
        return Ok(());
    }
    Err(format!(
        "the motd file {} (owned by uid {}) is not read: {} is owned by uid {}, \
         and root reads a motd for the service only when root or the motd's owner names it",
        file.display(),
        motd.uid(),
        named_by.display(),
        naming.uid()
    ))
}

/// Write `motd` where the service reads it when it may not read the file
/// itself (`copy`, in the service's home): the file's path on the first line,
/// then its text. World-readable, as the motd is shown to every client
/// anyway. `None` removes a copy.
pub fn hand_over(copy: &Path, motd: Option<&Motd>) -> io::Result<()> {
    let Some(motd) = motd else {
        return match std::fs::remove_file(copy) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    };
    // Root writes this into a home another account may own: a fresh
    // temporary name (O_EXCL), renamed over the copy, so nothing planted
    // there (a symlink to /etc/passwd) is ever written through.
    let dir = copy.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".service.motd.")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)?;
    // Whatever root's umask: the service's account must read it.
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    writeln!(file, "{}", motd.path.display())?;
    file.write_all(motd.text.as_bytes())?;
    file.persist(copy).map_err(|e| e.error)?;
    Ok(())
}

/// The copy in `copy` if it is of `file`.
fn handed_over(copy: &Path, file: &Path) -> Option<Motd> {
    let text = read_capped(copy).ok()?;
    let (source, text) = text.split_once('\n')?;
    (Path::new(source) == file).then(|| Motd {
        path: file.to_path_buf(),
        text: text.to_string(),
    })
}

/// At most [`MAX`] bytes of a regular file (not a FIFO that never ends), as text.
fn read_capped(path: &Path) -> io::Result<String> {
    // O_NONBLOCK: opening a FIFO for reading would wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn korean_key() {
        let (m, d) = parse(Path::new("motd.conf"), "# c\n경로 = /etc/motd.txt\n");
        assert!(d.is_empty());
        assert_eq!(m, Some(PathBuf::from("/etc/motd.txt")));
        let (m, d) = parse(Path::new("motd.conf"), "경로=relative\npath=/x\n");
        assert_eq!(m, None);
        assert_eq!(d.iter().map(|d| d.line).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn rsyncd_global_section_only() {
        let text = "uid = nobody\n  Motd File = /etc/rsync.motd\n[debian]\nmotd file = /x\n";
        assert_eq!(from_rsyncd(text), Some(PathBuf::from("/etc/rsync.motd")));
        assert_eq!(from_rsyncd("[m]\nmotd file=/x\n"), None);
        assert_eq!(
            from_rsyncd("# motd file = /x\nmotdfile=/y\n"),
            Some(PathBuf::from("/y"))
        );
    }

    #[test]
    fn the_copy_counts_only_for_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("service.motd");
        let motd = Motd {
            path: PathBuf::from("/root/dxync/dtp/welcome.motd"),
            text: "hello\nthere\n".into(),
        };
        hand_over(&copy, Some(&motd)).unwrap();
        assert_eq!(handed_over(&copy, &motd.path), Some(motd.clone()));
        assert_eq!(handed_over(&copy, Path::new("/etc/other.motd")), None);
        hand_over(&copy, None).unwrap();
        assert!(!copy.exists());
        hand_over(&copy, None).unwrap();
        // A symlink planted where the copy goes, or where the old code put
        // its temporary file, is replaced or left alone, never written through.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, &copy).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("service.motd.tmp")).unwrap();
        hand_over(&copy, Some(&motd)).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(handed_over(&copy, &motd.path), Some(motd));
        assert!(std::fs::symlink_metadata(&copy).unwrap().is_file());
    }

    /// A motd.conf root does not own names a file only root may read: as
    /// root, it is not read (a home's owner cannot have root publish it).
    #[test]
    fn root_reads_no_motd_named_by_another_account() {
        use std::os::unix::fs::PermissionsExt;
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (conf, secret) = (dir.path().join("motd.conf"), dir.path().join("secret"));
        std::fs::write(&secret, "root's secret\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = format!("{KEY}={}\n", secret.display());
        std::fs::write(&conf, &text).unwrap();
        let copy = dir.path().join("service.motd");
        let (motd, diags) = resolve(&conf, &text, &copy);
        assert_eq!(motd.map(|m| m.text).as_deref(), Some("root's secret\n"));
        assert!(diags.is_empty(), "{diags:?}");
        std::os::unix::fs::chown(&conf, Some(65534), None).unwrap();
        let (motd, diags) = resolve(&conf, &text, &copy);
        assert_eq!(motd, None);
        assert!(diags[0].message.contains("is not read"), "{diags:?}");
    }
}
