//! Every ftpsync and runmirrors config of this user, in the folders and order
//! ftpsync searches them (`settings::config_dirs`; runmirrors skips
//! `$BASEDIR/etc`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::ftpsync::settings;
use crate::shellconf::Vars;

/// One archive's config: the file ftpsync reads, and those it never reads.
#[derive(Debug, Clone)]
pub struct Found {
    /// `ftpsync` or `ftpsync-ARCHIVE`: names the logs.
    pub name: String,
    /// What `sync:archive:` selects it (empty for `ftpsync.conf`).
    pub archive: String,
    pub path: PathBuf,
    /// Same-named files in later folders, shadowed by `path`.
    pub shadows: Vec<PathBuf>,
}

/// What [`find_all`] found.
#[derive(Debug, Default)]
pub struct Setups {
    pub archives: Vec<Found>,
    /// `runmirrors[-NAME].conf` files, first found per name.
    pub hubs: Vec<Found>,
}

/// Every `ftpsync.conf`, `ftpsync-NAME.conf` and `runmirrors[-NAME].conf`.
pub fn find_all(vars: &Vars) -> Setups {
    let mut archives: BTreeMap<String, Found> = BTreeMap::new();
    let mut hubs: BTreeMap<String, Found> = BTreeMap::new();
    let etc = settings::etc_dir();
    for dir in settings::config_dirs(vars) {
        // runmirrors reads only ~/.config/ftpsync and /etc/ftpsync.
        let basedir_etc = vars
            .get("BASEDIR")
            .filter(|b| !b.is_empty())
            .map(|b| Path::new(b).join("etc"));
        let runmirrors_reads = dir == etc || Some(&dir) != basedir_etc.as_ref();
        for (file, path) in conf_files(&dir) {
            let stem = file.trim_end_matches(".conf").to_string();
            let (map, prefix) = if stem.starts_with("runmirrors") {
                if !runmirrors_reads {
                    continue;
                }
                (&mut hubs, "runmirrors")
            } else if stem == "ftpsync" || stem.starts_with("ftpsync-") && stem != "ftpsync-cron" {
                (&mut archives, "ftpsync")
            } else {
                continue;
            };
            match map.get_mut(&stem) {
                Some(first) => first.shadows.push(path),
                None => {
                    let archive = stem
                        .strip_prefix(prefix)
                        .unwrap_or("")
                        .trim_start_matches('-')
                        .to_string();
                    map.insert(stem.clone(), found(&stem, &archive, path));
                }
            }
        }
    }
    Setups {
        archives: archives.into_values().collect(),
        hubs: hubs.into_values().collect(),
    }
}

/// The config a run named `name` reads, as `settings::load` finds it.
pub fn named(vars: &Vars, name: &str, archive: &str) -> Option<Found> {
    let file = settings::config_file_name(name);
    let mut paths = settings::config_dirs(vars)
        .into_iter()
        .map(|d| d.join(&file))
        .filter(|p| p.is_file());
    let mut first = found(name, archive, paths.next()?);
    first.shadows = paths.collect();
    Some(first)
}

fn found(name: &str, archive: &str, path: PathBuf) -> Found {
    Found {
        name: name.to_string(),
        archive: archive.to_string(),
        path,
        shadows: Vec::new(),
    }
}

/// `*.conf` files of `dir`, sorted by name.
fn conf_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(name, _)| name.ends_with(".conf"))
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_folder_wins_later_ones_are_shadows() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        let home = dir.path().join("home");
        for d in [base.join("etc"), home.join(".config/ftpsync")] {
            std::fs::create_dir_all(&d).unwrap();
            for f in [
                "ftpsync.conf",
                "runmirrors.conf",
                "ftpsync-cron.conf",
                "x.conf",
            ] {
                std::fs::write(d.join(f), "").unwrap();
            }
        }
        std::fs::write(home.join(".config/ftpsync/ftpsync-security.conf"), "").unwrap();
        let mut vars = Vars::new();
        vars.set("HOME", home.to_string_lossy());
        vars.set("BASEDIR", base.to_string_lossy());
        let setups = find_all(&vars);
        let names: Vec<(&str, &str)> = setups
            .archives
            .iter()
            .map(|f| (f.name.as_str(), f.archive.as_str()))
            .collect();
        assert_eq!(names, [("ftpsync", ""), ("ftpsync-security", "security")]);
        assert_eq!(setups.archives[0].path, base.join("etc/ftpsync.conf"));
        assert_eq!(
            setups.archives[0].shadows,
            [home.join(".config/ftpsync/ftpsync.conf")]
        );
        // runmirrors never reads $BASEDIR/etc.
        assert_eq!(setups.hubs.len(), 1);
        assert_eq!(
            setups.hubs[0].path,
            home.join(".config/ftpsync/runmirrors.conf")
        );
        assert!(setups.hubs[0].shadows.is_empty());
    }
}
