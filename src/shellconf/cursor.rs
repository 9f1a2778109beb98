//! Characters with their source positions, and a cursor that reads them the
//! way bash's input layer does.

/// 1-based line and column; columns count characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pos {
    pub line: usize,
    pub column: usize,
}

/// One character and where it came from. Text that the lexer rebuilds (the
/// inside of backquotes) keeps the original positions this way.
#[derive(Debug, Clone, Copy)]
pub(super) struct SrcChar {
    pub ch: char,
    pub pos: Pos,
}

/// Split `text` into positioned characters, turning CRLF into LF so that
/// files edited on Windows read as intended (bash would keep the `\r`).
pub(super) fn decode(text: &str) -> Vec<SrcChar> {
    let mut out = Vec::with_capacity(text.len());
    let (mut line, mut column) = (1, 1);
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '\r' && chars.peek() == Some(&'\n') {
            // The '\n' takes the '\r''s place; its column is where the line ended.
            continue;
        }
        out.push(SrcChar {
            ch,
            pos: Pos { line, column },
        });
        if ch == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    out
}

/// Reads characters, hiding backslash-newline pairs (line continuations)
/// from the "logical" methods. The `raw_` methods see every character: they
/// are for single quotes and comments, where bash does not join lines.
pub(super) struct Cursor<'a> {
    chars: &'a [SrcChar],
    i: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(chars: &'a [SrcChar]) -> Self {
        Cursor { chars, i: 0 }
    }

    fn is_continuation(&self, i: usize) -> bool {
        matches!(
            (self.chars.get(i), self.chars.get(i + 1)),
            (Some(a), Some(b)) if a.ch == '\\' && b.ch == '\n'
        )
    }

    /// Index of the `n`th logical character from `i` on.
    fn logical(&self, mut i: usize, n: usize) -> Option<usize> {
        let mut k = 0;
        loop {
            while self.is_continuation(i) {
                i += 2;
            }
            if i >= self.chars.len() {
                return None;
            }
            if k == n {
                return Some(i);
            }
            i += 1;
            k += 1;
        }
    }

    pub fn peek(&self) -> Option<char> {
        self.peek_nth(0)
    }

    pub fn peek_nth(&self, n: usize) -> Option<char> {
        self.logical(self.i, n).map(|i| self.chars[i].ch)
    }

    pub fn bump(&mut self) -> Option<SrcChar> {
        let i = self.logical(self.i, 0)?;
        self.i = i + 1;
        Some(self.chars[i])
    }

    pub fn raw_peek(&self) -> Option<char> {
        self.chars.get(self.i).map(|c| c.ch)
    }

    pub fn raw_bump(&mut self) -> Option<SrcChar> {
        let c = *self.chars.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    /// Position of the next logical character (or of the end of input).
    pub fn pos(&self) -> Pos {
        match self.logical(self.i, 0) {
            Some(i) => self.chars[i].pos,
            None => self.end_pos(),
        }
    }

    fn end_pos(&self) -> Pos {
        match self.chars.last() {
            None => Pos { line: 1, column: 1 },
            Some(c) if c.ch == '\n' => Pos {
                line: c.pos.line + 1,
                column: 1,
            },
            Some(c) => Pos {
                line: c.pos.line,
                column: c.pos.column + 1,
            },
        }
    }

    pub fn index(&self) -> usize {
        self.i
    }

    /// The source text between two indexes, for messages.
    pub fn text(&self, from: usize, to: usize) -> String {
        self.chars[from..to].iter().map(|c| c.ch).collect()
    }
}
