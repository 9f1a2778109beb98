//! Words as parsed: literal text with its quoting, and the expansions in
//! them, evaluated later (expansion depends on variables assigned earlier).

use super::cursor::Pos;
use super::subst::Subst;

/// One shell word, before expansion.
#[derive(Debug)]
pub(super) struct Word {
    pub parts: Vec<Part>,
    pub pos: Pos,
    /// The source text, for messages.
    pub raw: String,
}

#[derive(Debug)]
pub(super) enum Part {
    /// Literal text. Quoted text is never tilde-expanded nor a keyword; an
    /// empty quoted part records that quotes were there (`""A=1` is no assignment).
    Lit {
        text: String,
        quoted: bool,
    },
    Param(Box<Param>),
    Subst(Box<Subst>),
    /// `$(( EXPR ))`: `expr` is expanded as in double quotes, then evaluated.
    Arith(Box<Arith>),
}

#[derive(Debug)]
pub(super) struct Arith {
    pub expr: Word,
    /// Position of the `$`.
    pub pos: Pos,
}

/// `$NAME`, `${NAME}`, `${NAME:-word}`, `${#NAME}` ...
#[derive(Debug)]
pub(super) struct Param {
    pub name: String,
    pub op: Op,
    /// `:` in `${A:-w}`: an empty value counts as unset.
    pub colon: bool,
    /// The `w` of `${A-w}`; empty for `Plain` and `Length`.
    pub word: Word,
    /// Position of the `$`.
    pub pos: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Plain,
    Length,
    Default,
    Assign,
    Alt,
    Error,
}

impl Word {
    pub fn empty(pos: Pos) -> Word {
        Word {
            parts: Vec::new(),
            pos,
            raw: String::new(),
        }
    }

    /// The text if the word has no expansions, quoted or not.
    pub fn literal(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit { text, .. } => out.push_str(text),
                _ => return None,
            }
        }
        Some(out)
    }

    /// The text if the word is nothing but unquoted literal characters, as
    /// reserved words (`if`, `{`) must be.
    pub fn unquoted_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [
                Part::Lit {
                    text,
                    quoted: false,
                },
            ] => Some(text),
            _ => None,
        }
    }
}

pub(super) fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

pub(super) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

pub(super) fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
}

/// Characters that end an unquoted word at command level.
pub(super) fn is_word_end(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | ';' | '&' | '|' | '(' | ')' | '<' | '>'
    )
}

/// Builds a word's parts, merging neighbouring literal characters.
#[derive(Default)]
pub(super) struct Parts(pub Vec<Part>);

impl Parts {
    pub fn lit(&mut self, ch: char, quoted: bool) {
        if let Some(Part::Lit { text, quoted: q }) = self.0.last_mut()
            && *q == quoted
        {
            text.push(ch);
            return;
        }
        self.0.push(Part::Lit {
            text: ch.to_string(),
            quoted,
        });
    }

    /// Record that a quoted part starts here, even if it turns out empty.
    pub fn quote_mark(&mut self) {
        if !matches!(self.0.last(), Some(Part::Lit { quoted: true, .. })) {
            self.0.push(Part::Lit {
                text: String::new(),
                quoted: true,
            });
        }
    }
}
