//! The archive generator now lives in the library ([`dsync::demo::archive`]), so that
//! `dsync demo` serves the same archive the tests use. Tests keep `support::archive::…`.
#![allow(dead_code, unused_imports)]

pub use dsync::demo::archive::*;

/// One suite, one component, amd64, three packages: the smallest archive that
/// still has every kind of file, for tests that sync it many times.
pub fn small_spec() -> ArchiveSpec {
    ArchiveSpec {
        suites: vec!["bookworm".into()],
        components: vec!["main".into()],
        archs: vec!["amd64".into()],
        packages_per_component: 3,
    }
}
