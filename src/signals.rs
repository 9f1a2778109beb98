//! Termination signals: remembered, and forwarded to every running child group.
//!
//! ftpsync traps TERM, HUP, INT and QUIT to clean up (remove its lock, rotate logs).
//! We do the same, but without racing the main thread: a watcher thread records the
//! signal and stops the children's process groups; the code waiting on a child then
//! sees [`received`] and unwinds normally through its cleanup.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;

static RECEIVED: AtomicI32 = AtomicI32::new(0);
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Start the watcher thread. Call once, early in `main`.
pub fn install() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGQUIT])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                RECEIVED.store(signal, Ordering::SeqCst);
                for &group in GROUPS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                    crate::process::signal_group(group, libc::SIGTERM);
                }
            }
        })?;
    Ok(())
}

/// The termination signal received so far, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// Track a running child's process group so a signal reaches it.
pub(crate) fn register(group: i32) {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner()).push(group);
    // A signal that came in just before registration must still stop it.
    if received().is_some() {
        crate::process::signal_group(group, libc::SIGTERM);
    }
}

pub(crate) fn unregister(group: i32) {
    GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|&g| g != group);
}
