//! The plan: what to create, fetch, replace and delete to turn the local tree
//! into the one a manifest describes.
//!
//! The manifest and the local walk come in the same order (raw path bytes),
//! so the plan is a merge of the two streams, entry by entry: memory is what
//! needs doing, not the tree. Only folders are listed whole (their metadata
//! is set last); the files to fetch in stage one go to a spool file. What
//! the plan keeps in memory is bounded by `Limits::max_plan_bytes`, so a
//! hostile manifest cannot choose how much memory a sync takes.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::index;
use super::lists::{FileSpool, PathList};
use super::local::{self, Local, LocalKind};
use crate::dtp::manifest::{self, Entry, Header, Kind, ManifestError};

/// What to do, each list in manifest order (a folder before what it holds).
#[derive(Debug)]
pub struct Plan {
    pub header: Header,
    /// Folders missing, or something else by their name: indices into
    /// `dirs` (each folder's path is kept once).
    pub mkdirs: Vec<usize>,
    /// Up-to-date files whose permission bits differ, with the mode to give.
    pub chmods: PathList,
    /// Stage one: files fetched and put in place one by one.
    pub stage_one: FileSpool,
    /// Stage two: index files, put in place together at the end.
    pub stage_two: Vec<Entry>,
    /// Symlinks missing or pointing elsewhere.
    pub links: Vec<Entry>,
    /// Every folder with its mode and mtime, set last, after the changes in them.
    pub dirs: PathList,
    /// Local entries the manifest does not list, deepest first (kept only
    /// while within `max_delete`: beyond it the plan is refused anyway).
    pub deletions: Vec<(PathBuf, LocalKind)>,
    /// All such entries, kept or not.
    pub unlisted: u64,
    /// Local entries of another type than listed, replaced on the way.
    pub replaced: u64,
    /// Our leftovers from earlier runs (removed after a successful run).
    pub ours: Vec<PathBuf>,
    /// Bytes of the partial downloads earlier runs left (`ours`): written
    /// already, so not needed again.
    pub partial_bytes: u64,
    /// Regular files the manifest lists, and the mirror has (shrink guard).
    pub upstream_files: u64,
    pub mirror_files: u64,
    /// An `Archive-Update-in-Progress-*` entry: the upstream is mid-update,
    /// and the rest of this plan is not to be used.
    pub update_in_progress: Option<PathBuf>,
}

impl Plan {
    /// What this plan removes from the mirror: the `max-delete` measure.
    pub fn removals(&self) -> u64 {
        self.unlisted + self.replaced
    }

    pub fn stage_two_bytes(&self) -> u64 {
        self.stage_two.iter().map(|e| e.size).sum()
    }

    /// The folders to create, parents first.
    pub fn missing_dirs(&self) -> impl Iterator<Item = &Path> {
        self.mkdirs.iter().map(|&i| self.dirs.get(i).path)
    }
}

/// The permission bits we give a file: never set-id or sticky bits, and
/// never writable by group or others, whatever a (possibly hostile) upstream
/// lists: local users must not be able to change what the mirror serves.
pub fn file_mode(entry: &Entry) -> u32 {
    entry.mode & 0o755
}

/// Folders stay writable and searchable by us, or the next sync could not
/// update them; never writable by group or others (a local user could plant
/// files or symlinks there), never set-id; the sticky bit may stay.
pub fn dir_mode(entry: &Entry) -> u32 {
    (entry.mode & 0o1755) | 0o700
}

/// Why planning stopped.
#[derive(Debug)]
pub enum PlanError {
    Manifest(ManifestError),
    /// The stage-one spool could not be written.
    Spool(std::io::Error),
}

impl From<ManifestError> for PlanError {
    fn from(e: ManifestError) -> Self {
        PlanError::Manifest(e)
    }
}

/// The merge: feed it the local entries in manifest order ([`Planner::local`]),
/// then [`Planner::finish`].
pub struct Planner<R> {
    manifest: R,
    /// The manifest entry not yet merged.
    next: Option<Next>,
    plan: Plan,
    protect: HashSet<PathBuf>,
    max_delete: u64,
    /// Entries read from the manifest so far (for the line of a refusal).
    read: u64,
    /// What the plan keeps in memory for the manifest's entries, and the most
    /// it may (`Limits::max_plan_bytes`).
    kept: u64,
    max_kept: u64,
}

/// A manifest entry and, for a folder, its index in `Plan::dirs`.
struct Next {
    entry: Entry,
    dir: Option<usize>,
}

impl Next {
    fn path(&self) -> &[u8] {
        bytes(&self.entry.path)
    }
}

impl<R: Iterator<Item = Result<Entry, ManifestError>>> Planner<R> {
    /// `protect`: local paths never deleted though the manifest does not
    /// list them; `max_plan_bytes`: see `Limits::max_plan_bytes`.
    pub fn new(
        header: Header,
        manifest: R,
        stage_one: FileSpool,
        protect: &[PathBuf],
        max_delete: u64,
        max_plan_bytes: u64,
    ) -> Result<Self, PlanError> {
        let plan = Plan {
            header,
            mkdirs: Vec::new(),
            chmods: PathList::default(),
            stage_one,
            stage_two: Vec::new(),
            links: Vec::new(),
            dirs: PathList::default(),
            deletions: Vec::new(),
            unlisted: 0,
            replaced: 0,
            ours: Vec::new(),
            partial_bytes: 0,
            upstream_files: 0,
            mirror_files: 0,
            update_in_progress: None,
        };
        let mut planner = Planner {
            manifest,
            next: None,
            plan,
            protect: protect.iter().cloned().collect(),
            max_delete,
            read: 0,
            kept: 0,
            max_kept: max_plan_bytes,
        };
        planner.advance()?;
        Ok(planner)
    }

    /// One local entry; they must come in manifest order. False: the rest
    /// of the walk is not needed (the upstream is mid-update).
    pub fn local(&mut self, found: Local<'_>) -> Result<bool, PlanError> {
        if local::is_ours(&found) {
            if found.stat.kind == LocalKind::File {
                self.plan.partial_bytes += found.stat.size;
            }
            self.plan.ours.push(local::path_buf(found.path));
            return Ok(true);
        }
        if local::is_excluded(&found) {
            return Ok(true);
        }
        while let Some(next) = self.next.take_if(|e| e.path() < found.path) {
            self.advance()?;
            self.missing(&next)?;
        }
        if self.plan.update_in_progress.is_some() {
            return Ok(false);
        }
        match self.next.take_if(|e| e.path() == found.path) {
            Some(next) => {
                self.advance()?;
                self.both(&next, &found)?;
            }
            None => self.unlisted(&found),
        }
        Ok(true)
    }

    /// The rest of the manifest; the plan, once the whole manifest has been
    /// read and found valid (not before: nothing may act on a part of it).
    pub fn finish(mut self) -> Result<Plan, PlanError> {
        while let Some(next) = self.next.take() {
            self.advance()?;
            if self.plan.update_in_progress.is_none() {
                self.missing(&next)?;
            }
        }
        // Collected in manifest order: reversed, a folder's contents go first.
        self.plan.deletions.reverse();
        Ok(self.plan)
    }

    /// The next manifest entry into `next`; what every listed entry counts for.
    fn advance(&mut self) -> Result<(), PlanError> {
        let Some(entry) = self.manifest.next().transpose()? else {
            self.next = None;
            return Ok(());
        };
        self.read += 1;
        let mut dir = None;
        match entry.kind {
            Kind::File => self.plan.upstream_files += 1,
            Kind::Dir => {
                self.keep(entry.path.as_os_str().len() + PathList::ITEM_BYTES)?;
                dir = Some(self.plan.dirs.len());
                let path = bytes(&entry.path);
                self.plan.dirs.push(path, dir_mode(&entry), entry.mtime);
            }
            Kind::Symlink => {}
        }
        if self.plan.update_in_progress.is_none() && is_update_in_progress(&entry.path) {
            self.plan.update_in_progress = Some(entry.path.clone());
        }
        self.next = Some(Next { entry, dir });
        Ok(())
    }

    /// Count `cost` bytes more of memory for the plan; refuse the manifest
    /// once over the limit, before that memory is taken.
    fn keep(&mut self, cost: usize) -> Result<(), PlanError> {
        self.kept = self.kept.saturating_add(cost as u64);
        if self.kept <= self.max_kept {
            return Ok(());
        }
        Err(PlanError::Manifest(ManifestError::Invalid {
            line: manifest::HEADER_LINES + self.read,
            reason: format!(
                "its folders, symlinks, index files and mode changes take more than {} bytes \
                 of memory to plan (a client's max_plan_bytes, dtp(7))",
                self.max_kept
            ),
        }))
    }

    /// Keep a whole entry (a symlink or an index file) in the plan.
    fn keep_entry(&mut self, entry: &Entry) -> Result<Entry, PlanError> {
        let target = entry.target.as_ref().map_or(0, |t| t.as_os_str().len());
        self.keep(std::mem::size_of::<Entry>() + entry.path.as_os_str().len() + target)?;
        Ok(entry.clone())
    }

    /// Listed, not here.
    fn missing(&mut self, next: &Next) -> Result<(), PlanError> {
        let entry = &next.entry;
        match entry.kind {
            Kind::Dir => {
                // `advance` gave every folder its index.
                if let Some(dir) = next.dir {
                    self.keep(std::mem::size_of::<usize>())?;
                    self.plan.mkdirs.push(dir);
                }
            }
            Kind::Symlink => {
                let link = self.keep_entry(entry)?;
                self.plan.links.push(link);
            }
            Kind::File => self.fetch(entry)?,
        }
        Ok(())
    }

    /// Listed and here: the same, or to be fixed or replaced.
    fn both(&mut self, next: &Next, have: &Local<'_>) -> Result<(), PlanError> {
        let entry = &next.entry;
        if have.stat.kind == LocalKind::File {
            self.plan.mirror_files += 1;
        }
        if have.stat.kind != local_kind(entry.kind) {
            self.plan.replaced += 1;
            return self.missing(next);
        }
        match entry.kind {
            Kind::Dir => {}
            Kind::Symlink => {
                if have.target != entry.target.as_deref().map(bytes) {
                    let link = self.keep_entry(entry)?;
                    self.plan.links.push(link);
                }
            }
            Kind::File if up_to_date(entry, have) => {
                if have.stat.mode & 0o777 != file_mode(entry) {
                    self.keep(entry.path.as_os_str().len() + PathList::ITEM_BYTES)?;
                    let mode = file_mode(entry);
                    self.plan.chmods.push(bytes(&entry.path), mode, entry.mtime);
                }
            }
            Kind::File => self.fetch(entry)?,
        }
        Ok(())
    }

    /// Here, not listed: deleted, unless protected.
    fn unlisted(&mut self, have: &Local<'_>) {
        let path = local::path_buf(have.path);
        if self.protect.contains(&path) {
            return;
        }
        if have.stat.kind == LocalKind::File {
            self.plan.mirror_files += 1;
        }
        self.plan.unlisted += 1;
        if self.plan.unlisted <= self.max_delete {
            self.plan.deletions.push((path, have.stat.kind));
        }
    }

    fn fetch(&mut self, entry: &Entry) -> Result<(), PlanError> {
        if index::is_index(&entry.path) {
            let index = self.keep_entry(entry)?;
            self.plan.stage_two.push(index);
            return Ok(());
        }
        self.plan.stage_one.push(entry).map_err(PlanError::Spool)
    }
}

/// rsync's quick check: a regular file of the listed size and mtime.
fn up_to_date(entry: &Entry, have: &Local<'_>) -> bool {
    have.stat.kind == LocalKind::File
        && have.stat.size == entry.size
        && have.stat.mtime == entry.mtime
}

fn local_kind(kind: Kind) -> LocalKind {
    match kind {
        Kind::File => LocalKind::File,
        Kind::Dir => LocalKind::Dir,
        Kind::Symlink => LocalKind::Symlink,
    }
}

fn is_update_in_progress(path: &Path) -> bool {
    path.file_name().is_some_and(|n| {
        n.as_bytes()
            .starts_with(super::UPDATE_IN_PROGRESS.as_bytes())
    })
}

fn bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtp::ordered_walk::Stat;

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

    fn link(path: &str, target: &str) -> Entry {
        Entry {
            target: Some(target.into()),
            ..entry(Kind::Symlink, path, 0, 1)
        }
    }

    /// A local entry: path, what it is, and a symlink's target.
    struct Here(&'static str, Stat, Option<&'static str>);

    fn here(path: &'static str, kind: LocalKind, size: u64, mtime: i64) -> Here {
        let mode = if kind == LocalKind::File {
            0o644
        } else {
            0o755
        };
        let stat = Stat {
            kind,
            mode,
            size,
            mtime,
            mtime_ns: 0,
            ctime: 0,
            ctime_ns: 0,
            ino: 0,
        };
        let target = (kind == LocalKind::Symlink).then_some("x");
        Here(path, stat, target)
    }

    fn header(n: usize) -> Header {
        Header {
            version: 1,
            repo: "t".into(),
            entries: n as u64,
            bytes: 0,
            generated: 0,
            digest: String::new(),
        }
    }

    /// The plan for `manifest` against `local` (both in manifest order).
    fn plan_with(
        manifest: Vec<Result<Entry, ManifestError>>,
        local: &[Here],
        protect: &[&str],
        max_delete: u64,
    ) -> Result<Plan, PlanError> {
        let protect: Vec<PathBuf> = protect.iter().map(PathBuf::from).collect();
        let spool = FileSpool::new(tempfile::tempfile().unwrap());
        let mut planner = Planner::new(
            header(manifest.len()),
            manifest.into_iter(),
            spool,
            &protect,
            max_delete,
            u64::MAX,
        )?;
        for Here(path, stat, target) in local {
            let found = Local {
                path: path.as_bytes(),
                name: path.rsplit('/').next().unwrap().as_bytes(),
                stat,
                target: target.map(str::as_bytes),
            };
            if !planner.local(found)? {
                break;
            }
        }
        planner.finish()
    }

    fn plan(manifest: Vec<Entry>, local: &[Here]) -> Plan {
        plan_with(manifest.into_iter().map(Ok).collect(), local, &[], 100).unwrap()
    }

    fn stage_one(plan: Plan) -> Vec<String> {
        let mut windows = plan.stage_one.into_windows(2).unwrap();
        let mut paths = Vec::new();
        while let Some(window) = windows.next_window().unwrap() {
            paths.extend(window.iter().map(|e| e.path.display().to_string()));
        }
        paths
    }

    fn paths(list: &PathList) -> Vec<String> {
        list.iter().map(|l| l.path.display().to_string()).collect()
    }

    fn deletions(plan: &Plan) -> Vec<String> {
        let paths = plan.deletions.iter();
        paths.map(|(p, _)| p.display().to_string()).collect()
    }

    #[test]
    fn quick_check_and_stages() {
        let m = vec![
            entry(Kind::Dir, "dists", 0, 1),
            entry(Kind::File, "dists/Release", 10, 5),
            entry(Kind::File, "dists/by-hash/SHA256/ab", 10, 5),
            link("dists/stable", "x"),
            entry(Kind::Dir, "pool", 0, 1),
            entry(Kind::File, "pool/a.deb", 3, 7),
            entry(Kind::File, "pool/b.deb", 3, 7),
        ];
        let l = [
            here("dists", LocalKind::Dir, 0, 9),
            here("dists/stable", LocalKind::Symlink, 0, 1),
            here("pool", LocalKind::Dir, 0, 9),
            here("pool/a.deb", LocalKind::File, 3, 7),
            here("pool/b.deb", LocalKind::File, 3, 8),
            here("pool/old", LocalKind::Dir, 0, 1),
            here("pool/old/c.deb", LocalKind::File, 1, 1),
        ];
        let p = plan(m, &l);
        assert_eq!(p.mkdirs.len(), 0);
        let two: Vec<_> = p.stage_two.iter().map(|e| e.path.clone()).collect();
        assert_eq!(two, [PathBuf::from("dists/Release")]);
        assert!(p.links.is_empty(), "same target");
        assert_eq!(paths(&p.dirs), ["dists", "pool"]);
        assert_eq!(
            deletions(&p),
            ["pool/old/c.deb", "pool/old"],
            "deepest first"
        );
        assert_eq!(p.removals(), 2);
        assert_eq!((p.upstream_files, p.mirror_files), (4, 3));
        assert_eq!(stage_one(p), ["dists/by-hash/SHA256/ab", "pool/b.deb"]);
    }

    #[test]
    fn a_dash_sorts_between_a_folder_and_its_contents() {
        let m = vec![
            entry(Kind::Dir, "a", 0, 1),
            entry(Kind::File, "a-x", 1, 1),
            entry(Kind::File, "a/b", 1, 1),
            entry(Kind::File, "a/d", 1, 1),
        ];
        let l = [
            here("a", LocalKind::Dir, 0, 1),
            here("a-x", LocalKind::File, 1, 1),
            here("a-y", LocalKind::File, 1, 1),
            here("a/b", LocalKind::File, 1, 1),
            here("a/c", LocalKind::File, 1, 1),
        ];
        let p = plan(m, &l);
        assert_eq!(deletions(&p), ["a/c", "a-y"]);
        assert_eq!(p.replaced, 0);
        assert_eq!(stage_one(p), ["a/d"]);
    }

    #[test]
    fn a_file_where_a_folder_is_listed_is_replaced() {
        let m = vec![entry(Kind::Dir, "x", 0, 1), entry(Kind::File, "x/y", 1, 1)];
        let p = plan(m, &[here("x", LocalKind::File, 1, 1)]);
        let mkdirs: Vec<_> = p.missing_dirs().map(|p| p.display().to_string()).collect();
        assert_eq!(mkdirs, ["x"]);
        assert_eq!(p.replaced, 1);
        assert!(p.deletions.is_empty());
        assert_eq!(stage_one(p), ["x/y"]);
    }

    #[test]
    fn a_folder_where_a_file_is_listed_goes_with_its_contents() {
        let m = vec![entry(Kind::File, "x", 1, 1)];
        let l = [
            here("x", LocalKind::Dir, 0, 1),
            here("x/y", LocalKind::File, 1, 1),
        ];
        let p = plan(m, &l);
        assert_eq!(p.replaced, 1);
        assert_eq!(deletions(&p), ["x/y"]);
        assert_eq!(p.removals(), 2);
        assert_eq!(stage_one(p), ["x"]);
    }

    #[test]
    fn symlinks_are_made_when_missing_changed_or_of_another_type() {
        let m = vec![
            link("same", "x"),
            link("moved", "elsewhere"),
            link("was-file", "x"),
            link("new", "x"),
            entry(Kind::File, "was-link", 1, 1),
        ];
        let l = [
            here("moved", LocalKind::Symlink, 0, 1),
            here("same", LocalKind::Symlink, 0, 1),
            here("was-file", LocalKind::File, 1, 1),
            here("was-link", LocalKind::Symlink, 0, 1),
        ];
        let p = plan(m, &l);
        let links: Vec<_> = p.links.iter().map(|e| e.path.clone()).collect();
        let want: Vec<PathBuf> = ["moved", "was-file", "new"].map(PathBuf::from).into();
        assert_eq!(links, want);
        assert_eq!(p.replaced, 2);
        assert_eq!(stage_one(p), ["was-link"]);
    }

    #[test]
    fn ours_excluded_and_protected_are_not_deleted() {
        let m = vec![entry(Kind::Dir, "d", 0, 1), entry(Kind::File, "d/f", 1, 1)];
        let l = [
            here("d", LocalKind::Dir, 0, 1),
            here("d/.f.dsync-part", LocalKind::File, 1, 1),
            here("d/f", LocalKind::File, 1, 1),
            here("d/mine", LocalKind::File, 1, 1),
            here("data.dsync", LocalKind::File, 1, 1),
            here("gone", LocalKind::File, 1, 1),
        ];
        let manifest = m.into_iter().map(Ok).collect();
        let p = plan_with(manifest, &l, &["d/mine"], 100).unwrap();
        assert_eq!(p.ours, [PathBuf::from("d/.f.dsync-part")]);
        assert_eq!(deletions(&p), ["gone"]);
        assert_eq!(p.mirror_files, 2, "d/f and gone");
    }

    #[test]
    fn deletions_are_all_counted_but_kept_only_within_max_delete() {
        let l: Vec<Here> = ["a", "b", "c", "d", "e"]
            .into_iter()
            .map(|p| here(p, LocalKind::File, 1, 1))
            .collect();
        let p = plan_with(Vec::new(), &l, &[], 2).unwrap();
        assert_eq!(p.removals(), 5);
        assert!(p.deletions.len() <= 3);
        let p = plan_with(Vec::new(), &l, &[], 5).unwrap();
        assert_eq!(deletions(&p), ["e", "d", "c", "b", "a"]);
    }

    #[test]
    fn modes_are_fixed_without_a_download() {
        let mut e = entry(Kind::File, "f", 1, 1);
        e.mode = 0o4755;
        let p = plan(vec![e], &[here("f", LocalKind::File, 1, 1)]);
        let fixed: Vec<_> = p.chmods.iter().map(|l| (l.path, l.mode)).collect();
        assert_eq!(fixed, [(Path::new("f"), 0o755)]);
        assert!(stage_one(p).is_empty());
    }

    #[test]
    fn an_update_in_progress_stops_the_walk_but_not_the_check() {
        let m = vec![
            entry(Kind::File, "Archive-Update-in-Progress-host", 0, 1),
            entry(Kind::File, "b", 1, 1),
        ];
        let mut planner = Planner::new(
            header(2),
            m.into_iter().map(Ok),
            FileSpool::new(tempfile::tempfile().unwrap()),
            &[],
            10,
            u64::MAX,
        )
        .unwrap();
        let Here(path, stat, _) = here("a", LocalKind::File, 1, 1);
        let found = Local {
            path: path.as_bytes(),
            name: path.as_bytes(),
            stat: &stat,
            target: None,
        };
        assert!(!planner.local(found).unwrap(), "no need to walk on");
        let p = planner.finish().unwrap();
        assert_eq!(
            p.update_in_progress,
            Some(PathBuf::from("Archive-Update-in-Progress-host"))
        );
    }

    #[test]
    fn a_bad_manifest_gives_no_plan() {
        let bad = ManifestError::Invalid {
            line: 9,
            reason: "digest".into(),
        };
        let m = vec![Ok(entry(Kind::File, "a", 1, 1)), Err(bad)];
        let l = [here("a", LocalKind::File, 1, 1)];
        let result = plan_with(m, &l, &[], 10);
        assert!(matches!(result, Err(PlanError::Manifest(_))), "{result:?}");
    }

    #[test]
    fn modes_are_tamed() {
        let mut e = entry(Kind::File, "f", 0, 0);
        for (listed, file, dir) in [
            (0o4755, 0o755, 0o755),
            (0o0777, 0o755, 0o755),
            (0o0666, 0o644, 0o744),
            (0o1777, 0o755, 0o1755),
            (0o2775, 0o755, 0o755),
            (0o1555, 0o555, 0o1755),
        ] {
            e.mode = listed;
            assert_eq!(file_mode(&e), file, "file {listed:o}");
            assert_eq!(dir_mode(&e), dir, "folder {listed:o}");
        }
    }

    /// A manifest of `n` folders with paths of `len` bytes, under `max`.
    fn plan_folders(n: usize, len: usize, max: u64) -> Result<Plan, PlanError> {
        let manifest = (0..n).map(|i| Ok(entry(Kind::Dir, &format!("{i:0len$}"), 0, 1)));
        let spool = FileSpool::new(tempfile::tempfile().unwrap());
        Planner::new(header(n), manifest, spool, &[], 0, max)?.finish()
    }

    #[test]
    fn folder_paths_are_kept_once_and_within_the_limit() {
        let p = plan_folders(100, 1000, 200_000).unwrap();
        assert_eq!((p.dirs.len(), p.mkdirs.len()), (100, 100));
        let first = p.missing_dirs().next().unwrap();
        assert_eq!(first, Path::new(&format!("{:01000}", 0)));
        // 100 kB of folder paths fit in 200 kB: each is kept (and counted)
        // once, not again in `mkdirs`; 200 kB of them do not.
        match plan_folders(200, 1000, 200_000) {
            Err(PlanError::Manifest(ManifestError::Invalid { line, reason })) => {
                assert!(reason.contains("200000 bytes"), "{reason}");
                assert!((7 + 150..7 + 200).contains(&line), "{line}");
            }
            other => panic!("{other:?}"),
        }
    }
}
