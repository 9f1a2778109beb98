//! The script level: splitting the file into commands and deciding, for each,
//! whether it is one we evaluate.

use super::cursor::{Pos, SrcChar};
use super::lexer::Lexer;
use super::word::{Part, Word, is_name, is_name_char, is_name_start};
use super::{ALLOWED, Fail, fail};

/// A command we evaluate.
#[derive(Debug)]
pub(super) enum Command {
    /// `A=1 B=2`
    Assign(Vec<Assignment>),
    /// `export A=1 B`
    Export(Vec<DeclArg>),
    /// `readonly A=1 B`; the read-only mark itself is not kept.
    Readonly(Vec<DeclArg>),
    /// `unset A B`
    Unset(Vec<String>),
    /// `:` or `true`; the arguments are still expanded (`: ${A:=b}` assigns).
    Noop(Vec<Word>),
}

#[derive(Debug)]
pub(super) struct Assignment {
    pub name: String,
    /// `A+=w`
    pub append: bool,
    pub value: Word,
    /// Where the whole `NAME=value` word starts, and its text, for messages.
    pub pos: Pos,
    pub raw: String,
}

/// An argument of `export` or `readonly`.
#[derive(Debug)]
pub(super) enum DeclArg {
    Assign(Assignment),
    Name(String),
}

/// Reserved words: the start of a compound command or function we do not support.
const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while", "until", "do",
    "done", "in", "function", "time", "coproc", "{", "}", "!", "[[", "]]",
];

pub(super) fn parse_script(chars: &[SrcChar]) -> Result<Vec<Command>, Fail> {
    let mut lexer = Lexer::new(chars);
    let mut commands = Vec::new();
    let mut words: Vec<Word> = Vec::new();
    // Whether the last word ended right here, with no blank in between (`A=(`).
    let mut adjacent = false;
    loop {
        let pos = lexer.cur.pos();
        let Some(c) = lexer.cur.peek() else { break };
        match c {
            ' ' | '\t' => {
                lexer.cur.bump();
                adjacent = false;
                continue;
            }
            '\n' => {
                lexer.cur.bump();
                commands.extend(command(std::mem::take(&mut words))?);
            }
            ';' => {
                lexer.cur.bump();
                if lexer.cur.peek() == Some(';') {
                    return operator(pos, "';;'", "case is not supported");
                }
                if words.is_empty() {
                    return fail(
                        pos,
                        format!("unexpected ';' with no command before it; remove it ({ALLOWED})"),
                    );
                }
                commands.extend(command(std::mem::take(&mut words))?);
            }
            // A '#' here is at the start of a word: a comment. Bash does not
            // join lines inside comments, hence the raw reads.
            '#' => {
                while lexer.cur.raw_peek().is_some_and(|c| c != '\n') {
                    lexer.cur.raw_bump();
                }
            }
            '(' => return paren(pos, &words, adjacent),
            '&' | '|' | '<' | '>' | ')' => return other_operator(&mut lexer, pos, c),
            _ => {
                words.push(lexer.word()?);
                adjacent = true;
                continue;
            }
        }
        adjacent = false;
    }
    commands.extend(command(words)?);
    Ok(commands)
}

fn operator<T>(pos: Pos, op: &str, what: &str) -> Result<T, Fail> {
    fail(
        pos,
        format!("unsupported shell operator {op} ({what}); {ALLOWED}"),
    )
}

fn other_operator<T>(lexer: &mut Lexer, pos: Pos, c: char) -> Result<T, Fail> {
    lexer.cur.bump();
    let doubled = lexer.cur.peek() == Some(c);
    match (c, doubled) {
        ('&', true) => operator(pos, "'&&'", "conditional execution is not supported"),
        ('&', false) => operator(pos, "'&'", "background commands are not supported"),
        ('|', true) => operator(pos, "'||'", "conditional execution is not supported"),
        ('|', false) => operator(pos, "'|'", "pipelines are not supported"),
        ('<' | '>', _) => operator(pos, &format!("'{c}'"), "redirections are not supported"),
        _ => operator(pos, "')'", "subshells are not supported"),
    }
}

fn paren<T>(pos: Pos, words: &[Word], adjacent: bool) -> Result<T, Fail> {
    if adjacent
        && let Some(Part::Lit {
            text,
            quoted: false,
        }) = words.last().and_then(|w| w.parts.first())
        && words.last().is_some_and(|w| w.parts.len() == 1)
        && split_assignment(text).is_some_and(|(_, _, rest)| rest.is_empty())
    {
        return fail(
            pos,
            format!("arrays are not supported; write a plain string value instead ({ALLOWED})"),
        );
    }
    if let [w] = words
        && w.unquoted_literal().is_some_and(is_name)
    {
        return fail(
            w.pos,
            format!("function definitions are not supported; {ALLOWED}"),
        );
    }
    operator(pos, "'('", "subshells are not supported")
}

/// `NAME=rest` or `NAME+=rest` at the start of unquoted text: (name, append, rest).
fn split_assignment(text: &str) -> Option<(&str, bool, &str)> {
    let end = text.find(|c| !is_name_char(c)).unwrap_or(text.len());
    let name = &text[..end];
    if !name.starts_with(is_name_start) {
        return None;
    }
    let rest = &text[end..];
    if let Some(value) = rest.strip_prefix('=') {
        Some((name, false, value))
    } else {
        rest.strip_prefix("+=").map(|value| (name, true, value))
    }
}

/// Whether the word is an assignment (the `NAME=` must be unquoted).
fn is_assignment(word: &Word) -> bool {
    matches!(word.parts.first(), Some(Part::Lit { text, quoted: false }) if split_assignment(text).is_some())
}

/// Split an assignment word (see [`is_assignment`]) into name and value.
fn into_assignment(word: Word) -> Assignment {
    let (pos, raw) = (word.pos, word.raw);
    let mut parts = word.parts.into_iter();
    let Some(Part::Lit {
        text,
        quoted: false,
    }) = parts.next()
    else {
        unreachable!("checked by is_assignment")
    };
    let (name, append, rest) = split_assignment(&text).expect("checked by is_assignment");
    let mut value = Vec::new();
    if !rest.is_empty() {
        value.push(Part::Lit {
            text: rest.to_string(),
            quoted: false,
        });
    }
    value.extend(parts);
    let value = Word {
        parts: value,
        pos,
        raw: String::new(),
    };
    Assignment {
        name: name.to_string(),
        append,
        value,
        pos,
        raw,
    }
}

/// Turn the words of one simple command into a [`Command`], or refuse it.
fn command(words: Vec<Word>) -> Result<Option<Command>, Fail> {
    let mut words = words.into_iter().peekable();
    let mut assignments = Vec::new();
    while let Some(word) = words.next_if(is_assignment) {
        assignments.push(into_assignment(word));
    }
    let Some(cmd) = words.next() else {
        return Ok((!assignments.is_empty()).then_some(Command::Assign(assignments)));
    };
    let args: Vec<Word> = words.collect();
    if let Some(keyword) = cmd.unquoted_literal().filter(|k| KEYWORDS.contains(k)) {
        return fail(
            cmd.pos,
            format!("unsupported shell construct '{keyword}'; {ALLOWED}"),
        );
    }
    let name = cmd.literal().unwrap_or_default();
    if !matches!(
        name.as_str(),
        "export" | "readonly" | "unset" | ":" | "true"
    ) {
        return unsupported_command(&cmd, &args);
    }
    if let Some(a) = assignments.first() {
        // Bash would assign only for the duration of that one command.
        return fail(
            a.pos,
            format!(
                "'{}' in front of '{name}' would only apply to that command; put it on a line of its own",
                a.raw
            ),
        );
    }
    Ok(Some(match name.as_str() {
        "export" => Command::Export(declaration_args(&name, args)?),
        "readonly" => Command::Readonly(declaration_args(&name, args)?),
        "unset" => Command::Unset(unset_args(args)?),
        _ => Command::Noop(args),
    }))
}

fn unsupported_command<T>(cmd: &Word, args: &[Word]) -> Result<T, Fail> {
    let name = cmd.literal().unwrap_or_default();
    if name == "local" {
        return fail(
            cmd.pos,
            "'local' can only be used inside a function; write NAME=value instead",
        );
    }
    if is_name(&name)
        && args
            .first()
            .and_then(Word::literal)
            .is_some_and(|a| a.starts_with('='))
    {
        return fail(
            cmd.pos,
            format!(
                "'{name}' is run as a command: an assignment must not have blanks around '='; write {name}=value"
            ),
        );
    }
    fail(
        cmd.pos,
        format!("unsupported command '{}'; {ALLOWED}", cmd.raw),
    )
}

/// Arguments of `export` and `readonly`: `NAME=value` or `NAME`.
fn declaration_args(cmd: &str, args: Vec<Word>) -> Result<Vec<DeclArg>, Fail> {
    let usage = format!("write {cmd} NAME or {cmd} NAME=value");
    args.into_iter()
        .map(|word| {
            if is_assignment(&word) {
                return Ok(DeclArg::Assign(into_assignment(word)));
            }
            match word.literal() {
                Some(name) if is_name(&name) => Ok(DeclArg::Name(name)),
                Some(o) if o.starts_with('-') => fail(
                    word.pos,
                    format!("options of '{cmd}' are not supported; {usage}"),
                ),
                _ => fail(
                    word.pos,
                    format!("'{}' is not a valid variable name; {usage}", word.raw),
                ),
            }
        })
        .collect()
}

fn unset_args(args: Vec<Word>) -> Result<Vec<String>, Fail> {
    let mut names = Vec::new();
    for word in args {
        match word.literal() {
            // -v: variables, which is all we have anyway.
            Some(o) if o == "-v" => {}
            Some(name) if is_name(&name) => names.push(name),
            Some(o) if o.starts_with('-') => {
                return fail(
                    word.pos,
                    "options of 'unset' other than -v are not supported; write unset NAME",
                );
            }
            _ => {
                return fail(
                    word.pos,
                    format!(
                        "'{}' is not a valid variable name; write unset NAME",
                        word.raw
                    ),
                );
            }
        }
    }
    Ok(names)
}
