//! What the demo prints: the setup, what each sync did (read back from rsync's log, since
//! the point is to show ftpsync's two stages at work), and where everything is.

use std::fs;
use std::path::{Path, PathBuf};

use super::archive::{self, ArchiveInfo};
use super::rsyncd::{self, Daemon};
use super::{Layout, conf};

/// Files a mirror writes for itself: they are not in the upstream.
const OWN_TRACES: [&str; 3] = ["_hierarchy", "_hierarchy.mirror", "_traces"];

pub fn upstream(layout: &Layout, info: &ArchiveInfo, daemon: &Daemon) {
    println!("\n== upstream: a generated Debian-style archive");
    println!(
        "   revision {} (serial {}), {} files in {}",
        info.rev,
        info.serial,
        info.all_files.len(),
        layout.upstream.display()
    );
    println!(
        "   served by rsync --daemon (pid {}) as rsync://127.0.0.1:{}/debian/",
        daemon.pid(),
        daemon.port()
    );
    println!("   daemon config: {}", daemon.config_path().display());
}

pub fn upstream_moved(old: &ArchiveInfo, new: &ArchiveInfo) {
    let old_pool: Vec<&str> = old.pool_files.iter().map(|(p, _)| p.as_str()).collect();
    let new_pool: Vec<&str> = new.pool_files.iter().map(|(p, _)| p.as_str()).collect();
    let added = new_pool.iter().filter(|p| !old_pool.contains(p)).count();
    let gone = old_pool.iter().filter(|p| !new_pool.contains(p)).count();
    println!(
        "\n== upstream moves to revision {} (serial {})",
        new.rev, new.serial
    );
    println!("   {added} new pool files, {gone} pool files gone, new Packages/Sources/Release.");
    println!("   ftpsync fetches the new pool files first (stage 1), then swaps in the new");
    println!("   indices and deletes the old files (stage 2): at no moment does the mirror");
    println!("   have an index that lists a missing file.");
}

/// Each stage's changes, from the rsync log of the run that just ended (ftpsync rotates its
/// logs at the end of a run, so that is `.0`).
pub fn after_sync(layout: &Layout) {
    let rsync_log = layout.log.join("rsync-ftpsync.log.0");
    let text = fs::read_to_string(&rsync_log).unwrap_or_default();
    let what = [
        "stage 1 (pool, by-hash; no indices):       ",
        "stage 2 (indices at once, then deletions): ",
    ];
    for (stage, label) in stage_changes(&text).iter().zip(what) {
        println!(
            "   {label}{} new, {} updated, {} deleted",
            stage.new, stage.updated, stage.deleted
        );
    }
}

/// Files created, updated and deleted by one rsync run.
#[derive(Debug, Default, PartialEq)]
struct Changes {
    new: usize,
    updated: usize,
    deleted: usize,
}

/// One [`Changes`] per rsync run in a `--log-file` (each run starts with "receiving file
/// list"), counted from the `%i` itemize codes: `>f+++++++++` (a new file), `>f.st......`
/// (an updated one), `cL+++++++++` (a new symlink), `*deleting`.
fn stage_changes(log: &str) -> Vec<Changes> {
    let mut runs: Vec<Changes> = Vec::new();
    for line in log.lines() {
        // "2024/01/02 03:04:05 [pid] MESSAGE"
        let Some((_, message)) = line.split_once("] ") else {
            continue;
        };
        if message == "receiving file list" || runs.is_empty() {
            runs.push(Changes::default());
        }
        let Some(run) = runs.last_mut() else { continue };
        let code = message.split(' ').next().unwrap_or("");
        if code == "*deleting" {
            run.deleted += 1;
        } else if code.len() == 11 && (code.starts_with(">f") || code.starts_with("cL")) {
            if code.ends_with("+++++++++") {
                run.new += 1;
            } else {
                run.updated += 1;
            }
        }
    }
    runs
}

pub fn summary(layout: &Layout, code: u8) {
    println!("\n== summary");
    let (files, bytes) = count_files(&layout.mirror);
    println!(
        "mirror: {} ({files} files, {bytes} bytes)",
        layout.mirror.display()
    );
    if code == crate::exit::OK {
        check_mirror(layout);
    } else {
        println!("the last sync failed with exit code {code}: its log tells why (below)");
    }
    let trace = layout.trace();
    match fs::read_to_string(&trace) {
        Ok(text) => {
            println!("trace file {}:", trace.display());
            for line in text.lines() {
                println!("    {line}");
            }
        }
        Err(_) => println!("no trace file {} (no sync completed)", trace.display()),
    }
    println!("logs (.0 is the last sync, .1 the one before):");
    for path in sorted_entries(&layout.log) {
        println!("    {}", path.display());
    }
    println!(
        "    {} (the upstream daemon's)",
        layout.rsyncd.join("rsyncd.log").display()
    );
    print_by_hand(layout);
}

/// The mirror equals the upstream apart from the mirror's own trace files.
fn check_mirror(layout: &Layout) {
    let mut mirror = archive::tree_snapshot(&layout.mirror);
    let trace_dir = Path::new("project/trace");
    for own in OWN_TRACES.iter().chain([&conf::MIRRORNAME]) {
        mirror.remove(&trace_dir.join(own).to_string_lossy().into_owned());
    }
    let diff = archive::snapshot_diff(&archive::tree_snapshot(&layout.upstream), &mirror);
    if diff.is_empty() {
        println!("        identical to the upstream, apart from the mirror's own trace files");
    } else {
        println!("        differs from the upstream:");
        for line in diff {
            println!("        {line}");
        }
    }
}

fn print_by_hand(layout: &Layout) {
    let dsync = if rsyncd::on_path("dsync") {
        "dsync".to_string()
    } else {
        std::env::current_exe()
            .map(|p| conf::quote(&p))
            .unwrap_or_else(|_| "dsync".into())
    };
    println!("to sync by hand, start the upstream again (the demo stopped it), then run ftpsync:");
    println!(
        "    rsync --daemon --no-detach --config={} &",
        conf::quote(&layout.rsyncd.join("rsyncd.conf"))
    );
    println!("    HOME={} {dsync} ftpsync", conf::quote(&layout.home));
}

/// Regular files under `dir` and their total size (symlinks and directories not counted).
fn count_files(dir: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    for path in sorted_entries(dir) {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            let (f, b) = count_files(&path);
            files += f;
            bytes += b;
        } else if meta.is_file() {
            files += 1;
            bytes += meta.len();
        }
    }
    (files, bytes)
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.sort();
    paths
}

#[cfg(test)]
mod tests {
    use super::{Changes, stage_changes};

    #[test]
    fn counts_each_rsync_run_of_a_log_file() {
        let log = "\
2024/01/02 03:04:05 [10] receiving file list
2024/01/02 03:04:05 [10] done
2024/01/02 03:04:05 [11] .d..t...... pool/
2024/01/02 03:04:05 [11] >f+++++++++ pool/a.deb
2024/01/02 03:04:05 [11] cL+++++++++ dists/stable -> bookworm
2024/01/02 03:04:05 [11] Number of files: 3
2024/01/02 03:04:06 [12] receiving file list
2024/01/02 03:04:06 [13] >f.st...... dists/bookworm/Release
2024/01/02 03:04:06 [13] >f..t...... dists/bookworm/main/Packages
2024/01/02 03:04:06 [13] *deleting   pool/old.deb
";
        let expect = |new, updated, deleted| Changes {
            new,
            updated,
            deleted,
        };
        assert_eq!(stage_changes(log), vec![expect(2, 0, 0), expect(0, 2, 1)]);
    }
}
