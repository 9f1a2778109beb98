//! ANSI-C quoting, `$'...'`.

use super::cursor::Pos;
use super::lexer::Lexer;
use super::word::Parts;
use super::{Fail, fail};

impl Lexer<'_> {
    /// `$'...'`; the cursor is at the `'`.
    pub(super) fn ansi_c(&mut self, parts: &mut Parts, pos: Pos) -> Result<(), Fail> {
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
