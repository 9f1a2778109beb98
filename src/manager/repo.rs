//! One repository file, `repos/NAME.conf`. (CONTRACT STUB: implementation to be written.)

use std::path::{Path, PathBuf};

use super::diag::Diagnostic;

#[derive(Debug, Clone, PartialEq)]
pub struct Repo {
    /// `repo=`; defaults to the file name without `.conf`.
    pub name: String,
    pub file: PathBuf,
    /// `save=`: the mirror folder.
    pub save: PathBuf,
    /// `timeset=`: hours; `None` means every run.
    pub timeset: Option<Vec<u8>>,
    /// `src=rsync://host[:port]/module[/path]`: the upstream, explicitly.
    pub src: Option<String>,
    /// `intradd=` / `intraadd=`: `IP[:PORT]` of the intranet upstream.
    pub intradd: Option<String>,
    /// `ftpsync=true`: the rest of the file is a pasted ftpsync.conf.
    pub ftpsync: Option<FtpsyncBlock>,
    /// `dsync=true`: takes part in DTP.
    pub dsync: bool,
    /// `dsync-url=`: pull over DTP from this URL.
    pub dsync_url: Option<String>,
    /// `mailto=`: overrides the global one for this repository.
    pub mailto: Option<String>,
}

/// The ftpsync.conf text that follows `ftpsync=true`, with the line it starts on
/// so messages name lines of the repository file.
#[derive(Debug, Clone, PartialEq)]
pub struct FtpsyncBlock {
    pub text: String,
    pub first_line: usize,
}

/// Parse one repository file. `None` when it has errors that make it unusable.
pub fn parse(path: &Path, text: &str) -> (Option<Repo>, Vec<Diagnostic>) {
    let _ = (path, text);
    todo!()
}

/// Every `*.conf` in `dir`, sorted by name, and all problems found.
pub fn load_all(dir: &Path) -> (Vec<Repo>, Vec<Diagnostic>) {
    let _ = dir;
    todo!()
}
