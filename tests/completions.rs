//! Shell completions in completions/: each offers every option `dsync -h`
//! names, and the bash one, run by a real bash, completes options and the
//! repository names of the home given with -home.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/completions"))
}

/// `-word` options of `dsync -h`.
fn help_options() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_dsync"))
        .arg("-h")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let re = regex::Regex::new(r"(?:^|[\s\[|(])(-[a-z][a-z-]*[a-z])").unwrap();
    re.captures_iter(&help).map(|c| c[1].to_string()).collect()
}

#[test]
fn every_shell_offers_every_option() {
    let options = help_options();
    assert!(
        options.contains("-stop-service") && options.contains("-sync"),
        "{options:?}"
    );
    for (file, spelled) in [
        ("dsync.bash", "{}"),
        ("_dsync", "'{}["),
        ("dsync.fish", "-o {}"),
    ] {
        let text = std::fs::read_to_string(dir().join(file)).unwrap();
        for option in &options {
            let needle = match file {
                "dsync.fish" => spelled.replace("{}", option.trim_start_matches('-')),
                _ => spelled.replace("{}", option),
            };
            assert!(
                text.contains(&needle),
                "{file} lacks {option} (looked for {needle:?})"
            );
        }
    }
}

/// What `_dsync` offers for the words typed so far.
fn complete(words: &[&str]) -> Vec<String> {
    let script = format!(
        "source {}\nCOMP_WORDS=({})\nCOMP_CWORD={}\n_dsync\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        dir().join("dsync.bash").display(),
        words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
        words.len() - 1
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut words: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    words.sort();
    words
}

#[test]
fn bash_completes_options_commands_and_repository_names() {
    assert_eq!(complete(&["dsync", "-st"]), ["-startup", "-stop-service"]);
    assert_eq!(complete(&["dsync", "ftpsync-"]), ["ftpsync-cron"]);
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("repos")).unwrap();
    for name in ["kali", "debian", "debian-security"] {
        std::fs::write(home.path().join("repos").join(format!("{name}.conf")), "").unwrap();
    }
    let home = home.path().display().to_string();
    assert_eq!(
        complete(&["dsync", "-home", &home, "-sync", "deb"]),
        ["debian", "debian-security"]
    );
    assert_eq!(complete(&["dsync", "-home", &home, "-sync", ""]).len(), 3);
}

#[test]
fn zsh_and_fish_files_parse() {
    for (shell, file) in [("zsh", "_dsync"), ("fish", "dsync.fish")] {
        if Command::new(shell).arg("--version").output().is_err() {
            eprintln!(
                "SKIPPED the {shell} syntax check of completions/{file}: {shell} is not installed"
            );
            continue;
        }
        let out = Command::new(shell)
            .arg("-n")
            .arg(dir().join(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
