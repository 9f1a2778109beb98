//! The steps around the downloads that change the tree: folders first, then
//! (after stage two) index files and symlinks together, then deletions and
//! folder metadata. Each step only starts when the one before succeeded.

use std::os::fd::AsFd;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode};

use super::download;
use super::error::ClientError;
use super::index;
use super::lists::PathList;
use super::local::LocalKind;
use super::safe::{self, Root};
use crate::dtp::manifest::Entry;

/// Missing folders, in manifest order (parents first); a symlink or file
/// where a folder belongs is replaced by a real folder.
pub fn make_dirs<'p>(
    root: &Root,
    mkdirs: impl Iterator<Item = &'p Path>,
) -> Result<(), ClientError> {
    for rel in mkdirs {
        let (dir, name) = parent(root, rel)?;
        safe::ensure_dir(dir.as_fd(), name)
            .map_err(|e| ClientError::local(root.path().join(rel), "create the folder", e))?;
    }
    Ok(())
}

/// Permission bits of files that are otherwise up to date.
pub fn fix_modes(root: &Root, chmods: &PathList) -> Result<(), ClientError> {
    for listed in chmods.iter() {
        let (dir, name) = parent(root, listed.path)?;
        rustix::fs::chmodat(
            &dir,
            name,
            Mode::from_raw_mode(listed.mode),
            AtFlags::empty(),
        )
        .map_err(|e| ClientError::local(root.path().join(listed.path), "chmod", e.into()))?;
    }
    Ok(())
}

/// Stage two's verified parts take their names, `Release` files last, so a
/// reader sees the new `Release` only once every index it lists is there.
pub fn install_indices(root: &Root, entries: &[&Entry]) -> Result<(), ClientError> {
    let (releases, others): (Vec<&&Entry>, Vec<&&Entry>) =
        entries.iter().partition(|e| index::is_release(&e.path));
    for entry in others.into_iter().chain(releases) {
        download::install_part(root, &entry.path)?;
    }
    Ok(())
}

/// Symlinks, but not those that are absolute or lead out of the repository
/// (rsync's `--safe-links`): a hostile upstream must not make this mirror
/// serve files from elsewhere on this machine.
pub fn make_links(root: &Root, links: &[Entry], log: &dyn Fn(&str)) -> Result<u64, ClientError> {
    let mut skipped = 0;
    for entry in links {
        let Some(target) = entry
            .target
            .as_deref()
            .filter(|t| stays_inside(&entry.path, t))
        else {
            skipped += 1;
            log(&format!(
                "{}: symlink to {} skipped: it leads out of the repository",
                entry.path.display(),
                entry.target.as_deref().unwrap_or(Path::new("")).display()
            ));
            continue;
        };
        let (dir, name) = parent(root, &entry.path)?;
        safe::put_symlink(dir.as_fd(), name, target, entry.mtime).map_err(|e| {
            ClientError::local(root.path().join(&entry.path), "create the symlink", e)
        })?;
    }
    Ok(skipped)
}

/// Does `target`, relative to the folder of `link`, stay in the tree? `..`
/// only at the start: after a name, `NAME/..` would depend on where `NAME`
/// (maybe a symlink itself) leads, which no look at the text can tell.
pub fn stays_inside(link: &Path, target: &Path) -> bool {
    if target.as_os_str().is_empty() || target.is_absolute() {
        return false;
    }
    let mut depth = link.components().count() as i64 - 1;
    let mut descended = false;
    for c in target.components() {
        match c {
            Component::ParentDir if descended => return false,
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => descended = true,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Our leftovers of earlier runs: after a successful stage two no part is
/// needed any more.
pub fn remove_ours(root: &Root, ours: &[PathBuf]) {
    for rel in ours {
        if let Ok((dir, name)) = root.parent(rel) {
            let _ = safe::remove_any(dir.as_fd(), name);
        }
    }
}

/// Entries the manifest does not list, deepest first, never following a
/// symlink. A folder that still holds something (our own or excluded files)
/// goes with what it holds: the upstream removed it.
pub fn delete(root: &Root, deletions: &[(PathBuf, LocalKind)]) -> Result<u64, ClientError> {
    let mut deleted = 0;
    for (rel, kind) in deletions {
        let (dir, name) = match root.parent(rel) {
            Ok(found) => found,
            // Its folder is already gone with something deleted before, or
            // was replaced by a file in stage one.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                continue;
            }
            Err(e) => {
                return Err(ClientError::local(
                    root.path().join(rel),
                    "open the folder of",
                    e,
                ));
            }
        };
        let result = if *kind == LocalKind::Dir {
            match rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR) {
                Err(rustix::io::Errno::NOTEMPTY) => safe::remove_any(dir.as_fd(), name),
                other => other.map_err(Into::into),
            }
        } else {
            rustix::fs::unlinkat(&dir, name, AtFlags::empty()).map_err(Into::into)
        };
        match result {
            Ok(()) => deleted += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ClientError::local(root.path().join(rel), "delete", e)),
        }
    }
    Ok(deleted)
}

/// Folder modes and mtimes, deepest first, once nothing changes in them.
pub fn dir_meta(root: &Root, dirs: &PathList) -> Result<(), ClientError> {
    for listed in dirs.iter().rev() {
        let (dir, name) = parent(root, listed.path)?;
        safe::set_dir_meta(dir.as_fd(), name, listed.mode, listed.mtime).map_err(|e| {
            ClientError::local(
                root.path().join(listed.path),
                "set the mode and mtime of",
                e,
            )
        })?;
    }
    Ok(())
}

fn parent<'p>(
    root: &Root,
    rel: &'p Path,
) -> Result<(std::os::fd::OwnedFd, &'p std::ffi::OsStr), ClientError> {
    root.parent(rel)
        .map_err(|e| ClientError::local(root.path().join(rel), "open the folder of", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_links() {
        let inside = [
            ("dists/stable", "bookworm"),
            ("a/b/c", "../x"),
            ("a/b/c", "../../x"),
            ("a/b/c", "./d/e"),
        ];
        for (link, target) in inside {
            assert!(
                stays_inside(Path::new(link), Path::new(target)),
                "{link} -> {target}"
            );
        }
        let outside = [
            ("dists/stable", "/etc"),
            ("dists/stable", "../.."),
            ("top", ".."),
            ("a/b", "../../x"),
            ("a/b", "x/../../../y"),
            ("a", ""),
            ("a/b/c", "d/../e"),
            ("y", "x/.."),
        ];
        for (link, target) in outside {
            assert!(
                !stays_inside(Path::new(link), Path::new(target)),
                "{link} -> {target}"
            );
        }
    }
}
