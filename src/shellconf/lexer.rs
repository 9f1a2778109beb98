//! Reading words: quoting, `$` expansions and parameter expansion forms.
//! Command substitution and `$'...'` are in [`super::lexer_subst`] and
//! [`super::ansi_c`].

use super::cursor::{Cursor, Pos, SrcChar};
use super::subst;
use super::word::{Arith, Op, Param, Part, Parts, Word, is_name_char, is_name_start, is_word_end};
use super::{Fail, fail};

/// Where a word is being read, which decides what ends it and how quotes act.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// A command word: ends at blanks and operators.
    Plain,
    /// The `w` in `${A:-w}`: ends at `}`. Inside double quotes (`"${A:-w}"`)
    /// single quotes are literal and backslash works as in double quotes.
    Brace { dq: bool },
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
            Some('(') if self.cur.peek_nth(1) == Some('(') => return self.arithmetic(parts, pos),
            Some('[') => return old_arithmetic(pos),
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

    /// `$(( EXPR ))`; the cursor is at the first `(`. EXPR is read as if
    /// in double quotes (expansions, `\`), up to the `))` that closes it.
    fn arithmetic(&mut self, parts: &mut Parts, pos: Pos) -> Result<(), Fail> {
        self.cur.bump();
        self.cur.bump();
        let unterminated = "unterminated '$(('; add the closing '))'";
        let (start, expr_pos) = (self.cur.index(), self.cur.pos());
        let mut inner = Parts::default();
        let mut depth = 0usize;
        loop {
            match self.cur.peek() {
                None => return fail(pos, unterminated),
                Some(')') if depth == 0 => {
                    let end = self.cur.index();
                    self.cur.bump();
                    if self.cur.peek() != Some(')') {
                        return fail(pos, unterminated);
                    }
                    self.cur.bump();
                    let expr = Word {
                        parts: inner.0,
                        pos: expr_pos,
                        raw: self.cur.text(start, end),
                    };
                    parts.0.push(Part::Arith(Box::new(Arith { expr, pos })));
                    return Ok(());
                }
                Some(c @ ('(' | ')')) => {
                    depth = if c == '(' { depth + 1 } else { depth - 1 };
                    self.cur.bump();
                    inner.lit(c, true);
                }
                Some('\\') => {
                    self.cur.bump();
                    let Some(n) = self.cur.raw_bump() else {
                        return fail(pos, unterminated);
                    };
                    if !matches!(n.ch, '$' | '`' | '"' | '\\') {
                        inner.lit('\\', true);
                    }
                    inner.lit(n.ch, true);
                }
                Some('"') => self.double_quoted(&mut inner)?,
                Some('$') => self.dollar(&mut inner, true, false)?,
                Some('`') => self.backquoted(&mut inner, true)?,
                Some(c) => {
                    self.cur.bump();
                    inner.lit(c, true);
                }
            }
        }
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
}

fn old_arithmetic<T>(pos: Pos) -> Result<T, Fail> {
    fail(
        pos,
        "the old arithmetic form '$[...]' is not supported; write $((...))",
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
