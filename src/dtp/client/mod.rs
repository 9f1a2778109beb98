//! The DTP client: fetch a manifest, diff, download in parallel, apply in stages.
//!
//! [`sync`] brings `save` to the state the upstream's manifest describes:
//!
//! 1. `GET data.dsync` with `If-None-Match` = our own manifest's ETag: `304`
//!    means nothing changed, and we are done without looking at the tree.
//! 2. Keep it in an unnamed file beside the mirror, not in memory, checking
//!    it while it arrives (`precheck`: header, size, digest), so a hostile
//!    host is cut off early.
//! 3. Read it entry by entry within [`manifest::Limits`] (the upstream is not
//!    trusted), merged with a walk of the local tree in the same order, into
//!    a plan (memory: what needs doing, not the tree; stage one's files go
//!    to a spool file). The plan is used only once the whole manifest has
//!    been read and found valid. An `Archive-Update-in-Progress-*` entry: the
//!    upstream is mid-update; wait and ask again (as ftpsync does), then give
//!    up.
//! 4. Refuse a shrunken upstream (`min_upstream_ratio`) or more removals
//!    than `max_delete` before anything is touched.
//! 5. Create missing folders.
//! 6. Stage one: every file but the indices, each put in place once verified
//!    (read back from the spool and fetched `WINDOW` files at a time).
//! 7. Stage two: the indices, all verified before any is put in place; then
//!    symlinks.
//! 8. Deletions, then folder modes and mtimes.
//! 9. Install the fetched manifest, so this mirror can serve DTP in turn.
//!
//! The manifest download, stage one and stage two each run under a watchdog
//! (`pace`): a phase below [`ClientOptions::min_rate`] on average after its
//! grace period fails, and a signal stops it within a second. Redirects go
//! only to the URL's own scheme, host and port unless
//! [`ClientOptions::redirects`] allows any.
//!
//! A failure stops at the step it happens in: what earlier steps did stays
//! (stage one only adds verified files; old indices still describe the old
//! state), nothing of later steps happens, and a failed run deletes nothing.
//!
//! For tests, `DSYNC_DTP_STOP_AFTER_STAGE1=1` in the environment ends a sync
//! successfully right after stage one, so the state apt would see between the
//! stages can be checked.

mod apply;
mod batch;
mod diff;
mod download;
mod error;
mod fetch;
mod index;
mod lists;
mod local;
mod pace;
mod precheck;
mod safe;
mod sink;
mod space;
mod spool;
mod target;
mod url;
mod writer;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use error::ClientError;
pub use fetch::Redirects;
pub use index::is_index;
pub use url::base as base_url;

use crate::dtp::manifest::{self, Entry};
use diff::{Plan, PlanError, Planner};
use download::{Fetched, Finish, fetch_all};
use fetch::{Fetcher, ManifestReply};
use lists::FileSpool;
use pace::{Pace, watched};
use safe::Root;
use spool::{Spool, spool_error};

/// The prefix of the file an upstream shows while it updates its archive.
pub const UPDATE_IN_PROGRESS: &str = "Archive-Update-in-Progress-";
/// Environment variable that ends a sync after stage one (tests only).
pub const STOP_AFTER_STAGE1: &str = "DSYNC_DTP_STOP_AFTER_STAGE1";
/// Concurrent downloads unless told otherwise.
pub const DEFAULT_CONNECTIONS: usize = 50;
/// The least average rate of a phase unless told otherwise, bytes/s.
pub const DEFAULT_MIN_RATE: u64 = 16 << 10;
/// Threads reading the local tree ahead of the plan.
const WALK_THREADS: usize = 3;
/// Stage-one files held in memory at once (a few MB): a first copy of a
/// million files is fetched in windows of this many.
const WINDOW: usize = 1 << 16;

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `dtp://HOST[:PORT]/REPO` or `http(s)://HOST[:PORT]/REPO/`.
    pub url: String,
    /// The local mirror.
    pub save: PathBuf,
    /// Local addresses to connect from, in turn; empty: the system's choice.
    pub addresses: Vec<IpAddr>,
    /// Downloads at the same time.
    pub connections: usize,
    /// Most entries one sync may remove (replacements included).
    pub max_delete: u64,
    /// Refuse a manifest listing fewer regular files than this fraction of
    /// the mirror's (src/shrink.rs); 0: no check.
    pub min_upstream_ratio: f64,
    /// Pause while the upstream shows an update in progress.
    pub uip_sleep: Duration,
    /// Pauses before giving up on an update in progress.
    pub uip_retries: u32,
    /// Connect and read timeout; zero: none. Also the grace period of
    /// `min_rate`, at most a minute.
    pub timeout: Duration,
    /// The least average rate, in bytes/s, of each phase (the manifest
    /// download, stage one, stage two) once its grace period is over; 0: no
    /// floor. A signal stops a phase within a second either way.
    pub min_rate: u64,
    /// Which redirects to follow.
    pub redirects: Redirects,
    pub limits: manifest::Limits,
    /// Relative paths of ours that the upstream does not list but that must
    /// never be deleted (our own trace file, as ftpsync protects it).
    pub protect: Vec<PathBuf>,
    /// Where to remember the upstream's ETag when the installed manifest may
    /// be changed after the sync (a downstream that writes its own trace);
    /// `None`: the installed manifest's own digest is the ETag.
    pub etag_file: Option<PathBuf>,
}

impl ClientOptions {
    /// Defaults for everything but where from and where to.
    pub fn new(url: &str, save: PathBuf) -> ClientOptions {
        ClientOptions {
            url: url.to_string(),
            save,
            addresses: Vec::new(),
            connections: DEFAULT_CONNECTIONS,
            max_delete: 40000,
            min_upstream_ratio: 0.5,
            uip_sleep: Duration::from_secs(300),
            uip_retries: 3,
            timeout: Duration::from_secs(600),
            min_rate: DEFAULT_MIN_RATE,
            redirects: Redirects::SameOrigin,
            limits: manifest::Limits::default(),
            protect: Vec::new(),
            etag_file: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The upstream's manifest was ours already: nothing was looked at.
    pub unchanged: bool,
    pub fetched_files: u64,
    pub fetched_bytes: u64,
    pub deleted: u64,
    /// Entries of the manifest.
    pub entries: u64,
}

/// Refuse a manifest whose regular files are too few beside the mirror's,
/// before anything is touched.
fn shrink_guard(options: &ClientOptions, plan: &Plan) -> Result<(), ClientError> {
    crate::shrink::check(
        plan.upstream_files,
        plan.mirror_files,
        options.min_upstream_ratio,
        &options.save,
        "min-upstream-ratio=0 in xync.conf",
    )
    .map_err(ClientError::Shrunk)
}

/// Sync `options.save` from `options.url`; `log` gets one line per step.
/// Runs its own tokio runtime: call it from plain (non-async) code.
pub fn sync(options: &ClientOptions, log: &dyn Fn(&str)) -> Result<Summary, ClientError> {
    sync_with_hooks(options, log, &|_| Ok(()))
}

/// [`sync`], calling `after_stage(1)` when stage one is done and
/// `after_stage(2)` when stage two and the deletions are (ftpsync's HOOK2 and
/// HOOK3 points); an `Err` from it stops the sync there.
pub fn sync_with_hooks(
    options: &ClientOptions,
    log: &dyn Fn(&str),
    after_stage: &dyn Fn(u8) -> Result<(), String>,
) -> Result<Summary, ClientError> {
    let base = url::base(&options.url)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ClientError::Setup(e.to_string()))?;
    runtime.block_on(run(options, &base, log, after_stage))
}

async fn run(
    options: &ClientOptions,
    base: &str,
    log: &dyn Fn(&str),
    after_stage: &dyn Fn(u8) -> Result<(), String>,
) -> Result<Summary, ClientError> {
    let save = &options.save;
    std::fs::create_dir_all(save).map_err(|e| ClientError::local(save, "create", e))?;
    let fetcher = Fetcher::new(
        base,
        &options.addresses,
        options.connections,
        options.timeout,
        options.redirects,
    )?;
    let pace = Pace::new(options.min_rate, options.timeout);

    // 1–4: the manifest, unless it is the one we have, and the plan.
    let ours = manifest::read_header(&save.join(crate::dtp::MANIFEST)).ok();
    // A mirror without its manifest (wiped, never synced) asks for everything.
    let etag = match &options.etag_file {
        _ if ours.is_none() => None,
        Some(file) => std::fs::read_to_string(file)
            .ok()
            .map(|t| t.trim().to_string()),
        None => ours.as_ref().map(|h| h.etag()),
    };
    let root = Root::open(save).map_err(|e| ClientError::local(save, "open", e))?;
    let Some((spool, plan)) =
        fetch_and_plan(&fetcher, pace, &root, options, etag.as_deref(), log).await?
    else {
        log(&format!(
            "manifest not modified ({}): the mirror is up to date",
            etag.as_deref().unwrap_or_default()
        ));
        return Ok(Summary {
            unchanged: true,
            entries: ours.map_or(0, |h| h.entries),
            ..Summary::default()
        });
    };
    let header = plan.header.clone();
    log(&format!(
        "manifest of {}: {} entries, {} bytes, digest {}",
        header.repo, header.entries, header.bytes, header.digest
    ));

    // Refusals, while nothing is touched yet.
    shrink_guard(options, &plan)?;
    log(&format!(
        "plan: {} folders to create, stage one {} files ({} bytes), stage two {} files ({} bytes), {} symlinks, {} removals",
        plan.mkdirs.len(),
        plan.stage_one.len(),
        plan.stage_one.bytes(),
        plan.stage_two.len(),
        plan.stage_two_bytes(),
        plan.links.len(),
        plan.removals()
    ));
    if plan.removals() > options.max_delete {
        return Err(ClientError::TooManyDeletions {
            count: plan.removals(),
            max: options.max_delete,
        });
    }
    space::check(&root, &plan)?;
    stop_if_signalled()?;

    // 5–6: folders, then everything but the indices.
    apply::make_dirs(&root, plan.missing_dirs())?;
    apply::fix_modes(&root, &plan.chmods)?;
    let one = watched(
        pace,
        "stage one",
        fetcher.received(),
        stage_one(&fetcher, &root, plan.stage_one, options, log),
    )
    .await?;
    log(&format!(
        "stage one done: {} files, {} bytes fetched",
        one.files, one.bytes
    ));
    let mut summary = Summary {
        unchanged: false,
        fetched_files: one.files,
        fetched_bytes: one.bytes,
        deleted: 0,
        entries: header.entries,
    };
    after_stage(1).map_err(ClientError::Hook)?;
    if std::env::var_os(STOP_AFTER_STAGE1).is_some_and(|v| v == "1") {
        log(&format!("{STOP_AFTER_STAGE1}=1: stopping after stage one"));
        return Ok(summary);
    }
    stop_if_signalled()?;

    // 7: the indices, all verified before the first takes its name; symlinks.
    let stage_two: Vec<&Entry> = plan.stage_two.iter().collect();
    let two = watched(
        pace,
        "stage two",
        fetcher.received(),
        fetch_all(
            &fetcher,
            &root,
            &stage_two,
            Finish::Keep,
            options.connections,
            "stage two",
            log,
        ),
    )
    .await?;
    stop_if_signalled()?;
    apply::install_indices(&root, &stage_two)?;
    let skipped = apply::make_links(&root, &plan.links, log)?;
    summary.fetched_files += two.files;
    summary.fetched_bytes += two.bytes;
    log(&format!(
        "stage two done: {} index files ({} bytes) in place, {} symlinks made, {skipped} skipped",
        two.files,
        two.bytes,
        plan.links.len() as u64 - skipped
    ));

    // 8: what the upstream no longer has; then folder metadata.
    apply::remove_ours(&root, &plan.ours);
    summary.deleted = apply::delete(&root, &plan.deletions)?;
    apply::dir_meta(&root, &plan.dirs)?;
    if summary.deleted > 0 {
        log(&format!("deleted {} entries", summary.deleted));
    }

    after_stage(2).map_err(ClientError::Hook)?;

    // 9: the manifest, exactly as fetched.
    spool
        .install(save)
        .map_err(|e| ClientError::local(save.join(crate::dtp::MANIFEST), "write", e))?;
    if let Some(file) = &options.etag_file {
        std::fs::write(file, format!("{}\n", header.etag()))
            .map_err(|e| ClientError::local(file, "write", e))?;
    }
    Ok(summary)
}

/// The upstream's manifest (spooled) and the plan to reach it; `None` when
/// it is the one we have. An update in progress upstream is waited out
/// `uip_retries` times.
async fn fetch_and_plan(
    fetcher: &Fetcher,
    pace: Pace,
    root: &Root,
    options: &ClientOptions,
    etag: Option<&str>,
    log: &dyn Fn(&str),
) -> Result<Option<(Spool, Plan)>, ClientError> {
    // zstd never makes text much larger than it is.
    let max = options.limits.max_bytes.saturating_add(1 << 20);
    let mut spool = Spool::new(&options.save)?;
    let mut waited = 0;
    loop {
        let download = fetcher.manifest(etag, max, &options.limits, &mut spool);
        let reply = watched(pace, "the manifest download", fetcher.received(), download).await?;
        if let ManifestReply::NotModified = reply {
            return Ok(None);
        }
        log("comparing with the local tree");
        let plan = plan(&spool, root, options, &fetcher.manifest_url())?;
        let Some(uip) = &plan.update_in_progress else {
            return Ok(Some((spool, plan)));
        };
        let file = uip.display().to_string();
        if waited >= options.uip_retries {
            return Err(ClientError::UpdateInProgress {
                file,
                tries: waited + 1,
            });
        }
        waited += 1;
        log(&format!(
            "the upstream is updating ({file}): waiting {} s before asking again ({waited}/{})",
            options.uip_sleep.as_secs(),
            options.uip_retries
        ));
        sleep_unless_signalled(options.uip_sleep).await?;
    }
}

/// Merge the spooled manifest with the local tree (see [`diff`]); the plan
/// is returned only once the whole manifest has been found valid.
fn plan(
    spool: &Spool,
    root: &Root,
    options: &ClientOptions,
    url: &str,
) -> Result<Plan, ClientError> {
    let failed = |e: PlanError| match e {
        PlanError::Manifest(source) => ClientError::Manifest {
            url: url.to_string(),
            source,
        },
        PlanError::Spool(e) => spool_error(&options.save)(e),
    };
    let entries = spool
        .entries(&options.limits)
        .map_err(|e| failed(PlanError::Manifest(e)))?;
    let header = entries.header().clone();
    // Made before the walk starts: a named fallback must not be seen by it.
    let files = FileSpool::new(spool.scratch()?);
    let mut planner = Planner::new(
        header,
        entries,
        files,
        &options.protect,
        options.max_delete,
        options.limits.max_plan_bytes,
    )
    .map_err(failed)?;
    let walked = local::walk(root, WALK_THREADS, |found| match planner.local(found) {
        Ok(true) => Ok(()),
        Ok(false) => Err(None),
        Err(e) => Err(Some(e)),
    });
    match walked {
        Ok(()) | Err(local::Stop::Visit(None)) => {}
        Err(local::Stop::Visit(Some(e))) => return Err(failed(e)),
        Err(local::Stop::Failed(e)) => return Err(e),
    }
    planner.finish().map_err(failed)
}

/// Stage one, a window of entries at a time.
async fn stage_one(
    fetcher: &Fetcher,
    root: &Root,
    files: FileSpool,
    options: &ClientOptions,
    log: &dyn Fn(&str),
) -> Result<Fetched, ClientError> {
    let failed = spool_error(&options.save);
    let mut windows = files.into_windows(WINDOW).map_err(failed)?;
    let mut done = Fetched::default();
    loop {
        let window = match windows.next_window() {
            Ok(Some(window)) => window,
            Ok(None) => return Ok(done),
            Err(e) => return Err(spool_error(&options.save)(e)),
        };
        let entries: Vec<&Entry> = window.iter().collect();
        let got = fetch_all(
            fetcher,
            root,
            &entries,
            Finish::Rename,
            options.connections,
            "stage one",
            log,
        )
        .await?;
        done.files += got.files;
        done.bytes += got.bytes;
    }
}

fn stop_if_signalled() -> Result<(), ClientError> {
    match crate::signals::received() {
        Some(signal) => Err(ClientError::Stopped(signal)),
        None => Ok(()),
    }
}

async fn sleep_unless_signalled(pause: Duration) -> Result<(), ClientError> {
    let until = tokio::time::Instant::now() + pause;
    while tokio::time::Instant::now() < until {
        stop_if_signalled()?;
        let step = until
            .saturating_duration_since(tokio::time::Instant::now())
            .min(Duration::from_millis(250));
        tokio::time::sleep(step).await;
    }
    stop_if_signalled()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_host_is_a_transient_network_error() {
        let save = tempfile::tempdir().unwrap();
        // Port 1 on loopback: nothing listens there.
        for url in ["dtp://127.0.0.1:1/repo", "https://127.0.0.1:1/repo/"] {
            let mut options = ClientOptions::new(url, save.path().join("m"));
            options.timeout = Duration::from_secs(5);
            match sync(&options, &|_| {}) {
                Err(e @ ClientError::Network { .. }) => {
                    assert!(e.is_transient());
                    assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_bad_url_is_refused_before_anything_happens() {
        let save = tempfile::tempdir().unwrap();
        let options = ClientOptions::new("ftp://h/r", save.path().join("m"));
        assert!(matches!(
            sync(&options, &|_| {}),
            Err(ClientError::BadUrl { .. })
        ));
        assert!(!save.path().join("m").exists());
    }
}
