//! dsync: a mirror-sync tool for public Linux-distribution mirrors.
//!
//! Invoked as `ftpsync` (a symlink, or `dsync ftpsync ARGS…`) it is a drop-in for
//! Debian's ftpsync. Modules by responsibility:
//!
//! - [`cli`]: which personality runs, and the `dsync` command line
//! - [`shellconf`]: the safe subset of shell that `ftpsync.conf` files are written in
//! - [`ftpsync`]: ftpsync's settings, rsync command lines and stage engine
//! - [`rsync`], [`process`], [`signals`]: running rsync and other children safely
//! - [`lock`], [`trace`], [`log`], [`mail`]: the files and reports around a sync;
//!   [`beneath`]: every write into a mirror, beneath its root, no symlink followed
//! - [`exit`]: the one table of exit codes; [`diag`]: problems found in config files;
//!   [`keyvalue`]: the `key=value` line syntax of dsync's config files
//! - [`manager`]: the dsync layer, a home (`~/dxync`) of repositories synced on
//!   schedule, and the DTP host commands run from it
//! - [`dtp`]: DTP, the manifest-based parallel transfer (manifest, server,
//!   client): a protocol layer below [`manager`], which it never imports
//! - [`demo`]: `dsync demo`, a whole mirror setup on this machine, and the archive
//!   generator it shares with the tests

pub mod access;
pub mod beneath;
pub mod cli;
pub mod demo;
pub mod diag;
pub mod dtp;
pub mod exit;
pub mod ftpsync;
pub mod host;
pub mod keyvalue;
pub mod lock;
pub mod log;
pub mod mail;
pub mod manager;
pub mod process;
pub mod rsync;
pub mod shellconf;
pub mod shrink;
pub mod signals;
pub mod trace;
pub mod tunnel;
