//! Problems found in configuration files, each with where it is and what to do.
//!
//! At the crate root because every layer reports them: the dsync layer's
//! `-test`, DTP's service files, and ftpsync mode's own `-test`.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One problem: `file:line: message` and a suggested fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based; 0 when the problem is about the file as a whole.
    pub line: usize,
    /// 1-based; 0 when the whole line is meant (shown only when set).
    pub column: usize,
    pub message: String,
    pub fix: String,
}

impl Diagnostic {
    pub fn error(
        file: impl Into<PathBuf>,
        line: usize,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(
            Severity::Error,
            file.into(),
            line,
            message.into(),
            fix.into(),
        )
    }

    pub fn warning(
        file: impl Into<PathBuf>,
        line: usize,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(
            Severity::Warning,
            file.into(),
            line,
            message.into(),
            fix.into(),
        )
    }

    fn new(severity: Severity, file: PathBuf, line: usize, message: String, fix: String) -> Self {
        Diagnostic {
            severity,
            file,
            line,
            column: 0,
            message,
            fix,
        }
    }

    /// The same problem, pointing at a column of its line.
    pub fn at_column(mut self, column: usize) -> Self {
        self.column = column;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `3 errors, 1 warning` (or `no problems`).
pub fn counts(diags: &[Diagnostic]) -> String {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    if diags.is_empty() {
        return "no problems".to_string();
    }
    let plural = |n: usize, word: &str| match n {
        1 => format!("1 {word}"),
        n => format!("{n} {word}s"),
    };
    format!(
        "{}, {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{}:{}:", self.file.display(), self.line)?;
        if self.column > 0 {
            write!(f, "{}:", self.column)?;
        }
        write!(f, " {kind}: {}", self.message)?;
        if !self.fix.is_empty() {
            write!(f, "\n    fix: {}", self.fix)?;
        }
        Ok(())
    }
}
