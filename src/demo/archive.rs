//! A small but valid Debian-style archive generator.
//!
//! [`write_revision`] writes revision `rev` of an archive described by an [`ArchiveSpec`]:
//!
//! * `pool/<component>/<prefix>/<source>/` with, per source package, one `.deb` per
//!   architecture, one `_all.deb`, a `.dsc`, an `.orig.tar.xz` and a `.debian.tar.xz`.
//!   Packages with an even index change version every revision (`<n>.<suite#>.<rev>-1`); the
//!   others keep `<n>.0-1` in every suite and revision, so consecutive revisions share most of
//!   the pool but each one adds new files and drops old ones. Pool file contents depend only on
//!   the file name, so suites share files whenever their versions agree.
//! * `dists/<suite>/<component>/binary-<arch>/Packages{,.gz,.xz}` (arch-specific and `all`
//!   packages, as Debian does with `No-Support-for-Architecture-all: Packages`),
//!   `binary-all/Packages{,.gz,.xz}`, `source/Sources{,.gz,.xz}`, `i18n/Translation-en{,.xz}`,
//!   and `by-hash/SHA256/<hex>` copies of each of them next to them. By-hash copies of the
//!   previous revision are kept, like the real archive does.
//! * `dists/<suite>/Release` (unsigned: no `InRelease`, no `Release.gpg`; use apt with
//!   `[trusted=yes]`), with `Acquire-By-Hash: yes` and MD5Sum/SHA256 sections.
//! * `project/trace/master` in ftpsync trace format, `README`, `ls-lR.gz`, and relative
//!   symlinks `dists/stable -> bookworm`, `dists/testing -> trixie` (when those suites exist).
//!
//! Everything is deterministic for a given `(spec, rev)`, including modification times:
//! pool files and `README` get a fixed mtime, files that depend on the revision get
//! `base + 6h * rev`. So two revisions of a same-sized index never look alike to rsync's
//! size+mtime quick check. Files are replaced atomically (write to a temporary name and
//! rename), so a daemon serving the tree never shows a half-written file.
//!
//! `dsync demo` serves this archive to a real ftpsync run; the integration tests move it
//! through revisions 1, 2, 3, ... and check that a mirror follows consistently.
//!
//! Writing returns I/O errors (each naming the path it concerns) instead of panicking;
//! the read-only helpers [`tree_snapshot`] and [`read_serial`] never fail (see their docs).

mod build;
mod files;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use chrono::{DateTime, TimeZone, Timelike, Utc};
use md5::Md5;
use sha2::{Digest, Sha256};

use files::with_path;

/// What archive to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveSpec {
    /// Suites (directories under `dists/`), e.g. `["bookworm", "trixie"]`.
    pub suites: Vec<String>,
    /// Components, e.g. `["main", "contrib"]`.
    pub components: Vec<String>,
    /// Binary architectures (without `all`, which is always generated), e.g. `["amd64"]`.
    pub archs: Vec<String>,
    /// Source packages per component (each builds one binary per arch plus one `all`).
    pub packages_per_component: usize,
}

impl Default for ArchiveSpec {
    /// bookworm + trixie, main + contrib, amd64 + arm64 + i386, 4 packages per component.
    fn default() -> Self {
        ArchiveSpec {
            suites: vec!["bookworm".into(), "trixie".into()],
            components: vec!["main".into(), "contrib".into()],
            archs: vec!["amd64".into(), "arm64".into(), "i386".into()],
            packages_per_component: 4,
        }
    }
}

impl ArchiveSpec {
    /// The same archive restricted to `archs` (e.g. to check a mirror that excluded some).
    pub fn with_archs(&self, archs: &[&str]) -> ArchiveSpec {
        ArchiveSpec {
            archs: archs.iter().map(|s| s.to_string()).collect(),
            ..self.clone()
        }
    }
}

/// What [`write_revision`] wrote. All paths are relative to the archive root, `/`-separated,
/// sorted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// Every pool file of this revision with its SHA256 (lower-case hex).
    pub pool_files: Vec<(String, String)>,
    /// Every index listed in some `Release` (Packages*, Sources*, Translation-en*), plus each
    /// `dists/<suite>/Release` itself. By-hash copies are in `by_hash_files`.
    pub index_files: Vec<String>,
    /// Every `.../by-hash/SHA256/<hex>` file present (this revision's and the previous one's).
    pub by_hash_files: Vec<String>,
    /// Every regular file of the tree (pool, indices, by-hash, trace, README, ls-lR.gz).
    pub all_files: Vec<String>,
    /// Symlinks as (path, target), e.g. `("dists/stable", "bookworm")`.
    pub symlinks: Vec<(String, String)>,
    /// Archive serial as written to `project/trace/master`, `YYYYMMDDnn`.
    pub serial: String,
    /// The revision.
    pub rev: u32,
}

impl ArchiveInfo {
    /// SHA256 of a pool file of this revision, if it is one.
    pub fn pool_sha256(&self, path: &str) -> Option<&str> {
        self.pool_files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, h)| h.as_str())
    }
}

/// Path of the ftpsync master trace file, relative to the archive root.
pub const TRACE_MASTER: &str = "project/trace/master";

/// Write (or move to) revision `rev` of the archive at `root` (created if missing): files of
/// older revisions that are no longer referenced are removed, so a mirror synced in the wrong
/// order would be inconsistent. Revisions are meant to start at 1; by-hash files of `rev - 1`
/// are kept (written, even on a fresh root) when `rev >= 2`.
///
/// An error names the path it concerns; the tree may then be part-way between revisions.
pub fn write_revision(root: &Path, spec: &ArchiveSpec, rev: u32) -> io::Result<ArchiveInfo> {
    let tree = build::build_tree(spec, rev);
    let mut files = tree.files;
    if rev >= 2 {
        for (path, f) in build::build_tree(spec, rev - 1).files {
            if path.contains("/by-hash/") {
                files.entry(path).or_insert(f);
            }
        }
    }
    let symlinks = tree.symlinks;

    fs::create_dir_all(root).map_err(with_path(root))?;
    for (path, f) in &files {
        files::put_file(root, path, &f.data, f.mtime)?;
    }
    for (path, target) in &symlinks {
        files::put_symlink(root, path, target)?;
    }
    // Remove whatever is not part of this revision.
    let keep_links: BTreeSet<&str> = symlinks.iter().map(|(p, _)| p.as_str()).collect();
    files::prune(root, root, &|rel, is_link| {
        if is_link {
            keep_links.contains(rel)
        } else {
            files.contains_key(rel)
        }
    })?;

    let by_hash_files: Vec<String> = files
        .keys()
        .filter(|p| p.contains("/by-hash/"))
        .cloned()
        .collect();
    Ok(ArchiveInfo {
        pool_files: tree.pool_files,
        index_files: tree.index_files,
        by_hash_files,
        all_files: files.keys().cloned().collect(),
        symlinks,
        serial: serial(rev),
        rev,
    })
}

/// The archive serial (`YYYYMMDDnn`) of revision `rev`.
pub fn serial(rev: u32) -> String {
    let t = rev_time(rev);
    format!("{}{:02}", t.format("%Y%m%d"), t.hour() / 6)
}

/// The `Date:` of revision `rev`: 2023-06-10 02:00 UTC plus 6 hours per revision.
pub fn rev_time(rev: u32) -> DateTime<Utc> {
    let base = Utc
        .with_ymd_and_hms(2023, 6, 10, 2, 0, 0)
        .single()
        .expect("a fixed, valid UTC date");
    base + chrono::Duration::hours(6 * i64::from(rev))
}

/// Read `project/trace/master` under `root` and return its `Archive serial:`; `None` if the
/// file is missing, unreadable or has no serial.
pub fn read_serial(root: &Path) -> Option<String> {
    let text = fs::read_to_string(root.join(TRACE_MASTER)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Archive serial:"))
        .map(|s| s.trim().to_string())
}

/// One entry of a [`tree_snapshot`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TreeEntry {
    Dir,
    /// Regular file: size and SHA256 hex.
    File(u64, String),
    /// Symlink and its target.
    Symlink(String),
}

/// Every path under `root` (relative, `/`-separated; `root` itself excluded) with what it is.
/// Compare two snapshots to assert that a mirror equals its upstream.
///
/// Never fails: an entry that cannot be read (a file without read permission, a directory
/// that vanished mid-walk) is left out, so a comparison reports it as missing rather than
/// the snapshot panicking.
pub fn tree_snapshot(root: &Path) -> BTreeMap<String, TreeEntry> {
    let mut out = BTreeMap::new();
    files::snapshot_into(root, root, &mut out);
    out
}

/// Human-readable differences between two snapshots (empty if equal), at most 50 lines.
pub fn snapshot_diff(
    expected: &BTreeMap<String, TreeEntry>,
    actual: &BTreeMap<String, TreeEntry>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (p, e) in expected {
        match actual.get(p) {
            None => out.push(format!("missing: {p} ({e:?})")),
            Some(a) if a != e => out.push(format!("differs: {p}: expected {e:?}, got {a:?}")),
            _ => {}
        }
    }
    for (p, a) in actual {
        if !expected.contains_key(p) {
            out.push(format!("extra: {p} ({a:?})"));
        }
    }
    out.truncate(50);
    out
}

/// SHA256 of `data`, lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// MD5 of `data`, lower-case hex (only for the MD5 fields Debian indices still carry).
pub fn md5_hex(data: &[u8]) -> String {
    hex(&Md5::digest(data))
}

/// gzip with a zero mtime in the header: deterministic.
pub fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail: any error here would be a bug in flate2.
    e.write_all(data).expect("gzip into memory");
    e.finish().expect("gzip into memory")
}

/// xz, deterministic.
pub fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
    // Writing into a Vec cannot fail; liblzma only fails on out-of-memory here.
    e.write_all(data).expect("xz into memory");
    e.finish().expect("xz into memory")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
