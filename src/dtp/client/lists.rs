//! Compact forms of what a plan holds until it is applied: a plan for a
//! million-entry tree must not cost an allocation (or a whole `Entry`) per
//! entry.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::dtp::manifest::{Entry, Kind};

/// Paths with a mode and an mtime each, in one buffer: a path's bytes plus
/// 24 bytes an item.
#[derive(Debug, Default)]
pub struct PathList {
    bytes: Vec<u8>,
    items: Vec<Item>,
}

#[derive(Debug, Clone, Copy)]
struct Item {
    end: usize,
    mode: u32,
    mtime: i64,
}

/// One item of a [`PathList`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed<'a> {
    pub path: &'a Path,
    pub mode: u32,
    pub mtime: i64,
}

impl PathList {
    /// What an item costs beside its path's bytes.
    pub const ITEM_BYTES: usize = std::mem::size_of::<Item>();

    pub fn push(&mut self, path: &[u8], mode: u32, mtime: i64) {
        self.bytes.extend_from_slice(path);
        let end = self.bytes.len();
        self.items.push(Item { end, mode, mtime });
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// In the order pushed (or reversed: `.rev()`).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Listed<'_>> {
        (0..self.items.len()).map(|i| self.get(i))
    }

    /// The item pushed `i`-th (from 0); panics past the end.
    pub fn get(&self, i: usize) -> Listed<'_> {
        let start = if i == 0 { 0 } else { self.items[i - 1].end };
        let item = self.items[i];
        Listed {
            path: Path::new(OsStr::from_bytes(&self.bytes[start..item.end])),
            mode: item.mode,
            mtime: item.mtime,
        }
    }
}

/// Files to fetch, written to an unnamed file as the plan finds them and
/// read back a window at a time: a first copy of a million files would
/// otherwise hold every entry until its turn.
pub struct FileSpool {
    out: BufWriter<File>,
    count: u64,
    bytes: u64,
}

impl std::fmt::Debug for FileSpool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileSpool({} files, {} bytes)", self.count, self.bytes)
    }
}

impl FileSpool {
    /// `file`: empty, best unnamed.
    pub fn new(file: File) -> FileSpool {
        FileSpool {
            out: BufWriter::with_capacity(1 << 16, file),
            count: 0,
            bytes: 0,
        }
    }

    /// Add a file entry (`kind` is taken as [`Kind::File`]).
    pub fn push(&mut self, e: &Entry) -> io::Result<()> {
        let path = e.path.as_os_str().as_bytes();
        let out = &mut self.out;
        out.write_all(&(path.len() as u32).to_le_bytes())?;
        out.write_all(path)?;
        out.write_all(&e.mode.to_le_bytes())?;
        out.write_all(&e.size.to_le_bytes())?;
        out.write_all(&e.mtime.to_le_bytes())?;
        match &e.sha256 {
            Some(hash) => {
                out.write_all(&[1])?;
                out.write_all(hash)?;
            }
            None => out.write_all(&[0])?,
        }
        self.count += 1;
        self.bytes = self.bytes.saturating_add(e.size);
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.count
    }

    /// The sum of the sizes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Read back what was pushed, `window` entries at a time.
    pub fn into_windows(self, window: usize) -> io::Result<Windows> {
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        Ok(Windows {
            src: BufReader::with_capacity(1 << 16, file),
            left: self.count,
            window: window.max(1),
        })
    }
}

/// A [`FileSpool`] being read back.
pub struct Windows {
    src: BufReader<File>,
    left: u64,
    window: usize,
}

impl Windows {
    /// The next entries, up to the window; `None` after the last.
    pub fn next_window(&mut self) -> io::Result<Option<Vec<Entry>>> {
        if self.left == 0 {
            return Ok(None);
        }
        let n = self.left.min(self.window as u64) as usize;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push(self.read_one()?);
        }
        self.left -= n as u64;
        Ok(Some(entries))
    }

    fn read_one(&mut self) -> io::Result<Entry> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        let mut path = vec![0; len];
        self.src.read_exact(&mut path)?;
        let mode = u32::from_le_bytes(self.array()?);
        let size = u64::from_le_bytes(self.array()?);
        let mtime = i64::from_le_bytes(self.array()?);
        let [has_hash] = self.array()?;
        let sha256 = if has_hash == 1 {
            Some(self.array()?)
        } else {
            None
        };
        Ok(Entry {
            kind: Kind::File,
            path: PathBuf::from(std::ffi::OsString::from(OsStr::from_bytes(&path))),
            mode,
            size,
            mtime,
            sha256,
            target: None,
        })
    }

    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut buf = [0; N];
        self.src.read_exact(&mut buf)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_list_keeps_order_and_fields() {
        let mut list = PathList::default();
        list.push(b"a", 0o755, 1);
        list.push(b"a/b\xff", 0o700, -2);
        let got: Vec<_> = list
            .iter()
            .rev()
            .map(|l| (l.path, l.mode, l.mtime))
            .collect();
        assert_eq!(
            got,
            [
                (Path::new(OsStr::from_bytes(b"a/b\xff")), 0o700, -2),
                (Path::new("a"), 0o755, 1)
            ]
        );
        assert_eq!(list.len(), 2);
        assert_eq!(list.get(1).path, Path::new(OsStr::from_bytes(b"a/b\xff")));
    }

    #[test]
    fn spool_gives_back_what_was_pushed_in_windows() {
        let mut spool = FileSpool::new(tempfile::tempfile().unwrap());
        let entries: Vec<Entry> = (0..5)
            .map(|i| Entry {
                kind: Kind::File,
                path: format!("d/f{i}").into(),
                mode: 0o644,
                size: i,
                mtime: i as i64 * 10,
                sha256: (i != 3).then_some([i as u8; 32]),
                target: None,
            })
            .collect();
        for e in &entries {
            spool.push(e).unwrap();
        }
        assert_eq!((spool.len(), spool.bytes()), (5, 10));
        let mut windows = spool.into_windows(2).unwrap();
        let mut back = Vec::new();
        while let Some(window) = windows.next_window().unwrap() {
            assert!(window.len() <= 2);
            back.extend(window);
        }
        assert_eq!(back, entries);
    }
}
