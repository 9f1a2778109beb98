//! Commands (export, readonly, unset, `:`), command substitution, reading
//! files, and whole configs as operators write them.

use super::tests::{base, eval, get, run, value};
use super::*;

#[test]
fn shellconf_export() {
    let vars = eval("export A=1 B\nB=2\nexport LOGNAME\nC=3\nexport D\n");
    assert!(vars.is_exported("A") && vars.is_exported("B") && vars.is_exported("D"));
    assert!(!vars.is_exported("C"));
    assert_eq!(vars.get("B"), Some("2"));
    let exported: Vec<_> = vars.exported().collect();
    // D is exported but has no value: not in the environment.
    assert_eq!(
        exported,
        [
            ("A", "1"),
            ("B", "2"),
            ("HOME", "/home/tester"),
            ("LOGNAME", "tester"),
            ("PATH", "/usr/bin:/bin")
        ]
    );
}

#[test]
fn shellconf_export_without_arguments_is_harmless() {
    assert_eq!(get("export\nA=1", "A").as_deref(), Some("1"));
}

#[test]
fn shellconf_readonly_assigns() {
    let vars = eval("readonly A=1 B\nA=2\n");
    assert_eq!(vars.get("A"), Some("2"));
    assert!(!vars.is_exported("A"));
}

#[test]
fn shellconf_unset() {
    let vars = eval("export A=1\nunset A LOGNAME\nunset -v NEVER\nA=2\n");
    assert_eq!(vars.get("A"), Some("2"));
    assert!(!vars.is_exported("A"));
    assert_eq!(vars.get("LOGNAME"), None);
}

#[test]
fn shellconf_noop_commands_expand_arguments() {
    let vars = eval(": ${A:=a}\ntrue \"${B:=b}\" x\n:\n");
    assert_eq!((vars.get("A"), vars.get("B")), (Some("a"), Some("b")));
    assert_eq!(get("\"export\" A=1", "A").as_deref(), Some("1"));
}

#[test]
fn shellconf_quoted_command_name_still_builtin() {
    assert!(eval("'export' A=1").is_exported("A"));
}

#[test]
fn shellconf_command_substitution_hostname() {
    let host = run(&["hostname"]);
    assert_eq!(value("X=`hostname`"), host);
    assert_eq!(value("X=$(hostname)"), host);
    assert_eq!(value("X=\"$( hostname )\""), host);
    assert_eq!(value("X=\"<`hostname`>\""), format!("<{host}>"));
    assert_eq!(value("X=$(hostname -s)"), run(&["hostname", "-s"]));
    assert_eq!(value("X=$(hostname --short)"), run(&["hostname", "-s"]));
}

#[test]
fn shellconf_command_substitution_hostname_fqdn() {
    // `hostname -f` needs a resolvable name; only compare when it works.
    let out = std::process::Command::new("hostname")
        .arg("-f")
        .output()
        .unwrap();
    if out.status.success() {
        let want = String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string();
        assert_eq!(value("X=`hostname -f`"), want);
        assert_eq!(value("X=$(hostname --fqdn)"), want);
    }
}

#[test]
fn shellconf_command_substitution_user() {
    let user = run(&["id", "-un"]);
    assert_eq!(value("X=$(whoami)"), user);
    assert_eq!(value("X=$(id -un)"), user);
    assert_eq!(value("X=`id -u -n`"), user);
}

#[test]
fn shellconf_command_substitution_cat() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pass word");
    std::fs::write(&file, "s3cr3t\n\n\n").unwrap();
    let mut vars = base();
    vars.set("D", dir.path().to_str().unwrap());
    eval_str(
        "t",
        "X=$(cat \"$D/pass word\")\nY=`cat \"$D\"/pass\\ word`\nZ=\"$(cat \"$D/pass word\")\"",
        &mut vars,
    )
    .unwrap();
    assert_eq!(vars.get("X"), Some("s3cr3t"));
    assert_eq!(vars.get("Y"), Some("s3cr3t"));
    assert_eq!(vars.get("Z"), Some("s3cr3t"));
}

#[test]
fn shellconf_command_substitution_in_default_is_lazy_and_nested() {
    let host = run(&["hostname"]);
    assert_eq!(value("X=${U:-$(hostname)}"), host);
    assert_eq!(value(": ${MIRRORNAME:=`hostname`}\nX=$MIRRORNAME"), host);
}

#[test]
fn shellconf_vars_from_env_are_exported() {
    let vars = Vars::from_env();
    if let Ok(path) = std::env::var("PATH") {
        assert_eq!(vars.get("PATH"), Some(path.as_str()));
        assert!(vars.is_exported("PATH"));
    }
}

#[test]
fn shellconf_assignment_keeps_export_mark() {
    let vars = eval("LOGNAME=other\n");
    assert!(vars.is_exported("LOGNAME"));
    assert_eq!(vars.get("LOGNAME"), Some("other"));
}

#[test]
fn shellconf_eval_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ftpsync.conf");
    std::fs::write(&path, b"A=1\n# caf\xe9 in latin1\nB=\"$A\"\n").unwrap();
    let mut vars = base();
    eval_file(&path, &mut vars).unwrap();
    assert_eq!(vars.get("B"), Some("1"));
}

#[test]
fn shellconf_eval_file_missing() {
    let err = eval_file(
        std::path::Path::new("/nonexistent/ftpsync.conf"),
        &mut Vars::new(),
    )
    .unwrap_err();
    assert_eq!(
        (err.file.as_str(), err.line, err.column),
        ("/nonexistent/ftpsync.conf", 0, 0)
    );
    assert!(
        err.to_string()
            .starts_with("/nonexistent/ftpsync.conf:0:0: cannot read the file: "),
        "{err}"
    );
}

/// The sample shipped with Debian's ftpsync (20180513, etc/ftpsync.conf.sample).
pub(super) const DEBIAN_SAMPLE: &str = r#"########################################################################
########################################################################
## This is a sample configuration file for the ftpsync mirror script. ##
## Only options most users may need are included.  For documentation  ##
## and all available options see ftpsync.conf(5).                     ##
########################################################################
########################################################################

# MIRRORNAME=`hostname -f`
# TO="/srv/mirrors/debian/"
# MAILTO="$LOGNAME"
# HUB=false

########################################################################
## Connection options
########################################################################

RSYNC_HOST=
RSYNC_PATH="debian"
# RSYNC_USER=
# RSYNC_PASSWORD=

########################################################################
## Mirror information options
########################################################################

# INFO_MAINTAINER="Admins <admins@example.com>, Person <person@example.com>"
# INFO_SPONSOR="Example <https://example.com>"
# INFO_COUNTRY=DE
# INFO_LOCATION="Example"
# INFO_THROUGHPUT=10Gb

########################################################################
## Include and exclude options
########################################################################

# ARCH_INCLUDE=
# ARCH_EXCLUDE=

########################################################################
## Log option
########################################################################

# LOGDIR=
"#;

/// The defaults older samples listed, uncommented as operators did
/// (`hostname -f` replaced by `hostname`, which works on any test machine).
pub(super) const OLD_SAMPLE_UNCOMMENTED: &str = r#"MIRRORNAME=`hostname`
TO="/srv/mirrors/debian/"
RSYNC_PATH="debian"
RSYNC_HOST=some.mirror.debian.org
RSYNC_USER=
RSYNC_PASSWORD=
BASEDIR=${BASEDIR:-$HOME}
NAME=ftpsync
LOGDIR="${BASEDIR}/log"
LOG="${LOGDIR}/${NAME}.log"
MAILTO="root"
ERRORSONLY="true"
FULLLOGS="false"
EXCLUDE=""
ARCH_EXCLUDE=""
HUB=false
LOGROTATE=14
LOCK="${TO}/Archive-Update-in-Progress-${MIRRORNAME}"
LOCKTIMEOUT=${LOCKTIMEOUT:-3600}
UPDATEREQUIRED="${TO}/Archive-Update-Required-${MIRRORNAME}"
UIPSLEEP=1200
TRACE="project/trace/${MIRRORNAME}"
EXTENDEDTRACE="full"
TRACEHOST="$(hostname)"
RSYNC=rsync
RSYNC_BW=""
RSYNC_FILTER="--filter=protect_Archive-Update-in-Progress-${MIRRORNAME} --filter=protect_${TRACE} --filter=protect_Archive-Update-Required-${MIRRORNAME}"
RSYNC_OPTIONS="-prltvHSB8192 --timeout 3600 --stats ${RSYNC_FILTER}"
RSYNC_OPTIONS1="--exclude=Packages* --exclude=Sources* --exclude=Release* --exclude=InRelease --exclude=i18n/* --exclude=ls-lR*"
RSYNC_OPTIONS2="--max-delete=40000 --delay-updates --delete --delete-excluded"
CALLBACKUSER="archvsync"
HOOK1=
HOOK5=
"#;

#[test]
fn shellconf_old_sample_uncommented() {
    let vars = eval(OLD_SAMPLE_UNCOMMENTED);
    let host = run(&["hostname"]);
    assert_eq!(vars.get("LOG"), Some("/home/tester/log/ftpsync.log"));
    assert_eq!(vars.get("TRACEHOST"), Some(host.as_str()));
    assert_eq!(vars.get("LOCKTIMEOUT"), Some("3600"));
    assert_eq!(
        vars.get("RSYNC_OPTIONS")
            .map(|o| o.ends_with(&format!("Archive-Update-Required-{host}"))),
        Some(true)
    );
}

#[test]
fn shellconf_debian_sample() {
    let vars = eval(DEBIAN_SAMPLE);
    assert_eq!(vars.get("RSYNC_HOST"), Some(""));
    assert_eq!(vars.get("RSYNC_PATH"), Some("debian"));
    assert_eq!(vars.get("MIRRORNAME"), None);
    assert_eq!(vars.get("LOGDIR"), None);
}

pub(super) const OPERATOR_CONFIG: &str = r#"MIRRORNAME=`hostname -f`
TO="/srv/mirrors/debian/"
MAILTO="$LOGNAME"
export RSYNC_PASSWORD='s3cr3t'
RSYNC_HOST=ftp.de.debian.org
ARCH_EXCLUDE="alpha arm armel hppa hurd-i386 ia64"
HOOK1="/usr/local/bin/pre ${MIRRORNAME}"
LOGDIR=${LOGDIR:-~/log}
RSYNC_OPTIONS="-prltvHSB8192 --safe-links \
  --timeout 120"
"#;

#[test]
fn shellconf_operator_config() {
    // Like `hostname -f` where the name resolves, but not failing where it does not.
    let text = OPERATOR_CONFIG.replace("hostname -f", "hostname");
    let vars = eval(&text);
    let host = run(&["hostname"]);
    assert_eq!(vars.get("MIRRORNAME"), Some(host.as_str()));
    assert_eq!(vars.get("TO"), Some("/srv/mirrors/debian/"));
    assert_eq!(vars.get("MAILTO"), Some("tester"));
    assert_eq!(vars.get("RSYNC_PASSWORD"), Some("s3cr3t"));
    assert!(vars.is_exported("RSYNC_PASSWORD"));
    assert!(!vars.is_exported("TO"));
    assert_eq!(vars.get("RSYNC_HOST"), Some("ftp.de.debian.org"));
    assert_eq!(
        vars.get("ARCH_EXCLUDE"),
        Some("alpha arm armel hppa hurd-i386 ia64")
    );
    assert_eq!(
        vars.get("HOOK1"),
        Some(format!("/usr/local/bin/pre {host}").as_str())
    );
    assert_eq!(vars.get("LOGDIR"), Some("/home/tester/log"));
    assert_eq!(
        vars.get("RSYNC_OPTIONS"),
        Some("-prltvHSB8192 --safe-links   --timeout 120")
    );
}

#[test]
fn shellconf_operator_config_keeps_preset_logdir() {
    let mut vars = base();
    vars.set("LOGDIR", "/var/log/ftpsync");
    eval_str(
        "t",
        &OPERATOR_CONFIG.replace("hostname -f", "hostname"),
        &mut vars,
    )
    .unwrap();
    assert_eq!(vars.get("LOGDIR"), Some("/var/log/ftpsync"));
}
