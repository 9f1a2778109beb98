//! Quoting and expansion: what is supported, and that it means what bash
//! makes of it. Shared helpers for the other test files are here too.

use super::*;

/// The variables every test starts from, like a login environment.
pub(super) fn base() -> Vars {
    let mut vars = Vars::new();
    for (name, value) in [
        ("HOME", "/home/tester"),
        ("LOGNAME", "tester"),
        ("PATH", "/usr/bin:/bin"),
    ] {
        vars.set(name, value);
        vars.export(name);
    }
    vars
}

pub(super) fn eval(text: &str) -> Vars {
    let mut vars = base();
    if let Err(e) = eval_str("t.conf", text, &mut vars) {
        panic!("{text:?} failed: {e}");
    }
    vars
}

/// Value of `name` after evaluating `text`.
pub(super) fn get(text: &str, name: &str) -> Option<String> {
    eval(text).get(name).map(str::to_string)
}

pub(super) fn value(text: &str) -> String {
    get(text, "X").unwrap_or_else(|| panic!("X not set by {text:?}"))
}

/// Run a command, for the value a substitution should give.
pub(super) fn run(args: &[&str]) -> String {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run");
    assert!(out.status.success(), "{args:?} failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end_matches('\n')
        .to_string()
}

#[test]
fn shellconf_plain_assignments() {
    let vars = eval("A=1\nB=two\n\nC=\n");
    assert_eq!(vars.get("A"), Some("1"));
    assert_eq!(vars.get("B"), Some("two"));
    assert_eq!(vars.get("C"), Some(""));
    assert!(!vars.is_exported("A"));
}

#[test]
fn shellconf_several_assignments_on_a_line_see_each_other() {
    let vars = eval("A=1 B=$A; C=$B\n");
    assert_eq!(
        (vars.get("A"), vars.get("B"), vars.get("C")),
        (Some("1"), Some("1"), Some("1"))
    );
}

#[test]
fn shellconf_append() {
    assert_eq!(value("X=a\nX+=b\nX+=\"c d\""), "abc d");
    // Appending to an unset variable is no reference to it under set -u.
    assert_eq!(value("X+=x"), "x");
}

#[test]
fn shellconf_comments() {
    let vars = eval("# a comment\n  # indented\nA=1 # trailing\nB=x#y\nC=\"q\"#z\nD=1;#c\n");
    assert_eq!(vars.get("A"), Some("1"));
    assert_eq!(vars.get("B"), Some("x#y"));
    assert_eq!(vars.get("C"), Some("q#z"));
    assert_eq!(vars.get("D"), Some("1"));
}

#[test]
fn shellconf_comment_does_not_continue_with_backslash() {
    assert_eq!(get("# c \\\nA=1\n", "A").as_deref(), Some("1"));
}

#[test]
fn shellconf_semicolons_and_blanks() {
    let vars = eval("A=1;B=2 ; C=3;\t\nD=4   \t\n");
    assert_eq!(vars.get("C"), Some("3"));
    assert_eq!(vars.get("D"), Some("4"));
}

#[test]
fn shellconf_crlf_line_endings() {
    let vars = eval("A=1\r\nB=\"x\"\r\n# c\r\nC=$A\r\n");
    assert_eq!(
        (vars.get("A"), vars.get("B"), vars.get("C")),
        (Some("1"), Some("x"), Some("1"))
    );
}

#[test]
fn shellconf_single_quotes_are_literal() {
    assert_eq!(value("X='a $HOME \\n \"b\" `c`'"), "a $HOME \\n \"b\" `c`");
    assert_eq!(value("X='a\\\nb'"), "a\\\nb");
}

#[test]
fn shellconf_double_quotes() {
    assert_eq!(
        value(r#"X="a \$b \`c\` \"d\" \\e \x $HOME""#),
        r#"a $b `c` "d" \e \x /home/tester"#
    );
    assert_eq!(value("X=\"a\nb\""), "a\nb");
    assert_eq!(value("X=\"a\\\nb\""), "ab");
    assert_eq!(value("X=\"a$\""), "a$");
    assert_eq!(value("X=\"$ a\""), "$ a");
}

#[test]
fn shellconf_backslash_outside_quotes() {
    assert_eq!(value("X=a\\ b\\$c\\\\"), "a b$c\\");
    assert_eq!(value("X=a\\\nb"), "ab");
    assert_eq!(value("X=a\\"), "a\\");
    assert_eq!(value("X=a\\\\\\\nb"), "a\\b");
}

#[test]
fn shellconf_line_continuation_between_words() {
    let vars = eval("A=1 \\\n  B=2\n");
    assert_eq!((vars.get("A"), vars.get("B")), (Some("1"), Some("2")));
    assert_eq!(value("X=$\\\nHOME"), "/home/tester");
}

#[test]
fn shellconf_ansi_c_quotes() {
    assert_eq!(value(r#"X=$'a\tb\nc\\d\'e\"f'"#), "a\tb\nc\\d'e\"f");
    assert_eq!(value(r"X=$'\x41\101\u00e9\e\cA\?\q'"), "AAé\x1b\x01?\\q");
    assert_eq!(value("X=$'a\\\nb'"), "a\\\nb");
}

#[test]
fn shellconf_locale_quotes_are_double_quotes() {
    assert_eq!(value("X=$\"a $LOGNAME\""), "a tester");
}

#[test]
fn shellconf_concatenation() {
    assert_eq!(
        value(r#"X=a'b c'"d $LOGNAME"\ e${LOGNAME}f$'\t'"#),
        "ab cd tester etesterf\t"
    );
}

#[test]
fn shellconf_braces_and_specials_are_literal_in_words() {
    assert_eq!(value("X={a,b}*?[x]"), "{a,b}*?[x]");
    assert_eq!(value("X=a=b"), "a=b");
}

#[test]
fn shellconf_no_word_splitting_in_assignments() {
    let text = "L=\"a  b\"\nX=$L${L}\n";
    assert_eq!(value(text), "a  ba  b");
}

#[test]
fn shellconf_parameter_expansion() {
    let pre = "E=\nS=set\n";
    let cases = [
        ("X=$S", "set"),
        ("X=${S}x", "setx"),
        ("X=${U:-d}", "d"),
        ("X=${E:-d}", "d"),
        ("X=${S:-d}", "set"),
        ("X=${U-d}", "d"),
        ("X=${E-d}", ""),
        ("X=${U:+a}", ""),
        ("X=${E:+a}", ""),
        ("X=${S:+a}", "a"),
        ("X=${U+a}", ""),
        ("X=${E+a}", "a"),
        ("X=${#S}", "3"),
        ("X=${#E}", "0"),
        ("X=${S:?oops}", "set"),
        ("X=${E?oops}", ""),
        ("X=${U:-}", ""),
        ("X=${U-}", ""),
    ];
    for (text, want) in cases {
        assert_eq!(value(&format!("{pre}{text}")), want, "{text}");
    }
}

#[test]
fn shellconf_length_counts_characters() {
    assert_eq!(value("A=héé\nX=${#A}"), "3");
}

#[test]
fn shellconf_assign_default() {
    let vars = eval("X=${U:=a b}\nE=\nY=${E:=e}\nZ=${E2=f}\nE3=\nW=${E3=g}\n");
    assert_eq!((vars.get("X"), vars.get("U")), (Some("a b"), Some("a b")));
    assert_eq!((vars.get("Y"), vars.get("E")), (Some("e"), Some("e")));
    assert_eq!((vars.get("Z"), vars.get("E2")), (Some("f"), Some("f")));
    assert_eq!((vars.get("W"), vars.get("E3")), (Some(""), Some("")));
}

#[test]
fn shellconf_nested_words_in_expansions() {
    assert_eq!(value("X=${U:-\"a b\"}"), "a b");
    assert_eq!(value("X=${U:-'a b'}c"), "a bc");
    assert_eq!(value("X=\"${U:-'a'}\""), "'a'");
    assert_eq!(value("X=\"${U:-\"a b\"}\""), "a b");
    assert_eq!(value("X=${U:-a\\}b}"), "a}b");
    assert_eq!(value("X=\"${U:-a\\}b}\""), "a}b");
    assert_eq!(value("X=\"${U:-a\\xb}\""), "a\\xb");
    assert_eq!(value("X=${U:-${V:-$LOGNAME}}"), "tester");
    assert_eq!(value("X=${LOGNAME:+<${HOME}>}"), "</home/tester>");
    assert_eq!(value("X=${U:-a;b|c}"), "a;b|c");
}

#[test]
fn shellconf_unused_alternatives_are_not_evaluated() {
    // Neither the unset variable nor the command substitution is touched.
    assert_eq!(value("X=${LOGNAME:-$NOPE$(hostname)}"), "tester");
    assert_eq!(value("X=${NOPE:+$NOPE2}"), "");
    assert!(get("X=${LOGNAME:-${U:=x}}", "U").is_none());
}

#[test]
fn shellconf_dollar_alone_is_literal() {
    assert_eq!(value("X=a$"), "a$");
    assert_eq!(value("X=$/x"), "$/x");
    assert_eq!(value("X=a$ b=1"), "a$");
}

#[test]
fn shellconf_tilde_in_assignments() {
    let cases = [
        ("X=~", "/home/tester"),
        ("X=~/log", "/home/tester/log"),
        ("X=a:~/b:~", "a:/home/tester/b:/home/tester"),
        ("X=~/a:b", "/home/tester/a:b"),
        ("X=a~", "a~"),
        ("X=a=~/b", "a=~/b"),
        ("X=~\"/x\"", "~/x"),
        ("X=\"~\"/x", "~/x"),
        ("X=\\~/x", "~/x"),
        ("X=~$LOGNAME", "~tester"),
        ("X=${U:-~/log}", "/home/tester/log"),
        ("X=${U:-a:~/b}", "a:/home/tester/b"),
        ("X=~/a${U:-~/b}", "/home/tester/a/home/tester/b"),
        ("X=\"${U:-~}\"", "~"),
        ("X=${U:-\\~/a}", "~/a"),
        ("X=${U:-\"~\"/a}", "~/a"),
        ("X=~nosuchuser_dsync/x", "~nosuchuser_dsync/x"),
        ("X=~root/x", "/root/x"),
    ];
    for (text, want) in cases {
        if want.starts_with("/root") && passwd_root_home() != "/root" {
            continue;
        }
        assert_eq!(value(text), want, "{text}");
    }
}

fn passwd_root_home() -> String {
    run(&["bash", "-c", "echo ~root"])
}

#[test]
fn shellconf_tilde_in_other_words() {
    let vars = eval(": ${U:=~/b} ${V:=a:~/b}\nexport W=a:~/w\n");
    assert_eq!(vars.get("U"), Some("/home/tester/b"));
    assert_eq!(vars.get("V"), Some("a:~/b"));
    assert_eq!(vars.get("W"), Some("a:/home/tester/w"));
}

#[test]
fn shellconf_tilde_uses_home_even_empty() {
    assert_eq!(value("HOME=\nX=~/a"), "/a");
}

#[test]
fn shellconf_tilde_without_home_uses_passwd() {
    let mut vars = Vars::new();
    eval_str("t", "X=~", &mut vars).unwrap();
    assert_eq!(
        vars.get("X"),
        Some(run(&["bash", "-c", "unset HOME; echo ~"]).as_str())
    );
}
