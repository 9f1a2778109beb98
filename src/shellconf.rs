//! Reading a bash-sourced configuration file (Debian ftpsync's `ftpsync.conf`)
//! without running a shell.
//!
//! The real ftpsync does `set -u; . ftpsync.conf`. We evaluate the subset of
//! bash that such files really contain — assignments, `export`, quoting,
//! `${VAR:-default}` and friends, and a few harmless command substitutions —
//! with bash's semantics, and reject everything else with an error naming
//! `file:line:column`, so a config never silently means something different
//! here than under ftpsync.
//!
//! Supported: comments, `;`, `\`-newline continuations, CRLF line ends;
//! `NAME=word` (several per line), `NAME+=word`, `export`, `readonly` (the
//! read-only mark is not kept), `unset`, `:` and `true`; single, double and
//! `$'...'` quotes; `$NAME`, `${NAME}`, `${NAME:-w}`, `${NAME-w}`, `:=`, `=`,
//! `:+`, `+`, `:?`, `?`, `${#NAME}`; `~` and `~user` as in assignments; and
//! `$(...)` / backquotes only for `hostname [-f|-s|-d|...]`, `whoami`,
//! `id -un` and `cat FILE`; `$(( EXPR ))`, bash's integer arithmetic (no
//! assignments inside it).
//!
//! The whole file is parsed before anything is evaluated: a construct we do
//! not support is reported even if an earlier line would fail at run time,
//! and no command substitution runs for a file that is rejected anyway.

mod ansi_c;
mod arith;
mod cursor;
mod eval;
mod lexer;
mod lexer_subst;
mod parse;
mod subst;
mod vars;
mod word;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bash;
#[cfg(test)]
mod tests_commands;
#[cfg(test)]
mod tests_errors;

use std::path::Path;

pub use vars::Vars;

/// What every "unsupported" message ends with: what the file may contain.
const ALLOWED: &str =
    "ftpsync.conf may only assign variables (NAME=value), use export, comments and ${VAR:-default}";

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ShellConfError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// An error before the file name is attached: the submodules only know positions.
#[derive(Debug)]
struct Fail {
    pos: cursor::Pos,
    message: String,
}

fn fail<T>(pos: cursor::Pos, message: impl Into<String>) -> Result<T, Fail> {
    Err(Fail {
        pos,
        message: message.into(),
    })
}

/// Evaluate `text` (named `file` in messages) as a bash-sourced config, updating `vars`.
///
/// Nothing is evaluated if the text has a construct we do not support. An
/// error while evaluating (an unset variable, a failing `hostname`) stops at
/// that command, leaving the assignments before it done, as bash would.
pub fn eval_str(file: &str, text: &str, vars: &mut Vars) -> Result<(), ShellConfError> {
    let chars = cursor::decode(text);
    parse::parse_script(&chars)
        .and_then(|commands| eval::run(&commands, vars))
        .map_err(|f| ShellConfError {
            file: file.to_string(),
            line: f.pos.line,
            column: f.pos.column,
            message: f.message,
        })
}

/// Read and evaluate a file. I/O errors also become [`ShellConfError`]
/// (line 0, column 0) naming the path.
///
/// Bytes that are not UTF-8 are replaced (U+FFFD) rather than rejected: bash
/// does not care about encodings, and such bytes are usually in comments.
pub fn eval_file(path: &Path, vars: &mut Vars) -> Result<(), ShellConfError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ShellConfError {
        file: file.clone(),
        line: 0,
        column: 0,
        message: format!("cannot read the file: {e}; check that it exists and is readable"),
    })?;
    eval_str(&file, &String::from_utf8_lossy(&bytes), vars)
}

/// The line (1-based) on which `text` last assigns `name` (`NAME=`, `NAME+=`,
/// `export NAME=`), if it does: where a message about a setting points.
pub fn assignment_line(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start().trim_start_matches('\u{feff}');
            let t = t.strip_prefix("export ").map(str::trim_start).unwrap_or(t);
            t.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('=') || rest.starts_with("+="))
        })
        .map(|(i, _)| i + 1)
        .last()
}
