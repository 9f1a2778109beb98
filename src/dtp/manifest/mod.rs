//! `data.dsync`: reading, writing and generating manifests (format in [`crate::dtp`]).
//!
//! - `format`: the text inside the zstd frame, whole ([`Manifest::encode`],
//!   [`Manifest::decode`], [`read_header`]) or entry by entry for a tree of
//!   millions ([`EntryReader`], [`ManifestWriter`]).
//! - `walk`: [`generate`] a manifest from a tree, or
//!   [`generate_and_install`] it without holding it, with the hash cache of
//!   `cache` (a file of dsync's home, never in the tree) so only changed
//!   files are read again.
//! - `install`: write `data.dsync` into the tree atomically ([`install`],
//!   [`install_from`], [`install_written`]), with nothing else of ours ever
//!   named there for longer than a rename.
//!
//! Two details the protocol text leaves open: the header's `repo` value is
//! escaped like a path (a no-op for every name a repository file allows), and
//! `generated` is the time the manifest was made, so two manifests of one tree
//! share body and digest but not necessarily every byte.

mod cache;
mod format;
mod install;
mod walk;

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::Digest;

pub use cache::OLD_FILE as OLD_CACHE;
pub use format::{EntryReader, ManifestWriter, read_header};
pub(crate) use format::{HEADER_LINES, header_of_prefix, max_body, window_log};
pub use install::{install, install_bytes, install_from, install_written, remove_leftovers};
pub(crate) use install::{link as link_unnamed, unsupported as unnamed_unsupported};
pub use walk::{GenStats, generate, generate_and_install, generate_with_stats};

/// The marker a stopped repository's folder holds (`dsync -emoff` leaves it at
/// the root): the protocol never lists it (see [`crate::dtp`]).
pub const EMOFF_MARKER: &str = ".dsync-emoff";

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// One line of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// Relative path, raw bytes (a valid path: see the format).
    pub path: PathBuf,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
    /// File size; 0 for folders and symlinks.
    pub size: u64,
    /// Unix seconds.
    pub mtime: i64,
    /// SHA-256 of a file's content.
    pub sha256: Option<[u8; 32]>,
    /// A symlink's target, raw bytes.
    pub target: Option<PathBuf>,
}

/// The header of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub repo: String,
    pub entries: u64,
    pub bytes: u64,
    pub generated: i64,
    /// `sha256:HEX` of the body.
    pub digest: String,
}

impl Header {
    /// The HTTP ETag of the manifest: the digest, quoted (`"sha256:HEX"`).
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.digest)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub header: Header,
    /// Sorted by path bytes.
    pub entries: Vec<Entry>,
}

/// Bounds a reader enforces on an untrusted manifest.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_entries: u64,
    /// Decompressed size.
    pub max_bytes: u64,
    /// Memory a client's plan may keep for what the manifest lists (it keeps
    /// every folder, and the symlinks, index files and mode changes to make):
    /// the bytes of their paths and targets plus a fixed cost per item. Over
    /// it, the manifest is refused as it is read, before anything changes:
    /// otherwise the upstream chooses how much memory a sync takes.
    pub max_plan_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 20_000_000,
            max_bytes: 4 << 30,
            // A Debian mirror of a million entries plans in a few MB.
            max_plan_bytes: 256 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The manifest is malformed or hostile; `line` is 1-based, 0 for the whole.
    #[error("line {line}: {reason}")]
    Invalid { line: u64, reason: String },
}

impl Manifest {
    /// A manifest of `entries` (sorted here), with `entries`, `bytes` and
    /// `digest` of the header computed from them.
    pub fn new(repo: &str, generated: i64, mut entries: Vec<Entry>) -> Manifest {
        entries.sort_unstable_by(|a, b| path_bytes(&a.path).cmp(path_bytes(&b.path)));
        let header = Header {
            version: 1,
            repo: repo.to_string(),
            entries: entries.len() as u64,
            bytes: total_bytes(&entries),
            generated,
            digest: format::body_digest(&entries),
        };
        Manifest { header, entries }
    }

    /// Compressed bytes, as published: zstd level 3 of the text, the same
    /// bytes for the same value. Only `repo` and `generated` are taken from
    /// the header; `entries`, `bytes` and `digest` are computed from the
    /// entries, so the output is always self-consistent (entries are written
    /// in the order given: keep them sorted, as [`Manifest::new`] does).
    pub fn encode(&self) -> Vec<u8> {
        format::encode(self)
    }

    /// Parse and check untrusted bytes (compressed).
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Manifest, ManifestError> {
        format::decode(bytes, limits)
    }

    /// The body as it is hashed: every entry line with its `\n`.
    pub fn body(&self) -> Vec<u8> {
        format::body(&self.entries)
    }

    /// Entries by path (raw bytes, as listed: no `./`, no trailing `/`).
    pub fn find(&self, path: &Path) -> Option<&Entry> {
        let key = path_bytes(path);
        self.entries
            .binary_search_by(|e| path_bytes(&e.path).cmp(key))
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// Sum of the file sizes (what the header's `bytes` says).
fn total_bytes(entries: &[Entry]) -> u64 {
    entries
        .iter()
        .filter(|e| e.kind == Kind::File)
        .fold(0u64, |sum, e| sum.saturating_add(e.size))
}

fn path_bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

/// What makes raw path bytes an invalid manifest path, if anything: it must be
/// relative, with components separated by single `/`, none empty, `.`, `..` or
/// holding a NUL, at most 4096 bytes in all and 255 per component.
pub fn path_problem(raw: &[u8]) -> Option<&'static str> {
    if raw.is_empty() {
        return Some("empty path");
    }
    if raw.len() > 4096 {
        return Some("path longer than 4096 bytes");
    }
    if raw.contains(&0) {
        return Some("NUL in path");
    }
    if raw[0] == b'/' {
        return Some("absolute path");
    }
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" => return Some("empty path component"),
            b"." | b".." => return Some("`.` or `..` in path"),
            p if p.len() > 255 => return Some("path component longer than 255 bytes"),
            _ => {}
        }
    }
    None
}

/// The prefix of `install`'s temporary names (random suffix) in the root.
const TEMP_PREFIX: &str = ".data.dsync.tmp";

/// After a DTP sync the downstream installs its upstream's manifest, then
/// rewrites a few files of its own (its trace file, `_hierarchy`, `_traces`):
/// update those entries of `root/data.dsync` (hash the files again, add the
/// ones not listed) so that what it serves stays true to its tree. `paths`
/// are relative, regular files whose parent folders are listed.
///
/// The manifest is read and written entry by entry (through an unnamed
/// spool file in `root`), so this costs no memory that grows with the tree.
pub fn refresh(root: &Path, paths: &[PathBuf]) -> Result<(), ManifestError> {
    use std::os::unix::fs::MetadataExt;
    let file = root.join(crate::dtp::MANIFEST);
    let mut fresh = Vec::new();
    // The files are read beneath the root, never through a symlink: what a
    // manifest says of them must be what the tree has at those names.
    let tree = crate::beneath::Root::open(root)?;
    for path in paths {
        let mut file = match tree.open_file(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => continue,
            Err(e) => return Err(io_at(&root.join(path))(e)),
        };
        let meta = file.metadata()?;
        let (size, sha256) = hash_file(&mut file)?;
        fresh.push(Entry {
            kind: Kind::File,
            path: path.clone(),
            mode: meta.mode() & 0o7777,
            size,
            mtime: meta.mtime(),
            sha256: Some(sha256),
            target: None,
        });
    }
    fresh.sort_by(|a, b| path_bytes(&a.path).cmp(path_bytes(&b.path)));
    fresh.dedup_by(|a, b| a.path == b.path);

    let src = std::io::BufReader::new(std::fs::File::open(&file).map_err(io_at(&file))?);
    let mut old = EntryReader::new(src, &Limits::default())?;
    let mut out = ManifestWriter::new(tempfile::tempfile_in(root)?);
    let mut fresh = fresh.into_iter().peekable();
    while let Some(entry) = old.next_entry()? {
        let key = path_bytes(&entry.path);
        while let Some(new) = fresh.next_if(|f| path_bytes(&f.path) < key) {
            out.push(&new)?;
        }
        match fresh.next_if(|f| path_bytes(&f.path) == key) {
            Some(new) => out.push(&new)?,
            None => out.push(&entry)?,
        }
    }
    for new in fresh {
        out.push(&new)?;
    }
    let repo = old.header().repo.clone();
    install_written(root, out, &repo, chrono::Utc::now().timestamp()).map_err(io_at(&file))?;
    Ok(())
}

/// Size and SHA-256 of what is left to read of `file`.
fn hash_file(file: &mut impl io::Read) -> io::Result<(u64, [u8; 32])> {
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0; 1 << 16];
    let mut size = 0;
    loop {
        match file.read(&mut buf)? {
            0 => return Ok((size, hasher.finalize().into())),
            n => {
                hasher.update(&buf[..n]);
                size += n as u64;
            }
        }
    }
}

/// Is this relative path one a manifest never lists (our own files)?
///
/// Whatever is below an excluded path is excluded too. A leading `./` or
/// doubled `/` are tolerated.
pub fn is_excluded(path: &Path) -> bool {
    let mut parts = path_bytes(path)
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty() && *p != b".")
        .peekable();
    let Some(&first) = parts.peek() else {
        return false;
    };
    // Ours only at the root: a repository may hold a file called data.dsync deeper down.
    let at_root = [
        crate::dtp::MANIFEST.as_bytes(),
        cache::OLD_FILE.as_bytes(),
        EMOFF_MARKER.as_bytes(),
    ];
    if at_root.contains(&first) || first.starts_with(TEMP_PREFIX.as_bytes()) {
        return true;
    }
    parts.any(|p| p.ends_with(b".dsync-part") || p.starts_with(b".dsync-tmp-") || p == b".~tmp~")
}

/// An I/O error that names the path it happened on (keeps the kind).
fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ManifestError + '_ {
    move |e| ManifestError::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn p(bytes: &[u8]) -> &Path {
        Path::new(OsStr::from_bytes(bytes))
    }

    pub(super) fn file(path: &str, content: &[u8]) -> Entry {
        use sha2::{Digest, Sha256};
        Entry {
            kind: Kind::File,
            path: PathBuf::from(path),
            mode: 0o644,
            size: content.len() as u64,
            mtime: 1_700_000_000,
            sha256: Some(Sha256::digest(content).into()),
            target: None,
        }
    }

    pub(super) fn dir(path: &str) -> Entry {
        Entry {
            kind: Kind::Dir,
            path: PathBuf::from(path),
            mode: 0o755,
            size: 0,
            mtime: 1_700_000_000,
            sha256: None,
            target: None,
        }
    }

    #[test]
    fn excluded_paths() {
        for path in [
            "data.dsync",
            ".data.dsync.tmpAb12",
            ".dsync-cache",
            ".dsync-emoff",
            "./data.dsync",
            "pool/x.deb.dsync-part",
            "pool/.dsync-tmp-x.deb",
            ".dsync-tmp-cache-xyz",
            "pool/.~tmp~",
            "pool/.~tmp~/x.deb",
            ".~tmp~/a/b",
            ".dsync-cache/x",
        ] {
            assert!(is_excluded(Path::new(path)), "{path}");
        }
        for path in [
            "",
            "pool/data.dsync",
            "pool/.dsync-cache",
            "pool/.dsync-emoff",
            "data.dsync.bak",
            "pool/x.dsync-part.deb",
            "Archive-Update-in-Progress-host",
            "pool/~tmp~",
            "dists/Release",
        ] {
            assert!(!is_excluded(Path::new(path)), "{path}");
        }
    }

    #[test]
    fn path_problems() {
        let long_part = vec![b'a'; 256];
        let long_path: Vec<u8> = b"ab/".repeat(1366);
        for bad in [
            &b""[..],
            b"/abs",
            b"a//b",
            b"a/",
            b"./a",
            b"a/../b",
            b"..",
            b"a\0b",
            &long_part,
            &long_path,
        ] {
            assert!(path_problem(bad).is_some(), "{bad:?}");
        }
        let ok_part = vec![b'a'; 255];
        for good in [&b"a"[..], b"a/b c/\n\xff", b"...", &ok_part] {
            assert_eq!(path_problem(good), None, "{good:?}");
        }
    }

    #[test]
    fn find_uses_raw_byte_order() {
        // Byte order puts "a-x" between "a" and "a/b" (Path's own order would not).
        let m = Manifest::new(
            "t",
            0,
            vec![
                file("a/b", b"1"),
                dir("a"),
                file("a-x", b"2"),
                file("é", b""),
            ],
        );
        let order: Vec<_> = m.entries.iter().map(|e| e.path.clone()).collect();
        assert_eq!(order, ["a", "a-x", "a/b", "é"].map(PathBuf::from));
        assert_eq!(m.find(Path::new("a-x")).unwrap().size, 1);
        assert_eq!(m.find(Path::new("a/b")).unwrap().kind, Kind::File);
        assert!(m.find(Path::new("b")).is_none());
        assert!(m.find(p(b"\xc3")).is_none());
    }

    #[test]
    fn header_counts_and_etag() {
        let m = Manifest::new(
            "t",
            5,
            vec![dir("d"), file("d/f", b"abc"), file("g", b"xy")],
        );
        assert_eq!(m.header.entries, 3);
        assert_eq!(m.header.bytes, 5);
        assert!(m.header.digest.starts_with("sha256:"));
        assert_eq!(m.header.etag(), format!("\"{}\"", m.header.digest));
    }

    #[test]
    fn refresh_replaces_and_adds_entries_in_order() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("d")).unwrap();
        std::fs::write(r.join("d/f"), b"old").unwrap();
        std::fs::write(r.join("z"), b"z").unwrap();
        let m = Manifest::new("t", 5, vec![dir("d"), file("d/f", b"old"), file("z", b"z")]);
        install(r, &m).unwrap();
        std::fs::write(r.join("d/f"), b"new!").unwrap();
        std::fs::write(r.join("d/a"), b"added").unwrap();
        std::fs::write(r.join("a-x"), b"top").unwrap();
        let paths = ["d/f", "d/a", "a-x", "d/f"].map(PathBuf::from);
        refresh(r, &paths).unwrap();
        let bytes = std::fs::read(r.join("data.dsync")).unwrap();
        let got = Manifest::decode(&bytes, &Limits::default()).unwrap();
        let listed: Vec<_> = got
            .entries
            .iter()
            .map(|e| (e.path.clone(), e.size))
            .collect();
        let want = [("a-x", 3), ("d", 0), ("d/a", 5), ("d/f", 4), ("z", 1)];
        assert_eq!(listed, want.map(|(p, s)| (PathBuf::from(p), s)));
        assert_eq!(got.header.repo, "t");
        assert_eq!(
            got.find(Path::new("d/f")).unwrap().sha256,
            Some(sha2::Sha256::digest(b"new!").into())
        );
    }

    #[test]
    fn install_writes_atomically_and_leaves_no_temp() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let m = Manifest::new("t", 5, vec![file("f", b"abc")]);
        install(root.path(), &m).unwrap();
        install_bytes(root.path(), &m.encode()).unwrap();
        let names: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["data.dsync"]);
        let bytes = std::fs::read(root.path().join("data.dsync")).unwrap();
        assert_eq!(Manifest::decode(&bytes, &Limits::default()).unwrap(), m);
        let mode = std::fs::metadata(root.path().join("data.dsync"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }
}
