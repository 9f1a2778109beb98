//! `dsync -test` and `dsync -example` as an operator runs them: every shipped
//! sample passes, every kind of mistake is named by file:line with a fix and
//! makes the exit status 78, and unreachable upstreams are found by asking a
//! real rsync daemon.

mod support;

use std::path::Path;

use support::site::{Site, assert_success};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The samples of etc/, their folders pointed into the site, in a home.
fn install_samples(site: &Site) -> Vec<String> {
    let etc = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc");
    let mirrors = site.root().join("mirrors");
    let rewrite = |text: &str| text.replace("/srv/mirrors", &mirrors.display().to_string());
    let xync = std::fs::read_to_string(etc.join("xync.conf")).unwrap();
    // As repos/intranet.conf's comment tells the operator to.
    assert!(xync.contains("\n#intra=false\n"));
    site.xync(&rewrite(&xync).replace("\n#intra=false\n", "\nintra=true\n"));
    let mut names = Vec::new();
    for entry in std::fs::read_dir(etc.join("repos")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = rewrite(&std::fs::read_to_string(&path).unwrap());
        for line in text.lines() {
            if let Some(folder) = line
                .strip_prefix("save=")
                .or_else(|| line.strip_prefix("TO="))
            {
                std::fs::create_dir_all(folder.trim_matches('"')).unwrap();
            }
        }
        std::fs::write(site.home().join("repos").join(&name), text).unwrap();
        names.push(name);
    }
    names.sort();
    names
}

#[test]
fn every_shipped_sample_passes_dsync_test() {
    let site = Site::new();
    let names = install_samples(&site);
    assert!(names.len() >= 4, "{names:?}");
    // -offline: the samples name public upstreams; tests never leave loopback.
    let out = site.run(&["-test", "-offline"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains(" 0 errors") || stdout(&out).contains("no problems"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn example_lists_the_repositories_dsync_can_mirror_as_krfoss_guide_uses_it() {
    let site = Site::new();
    std::fs::create_dir_all(site.home()).unwrap();
    std::fs::write(
        site.home().join("upstreams.conf"),
        "ourdistro rsync://127.0.0.1/ourdistro/ rsync://127.0.0.2/ourdistro/\n",
    )
    .unwrap();
    let out = site.run(&["-example"]);
    assert_success(&out);
    let text = stdout(&out);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("{name} not listed:\n{text}"))
    };
    // The shipped catalog and the operator's own entries, name and first upstream.
    assert_eq!(
        line("ourdistro"),
        ["ourdistro", "rsync://127.0.0.1/ourdistro/"]
    );
    for name in ["debian", "ubuntu", "kali"] {
        let words = line(name);
        assert_eq!(words.len(), 2, "{words:?}");
        assert!(words[1].starts_with("rsync://"), "{words:?}");
    }
    assert!(!text.contains("#### etc/"), "no sample files: {text}");

    let out = site.run(&["-example", "xync.conf"]);
    assert_success(&out);
    let etc = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc");
    assert_eq!(
        stdout(&out),
        std::fs::read_to_string(etc.join("xync.conf")).unwrap()
    );
    let out = site.run(&["-example", "no-such.conf"]);
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn example_all_prints_every_sample() {
    let site = Site::new();
    let out = site.run(&["-example", "all"]);
    assert_success(&out);
    let text = stdout(&out);
    let etc = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc");
    for path in ["xync.conf", "upstreams.conf"]
        .into_iter()
        .map(String::from)
        .chain(
            std::fs::read_dir(etc.join("repos"))
                .unwrap()
                .map(|e| format!("repos/{}", e.unwrap().file_name().to_string_lossy())),
        )
    {
        assert!(
            text.contains(&format!("#### etc/{path}\n")),
            "{path} missing"
        );
        let sample = std::fs::read_to_string(etc.join(&path)).unwrap();
        assert!(text.contains(&sample), "{path} differs from etc/{path}");
    }
}

#[test]
fn test_creates_a_missing_home_with_a_commented_xync_conf() {
    let site = Site::new();
    let home = site.root().join("fresh");
    let out = site
        .command(&["-test", "-offline"])
        .args(["-home", &home.display().to_string()])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("created "), "{}", stdout(&out));
    let text = std::fs::read_to_string(home.join("xync.conf")).unwrap();
    assert!(text.starts_with("# xync.conf"), "{text}");
    assert!(home.join("repos").is_dir() && home.join("logs").is_dir());
}

/// Each mistake, the line it is on, and a word of the fix dsync suggests.
#[test]
fn test_names_every_mistake_by_file_and_line_with_a_fix() {
    let site = Site::new();
    let good = site.root().join("mirror/good");
    std::fs::create_dir_all(&good).unwrap();
    site.xync("syncps=101\nipadd=127.0.0.2,,\nlogtime=maybe\nwebhok=https://x/\n");
    let write = |name: &str, text: &str| {
        std::fs::write(site.home().join("repos").join(name), text).unwrap();
    };
    write(
        "hours.conf",
        &format!("repo=hours\nsave={}/h\ntimeset=00,25\n", good.display()),
    );
    write(
        "keys.conf",
        &format!(
            "repo=keys\nsave={}\nSave=/x\nsrc=ftp://x/y\n",
            good.display()
        ),
    );
    write("relative.conf", "repo=relative\nsave=mirrors/rel\n");
    write(
        "missing.conf",
        &format!(
            "repo=missing\nsave={}/absent\nsrc=rsync://127.0.0.1/m/\n",
            site.root().display()
        ),
    );
    write("nosave.conf", "repo=nosave\nsrc=rsync://127.0.0.1/m/\n");
    let out = site.run(&["-test", "-offline"]);
    assert_eq!(out.status.code(), Some(78), "{}", stdout(&out));
    let text = stdout(&out);
    let home = site.home();
    let expect_as = |kind: &str, file: &str, line: usize, needle: &str| {
        let at = format!("{}:{line}: {kind}: ", home.join(file).display());
        let found = text
            .split("\n")
            .position(|l| l.starts_with(&at) && l.contains(needle));
        let Some(i) = found else {
            panic!("no error at {at} mentioning {needle:?} in:\n{text}");
        };
        let fix = text.split('\n').nth(i + 1).unwrap_or_default();
        assert!(fix.starts_with("    fix: "), "{at}: no fix line:\n{text}");
    };
    let expect = |file: &str, line: usize, needle: &str| expect_as("error", file, line, needle);
    expect("xync.conf", 1, "syncps=101");
    expect("xync.conf", 2, "ipadd");
    expect("xync.conf", 3, "logtime");
    expect("repos/hours.conf", 3, "25");
    expect_as("warning", "repos/keys.conf", 3, "did you mean `save`");
    expect("repos/keys.conf", 4, "src=");
    expect("repos/relative.conf", 2, "absolute");
    expect("repos/missing.conf", 2, "does not exist");
    expect("repos/nosave.conf", 0, "save");
    // Unknown keys are warnings (a newer dsync's key must not stop an older one).
    expect_as("warning", "xync.conf", 4, "webhok");
}

#[test]
fn test_asks_each_upstream_through_rsync() {
    let mut site = Site::new();
    site.upstream("alive", 10);
    let port = site.serve();
    let closed = support::free_port();
    let save = site.repo("alive", &site.src("alive"));
    drop(save);
    site.repo(
        "gone",
        &format!("src=rsync://127.0.0.1:{port}/no-such-module/"),
    );
    site.repo("dead", &format!("src=rsync://127.0.0.1:{closed}/dead/"));
    let out = site.run(&["-test"]);
    assert_eq!(out.status.code(), Some(78), "{}", stdout(&out));
    let text = stdout(&out);
    let home = site.home();
    let line_of = |repo: &str| {
        format!(
            "{}:3: error: ",
            home.join(format!("repos/{repo}.conf")).display()
        )
    };
    assert!(
        !text.contains(&line_of("alive")),
        "a served module is reachable:\n{text}"
    );
    let gone = text
        .lines()
        .find(|l| l.starts_with(&line_of("gone")))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        gone.contains("Unknown module") || gone.contains("unknown module"),
        "{gone}"
    );
    let dead = text
        .lines()
        .find(|l| l.starts_with(&line_of("dead")))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(dead.contains("Connection refused"), "{dead}");
    // -offline skips the upstreams.
    assert_success(&site.run(&["-test", "-offline"]));
}
