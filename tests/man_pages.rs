//! The manual pages in man/: each passes `mandoc -T lint` without a single
//! message, and `dsync -h` and dsync(1) name the same options.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn pages() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e.len() == 1))
        .collect();
    pages.sort();
    pages
}

#[test]
fn every_page_is_lint_clean() {
    let names: Vec<String> = pages()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for page in ["dsync.1", "xync.conf.5", "dsync.conf.5"] {
        assert!(
            names.contains(&page.to_string()),
            "man/{page} missing: {names:?}"
        );
    }
    if Command::new("mandoc").arg("-V").output().is_err() {
        eprintln!(
            "SKIPPED every_page_is_lint_clean's lint: mandoc is not installed (scripts/test installs it)"
        );
        return;
    }
    for page in pages() {
        let out = Command::new("mandoc")
            .args(["-T", "lint"])
            .arg(&page)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "{}:\n{}{}",
            page.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `-word` options in a text (`-home`, `-stop-service`), ignoring `--long` forms.
fn options(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"(?:^|[\s\[|(])-([a-z][a-z-]*[a-z])").unwrap();
    re.captures_iter(text)
        .map(|c| format!("-{}", &c[1]))
        .collect()
}

#[test]
fn dsync_help_and_dsync_1_name_the_same_options() {
    let help = Command::new(env!("CARGO_BIN_EXE_dsync"))
        .arg("-h")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("man/dsync.1")).unwrap();
    // The page escapes dashes: \-home.
    let page = page.replace("\\-", "-");
    let in_help = options(&help);
    let in_page = options(&page);
    assert!(
        in_help.contains("-home") && in_help.contains("-test"),
        "{in_help:?}"
    );
    let missing: Vec<_> = in_help.difference(&in_page).collect();
    assert!(
        missing.is_empty(),
        "in dsync -h but not in dsync(1): {missing:?}"
    );
    let synopsis = &page[page.find(".SH OPTIONS").unwrap()..page.find(".SH FILES").unwrap()];
    let undocumented: Vec<_> = options(synopsis).difference(&in_help).cloned().collect();
    assert!(
        undocumented.is_empty(),
        "in dsync(1) OPTIONS but not in dsync -h: {undocumented:?}"
    );
}
