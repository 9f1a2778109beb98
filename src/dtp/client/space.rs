//! Room on the mirror's file system. A sync that cannot fit is refused before
//! stage one, and a download that runs out of room anyway (the disk filled
//! meanwhile) leaves no partial file: kept, it would only hold the disk full
//! until someone cleaned up by hand.

use std::io;
use std::path::Path;

use super::diff::Plan;
use super::error::ClientError;
use super::safe::Root;

/// Refuse the plan when the mirror's file system has less room than its
/// downloads need (see [`needed`]).
pub fn check(root: &Root, plan: &Plan) -> Result<(), ClientError> {
    let needed = needed(plan);
    if needed == 0 {
        return Ok(());
    }
    let free = free_bytes(root).map_err(|e| ClientError::local(root.path(), "statvfs", e))?;
    if needed > free {
        return Err(ClientError::NoSpace {
            mirror: root.path().to_path_buf(),
            needed,
            free,
        });
    }
    Ok(())
}

/// Bytes stages one and two write: every byte of every file fetched (an
/// older version keeps its place until the new one is whole), less what
/// earlier runs' partial files hold already. Blocks and metadata come on
/// top: this is the least that must be free.
pub fn needed(plan: &Plan) -> u64 {
    plan.stage_one
        .bytes()
        .saturating_add(plan.stage_two_bytes())
        .saturating_sub(plan.partial_bytes)
}

/// What an unprivileged writer may still use there (root may have a little
/// more: the reserve is not counted on).
fn free_bytes(root: &Root) -> io::Result<u64> {
    let dir = root.open_dir(Path::new(""))?;
    let st = rustix::fs::fstatvfs(&dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// A write failed because the file system (or our quota, or the file size
/// limit) is full: retrying here cannot succeed.
pub fn is_full(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_means_no_room_however_it_is_said() {
        for errno in [libc::ENOSPC, libc::EDQUOT, libc::EFBIG] {
            assert!(is_full(&io::Error::from_raw_os_error(errno)));
        }
        assert!(!is_full(&io::Error::from_raw_os_error(libc::EIO)));
        assert!(!is_full(&io::Error::other("x")));
    }

    #[test]
    fn a_mirror_has_some_room() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        assert!(free_bytes(&root).unwrap() > 0);
    }
}
