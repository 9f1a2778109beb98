//! Differential tests: Debian's real `/usr/bin/ftpsync` and our binary (invoked
//! through a symlink named `ftpsync`) run the same config against the same real
//! rsync daemon, and must agree on exit code, printed messages, the rsync argv
//! (logged by an `RSYNC=` wrapper), the resulting tree, the trace fields, the
//! order of hooks and the names of the log files.
//!
//! Without ftpsync installed (`apt-get install ftpsync`), each case still runs our
//! side and checks the expected exit code, but says loudly that the comparison
//! was skipped.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::archive::{self, ArchiveSpec, TreeEntry};
use support::rsyncd::RsyncDaemon;

const REFERENCE: &str = "/usr/bin/ftpsync";
const MIRRORNAME: &str = "mirror.test";

/// The upstream every case syncs from: a small archive served by two daemons
/// (one anonymous, one requiring a password), plus a tree whose own upstream is
/// mid-update.
struct Upstream {
    _dir: tempfile::TempDir,
    open: RsyncDaemon,
    auth: RsyncDaemon,
}

fn upstream() -> &'static Upstream {
    static UPSTREAM: OnceLock<Upstream> = OnceLock::new();
    UPSTREAM.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("dsync-diff-up-")
            .tempdir()
            .unwrap();
        let debian = dir.path().join("debian");
        let security = dir.path().join("security");
        let busy = dir.path().join("busy");
        let spec = ArchiveSpec::default();
        archive::write_revision(&debian, &spec, 1).unwrap();
        archive::write_revision(&security, &spec.with_archs(&["amd64"]), 2).unwrap();
        archive::write_revision(&busy, &spec, 1).unwrap();
        std::fs::write(busy.join("Archive-Update-in-Progress-upstream.test"), "1\n").unwrap();
        let modules = [
            ("debian", debian.as_path()),
            ("security", security.as_path()),
            ("busy", busy.as_path()),
        ];
        let open = RsyncDaemon::start("127.0.0.1", &modules);
        let secrets = dir.path().join("secrets");
        std::fs::write(&secrets, "mirror:s3cret\n").unwrap();
        set_mode(&secrets, 0o600);
        let auth_lines = [
            "auth users = mirror".to_string(),
            format!("secrets file = {}", secrets.display()),
        ];
        let auth_refs: Vec<&str> = auth_lines.iter().map(String::as_str).collect();
        let auth = RsyncDaemon::start_with_options("127.0.0.1", &modules[..1], &auth_refs);
        Upstream {
            _dir: dir,
            open,
            auth,
        }
    })
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// One scenario: a config (with `{ROOT}`, `{PORT}`, `{AUTHPORT}` placeholders),
/// the runs to make, and optional preparation of the mirror.
#[derive(Clone, Default)]
struct Case {
    conf_name: &'static str,
    /// `None`: no config file at all.
    conf: Option<String>,
    runs: Vec<Vec<&'static str>>,
    env: Vec<(&'static str, &'static str)>,
    prepare: Option<fn(&Path)>,
    /// Expected exit code of each run (checked on both sides).
    expect: Vec<i32>,
    /// Expected number of rsync stage runs (not counting `--version`), if pinned.
    stages: Option<usize>,
    /// Expected record of hooks (and runmirrors) run, if pinned.
    hooks: Option<&'static str>,
    /// Every line ftpsync writes (stderr or logs) holding this text, less
    /// bash's `SCRIPT: line N: ` prefix, must be a line of ours too.
    same_lines: Option<&'static str>,
}

/// Lines every config starts with: our mirror name, the daemon's port, the argv
/// logging wrapper, and hook scripts that record their order.
fn base_conf() -> String {
    [
        "MIRRORNAME=mirror.test",
        "TRACEHOST=tracehost.test",
        "TO={ROOT}/mirror/",
        "MAILTO=nobody",
        "RSYNC_HOST=127.0.0.1",
        "RSYNC_EXTRA=\"--port={PORT}\"",
        "RSYNC={ROOT}/rsync-wrapper",
        "LOGDIR={ROOT}/log",
        "",
    ]
    .join("\n")
}

fn case(extra: &str) -> Case {
    Case {
        conf_name: "ftpsync.conf",
        conf: Some(format!("{}{extra}\n", base_conf())),
        runs: vec![vec![]],
        expect: vec![0],
        ..Case::default()
    }
}

/// What one side did, with its own directory replaced by `<ROOT>`.
#[derive(Debug)]
struct Observed {
    codes: Vec<i32>,
    stdout: Vec<String>,
    argv: Vec<String>,
    tree: BTreeMap<String, TreeEntry>,
    traces: BTreeMap<String, BTreeMap<String, String>>,
    hooks: String,
    logs: BTreeSet<String>,
    /// Everything said on stderr and in the log files.
    messages: String,
}

fn our_binary(root: &Path) -> PathBuf {
    let link = root.join("bin/ftpsync");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_dsync"), &link).unwrap();
    link
}

fn observe(program: Option<&Path>, case: &Case) -> Observed {
    let up = upstream();
    let dir = tempfile::Builder::new()
        .prefix("dsync-diff-")
        .tempdir()
        .unwrap();
    let root = dir.path();
    let program = program
        .map(Path::to_path_buf)
        .unwrap_or_else(|| our_binary(root));
    let home = root.join("home");
    let confdir = home.join(".config/ftpsync");
    std::fs::create_dir_all(&confdir).unwrap();
    let fill = |text: &str| {
        text.replace("{ROOT}", &root.display().to_string())
            .replace("{PORT}", &up.open.port().to_string())
            .replace("{AUTHPORT}", &up.auth.port().to_string())
    };
    if let Some(conf) = &case.conf {
        std::fs::write(confdir.join(case.conf_name), fill(conf)).unwrap();
    }
    let wrapper = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> {root}/argv\nexec rsync \"$@\"\n",
        root = root.display()
    );
    write_script(&root.join("rsync-wrapper"), &wrapper);
    for n in 1..=5 {
        let hook = format!("#!/bin/sh\necho {n} >> {}/hooks\n", root.display());
        write_script(&root.join(format!("hook{n}")), &hook);
    }
    write_script(
        &root.join("hook-fails"),
        "#!/bin/sh\necho failing hook\nexit 7\n",
    );
    write_script(
        &root.join("sendmail"),
        &format!("#!/bin/sh\ncat >> {}/mail\n", root.display()),
    );
    // A push arriving once while the sync runs (after stage one).
    let push = format!(
        "#!/bin/sh\n[ -e {r}/pushed ] && exit 0\ntouch {r}/pushed {r}/mirror/Archive-Update-Required-{MIRRORNAME}\n",
        r = root.display()
    );
    write_script(&root.join("hook-push"), &push);
    // HUB=true hands over to runmirrors from BINDIR: record how it is called.
    let runmirrors = format!(
        "#!/bin/sh\necho \"runmirrors $*\" >> {}/hooks\n",
        root.display()
    );
    write_script(&root.join("runmirrors"), &runmirrors);
    std::fs::create_dir_all(root.join("mirror")).unwrap();
    if let Some(prepare) = case.prepare {
        prepare(&root.join("mirror"));
    }

    let mut codes = Vec::new();
    let mut stdout = Vec::new();
    let mut messages = String::new();
    for args in &case.runs {
        let mut cmd = Command::new(&program);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("LOGNAME", "nobody")
            .env("LC_ALL", "C")
            .env("DSYNC_SENDMAIL", root.join("sendmail"))
            .current_dir(root);
        for (k, v) in &case.env {
            cmd.env(k, fill(v));
        }
        let out = cmd.output().unwrap();
        codes.push(out.status.code().unwrap_or(-1));
        stdout.push(normalize(&String::from_utf8_lossy(&out.stdout), root));
        messages.push_str(&normalize(&String::from_utf8_lossy(&out.stderr), root));
    }
    let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap_or_default();
    // dsync's shrink guard counts the mirror with a local dry run of stage
    // one's argv (src/ftpsync/argv.rs, local_count); ftpsync has no such
    // guard. Every rsync call that touches the mirror must still be identical.
    let argv = read("argv")
        .lines()
        .filter(|l| !l.ends_with(" --log-file-format="))
        .map(|l| normalize(l, root))
        .collect();
    let mirror = root.join("mirror");
    let mut tree = archive::tree_snapshot(&mirror);
    let mut traces = BTreeMap::new();
    let own_traces: Vec<String> = tree
        .keys()
        .filter_map(|p| p.strip_prefix("project/trace/"))
        .filter(|name| *name != "master" && !name.starts_with('_'))
        .map(str::to_string)
        .collect();
    for name in own_traces {
        let path = format!("project/trace/{name}");
        // Contents hold timestamps and versions: compared field by field below.
        tree.insert(path.clone(), TreeEntry::Dir);
        traces.insert(name, trace_fields(&mirror.join(&path)));
    }
    let logs = std::fs::read_dir(root.join("log"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    for log in &logs {
        messages.push_str(&normalize(&read(&format!("log/{log}")), root));
    }
    Observed {
        codes,
        stdout,
        argv,
        tree,
        traces,
        hooks: read("hooks"),
        logs,
        messages,
    }
}

fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    set_mode(path, 0o755);
}

fn normalize(text: &str, root: &Path) -> String {
    text.replace(&root.display().to_string(), "<ROOT>")
}

/// Trace fields that must agree; time stamps, durations and the version lines
/// (which we write differently on purpose, see src/trace.rs) are left out.
fn trace_fields(path: &Path) -> BTreeMap<String, String> {
    const VOLATILE: &[&str] = &[
        "Date",
        "Date-Started",
        "Used ftpsync version",
        "Creator",
        "Total time spent in stage1 rsync",
        "Total time spent in stage2 rsync",
        "Total time spent in rsync",
        "Average rate",
    ];
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_once(": "))
        .filter(|(k, _)| !VOLATILE.contains(k))
        .map(|(k, v)| match k {
            // rsync's protocol overhead varies by a few bytes between runs.
            "Total bytes received in rsync" => (k.to_string(), "<some bytes>".to_string()),
            _ => (k.to_string(), v.to_string()),
        })
        .collect()
}

fn check(name: &str, case: Case) {
    let ours = observe(None, &case);
    assert_eq!(
        ours.codes, case.expect,
        "{name}: our exit codes; observed {ours:#?}"
    );
    if let Some(hooks) = case.hooks {
        assert_eq!(ours.hooks, hooks, "{name}: hooks run");
    }
    if let Some(stages) = case.stages {
        let runs = ours.argv.iter().filter(|a| *a != "--version").count();
        assert_eq!(runs, stages, "{name}: rsync stage runs: {:#?}", ours.argv);
    }
    if !Path::new(REFERENCE).exists() {
        eprintln!(
            "SKIPPED comparison for {name}: {REFERENCE} is not installed \
             (apt-get install ftpsync); only our exit codes were checked"
        );
        return;
    }
    let reference = observe(Some(Path::new(REFERENCE)), &case);
    assert_eq!(
        reference.codes, case.expect,
        "{name}: ftpsync's exit codes (test premise)"
    );
    let diff = archive::snapshot_diff(&reference.tree, &ours.tree);
    assert!(
        diff.is_empty(),
        "{name}: trees differ:\n{}",
        diff.join("\n")
    );
    // Field by field, so a failure shows only what differs (ftpsync left, dsync right).
    assert_eq!(reference.stdout, ours.stdout, "{name}: printed messages");
    assert_eq!(
        reference.argv.len(),
        ours.argv.len(),
        "{name}: number of rsync calls"
    );
    for (r, o) in reference.argv.iter().zip(&ours.argv) {
        assert_eq!(r, o, "{name}: rsync argv");
    }
    assert_eq!(reference.traces, ours.traces, "{name}: trace fields");
    assert_eq!(reference.hooks, ours.hooks, "{name}: hooks run");
    assert_eq!(reference.logs, ours.logs, "{name}: log files");
    assert_eq!(reference.codes, ours.codes, "{name}: exit codes");
    if let Some(needle) = case.same_lines {
        let prefix = regex::Regex::new(r"^\S*: line [0-9]+: ").unwrap();
        let wanted: Vec<String> = (reference.messages.lines())
            .filter(|l| l.contains(needle))
            .map(|l| prefix.replace(l, "").into_owned())
            .collect();
        assert!(
            !wanted.is_empty(),
            "{name}: ftpsync said nothing with {needle:?} (premise)"
        );
        for line in wanted {
            assert!(
                ours.messages.lines().any(|l| l.ends_with(&line)),
                "{name}: ftpsync's line {line:?} is not ours; we said:\n{}",
                ours.messages
            );
        }
    }
}

macro_rules! cases {
    ($($name:ident => $case:expr;)*) => {
        $(#[test] fn $name() { check(stringify!($name), $case); })*
    };
}

fn runs(list: &[&[&'static str]]) -> Vec<Vec<&'static str>> {
    list.iter().map(|r| r.to_vec()).collect()
}

cases! {
    plain_full_sync => Case { stages: Some(2), ..case("INFO_COUNTRY=DE") };
    arch_exclude => case("ARCH_EXCLUDE=\"arm64 source\"");
    arch_include => case("ARCH_INCLUDE=\"amd64 i386\"");
    arch_include_source_only => case("ARCH_INCLUDE=source");
    staged_push => Case {
        runs: runs(&[&["sync:stage1"], &["sync:stage2"]]),
        expect: vec![0, 0],
        ..case("")
    };
    archive_name => Case {
        conf_name: "ftpsync-security.conf",
        runs: runs(&[&["sync:archive:security"]]),
        ..case("RSYNC_PATH=security")
    };
    custom_options => case(
        "EXCLUDE=\"--exclude=README --exclude=ls-lR.gz\"\nRSYNC_BW=100000\n\
         RSYNC_OPTIONS2=\"--max-delete=100 --delay-updates --delete\"\n\
         RSYNC_EXTRA=\"--port={PORT} --contimeout=10\""
    );
    arithmetic_in_the_config => case(
        "RSYNC_BW=$(( 40 * 1024 ))\nUIPSLEEP=$(( ${UIPSLEEP:-1} + 1 ))\n\
         RSYNC_OPTIONS2=\"--max-delete=$(( 4 * (25 + 5) )) --delay-updates --delete\"\n\
         RSYNC_EXTRA=\"--port={PORT} --contimeout=$((5*2))\""
    );
    password_auth => case(
        "RSYNC_EXTRA=\"--port={AUTHPORT}\"\nRSYNC_USER=mirror\nRSYNC_PASSWORD=s3cret"
    );
    trigger_and_info => Case {
        runs: runs(&[&["-T", "cron"]]),
        ..case(
            "INFO_MAINTAINER=\"Admins <admins@example.org>\"\nINFO_SPONSOR=\"Example <https://example.org>\"\n\
             INFO_COUNTRY=DE\nINFO_LOCATION=Berlin\nINFO_THROUGHPUT=10Gb"
        )
    };
    ssh_forced_command => Case {
        env: vec![
            ("SSH_ORIGINAL_COMMAND", "sync:all bogus-word"),
            ("SSH_CONNECTION", "127.0.0.9 40000 127.0.0.1 22"),
        ],
        ..case("")
    };
    hooks_in_order => Case {
        // HOOK5 only runs after runmirrors, with HUB=true.
        hooks: Some("1\n2\n3\n4\n"),
        ..case("HOOK1={ROOT}/hook1\nHOOK2={ROOT}/hook2\nHOOK3={ROOT}/hook3\nHOOK4={ROOT}/hook4\nHOOK5={ROOT}/hook5")
    };
    failing_hook_stops_with_its_status => Case {
        expect: vec![7],
        hooks: Some("1\n"),
        ..case("HOOK1={ROOT}/hook1\nHOOK2={ROOT}/hook-fails\nHOOK3={ROOT}/hook3")
    };
    unknown_module_fails_stage_one => Case { expect: vec![3], ..case("RSYNC_PATH=no-such-module") };
    bad_stage_two_option_fails_stage_two => Case {
        expect: vec![4],
        ..case("RSYNC_OPTIONS2=\"--no-such-option\"")
    };
    missing_config => Case { conf: None, expect: vec![78], ..case("") };
    bad_option => Case { runs: runs(&[&["-x"]]), expect: vec![64], ..case("") };
    both_arch_filters => Case {
        expect: vec![1],
        ..case("ARCH_INCLUDE=amd64\nARCH_EXCLUDE=i386")
    };
    missing_rsync_host => Case { expect: vec![1], ..case("RSYNC_HOST=") };
    unknown_transport => Case { expect: vec![1], ..case("RSYNC_TRANSPORT=carrier-pigeon") };
    live_lock_refuses => Case {
        prepare: Some(|mirror| {
            let lock = mirror.join(format!("Archive-Update-in-Progress-{MIRRORNAME}"));
            // PID 1 is always alive.
            std::fs::write(lock, "1\n").unwrap();
        }),
        expect: vec![1],
        ..case("")
    };
    stale_lock_is_taken_over => Case {
        prepare: Some(|mirror| {
            let lock = mirror.join(format!("Archive-Update-in-Progress-{MIRRORNAME}"));
            std::fs::write(lock, "999999999\n").unwrap();
        }),
        ..case("")
    };
    upstream_update_in_progress => Case {
        expect: vec![4],
        ..case("RSYNC_PATH=busy\nUIPSLEEP=1\nUIPRETRIES=1")
    };
    log_rotation => Case {
        runs: runs(&[&[], &[], &[]]),
        expect: vec![0, 0, 0],
        ..case("LOGROTATE=1")
    };
    explicit_rsync_source => case("RSYNC_HOST=\nRSYNC_SOURCE=rsync://127.0.0.1:{PORT}/debian/");
    default_names_from_hostname => Case {
        conf: Some(base_conf().replace("MIRRORNAME=mirror.test\nTRACEHOST=tracehost.test\n", "")),
        ..case("")
    };
    callback_without_key_is_ignored => Case { runs: runs(&[&["sync:callback"]]), ..case("") };
    push_during_run_repeats_the_stages => Case {
        stages: Some(4),
        ..case("HOOK2={ROOT}/hook-push\nHOOK3={ROOT}/hook3")
    };
    ssh_transport_unreachable_fails_stage_one => Case {
        expect: vec![3],
        ..case("RSYNC_TRANSPORT=ssh\nRSYNC_EXTRA=\"--port={PORT} --contimeout=5\"\nRSYNC_USER=nobody")
    };
    ssl_transport_uses_the_tunnel_helper => Case {
        expect: vec![3],
        ..case("RSYNC_SSL=true\nRSYNC_SSL_PORT=1")
    };
    rsync_proxy_is_exported_to_rsync => Case {
        expect: vec![3],
        ..case("RSYNC_PROXY=127.0.0.1:1")
    };
    hub_triggers_downstreams_then_hook5 => Case {
        hooks: Some("4\nrunmirrors -f -k all\n5\n"),
        ..case("HUB=true\nBINDIR={ROOT}\nHOOK4={ROOT}/hook4\nHOOK5={ROOT}/hook5")
    };
    hub_without_runmirrors_says_what_bash_says => Case {
        expect: vec![127],
        same_lines: Some("runmirrors"),
        ..case("HUB=true\nBINDIR={ROOT}/no-bin")
    };
    missing_basedir_says_what_bash_says => Case {
        env: vec![("BASEDIR", "{ROOT}/no-such-basedir")],
        expect: vec![1],
        same_lines: Some("no-such-basedir"),
        ..case("")
    };
    hub_mhop_stage1_push => Case {
        runs: runs(&[&["sync:stage1", "sync:mhop", "sync:archive:"]]),
        hooks: Some("runmirrors -f -k mhop\n5\n"),
        ..case("HUB=true\nBINDIR={ROOT}\nHOOK5={ROOT}/hook5")
    };
    config_uses_bash_variables_and_sample_layout => case(concat!(
        "########################################################################\n",
        "## Mirror information options\n",
        "########################################################################\n",
        "# INFO_MAINTAINER=\"Admins <admins@example.com>, Person <person@example.com>\"\n",
        "INFO_LOCATION=\"$HOSTNAME\" # where we are\n",
        "INFO_SPONSOR='Example <https://example.com>'\n",
        "export RSYNC_PASSWORD\n",
        "INFO_THROUGHPUT=10Gb; INFO_COUNTRY=DE\n",
        "ARCH_EXCLUDE=\"arm64 \\\n  source\"\n",
    ));
    config_reads_earlier_variables => case(
        "export RSYNC_PASSWORD=unused\nDEST=${TO}\nTO=\"$DEST\"\nINFO_LOCATION=\"${INFO_LOCATION:-Somewhere}\""
    );
}
