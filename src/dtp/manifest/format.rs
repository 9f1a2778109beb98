//! The text of a manifest and its zstd frame: writing, and reading untrusted bytes.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Entry, Header, Kind, Limits, Manifest, ManifestError, is_excluded, path_bytes};
use crate::dtp::escape::{escape, escape_into, unescape};

const MAGIC: &str = "DSYNC 1";
const LEVEL: i32 = 3;
/// Longer than any valid line (two 4096-byte names fully escaped, plus the
/// fields), short enough that one hostile line costs little memory.
const MAX_LINE: u64 = 32 * 1024;
/// Far more than any valid header needs; all [`read_header`] ever decompresses.
const MAX_HEADER: u64 = 64 * 1024;
/// The longest symlink target a manifest may list: what Linux can create.
pub const MAX_TARGET: usize = 4095;
/// Line number of the header's `entries`, `bytes` and `digest` fields.
const ENTRIES_LINE: u64 = 3;
const BYTES_LINE: u64 = 4;
const DIGEST_LINE: u64 = 6;
/// Lines before the first entry: the header and the blank line after it.
pub(crate) const HEADER_LINES: u64 = DIGEST_LINE + 1;

/// One entry line without its `\n`.
fn write_line(e: &Entry, out: &mut Vec<u8>) {
    let kind = match e.kind {
        Kind::File => 'f',
        Kind::Dir => 'd',
        Kind::Symlink => 'l',
    };
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{kind} {:04o} ", e.mode & 0o7777);
    match e.kind {
        Kind::File => {
            let _ = write!(out, "{} ", e.size);
        }
        _ => out.extend_from_slice(b"- "),
    }
    let _ = write!(out, "{} ", e.mtime);
    match &e.sha256 {
        Some(h) => hex_into(h, out),
        None => out.push(b'-'),
    }
    out.push(b' ');
    escape_into(path_bytes(&e.path), out);
    if e.kind == Kind::Symlink {
        out.push(b' ');
        escape_into(e.target.as_deref().map(path_bytes).unwrap_or_default(), out);
    }
}

/// Every entry line with its `\n`: what the digest covers.
pub(super) fn body(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        write_line(e, &mut out);
        out.push(b'\n');
    }
    out
}

/// `sha256:HEX` of the body, without holding the body in memory.
pub(super) fn body_digest(entries: &[Entry]) -> String {
    let mut hasher = Sha256::new();
    let mut line = Vec::new();
    for e in entries {
        line.clear();
        write_line(e, &mut line);
        line.push(b'\n');
        hasher.update(&line);
    }
    format!("sha256:{}", hex(&hasher.finalize()))
}

pub(super) fn encode(m: &Manifest) -> Vec<u8> {
    let header = header_text(&Header {
        version: 1,
        repo: m.header.repo.clone(),
        entries: m.entries.len() as u64,
        bytes: super::total_bytes(&m.entries),
        generated: m.header.generated,
        digest: body_digest(&m.entries),
    });
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), LEVEL).expect("zstd encoder");
    enc.include_checksum(true).expect("zstd parameter");
    // Lines go to zstd in large pieces, not one call each.
    let mut out = BufWriter::with_capacity(1 << 16, enc);
    out.write_all(header.as_bytes()).expect("write to memory");
    let mut line = Vec::new();
    for e in &m.entries {
        line.clear();
        write_line(e, &mut line);
        line.push(b'\n');
        out.write_all(&line).expect("write to memory");
    }
    let enc = out
        .into_inner()
        .map_err(|e| e.into_error())
        .expect("write to memory");
    enc.finish().expect("write to memory")
}

pub(super) fn decode(bytes: &[u8], limits: &Limits) -> Result<Manifest, ManifestError> {
    let mut reader = EntryReader::new(bytes, limits)?;
    // Bounded by max_entries already; the cap keeps a lying header from
    // reserving memory its body never fills.
    let mut entries = Vec::with_capacity(reader.header().entries.min(4096) as usize);
    while let Some(entry) = reader.next_entry()? {
        entries.push(entry);
    }
    Ok(Manifest {
        header: reader.header,
        entries,
    })
}

/// A manifest read entry by entry, checked as it goes: memory is one line
/// and the folders that may still hold entries (at most a path's worth),
/// not the entries. Every line is checked as
/// [`Manifest::decode`] checks it; the count, the sum of sizes, the digest
/// and the end of the frame are checked when the last entry has been read, so
/// an entry is only trusted once [`EntryReader::next_entry`] has said `None`.
pub struct EntryReader<R: BufRead> {
    lines: Lines<zstd::stream::read::Decoder<'static, R>>,
    header: Header,
    /// `None` once the caller has said the digest was checked already.
    hasher: Option<Sha256>,
    count: u64,
    sum: u64,
    last: Vec<u8>,
    /// The listed folders a later entry may still be in, as lengths of
    /// prefixes of `last` (see [`OpenFolders`]).
    open: OpenFolders,
    done: bool,
}

impl<R: BufRead> EntryReader<R> {
    /// Read and check the header of the compressed manifest in `src`.
    pub fn new(src: R, limits: &Limits) -> Result<Self, ManifestError> {
        let mut decoder = zstd::stream::read::Decoder::with_buffer(src)
            .map_err(|e| invalid(0, format!("zstd: {e}")))?
            .single_frame();
        decoder
            .window_log_max(window_log(limits.max_bytes))
            .map_err(|e| invalid(0, format!("zstd: {e}")))?;
        let mut lines = Lines::new(decoder, limits.max_bytes);
        let header = parse_header(&mut lines, limits.max_entries)?;
        Ok(EntryReader {
            lines,
            header,
            hasher: Some(Sha256::new()),
            count: 0,
            sum: 0,
            last: Vec::new(),
            open: OpenFolders::default(),
            done: false,
        })
    }

    /// The body's digest was checked against this very header, over these
    /// very bytes, already (the client checks it while the manifest
    /// downloads into a file only it can reach): hashing it a second time
    /// would only cost a pass over a manifest of tens of MB. Everything else
    /// is still checked.
    pub fn digest_checked_already(mut self) -> Self {
        self.hasher = None;
        self
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The next entry; `None` once the whole manifest has been read and found
    /// consistent with its header.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, ManifestError> {
        if self.done {
            return Ok(None);
        }
        let Some((n, line)) = self.lines.next()? else {
            self.finish()?;
            self.done = true;
            return Ok(None);
        };
        if self.count == self.header.entries {
            return Err(invalid(
                n,
                format!(
                    "more than the {} entries the header says",
                    self.header.entries
                ),
            ));
        }
        if let Some(hasher) = &mut self.hasher {
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
        }
        let entry = parse_entry(line).map_err(|reason| invalid(n, reason))?;
        self.check_place(&entry)
            .map_err(|reason| invalid(n, reason))?;
        if entry.kind == Kind::File {
            self.sum = self
                .sum
                .checked_add(entry.size)
                .ok_or_else(|| invalid(n, "file sizes add up past 2^64".into()))?;
        }
        self.count += 1;
        self.last.clear();
        self.last.extend_from_slice(path_bytes(&entry.path));
        if entry.kind == Kind::Dir {
            self.open.push(self.last.len());
        }
        Ok(Some(entry))
    }

    /// Sorted after the entry before, inside a listed folder, not one of our
    /// own files.
    fn check_place(&mut self, entry: &Entry) -> Result<(), String> {
        let path = path_bytes(&entry.path);
        if self.count > 0 && self.last.as_slice() >= path {
            return Err(format!(
                "{} is not after {} (sorted by bytes, no duplicates)",
                escape(path),
                escape(&self.last)
            ));
        }
        if is_excluded(&entry.path) {
            return Err(format!("{} is never listed in a manifest", escape(path)));
        }
        self.open.close_before(&self.last, path);
        if let Some(slash) = path.iter().rposition(|&b| b == b'/') {
            // Not necessarily the line before: "a-b" sorts between "a" and "a/c".
            if !self.open.holds(slash) {
                return Err(format!(
                    "{} is not listed as a folder before it",
                    escape(&path[..slash])
                ));
            }
        }
        Ok(())
    }

    /// The checks only the end can make.
    fn finish(&mut self) -> Result<(), ManifestError> {
        // Anything after the one frame (another frame, garbage) is refused too.
        let rest = self.lines.src.get_mut().get_mut().get_mut();
        let left = rest.fill_buf().map(|b| b.len()).unwrap_or(1);
        if left > 0 {
            return Err(invalid(0, "bytes after the zstd frame".to_string()));
        }
        let header = &self.header;
        if self.count != header.entries {
            let reason = format!(
                "the header says {} entries, the body has {}",
                header.entries, self.count
            );
            return Err(invalid(ENTRIES_LINE, reason));
        }
        if self.sum != header.bytes {
            let reason = format!(
                "the header says {} bytes, the files add up to {}",
                header.bytes, self.sum
            );
            return Err(invalid(BYTES_LINE, reason));
        }
        let Some(hasher) = &self.hasher else {
            return Ok(());
        };
        let digest = format!("sha256:{}", hex(&hasher.clone().finalize()));
        if digest != header.digest {
            return Err(invalid(
                DIGEST_LINE,
                format!("the body's digest is {digest}"),
            ));
        }
        Ok(())
    }
}

impl<R: BufRead> Iterator for EntryReader<R> {
    type Item = Result<Entry, ManifestError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_entry() {
            Ok(entry) => entry.map(Ok),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// The listed folders a later entry may still be in, without a copy of
/// each: the reader's memory must not grow with what the upstream lists.
///
/// In byte order, every path from a folder `F` up to the last one inside it
/// starts with the bytes of `F` (`F`, then `F-x`, `F/a`…: `/` is the only
/// byte after which `F/…` comes). So the folders that can still hold a later
/// entry are all byte prefixes of the last path, kept as their lengths; a
/// folder is closed for good once a path does not start with it.
#[derive(Debug, Default)]
struct OpenFolders {
    /// Increasing lengths of prefixes of the last path that are listed folders.
    lengths: Vec<usize>,
}

impl OpenFolders {
    /// `next` comes after `last`: close the folders it is past.
    fn close_before(&mut self, last: &[u8], next: &[u8]) {
        while let Some(&len) = self.lengths.last() {
            if next.starts_with(&last[..len]) {
                break;
            }
            self.lengths.pop();
        }
    }

    /// Is the prefix of this length of the current path an open folder?
    fn holds(&self, len: usize) -> bool {
        self.lengths.binary_search(&len).is_ok()
    }

    /// The current path is a folder.
    fn push(&mut self, len: usize) {
        self.lengths.push(len);
    }
}

/// A manifest written entry by entry, in order: the lines go to a spool
/// file (the header, which comes first, needs the count and digest of all of
/// them), then [`ManifestWriter::finish`] compresses header and body.
pub struct ManifestWriter {
    spool: BufWriter<File>,
    hasher: Sha256,
    count: u64,
    sum: u64,
    last: Vec<u8>,
    line: Vec<u8>,
}

impl ManifestWriter {
    /// `spool`: an empty file to hold the body meanwhile (best unnamed, out
    /// of the served tree).
    pub fn new(spool: File) -> Self {
        ManifestWriter {
            spool: BufWriter::with_capacity(1 << 16, spool),
            hasher: Sha256::new(),
            count: 0,
            sum: 0,
            last: Vec::new(),
            line: Vec::new(),
        }
    }

    /// Add the next entry; it must sort after the one before.
    pub fn push(&mut self, e: &Entry) -> std::io::Result<()> {
        let path = path_bytes(&e.path);
        if self.count > 0 && self.last.as_slice() >= path {
            return Err(std::io::Error::other(format!(
                "manifest entries out of order: {} after {}",
                escape(path),
                escape(&self.last)
            )));
        }
        self.last.clear();
        self.last.extend_from_slice(path);
        self.line.clear();
        write_line(e, &mut self.line);
        self.line.push(b'\n');
        self.hasher.update(&self.line);
        self.spool.write_all(&self.line)?;
        self.count += 1;
        if e.kind == Kind::File {
            self.sum = self.sum.saturating_add(e.size);
        }
        Ok(())
    }

    /// Entries pushed so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Write the compressed manifest (as [`Manifest::encode`] would) to
    /// `out`; its header.
    pub fn finish(self, repo: &str, generated: i64, out: impl Write) -> std::io::Result<Header> {
        let header = Header {
            version: 1,
            repo: repo.to_string(),
            entries: self.count,
            bytes: self.sum,
            generated,
            digest: format!("sha256:{}", hex(&self.hasher.finalize())),
        };
        let mut spool = self.spool.into_inner().map_err(|e| e.into_error())?;
        spool.seek(std::io::SeekFrom::Start(0))?;
        let mut enc = zstd::stream::write::Encoder::new(out, LEVEL)?;
        enc.include_checksum(true)?;
        enc.write_all(header_text(&header).as_bytes())?;
        std::io::copy(&mut BufReader::with_capacity(1 << 16, spool), &mut enc)?;
        enc.finish()?.flush()?;
        Ok(header)
    }
}

fn header_text(h: &Header) -> String {
    format!(
        "{MAGIC}\nrepo {}\nentries {}\nbytes {}\ngenerated {}\ndigest {}\n\n",
        escape(h.repo.as_bytes()),
        h.entries,
        h.bytes,
        h.generated,
        h.digest,
    )
}

/// The header only, read from a manifest file (for `/api/repos` and ETags).
///
/// Decompresses no more than the header needs; the body is not checked.
pub fn read_header(file: &Path) -> Result<Header, ManifestError> {
    let file = File::open(file).map_err(super::io_at(file))?;
    let decoder = zstd::stream::read::Decoder::new(file)?.single_frame();
    let mut lines = Lines::new(decoder, MAX_HEADER);
    parse_header(&mut lines, u64::MAX)
}

/// The header at the start of decompressed manifest text that has arrived so
/// far, and its length with the blank line: `Ok(None)` while it may still be
/// coming (no blank line yet, less than [`MAX_HEADER`], not `at_end`). For
/// checking a manifest while it downloads; [`EntryReader`] checks it all again.
pub(crate) fn header_of_prefix(
    text: &[u8],
    max_entries: u64,
    at_end: bool,
) -> Result<Option<(Header, u64)>, ManifestError> {
    let ended = text.windows(2).any(|w| w == b"\n\n");
    if !ended && !at_end && (text.len() as u64) < MAX_HEADER {
        return Ok(None);
    }
    let mut lines = Lines::new(text, MAX_HEADER);
    let header = parse_header(&mut lines, max_entries)?;
    Ok(Some((header, lines.read)))
}

/// The most decompressed bytes a manifest whose header says `entries` can
/// hold after its header: every entry line at its longest.
pub(crate) fn max_body(entries: u64) -> u64 {
    entries.saturating_mul(MAX_LINE + 1)
}

/// Decompressed lines, each at most [`MAX_LINE`], all together at most `max_bytes`.
struct Lines<R: Read> {
    src: BufReader<std::io::Take<R>>,
    max_bytes: u64,
    read: u64,
    /// 1-based number of the line last returned.
    number: u64,
    buf: Vec<u8>,
}

impl<R: Read> Lines<R> {
    fn new(src: R, max_bytes: u64) -> Self {
        Lines {
            // One byte past the limit, to tell "exactly at" from "over".
            src: BufReader::with_capacity(64 * 1024, src.take(max_bytes.saturating_add(1))),
            max_bytes,
            read: 0,
            number: 0,
            buf: Vec::new(),
        }
    }

    /// The next line, without its `\n`, and its number; `None` at the end.
    #[allow(clippy::should_implement_trait)] // lends from self: not an Iterator
    fn next(&mut self) -> Result<Option<(u64, &str)>, ManifestError> {
        self.buf.clear();
        let line = self.number + 1;
        let n = (&mut self.src)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| invalid(line, format!("cannot decompress: {e}")))?;
        if n == 0 {
            return Ok(None);
        }
        self.number = line;
        self.read += n as u64;
        if self.read > self.max_bytes {
            return Err(invalid(
                line,
                format!(
                    "more than the limit of {} bytes decompressed",
                    self.max_bytes
                ),
            ));
        }
        if self.buf.pop() != Some(b'\n') {
            let reason = if n as u64 > MAX_LINE {
                format!("line longer than {MAX_LINE} bytes")
            } else {
                "the last line has no newline".to_string()
            };
            return Err(invalid(line, reason));
        }
        match std::str::from_utf8(&self.buf) {
            Ok(s) if s.is_ascii() => Ok(Some((line, s))),
            _ => Err(invalid(line, "a byte that is not ASCII".into())),
        }
    }
}

fn parse_header<R: Read>(lines: &mut Lines<R>, max_entries: u64) -> Result<Header, ManifestError> {
    let mut line = |want: &str| -> Result<(u64, String), ManifestError> {
        match lines.next()? {
            Some((n, text)) => Ok((n, text.to_string())),
            None => Err(invalid(
                lines.number + 1,
                format!("the header ends before `{want}`"),
            )),
        }
    };
    let (n, magic) = line("DSYNC 1")?;
    if magic != MAGIC {
        let reason = match magic.strip_prefix("DSYNC ") {
            Some(v) => format!("unsupported version {v} (this reader knows 1)"),
            None => "not a DSYNC manifest".to_string(),
        };
        return Err(invalid(n, reason));
    }
    let (n, text) = line("repo")?;
    let repo = field(n, &text, "repo")?;
    let repo = unescape(repo)
        .and_then(|raw| String::from_utf8(raw).ok())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| invalid(n, format!("bad repository name {repo}")))?;
    let (n, text) = line("entries")?;
    let entries = number(n, &text, "entries", parse_u64)?;
    if entries > max_entries {
        return Err(invalid(
            n,
            format!("{entries} entries, more than the limit of {max_entries}"),
        ));
    }
    let (n, text) = line("bytes")?;
    let bytes = number(n, &text, "bytes", parse_u64)?;
    let (n, text) = line("generated")?;
    let generated = number(n, &text, "generated", parse_i64)?;
    let (n, text) = line("digest")?;
    let digest = field(n, &text, "digest")?;
    if !digest.strip_prefix("sha256:").is_some_and(is_hash) {
        return Err(invalid(
            n,
            "the digest is not sha256: and 64 lowercase hex digits".into(),
        ));
    }
    let digest = digest.to_string();
    let (n, blank) = line("the blank line")?;
    if !blank.is_empty() {
        return Err(invalid(n, "a blank line should end the header".into()));
    }
    Ok(Header {
        version: 1,
        repo,
        entries,
        bytes,
        generated,
        digest,
    })
}

/// The value of a `NAME VALUE` header line.
fn field<'a>(n: u64, text: &'a str, name: &str) -> Result<&'a str, ManifestError> {
    match text.split_once(' ') {
        Some((key, value)) if key == name && !value.is_empty() => Ok(value),
        _ => Err(invalid(n, format!("expected `{name} VALUE`"))),
    }
}

fn number<T>(
    n: u64,
    text: &str,
    name: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, ManifestError> {
    parse(field(n, text, name)?).ok_or_else(|| invalid(n, format!("{name} is not a number")))
}

fn parse_entry(line: &str) -> Result<Entry, String> {
    let mut fields = line.split(' ');
    let mut next = |what: &str| fields.next().ok_or_else(|| format!("no {what} field"));
    let kind = match next("type")? {
        "f" => Kind::File,
        "d" => Kind::Dir,
        "l" => Kind::Symlink,
        other => return Err(format!("unknown type {other:?}")),
    };
    let mode = next("mode")?;
    // Four octal digits: at most 0o7777.
    if mode.len() != 4 || !mode.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!("mode {mode:?} is not four octal digits"));
    }
    let mode = u32::from_str_radix(mode, 8).map_err(|e| e.to_string())?;
    let size = next("size")?;
    let size = match kind {
        Kind::File => parse_u64(size).ok_or_else(|| format!("bad size {size:?}"))?,
        _ if size == "-" => 0,
        _ => return Err("size must be `-` unless a file".into()),
    };
    let mtime = next("mtime")?;
    let mtime = parse_i64(mtime).ok_or_else(|| format!("bad mtime {mtime:?}"))?;
    let hash = next("hash")?;
    let sha256 = match kind {
        Kind::File if is_hash(hash) => Some(unhex(hash)),
        Kind::File => return Err("the hash is not 64 lowercase hex digits".into()),
        _ if hash == "-" => None,
        _ => return Err("hash must be `-` unless a file".into()),
    };
    let path = next("path")?;
    let path = unescape(path).ok_or_else(|| format!("bad escape in path {path:?}"))?;
    if let Some(problem) = super::path_problem(&path) {
        return Err(format!("{problem}: {}", escape(&path)));
    }
    let target = match kind {
        Kind::Symlink => {
            let t = next("target")?;
            let t = unescape(t).ok_or_else(|| format!("bad escape in target {t:?}"))?;
            // Linux refuses a longer target (PATH_MAX counts the NUL): found
            // only when stage two makes the link, after the indices moved.
            if t.is_empty() || t.len() > MAX_TARGET || t.contains(&0) {
                return Err(format!(
                    "target empty, longer than {MAX_TARGET} bytes or holding a NUL"
                ));
            }
            Some(os_path(t))
        }
        _ => None,
    };
    if fields.next().is_some() {
        return Err("too many fields".into());
    }
    Ok(Entry {
        kind,
        path: os_path(path),
        mode,
        size,
        mtime,
        sha256,
        target,
    })
}

/// Canonical decimal: digits, no leading zero (so one number has one spelling).
pub(super) fn parse_u64(s: &str) -> Option<u64> {
    canonical_digits(s).then(|| s.parse().ok()).flatten()
}

pub(super) fn parse_i64(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    (canonical_digits(digits) && s != "-0")
        .then(|| s.parse().ok())
        .flatten()
}

fn canonical_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

pub(super) fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Lowercase hex.
pub(super) fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(2 * bytes.len());
    hex_into(bytes, &mut out);
    String::from_utf8(out).expect("hex is ASCII")
}

pub(super) fn hex_into(bytes: &[u8], out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.extend_from_slice(&[DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xF)]]);
    }
}

/// The bytes of 64 hex digits (checked by [`is_hash`] first).
pub(super) fn unhex(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    out
}

fn os_path(raw: Vec<u8>) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(&raw))
}

/// The largest zstd window a reader accepts: no more than the whole allowed
/// text needs (so a tiny limit also bounds the decoder's memory), at least
/// what our own level-3 encoder uses (2^21), at most zstd's default (2^27).
pub(crate) fn window_log(max_bytes: u64) -> u32 {
    let needed = 64 - max_bytes.saturating_sub(1).leading_zeros();
    needed.clamp(21, 27)
}

fn invalid(line: u64, reason: String) -> ManifestError {
    ManifestError::Invalid { line, reason }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{dir, file};
    use super::*;

    fn compress(text: &str) -> Vec<u8> {
        zstd::encode_all(text.as_bytes(), 3).unwrap()
    }

    fn text_of(m: &Manifest) -> String {
        String::from_utf8(zstd::decode_all(&m.encode()[..]).unwrap()).unwrap()
    }

    fn sample() -> Manifest {
        let mut link = dir("l");
        link.kind = Kind::Symlink;
        link.mode = 0o777;
        link.target = Some(PathBuf::from("../x y"));
        Manifest::new(
            "debian",
            1_763_900_000,
            vec![dir("d"), file("d/f", b"abc"), link],
        )
    }

    #[test]
    fn text_is_as_specified() {
        let m = sample();
        let text = text_of(&m);
        let expected_body = format!(
            "d 0755 - 1700000000 - d\nf 0644 3 1700000000 {} d/f\nl 0777 - 1700000000 - l ../x%20y\n",
            hex(&Sha256::digest(b"abc"))
        );
        let expected = format!(
            "DSYNC 1\nrepo debian\nentries 3\nbytes 3\ngenerated 1763900000\ndigest sha256:{}\n\n{expected_body}",
            hex(&Sha256::digest(expected_body.as_bytes()))
        );
        assert_eq!(text, expected);
        assert_eq!(m.body(), expected_body.as_bytes());
    }

    #[test]
    fn parents_are_found_however_names_interleave() {
        // `a-b` and `a!` sort between `a` and `a/c`; `a-b/x` is inside a
        // folder opened after `a`, which stays open for `a/c`.
        let names = [
            "a", "a!", "a-b", "a-b/x", "a/c", "a/c!", "a/c/d", "a/e", "b", "b/f",
        ];
        let entries = names.iter().map(|n| dir(n)).collect();
        let m = Manifest::new("t", 0, entries);
        assert_eq!(
            Manifest::decode(&m.encode(), &Limits::default()).unwrap(),
            m
        );
        // `a/c` is closed once `a/e` is read: `a/c/z` after it is unsorted,
        // and a folder never listed is found missing.
        let mut open = OpenFolders::default();
        open.push(1);
        open.close_before(b"a", b"a/c");
        open.push(3);
        assert!(open.holds(1) && open.holds(3));
        open.close_before(b"a/c", b"a/e");
        assert!(open.holds(1) && !open.holds(3));
        open.close_before(b"a/e", b"b/f");
        assert!(!open.holds(1));
    }

    #[test]
    fn a_symlink_target_linux_can_make_is_the_longest_allowed() {
        let mut link = dir("l");
        link.kind = Kind::Symlink;
        link.target = Some(PathBuf::from("t".repeat(MAX_TARGET)));
        let m = Manifest::new("t", 0, vec![link.clone()]);
        assert!(Manifest::decode(&m.encode(), &Limits::default()).is_ok());
        link.target = Some(PathBuf::from("t".repeat(MAX_TARGET + 1)));
        let m = Manifest::new("t", 0, vec![link]);
        let err = Manifest::decode(&m.encode(), &Limits::default()).unwrap_err();
        assert!(err.to_string().contains("longer than 4095"), "{err}");
    }

    #[test]
    fn round_trip_and_deterministic() {
        let m = sample();
        assert_eq!(m.encode(), m.encode());
        assert_eq!(
            Manifest::decode(&m.encode(), &Limits::default()).unwrap(),
            m
        );
    }

    #[test]
    fn the_writer_makes_what_encode_makes_and_the_reader_streams_it() {
        let m = sample();
        let mut w = ManifestWriter::new(tempfile::tempfile().unwrap());
        for e in &m.entries {
            w.push(e).unwrap();
        }
        let mut out = Vec::new();
        let header = w.finish("debian", m.header.generated, &mut out).unwrap();
        assert_eq!((&out, &header), (&m.encode(), &m.header));

        let reader = EntryReader::new(&out[..], &Limits::default()).unwrap();
        assert_eq!(reader.header(), &m.header);
        let entries: Vec<Entry> = reader.collect::<Result<_, _>>().unwrap();
        assert_eq!(entries, m.entries);

        // A file with a byte after the frame: refused, at the end.
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&out).unwrap();
        file.write_all(b"x").unwrap();
        file.rewind().unwrap();
        let reader = EntryReader::new(BufReader::new(file), &Limits::default()).unwrap();
        let result: Result<Vec<Entry>, _> = reader.collect();
        assert!(result.is_err());

        let mut w = ManifestWriter::new(tempfile::tempfile().unwrap());
        w.push(&m.entries[1]).unwrap();
        assert!(w.push(&m.entries[0]).is_err(), "out of order");
    }

    #[test]
    fn line_numbers_point_at_the_problem() {
        let m = sample();
        let text = text_of(&m).replace("d 0755 - 1700000000 - d\n", "d 0755 - 1700000000 - d\nx\n");
        match Manifest::decode(&compress(&text), &Limits::default()) {
            Err(ManifestError::Invalid { line: 9, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn numbers_are_canonical() {
        assert_eq!(parse_u64("0"), Some(0));
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
        for bad in ["", "01", "+1", "-1", "1 ", "18446744073709551616", "1e3"] {
            assert_eq!(parse_u64(bad), None, "{bad}");
        }
        assert_eq!(parse_i64("-5"), Some(-5));
        assert_eq!(parse_i64("-9223372036854775808"), Some(i64::MIN));
        for bad in ["-0", "-", "--1", "-01", "9223372036854775808"] {
            assert_eq!(parse_i64(bad), None, "{bad}");
        }
    }

    #[test]
    fn window_bounds() {
        assert_eq!(window_log(1 << 20), 21);
        assert_eq!(window_log((1 << 23) + 1), 24);
        assert_eq!(window_log(4 << 30), 27);
        assert_eq!(window_log(0), 21);
    }

    #[test]
    fn read_header_reads_a_file() {
        let root = tempfile::tempdir().unwrap();
        let m = sample();
        super::super::install(root.path(), &m).unwrap();
        assert_eq!(
            read_header(&root.path().join("data.dsync")).unwrap(),
            m.header
        );
    }
}
