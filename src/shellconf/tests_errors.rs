//! Everything outside the subset is refused, at the right line and column.

use super::tests::base;
use super::*;

/// Evaluate `text`, expecting an error: (line, column, message).
fn err(text: &str) -> (usize, usize, String) {
    match eval_str("t.conf", text, &mut base()) {
        Ok(()) => panic!("{text:?} was accepted"),
        Err(e) => {
            assert_eq!(
                e.to_string(),
                format!("t.conf:{}:{}: {}", e.line, e.column, e.message)
            );
            (e.line, e.column, e.message)
        }
    }
}

/// The error is at `line:column` and its message contains `needle`.
#[track_caller]
fn check(text: &str, line: usize, column: usize, needle: &str) {
    let (l, c, message) = err(text);
    assert_eq!((l, c), (line, column), "{text:?}: {message}");
    assert!(
        message.contains(needle),
        "{text:?}: {message:?} lacks {needle:?}"
    );
}

#[test]
fn shellconf_error_display_format() {
    let e = eval_str("/etc/ftpsync.conf", "A=1\n  echo hi\n", &mut Vars::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/ftpsync.conf:2:3: unsupported command 'echo'; ftpsync.conf may only assign variables \
         (NAME=value), use export, comments and ${VAR:-default}"
    );
}

#[test]
fn shellconf_error_unset_variable() {
    check("A=1\nB=\"x $NOPE\"", 2, 6, "variable NOPE is not set");
    check("B=${NOPE}", 1, 3, "variable NOPE is not set");
    check("B=${#NOPE}", 1, 3, "variable NOPE is not set");
    check("B=$HOMEx", 1, 3, "variable HOMEx is not set");
    check(": $NOPE", 1, 3, "write ${NOPE:-default}");
    check("unset LOGNAME\nX=$LOGNAME", 2, 3, "LOGNAME");
}

#[test]
fn shellconf_error_required_variable() {
    check("X=${NOPE:?please set NOPE}", 1, 3, "NOPE: please set NOPE");
    check("E=\nX=${E:?}", 2, 3, "E: parameter null or not set");
    check("X=${NOPE?}", 1, 3, "NOPE: parameter not set");
    check("X=${N:?$LOGNAME says no}", 1, 3, "N: tester says no");
}

#[test]
fn shellconf_error_commands() {
    check("echo hi", 1, 1, "unsupported command 'echo'");
    check("A=1; source /etc/x", 1, 6, "unsupported command 'source'");
    check(". /etc/x", 1, 1, "unsupported command '.'");
    check("\t$CMD", 1, 2, "unsupported command '$CMD'");
    check("A=1 echo hi", 1, 5, "unsupported command 'echo'");
    check(
        "local A=1",
        1,
        1,
        "'local' can only be used inside a function",
    );
    check("FOO = bar", 1, 1, "must not have blanks around '='");
    check("A\\=1", 1, 1, "unsupported command 'A\\=1'");
    check("\"\"A=1", 1, 1, "unsupported command");
    check("1A=2", 1, 1, "unsupported command '1A=2'");
}

#[test]
fn shellconf_error_assignment_before_builtin() {
    check(
        "A=1 export B=2",
        1,
        1,
        "'A=1' in front of 'export' would only apply to that command",
    );
    check("X=y :", 1, 1, "put it on a line of its own");
}

#[test]
fn shellconf_error_keywords() {
    check(
        "if true; then A=1; fi",
        1,
        1,
        "unsupported shell construct 'if'",
    );
    check("A=1\n  for x in a; do :; done", 2, 3, "'for'");
    check("while :; do :; done", 1, 1, "'while'");
    check("case x in", 1, 1, "'case'");
    check("function f", 1, 1, "'function'");
    check("{ A=1; }", 1, 1, "'{'");
    check("[[ -n x ]]", 1, 1, "'[['");
    check("! A=1", 1, 1, "'!'");
    assert!(err("fi").2.ends_with("ftpsync.conf may only assign variables (NAME=value), use export, comments and ${VAR:-default}"));
}

#[test]
fn shellconf_error_operators() {
    check("A=1 > /dev/null", 1, 5, "'>'");
    check("A=1 2>x", 1, 6, "redirections");
    check("A=1 </dev/null", 1, 5, "'<'");
    check("A=1 | B=2", 1, 5, "'|' (pipelines");
    check("A=1 && B=2", 1, 5, "'&&'");
    check("A=1 || B=2", 1, 5, "'||'");
    check("A=1 &", 1, 5, "'&' (background");
    check("A=1\n(B=2)", 2, 1, "subshells");
    check("A=1 )", 1, 5, "')'");
    check("A=1;;", 1, 4, "';;'");
    check("; A=1", 1, 1, "unexpected ';'");
    check("A=1; ;", 1, 6, "unexpected ';'");
}

#[test]
fn shellconf_error_arrays_and_functions() {
    check("A=(1 2)", 1, 3, "arrays are not supported");
    check("A+=(x)", 1, 4, "arrays");
    check(
        "f() { A=1; }",
        1,
        1,
        "function definitions are not supported",
    );
    check("f () { A=1; }", 1, 1, "function definitions");
    check(
        "X=${A[1]}",
        1,
        3,
        "unsupported parameter expansion '${A[...'",
    );
}

#[test]
fn shellconf_error_unterminated_quotes() {
    check("A=1\nB='abc\nC=2\n", 2, 3, "unterminated single quote");
    check("B=x\"abc", 1, 4, "unterminated double quote");
    check("B=\"a\\", 1, 3, "unterminated double quote");
    check("B=$'abc", 1, 3, "unterminated $'");
    check("B=`hostname", 1, 3, "unterminated backquote");
    check("B=$(hostname", 1, 3, "unterminated command substitution");
    check("B=$(cat \"x)", 1, 3, "unterminated command substitution");
    check(
        "B=$(cat $(hostname)",
        1,
        3,
        "unterminated command substitution",
    );
    check("B=${A:-x", 1, 3, "unterminated '${'");
    // Like bash: the second quote opens a string inside the expansion.
    check("B=\"${A:-x\"", 1, 10, "unterminated double quote");
    check("B=\"${A:-x}", 1, 3, "unterminated double quote");
}

#[test]
fn shellconf_error_bad_parameter_expansions() {
    check("X=${A%.x}", 1, 3, "'${A%...'");
    check("X=${A#x}", 1, 3, "'${A#...'");
    check("X=${A/a/b}", 1, 3, "'${A/...'");
    check("X=${A:1:2}", 1, 3, "'${A:1...'");
    check("X=${A^^}", 1, 3, "'${A^...'");
    check("X=${!A}", 1, 3, "'${!...'");
    check("X=${}", 1, 3, "'${}...'");
    check("X=${ A}", 1, 3, "'${ ...'");
    check("X=${#A:-b}", 1, 3, "'${#A:...'");
    check("X=${A:}", 1, 3, "'${A:}...'");
    assert!(err("X=${A%x}").2.ends_with("${VAR?message} or ${#VAR}"));
}

#[test]
fn shellconf_error_special_parameters() {
    for (text, column) in [
        ("X=$$", 3),
        ("X=\"$1\"", 4),
        ("X=$@", 3),
        ("X=$?", 3),
        ("X=${#}", 3),
        ("X=$#", 3),
    ] {
        check(text, 1, column, "special parameter");
    }
    check("X=${10}", 1, 3, "'$1'");
    check("X=$!", 1, 3, "'$!'");
    check("X=${!}", 1, 3, "'$!'");
}

#[test]
fn shellconf_error_arithmetic() {
    check("X=\"a $[1+2]\"", 1, 6, "write $((...))");
    check("A=1\nX=$((1 / 0))", 2, 3, "$((1 / 0)): division by 0");
    check("X=$((A = 2))", 1, 3, "would assign");
    check("X=$((1 + 2)", 1, 3, "unterminated '$(('");
    check("X=$(( NOPE * 2 ))", 1, 3, "set NOPE before this line");
}

#[test]
fn shellconf_error_command_substitution_not_allowed() {
    let (l, c, message) = err("A=1\nX=$(uname -n)");
    assert_eq!((l, c), (2, 3));
    assert_eq!(
        message,
        "command substitution '$(uname -n)' is not allowed: only hostname, whoami, id -un and cat FILE \
         are evaluated; write the value literally"
    );
    check("X=`date`", 1, 3, "'`date`' is not allowed");
    check("X=\"a $(hostname | tr a b)\"", 1, 6, "not allowed");
    check("X=$(hostname; hostname)", 1, 3, "not allowed");
    check("X=$(hostname\nhostname)", 1, 3, "not allowed");
    check("X=$(hostname -i)", 1, 3, "not allowed");
    check("X=$(hostname $U)", 1, 3, "not allowed");
    check("X=$(whoami x)", 1, 3, "not allowed");
    check("X=$(id -u)", 1, 3, "not allowed");
    check("X=$(cat)", 1, 3, "not allowed");
    check("X=$(cat a b)", 1, 3, "not allowed");
    check("X=$(cat -n a)", 1, 3, "not allowed");
    check("X=$(cat <a)", 1, 3, "not allowed");
    check("X=$(A=1 hostname)", 1, 3, "not allowed");
    check("X=$(\"$CMD\")", 1, 3, "not allowed");
    check("X=`echo \\`hostname\\``", 1, 3, "not allowed");
    check("X=$(echo $(hostname))", 1, 3, "not allowed");
}

#[test]
fn shellconf_error_command_substitution_is_checked_before_running() {
    // The unallowed second line is found at parse time, before `cat` could run.
    check("X=$(cat /nonexistent/dsync)\nY=$(ls)", 2, 3, "not allowed");
}

#[test]
fn shellconf_error_command_substitution_long_text_is_shortened() {
    let text = format!("X=$(echo {})", "a".repeat(100));
    let message = err(&text).2;
    assert!(
        message.contains(&format!("'$(echo {}...'", "a".repeat(53))),
        "{message}"
    );
}

#[test]
fn shellconf_error_failing_allowed_command() {
    let (l, c, message) = err("\n  X=\"$(cat /nonexistent/dsync-test)\"");
    assert_eq!((l, c), (2, 6));
    assert!(
        message.starts_with("'cat /nonexistent/dsync-test' failed (exit status: 1): "),
        "{message}"
    );
    assert!(
        message.ends_with("; fix that or write the value literally"),
        "{message}"
    );
}

#[test]
fn shellconf_error_unset_variable_inside_substitution() {
    check("X=$(cat \"$NOPE\")", 1, 10, "variable NOPE is not set");
}

#[test]
fn shellconf_error_declaration_arguments() {
    check("export -n A", 1, 8, "options of 'export' are not supported");
    check("export 1A", 1, 8, "'1A' is not a valid variable name");
    check("readonly -x A=1", 1, 10, "options of 'readonly'");
    check("export $A", 1, 8, "not a valid variable name");
    check("unset -f f", 1, 7, "options of 'unset'");
    check("unset A-B", 1, 7, "'A-B' is not a valid variable name");
}

#[test]
fn shellconf_error_ansi_c_bytes() {
    check("X=$'a\\xe9'", 1, 6, "byte 0xe9");
    check("X=$'a\\0'", 1, 6, "byte 0x0");
}

#[test]
fn shellconf_error_columns_count_characters() {
    check("A=\"ééé\" echo", 1, 9, "'echo'");
    check("A=1\r\nB=2\r\n\techo\r\n", 3, 2, "'echo'");
}

#[test]
fn shellconf_error_positions_after_continuation() {
    check("A=1 \\\n  B=2 \\\n  echo", 3, 3, "'echo'");
    check("A=\"x\\\ny\" B=$NOPE", 2, 6, "NOPE");
}

#[test]
fn shellconf_error_static_errors_come_before_evaluation() {
    // Line 1 would fail when run; line 2 cannot even be parsed.
    check("A=$NOPE\nif", 2, 1, "'if'");
}

#[test]
fn shellconf_error_nothing_assigned_after_failure() {
    let mut vars = base();
    assert!(eval_str("t", "A=1\nB=$NOPE\nC=3", &mut vars).is_err());
    // Like bash, what ran before the failing line has happened.
    assert_eq!(vars.get("A"), Some("1"));
    assert_eq!(vars.get("C"), None);
}
