//! A config `dsync ftpsync` refuses, as a diagnostic: the same message the run
//! prints, at the line (and column) that causes it, with what to do.

use super::Source;
use crate::diag::Diagnostic;
use crate::ftpsync::settings::SettingsError;

/// `dsync ftpsync` stops on `error` with exit 78 (or 1): say where and how to fix it.
pub fn diagnostic(error: &SettingsError, source: &Source<'_>) -> Diagnostic {
    let at = |var: &str| (source.path.to_path_buf(), source.line(var));
    let ((file, line), fix) = match error {
        SettingsError::Parse(e) => {
            let fix = "rewrite or delete this line: `dsync ftpsync` refuses the whole file (exit 78), \
                       rather than read it differently from bash";
            let d = Diagnostic::error(&e.file, e.line, e.message.clone(), fix);
            return d.at_column(e.column);
        }
        SettingsError::NoConfig { name, .. } => (
            at(""),
            format!("write {name} (see /usr/share/doc/ftpsync/examples)"),
        ),
        SettingsError::Missing { var, .. } => (
            at(var),
            match *var {
                "RSYNC_HOST" => {
                    "add RSYNC_HOST=ftp.de.debian.org (your upstream) and RSYNC_PATH=debian".into()
                }
                _ => "add MAILTO=you@example.org (who gets the reports)".into(),
            },
        ),
        SettingsError::BothArchFilters => (
            at("ARCH_EXCLUDE"),
            "keep only one of the two lines ARCH_INCLUDE= and ARCH_EXCLUDE=".into(),
        ),
        SettingsError::OptionLike { var, .. } => (
            at(var),
            format!("write the real {var}, without the leading '-'"),
        ),
        SettingsError::VulnerableRsync(_) => (
            at("RSYNC"),
            format!(
                "install rsync {} or newer (or your distribution's fixed package)",
                crate::rsync::gate::FIXED
            ),
        ),
        SettingsError::UnknownTransport(_) => (
            at("RSYNC_TRANSPORT"),
            "write RSYNC_TRANSPORT=ssh or RSYNC_TRANSPORT=ssl, or delete the line for plain rsync"
                .into(),
        ),
        SettingsError::NotANumber { var, default, .. } => (
            at(var),
            format!("write a whole number, e.g. {var}={default}"),
        ),
    };
    Diagnostic::error(file, line, error.to_string(), fix)
}
