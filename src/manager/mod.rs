//! The dsync layer: a home (`~/dxync`) with one global `xync.conf` and one small
//! file per repository, synced on schedule, in parallel, with status and alerts.
//!
//! - [`home`], [`diag`], [`xync`], [`repo`], [`repo_files`], [`schedule`], [`upstream`]:
//!   reading and checking the configuration
//! - [`status`], [`notify`]: what a web page, a chat channel and a mailbox see
//! - [`worker`], [`scheduler`], [`general`]: running the syncs
//! - [`check`], [`ftpsync_check`], [`plan`]: `dsync -test`, for the home and for
//!   ftpsync setups, and what each repository will do
//! - [`dtp_host`]: the DTP host run from the home: `-service`, `-stop-service`,
//!   `-reload`, `-startup`, `-gendsync`, and the files of `HOME/dtp/`
//! - [`commands`]: the `dsync` command line on top
//!
//! Layering: this layer uses the protocol layer [`crate::dtp`] (the worker
//! syncs with its client, [`dtp_host`] runs its server and builds manifests)
//! and never the other way round; both share the crate's lower pieces
//! ([`crate::diag`], [`crate::keyvalue`]).

pub mod check;
pub mod commands;
pub mod diag;
pub mod dtp_host;
pub mod emoff;
pub mod ftpsync_check;
pub mod general;
pub mod home;
pub mod host_checks;
pub mod logs;
pub mod notify;
pub mod plan;
pub mod progress;
pub mod repo;
pub mod repo_files;
pub mod samples;
pub mod schedule;
pub mod scheduler;
pub mod setup_link;
pub mod status;
pub mod upstream;
pub mod worker;
pub mod xync;
