//! The dsync layer reports [`crate::diag::Diagnostic`]s; kept under this name
//! for the modules that always found them here.

pub use crate::diag::{Diagnostic, Severity};
