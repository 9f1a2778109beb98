//! The plan: what to create, fetch, replace and delete to turn the local tree
//! into the one a manifest describes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::index;
use super::walk::{Local, LocalEntry, LocalKind};
use crate::dtp::manifest::{Entry, Kind, Manifest};

/// What to do, as indices into the manifest's entries (in manifest order:
/// a folder before what it holds).
#[derive(Debug, Default)]
pub struct Plan {
    /// Folders missing, or something else by their name.
    pub mkdirs: Vec<usize>,
    /// Stage one: files fetched and put in place one by one.
    pub stage_one: Vec<usize>,
    /// Stage two: index files, put in place together at the end.
    pub stage_two: Vec<usize>,
    /// Up-to-date files whose permission bits differ.
    pub chmods: Vec<usize>,
    /// Symlinks missing or pointing elsewhere.
    pub links: Vec<usize>,
    /// Every folder: modes and mtimes are set last, after the changes in them.
    pub dirs: Vec<usize>,
    /// Local entries the manifest does not list, deepest first.
    pub deletions: Vec<(PathBuf, LocalKind)>,
    /// Local entries of another type than listed, replaced on the way.
    pub replaced: u64,
    /// Our leftovers from earlier runs (removed after a successful run).
    pub ours: Vec<PathBuf>,
}

impl Plan {
    /// What this plan removes from the mirror: the `max-delete` measure.
    pub fn removals(&self) -> u64 {
        self.deletions.len() as u64 + self.replaced
    }

    pub fn bytes(&self, manifest: &Manifest, files: &[usize]) -> u64 {
        files.iter().map(|&i| manifest.entries[i].size).sum()
    }
}

/// The permission bits we give a file: never set-id or sticky bits, whatever
/// a (possibly hostile) upstream lists.
pub fn file_mode(entry: &Entry) -> u32 {
    entry.mode & 0o777
}

/// Folders stay writable and searchable by us, or the next sync could not
/// update them.
pub fn dir_mode(entry: &Entry) -> u32 {
    (entry.mode & 0o777) | 0o700
}

pub fn plan(manifest: &Manifest, local: Local) -> Plan {
    let mut plan = Plan {
        ours: local.ours,
        ..Plan::default()
    };
    let mut listed: HashSet<&Path> = HashSet::with_capacity(manifest.entries.len());
    for (i, entry) in manifest.entries.iter().enumerate() {
        listed.insert(&entry.path);
        let have = local.entries.get(&entry.path);
        let wrong_type = have.is_some_and(|h| h.kind != local_kind(entry.kind));
        if wrong_type {
            plan.replaced += 1;
        }
        match entry.kind {
            Kind::Dir => {
                plan.dirs.push(i);
                if have.is_none() || wrong_type {
                    plan.mkdirs.push(i);
                }
            }
            Kind::Symlink => {
                if have.is_none_or(|h| h.target != entry.target) {
                    plan.links.push(i);
                }
            }
            Kind::File => match have {
                Some(h) if up_to_date(entry, h) => {
                    if h.mode & 0o777 != file_mode(entry) {
                        plan.chmods.push(i);
                    }
                }
                _ if index::is_index(&entry.path) => plan.stage_two.push(i),
                _ => plan.stage_one.push(i),
            },
        }
    }
    plan.deletions = local
        .entries
        .into_iter()
        .filter(|(path, _)| !listed.contains(path.as_path()))
        .map(|(path, entry)| (path, entry.kind))
        .collect();
    // A folder's descendants sort after it: reversed, they go first.
    plan.deletions
        .sort_unstable_by(|a, b| b.0.as_os_str().cmp(a.0.as_os_str()));
    plan
}

/// rsync's quick check: a regular file of the listed size and mtime.
fn up_to_date(entry: &Entry, have: &LocalEntry) -> bool {
    have.kind == LocalKind::File && have.size == entry.size && have.mtime == entry.mtime
}

fn local_kind(kind: Kind) -> LocalKind {
    match kind {
        Kind::File => LocalKind::File,
        Kind::Dir => LocalKind::Dir,
        Kind::Symlink => LocalKind::Symlink,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtp::manifest::Header;

    fn entry(kind: Kind, path: &str, size: u64, mtime: i64) -> Entry {
        Entry {
            kind,
            path: path.into(),
            mode: if kind == Kind::File { 0o644 } else { 0o755 },
            size,
            mtime,
            sha256: (kind == Kind::File).then_some([0; 32]),
            target: (kind == Kind::Symlink).then(|| PathBuf::from("x")),
        }
    }

    fn local(kind: LocalKind, size: u64, mtime: i64) -> LocalEntry {
        LocalEntry {
            kind,
            size,
            mtime,
            mode: if kind == LocalKind::File {
                0o644
            } else {
                0o755
            },
            target: (kind == LocalKind::Symlink).then(|| PathBuf::from("x")),
        }
    }

    fn manifest(entries: Vec<Entry>) -> Manifest {
        Manifest {
            header: Header {
                version: 1,
                repo: "t".into(),
                entries: entries.len() as u64,
                bytes: 0,
                generated: 0,
                digest: String::new(),
            },
            entries,
        }
    }

    #[test]
    fn quick_check_and_stages() {
        let m = manifest(vec![
            entry(Kind::Dir, "dists", 0, 1),
            entry(Kind::File, "dists/Release", 10, 5),
            entry(Kind::File, "dists/by-hash/SHA256/ab", 10, 5),
            entry(Kind::Symlink, "dists/stable", 0, 5),
            entry(Kind::Dir, "pool", 0, 1),
            entry(Kind::File, "pool/a.deb", 3, 7),
            entry(Kind::File, "pool/b.deb", 3, 7),
        ]);
        let mut l = Local::default();
        l.entries
            .insert("dists".into(), local(LocalKind::Dir, 0, 9));
        l.entries.insert("pool".into(), local(LocalKind::Dir, 0, 9));
        l.entries
            .insert("pool/a.deb".into(), local(LocalKind::File, 3, 7));
        l.entries
            .insert("pool/b.deb".into(), local(LocalKind::File, 3, 8));
        l.entries
            .insert("dists/stable".into(), local(LocalKind::Symlink, 0, 1));
        l.entries
            .insert("pool/old".into(), local(LocalKind::Dir, 0, 1));
        l.entries
            .insert("pool/old/c.deb".into(), local(LocalKind::File, 1, 1));
        let p = plan(&m, l);
        assert!(p.mkdirs.is_empty());
        assert_eq!(p.stage_one, [2, 6], "by-hash and the changed pool file");
        assert_eq!(p.stage_two, [1]);
        assert!(p.links.is_empty(), "same target");
        assert_eq!(p.dirs, [0, 4]);
        let gone: Vec<_> = p.deletions.iter().map(|d| d.0.clone()).collect();
        assert_eq!(
            gone,
            [PathBuf::from("pool/old/c.deb"), PathBuf::from("pool/old")]
        );
        assert_eq!(p.removals(), 2);
    }

    #[test]
    fn wrong_types_are_replaced_and_counted() {
        let m = manifest(vec![
            entry(Kind::Dir, "a", 0, 1),
            entry(Kind::File, "b", 1, 1),
            entry(Kind::Symlink, "c", 0, 1),
        ]);
        let mut l = Local::default();
        l.entries
            .insert("a".into(), local(LocalKind::Symlink, 0, 1));
        l.entries.insert("b".into(), local(LocalKind::Dir, 0, 1));
        l.entries.insert("c".into(), local(LocalKind::File, 1, 1));
        let p = plan(&m, l);
        assert_eq!(p.mkdirs, [0]);
        assert_eq!(p.stage_one, [1]);
        assert_eq!(p.links, [2]);
        assert_eq!(p.replaced, 3);
        assert!(p.deletions.is_empty());
    }

    #[test]
    fn modes_are_tamed() {
        let mut e = entry(Kind::File, "f", 0, 0);
        e.mode = 0o4755;
        assert_eq!(file_mode(&e), 0o755);
        e.mode = 0o1555;
        assert_eq!(dir_mode(&e), 0o755);
    }
}
