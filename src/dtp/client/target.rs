//! Where a file of a batch is written until it is verified.
//!
//! In stage one, an unnamed file (`O_TMPFILE`) in its folder: verified, given
//! its mode and mtime, then linked under its name, so the name appears only
//! for a whole, verified file, and the folder changes once instead of three
//! times (a part's create, its rename, the old name's removal). Elsewhere a
//! named part, as single downloads use: in stage two (parts wait for the whole
//! stage), where the name is taken (an older version: replaced by rename), and
//! where unnamed files do not work (no `O_TMPFILE`, no way to link one).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Seek};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::Ordering;

use rustix::fs::{Mode, OFlags};

use super::download::{Finish, discard, new_part, place, set_meta};
use super::error::ClientError;
use super::safe::{self, Root};
use crate::dtp::manifest::{Entry, link_unnamed, unnamed_unsupported};

pub enum Target {
    Unnamed(File),
    Part(File),
}

impl Target {
    pub fn open(root: &Root, dir: &OwnedFd, part: &OsStr, finish: Finish) -> io::Result<Target> {
        if finish == Finish::Rename && root.unnamed.load(Ordering::Relaxed) {
            let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
            match rustix::fs::openat(dir, ".", flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => return Ok(Target::Unnamed(File::from(fd))),
                Err(e) if unnamed_unsupported(&e.into()) => {
                    root.unnamed.store(false, Ordering::Relaxed)
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Target::Part(new_part(dir, part)?))
    }

    pub fn file(&mut self) -> &mut File {
        match self {
            Target::Unnamed(file) | Target::Part(file) => file,
        }
    }

    /// Not verified: nothing of it stays.
    pub fn discard(self, dir: &OwnedFd, part: &OsStr) {
        if let Target::Part(_) = self {
            discard(dir, part);
        }
    }

    /// Verified: its mode, mtime and (stage one) name.
    pub fn finish(
        self,
        root: &Root,
        dir: &OwnedFd,
        (part, name): (&OsStr, &OsStr),
        entry: &Entry,
        finish: Finish,
    ) -> Result<(), ClientError> {
        let file = match self {
            Target::Part(file) => return place(root, dir, (part, name), file, entry, finish),
            Target::Unnamed(file) => file,
        };
        let local = |op, e| ClientError::local(root.path().join(&entry.path), op, e);
        set_meta(&file, entry).map_err(|e| local("set the mode and mtime of", e))?;
        match link_unnamed(dir, &file, Path::new(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                // An older version (or anything) by that name: replaced by rename.
                safe::remove_any(dir.as_fd(), part).map_err(|e| local("remove the part of", e))?;
                link_unnamed(dir, &file, Path::new(part))
                    .map_err(|e| local("name the download of", e))?;
                safe::replace(dir.as_fd(), part, name).map_err(|e| local("rename into", e))
            }
            Err(e) if unnamed_unsupported(&e) => {
                root.unnamed.store(false, Ordering::Relaxed);
                let part_file = copy_to_part(file, dir, part).map_err(|e| local("write", e))?;
                place(root, dir, (part, name), part_file, entry, finish)
            }
            Err(e) => Err(local("name the download of", e)),
        }
    }
}

/// The content of an unnamed file that cannot be linked, in a named part.
fn copy_to_part(mut file: File, dir: &OwnedFd, part: &OsStr) -> io::Result<File> {
    let mut named = new_part(dir, part)?;
    let copied = file.rewind().and_then(|()| io::copy(&mut file, &mut named));
    if let Err(e) = copied {
        // The disk may be full: no half copy stays.
        discard(dir, part);
        return Err(e);
    }
    Ok(named)
}
