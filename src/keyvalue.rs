//! The `key=value` line syntax shared by dsync's configuration files:
//! `xync.conf` and repository files ([`crate::manager`]) and the DTP host's
//! `firewall.conf`, `motd.conf` and `list.conf` ([`crate::dtp::server`]).
//!
//! Spaces around `=` are tolerated, `#` starts a comment (a whole line, or after
//! whitespace at the end of a line), blank lines are ignored, CRLF line ends and
//! a leading byte-order mark work. What a key means is the reader's business.

/// One physical line: its 1-based number, its text without the line end, and the
/// byte offset just after its line end (where the next line starts).
#[derive(Debug, Clone, Copy)]
pub struct RawLine<'a> {
    pub number: usize,
    pub text: &'a str,
    pub end: usize,
}

/// The physical lines of `text`, CR of a CRLF and a leading byte-order mark dropped.
pub fn raw_lines(text: &str) -> impl Iterator<Item = RawLine<'_>> {
    let mut offset = 0;
    text.split_inclusive('\n')
        .enumerate()
        .map(move |(i, piece)| {
            let start = offset;
            offset += piece.len();
            let mut line = piece.strip_suffix('\n').unwrap_or(piece);
            line = line.strip_suffix('\r').unwrap_or(line);
            if start == 0 {
                line = line.strip_prefix('\u{feff}').unwrap_or(line);
            }
            RawLine {
                number: i + 1,
                text: line,
                end: offset,
            }
        })
}

/// What one line is.
#[derive(Debug, PartialEq)]
pub enum Parsed<'a> {
    Blank,
    Pair { key: &'a str, value: String },
    Malformed,
}

/// Classify one line: blank or comment, `key=value`, or something else.
pub fn parse_line(line: &str) -> Parsed<'_> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Parsed::Blank;
    }
    let Some((key, value)) = trimmed.split_once('=') else {
        return Parsed::Malformed;
    };
    let key = key.trim();
    if key.is_empty() {
        return Parsed::Malformed;
    }
    Parsed::Pair {
        key,
        value: clean_value(value),
    }
}

/// Trim, drop a trailing ` # comment`, and drop one pair of matching outer quotes.
fn clean_value(value: &str) -> String {
    let mut value = value.trim();
    let bytes = value.as_bytes();
    if let Some(i) =
        (1..bytes.len()).find(|&i| bytes[i] == b'#' && (bytes[i - 1] as char).is_ascii_whitespace())
    {
        value = value[..i].trim_end();
    }
    for q in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(q) && value.ends_with(q) {
            value = &value[1..value.len() - 1];
            break;
        }
    }
    value.to_string()
}

/// The line on which `key` is last set in `text` (0 if it is not).
pub fn key_line(text: &str, key: &str) -> usize {
    raw_lines(text)
        .filter(|l| matches!(parse_line(l.text), Parsed::Pair { key: k, .. } if k == key))
        .map(|l| l.number)
        .last()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_hashes_without_space_and_lose_quotes() {
        assert_eq!(clean_value(" https://x/#frag "), "https://x/#frag");
        assert_eq!(clean_value("a # b"), "a");
        assert_eq!(clean_value("\"/srv/x\""), "/srv/x");
        assert_eq!(clean_value("\"unbalanced"), "\"unbalanced");
    }

    #[test]
    fn raw_lines_track_offsets() {
        let text = "a=1\r\nb=2\nc";
        let lines: Vec<_> = raw_lines(text).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!((lines[0].text, lines[0].end), ("a=1", 5));
        assert_eq!((lines[1].number, &text[lines[1].end..]), (2, "c"));
        assert_eq!(key_line(text, "b"), 2);
        assert_eq!(key_line(text, "z"), 0);
    }
}
