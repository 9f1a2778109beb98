//! `Range: bytes=N-`, `bytes=N-M` and `bytes=-K`, one range only. A client
//! resuming a download sends the first form; anything else we do not
//! understand is answered 416 rather than guessed at.

/// The bytes `start..=end` of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

impl Span {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// `Content-Range` value.
    pub fn content_range(&self, size: u64) -> String {
        format!("bytes {}-{}/{size}", self.start, self.end)
    }
}

/// `Err(())` means 416 (`Content-Range: bytes */SIZE`).
pub fn parse(header: &[u8], size: u64) -> Result<Span, ()> {
    let text = std::str::from_utf8(header).map_err(|_| ())?.trim();
    let spec = text.strip_prefix("bytes=").ok_or(())?.trim();
    if spec.contains(',') {
        return Err(());
    }
    let (first, last) = spec.split_once('-').ok_or(())?;
    let number = |s: &str| -> Result<u64, ()> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        s.parse().map_err(|_| ())
    };
    if size == 0 {
        return Err(());
    }
    if first.is_empty() {
        let suffix = number(last)?;
        if suffix == 0 {
            return Err(());
        }
        return Ok(Span {
            start: size.saturating_sub(suffix),
            end: size - 1,
        });
    }
    let start = number(first)?;
    let end = if last.is_empty() {
        size - 1
    } else {
        number(last)?.min(size - 1)
    };
    if start >= size || start > end {
        return Err(());
    }
    Ok(Span { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(h: &str, size: u64) -> Result<(u64, u64), ()> {
        parse(h.as_bytes(), size).map(|s| (s.start, s.end))
    }

    #[test]
    fn forms() {
        assert_eq!(p("bytes=0-", 10), Ok((0, 9)));
        assert_eq!(p("bytes=4-", 10), Ok((4, 9)));
        assert_eq!(p("bytes=2-5", 10), Ok((2, 5)));
        assert_eq!(p("bytes=2-500", 10), Ok((2, 9)));
        assert_eq!(p("bytes=-3", 10), Ok((7, 9)));
        assert_eq!(p("bytes=-30", 10), Ok((0, 9)));
        assert_eq!(p(" bytes=9-9 ", 10), Ok((9, 9)));
    }

    #[test]
    fn unsatisfiable_or_malformed() {
        for h in [
            "bytes=10-",
            "bytes=5-4",
            "bytes=-0",
            "bytes=0-1,3-4",
            "bytes=a-",
            "bytes=+1-",
            "items=0-",
            "bytes=",
            "bytes=-",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(p(h, 10), Err(()), "{h}");
        }
        assert_eq!(p("bytes=0-", 0), Err(()));
        assert_eq!(Span { start: 2, end: 5 }.content_range(10), "bytes 2-5/10");
    }
}
