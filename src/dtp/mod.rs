//! DTP, the dsync transfer protocol: a host publishes a manifest (`data.dsync`)
//! of each served repository; a downstream compares it with its own tree and
//! fetches only what differs, over many HTTP/1.1 connections at once.
//!
//! This is the protocol layer: [`manifest`], [`server`], [`client`] and
//! [`escape`], usable as a library on their own. It imports nothing of dsync's
//! home layer (`manager/`, which is above it) or of ftpsync mode, only the
//! crate's shared pieces ([`crate::diag`], [`crate::keyvalue`], …); the server
//! is handed paths and values, and a loader to read its configuration again.
//! What needs the home (`-service`, `-stop-service`, `-reload`, `-startup`,
//! `-gendsync`, `~/dxync/dtp/`) is `manager::dtp_host`; `tests/layering.rs`
//! keeps it so.
//!
//! # Protocol, version 1.1
//!
//! ## The manifest `data.dsync`
//! One zstd frame holding ASCII text. A header, a blank line, then one line per
//! entry:
//!
//! ```text
//! DSYNC 1
//! repo debian
//! entries 3
//! bytes 1234
//! generated 1763900000
//! digest sha256:<64 lowercase hex>
//!
//! d 0755 - 1763800000 - dists
//! f 0644 1234 1763800000 <64 lowercase hex> dists/Release
//! l 0777 - 1763800000 - current dists/bookworm
//! ```
//!
//! - `entries` counts the entry lines, `bytes` adds the sizes of the files,
//!   `generated` is when the manifest was made (Unix seconds), `digest` is the
//!   SHA-256 of the body (every entry line, each with its `\n`, nothing else).
//!   The digest is the manifest's identity: the HTTP ETag, and what a client
//!   remembers to ask "has anything changed?".
//! - Entry fields are separated by one space: type (`f` file, `d` folder, `l`
//!   symlink), permission bits as four octal digits, size in bytes (`-` unless a
//!   file), mtime in Unix seconds, SHA-256 of the content (`-` unless a file),
//!   the path relative to the repository root, and for a symlink its target.
//! - Paths and targets are written byte by byte: `0x21..=0x7E` stand for
//!   themselves except `%`; every other byte (space, `%`, control characters,
//!   bytes of non-ASCII UTF-8 or of invalid UTF-8) is `%XX`, upper-case hex. So no
//!   name can break a line or a field, and any name a file system allows survives.
//! - Lines are sorted by the raw bytes of the path, so the same tree always
//!   gives the same body and digest. A folder comes before what it holds. The
//!   root itself is not listed.
//! - A valid path is relative, its components are separated by single `/`,
//!   none is empty, `.` or `..`, none holds a NUL; at most 4096 bytes in all and
//!   255 per component. A symlink's target is not empty, holds no NUL, and
//!   has at most 4095 bytes. A reader refuses any other manifest as a whole.
//! - Never listed: `data.dsync` itself and its temporary files, the client's
//!   partial downloads (`*.dsync-part`, `.dsync-tmp-*`), rsync's `.~tmp~`
//!   folders, `.dsync-cache` (older versions' hash cache) and `.dsync-emoff`. The upstream's
//!   `Archive-Update-in-Progress-*` files are listed: a downstream that sees one
//!   waits and asks again later, as ftpsync does.
//!
//! ## HTTP
//! HTTP/1.1, `GET` and `HEAD`, and `POST` for batches (1.1); default port
//! 47921; `dtp://HOST[:PORT]/REPO` means `http://HOST[:PORT]/REPO/`.
//!
//! - `GET /`: `text/plain`, the motd and the names of the served repositories.
//! - `GET /api/repos`: JSON array of `{"name", "digest", "entries", "bytes",
//!   "generated"}` (digest and the rest `null` while a repository has no manifest).
//! - `GET /REPO/data.dsync`: the manifest, `ETag: "sha256:HEX"` (the digest);
//!   `If-None-Match` with that ETag answers `304 Not Modified`.
//! - `GET /REPO/PATH`: a regular file of the repository, PATH escaped as in the
//!   manifest (`%XX`). `Range: bytes=N-` and `bytes=N-M` answer `206` with
//!   `Content-Range`. Folders, symlinks and anything not a regular file are 404;
//!   no symlink is ever followed on the server.
//! - `POST /REPO/data.dsync` (1.1): a batch. The body is one path per line,
//!   escaped as in a file's URL, each ending in `\n`; each is checked as a
//!   `GET` of it, and any refusal refuses the whole batch (`413` for more files
//!   or bytes than the limits). The answer streams each file in the order
//!   asked: its length (8 bytes, big-endian), then its bytes. The manifest's
//!   answer advertises the limits: `DTP-Batch: files=N, bytes=M`; without it (a
//!   version 1 host), or when a batch is answered `405`/`501`, a client fetches
//!   file by file. Details: `man/dtp.7`, [`server`]'s `batch`, the client's `batch`.
//! - `400` malformed request or path, `403` address not allowed, `404` not
//!   there, `405` other methods, `413` too large a batch, `416` bad range,
//!   `503` too many connections from one address.
//!
//! ## Host files (`~/dxync/dtp/`)
//! `list.conf` (one served path per line, relative to `webroot=`; the URL name
//! is its last component), `firewall.conf` (`allow=IP, IP, CIDR…`; none: open),
//! `motd.conf` (`경로=/path/of/motd`, default: the `motd file` of
//! `/etc/rsyncd.conf`).
//!
//! ## Privileges
//! The service never serves as root: started as root it binds, opens its
//! access log and writes its pid file, then becomes `dtp-user=` of xync.conf
//! for good (none set: `nobody`/`nogroup`, as rsync's daemon). It refuses a served folder its
//! account can write or cannot read (started as another user: a warning).

pub mod client;
pub mod escape;
pub mod manifest;
pub mod ordered_walk;
pub mod server;

/// The manifest's file name, at the root of every served repository.
pub const MANIFEST: &str = "data.dsync";
/// The port a DTP URL without one means.
pub const DEFAULT_PORT: u16 = 47921;
/// The header on a manifest's answer saying the host serves batches
/// (protocol 1.1), with its limits: `files=N, bytes=M`.
pub const BATCH_HEADER: &str = "dtp-batch";
