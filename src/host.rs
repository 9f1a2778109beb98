//! This machine's names, as `hostname -s` and `hostname -f` print them.

use std::ffi::{CStr, CString};

/// The kernel host name (`hostname`).
pub fn name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The short host name (`hostname -s`): the part before the first dot.
pub fn short() -> String {
    let name = name();
    name.split('.').next().unwrap_or(&name).to_string()
}

/// The fully qualified name (`hostname -f`): the canonical name the resolver gives
/// for the host name, or the host name itself when it cannot be resolved.
pub fn fqdn() -> String {
    let name = name();
    canonical(&name).unwrap_or(name)
}

fn canonical(name: &str) -> Option<String> {
    let node = CString::new(name).ok()?;
    // SAFETY: zeroed addrinfo is a valid "no hints" value; we set only flags.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    hints.ai_family = libc::AF_UNSPEC;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: pointers are valid; the result is freed below.
    let rc = unsafe { libc::getaddrinfo(node.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if rc != 0 || res.is_null() {
        return None;
    }
    // SAFETY: res is a valid list from getaddrinfo; ai_canonname is NUL-terminated or null.
    let canon = unsafe {
        let p = (*res).ai_canonname;
        let out = (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned());
        libc::freeaddrinfo(res);
        out
    };
    canon.filter(|c| !c.is_empty())
}
