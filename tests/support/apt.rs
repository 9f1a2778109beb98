//! Consistency checks for a mirrored Debian archive, with real `apt-get update`.
//!
//! [`check_consistent`] combines two checks:
//!
//! 1. [`verify_tree`], in process: for every suite of the spec, `dists/<suite>/Release` must
//!    exist; every index it lists for the spec's components and architectures (plus
//!    `binary-all`, `source` and `i18n`) must exist with the listed size, SHA256 and MD5
//!    (strict: also the uncompressed `Packages`/`Sources`, which the generator writes); with
//!    `Acquire-By-Hash: yes`, its `by-hash/SHA256/<hash>` copy must exist and match; and every
//!    file referenced by every `Packages`/`Sources` variant (uncompressed, `.gz`, `.xz`) that
//!    matches `Release` must exist under the mirror with the size, SHA256 (and MD5) the index
//!    says.
//! 2. [`apt_update`], the real thing: `apt-get update` against `file:<mirror>` with `deb` and
//!    `deb-src` `[trusted=yes]` lines and a private configuration (see [`apt_update`]), run
//!    once following `Acquire-By-Hash` as the Release says and once with
//!    `Acquire::By-Hash=no` (which reads `Packages.xz` etc. by their canonical names). Any
//!    non-zero exit or `W:`/`E:`/`Err:` line in its output is a failure, and its output becomes
//!    part of the problem reported.
//!
//! Why both apt modes: by-hash is what protects clients from an archive update in flight, so
//! a mirror whose `Packages.xz` was already replaced while `Release` is still the old one
//! passes a by-hash `apt-get update` (it fetches the old index by its hash) but fails a
//! canonical-name one with a hash-sum mismatch. The self-test asserts exactly that.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use super::archive::{ArchiveSpec, md5_hex, sha256_hex};

/// What [`check_consistent_with`] checks.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Run real `apt-get update` (twice, see module docs). Default true.
    pub apt: bool,
    /// Check `source/Sources*` and the source files they reference; add `deb-src` lines.
    /// Default true. Turn off for a mirror that excludes `source`.
    pub sources: bool,
    /// Check `by-hash/SHA256/` copies of the indices and run apt following by-hash.
    /// Default true.
    pub by_hash: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            apt: true,
            sources: true,
            by_hash: true,
        }
    }
}

/// Run real `apt-get update` against `file:<mirror>` for the spec's suites/components/archs
/// with a private apt configuration, then check that every file referenced by every
/// `Packages` and `Sources` index reachable from each `Release` exists under the mirror with
/// the size and SHA256 the index says, and that every index listed in `Release` matches its
/// hash. Returns `Err(list of problems)` otherwise (apt-get's output is part of the problem
/// text when it fails). A missing `apt-get` is reported as a problem: use [`apt_available`]
/// to skip instead.
pub fn check_consistent(mirror: &Path, spec: &ArchiveSpec) -> Result<(), Vec<String>> {
    check_consistent_with(mirror, spec, &CheckOptions::default())
}

/// [`check_consistent`] with options.
pub fn check_consistent_with(
    mirror: &Path,
    spec: &ArchiveSpec,
    opts: &CheckOptions,
) -> Result<(), Vec<String>> {
    let mut problems = verify_tree(mirror, spec, opts);
    if opts.apt {
        let modes: &[bool] = if opts.by_hash {
            &[true, false]
        } else {
            &[false]
        };
        for &by_hash in modes {
            if let Err(e) = apt_update(mirror, spec, by_hash, opts.sources) {
                problems.push(e);
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Whether `apt-get` can be run.
pub fn apt_available() -> bool {
    super::have_program("apt-get")
}

/// Run `apt-get update` against `file:<mirror>` with a private configuration in a temporary
/// directory, read through `APT_CONFIG`: own `Dir::State`, `Dir::Cache`, `Dir::Log`, status
/// file, `Dir::Etc::*` (sources.list, empty parts/preferences/trusted dirs, so nothing from
/// /etc/apt is read), `APT::Architectures` = the spec's archs, `Acquire::Languages=none`,
/// `Debug::NoLocking=1`, `APT::Sandbox::User=root` (no `_apt` user needed),
/// `APT::Update::Error-Mode=any`, `Acquire::Check-Valid-Until=false`, and
/// `Acquire::By-Hash=no` unless `by_hash`. Sources are `deb [trusted=yes arch=...]` lines
/// for each suite with all components, plus `deb-src [trusted=yes]` lines if `sources`.
///
/// Returns apt-get's output on success; on failure (non-zero exit, or a `W:`, `E:` or `Err:`
/// line, or no `Packages` list fetched at all) a problem description including the output.
pub fn apt_update(
    mirror: &Path,
    spec: &ArchiveSpec,
    by_hash: bool,
    sources: bool,
) -> Result<String, String> {
    let tmp = tempfile::Builder::new()
        .prefix("dsync-apt-")
        .tempdir()
        .map_err(|e| format!("tempdir: {e}"))?;
    let t = tmp.path();
    for d in [
        "etc/apt.conf.d",
        "etc/sources.list.d",
        "etc/preferences.d",
        "etc/trusted.gpg.d",
        "state/lists/partial",
        "cache/archives/partial",
        "log",
    ] {
        fs::create_dir_all(t.join(d)).map_err(|e| format!("mkdir {d}: {e}"))?;
    }
    fs::write(t.join("state/status"), "").map_err(|e| e.to_string())?;

    let mirror = mirror
        .canonicalize()
        .map_err(|e| format!("mirror {}: {e}", mirror.display()))?;
    let archs = spec.archs.join(",");
    let comps = spec.components.join(" ");
    let mut list = String::new();
    for suite in &spec.suites {
        list.push_str(&format!(
            "deb [trusted=yes arch={archs}] file:{} {suite} {comps}\n",
            mirror.display()
        ));
        if sources {
            list.push_str(&format!(
                "deb-src [trusted=yes] file:{} {suite} {comps}\n",
                mirror.display()
            ));
        }
    }
    fs::write(t.join("etc/sources.list"), &list).map_err(|e| e.to_string())?;

    let p = |rel: &str| t.join(rel).display().to_string();
    let native = spec.archs.first().map(String::as_str).unwrap_or("amd64");
    let arch_list: String = spec.archs.iter().map(|a| format!("\"{a}\"; ")).collect();
    let mut conf = format!(
        "Dir::Etc::main \"{main}\";\n\
         Dir::Etc::parts \"{parts}\";\n\
         Dir::Etc::sourcelist \"{sl}\";\n\
         Dir::Etc::sourceparts \"{slp}\";\n\
         Dir::Etc::preferences \"{pref}\";\n\
         Dir::Etc::preferencesparts \"{prefp}\";\n\
         Dir::Etc::trusted \"{tr}\";\n\
         Dir::Etc::trustedparts \"{trp}\";\n\
         Dir::State \"{state}\";\n\
         Dir::State::lists \"{lists}\";\n\
         Dir::State::status \"{status}\";\n\
         Dir::Cache \"{cache}\";\n\
         Dir::Log \"{log}\";\n\
         Debug::NoLocking \"1\";\n\
         APT::Architecture \"{native}\";\n\
         APT::Architectures {{ {arch_list}}};\n\
         Acquire::Languages \"none\";\n\
         Acquire::Check-Valid-Until \"false\";\n\
         Acquire::Retries \"0\";\n\
         APT::Sandbox::User \"root\";\n\
         APT::Update::Error-Mode \"any\";\n",
        main = p("etc/apt.conf"),
        parts = p("etc/apt.conf.d"),
        sl = p("etc/sources.list"),
        slp = p("etc/sources.list.d"),
        pref = p("etc/preferences"),
        prefp = p("etc/preferences.d"),
        tr = p("etc/trusted.gpg"),
        trp = p("etc/trusted.gpg.d"),
        state = p("state"),
        lists = p("state/lists"),
        status = p("state/status"),
        cache = p("cache"),
        log = p("log"),
    );
    if !by_hash {
        conf.push_str("Acquire::By-Hash \"no\";\n");
    }
    fs::write(t.join("etc/apt.conf"), &conf).map_err(|e| e.to_string())?;

    let mode = if by_hash { "by-hash" } else { "By-Hash=no" };
    let out = Command::new("apt-get")
        .arg("update")
        .env("APT_CONFIG", t.join("etc/apt.conf"))
        .env("LC_ALL", "C")
        .env_remove("LANGUAGE")
        .output()
        .map_err(|e| format!("apt-get update ({mode}): cannot run apt-get: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("W:") || l.starts_with("E:") || l.starts_with("Err:"))
        .collect();
    let fail = |why: String| {
        Err(format!(
            "apt-get update ({mode}) on {}: {why}\n--- sources.list:\n{list}--- apt-get output:\n{text}",
            mirror.display()
        ))
    };
    if !out.status.success() {
        return fail(format!("exited with {}", out.status));
    }
    if !bad.is_empty() {
        return fail(format!("reported {} warning/error line(s)", bad.len()));
    }
    let fetched = fs::read_dir(t.join("state/lists"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().contains("_Packages"))
                .count()
        })
        .unwrap_or(0);
    let expected = spec.suites.len() * spec.components.len() * spec.archs.len();
    if fetched < expected {
        return fail(format!(
            "only {fetched} Packages lists fetched, expected at least {expected}"
        ));
    }
    Ok(text)
}

/// A parsed `Release` file.
#[derive(Clone, Debug, Default)]
pub struct Release {
    /// Single-line fields (`Suite`, `Date`, `Acquire-By-Hash`, ...).
    pub fields: BTreeMap<String, String>,
    /// SHA256 section: (path relative to the suite, size, hash).
    pub sha256: Vec<(String, u64, String)>,
    /// MD5Sum section: (path relative to the suite, size, hash).
    pub md5: Vec<(String, u64, String)>,
}

/// Parse a `Release` file.
pub fn parse_release(text: &str) -> Release {
    let mut rel = Release::default();
    let mut section: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(' ') {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            if let (Some(sec), [hash, size, path]) = (&section, parts.as_slice()) {
                let entry = (
                    path.to_string(),
                    size.parse().unwrap_or(u64::MAX),
                    hash.to_string(),
                );
                match sec.as_str() {
                    "SHA256" => rel.sha256.push(entry),
                    "MD5Sum" => rel.md5.push(entry),
                    _ => {}
                }
            }
        } else if let Some((k, v)) = line.split_once(':') {
            let v = v.trim();
            if v.is_empty() {
                section = Some(k.to_string());
            } else {
                section = None;
                rel.fields.insert(k.to_string(), v.to_string());
            }
        }
    }
    rel
}

/// Parse deb822 stanzas: each a list of (field, value), continuation lines joined with '\n'.
pub fn parse_stanzas(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, v)) = cur.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            cur.push((k.to_string(), v.trim().to_string()));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The in-process half of [`check_consistent`] (no apt-get): returns the problems found.
pub fn verify_tree(mirror: &Path, spec: &ArchiveSpec, opts: &CheckOptions) -> Vec<String> {
    let mut problems = BTreeSet::new();
    let mut cache = FileCache::default();
    for suite in &spec.suites {
        let rel_release = format!("dists/{suite}/Release");
        let text = match fs::read_to_string(mirror.join(&rel_release)) {
            Ok(t) => t,
            Err(e) => {
                problems.insert(format!("{rel_release}: missing ({e})"));
                continue;
            }
        };
        let release = parse_release(&text);
        if release.sha256.is_empty() {
            problems.insert(format!("{rel_release}: no SHA256 entries"));
        }
        let by_hash = opts.by_hash
            && release
                .fields
                .get("Acquire-By-Hash")
                .is_some_and(|v| v == "yes");
        let md5: HashMap<&str, &str> = release
            .md5
            .iter()
            .map(|(p, _, h)| (p.as_str(), h.as_str()))
            .collect();
        for (path, size, sha) in &release.sha256 {
            if !relevant(path, spec, opts) {
                continue;
            }
            let rel = format!("dists/{suite}/{path}");
            let what = format!("listed in {rel_release}");
            let ok = check_file(
                &mut cache,
                mirror,
                &rel,
                *size,
                Some(sha),
                md5.get(path.as_str()).copied(),
                &what,
                &mut problems,
            );
            if by_hash {
                let dir = rel.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                let bh = format!("{dir}/by-hash/SHA256/{sha}");
                check_file(
                    &mut cache,
                    mirror,
                    &bh,
                    *size,
                    Some(sha),
                    None,
                    &format!("by-hash copy of {rel}"),
                    &mut problems,
                );
            }
            let base = path.rsplit('/').next().unwrap_or("");
            let is_packages = base.starts_with("Packages");
            let is_sources = base.starts_with("Sources");
            if ok && (is_packages || is_sources) {
                match read_index(&mirror.join(&rel)) {
                    Ok(index) => {
                        check_index(&mut cache, mirror, &rel, &index, is_sources, &mut problems)
                    }
                    Err(e) => {
                        problems.insert(format!("{rel}: cannot read/decompress: {e}"));
                    }
                }
            }
        }
    }
    problems.into_iter().collect()
}

/// Whether a Release entry (relative to the suite) is covered by the spec and options.
fn relevant(path: &str, spec: &ArchiveSpec, opts: &CheckOptions) -> bool {
    let mut it = path.split('/');
    let (Some(comp), Some(kind)) = (it.next(), it.next()) else {
        return false;
    };
    if !spec.components.iter().any(|c| c == comp) {
        return false;
    }
    if let Some(arch) = kind.strip_prefix("binary-") {
        arch == "all" || spec.archs.iter().any(|a| a == arch)
    } else {
        match kind {
            "source" => opts.sources,
            "i18n" => true,
            _ => false,
        }
    }
}

fn read_index(path: &Path) -> Result<String, String> {
    let raw = fs::read(path).map_err(|e| e.to_string())?;
    let name = path.to_string_lossy();
    let mut text = String::new();
    if name.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_string(&mut text)
            .map_err(|e| e.to_string())?;
    } else if name.ends_with(".xz") {
        xz2::read::XzDecoder::new(&raw[..])
            .read_to_string(&mut text)
            .map_err(|e| e.to_string())?;
    } else {
        text = String::from_utf8(raw).map_err(|e| e.to_string())?;
    }
    Ok(text)
}

/// Check every file a Packages or Sources index references.
fn check_index(
    cache: &mut FileCache,
    mirror: &Path,
    index_rel: &str,
    text: &str,
    is_sources: bool,
    problems: &mut BTreeSet<String>,
) {
    let what = format!("referenced by {index_rel}");
    let stanzas = parse_stanzas(text);
    if stanzas.is_empty() {
        problems.insert(format!("{index_rel}: no stanzas"));
    }
    for st in stanzas {
        let get = |k: &str| st.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
        let pkg = get("Package").unwrap_or("?");
        if !is_sources {
            let (Some(filename), Some(size), Some(sha)) =
                (get("Filename"), get("Size"), get("SHA256"))
            else {
                problems.insert(format!(
                    "{index_rel}: stanza {pkg} lacks Filename/Size/SHA256"
                ));
                continue;
            };
            let size = size.parse().unwrap_or(u64::MAX);
            check_file(
                cache,
                mirror,
                filename,
                size,
                Some(sha),
                get("MD5sum"),
                &what,
                problems,
            );
        } else {
            let Some(dir) = get("Directory") else {
                problems.insert(format!("{index_rel}: stanza {pkg} lacks Directory"));
                continue;
            };
            let entries = |field: &str| -> Vec<(String, u64, String)> {
                get(field)
                    .unwrap_or("")
                    .lines()
                    .filter_map(|l| {
                        let p: Vec<&str> = l.split_whitespace().collect();
                        match p.as_slice() {
                            [h, s, n] => {
                                Some((n.to_string(), s.parse().unwrap_or(u64::MAX), h.to_string()))
                            }
                            _ => None,
                        }
                    })
                    .collect()
            };
            let sha = entries("Checksums-Sha256");
            let md5: HashMap<String, String> = entries("Files")
                .into_iter()
                .map(|(n, _, h)| (n, h))
                .collect();
            if sha.is_empty() {
                problems.insert(format!("{index_rel}: stanza {pkg} lacks Checksums-Sha256"));
            }
            for (name, size, h) in &sha {
                let rel = format!("{dir}/{name}");
                let m = md5.get(name).map(String::as_str);
                check_file(cache, mirror, &rel, *size, Some(h), m, &what, problems);
            }
        }
    }
}

#[derive(Default)]
struct FileCache {
    /// rel path -> Ok((size, sha256, md5)) or Err(io error text)
    files: HashMap<String, Result<(u64, String, String), String>>,
}

impl FileCache {
    fn get(&mut self, mirror: &Path, rel: &str) -> &Result<(u64, String, String), String> {
        self.files.entry(rel.to_string()).or_insert_with(|| {
            let path = mirror.join(rel);
            match fs::symlink_metadata(&path) {
                Err(e) => Err(e.to_string()),
                Ok(m) if m.is_dir() => Err("is a directory".into()),
                Ok(_) => fs::read(&path)
                    .map(|d| (d.len() as u64, sha256_hex(&d), md5_hex(&d)))
                    .map_err(|e| e.to_string()),
            }
        })
    }
}

/// Check one file; returns whether it is fine. Problems name the file and `what` referenced it.
#[allow(clippy::too_many_arguments)]
fn check_file(
    cache: &mut FileCache,
    mirror: &Path,
    rel: &str,
    size: u64,
    sha256: Option<&str>,
    md5: Option<&str>,
    what: &str,
    problems: &mut BTreeSet<String>,
) -> bool {
    match cache.get(mirror, rel) {
        Err(e) => {
            problems.insert(format!("{rel}: missing ({e}), {what}"));
            false
        }
        Ok((actual_size, actual_sha, actual_md5)) => {
            let mut ok = true;
            if *actual_size != size {
                problems.insert(format!(
                    "{rel}: size {actual_size} != expected {size}, {what}"
                ));
                ok = false;
            }
            if let Some(sha) = sha256
                && actual_sha != sha
            {
                problems.insert(format!(
                    "{rel}: SHA256 mismatch: expected {sha}, got {actual_sha}, {what}"
                ));
                ok = false;
            }
            if let Some(md5) = md5
                && actual_md5 != md5
            {
                problems.insert(format!(
                    "{rel}: MD5 mismatch: expected {md5}, got {actual_md5}, {what}"
                ));
                ok = false;
            }
            ok
        }
    }
}
