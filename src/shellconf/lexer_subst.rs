//! Finding the end of `$(...)` and `` `...` ``; what is inside is judged
//! by [`subst::parse`].

use super::cursor::{Pos, SrcChar};
use super::lexer::Lexer;
use super::subst;
use super::word::{Part, Parts};
use super::{Fail, fail};

impl Lexer<'_> {
    /// The inside of `$( ... )` up to the matching `)`, which is consumed.
    /// Only quoting and nesting are understood here; [`subst::parse`] judges the content.
    pub(super) fn paren_body(&mut self, open: Pos) -> Result<Vec<SrcChar>, Fail> {
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
    pub(super) fn backquoted(&mut self, parts: &mut Parts, in_dq: bool) -> Result<(), Fail> {
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
}
