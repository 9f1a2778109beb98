//! Which files are archive indices, fetched in stage two as ftpsync does: apt
//! must never see a new `Release` next to old `Packages`, nor new `Packages`
//! that name pool files not there yet.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// ftpsync's stage-one excludes (`Packages*`, `Sources*`, `Release*`,
/// `InRelease`, `Contents*`, `ls-lR*`, `*.diff/Index`, `i18n/*`), plus
/// `dep11/` and `cnf/` (also listed in `Release` with hashes) and the
/// `installer-*/current` link of debian-installer. `by-hash/` files are
/// content-addressed: new ones never change what apt sees, so stage one.
pub fn is_index(path: &Path) -> bool {
    let parts: Vec<&[u8]> = path
        .components()
        .map(|c| c.as_os_str().as_bytes())
        .collect();
    let Some((&name, folders)) = parts.split_last() else {
        return false;
    };
    if parts.contains(&&b"by-hash"[..]) {
        return false;
    }
    let prefixed = |p: &[u8]| name.starts_with(p);
    if prefixed(b"Packages")
        || prefixed(b"Sources")
        || prefixed(b"Release")
        || prefixed(b"Contents")
        || prefixed(b"ls-lR")
        || name == b"InRelease"
    {
        return true;
    }
    if name == b"Index" && folders.last().is_some_and(|f| f.ends_with(b".diff")) {
        return true;
    }
    if folders
        .iter()
        .any(|f| *f == b"i18n" || *f == b"dep11" || *f == b"cnf")
    {
        return true;
    }
    parts
        .windows(2)
        .any(|w| w[0].starts_with(b"installer-") && w[1] == b"current")
}

/// Files renamed last in stage two: the signed entry points of a suite.
pub fn is_release(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n == "Release" || n == "InRelease" || n == "Release.gpg")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_as_ftpsync_sees_them() {
        for p in [
            "dists/bookworm/Release",
            "dists/bookworm/InRelease",
            "dists/bookworm/Release.gpg",
            "dists/bookworm/main/binary-amd64/Packages.xz",
            "dists/bookworm/main/source/Sources.gz",
            "dists/bookworm/main/Contents-amd64.gz",
            "dists/bookworm/main/i18n/Translation-en.bz2",
            "dists/bookworm/main/dep11/Components-amd64.yml.gz",
            "dists/bookworm/main/cnf/Commands-amd64.xz",
            "dists/bookworm/main/binary-amd64/Packages.diff/Index",
            "ls-lR.gz",
            "dists/bookworm/main/installer-amd64/current",
            "dists/bookworm/main/installer-amd64/current/images/MANIFEST",
        ] {
            assert!(is_index(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn pool_and_by_hash_are_stage_one() {
        for p in [
            "pool/main/h/hello/hello_2.10-3_amd64.deb",
            "dists/bookworm/main/binary-amd64/by-hash/SHA256/0123abcd",
            "dists/bookworm/main/i18n/by-hash/SHA256/0123abcd",
            "dists/bookworm/main/binary-amd64/Packages.diff/T-2023-06-10-0200.00-F-2023.gz",
            "dists/bookworm/main/installer-amd64/20230607/images/MANIFEST",
            "project/trace/master",
            "README",
        ] {
            assert!(!is_index(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn release_files_go_last() {
        assert!(is_release(Path::new("dists/x/InRelease")));
        assert!(!is_release(Path::new("dists/x/main/binary-all/Release.x")));
    }
}
