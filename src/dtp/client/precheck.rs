//! A first look at the manifest while it downloads: its bytes go through a
//! streaming zstd decoder into a check of the header, the decompressed size
//! and the body's digest, so a hostile host is cut off after a few KiB of a
//! bad header or a body longer than its header allows, not after 4 GiB on
//! disk. The full check ([`EntryReader`](crate::dtp::manifest::EntryReader))
//! still reads the spooled manifest afterwards.

use sha2::{Digest, Sha256};
use zstd::stream::raw::{Decoder, Operation};
use zstd::zstd_safe::DParameter;

use crate::dtp::manifest::{self, Header, Limits, ManifestError};

/// Decompressed bytes handed to the check at a time.
const OUT: usize = 64 << 10;

pub struct Precheck {
    decoder: Decoder<'static>,
    out: Vec<u8>,
    frame_done: bool,
    text: Text,
}

/// The decompressed text as it comes.
struct Text {
    limits: Limits,
    /// What came until the header was complete.
    head: Vec<u8>,
    header: Option<Header>,
    /// Most decompressed bytes allowed in all: the limit, then also what
    /// the header's entries can fill.
    allowed: u64,
    seen: u64,
    body: Sha256,
}

impl Precheck {
    pub fn new(limits: &Limits) -> Result<Precheck, ManifestError> {
        let zstd = |e: std::io::Error| invalid(format!("zstd: {e}"));
        let mut decoder = Decoder::new().map_err(zstd)?;
        let window = manifest::window_log(limits.max_bytes);
        decoder
            .set_parameter(DParameter::WindowLogMax(window))
            .map_err(zstd)?;
        Ok(Precheck {
            decoder,
            out: vec![0; OUT],
            frame_done: false,
            text: Text {
                limits: *limits,
                head: Vec::new(),
                header: None,
                allowed: limits.max_bytes,
                seen: 0,
                body: Sha256::new(),
            },
        })
    }

    /// The next compressed bytes, as they arrive.
    pub fn push(&mut self, mut input: &[u8]) -> Result<(), ManifestError> {
        loop {
            if self.frame_done {
                if !input.is_empty() {
                    return Err(invalid("bytes after the zstd frame".into()));
                }
                return Ok(());
            }
            let status = self
                .decoder
                .run_on_buffers(input, &mut self.out)
                .map_err(|e| invalid(format!("cannot decompress: {e}")))?;
            input = &input[status.bytes_read..];
            self.text.push(&self.out[..status.bytes_written])?;
            // 0: the frame is decoded and flushed.
            self.frame_done = status.remaining == 0;
            // zstd may hold output back while the buffer was full: go on
            // until the input is used and the output was not filled.
            if input.is_empty() && status.bytes_written < OUT {
                return Ok(());
            }
        }
    }

    /// The download ended: the frame must have ended with it, and the body
    /// must be the one the header's digest names.
    pub fn finish(self) -> Result<(), ManifestError> {
        let text = self.text;
        let Some(header) = &text.header else {
            // Parsed as it is, for the reason of what is wrong with it.
            manifest::header_of_prefix(&text.head, text.limits.max_entries, true)?;
            return Err(invalid("it ends before its header does".into()));
        };
        if !self.frame_done {
            return Err(invalid("it ends inside its zstd frame (cut off?)".into()));
        }
        let digest = format!("sha256:{}", super::download::hex(&text.body.finalize()));
        if digest != header.digest {
            return Err(invalid(format!(
                "the body's digest is {digest}, the header says {}",
                header.digest
            )));
        }
        Ok(())
    }
}

impl Text {
    /// The header first, then the body, within limits.
    fn push(&mut self, text: &[u8]) -> Result<(), ManifestError> {
        self.seen += text.len() as u64;
        if self.seen > self.allowed {
            return Err(invalid(match &self.header {
                Some(h) => format!(
                    "more than the {} bytes decompressed that its header's {} entries can fill",
                    self.allowed, h.entries
                ),
                None => format!("more than the limit of {} bytes decompressed", self.allowed),
            }));
        }
        if self.header.is_some() {
            self.body.update(text);
            return Ok(());
        }
        self.head.extend_from_slice(text);
        let Some((header, len)) =
            manifest::header_of_prefix(&self.head, self.limits.max_entries, false)?
        else {
            return Ok(());
        };
        self.allowed = self
            .allowed
            .min(len.saturating_add(manifest::max_body(header.entries)));
        self.header = Some(header);
        // What came with the header's last piece is body already.
        let head = std::mem::take(&mut self.head);
        let body = &head[len as usize..];
        self.seen -= body.len() as u64;
        self.push(body)
    }
}

fn invalid(reason: String) -> ManifestError {
    ManifestError::Invalid { line: 0, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtp::manifest::{Entry, Kind, Manifest};
    use std::path::PathBuf;

    fn manifest() -> Vec<u8> {
        let entries = (0..200)
            .map(|i| Entry {
                kind: Kind::File,
                mode: 0o644,
                size: i,
                mtime: 0,
                sha256: Some([7; 32]),
                path: PathBuf::from(format!("f{i:04}")),
                target: None,
            })
            .collect();
        Manifest::new("r", 0, entries).encode()
    }

    fn check(bytes: &[u8], piece: usize) -> Result<(), ManifestError> {
        let mut check = Precheck::new(&Limits::default())?;
        for chunk in bytes.chunks(piece) {
            check.push(chunk)?;
        }
        check.finish()
    }

    #[test]
    fn a_good_manifest_passes_in_any_pieces() {
        let bytes = manifest();
        for piece in [1, 7, 100, 1 << 20] {
            check(&bytes, piece).unwrap();
        }
    }

    #[test]
    fn a_bad_header_a_cut_frame_and_a_trailer_are_refused() {
        let bytes = manifest();
        let cut = check(&bytes[..bytes.len() - 3], 100).unwrap_err();
        assert!(cut.to_string().contains("inside its zstd frame"), "{cut}");
        let mut trailer = bytes.clone();
        trailer.push(0);
        let after = check(&trailer, 100).unwrap_err();
        assert!(
            after.to_string().contains("after the zstd frame"),
            "{after}"
        );
        let bad = zstd::encode_all(&b"DSYNC 2\nrepo r\n"[..], 3).unwrap();
        let mut check = Precheck::new(&Limits::default()).unwrap();
        let e = check.push(&bad).and_then(|()| check.finish()).unwrap_err();
        assert!(e.to_string().contains("unsupported version 2"), "{e}");
    }

    #[test]
    fn a_body_longer_than_its_header_allows_is_refused_as_it_comes() {
        let digest = format!("sha256:{}", "0".repeat(64));
        let head = format!("DSYNC 1\nrepo r\nentries 1\nbytes 0\ngenerated 0\ndigest {digest}\n\n");
        let mut text = head.into_bytes();
        text.resize(1 << 20, b'x');
        let bytes = zstd::encode_all(&text[..], 3).unwrap();
        let mut check = Precheck::new(&Limits::default()).unwrap();
        let e = check.push(&bytes).unwrap_err();
        assert!(e.to_string().contains("header's 1 entries can fill"), "{e}");
    }
}
