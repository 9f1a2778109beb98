//! `scripts/build-deb` makes a Debian package that puts the binary, man
//! pages, completions and samples in the Debian places, and the extracted
//! binary runs.

use std::path::Path;
use std::process::Command;

#[test]
fn the_deb_holds_everything_in_the_debian_places() {
    if Command::new("dpkg-deb").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED the_deb_holds_everything_in_the_debian_places: dpkg-deb is not installed"
        );
        return;
    }
    let out_dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-deb");
    let out = Command::new(&script)
        .arg(out_dir.path())
        .env("DSYNC_BIN", env!("CARGO_BIN_EXE_dsync"))
        .env("DEB_COMPRESSION", "none")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(deb.ends_with(".deb"), "{deb}");

    let listing = Command::new("dpkg-deb")
        .args(["-c", &deb])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for path in [
        "./usr/bin/dsync",
        "./usr/share/man/man1/dsync.1.gz",
        "./usr/share/man/man5/xync.conf.5.gz",
        "./usr/share/man/man5/dsync.conf.5.gz",
        "./usr/share/man/man7/dtp.7.gz",
        "./usr/share/bash-completion/completions/dsync",
        "./usr/share/zsh/vendor-completions/_dsync",
        "./usr/share/fish/vendor_completions.d/dsync.fish",
        "./usr/share/doc/dsync/examples/xync.conf",
        "./usr/share/doc/dsync/examples/repos/kali.conf",
        "./usr/share/doc/dsync/examples/systemd/dsync.timer",
        "./usr/share/doc/dsync/examples/systemd/dsync-dtp.service",
        "./usr/share/doc/dsync/copyright",
        "./usr/share/dsync/install-links",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} missing:\n{listing}"
        );
    }
    let fields = Command::new("dpkg-deb")
        .args(["-f", &deb, "Package", "Depends"])
        .output()
        .unwrap();
    let fields = String::from_utf8_lossy(&fields.stdout);
    assert!(
        fields.contains("Package: dsync") && fields.contains("rsync"),
        "{fields}"
    );

    let root = tempfile::tempdir().unwrap();
    let x = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(root.path())
        .status()
        .unwrap();
    assert!(x.success());
    let version = Command::new(root.path().join("usr/bin/dsync"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with("dsync "),
        "{version:?}"
    );
}
