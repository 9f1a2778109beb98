//! Words: quoting, `$` expansions and backquotes, parsed into [`Word`]s that
//! are expanded later (expansion depends on variables assigned earlier).

use super::cursor::{Cursor, Pos, SrcChar};
use super::subst::{self, Subst};
use super::{Fail, fail};

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
    fn empty(pos: Pos) -> Word {
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

/// Where a word is being read, which decides what ends it and how quotes act.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// A command word: ends at blanks and operators.
    Plain,
    /// The `w` in `${A:-w}`: ends at `}`. Inside double quotes (`"${A:-w}"`)
    /// single quotes are literal and backslash works as in double quotes.
    Brace { dq: bool },
}

/// Builds a word's parts, merging neighbouring literal characters.
#[derive(Default)]
struct Parts(Vec<Part>);

impl Parts {
    fn lit(&mut self, ch: char, quoted: bool) {
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
    fn quote_mark(&mut self) {
        if !matches!(self.0.last(), Some(Part::Lit { quoted: true, .. })) {
            self.0.push(Part::Lit {
                text: String::new(),
                quoted: true,
            });
        }
    }
}

pub(super) struct Lexer<'a> {
    pub cur: Cursor<'a>,
}

impl<'a> Lexer<'a> {
    pub fn new(chars: &'a [SrcChar]) -> Self {
        Lexer {
            cur: Cursor::new(chars),
        }
    }

    /// Read one command word; the cursor is at its first character.
    pub fn word(&mut self) -> Result<Word, Fail> {
        self.word_in(Ctx::Plain)
    }

    fn word_in(&mut self, ctx: Ctx) -> Result<Word, Fail> {
        let (start, pos) = (self.cur.index(), self.cur.pos());
        let dq = ctx == Ctx::Brace { dq: true };
        let mut parts = Parts::default();
        while let Some(c) = self.cur.peek() {
            let ends = match ctx {
                Ctx::Plain => is_word_end(c),
                Ctx::Brace { .. } => c == '}',
            };
            if ends {
                break;
            }
            match c {
                '\\' => {
                    self.cur.bump();
                    match self.cur.raw_bump() {
                        // A backslash at the very end of the file stays (bash does that).
                        None => parts.lit('\\', true),
                        Some(n) if dq && !matches!(n.ch, '$' | '`' | '"' | '\\' | '}') => {
                            parts.lit('\\', true);
                            parts.lit(n.ch, true);
                        }
                        Some(n) => parts.lit(n.ch, true),
                    }
                }
                '\'' if !dq => self.single_quoted(&mut parts)?,
                '"' => self.double_quoted(&mut parts)?,
                '$' => self.dollar(&mut parts, dq, true)?,
                '`' => self.backquoted(&mut parts, dq)?,
                _ => {
                    self.cur.bump();
                    parts.lit(c, dq);
                }
            }
        }
        Ok(Word {
            parts: parts.0,
            pos,
            raw: self.cur.text(start, self.cur.index()),
        })
    }

    fn single_quoted(&mut self, parts: &mut Parts) -> Result<(), Fail> {
        let open = self.cur.pos();
        self.cur.bump();
        parts.quote_mark();
        loop {
            match self.cur.raw_bump() {
                None => return fail(open, "unterminated single quote; add the closing '"),
                Some(c) if c.ch == '\'' => return Ok(()),
                Some(c) => parts.lit(c.ch, true),
            }
        }
    }

    fn double_quoted(&mut self, parts: &mut Parts) -> Result<(), Fail> {
        let open = self.cur.pos();
        let unterminated = "unterminated double quote; add the closing \"";
        self.cur.bump();
        parts.quote_mark();
        loop {
            match self.cur.peek() {
                None => return fail(open, unterminated),
                Some('"') => {
                    self.cur.bump();
                    return Ok(());
                }
                Some('\\') => {
                    self.cur.bump();
                    let Some(n) = self.cur.raw_bump() else {
                        return fail(open, unterminated);
                    };
                    if !matches!(n.ch, '$' | '`' | '"' | '\\') {
                        parts.lit('\\', true);
                    }
                    parts.lit(n.ch, true);
                }
                Some('$') => self.dollar(parts, true, false)?,
                Some('`') => self.backquoted(parts, true)?,
                Some(c) => {
                    self.cur.bump();
                    parts.lit(c, true);
                }
            }
        }
    }

    /// `$...` in any form; the cursor is at the `$`. `$'...'` and `$"..."`
    /// are quotes except directly inside double quotes (but bash does take
    /// them as quotes in `"${A:-$'\t'}"`, hence `quotes`).
    fn dollar(&mut self, parts: &mut Parts, in_dq: bool, quotes: bool) -> Result<(), Fail> {
        let (start, pos) = (self.cur.index(), self.cur.pos());
        self.cur.bump();
        match self.cur.peek() {
            Some('{') => return self.braced(parts, start, pos, in_dq),
            Some('(') if self.cur.peek_nth(1) == Some('(') => return arithmetic(pos),
            Some('[') => return arithmetic(pos),
            Some('(') => {
                self.cur.bump();
                let inner = self.paren_body(pos)?;
                let text = format!("$({})", inner.iter().map(|c| c.ch).collect::<String>());
                let s = subst::parse(&inner, pos, &text)?;
                parts.0.push(Part::Subst(Box::new(s)));
            }
            Some(c) if is_name_start(c) => {
                let name = self.name();
                let word = Word::empty(pos);
                let p = Param {
                    name,
                    op: Op::Plain,
                    colon: false,
                    word,
                    pos,
                };
                parts.0.push(Part::Param(Box::new(p)));
            }
            Some(c) if c.is_ascii_digit() || "@*#?-$!".contains(c) => return special(pos, c),
            Some('\'') if quotes => self.ansi_c(parts, pos)?,
            // $"..." is a translatable string; untranslated it is "...".
            Some('"') if quotes => self.double_quoted(parts)?,
            // A `$` that starts nothing is an ordinary character.
            _ => parts.lit('$', in_dq),
        }
        Ok(())
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.cur.peek().filter(|&c| is_name_char(c)) {
            self.cur.bump();
            name.push(c);
        }
        name
    }

    /// `${...}`; the cursor is at the `{`.
    fn braced(&mut self, parts: &mut Parts, start: usize, pos: Pos, dq: bool) -> Result<(), Fail> {
        self.cur.bump();
        let unterminated = "unterminated '${'; add the closing '}'";
        let length =
            self.cur.peek() == Some('#') && self.cur.peek_nth(1).is_some_and(is_name_start);
        if length {
            self.cur.bump();
        }
        match self.cur.peek() {
            None => return fail(pos, unterminated),
            Some(c) if c.is_ascii_digit() || "@*#?-$!".contains(c) => {
                if c != '!' || self.cur.peek_nth(1) == Some('}') {
                    return special(pos, c);
                }
                self.cur.bump();
                return self.bad_brace(start, pos);
            }
            Some(c) if !is_name_start(c) => {
                self.cur.bump();
                return self.bad_brace(start, pos);
            }
            _ => {}
        }
        let name = self.name();
        let colon = !length && self.cur.peek() == Some(':');
        if colon {
            self.cur.bump();
        }
        let op = match (length, self.cur.peek()) {
            (_, None) => return fail(pos, unterminated),
            (_, Some('}')) if !colon => None,
            (false, Some('-')) => Some(Op::Default),
            (false, Some('=')) => Some(Op::Assign),
            (false, Some('+')) => Some(Op::Alt),
            (false, Some('?')) => Some(Op::Error),
            _ => {
                self.cur.bump();
                return self.bad_brace(start, pos);
            }
        };
        let (op, word) = match op {
            None => (
                if length { Op::Length } else { Op::Plain },
                Word::empty(pos),
            ),
            Some(op) => {
                self.cur.bump();
                (op, self.word_in(Ctx::Brace { dq })?)
            }
        };
        if self.cur.peek() != Some('}') {
            return fail(pos, unterminated);
        }
        self.cur.bump();
        parts.0.push(Part::Param(Box::new(Param {
            name,
            op,
            colon,
            word,
            pos,
        })));
        Ok(())
    }

    fn bad_brace<T>(&self, start: usize, pos: Pos) -> Result<T, Fail> {
        let seen = self.cur.text(start, self.cur.index());
        fail(
            pos,
            format!(
                "unsupported parameter expansion '{seen}...'; use only ${{VAR}}, ${{VAR:-default}}, \
                 ${{VAR-default}}, ${{VAR:=default}}, ${{VAR=default}}, ${{VAR:+alt}}, ${{VAR+alt}}, \
                 ${{VAR:?message}}, ${{VAR?message}} or ${{#VAR}}"
            ),
        )
    }

    /// The inside of `$( ... )` up to the matching `)`, which is consumed.
    /// Only quoting and nesting are understood here; [`subst::parse`] judges the content.
    fn paren_body(&mut self, open: Pos) -> Result<Vec<SrcChar>, Fail> {
        let mut out = Vec::new();
        match self.skip_until(')', &mut out) {
            Some(_) => Ok(out),
            None => fail(
                open,
                "unterminated command substitution '$('; add the closing ')'",
            ),
        }
    }

    /// Copy raw characters into `out` until `close` ends the current quoting
    /// context (`)`, `'`, `"` or a backquote); return that closing character,
    /// not copied, or None at end of input.
    fn skip_until(&mut self, close: char, out: &mut Vec<SrcChar>) -> Option<SrcChar> {
        let mut depth = 0usize;
        while let Some(c) = self.cur.raw_bump() {
            if c.ch == close && depth == 0 {
                return Some(c);
            }
            out.push(c);
            let ok = match (close, c.ch) {
                // Nothing is special inside single quotes.
                ('\'', _) => true,
                (_, '\\') => self.copy_next(out),
                ('`', _) => true,
                ('"', '`') => self.copy_closed('`', out),
                ('"', '$') if self.cur.raw_peek() == Some('(') => {
                    let paren = self.cur.raw_bump()?;
                    out.push(paren);
                    self.copy_closed(')', out)
                }
                ('"', _) => true,
                (_, '\'' | '"' | '`') => self.copy_closed(c.ch, out),
                (_, '(') => {
                    depth += 1;
                    true
                }
                (_, ')') => {
                    depth -= 1;
                    true
                }
                _ => true,
            };
            if !ok {
                return None;
            }
        }
        None
    }

    /// Copy the character after a backslash; false at end of input.
    fn copy_next(&mut self, out: &mut Vec<SrcChar>) -> bool {
        self.cur.raw_bump().map(|n| out.push(n)).is_some()
    }

    /// [`Self::skip_until`], also copying the closing character.
    fn copy_closed(&mut self, close: char, out: &mut Vec<SrcChar>) -> bool {
        self.skip_until(close, out).map(|c| out.push(c)).is_some()
    }

    /// `` `...` ``; the cursor is at the opening backquote.
    fn backquoted(&mut self, parts: &mut Parts, in_dq: bool) -> Result<(), Fail> {
        let open = self.cur.pos();
        self.cur.bump();
        // Inside backquotes a backslash only escapes $, ` and \ (and " within
        // double quotes); the rest is then read again as a command.
        let mut inner = Vec::new();
        loop {
            let Some(c) = self.cur.bump() else {
                return fail(open, "unterminated backquote '`'; add the closing '`'");
            };
            match c.ch {
                '`' => break,
                '\\' => match self.cur.raw_bump() {
                    Some(n) if matches!(n.ch, '$' | '`' | '\\') || (in_dq && n.ch == '"') => {
                        inner.push(n)
                    }
                    Some(n) => inner.extend([c, n]),
                    None => inner.push(c),
                },
                _ => inner.push(c),
            }
        }
        let text = format!("`{}`", inner.iter().map(|c| c.ch).collect::<String>());
        let s = subst::parse(&inner, open, &text)?;
        parts.0.push(Part::Subst(Box::new(s)));
        Ok(())
    }

    /// `$'...'`; the cursor is at the `'`.
    fn ansi_c(&mut self, parts: &mut Parts, pos: Pos) -> Result<(), Fail> {
        self.cur.bump();
        parts.quote_mark();
        let unterminated = "unterminated $'...' string; add the closing '";
        loop {
            let Some(c) = self.cur.raw_bump() else {
                return fail(pos, unterminated);
            };
            match c.ch {
                '\'' => return Ok(()),
                '\\' => {
                    let Some(e) = self.cur.raw_bump() else {
                        return fail(pos, unterminated);
                    };
                    match self.ansi_escape(e.ch) {
                        Ok(Some(ch)) => parts.lit(ch, true),
                        Ok(None) => {
                            parts.lit('\\', true);
                            parts.lit(e.ch, true);
                        }
                        Err(message) => return fail(c.pos, message),
                    }
                }
                ch => parts.lit(ch, true),
            }
        }
    }

    /// The character `\e` stands for in `$'...'`, None if the backslash stays.
    fn ansi_escape(&mut self, e: char) -> Result<Option<char>, String> {
        let simple = match e {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'e' | 'E' => Some('\x1b'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            '\\' | '\'' | '"' | '?' => Some(e),
            _ => None,
        };
        if simple.is_some() {
            return Ok(simple);
        }
        let code = match e {
            '0'..='7' => Some(self.digits(8, 2, e.to_digit(8).expect("octal digit")).1),
            'x' | 'u' | 'U' => {
                let max = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                // Without any hex digit the backslash and letter stay as they are.
                let (n, value) = self.digits(16, max, 0);
                (n > 0).then_some(value)
            }
            'c' => match self.cur.raw_bump() {
                Some(c) if c.ch.is_ascii() => Some(c.ch as u32 & 0x1f),
                _ => return Err("'\\c' must be followed by an ASCII character in $'...'".into()),
            },
            _ => return Ok(None),
        };
        let Some(code) = code else { return Ok(None) };
        let byte_escape = matches!(e, '0'..='7' | 'x' | 'c');
        match char::from_u32(code) {
            Some(ch) if code != 0 && !(byte_escape && code > 0x7f) => Ok(Some(ch)),
            _ => Err(format!(
                "escape in $'...' gives byte {code:#x}, which a text value cannot hold here; \
                 write the character itself or use \\uXXXX"
            )),
        }
    }

    /// Up to `max` more digits in `radix` after `value`: (count read, value).
    fn digits(&mut self, radix: u32, max: u32, mut value: u32) -> (u32, u32) {
        let mut n = 0;
        while n < max {
            let Some(d) = self.cur.raw_peek().and_then(|c| c.to_digit(radix)) else {
                break;
            };
            self.cur.raw_bump();
            value = value * radix + d;
            n += 1;
        }
        (n, value)
    }
}

fn arithmetic<T>(pos: Pos) -> Result<T, Fail> {
    fail(
        pos,
        "arithmetic expansion '$((...))' is not supported; write the number literally",
    )
}

fn special<T>(pos: Pos, c: char) -> Result<T, Fail> {
    fail(
        pos,
        format!(
            "special parameter '${c}' is not supported: ftpsync.conf is sourced without \
             arguments or job state; write the value literally"
        ),
    )
}
