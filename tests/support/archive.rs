//! The archive generator now lives in the library ([`dsync::demo::archive`]), so that
//! `dsync demo` serves the same archive the tests use. Tests keep `support::archive::…`.
#![allow(dead_code, unused_imports)]

pub use dsync::demo::archive::*;
