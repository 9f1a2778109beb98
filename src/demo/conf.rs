//! The demo mirror's `ftpsync.conf`: what an operator would write for a real mirror, with
//! only the upstream and the paths pointing into the demo directory.

use std::path::Path;

use super::Layout;

/// The mirror's name: its trace file is `TO/project/trace/MIRRORNAME`.
pub const MIRRORNAME: &str = "demo.mirror";

/// Text of `ftpsync.conf` for a mirror of `layout` syncing from 127.0.0.1 at `port`.
pub fn render(layout: &Layout, port: u16) -> String {
    // TO keeps its trailing slash: ftpsync hands it to rsync as the destination as written.
    let to = format!("{}/", layout.mirror.display());
    format!(
        r#"## ftpsync.conf written by `dsync demo`.
##
## dsync reads Debian ftpsync's config files, unchanged: this one works with
## either. It is found as ~/.config/ftpsync/ftpsync.conf (or /etc/ftpsync/);
## the demo runs ftpsync with HOME={home}.
## Every setting is described in ftpsync.conf(5).

## The name of this mirror, as trace files show it to the world and to
## downstream mirrors: TO/project/trace/MIRRORNAME.
MIRRORNAME={mirrorname}

## Where the mirror lives. Keep the trailing slash.
TO={to}

## Who is mailed about failed syncs; the default is $LOGNAME. The demo runs
## with DSYNC_SENDMAIL=/bin/true, so no mail ever leaves this machine.
#MAILTO=mirror-admin@example.org
## Only mail when something went wrong (the default).
#ERRORSONLY=true

## The upstream, as RSYNC_HOST::RSYNC_PATH. Here: the demo's rsync daemon.
RSYNC_HOST=127.0.0.1
RSYNC_PATH=debian
## RSYNC_HOST cannot carry a port, but RSYNC_EXTRA goes on every rsync
## command line.
RSYNC_EXTRA="--port={port}"
## For an upstream that needs a login (a push-triggered mirror, say):
#RSYNC_USER=
#RSYNC_PASSWORD=

## Leave architectures out, or list the ones wanted (not both).
#ARCH_EXCLUDE="arm64 i386"
#ARCH_INCLUDE="amd64"

## Shown in the trace file, for the people who run the mirror network.
INFO_MAINTAINER="Demo Operator <mirror-admin@example.org>"
INFO_SPONSOR="Example Sponsor https://www.example.org/"
INFO_COUNTRY=DE
INFO_LOCATION="Localhost"
INFO_THROUGHPUT=1Gb

## ftpsync.log (what happened), rsync-ftpsync.log and rsync-ftpsync.error
## (what rsync said). Each run rotates them at its end: .0 is the last run.
LOGDIR={logdir}
#LOGROTATE=14
"#,
        home = quote(&layout.home),
        mirrorname = MIRRORNAME,
        to = shell_words::quote(&to),
        logdir = quote(&layout.log),
    )
}

/// A path as one shell word: the config is read as shell, and a demo directory may have
/// spaces in its name.
pub fn quote(path: &Path) -> String {
    shell_words::quote(&path.to_string_lossy()).into_owned()
}
