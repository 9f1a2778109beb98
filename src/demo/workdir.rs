//! The demo's directory: the one the user named, or a new one under the system temp dir.
//!
//! A demo writes a marker file into its directory. Only a directory with that marker (or an
//! empty one) is used, so `dsync demo ~/src` by mistake cannot scatter files into, or delete
//! anything from, a directory the demo did not make.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Marker file: this directory was made by `dsync demo`.
pub const MARKER: &str = ".dsync-demo";

/// What a demo puts into its directory; a rerun removes these first to start from scratch.
const ENTRIES: &[&str] = &["upstream", "rsyncd", "home", "mirror", "log"];

/// The demo's directory, absolute (ftpsync's `TO` and `LOGDIR` must not depend on the
/// working directory), marked, and empty but for the marker.
pub fn prepare(dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match dir {
        Some(dir) => reuse_or_create(dir)?,
        None => tempfile::Builder::new()
            .prefix("dsync-demo-")
            .tempdir()
            .context("create a directory under the system temp dir")?
            // Kept: the point of the demo is to look at what it made afterwards.
            .keep(),
    };
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolve {}", dir.display()))?;
    let marker = dir.join(MARKER);
    let note =
        "Made by `dsync demo`. A new `dsync demo` on this directory replaces its contents.\n";
    fs::write(&marker, note).with_context(|| format!("write {}", marker.display()))?;
    Ok(dir)
}

fn reuse_or_create(dir: &Path) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    if dir.join(MARKER).is_file() {
        for name in ENTRIES {
            remove(&dir.join(name))?;
        }
        return Ok(dir.to_path_buf());
    }
    let mut entries = fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))?;
    if entries.next().is_some() {
        bail!(
            "{} is not empty and was not made by dsync demo (it has no {MARKER}); \
             give a new or empty directory",
            dir.display()
        );
    }
    Ok(dir.to_path_buf())
}

/// Remove `path` whatever it is; a missing path is fine.
fn remove(path: &Path) -> anyhow::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Err(_) => return Ok(()),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    result.with_context(|| format!("remove {} (left by an earlier demo)", path.display()))
}
