//! Why a DTP sync failed, in words an operator can act on.

use std::path::PathBuf;

use crate::dtp::manifest::ManifestError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "{url} is not a DTP URL: {reason}; write dtp://HOST[:PORT]/REPO or http(s)://HOST[:PORT]/REPO/"
    )]
    BadUrl { url: String, reason: String },

    /// A hook (`hook2=`, `hook3=`) between the stages failed: the sync stops
    /// there, as ftpsync stops when a hook fails.
    #[error("{0}")]
    Hook(String),

    #[error(
        "cannot fetch {url}: {reason}; check that the DTP service runs there and the network path to it"
    )]
    Network { url: String, reason: String },

    /// A redirect away from the repository's scheme, host and port, which
    /// `dtp-redirects=any` would allow.
    #[error(
        "{url} redirected to {to}, another scheme, host or port than the repository's URL: refused; if the repository moved there, change dsync-url=, or allow redirects anywhere with dtp-redirects=any in the repository's file"
    )]
    Redirect { url: String, to: String },

    /// A phase of the sync fell below the minimum average rate: a stalled
    /// or dripping host (`dtp-min-rate=`).
    #[error(
        "{phase}: {bytes} bytes in {secs} s, below the floor of {min_rate} bytes/s after {grace} s of grace; the host or the path to it is too slow and the next run tries again: if it is just slow, lower dtp-min-rate= in xync.conf (0 turns the floor off)"
    )]
    TooSlow {
        phase: &'static str,
        bytes: u64,
        secs: u64,
        min_rate: u64,
        grace: u64,
    },

    #[error(
        "there is no manifest at {url} (HTTP 404): the host does not serve this repository, or has not made its manifest yet (dsync -gendsync)"
    )]
    NoManifest { url: String },

    #[error("{url} answered HTTP {status}{hint}")]
    Http {
        url: String,
        status: u16,
        hint: &'static str,
    },

    #[error(
        "the manifest {url} is not valid ({source}); the upstream must regenerate it (dsync -gendsync)"
    )]
    Manifest {
        url: String,
        #[source]
        source: ManifestError,
    },

    #[error(
        "the upstream is updating its archive ({file} present) and still was after {tries} tries; the next run tries again"
    )]
    UpdateInProgress { file: String, tries: u32 },

    #[error(
        "refusing to delete {count} entries (max-delete={max}); nothing was changed: if the upstream really shrank, raise max-delete in xync.conf for one run"
    )]
    TooManyDeletions { count: u64, max: u64 },

    #[error("{0}; nothing was changed")]
    Shrunk(crate::shrink::Shrunk),

    /// The bytes served are not those the manifest describes: a broken or
    /// hostile upstream. The partial file is removed.
    #[error("{path}: {reason}; the file was discarded and the mirror keeps its previous state")]
    Verify { path: String, reason: String },

    /// Checked before stage one: a sync that cannot fit would fill the
    /// disk and fail anyway.
    #[error(
        "{mirror}: this sync needs {needed} bytes ({} MiB) for its downloads, but the file system there has {free} bytes ({} MiB) free; nothing was changed: free space there (or move the mirror to a larger file system), then sync again",
        needed >> 20,
        free >> 20
    )]
    NoSpace {
        mirror: PathBuf,
        needed: u64,
        free: u64,
    },

    #[error("{path}: {op} failed: {source}")]
    Local {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A temporary file beside the mirror (the fetched manifest, the files
    /// to fetch) could not be made, written or read.
    #[error(
        "cannot use a temporary file in {dir} (for the manifest and the plan): {source}; check the free space there"
    )]
    Spool {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot start the HTTP client: {0}")]
    Setup(String),

    #[error("stopped by signal {0}")]
    Stopped(i32),
}

impl ClientError {
    /// Worth another try later (the network, a busy or changing upstream),
    /// unlike bad data or a local problem, which a retry would only repeat.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Network { .. } | ClientError::TooSlow { .. } => true,
            ClientError::Http { status, .. } => *status == 404 || *status >= 500,
            _ => false,
        }
    }

    pub(crate) fn local(
        path: impl Into<PathBuf>,
        op: &'static str,
        source: std::io::Error,
    ) -> Self {
        ClientError::Local {
            path: path.into(),
            op,
            source,
        }
    }
}

/// What an HTTP status from a DTP host most likely means for the operator.
pub(crate) fn status_hint(status: u16) -> &'static str {
    match status {
        403 => "; this address is not in the host's dtp/firewall.conf: ask its operator",
        404 => {
            "; the repository is not served there, or it changed during the sync (the next run tries again)"
        }
        416 => "; the host refused a byte range",
        503 => {
            "; the host is busy (too many connections from this address, or it is short of file descriptors): lower dtp-connections, or try again later"
        }
        s if s >= 500 => "; the host has a problem, the next run tries again",
        _ => "",
    }
}

/// A reqwest error with its causes, which its `Display` leaves out.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let words = cause.to_string();
        if !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        source = cause.source();
    }
    text
}
