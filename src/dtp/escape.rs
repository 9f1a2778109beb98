//! The `%XX` escaping of paths in manifests and URLs (see the module docs of `dtp`).

/// Escape raw path bytes: `0x21..=0x7E` but `%` stay, every other byte is `%XX`.
pub fn escape(raw: &[u8]) -> String {
    todo!("escape {raw:?}")
}

/// The raw bytes of an escaped path; `None` for a malformed escape.
pub fn unescape(escaped: &str) -> Option<Vec<u8>> {
    todo!("unescape {escaped}")
}
