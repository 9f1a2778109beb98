//! Where a repository syncs from. (CONTRACT STUB: implementation to be written.)

use super::diag::Diagnostic;
use super::home::Home;
use super::repo::Repo;
use super::xync::Global;

/// How a repository is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// rsync URLs to try in order (`rsync://host[:port]/module/`, always ending in `/`).
    Rsync(Vec<String>),
    /// `ftpsync=true`: the ftpsync block names the upstream (`RSYNC_HOST` …).
    Ftpsync,
    /// `dsync-url=`: DTP.
    Dtp(String),
}

/// Resolve in this order: `ftpsync=true`, `dsync-url`, `src`, intranet mode
/// (`intra=true` + `intradd` → `rsync://IP[:PORT]/REPO/`), the catalog
/// (`home.catalog()` overriding the shipped `etc/upstreams.conf`), then the API
/// (`api=` in xync.conf). No source is an error naming the repository file.
pub fn resolve(repo: &Repo, global: &Global, home: &Home) -> Result<Source, Diagnostic> {
    let _ = (repo, global, home);
    todo!()
}
