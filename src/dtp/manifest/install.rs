//! Writing `root/data.dsync` into a served tree.
//!
//! The tree is public (DTP, and often an rsync daemon serving the same
//! folder), so nothing else of ours may appear in it: a half-written or
//! unreadable file there is mirrored, or fails every downstream rsync (exit
//! 23). The manifest is written to an unnamed file (`O_TMPFILE`), made 0644,
//! synced, and only then given a name and renamed over `data.dsync`: a crash
//! before leaves nothing, and the name that exists between link and rename
//! is a whole, readable file. Where the file system has no `O_TMPFILE`, a
//! named temporary file is used, 0644 from the start.

use std::fs::{File, Permissions};
use std::io::{self, Seek};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, CWD, Mode, OFlags};

use super::{Header, Manifest, ManifestWriter, TEMP_PREFIX, cache};

/// The manifest's mode: served, possibly by another account.
const MODE: u32 = 0o644;

/// Write `root/data.dsync` atomically (see the module).
pub fn install(root: &Path, manifest: &Manifest) -> io::Result<()> {
    install_bytes(root, &manifest.encode())
}

/// [`install`] for bytes already encoded (a client installs exactly what it
/// fetched and checked).
pub fn install_bytes(root: &Path, bytes: &[u8]) -> io::Result<()> {
    install_from(root, &mut &bytes[..])
}

/// [`install_bytes`] for bytes too many to hold, read from `src`.
pub fn install_from(root: &Path, src: &mut impl io::Read) -> io::Result<()> {
    let mut pending = Pending::begin(root)?;
    io::copy(src, pending.file())?;
    pending.publish()
}

/// [`install`] for a manifest written entry by entry; its header.
pub fn install_written(
    root: &Path,
    writer: ManifestWriter,
    repo: &str,
    generated: i64,
) -> io::Result<Header> {
    let mut pending = Pending::begin(root)?;
    let header = writer.finish(repo, generated, pending.file())?;
    pending.publish()?;
    Ok(header)
}

/// A manifest on its way into a tree, for one too large to hold in memory:
/// write it into [`Pending::file`], then [`Pending::publish`]. Dropped
/// unpublished, it leaves nothing behind.
struct Pending {
    root: PathBuf,
    dir: File,
    file: File,
    /// The named fallback, when the file system has no unnamed files.
    named: Option<tempfile::NamedTempFile>,
}

impl Pending {
    fn begin(root: &Path) -> io::Result<Pending> {
        let dir = File::open(root)?;
        let (file, named) = match unnamed(&dir) {
            Ok(file) => (file, None),
            Err(e) if unsupported(&e) => {
                let tmp = named(root)?;
                (tmp.as_file().try_clone()?, Some(tmp))
            }
            Err(e) => return Err(e),
        };
        Ok(Pending {
            root: root.to_path_buf(),
            dir,
            file,
            named,
        })
    }

    /// Where the manifest's bytes go.
    fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Sync it and rename it over `root/data.dsync`.
    fn publish(mut self) -> io::Result<()> {
        self.file.sync_all()?;
        match self.named.take() {
            Some(tmp) => persist(tmp, &self.root)?,
            None => match publish(&self.dir, &self.file) {
                Ok(()) => {}
                // Unnamed but no way to name it: copy it into a named one.
                Err(e) if unsupported(&e) => {
                    let mut tmp = named(&self.root)?;
                    self.file.seek(io::SeekFrom::Start(0))?;
                    io::copy(&mut self.file, tmp.as_file_mut())?;
                    tmp.as_file().sync_all()?;
                    persist(tmp, &self.root)?;
                }
                Err(e) => return Err(e),
            },
        }
        // The rename is durable only once the folder is synced.
        self.dir.sync_all()
    }
}

/// An empty file without a name in `dir`, 0644.
fn unnamed(dir: &File) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        ".",
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(MODE),
    )?;
    let file = File::from(fd);
    // The umask may have taken bits away.
    file.set_permissions(Permissions::from_mode(MODE))?;
    Ok(file)
}

/// Name `file` (by a temporary name, which `linkat` needs), then rename it
/// over `data.dsync`.
fn publish(dir: &File, file: &File) -> io::Result<()> {
    let name = temp_name();
    link(dir, file, &name)?;
    rustix::fs::renameat(dir, &name, dir, crate::dtp::MANIFEST).map_err(|e| {
        let _ = rustix::fs::unlinkat(dir, &name, AtFlags::empty());
        io::Error::from(e)
    })
}

/// linkat through /proc (any account), else `AT_EMPTY_PATH` (needs
/// CAP_DAC_READ_SEARCH, e.g. root without /proc).
pub(crate) fn link(dir: impl AsFd, file: &File, name: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    match rustix::fs::linkat(CWD, &proc_path, &dir, name, AtFlags::SYMLINK_FOLLOW) {
        Ok(()) => Ok(()),
        // The name taken is an answer of its own, not a reason to try otherwise.
        Err(rustix::io::Errno::EXIST) => Err(io::Error::from(rustix::io::Errno::EXIST)),
        Err(first) => rustix::fs::linkat(file.as_fd(), "", &dir, name, AtFlags::EMPTY_PATH)
            .map_err(|_| io::Error::from(first)),
    }
}

/// A name of ours in the root no one else uses (excluded from manifests).
fn temp_name() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    PathBuf::from(format!("{TEMP_PREFIX}{}-{nanos}", std::process::id()))
}

/// No unnamed files here (old kernels, some file systems), or no way to
/// name one (no /proc, no capability): the named way then.
pub(crate) fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EOPNOTSUPP
                | libc::EISDIR
                | libc::EINVAL
                | libc::ENOENT
                | libc::EPERM
                | libc::EACCES
                | libc::EXDEV
        )
    )
}

/// The fallback: a named temporary file, 0644 before a byte is written
/// (removed again if dropped).
fn named(root: &Path) -> io::Result<tempfile::NamedTempFile> {
    let tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .permissions(Permissions::from_mode(MODE))
        .tempfile_in(root)?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(MODE))?;
    Ok(tmp)
}

fn persist(tmp: tempfile::NamedTempFile, root: &Path) -> io::Result<()> {
    tmp.persist(root.join(crate::dtp::MANIFEST))
        .map_err(|e| e.error)?;
    Ok(())
}

/// Remove what older versions or an interrupted write left in the root of a
/// tree: the old hash cache (`.dsync-cache`) and its temporary files,
/// `data.dsync`'s temporary names. The caller holds the locks that keep
/// another dsync of this home from writing the manifest meanwhile. Returns
/// the names removed.
pub fn remove_leftovers(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let bytes = name.as_encoded_bytes();
        let ours = bytes == cache::OLD_FILE.as_bytes()
            || bytes.starts_with(b".dsync-tmp-cache-")
            || bytes.starts_with(TEMP_PREFIX.as_bytes());
        if ours && !entry.file_type()?.is_dir() {
            std::fs::remove_file(entry.path())?;
            removed.push(PathBuf::from(name));
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    fn names(root: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn installs_0644_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        install_bytes(root, b"first").unwrap();
        install_bytes(root, b"second").unwrap();
        assert_eq!(names(root), ["data.dsync"]);
        let path = root.join("data.dsync");
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o644);
    }

    #[test]
    fn the_named_fallback_is_0644_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let mut tmp = named(dir.path()).unwrap();
        tmp.write_all(b"x").unwrap();
        persist(tmp, dir.path()).unwrap();
        assert_eq!(names(dir.path()), ["data.dsync"]);
        let meta = std::fs::metadata(dir.path().join("data.dsync")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o644);
    }

    #[test]
    fn leftovers_at_the_root_only_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in [
            ".dsync-cache",
            ".dsync-tmp-cache-abc",
            ".data.dsync.tmpXYZ",
            "data.dsync",
            "keep",
            "sub/.dsync-cache",
        ] {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        }
        let mut removed = remove_leftovers(root).unwrap();
        removed.sort();
        assert_eq!(
            removed,
            [".data.dsync.tmpXYZ", ".dsync-cache", ".dsync-tmp-cache-abc"].map(PathBuf::from)
        );
        assert_eq!(names(root), ["data.dsync", "keep", "sub"]);
    }
}
