//! The `%XX` escaping of paths in manifests and URLs (see the module docs of `dtp`).

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Escape raw path bytes: `0x21..=0x7E` but `%` stay, every other byte is `%XX`.
pub fn escape(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    escape_into(raw, &mut out);
    // Only ASCII was pushed.
    String::from_utf8(out).expect("escaped text is ASCII")
}

/// [`escape`], appended to `out` (no allocation per name when writing many).
pub fn escape_into(raw: &[u8], out: &mut Vec<u8>) {
    for &b in raw {
        if stays(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]]);
        }
    }
}

/// The raw bytes of an escaped path; `None` for a malformed escape.
///
/// Malformed: a `%` not followed by two hex digits (either case), or any byte
/// that [`escape`] would never write literally (space, control, non-ASCII).
pub fn unescape(escaped: &str) -> Option<Vec<u8>> {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = hex_value(*bytes.get(i + 1)?)?;
                let lo = hex_value(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b if stays(b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Bytes written as themselves.
fn stays(b: u8) -> bool {
    (0x21..=0x7E).contains(&b) && b != b'%'
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_stays() {
        assert_eq!(
            escape(b"pool/main/a+b~c_1.0.deb"),
            "pool/main/a+b~c_1.0.deb"
        );
    }

    #[test]
    fn others_become_upper_hex() {
        assert_eq!(escape(b"a b%c\n\t\x7f\xff\0"), "a%20b%25c%0A%09%7F%FF%00");
        assert_eq!(escape("é".as_bytes()), "%C3%A9");
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        let escaped = escape(&all);
        assert!(escaped.bytes().all(|b| (0x21..=0x7E).contains(&b)));
        assert_eq!(unescape(&escaped).unwrap(), all);
    }

    #[test]
    fn lower_case_hex_is_accepted() {
        assert_eq!(unescape("%c3%a9").unwrap(), "é".as_bytes());
    }

    #[test]
    fn malformed_escapes_are_refused() {
        for bad in ["%", "%4", "a%G0", "%0g", "a b", "tab\t", "é", "x\n", "%%41"] {
            assert_eq!(unescape(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn empty_is_empty() {
        assert_eq!(escape(b""), "");
        assert_eq!(unescape("").unwrap(), b"");
    }
}
