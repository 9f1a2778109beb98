//! Differential tests: for each config, every variable it mentions must end
//! up exactly as real bash leaves it after `set -u; . FILE`.

use std::process::Command;

use super::tests::base;
use super::tests_commands::{DEBIAN_SAMPLE, OLD_SAMPLE_UNCOMMENTED, OPERATOR_CONFIG};
use super::*;

/// How a variable ends up.
#[derive(Debug, PartialEq, Eq)]
enum State {
    Unset,
    Set(String),
    Exported(String),
}

fn bash_available() -> bool {
    Command::new("bash")
        .arg("-c")
        .arg("true")
        .status()
        .is_ok_and(|s| s.success())
}

/// Run bash on `text` in the same environment as [`base`].
fn bash(text: &str, names: &[String]) -> Result<Vec<State>, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ftpsync.conf");
    std::fs::write(&file, text).unwrap();
    let script = r#"set -u
. "$1" || exit 1
shift
for __dsync_n; do
  if [[ -v $__dsync_n ]]; then
    __dsync_a=$(declare -p "$__dsync_n"); __dsync_a=${__dsync_a#declare -}; __dsync_a=${__dsync_a%% *}
    if [[ $__dsync_a == *x* ]]; then printf 'x\0'; else printf 's\0'; fi
    printf '%s\0' "${!__dsync_n}"
  else
    printf 'u\0\0'
  fi
done"#;
    let mut cmd = Command::new("bash");
    cmd.env_clear()
        .arg("-c")
        .arg(script)
        .arg("bash")
        .arg(&file)
        .args(names);
    // A UTF-8 locale, as operators have: in the C locale bash cannot write $'\u00e9'.
    cmd.env("LC_ALL", "C.UTF-8");
    for (name, value) in base().exported() {
        cmd.env(name, value);
    }
    let out = cmd.output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let stdout = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<&str> = stdout.split('\0').collect();
    Ok(fields
        .chunks(2)
        .take(names.len())
        .map(|kv| match kv[0] {
            "x" => State::Exported(kv[1].to_string()),
            "s" => State::Set(kv[1].to_string()),
            _ => State::Unset,
        })
        .collect())
}

fn ours(text: &str, names: &[String]) -> Result<Vec<State>, ShellConfError> {
    let mut vars = base();
    eval_str("t.conf", text, &mut vars)?;
    Ok(names
        .iter()
        .map(|n| match vars.get(n) {
            None => State::Unset,
            Some(v) if vars.is_exported(n) => State::Exported(v.to_string()),
            Some(v) => State::Set(v.to_string()),
        })
        .collect())
}

/// Every identifier-like word in the text: all the variables it could touch.
fn names(text: &str) -> Vec<String> {
    let re = regex::Regex::new(r"[A-Za-z_][A-Za-z0-9_]*").unwrap();
    let mut names: Vec<String> = re.find_iter(text).map(|m| m.as_str().to_string()).collect();
    names.extend(["HOME", "LOGNAME", "PATH"].map(String::from));
    names.sort();
    names.dedup();
    names
}

#[track_caller]
fn same_as_bash(text: &str) {
    let names = names(text);
    let want = bash(text, &names).unwrap_or_else(|e| panic!("bash rejects {text:?}: {e}"));
    let got = ours(text, &names).unwrap_or_else(|e| panic!("we reject {text:?}: {e}"));
    for ((name, want), got) in names.iter().zip(&want).zip(&got) {
        assert_eq!(got, want, "variable {name} after {text:?}");
    }
}

#[track_caller]
fn both_reject(text: &str) {
    let names = names(text);
    assert!(bash(text, &names).is_err(), "bash accepts {text:?}");
    assert!(ours(text, &names).is_err(), "we accept {text:?}");
}

const CONFIGS: &[&str] = &[
    "A=1\nB=two\nC=\n",
    "A=1 B=$A; C=$B;\n",
    "A=a\nA+=b\nA+=\"c d\"\nB+=x\n",
    "# c\nA=1 # c\nB=x#y\nC=\"q\"#z\nD=1;#c\n",
    "# c \\\nA=1\n",
    // (CRLF is left out on purpose: bash keeps the '\r', we strip it.)
    "A='a $HOME \\n \"b\" `c`'\nB='a\\\nb'\n",
    "A=\"a \\$b \\`c\\` \\\"d\\\" \\\\e \\x $HOME\"\nB=\"a\nb\"\nC=\"a\\\nb\"\nD=\"a$\"\nE=\"$ a\"\n",
    "A=a\\ b\\$c\\\\\nB=a\\\nb\nC=a\\\\\\\nb\n",
    "A=1 \\\n  B=2\nC=$\\\nHOME\n",
    "A=$'a\\tb\\nc\\\\d\\'e\\\"f'\nB=$'\\x41\\101\\u00e9\\e\\cA\\?\\q'\nC=$'a\\\nb'\nD=$'\\x'\n",
    "A=$\"a $LOGNAME\"\n",
    "A=a'b c'\"d $LOGNAME\"\\ e${LOGNAME}f$'\\t'\n",
    "A={a,b}*?[x]\nB=a=b\nC=a$\nD=$/x\n",
    "L=\"a  b\"\nA=$L${L}\n",
    "E=\nS=set\nA=${U:-d}${E:-d}${S:-d}\nB=${U-d}${E-d}\nC=${U:+a}${E:+a}${S:+a}${U+a}${E+a}\nD=${#S}${#E}\nF=${S:?x}${E?x}\n",
    "X=${U:=a b}\nE=\nY=${E:=e}\nZ=${E2=f}\nE3=\nW=${E3=g}\n",
    "A=${U:-\"a b\"}\nB=${U:-'a b'}c\nC=\"${U:-'a'}\"\nD=\"${U:-\"a b\"}\"\n",
    "A=${U:-a\\}b}\nB=\"${U:-a\\}b}\"\nC=\"${U:-a\\xb}\"\nD=${U:-${V:-$LOGNAME}}\nE=${U:-a;b|c}\n",
    "A=${LOGNAME:-${U:=x}}\nB=${NOPE:+$NOPE2}\n",
    "A=~\nB=~/log\nC=a:~/b:~\nD=~/a:b\nE=a~\nF=a=~/b\n",
    "A=~\"/x\"\nB=\"~\"/x\nC=\\~/x\nD=~$LOGNAME\nE=\"${U:-~}\"\n",
    "A=${U:-~/log}\nB=${U:-a:~/b}\nC=~/a${U:-~/b}\nD=${U:-\\~/a}\nE=${U:-\"~\"/a}\n",
    "A=~nosuchuser_dsync/x\nB=~root/x:~root\n",
    ": ${U:=~/b} ${V:=a:~/b}\nexport W=a:~/w\n",
    "HOME=\nA=~/a\n",
    "export A=1 B\nB=2\nexport LOGNAME\nC=3\nexport D\n",
    "readonly A=1 B\nC=$A\n",
    "export A=1\nunset A LOGNAME\nunset -v NEVER\nA=2\n",
    ": ${A:=a}\ntrue \"${B:=b}\" x\n:\n",
    "\"export\" A=1\n'export' B=2\n",
    "LOGNAME=other\n",
    "A=\"ééé\"\nB=${#A}\n",
    "A=`hostname`\nB=$(hostname)\nC=\"<$( hostname )>\"\nD=$(hostname -s)\nE=`whoami`\nF=$(id -un)\n",
    "A=${U:-$(hostname)}\n: ${MIRRORNAME:=`hostname`}\n",
    "A=\"$(id -un)\"\nB=\"`id -u -n`\"\n",
    "A=$(hostname)$(whoami)\nB=\"$(hostname) `whoami`\"\n",
    "A=\"\"~\nB=a:\"\"~/b\nC=~:\nD=a::~\n",
    "A=x\nexport A+=y B+=z\n",
    "A=${U:-}${U-}\"${U:-}\"\n",
    "A=\"a'b\"'c\"d'\n",
    "A=1\tB=2 ;C=3\n\n\n  D=4",
    "A=$'it\\'s'\n",
    "A=\"${LOGNAME:+$'x'}\"\nB=${LOGNAME:+$'\\t'}\nC=\"${LOGNAME:+$\"x\"}\"\nD=\"${LOGNAME:+\"$'a'\"}\"\n",
    "A=\"${U-'a'}\"\nB=\"${U:='a'}\"\nC=\"${LOGNAME:+'a'}\"\nD=\"$'a'\"\n",
    "A=${U:-a b}c\nB=${U:-$LOGNAME:~}\n",
    // Arithmetic, as issue 20 found it in operators' configs.
    "RSYNC_BW=$(( 40 * 1024 ))\nUIPSLEEP=$(( ${UIPSLEEP:-1} + 1 ))\nX=$((UIPSLEEP*2))\n",
    "A=7\nB=$((A + 1))$((A))\"$(( A / 2 ))\"\nC=$(( (A + 1) * 3 % 5 ))\nD=$(( -A ** 2 ))\n",
    "A=$(( 0x10 + 010 + 2#11 + 36#zz ))\nB=$(( 1 << 10 >> 2 ))\nC=$(( 3 > 2 && 2 >= 2 || 0 ))\n",
    "E=\nA=$(( E + 1 ))\nR='E + 4'\nB=$(( R * 2 ))\nC=$(( 0 && 1 / 0 ))\nD=$(( 1 ? 2 : 1 / 0 ))\n",
    "A=$(( 9223372036854775807 + 1 ))\nB=$(( -7 / 2 ))$(( -7 % 2 ))\nC=$(( ~5 ^ 3 | 8 & 12 ))\n",
    "A=$(( \"1\" + \"2\" ))\nB=$(( ${#HOME} >= 0 ))\nC=$((\n 1 +\n 2 ))\nD=$(( ))\n",
    "A=$(( (1) ))x$(( ((2)) ))\nB=\"$(( ${#LOGNAME} > 0 ))\"\nC=$(( 2 ** 62 ))\n",
];

#[test]
fn shellconf_bash_agrees() {
    if !bash_available() {
        return;
    }
    for text in CONFIGS {
        same_as_bash(text);
    }
}

#[test]
fn shellconf_bash_agrees_on_whole_configs() {
    if bash_available() {
        same_as_bash(DEBIAN_SAMPLE);
        same_as_bash(OLD_SAMPLE_UNCOMMENTED);
        same_as_bash(&OPERATOR_CONFIG.replace("hostname -f", "hostname"));
    }
}

#[test]
fn shellconf_bash_agrees_on_cat() {
    if !bash_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "s3cr3t\n\n").unwrap();
    let path = file.to_str().unwrap();
    same_as_bash(&format!("A=$(cat {path})\nB=\"`cat '{path}'`\"\n"));
}

#[test]
fn shellconf_bash_also_rejects() {
    if !bash_available() {
        return;
    }
    for text in [
        "A=$NOPE\n",
        "A=${NOPE}x\n",
        "A=${#NOPE}\n",
        ": $NOPE\n",
        "A=${NOPE:?must be set}\n",
        "E=\nA=${E:?}\n",
        "A=${NOPE?}\n",
        "A='abc\n",
        "A=\"abc\n",
        "A=${B:-x\n",
        "A=$(hostname\n",
        "A=`hostname\n",
        "; A=1\n",
        "A=1;;\n",
        "A=(1\n",
        "A=$(cat /nonexistent/dsync-test)\n",
        "A=$(( 1 / 0 ))\n",
        "A=$(( NOPE + 1 ))\n",
        "A=$(( 1 + ))\n",
        "A=$(( 08 ))\n",
        "A=$(( (1 + 2 ))\n",
        "A=$(( 2 ** -1 ))\n",
    ] {
        both_reject(text);
    }
}
