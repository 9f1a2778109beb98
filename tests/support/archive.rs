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
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, TimeZone, Timelike, Utc};
use sha2::{Digest, Sha256};

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
pub fn write_revision(root: &Path, spec: &ArchiveSpec, rev: u32) -> ArchiveInfo {
    let tree = build_tree(spec, rev);
    let mut files = tree.files;
    if rev >= 2 {
        for (path, f) in build_tree(spec, rev - 1).files {
            if path.contains("/by-hash/") {
                files.entry(path).or_insert(f);
            }
        }
    }
    let symlinks = tree.symlinks;

    fs::create_dir_all(root).unwrap_or_else(|e| panic!("create {}: {e}", root.display()));
    for (path, f) in &files {
        put_file(root, path, &f.data, f.mtime);
    }
    for (path, target) in &symlinks {
        put_symlink(root, path, target);
    }
    // Remove whatever is not part of this revision.
    let keep_links: BTreeSet<&str> = symlinks.iter().map(|(p, _)| p.as_str()).collect();
    prune(root, root, &|rel, is_link| {
        if is_link {
            keep_links.contains(rel)
        } else {
            files.contains_key(rel)
        }
    });

    let by_hash_files: Vec<String> = files
        .keys()
        .filter(|p| p.contains("/by-hash/"))
        .cloned()
        .collect();
    ArchiveInfo {
        pool_files: tree.pool_files,
        index_files: tree.index_files,
        by_hash_files,
        all_files: files.keys().cloned().collect(),
        symlinks,
        serial: serial(rev),
        rev,
    }
}

/// The archive serial (`YYYYMMDDnn`) of revision `rev`.
pub fn serial(rev: u32) -> String {
    let t = rev_time(rev);
    format!("{}{:02}", t.format("%Y%m%d"), t.hour() / 6)
}

/// The `Date:` of revision `rev`: 2023-06-10 02:00 UTC plus 6 hours per revision.
pub fn rev_time(rev: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2023, 6, 10, 2, 0, 0).unwrap() + chrono::Duration::hours(6 * rev as i64)
}

/// Read `project/trace/master` under `root` and return its `Archive serial:`, if any.
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
pub fn tree_snapshot(root: &Path) -> BTreeMap<String, TreeEntry> {
    let mut out = BTreeMap::new();
    snapshot_into(root, root, &mut out);
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

/// MD5 of `data`, lower-case hex (small local implementation; only used for the MD5 fields
/// Debian indices still carry).
pub fn md5_hex(data: &[u8]) -> String {
    hex(&md5(data))
}

// ---------------------------------------------------------------------------------------------
// Model

struct GenFile {
    data: Vec<u8>,
    mtime: SystemTime,
}

struct Tree {
    files: BTreeMap<String, GenFile>,
    symlinks: Vec<(String, String)>,
    pool_files: Vec<(String, String)>,
    index_files: Vec<String>,
}

struct Binary {
    package: String,
    arch: String,
    filename: String,
    data: Vec<u8>,
}

struct SourcePkg {
    name: String,
    version: String,
    section: String,
    dir: String,
    /// (file name, data) for .dsc, .orig.tar.xz, .debian.tar.xz
    files: Vec<(String, Vec<u8>)>,
    binaries: Vec<Binary>,
}

const NAMES: &[&str] = &[
    "apple",
    "libbanana",
    "cherry",
    "dill",
    "elder",
    "fennel",
    "ginger",
    "libhops",
    "iris",
    "juniper",
    "kale",
    "lime",
    "mint",
    "nettle",
    "olive",
    "pepper",
];

const MAINTAINER: &str = "Test Maintainer <test@example.org>";

fn base_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(rev_time(0).timestamp() as u64)
}

fn rev_mtime(rev: u32) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(rev_time(rev).timestamp() as u64)
}

/// `apple` -> `a`, `libbanana` -> `libb` (Debian pool prefix).
fn pool_prefix(name: &str) -> &str {
    if name.starts_with("lib") && name.len() > 3 {
        &name[..4]
    } else {
        &name[..1]
    }
}

fn short_description(pkg: &str) -> String {
    format!("{pkg} - generated test package")
}

fn long_description(pkg: &str) -> String {
    format!(
        "{}\n This package was generated by dsync's integration test fixtures.\n It does nothing; \
         {pkg} only exists to be mirrored.\n",
        short_description(pkg)
    )
}

fn source_packages(
    spec: &ArchiveSpec,
    suite_idx: usize,
    comp_idx: usize,
    rev: u32,
) -> Vec<SourcePkg> {
    let comp = &spec.components[comp_idx];
    let section = if comp == "main" {
        "misc".to_string()
    } else {
        format!("{comp}/misc")
    };
    (0..spec.packages_per_component)
        .map(|i| {
            let g = comp_idx * spec.packages_per_component + i;
            let mut name = NAMES[g % NAMES.len()].to_string();
            if g >= NAMES.len() {
                name.push_str(&(g / NAMES.len()).to_string());
            }
            let upstream = if i % 2 == 0 {
                format!("{}.{}.{}", i + 1, suite_idx, rev)
            } else {
                format!("{}.0", i + 1)
            };
            let version = format!("{upstream}-1");
            let dir = format!("pool/{comp}/{}/{name}", pool_prefix(&name));
            let common = format!("{name}-common");

            let mut binaries = Vec::new();
            for arch in &spec.archs {
                let filename = format!("{dir}/{name}_{version}_{arch}.deb");
                binaries.push(Binary {
                    package: name.clone(),
                    arch: arch.clone(),
                    data: fake_deb(&filename),
                    filename,
                });
            }
            let filename = format!("{dir}/{common}_{version}_all.deb");
            binaries.push(Binary {
                package: common.clone(),
                arch: "all".into(),
                data: fake_deb(&filename),
                filename,
            });

            let orig_name = format!("{name}_{upstream}.orig.tar.xz");
            let deb_name = format!("{name}_{version}.debian.tar.xz");
            let orig = xz(format!("upstream sources of {name} {upstream}\n")
                .repeat(20)
                .as_bytes());
            let debian = xz(format!("debian/ directory of {name} {version}\n")
                .repeat(8)
                .as_bytes());
            let mut dsc = format!(
                "Format: 3.0 (quilt)\nSource: {name}\nBinary: {name}, {common}\nArchitecture: any \
                 all\nVersion: {version}\nMaintainer: {MAINTAINER}\nStandards-Version: \
                 4.6.2\nChecksums-Sha256:\n"
            );
            for (n, d) in [(&orig_name, &orig), (&deb_name, &debian)] {
                dsc.push_str(&format!(" {} {} {n}\n", sha256_hex(d), d.len()));
            }
            dsc.push_str("Files:\n");
            for (n, d) in [(&orig_name, &orig), (&deb_name, &debian)] {
                dsc.push_str(&format!(" {} {} {n}\n", md5_hex(d), d.len()));
            }
            let files = vec![
                (format!("{name}_{version}.dsc"), dsc.into_bytes()),
                (orig_name, orig),
                (deb_name, debian),
            ];
            SourcePkg {
                name,
                version,
                section: section.clone(),
                dir,
                files,
                binaries,
            }
        })
        .collect()
}

/// A few hundred bytes of content unique to `filename` (not a real .deb: apt-get update does
/// not read packages).
fn fake_deb(filename: &str) -> Vec<u8> {
    let mut out = format!("!<arch>\nfake Debian package {filename}\n").into_bytes();
    let seed = Sha256::digest(filename.as_bytes());
    let len = 300 + (seed[0] as usize) + (seed[1] as usize % 64);
    let mut block = seed.to_vec();
    while out.len() < len {
        block = Sha256::digest(&block).to_vec();
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    out
}

fn packages_stanza(src: &SourcePkg, b: &Binary) -> String {
    let mut s = format!("Package: {}\n", b.package);
    if b.package != src.name {
        s.push_str(&format!("Source: {}\n", src.name));
    }
    s.push_str(&format!(
        "Version: {}\nInstalled-Size: {}\nMaintainer: {MAINTAINER}\nArchitecture: {}\n",
        src.version,
        b.data.len().div_ceil(1024) + 4,
        b.arch
    ));
    if b.arch != "all" {
        s.push_str(&format!(
            "Depends: {}-common (= {})\n",
            src.name, src.version
        ));
    }
    s.push_str(&format!(
        "Description: {}\nDescription-md5: {}\nSection: {}\nPriority: optional\nFilename: \
         {}\nSize: {}\nMD5sum: {}\nSHA256: {}\n",
        short_description(&b.package),
        md5_hex(long_description(&b.package).as_bytes()),
        src.section,
        b.filename,
        b.data.len(),
        md5_hex(&b.data),
        sha256_hex(&b.data)
    ));
    s
}

fn sources_stanza(src: &SourcePkg) -> String {
    let binaries: Vec<&str> = {
        let mut v: Vec<&str> = src.binaries.iter().map(|b| b.package.as_str()).collect();
        v.dedup();
        v
    };
    let mut s = format!(
        "Package: {}\nBinary: {}\nVersion: {}\nMaintainer: {MAINTAINER}\nArchitecture: any \
         all\nStandards-Version: 4.6.2\nFormat: 3.0 (quilt)\nFiles:\n",
        src.name,
        binaries.join(", "),
        src.version
    );
    for (n, d) in &src.files {
        s.push_str(&format!(" {} {} {n}\n", md5_hex(d), d.len()));
    }
    s.push_str("Checksums-Sha256:\n");
    for (n, d) in &src.files {
        s.push_str(&format!(" {} {} {n}\n", sha256_hex(d), d.len()));
    }
    s.push_str(&format!(
        "Directory: {}\nPriority: optional\nSection: {}\n",
        src.dir, src.section
    ));
    s
}

fn join_stanzas(stanzas: &[String]) -> Vec<u8> {
    stanzas.join("\n").into_bytes()
}

/// Suite and codename for the Release file of a suite directory.
fn suite_names(suite: &str) -> (String, String) {
    match suite {
        "bookworm" => ("stable".into(), suite.into()),
        "trixie" => ("testing".into(), suite.into()),
        "sid" => ("unstable".into(), suite.into()),
        "stable" => (suite.into(), "bookworm".into()),
        "testing" => (suite.into(), "trixie".into()),
        "unstable" => (suite.into(), "sid".into()),
        _ => (suite.into(), suite.into()),
    }
}

fn build_tree(spec: &ArchiveSpec, rev: u32) -> Tree {
    let mut files: BTreeMap<String, GenFile> = BTreeMap::new();
    let mut pool: BTreeMap<String, String> = BTreeMap::new();
    let mut index_files = Vec::new();
    let mut symlinks = Vec::new();
    let t_rev = rev_mtime(rev);
    let t_base = base_time();

    let add = |files: &mut BTreeMap<String, GenFile>, path: String, data: Vec<u8>, mtime| {
        files.insert(path, GenFile { data, mtime });
    };

    for (si, suite) in spec.suites.iter().enumerate() {
        // (path relative to the suite dir, data)
        let mut indices: Vec<(String, Vec<u8>)> = Vec::new();
        for (ci, comp) in spec.components.iter().enumerate() {
            let sources = source_packages(spec, si, ci, rev);
            for src in &sources {
                for (n, d) in &src.files {
                    let p = format!("{}/{n}", src.dir);
                    pool.insert(p.clone(), sha256_hex(d));
                    add(&mut files, p, d.clone(), t_base);
                }
                for b in &src.binaries {
                    pool.insert(b.filename.clone(), sha256_hex(&b.data));
                    add(&mut files, b.filename.clone(), b.data.clone(), t_base);
                }
            }
            let mut archs: Vec<&str> = spec.archs.iter().map(String::as_str).collect();
            archs.push("all");
            for arch in archs {
                let stanzas: Vec<String> = sources
                    .iter()
                    .flat_map(|s| {
                        s.binaries
                            .iter()
                            .filter(|b| b.arch == arch || b.arch == "all")
                            .map(move |b| packages_stanza(s, b))
                    })
                    .collect();
                push_compressed(
                    &mut indices,
                    &format!("{comp}/binary-{arch}/Packages"),
                    join_stanzas(&stanzas),
                    true,
                );
            }
            let stanzas: Vec<String> = sources.iter().map(sources_stanza).collect();
            push_compressed(
                &mut indices,
                &format!("{comp}/source/Sources"),
                join_stanzas(&stanzas),
                true,
            );
            let mut tr = Vec::new();
            for src in &sources {
                let mut seen = BTreeSet::new();
                for b in &src.binaries {
                    if seen.insert(&b.package) {
                        let long = long_description(&b.package);
                        tr.push(format!(
                            "Package: {}\nDescription-md5: {}\nDescription-en: {}",
                            b.package,
                            md5_hex(long.as_bytes()),
                            long
                        ));
                    }
                }
            }
            push_compressed(
                &mut indices,
                &format!("{comp}/i18n/Translation-en"),
                join_stanzas(&tr),
                false,
            );
        }
        indices.sort_by(|a, b| a.0.cmp(&b.0));

        let (suite_name, codename) = suite_names(suite);
        let date = rev_time(rev).format("%a, %d %b %Y %H:%M:%S UTC");
        let mut archs = vec!["all".to_string()];
        archs.extend(spec.archs.iter().cloned());
        let mut release = format!(
            "Origin: Debian\nLabel: Debian\nSuite: {suite_name}\nVersion: 12.{rev}\nCodename: \
             {codename}\nChangelogs: no\nDate: {date}\nAcquire-By-Hash: yes\n\
             No-Support-for-Architecture-all: Packages\nArchitectures: {}\nComponents: \
             {}\nDescription: dsync test archive, revision {rev}\n",
            archs.join(" "),
            spec.components.join(" ")
        );
        release.push_str("MD5Sum:\n");
        for (p, d) in &indices {
            release.push_str(&format!(" {} {:>8} {p}\n", md5_hex(d), d.len()));
        }
        release.push_str("SHA256:\n");
        for (p, d) in &indices {
            release.push_str(&format!(" {} {:>8} {p}\n", sha256_hex(d), d.len()));
        }
        for (p, d) in indices {
            let full = format!("dists/{suite}/{p}");
            let dir = full.rsplit_once('/').unwrap().0.to_string();
            add(
                &mut files,
                format!("{dir}/by-hash/SHA256/{}", sha256_hex(&d)),
                d.clone(),
                t_rev,
            );
            index_files.push(full.clone());
            add(&mut files, full, d, t_rev);
        }
        let rel_path = format!("dists/{suite}/Release");
        index_files.push(rel_path.clone());
        add(&mut files, rel_path, release.into_bytes(), t_rev);

        if suite_name != *suite && !spec.suites.contains(&suite_name) {
            symlinks.push((format!("dists/{suite_name}"), suite.clone()));
        }
    }

    // Trace file, README, ls-lR.gz.
    let t = rev_time(rev);
    let trace = format!(
        "{}\nDate: {}\nArchive serial: {}\nCreator: test\nRunning on host: upstream.test\n",
        t.format("%a %b %e %H:%M:%S UTC %Y"),
        t.format("%a, %d %b %Y %H:%M:%S +0000"),
        serial(rev)
    );
    add(
        &mut files,
        TRACE_MASTER.to_string(),
        trace.into_bytes(),
        t_rev,
    );
    add(
        &mut files,
        "README".into(),
        b"This is a generated Debian-style archive for dsync's integration tests.\n".to_vec(),
        t_base,
    );
    let mut listing = String::new();
    for (p, f) in files.iter() {
        listing.push_str(&format!(
            "-rw-r--r-- 1 archvsync archvsync {:>8} {p}\n",
            f.data.len()
        ));
    }
    add(&mut files, "ls-lR.gz".into(), gz(listing.as_bytes()), t_rev);

    index_files.sort();
    symlinks.sort();
    Tree {
        files,
        symlinks,
        pool_files: pool.into_iter().collect(),
        index_files,
    }
}

/// Push `name` (uncompressed), `name.xz` and, if `with_gz`, `name.gz`.
fn push_compressed(out: &mut Vec<(String, Vec<u8>)>, name: &str, data: Vec<u8>, with_gz: bool) {
    if with_gz {
        out.push((format!("{name}.gz"), gz(&data)));
    }
    out.push((format!("{name}.xz"), xz(&data)));
    out.push((name.to_string(), data));
}

/// gzip with a zero mtime in the header: deterministic.
pub fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// xz, deterministic.
pub fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

// ---------------------------------------------------------------------------------------------
// File system

fn put_file(root: &Path, rel: &str, data: &[u8], mtime: SystemTime) {
    let path = root.join(rel);
    let parent = path.parent().unwrap();
    fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    let same = fs::symlink_metadata(&path)
        .map(|m| m.file_type().is_file() && m.len() == data.len() as u64)
        .unwrap_or(false)
        && fs::read(&path).map(|d| d == data).unwrap_or(false);
    if !same {
        let tmp = parent.join(format!(
            ".{}.tmp-{}",
            path.file_name().unwrap().to_string_lossy(),
            std::process::id()
        ));
        fs::write(&tmp, data).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
        set_mtime(&tmp, mtime);
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&path).unwrap();
        }
        fs::rename(&tmp, &path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
    } else if fs::metadata(&path).and_then(|m| m.modified()).ok() != Some(mtime) {
        set_mtime(&path, mtime);
    }
}

fn set_mtime(path: &Path, mtime: SystemTime) {
    let f = fs::File::options()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.set_modified(mtime)
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

fn put_symlink(root: &Path, rel: &str, target: &str) {
    let path = root.join(rel);
    if let Ok(cur) = fs::read_link(&path)
        && cur == Path::new(target)
    {
        return;
    }
    match fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(&path).unwrap(),
        Ok(_) => fs::remove_file(&path).unwrap(),
        Err(_) => {}
    }
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, &path)
        .unwrap_or_else(|e| panic!("symlink {} -> {target}: {e}", path.display()));
}

/// Remove files/symlinks under `dir` for which `keep(rel, is_symlink)` is false, then empty
/// directories. Returns whether `dir` is empty afterwards.
fn prune(root: &Path, dir: &Path, keep: &dyn Fn(&str, bool) -> bool) -> bool {
    let mut empty = true;
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let rel = super::rel(root, &path);
        let ft = entry.file_type().unwrap();
        if ft.is_dir() {
            if prune(root, &path, keep) {
                fs::remove_dir(&path).unwrap();
            } else {
                empty = false;
            }
        } else if keep(&rel, ft.is_symlink()) {
            empty = false;
        } else {
            fs::remove_file(&path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
        }
    }
    empty
}

fn snapshot_into(root: &Path, dir: &Path, out: &mut BTreeMap<String, TreeEntry>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for entry in rd {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = super::rel(root, &path);
        let ft = entry.file_type().unwrap();
        if ft.is_symlink() {
            let t = fs::read_link(&path).unwrap();
            out.insert(rel, TreeEntry::Symlink(t.to_string_lossy().into_owned()));
        } else if ft.is_dir() {
            out.insert(rel, TreeEntry::Dir);
            snapshot_into(root, &path, out);
        } else {
            let data = fs::read(&path).unwrap();
            out.insert(rel, TreeEntry::File(data.len() as u64, sha256_hex(&data)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hashing

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 1321 MD5.
fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4294967296.0) as u32)
        .collect();
    let mut h: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
    for chunk in msg.chunks(64) {
        let m: Vec<u32> = chunk
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = h;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 16];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_le_bytes());
    }
    out
}
