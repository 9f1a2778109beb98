//! The dsync layer's configuration, on real files in temporary homes: xync.conf and
//! repository-file diagnostics (file, line and fix), the shipped samples, `dsync -test`'s
//! folder and upstream checks, reachability against a real rsync daemon, and upstream
//! resolution through a local HTTP API.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use dsync::manager::check::{check_all, render, summary};
use dsync::manager::diag::{Diagnostic, Severity};
use dsync::manager::home::Home;
use dsync::manager::upstream::{self, Source};
use dsync::manager::{repo, xync};
use support::http::{self, Response};
use support::rsyncd::RsyncDaemon;

/// A temporary dsync home (`DIR/dxync`) with room for mirror folders (`DIR/mirrors`).
struct TestHome {
    dir: tempfile::TempDir,
    home: Home,
}

impl TestHome {
    fn new() -> TestHome {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::locate(Some(&dir.path().join("dxync")));
        home.ensure().unwrap();
        TestHome { dir, home }
    }

    /// A mirror folder that exists.
    fn mirror(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join("mirrors").join(name);
        fs::create_dir_all(&path).unwrap();
        path
    }

    fn repo(&self, name: &str, text: &str) -> PathBuf {
        let path = self.home.repos_dir().join(format!("{name}.conf"));
        fs::write(&path, text).unwrap();
        path
    }

    fn xync(&self, text: &str) {
        fs::write(self.home.xync_conf(), text).unwrap();
    }

    fn catalog(&self, text: &str) {
        fs::write(self.home.catalog(), text).unwrap();
    }

    fn check(&self, reach: bool) -> Vec<Diagnostic> {
        check_all(&self.home, reach)
    }
}

/// The diagnostic of `file` (a path ending) at `line` whose message contains `needle`.
#[track_caller]
fn find<'a>(diags: &'a [Diagnostic], file: &str, line: usize, needle: &str) -> &'a Diagnostic {
    diags
        .iter()
        .find(|d| d.file.ends_with(file) && d.line == line && d.message.contains(needle))
        .unwrap_or_else(|| {
            panic!(
                "no diagnostic {file}:{line} containing {needle:?} in:\n{}",
                render(diags)
            )
        })
}

#[track_caller]
fn no_errors(diags: &[Diagnostic]) {
    let errors: Vec<Diagnostic> = diags.iter().filter(|d| d.is_error()).cloned().collect();
    assert!(errors.is_empty(), "unexpected errors:\n{}", render(&errors));
}

/// `path:line: error: message` as printed, for asserting the printed form.
fn printed(d: &Diagnostic) -> String {
    d.to_string()
}

#[test]
fn xync_conf_problems_name_file_line_and_fix() {
    let t = TestHome::new();
    t.xync(concat!(
        "# global settings\n",
        "syncps = 200\n",                   // 2
        "ipadd=192.0.2.1, 192.0.2.300\n",   // 3
        "intra=sometimes\n",                // 4
        "rokfoss-sync=true\n",              // 5
        "webhookurl=hooks.slack.com/x\r\n", // 6
        "status=www/status\n",              // 7
        "maxtime=0\n",                      // 8
        "retries=3\n",                      // 9
        "retires=4\n",                      // 10
        "retries=5\n",                      // 11
        "just some words\n",                // 12
        "smtp=mail.example.org:smtp\n",     // 13
    ));
    let d = t.check(false);
    let conf = t.home.xync_conf();

    let e = find(&d, "xync.conf", 2, "syncps=200 is out of range");
    assert_eq!(e.severity, Severity::Error);
    assert_eq!(e.fix, "write a whole number from 1 to 100, e.g. syncps=4");
    assert!(printed(e).starts_with(&format!("{}:2: error: ", conf.display())));

    let e = find(&d, "xync.conf", 3, "`192.0.2.300` is not an IP address");
    assert!(e.is_error() && e.fix.contains("ipadd=192.0.2.10,192.0.2.11"));

    let e = find(
        &d,
        "xync.conf",
        4,
        "allowed values are true, false, yes, no, 1, 0",
    );
    assert_eq!(e.fix, "write intra=true or intra=false");

    let w = find(&d, "xync.conf", 5, "has no effect");
    assert_eq!(w.severity, Severity::Warning);
    assert_eq!(w.fix, "delete the rokfoss-sync line");

    let e = find(&d, "xync.conf", 6, "not an http:// or https:// URL");
    assert!(
        e.fix
            .starts_with("write the full URL, e.g. webhookurl=https://")
    );

    let e = find(&d, "xync.conf", 7, "not an absolute path");
    assert!(e.fix.contains("status=/var/www/html/status"));

    find(&d, "xync.conf", 8, "maxtime=0 is out of range");

    let w = find(&d, "xync.conf", 10, "unknown key `retires`");
    assert!(w.message.contains("did you mean `retries`?"));
    assert_eq!(w.fix, "write retries=4");

    let w = find(
        &d,
        "xync.conf",
        11,
        "`retries` is set again (also on line 9)",
    );
    assert_eq!(w.severity, Severity::Warning);

    let e = find(&d, "xync.conf", 12, "is not a key=value line");
    assert!(e.fix.contains("put # in front"));

    let e = find(
        &d,
        "xync.conf",
        13,
        "smtp=mail.example.org:smtp is not host[:port]",
    );
    assert!(e.fix.contains("smtp=mail.example.org:587"));

    // The last duplicate wins, bad values keep defaults.
    let (g, _) = xync::load(&conf);
    assert_eq!(g.retries, 5);
    assert_eq!(g.syncps, 1);
    assert_eq!(g.ipadd, Vec::<String>::new());

    let s = summary(&d, &t.home);
    assert!(s.ends_with(&format!("in {}", t.home.root.display())), "{s}");
    assert!(s.starts_with("8 errors, 4 warnings"), "{s}\n{}", render(&d));
}

#[test]
fn repository_file_problems_name_file_line_and_fix() {
    let t = TestHome::new();
    t.catalog("");
    t.repo("nosave", "repo=nosave\ntimeset=06\n");
    t.repo("relative", "save=mirrors/relative\n");
    t.repo("root", "save=/\n");
    t.repo("etc", "# system\nsave=/etc/\n");
    t.repo("usr", "save=/usr/local/../\n");
    let ok = t.mirror("ok").display().to_string();
    t.repo("colon", &format!("save={ok}\ntimeset=00:12\n"));
    t.repo("korean", &format!("save={ok}/k\ntimeset=오후01\n"));
    t.repo(
        "hostdash",
        &format!("save={ok}/h\nsrc=rsync://-oProxyCommand=x/mod/\n"),
    );
    t.repo(
        "moddash",
        &format!("save={ok}/m\nsrc=rsync://h.example/--delete/\n"),
    );
    t.repo(
        "modspace",
        &format!("save={ok}/s\nsrc=rsync://h.example/a b/\n"),
    );
    t.repo(
        "ctrl",
        &format!("save={ok}/c\nsrc=rsync://h.example/a\u{7}b/\n"),
    );
    t.repo(
        "notrsync",
        &format!("save={ok}/n\nsrc=https://h.example/debian/\n"),
    );
    t.repo("colons", &format!("save={ok}/cc\nsrc=h.example::debian\n"));
    t.repo(
        "dtp",
        &format!("save={ok}/d\ndsync-url=ftp://h.example/d\n"),
    );
    t.repo(
        "named",
        &format!("repo=other-name\nsave={ok}/named\nsrc=rsync://127.0.0.1:9/x/\n"),
    );
    t.repo(
        "typo",
        &format!("save={ok}/t\nsrc=rsync://127.0.0.1:9/x/\ntimest=06\n"),
    );
    let d = t.check(false);

    let e = find(&d, "nosave.conf", 0, "no save= line");
    assert_eq!(e.fix, "add a line save=/srv/mirrors/nosave");

    let e = find(
        &d,
        "relative.conf",
        1,
        "save=mirrors/relative is not an absolute path",
    );
    assert!(e.fix.contains("save=/srv/mirrors/relative"), "{e}");

    for (file, line) in [("root.conf", 1), ("etc.conf", 2), ("usr.conf", 1)] {
        let e = find(&d, file, line, "is a system folder");
        assert!(e.is_error());
        assert!(
            e.fix
                .starts_with("give the mirror a folder of its own, e.g. save=/srv/mirrors/")
        );
    }

    let timeset_fix = "write whole hours 00-23 separated by commas, e.g. timeset=00,06,12,18";
    assert_eq!(find(&d, "colon.conf", 2, "timeset=00:12").fix, timeset_fix);
    assert_eq!(
        find(&d, "korean.conf", 2, "timeset=오후01").fix,
        timeset_fix
    );

    let e = find(&d, "hostdash.conf", 2, "host `-oProxyCommand=x`");
    assert!(
        e.fix
            .starts_with("write src=rsync://HOST[:PORT]/MODULE/, e.g. src=rsync://")
    );
    find(
        &d,
        "moddash.conf",
        2,
        "module `--delete`, which starts with '-'",
    );
    find(&d, "modspace.conf", 2, "whitespace or control characters");
    let e = find(&d, "ctrl.conf", 2, "whitespace or control characters");
    assert!(e.message.contains("src=rsync://h.example/a\\u{7}b/"), "{e}");
    find(&d, "notrsync.conf", 2, "is not an rsync:// URL");
    find(
        &d,
        "colons.conf",
        2,
        "HOST::MODULE form; as a URL it is rsync://h.example/debian",
    );
    let e = find(&d, "dtp.conf", 2, "not a dtp://, http:// or https:// URL");
    assert!(e.fix.contains("dsync-url=dtp://"));

    let w = find(&d, "named.conf", 1, "differs from the file name named.conf");
    assert_eq!(w.severity, Severity::Warning);
    assert!(w.fix.contains("rename the file to other-name.conf"));

    let w = find(&d, "typo.conf", 3, "unknown key `timest`");
    assert_eq!(w.fix, "write timeset=06");

    // Repositories with errors are not usable; the others are.
    let (repos, _) = repo::load_all(&t.home.repos_dir());
    let names: Vec<&str> = repos.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["other-name", "typo"]);
}

#[test]
fn duplicate_repository_names_are_an_error() {
    let t = TestHome::new();
    let a = t.mirror("a").display().to_string();
    let b = t.mirror("b").display().to_string();
    t.repo("a", &format!("save={a}\nsrc=rsync://127.0.0.1:9/a/\n"));
    t.repo(
        "b",
        &format!("# second\nrepo=a\nsave={b}\nsrc=rsync://127.0.0.1:9/a/\n"),
    );
    let d = t.check(false);
    let e = find(&d, "b.conf", 2, "repository name a is already used by");
    assert!(e.is_error());
    assert!(e.fix.contains("give one of them another name"), "{e}");
}

#[test]
fn ftpsync_block_lines_are_lines_of_the_repository_file() {
    let t = TestHome::new();
    let m = t.mirror("debian").display().to_string();
    t.repo(
        "debian",
        &format!(
            "# Debian\nsave={m}\nftpsync=true\nMIRRORNAME=mirror.test\nRSYNC_HOST=127.0.0.1\n\nfor a in b; do X=1; done\n"
        ),
    );
    let d = t.check(false);
    let e = find(&d, "debian.conf", 7, "ftpsync block, column 1:");
    assert!(e.is_error());
    assert!(e.fix.contains("may only assign variables"), "{e}");

    // TO in the block stands in for save=; without RSYNC_HOST the upstream
    // is found as for any repository (here: the shipped catalog's debian).
    let to = t.mirror("to").display().to_string();
    t.repo(
        "debian",
        &format!("timeset=01\nftpsync=true\nTO=\"{to}/\"\n"),
    );
    no_errors(&t.check(false));
    let (repos, _) = repo::load_all(&t.home.repos_dir());
    let (g, _) = xync::load(&t.home.xync_conf());
    match upstream::resolve(&repos[0], &g, &t.home) {
        Ok(Source::Ftpsync(urls)) => assert!(urls[0].starts_with("rsync://"), "{urls:?}"),
        other => panic!("{other:?}"),
    }
    t.repo(
        "debian",
        &format!("timeset=01\nftpsync=true\nTO=\"{to}/\"\nRSYNC_HOST=127.0.0.1\n"),
    );
    let (repos, diags) = repo::load_all(&t.home.repos_dir());
    assert!(diags.is_empty(), "{}", render(&diags));
    assert_eq!(repos[0].save, PathBuf::from(&to));
    assert_eq!(repos[0].ftpsync.as_ref().unwrap().first_line, 3);
    no_errors(&t.check(false));

    // TO pointing at a system folder is refused on its own line.
    t.repo("debian", "ftpsync=true\nRSYNC_HOST=h\n\nexport TO=/usr\n");
    let d = t.check(false);
    find(&d, "debian.conf", 4, "TO=/usr is a system folder");
}

#[test]
fn folders_missing_shared_or_nested_are_errors() {
    let t = TestHome::new();
    let root = t.dir.path().display().to_string();
    t.catalog("a rsync://127.0.0.1:9/a/\nb rsync://127.0.0.1:9/b/\nc rsync://127.0.0.1:9/c/\n");
    t.repo("a", &format!("save={root}/missing/a\n"));
    let shared = t.mirror("shared").display().to_string();
    t.repo("b", &format!("save={shared}\n"));
    t.repo("c", &format!("# same folder\nsave={shared}/\n"));
    let outer = t.mirror("outer").display().to_string();
    let inner = t.mirror("outer/inner").display().to_string();
    t.repo("d", &format!("save={outer}\nsrc=rsync://127.0.0.1:9/d/\n"));
    t.repo("e", &format!("save={inner}\nsrc=rsync://127.0.0.1:9/e/\n"));
    let file = t.dir.path().join("a-file");
    fs::write(&file, "x").unwrap();
    t.repo(
        "f",
        &format!("save={}\nsrc=rsync://127.0.0.1:9/f/\n", file.display()),
    );
    let d = t.check(false);

    let e = find(&d, "a.conf", 1, "does not exist");
    assert_eq!(e.fix, format!("mkdir -p {root}/missing/a"));
    let e = find(&d, "c.conf", 2, "uses the same mirror folder");
    assert!(e.message.contains("as repository b"), "{e}");
    assert!(e.fix.contains("save="), "{e}");
    let e = find(&d, "e.conf", 1, "are inside one another");
    assert!(
        e.message
            .contains(&format!("syncing {outer} would delete {inner}")),
        "{e}"
    );
    let e = find(&d, "f.conf", 1, "is not a folder");
    assert!(e.fix.contains("mkdir -p"), "{e}");
}

#[test]
fn unresolvable_upstream_and_unused_intradd() {
    let t = TestHome::new();
    t.catalog("");
    let m = t.mirror("nowhere").display().to_string();
    t.repo("nowhere", &format!("save={m}\nintradd=10.1.1.50\n"));
    let d = t.check(false);
    let e = find(&d, "nowhere.conf", 0, "no upstream for repository nowhere");
    assert!(
        e.message.contains("intradd= is only used with intra=true"),
        "{e}"
    );
    assert!(
        e.fix.contains(&format!(
            "the line `nowhere rsync://HOST/MODULE/` to {}",
            t.home.catalog().display()
        )),
        "{e}"
    );
    let w = find(&d, "nowhere.conf", 2, "xync.conf does not set intra=true");
    assert_eq!(w.severity, Severity::Warning);

    t.xync("intra=true\n");
    let d = t.check(false);
    no_errors(&d);
    let (repos, _) = repo::load_all(&t.home.repos_dir());
    let (g, _) = xync::load(&t.home.xync_conf());
    assert_eq!(
        upstream::resolve(&repos[0], &g, &t.home),
        Ok(Source::Rsync(vec!["rsync://10.1.1.50/nowhere/".into()]))
    );
}

#[test]
fn local_catalog_replaces_shipped_entries_and_is_checked() {
    let t = TestHome::new();
    t.catalog("# mine\nkali rsync://127.0.0.1:9/kali\nbroken http://x/y/\n");
    let m = t.mirror("kali").display().to_string();
    t.repo("kali", &format!("save={m}\n"));
    let d = t.check(false);
    let e = find(
        &d,
        "upstreams.conf",
        3,
        "broken: http://x/y/ is not an rsync:// URL",
    );
    assert!(e.fix.contains("broken rsync://"), "{e}");
    let (repos, _) = repo::load_all(&t.home.repos_dir());
    assert_eq!(
        upstream::resolve(&repos[0], &Default::default(), &t.home),
        Ok(Source::Rsync(vec!["rsync://127.0.0.1:9/kali/".into()]))
    );
}

/// The samples in etc/, copied into a home, with their folders pointed at temporary ones.
#[test]
fn shipped_samples_have_no_errors() {
    let t = TestHome::new();
    let etc = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc");

    // A fresh home gets the commented xync.conf, which is all defaults.
    let sample = fs::read_to_string(etc.join("xync.conf")).unwrap();
    assert_eq!(fs::read_to_string(t.home.xync_conf()).unwrap(), sample);
    let (g, d) = xync::load(&t.home.xync_conf());
    assert!(d.is_empty(), "{}", render(&d));
    assert_eq!(g, xync::Global::default());

    // Every key it documents, uncommented, is valid (rokfoss-sync=false says nothing).
    let status = t.mirror("status").display().to_string();
    let mut keys = Vec::new();
    let uncommented: String = sample
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(kv)
                if kv.split_once('=').is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                }) =>
            {
                let key = kv.split_once('=').unwrap().0;
                keys.push(key.to_string());
                match key {
                    "status" => format!("status={status}\n"),
                    "intra" => "intra=true\n".to_string(),
                    "api" => "api=http://127.0.0.1:9/\n".to_string(),
                    _ => format!("{kv}\n"),
                }
            }
            _ => format!("{l}\n"),
        })
        .collect();
    let mut documented = keys.clone();
    documented.sort();
    let mut known: Vec<String> = xync::KEYS.iter().map(|k| k.to_string()).collect();
    known.sort();
    assert_eq!(documented, known, "etc/xync.conf must show every key");
    t.xync(&uncommented);
    let (_, d) = xync::load(&t.home.xync_conf());
    assert!(d.is_empty(), "{}", render(&d));

    // The repository samples, each with its own upstream: intranet mode on,
    // but no intradd= in xync.conf for all of them.
    t.xync("intra=true\n");
    t.catalog("kali rsync://127.0.0.1:9/kali/\n");
    let mut names = Vec::new();
    for entry in fs::read_dir(etc.join("repos")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(&path).unwrap();
        let folder = t.dir.path().join("mirrors").join(&name);
        fs::create_dir_all(&folder).unwrap();
        let rewritten: String = text
            .lines()
            .map(|l| {
                if l.starts_with("save=") {
                    format!("save={}\n", folder.display())
                } else if l.starts_with("TO=") {
                    format!("TO=\"{}/\"\n", folder.display())
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        assert_ne!(rewritten, text, "{name}: no save= or TO= line");
        fs::write(t.home.repos_dir().join(format!("{name}.conf")), rewritten).unwrap();
        names.push(name);
    }
    names.sort();
    assert_eq!(
        names,
        [
            "debian-ftpsync",
            "dtp-client",
            "dtp-host",
            "explicit-src",
            "intranet",
            "kali"
        ]
    );
    let d = t.check(false);
    assert!(d.is_empty(), "{}", render(&d));

    let (repos, _) = repo::load_all(&t.home.repos_dir());
    let (g, _) = xync::load(&t.home.xync_conf());
    let sources: Vec<Source> = repos
        .iter()
        .map(|r| upstream::resolve(r, &g, &t.home).unwrap())
        .collect();
    assert_eq!(
        sources,
        [
            Source::Ftpsync(Vec::new()),
            Source::Dtp("dtp://mirror.example.org/debian".into()),
            Source::Rsync(vec!["rsync://archive.ubuntu.com/ubuntu/".into()]),
            Source::Rsync(vec!["rsync://rsync.alpinelinux.org/alpine/".into()]),
            Source::Rsync(vec!["rsync://10.1.1.50/intranet/".into()]),
            Source::Rsync(vec!["rsync://127.0.0.1:9/kali/".into()]),
        ]
    );
    let kali = &repos[5];
    assert_eq!(kali.timeset, Some(vec![0, 6, 12, 18]));
    let block = repos[0].ftpsync.as_ref().unwrap();
    let vars = block.eval(&repos[0].file).unwrap();
    assert_eq!(vars.get("RSYNC_HOST"), Some("ftp.de.debian.org"));
    assert_eq!(vars.get("ARCH_INCLUDE"), Some("amd64 arm64 source"));
}

#[test]
fn reachability_against_a_real_rsync_daemon() {
    let upstream = tempfile::tempdir().unwrap();
    fs::write(upstream.path().join("README"), "hello").unwrap();
    let daemon = RsyncDaemon::start("127.0.0.1", &[("kali", upstream.path())]);
    let closed_port = support::free_port();

    let t = TestHome::new();
    let good = daemon.url("kali");
    let missing = format!("rsync://127.0.0.1:{}/nope/", daemon.port());
    let closed = format!("rsync://127.0.0.1:{closed_port}/kali/");
    t.catalog(&format!("fallback {closed} {good}\n"));
    for name in ["good", "missing", "closed", "fallback", "ftp"] {
        t.mirror(name);
    }
    let m = t.dir.path().join("mirrors");
    let m = m.display();
    t.repo("good", &format!("save={m}/good\nsrc={good}\n"));
    t.repo(
        "missing",
        &format!("save={m}/missing\n# no such module\nsrc={missing}\n"),
    );
    t.repo("closed", &format!("src={closed}\nsave={m}/closed\n"));
    t.repo("fallback", &format!("save={m}/fallback\n"));
    t.repo(
        "ftp",
        &format!(
            "save={m}/ftp\nftpsync=true\nRSYNC_HOST=127.0.0.1\nRSYNC_PATH=kali\nRSYNC_EXTRA=\"{}\"\n",
            daemon.port_option()
        ),
    );

    // Without reach, nothing is contacted and nothing is wrong.
    no_errors(&t.check(false));

    let d = t.check(true);
    let e = find(
        &d,
        "missing.conf",
        3,
        &format!("upstream {missing} of repository missing cannot be reached"),
    );
    assert!(e.is_error());
    assert!(e.message.contains("Unknown module 'nope'"), "{e}");
    assert!(
        e.fix.contains(&format!(
            "`rsync --list-only rsync://127.0.0.1:{}/` lists the modules",
            daemon.port()
        )),
        "{e}"
    );
    let e = find(
        &d,
        "closed.conf",
        1,
        &format!("upstream {closed} of repository closed"),
    );
    assert!(e.is_error());
    assert!(e.message.contains("rsync exit code 10"), "{e}");
    assert!(e.message.contains("Connection refused"), "{e}");
    // One of two catalog URLs answering: the other is only a warning.
    let w = find(
        &d,
        "fallback.conf",
        0,
        &format!("upstream {closed} of repository fallback"),
    );
    assert_eq!(w.severity, Severity::Warning);
    // The good source and the ftpsync block's upstream answered.
    assert!(
        !d.iter()
            .any(|d| d.file.ends_with("good.conf") || d.file.ends_with("ftp.conf")),
        "{}",
        render(&d)
    );
    assert_eq!(
        d.iter().filter(|d| d.is_error()).count(),
        2,
        "{}",
        render(&d)
    );
}

#[test]
fn api_resolves_names_nothing_else_knows() {
    let server = http::start(|req| match req.path.as_str() {
        "/repos.json" => Response::json(
            r#"[{"name": "myrepo", "rsync": ["rsync://127.0.0.1:8873/myrepo", "rsync://127.0.0.2/myrepo/"]},
                {"name": "single", "rsync": "rsync://127.0.0.1/single/"},
                {"name": "junk", "rsync": ["http://not-rsync/"]}]"#,
        ),
        _ => Response::text(404, "no such thing"),
    });
    let t = TestHome::new();
    t.catalog("");
    t.xync(&format!("api={}/repos.json\n", server.url()));
    for name in ["myrepo", "single", "junk", "unlisted", "explicit"] {
        let m = t.mirror(name).display().to_string();
        let src = if name == "explicit" {
            "src=rsync://127.0.0.1:9/explicit/\n"
        } else {
            ""
        };
        t.repo(name, &format!("save={m}\n{src}"));
    }
    let (repos, d) = repo::load_all(&t.home.repos_dir());
    assert!(d.is_empty(), "{}", render(&d));
    let (g, _) = xync::load(&t.home.xync_conf());
    let by_name = |n: &str| repos.iter().find(|r| r.name == n).unwrap();

    // A repository with its own source never asks the API.
    assert!(upstream::resolve(by_name("explicit"), &g, &t.home).is_ok());
    assert!(server.requests().is_empty());

    assert_eq!(
        upstream::resolve(by_name("myrepo"), &g, &t.home),
        Ok(Source::Rsync(vec![
            "rsync://127.0.0.1:8873/myrepo/".into(),
            "rsync://127.0.0.2/myrepo/".into()
        ]))
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("GET", "/repos.json")
    );
    assert_eq!(requests[0].header("accept"), Some("application/json"));

    assert_eq!(
        upstream::resolve(by_name("single"), &g, &t.home),
        Ok(Source::Rsync(vec!["rsync://127.0.0.1/single/".into()]))
    );
    let e = upstream::resolve(by_name("junk"), &g, &t.home).unwrap_err();
    assert!(e.message.contains("without a usable rsync:// URL"), "{e}");
    let e = upstream::resolve(by_name("unlisted"), &g, &t.home).unwrap_err();
    assert!(e.message.contains("does not list it"), "{e}");
    assert!(e.file.ends_with("unlisted.conf"));

    // The same check through -test: the two unresolvable ones are errors.
    let d = t.check(false);
    find(&d, "junk.conf", 0, "no upstream for repository junk");
    find(
        &d,
        "unlisted.conf",
        0,
        "no upstream for repository unlisted",
    );
    assert_eq!(
        d.iter().filter(|d| d.is_error()).count(),
        2,
        "{}",
        render(&d)
    );
}

#[test]
fn api_failures_are_reported() {
    let failing = http::start(|_| Response::text(500, "database is down"));
    let garbage = http::start(|_| Response::json("{\"not\": \"a list\"}"));
    for (server, needle) in [(&failing, "500"), (&garbage, "not the expected JSON list")] {
        let t = TestHome::new();
        t.catalog("");
        t.xync(&format!("api={}/list\n", server.url()));
        let m = t.mirror("x").display().to_string();
        t.repo("x", &format!("save={m}\n"));
        let d = t.check(false);
        let e = find(&d, "x.conf", 0, "asking the API");
        assert!(e.message.contains(needle), "{e}");
        assert_eq!(server.requests().len(), 1);
    }
}

#[test]
fn http_support_records_bodies_and_headers() {
    let server = http::start(|req| {
        Response::text(201, format!("got {} bytes", req.body.len())).with_header("X-Test", "yes")
    });
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(format!("{}/hook?x=1", server.url()))
        .header("Content-Type", "application/json")
        .send(r#"{"text": "hi"}"#)
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(resp.headers().get("x-test").unwrap(), "yes");
    assert_eq!(resp.body_mut().read_to_string().unwrap(), "got 14 bytes");
    let r = &server.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook?x=1"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body_json()["text"], "hi");
}

/// Not writable by this user: as root (who may write anywhere) the check runs in a
/// child test process with the uid of `nobody`.
#[test]
fn unwritable_mirror_folder_is_an_error() {
    let t = TestHome::new();
    let m = t.mirror("ro");
    t.repo(
        "ro",
        &format!("save={}\nsrc=rsync://127.0.0.1:9/ro/\n", m.display()),
    );
    // SAFETY: getuid cannot fail.
    let root = unsafe { libc::getuid() } == 0;
    let output = if root {
        use std::os::unix::fs::PermissionsExt;
        for dir in [t.dir.path(), &t.home.root, &t.dir.path().join("mirrors")] {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "check_as_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("DSYNC_TEST_CHECK_HOME", &t.home.root)
            .output()
            .expect("run setpriv");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&m, fs::Permissions::from_mode(0o555)).unwrap();
        let text = render(&t.check(false));
        fs::set_permissions(&m, fs::Permissions::from_mode(0o755)).unwrap();
        text
    };
    let expected = format!(
        "{}:1: error: the mirror folder {} is not writable by ",
        t.home.repos_dir().join("ro.conf").display(),
        m.display()
    );
    let at = output
        .find(&expected)
        .unwrap_or_else(|| panic!("{expected:?} not in:\n{output}"));
    let rest = &output[at..];
    assert!(rest.contains("fix: as root: chown -R "), "{rest}");
}

/// Run by `unwritable_mirror_folder_is_an_error` in a child process; does nothing otherwise.
#[test]
fn check_as_child() {
    let Some(root) = std::env::var_os("DSYNC_TEST_CHECK_HOME") else {
        return;
    };
    let home = Home {
        root: PathBuf::from(root),
    };
    print!("{}", render(&check_all(&home, false)));
}

/// `Home::locate` reads the environment: each case runs in a child process with its own.
#[test]
fn home_is_located_from_flag_env_or_home() {
    let run = |envs: &[(&str, &str)]| -> String {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "locate_as_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DSYNC_TEST_LOCATE", "1")
        .env_remove("DSYNC_HOME");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        stdout
            .lines()
            .find_map(|l| l.split_once("LOCATED=").map(|(_, v)| v))
            .unwrap_or_else(|| panic!("no LOCATED= in {stdout}"))
            .to_string()
    };
    assert_eq!(run(&[("HOME", "/home/mirror")]), "/home/mirror/dxync");
    assert_eq!(
        run(&[("HOME", "/home/mirror"), ("DSYNC_HOME", "/srv/dsync")]),
        "/srv/dsync"
    );
    assert_eq!(
        run(&[("HOME", "/home/mirror"), ("DSYNC_HOME", "")]),
        "/home/mirror/dxync"
    );
    // The flag wins over both.
    assert_eq!(
        Home::locate(Some(Path::new("/opt/dx"))).root,
        PathBuf::from("/opt/dx")
    );
}

/// Run by `home_is_located_from_flag_env_or_home` in a child process.
#[test]
fn locate_as_child() {
    if std::env::var_os("DSYNC_TEST_LOCATE").is_some() {
        println!("LOCATED={}", Home::locate(None).root.display());
    }
}
