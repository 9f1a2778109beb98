//! Command substitution, for the few commands configs really use to compute
//! a value (`MIRRORNAME=`hostname -f``). They run as real programs, without
//! a shell; anything else is refused when the file is parsed.

use std::process::{Command, Stdio};

use super::cursor::{Pos, SrcChar};
use super::lexer::Lexer;
use super::word::Word;
use super::{Fail, fail};

/// An allowed `$(...)` or `` `...` ``, checked when parsed.
#[derive(Debug)]
pub(super) struct Subst {
    /// The command and its arguments, expanded when run (`cat "$HOME/pw"`).
    pub argv: Vec<Word>,
    /// Position of the `$` or backquote.
    pub pos: Pos,
}

/// Parse the inside of a substitution and check it against the allowlist.
pub(super) fn parse(inner: &[SrcChar], pos: Pos, text: &str) -> Result<Subst, Fail> {
    match simple_command(inner) {
        Some(argv) if allowed(&argv) => Ok(Subst { argv, pos }),
        _ => fail(
            pos,
            format!(
                "command substitution '{}' is not allowed: only hostname, whoami, id -un and \
                 cat FILE are evaluated; write the value literally",
                short(text)
            ),
        ),
    }
}

/// The words of a single simple command, or None if there is anything else
/// (operators, several commands, comments, syntax errors).
fn simple_command(inner: &[SrcChar]) -> Option<Vec<Word>> {
    let mut lexer = Lexer::new(inner);
    let mut words = Vec::new();
    let mut ended = false;
    while let Some(c) = lexer.cur.peek() {
        match c {
            ' ' | '\t' => {}
            '\n' => ended = !words.is_empty(),
            _ if ended || super::word::is_word_end(c) || c == '#' => return None,
            _ => {
                words.push(lexer.word().ok()?);
                continue;
            }
        }
        lexer.cur.bump();
    }
    Some(words)
}

fn allowed(argv: &[Word]) -> bool {
    let Some(name) = argv.first().and_then(Word::literal) else {
        return false;
    };
    let args: Option<Vec<String>> = argv[1..].iter().map(Word::literal).collect();
    let args: Vec<&str> = args.iter().flatten().map(String::as_str).collect();
    let literal_args = args.len() == argv.len() - 1;
    match name.as_str() {
        "hostname" => {
            literal_args
                && matches!(
                    args.as_slice(),
                    [] | ["-f" | "--fqdn" | "--long" | "-s" | "--short" | "-d" | "--domain"]
                )
        }
        "whoami" => argv.len() == 1,
        "id" => {
            literal_args
                && matches!(
                    args.as_slice(),
                    ["-un" | "-nu"] | ["-u", "-n"] | ["-n", "-u"]
                )
        }
        // The path may be computed (`cat "$HOME/.pw"`); an option never.
        "cat" => argv.len() == 2 && argv[1].literal().is_none_or(|a| !a.starts_with('-')),
        _ => false,
    }
}

/// Shorten long substitution text for messages.
fn short(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(MAX).collect::<String>())
    }
}

/// Run an allowed command (argv already expanded) and return its output as
/// the shell would substitute it: trailing newlines removed.
pub(super) fn run(argv: &[String], pos: Pos) -> Result<String, Fail> {
    let shown = shell_words::join(argv);
    let mut command = Command::new(&argv[0]);
    if argv[0] == "cat" {
        // A computed path must not become an option.
        command.arg("--");
    }
    let output = command
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            return fail(
                pos,
                format!("cannot run '{shown}': {e}; write the value literally"),
            );
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        let detail = if stderr.is_empty() {
            String::new()
        } else {
            format!(": {stderr}")
        };
        return fail(
            pos,
            format!(
                "'{shown}' failed ({}){detail}; fix that or write the value literally",
                output.status
            ),
        );
    }
    // Bash drops NUL bytes from substituted output, too.
    let mut value = String::from_utf8_lossy(&output.stdout).replace('\0', "");
    while value.ends_with('\n') {
        value.pop();
    }
    Ok(value)
}
