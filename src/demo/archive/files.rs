//! Putting the generated tree on disk and reading a tree back.
//!
//! Writers return `io::Error`s that name the path (a bare "Permission denied" does not say
//! which of a few hundred files it was about); the snapshot reader skips what it cannot read.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use super::{TreeEntry, sha256_hex};

/// `map_err` adapter: the same error kind, with `path` in front of the message.
pub(super) fn with_path(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Make `root/rel` a regular file with `data` and `mtime`, leaving an identical file alone.
pub(super) fn put_file(root: &Path, rel: &str, data: &[u8], mtime: SystemTime) -> io::Result<()> {
    let path = root.join(rel);
    let parent = path.parent().unwrap_or(root);
    fs::create_dir_all(parent).map_err(with_path(parent))?;
    if same_content(&path, data) {
        // Rewriting would change nothing but the inode; rsync only needs the mtime right.
        if fs::metadata(&path).and_then(|m| m.modified()).ok() != Some(mtime) {
            set_mtime(&path, mtime)?;
        }
        return Ok(());
    }
    // Write aside and rename, so a daemon serving the tree never shows a half-written file.
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    fs::write(&tmp, data).map_err(with_path(&tmp))?;
    set_mtime(&tmp, mtime)?;
    if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
        fs::remove_dir_all(&path).map_err(with_path(&path))?;
    }
    fs::rename(&tmp, &path).map_err(with_path(&path))
}

fn same_content(path: &Path, data: &[u8]) -> bool {
    let same_size = fs::symlink_metadata(path)
        .is_ok_and(|m| m.file_type().is_file() && m.len() == data.len() as u64);
    // Compare sizes first: reading every pool file on every revision would be wasted work.
    same_size && fs::read(path).is_ok_and(|d| d == data)
}

fn set_mtime(path: &Path, mtime: SystemTime) -> io::Result<()> {
    let f = fs::File::options()
        .write(true)
        .open(path)
        .map_err(with_path(path))?;
    f.set_modified(mtime).map_err(with_path(path))
}

/// Make `root/rel` a symlink to `target`, replacing whatever else is there.
pub(super) fn put_symlink(root: &Path, rel: &str, target: &str) -> io::Result<()> {
    let path = root.join(rel);
    if fs::read_link(&path).is_ok_and(|cur| cur == Path::new(target)) {
        return Ok(());
    }
    match fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(&path).map_err(with_path(&path))?,
        Ok(_) => fs::remove_file(&path).map_err(with_path(&path))?,
        Err(_) => {}
    }
    let parent = path.parent().unwrap_or(root);
    fs::create_dir_all(parent).map_err(with_path(parent))?;
    std::os::unix::fs::symlink(target, &path).map_err(with_path(&path))
}

/// Remove files/symlinks under `dir` for which `keep(rel, is_symlink)` is false, then empty
/// directories. Returns whether `dir` is empty afterwards.
pub(super) fn prune(
    root: &Path,
    dir: &Path,
    keep: &dyn Fn(&str, bool) -> bool,
) -> io::Result<bool> {
    let mut entries = fs::read_dir(dir)
        .and_then(|rd| rd.collect::<io::Result<Vec<_>>>())
        .map_err(with_path(dir))?;
    entries.sort_by_key(|e| e.file_name());
    let mut empty = true;
    for entry in entries {
        let path = entry.path();
        let ft = entry.file_type().map_err(with_path(&path))?;
        if ft.is_dir() {
            if prune(root, &path, keep)? {
                fs::remove_dir(&path).map_err(with_path(&path))?;
            } else {
                empty = false;
            }
        } else if keep(&rel(root, &path), ft.is_symlink()) {
            empty = false;
        } else {
            fs::remove_file(&path).map_err(with_path(&path))?;
        }
    }
    Ok(empty)
}

/// Add every readable entry under `dir` to `out` (see [`super::tree_snapshot`]).
pub(super) fn snapshot_into(root: &Path, dir: &Path, out: &mut BTreeMap<String, TreeEntry>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for entry in rd.flatten() {
        let path = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        let what = if ft.is_symlink() {
            let Ok(t) = fs::read_link(&path) else {
                continue;
            };
            TreeEntry::Symlink(t.to_string_lossy().into_owned())
        } else if ft.is_dir() {
            snapshot_into(root, &path, out);
            TreeEntry::Dir
        } else {
            let Ok(data) = fs::read(&path) else { continue };
            TreeEntry::File(data.len() as u64, sha256_hex(&data))
        };
        out.insert(rel(root, &path), what);
    }
}

/// `path` relative to `root`, `/`-separated. Only called on paths found by walking `root`.
fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}
