//! `runmirrors` beside Debian's own: the same runmirrors.conf and .mirror file,
//! an `ssh` stand-in on PATH that records every call, and the same calls, exit
//! code and log lines from both. (The real ssh transport is tested in
//! tests/ssh_push.rs against a real sshd.)

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const REAL: &str = "/usr/bin/runmirrors";

/// A HOME with runmirrors' config, a push key and an ssh stand-in.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(conf: &str, mirrors: &str, name: &str) -> Setup {
        let s = Setup {
            dir: tempfile::tempdir().unwrap(),
        };
        let confdir = s.home().join(".config/ftpsync");
        std::fs::create_dir_all(&confdir).unwrap();
        std::fs::create_dir_all(s.home().join(".ssh")).unwrap();
        std::fs::write(s.home().join(".ssh/pushmirror"), "not a real key\n").unwrap();
        std::fs::write(
            confdir.join(format!("{name}.conf")),
            format!(
                "LOGDIR={h}/log\nLOCKDIR={h}/lock\nMAILTO=nobody\nPUSHDELAY=20\n{conf}\n",
                h = s.home().display()
            ),
        )
        .unwrap();
        std::fs::write(confdir.join(format!("{name}.mirror")), mirrors).unwrap();
        let bin = s.dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let calls = s.dir.path().join("calls");
        std::fs::write(
            bin.join("ssh"),
            format!(
                "#!/bin/sh\nfor a in \"$@\"; do printf '%s|' \"$a\"; done >> {c}.$$\n\
                 echo >> {c}.$$\ncat {c}.$$ >> {c}\nrm -f {c}.$$\necho pushed \"$2\"\n",
                c = calls.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            bin.join("ssh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        s
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn run(&self, program: &Path, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .env_clear()
            .env("HOME", self.home())
            .env("LOGNAME", "nobody")
            // ftpsync exports BASEDIR to runmirrors; Debian's runmirrors fails
            // without it (ours does not need it).
            .env("BASEDIR", self.home())
            .env(
                "PATH",
                format!(
                    "{}:/usr/bin:/bin:/usr/sbin:/sbin",
                    self.dir.path().join("bin").display()
                ),
            )
            .env("DSYNC_SENDMAIL", "/bin/true")
            .output()
            .unwrap()
    }

    /// Every ssh call, sorted (mirrors are pushed concurrently), with the
    /// temp paths replaced.
    fn calls(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default();
        let mut calls: Vec<String> = text.lines().map(|l| self.anon(l)).collect();
        calls.sort();
        calls
    }

    /// The main log's lines without time stamps, host and pid, sorted.
    fn log(&self, name: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.home().join(format!("log/{name}.log")))
            .unwrap_or_default();
        let re = regex::Regex::new(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ \S+\[\d+\]: ").unwrap();
        let mut lines: Vec<String> = text
            .lines()
            .map(|l| self.anon(&re.replace(l, "")))
            .collect();
        lines.sort();
        lines
    }

    fn anon(&self, text: &str) -> String {
        text.replace(&self.dir.path().display().to_string(), "TMP")
    }
}

fn ours(dir: &Path) -> PathBuf {
    let link = dir.join("runmirrors");
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_dsync"), &link).unwrap();
    }
    link
}

struct Case {
    name: &'static str,
    conf: &'static str,
    mirrors: &'static str,
    args: &'static [&'static str],
    config_name: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "two all mirrors, one with ssh options",
        conf: "",
        mirrors: "# comment\n\nall m1 host1.example user1\nall m2 host2.example user2 -o Port=2222\n",
        args: &[],
        config_name: "runmirrors",
    },
    Case {
        name: "two staged mirrors wait for each other",
        conf: "",
        mirrors: "staged s1 h1.example u1\nstaged s2 h2.example u2 2:/srv/keys/s2\n",
        args: &["-k", "all"],
        config_name: "runmirrors",
    },
    Case {
        name: "mhop from ftpsync skips all-mirrors, stops after stage one",
        conf: "",
        mirrors: "all a1 h1.example u1\nmhop m1 h2.example u2\nstaged s1 h3.example u3\n",
        args: &["-f", "-k", "mhop"],
        config_name: "runmirrors",
    },
    Case {
        name: "stage2 kind pushes stage two only",
        conf: "",
        mirrors: "staged s1 h1.example u1\nall a1 h2.example u2\n",
        args: &["-k", "stage2"],
        config_name: "runmirrors",
    },
    Case {
        name: "URL form and a wrong scheme",
        conf: "",
        mirrors: "all u1 ssh+ftpsync://mirror@h1.example/debian-security\nall u2 http://h2.example/x\n",
        args: &[],
        config_name: "runmirrors",
    },
    Case {
        name: "archive by -a",
        conf: "SSH_OPTS=\"-o StrictHostKeyChecking=yes\"",
        mirrors: "all m1 h1.example u1\n",
        args: &["-a", "security"],
        config_name: "runmirrors-security",
    },
    Case {
        name: "archive as the only word",
        conf: "",
        mirrors: "all m1 h1.example u1\n",
        args: &["security"],
        config_name: "runmirrors-security",
    },
    Case {
        name: "missing push key",
        conf: "KEYFILE=.ssh/none",
        mirrors: "all m1 h1.example u1\n",
        args: &[],
        config_name: "runmirrors",
    },
    Case {
        name: "missing config",
        conf: "",
        mirrors: "",
        args: &["nosuch"],
        config_name: "runmirrors",
    },
];

#[test]
fn pushes_as_debians_runmirrors_does() {
    if !Path::new(REAL).exists() {
        eprintln!(
            "SKIPPED pushes_as_debians_runmirrors_does: {REAL} is not installed (apt-get install ftpsync)"
        );
        return;
    }
    for case in CASES {
        let mut results = Vec::new();
        for real in [true, false] {
            let setup = Setup::new(case.conf, case.mirrors, case.config_name);
            let program = if real {
                PathBuf::from(REAL)
            } else {
                ours(setup.dir.path())
            };
            let out = setup.run(&program, case.args);
            let stderr = String::from_utf8_lossy(&out.stderr).replace(REAL, "runmirrors");
            results.push((
                out.status.code(),
                stderr,
                setup.calls(),
                setup.log(case.config_name),
            ));
        }
        assert_eq!(
            results[1], results[0],
            "{}: ours (left) differs from Debian's (right)",
            case.name
        );
    }
}

/// Within one staged mirror, stage one comes before stage two.
#[test]
fn staged_mirrors_get_stage_one_then_stage_two() {
    let setup = Setup::new(
        "",
        "staged s1 h1.example u1\nstaged s2 h2.example u2\n",
        "runmirrors",
    );
    let out = setup.run(&ours(setup.dir.path()), &["-k", "all"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = std::fs::read_to_string(setup.dir.path().join("calls")).unwrap();
    for host in ["h1.example", "h2.example"] {
        let order: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(host))
            .map(|l| if l.contains("sync:stage1") { "1" } else { "2" })
            .collect();
        assert_eq!(order, ["1", "2"], "{host}: {text}");
    }
    // Both stage ones were done before either stage two started.
    let first_two = text
        .lines()
        .position(|l| l.contains("sync:stage2"))
        .unwrap();
    assert_eq!(first_two, 2, "{text}");
    let log = std::fs::read_to_string(setup.home().join("log/s1.log")).unwrap();
    // runmirrors' `msg` format: time, host, program[pid].
    let msg = regex::Regex::new(
        r"(?m)^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ runmirrors\[\d+\]: Sending first stage trigger$",
    )
    .unwrap();
    assert!(msg.is_match(&log), "{log}");
    assert!(
        log.contains("Sending first stage trigger") && log.contains("pushed h1.example"),
        "{log}"
    );
}

/// A mirror line runmirrors cannot read is reported and skipped; the others
/// are pushed (Debian's runmirrors dies on `weird` with "unbound variable").
#[test]
fn an_unreadable_mirror_line_is_reported_and_the_rest_pushed() {
    let setup = Setup::new(
        "",
        "all u3 h3.example u3 weird\nall m1 h1.example u1\n",
        "runmirrors",
    );
    let out = setup.run(&ours(setup.dir.path()), &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let log = setup.log("runmirrors");
    assert!(
        log.iter()
            .any(|l| l == "I don't know what is configured for mirror u3"),
        "{log:?}"
    );
    assert_eq!(setup.calls().len(), 1);
    assert!(setup.calls()[0].contains("|h1.example|"));
}
