//! What a finished mirror must look like: the upstream's tree (but for the
//! files a mirror adds of its own), and nothing temporary left behind.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use super::archive::{self, TreeEntry};

/// A tree as a mirror of an upstream should hold it: the mirror's own trace
/// files (everything under `project/trace/` but the upstream's `master`),
/// and the DTP manifest (a DTP mirror refreshes it with its trace) left out.
pub fn comparable(tree: BTreeMap<String, TreeEntry>) -> BTreeMap<String, TreeEntry> {
    tree.into_iter()
        .filter(|(p, _)| {
            !(p == "data.dsync" || (p.starts_with("project/trace/") && p != archive::TRACE_MASTER))
        })
        .collect()
}

/// How `mirror` differs from `upstream` (see [`comparable`]); empty if it is
/// a faithful copy.
pub fn differences(upstream: &Path, mirror: &Path) -> Vec<String> {
    archive::snapshot_diff(
        &comparable(archive::tree_snapshot(upstream)),
        &comparable(archive::tree_snapshot(mirror)),
    )
}

/// What a finished sync must not leave in `mirror`: rsync's `.~tmp~`
/// (`--delay-updates`) and its `.NAME.XXXXXX` temporary files, DTP's
/// `.NAME.dsync-part` files, and ftpsync's `Archive-Update-*` lock files.
pub fn leftovers(mirror: &Path) -> Vec<String> {
    let rsync_temp = regex::Regex::new(r"^\..+\.[A-Za-z0-9]{6}$").unwrap();
    let mut found = Vec::new();
    let mut stack = vec![mirror.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name == ".~tmp~"
                || name.ends_with(".dsync-part")
                || rsync_temp.is_match(&name)
                || name.starts_with("Archive-Update-")
            {
                found.push(path.display().to_string());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

/// What a status folder (`status=` of xync.conf) says of repository `name`:
/// the digit of `dsync-status/NAME` and the `status` of its job in
/// `dsync-jobs.json` (empty when missing).
pub fn job_status(www: &Path, name: &str) -> (String, String) {
    let digit = std::fs::read_to_string(www.join("dsync-status").join(name)).unwrap_or_default();
    let json = std::fs::read_to_string(www.join("dsync-jobs.json")).unwrap_or_default();
    let status = serde_json::from_str::<serde_json::Value>(&json)
        .ok()
        .and_then(|jobs| {
            jobs.as_array()?
                .iter()
                .find(|j| j["name"] == name)
                .map(|j| j["status"].as_str().unwrap_or_default().to_string())
        })
        .unwrap_or_default();
    (digit, status)
}
