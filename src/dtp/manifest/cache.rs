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
//! (path escaped as in manifests), then `end COUNT`. Anything unexpected, a
//! bad checksum or a missing `end` line makes the whole cache ignored.

use std::collections::HashMap;
use std::fs::{Metadata, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::format::{hex_into, is_hash, parse_i64, parse_u64, unhex};
use crate::dtp::escape::{escape_into, unescape};

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
}

/// Raw relative path → stamp and hash.
pub(super) type Cache = HashMap<Vec<u8>, (Stamp, [u8; 32])>;

/// The cache in `file`; empty when there is none or it is damaged in any way.
pub(super) fn load(file: &Path) -> Cache {
    read(file).unwrap_or_default()
}

fn read(path: &Path) -> Option<Cache> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let decoder = zstd::stream::read::Decoder::new(file).ok()?.single_frame();
    let mut src = BufReader::new(decoder);
    let mut line = Vec::new();
    next(&mut src, &mut line)?;
    if line != MAGIC.as_bytes() {
        return None;
    }
    let mut cache = Cache::new();
    loop {
        next(&mut src, &mut line)?;
        let text = std::str::from_utf8(&line).ok()?;
        if let Some(count) = text.strip_prefix("end ") {
            // Reading on to the end of the frame checks zstd's checksum.
            let mut rest = Vec::new();
            src.read_to_end(&mut rest).ok()?;
            let complete = rest.is_empty() && parse_u64(count)? == cache.len() as u64;
            return complete.then_some(cache);
        }
        let (path, stamp, hash) = record(text)?;
        cache.insert(path, (stamp, hash));
    }
}

/// The next line into `line`, without its `\n`; `None` unless a whole line.
fn next(src: &mut impl BufRead, line: &mut Vec<u8>) -> Option<()> {
    line.clear();
    src.take(MAX_LINE).read_until(b'\n', line).ok()?;
    (line.pop() == Some(b'\n')).then_some(())
}

fn record(text: &str) -> Option<(Vec<u8>, Stamp, [u8; 32])> {
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

/// Replace the cache in `file` with `records` (atomically: a reader sees the
/// old cache or the new one; its folder is created). Not synced to disk: a
/// cache torn by a crash is detected and ignored, which costs a full hash,
/// never a wrong one.
pub(super) fn save<'a>(
    file: &Path,
    records: impl Iterator<Item = (&'a [u8], &'a Stamp, &'a [u8; 32])>,
) -> io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    let mut enc = zstd::stream::write::Encoder::new(BufWriter::new(tmp.as_file_mut()), 1)?;
    enc.include_checksum(true)?;
    // Lines go to zstd in large pieces, not one call each.
    let mut out = BufWriter::with_capacity(1 << 16, enc);
    writeln!(out, "{MAGIC}")?;
    let mut count = 0u64;
    let mut line = Vec::new();
    for (path, s, hash) in records {
        line.clear();
        write!(
            line,
            "{} {} {} {} {} {} ",
            s.ino, s.size, s.mtime, s.mtime_ns, s.ctime, s.ctime_ns
        )?;
        hex_into(hash, &mut line);
        line.push(b' ');
        escape_into(path, &mut line);
        line.push(b'\n');
        out.write_all(&line)?;
        count += 1;
    }
    writeln!(out, "end {count}")?;
    out.into_inner()
        .map_err(|e| e.into_error())?
        .finish()?
        .flush()?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
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

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cache/t");
        let (a, b) = (stamp(1), stamp(2));
        let records: Vec<(&[u8], &Stamp, &[u8; 32])> =
            vec![(b"a b\n", &a, &[1; 32]), (b"\xff/x", &b, &[2; 32])];
        save(&file, records.into_iter()).unwrap();
        let cache = load(&file);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache[&b"a b\n"[..]], (a, [1; 32]));
        assert_eq!(cache[&b"\xff/x"[..]], (b, [2; 32]));
    }

    #[test]
    fn damage_empties_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let a = stamp(1);
        save(&path, vec![(&b"a"[..], &a, &[1; 32])].into_iter()).unwrap();
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
            assert!(load(&path).is_empty(), "case {i}");
        }
    }
}
