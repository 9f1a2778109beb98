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

/// `compat/install-links` points ftpsync, ftpsync-cron, runmirrors and
/// rsync-ssl-tunnel at dsync, each link then runs that personality, and
/// `--remove` takes exactly those links away.
#[test]
fn compat_links_make_the_debian_names_run_dsync_and_go_away_again() {
    let dir = tempfile::tempdir().unwrap();
    let path_dir = dir.path().join("path");
    let bindir = dir.path().join("bin");
    std::fs::create_dir_all(&path_dir).unwrap();
    std::fs::create_dir_all(&bindir).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_dsync"), path_dir.join("dsync")).unwrap();
    std::fs::write(bindir.join("unrelated"), "keep me").unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("compat/install-links");
    let run = |args: &[&str]| {
        Command::new(&script)
            .args(args)
            .env("PATH", format!("{}:/usr/bin:/bin", path_dir.display()))
            .output()
            .unwrap()
    };
    let out = run(&[bindir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = ["ftpsync", "ftpsync-cron", "runmirrors", "rsync-ssl-tunnel"];
    for name in names {
        let target = std::fs::read_link(bindir.join(name)).unwrap();
        assert!(target.ends_with("dsync"), "{name} -> {}", target.display());
    }
    // Through its link, runmirrors is runmirrors: its own help text.
    let help = Command::new(bindir.join("runmirrors"))
        .arg("-h")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("Type of push"),
        "{help:?}"
    );

    let out = run(&["--remove", bindir.to_str().unwrap()]);
    assert!(out.status.success());
    for name in names {
        assert!(!bindir.join(name).exists(), "{name} left behind");
    }
    assert!(bindir.join("unrelated").exists());
}
