//! The hash cache: the hash of every file of a tree as of its last
//! generation, in a file of dsync's home (`HOME/cache/NAME`), never in the
//! tree. The tree is served (by DTP and often by an rsync daemon too), and a
//! file of ours there would be mirrored, or unreadable to the daemon and fail
//! every downstream rsync. Older versions kept it at `root/.dsync-cache`:
//! [`OLD_FILE`] is still left out of manifests, and `-gendsync` moves it away.
//!
//! A hash is reused only when the file's [`Stamp`] is unchanged. The stamp
//! holds the inode and the ctime as well as size and mtime: a file replaced by
//! a copy (new inode) or rewritten in place with its mtime put back (new
//! ctime, which no one can set) is read again, and a cache copied along with
//! the tree never matches.
//!
//! The file is zstd (with its content checksum) of text lines:
//! `DSYNC-CACHE 1`, then `INO SIZE MTIME MTIME_NS CTIME CTIME_NS SHA256 PATH`
//! (path escaped as in manifests) sorted by path as manifests are, then
//! `end COUNT`. It is read alongside the walk, record by record. A bad
//! checksum or a missing `end` line makes the whole cache ignored; a record
//! that cannot be read or is out of order ends its use there.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::format::{hex_into, is_hash, parse_i64, parse_u64, unhex};
use crate::dtp::escape::{escape_into, unescape};
use crate::dtp::ordered_walk::Stat;

/// Where older versions kept the cache, in the tree's root.
pub const OLD_FILE: &str = ".dsync-cache";
/// Temporary cache files, beside the cache.
const TEMP_PREFIX: &str = ".tmp-cache-";
const MAGIC: &str = "DSYNC-CACHE 1";
const MAX_LINE: u64 = 32 * 1024;

/// What changes whenever a file's content may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    pub ino: u64,
    pub size: u64,
    pub mtime: i64,
    pub mtime_ns: i64,
    pub ctime: i64,
    pub ctime_ns: i64,
}

impl Stamp {
    pub fn of(meta: &Metadata) -> Stamp {
        Stamp {
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_ns: meta.mtime_nsec(),
            ctime: meta.ctime(),
            ctime_ns: meta.ctime_nsec(),
        }
    }

    pub fn of_stat(st: &Stat) -> Stamp {
        Stamp {
            ino: st.ino,
            size: st.size,
            mtime: st.mtime,
            mtime_ns: st.mtime_ns,
            ctime: st.ctime,
            ctime_ns: st.ctime_ns,
        }
    }
}

/// One record: raw relative path, stamp, hash.
pub(super) type Record = (Vec<u8>, Stamp, [u8; 32]);

/// The records of a cache file, read in path order alongside a walk in the
/// same order: memory is one record, not the cache.
pub(super) struct Lookup {
    records: Option<Records>,
    head: Option<Record>,
}

impl Lookup {
    /// The cache in `file`; an empty one when there is none, or it is damaged
    /// in any way (checked whole before a record is trusted).
    pub fn open(file: &Path) -> Lookup {
        let records = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(file)
            .ok()
            .filter(intact)
            .and_then(|mut f| {
                f.seek(io::SeekFrom::Start(0)).ok()?;
                Records::new(f)
            });
        let mut lookup = Lookup {
            records,
            head: None,
        };
        lookup.advance();
        lookup
    }

    /// The stamp and hash recorded for `path`. Paths must be asked in
    /// increasing order (a walk in manifest order does).
    pub fn find(&mut self, path: &[u8]) -> Option<(Stamp, [u8; 32])> {
        while self
            .head
            .as_ref()
            .is_some_and(|(p, ..)| p.as_slice() < path)
        {
            self.advance();
        }
        match &self.head {
            Some((p, stamp, hash)) if p == path => Some((*stamp, *hash)),
            _ => None,
        }
    }

    fn advance(&mut self) {
        let next = self.records.as_mut().and_then(Records::next);
        let sorted = match (&self.head, &next) {
            (Some((before, ..)), Some((after, ..))) => before < after,
            _ => true,
        };
        // An older version wrote records unsorted: such a cache is used no
        // further (those files are hashed again, and the new cache is sorted).
        if next.is_none() || !sorted {
            self.records = None;
            self.head = None;
        } else {
            self.head = next;
        }
    }
}

/// Whole: zstd's checksum holds, the `end` line is there and counts the
/// records. Nothing is parsed: that is [`Records`]' job.
fn intact(file: &File) -> bool {
    let Ok(decoder) = zstd::stream::read::Decoder::new(file) else {
        return false;
    };
    let mut src = BufReader::with_capacity(1 << 16, decoder.single_frame());
    let mut lines = 0u64;
    let mut last = Vec::new();
    loop {
        let buf = match src.fill_buf() {
            Ok([]) => break,
            Ok(buf) => buf,
            Err(_) => return false,
        };
        let n = buf.len();
        lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        // Keep the tail: the `end COUNT` line is short.
        last.extend_from_slice(buf);
        if last.len() > 4096 {
            last.drain(..last.len() - 64);
        }
        src.consume(n);
    }
    let text = String::from_utf8_lossy(&last);
    let Some(body) = text.strip_suffix('\n') else {
        return false;
    };
    let end = body.rsplit('\n').next().unwrap_or_default();
    // Lines: the magic, the records, the end line.
    end.strip_prefix("end ")
        .and_then(parse_u64)
        .is_some_and(|count| lines >= 2 && count == lines - 2)
}

/// The records of an intact cache file, one by one.
struct Records {
    src: BufReader<zstd::stream::read::Decoder<'static, BufReader<File>>>,
    line: Vec<u8>,
}

impl Records {
    fn new(file: File) -> Option<Records> {
        let decoder = zstd::stream::read::Decoder::new(file).ok()?.single_frame();
        let mut records = Records {
            src: BufReader::with_capacity(1 << 16, decoder),
            line: Vec::new(),
        };
        next(&mut records.src, &mut records.line)?;
        (records.line == MAGIC.as_bytes()).then_some(records)
    }

    /// The next record; `None` at the `end` line or at anything unexpected.
    fn next(&mut self) -> Option<Record> {
        next(&mut self.src, &mut self.line)?;
        record(std::str::from_utf8(&self.line).ok()?)
    }
}

/// The next line into `line`, without its `\n`; `None` unless a whole line.
fn next(src: &mut impl BufRead, line: &mut Vec<u8>) -> Option<()> {
    line.clear();
    src.take(MAX_LINE).read_until(b'\n', line).ok()?;
    (line.pop() == Some(b'\n')).then_some(())
}

fn record(text: &str) -> Option<Record> {
    let mut f = text.split(' ');
    let mut num = || parse_i64(f.next()?);
    let stamp = Stamp {
        ino: u64::try_from(num()?).ok()?,
        size: u64::try_from(num()?).ok()?,
        mtime: num()?,
        mtime_ns: num()?,
        ctime: num()?,
        ctime_ns: num()?,
    };
    let hash = f.next().filter(|h| is_hash(h))?;
    let path = unescape(f.next()?)?;
    f.next().is_none().then(|| (path, stamp, unhex(hash)))
}

/// A new cache, written record by record in path order, then put in place
/// of the old one atomically ([`Writer::finish`]; a reader sees the old
/// cache or the new one; its folder is created). Not synced to disk: a cache
/// torn by a crash is detected and ignored, which costs a full hash, never a
/// wrong one.
pub(super) struct Writer {
    tmp: tempfile::NamedTempFile,
    out: BufWriter<zstd::stream::write::Encoder<'static, BufWriter<File>>>,
    count: u64,
    line: Vec<u8>,
}

impl Writer {
    pub fn create(file: &Path) -> io::Result<Writer> {
        let dir = file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)?;
        let target = BufWriter::new(tmp.as_file().try_clone()?);
        let mut enc = zstd::stream::write::Encoder::new(target, 1)?;
        enc.include_checksum(true)?;
        // Lines go to zstd in large pieces, not one call each.
        let mut out = BufWriter::with_capacity(1 << 16, enc);
        writeln!(out, "{MAGIC}")?;
        Ok(Writer {
            tmp,
            out,
            count: 0,
            line: Vec::new(),
        })
    }

    pub fn push(&mut self, path: &[u8], s: &Stamp, hash: &[u8; 32]) -> io::Result<()> {
        let line = &mut self.line;
        line.clear();
        write!(
            line,
            "{} {} {} {} {} {} ",
            s.ino, s.size, s.mtime, s.mtime_ns, s.ctime, s.ctime_ns
        )?;
        hex_into(hash, line);
        line.push(b' ');
        escape_into(path, line);
        line.push(b'\n');
        self.out.write_all(line)?;
        self.count += 1;
        Ok(())
    }

    pub fn finish(mut self, file: &Path) -> io::Result<()> {
        writeln!(self.out, "end {}", self.count)?;
        self.out
            .into_inner()
            .map_err(|e| e.into_error())?
            .finish()?
            .flush()?;
        self.tmp.persist(file).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(n: i64) -> Stamp {
        Stamp {
            ino: 7,
            size: 3,
            mtime: n,
            mtime_ns: 999_999_999,
            ctime: -n,
            ctime_ns: 0,
        }
    }

    fn save(file: &Path, records: &[(&[u8], Stamp, [u8; 32])]) {
        let mut w = Writer::create(file).unwrap();
        for (path, stamp, hash) in records {
            w.push(path, stamp, hash).unwrap();
        }
        w.finish(file).unwrap();
    }

    #[test]
    fn round_trip_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cache/t");
        let (a, b) = (stamp(1), stamp(2));
        save(&file, &[(b"a b\n", a, [1; 32]), (b"\xff/x", b, [2; 32])]);
        let mut cache = Lookup::open(&file);
        assert_eq!(cache.find(b"0"), None);
        assert_eq!(cache.find(b"a b\n"), Some((a, [1; 32])));
        assert_eq!(cache.find(b"b"), None);
        assert_eq!(cache.find(b"\xff/x"), Some((b, [2; 32])));
        assert_eq!(cache.find(b"\xff/y"), None);
    }

    #[test]
    fn records_out_of_order_are_used_no_further() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t");
        let s = stamp(1);
        save(
            &file,
            &[(b"b", s, [1; 32]), (b"a", s, [2; 32]), (b"c", s, [3; 32])],
        );
        // Each record is whole (the checksum held), so `b` can be trusted;
        // after `a` the order is lost, and with it every later lookup.
        let mut cache = Lookup::open(&file);
        assert_eq!(cache.find(b"a"), None);
        assert_eq!(cache.find(b"b"), Some((s, [1; 32])));
        assert_eq!(cache.find(b"c"), None);
    }

    #[test]
    fn damage_empties_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        save(&path, &[(b"a", stamp(1), [1; 32])]);
        let good = std::fs::read(&path).unwrap();
        let text = String::from_utf8(zstd::decode_all(&good[..]).unwrap()).unwrap();
        let cases: Vec<Vec<u8>> = vec![
            good[..good.len() - 3].to_vec(),
            {
                let mut flipped = good.clone();
                let at = flipped.len() - 1;
                flipped[at] ^= 1;
                flipped
            },
            zstd::encode_all(text.replace("end 1", "end 2").as_bytes(), 1).unwrap(),
            zstd::encode_all(text.replace("\nend 1\n", "\n").as_bytes(), 1).unwrap(),
            zstd::encode_all(text.replace(" a\n", "\n").as_bytes(), 1).unwrap(),
            zstd::encode_all(text.replace("DSYNC-CACHE 1", "DSYNC-CACHE 2").as_bytes(), 1).unwrap(),
            b"garbage".to_vec(),
        ];
        for (i, bytes) in cases.into_iter().enumerate() {
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(Lookup::open(&path).find(b"a"), None, "case {i}");
        }
        std::fs::write(&path, good).unwrap();
        assert!(Lookup::open(&path).find(b"a").is_some());
    }
}
