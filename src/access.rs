//! What this process may do to a path, asked of the kernel itself: as root,
//! permission bits say little, but a read-only mount or an immutable folder
//! still refuses.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn access(path: &Path, mode: libc::c_int) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::access(c.as_ptr(), mode) == 0 }
}

/// Whether this process may create files in `dir` (also false on a read-only mount).
pub fn writable(dir: &Path) -> bool {
    access(dir, libc::W_OK | libc::X_OK)
}

/// Whether this process may run the file `path`.
pub fn executable(path: &Path) -> bool {
    path.is_file() && access(path, libc::X_OK)
}
