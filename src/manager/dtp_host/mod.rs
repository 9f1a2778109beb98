//! The DTP host as dsync runs it from its home: the commands that read the
//! home's files and hand the protocol layer ([`crate::dtp`]) plain values.
//!
//! - [`gendsync`]: `-gendsync`, a manifest for every `dsync=true` repository,
//!   its hash cache under the home

pub mod gendsync;
