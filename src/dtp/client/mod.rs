//! The DTP client: fetch a manifest, diff, download in parallel, apply in stages.
//!
//! [`sync`] brings `save` to the state the upstream's manifest describes:
//!
//! 1. `GET data.dsync` with `If-None-Match` = our own manifest's ETag: `304`
//!    means nothing changed, and we are done without looking at the tree.
//! 2. Decode it within [`manifest::Limits`] (the upstream is not trusted).
//! 3. An `Archive-Update-in-Progress-*` entry: the upstream is mid-update;
//!    wait and ask again (as ftpsync does), then give up.
//! 4. Walk the local tree and plan; refuse more removals than `max_delete`
//!    before anything is touched.
//! 5. Create missing folders.
//! 6. Stage one: every file but the indices, each put in place once verified.
//! 7. Stage two: the indices, all verified before any is put in place; then
//!    symlinks.
//! 8. Deletions, then folder modes and mtimes.
//! 9. Install the fetched manifest, so this mirror can serve DTP in turn.
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
mod safe;
mod sink;
mod target;
mod url;
mod walk;
mod writer;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use error::ClientError;
pub use index::is_index;
pub use url::base as base_url;

use crate::dtp::manifest::{self, Entry, Manifest};
use download::{Finish, fetch_all};
use fetch::{Fetcher, ManifestReply};
use safe::Root;

/// The prefix of the file an upstream shows while it updates its archive.
pub const UPDATE_IN_PROGRESS: &str = "Archive-Update-in-Progress-";
/// Environment variable that ends a sync after stage one (tests only).
pub const STOP_AFTER_STAGE1: &str = "DSYNC_DTP_STOP_AFTER_STAGE1";
/// Concurrent downloads unless told otherwise.
pub const DEFAULT_CONNECTIONS: usize = 50;
/// Threads reading the local tree.
const WALK_THREADS: usize = 4;

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
    /// Connect and read timeout; zero: none.
    pub timeout: Duration,
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
fn shrink_guard(
    options: &ClientOptions,
    manifest: &Manifest,
    local: &walk::Local,
) -> Result<(), ClientError> {
    use crate::dtp::manifest::Kind;
    let upstream = manifest
        .entries
        .iter()
        .filter(|e| e.kind == Kind::File)
        .count() as u64;
    let mirror = local
        .entries
        .values()
        .filter(|e| e.kind == walk::LocalKind::File)
        .count() as u64;
    crate::shrink::check(
        upstream,
        mirror,
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
    )?;

    // 1–3: the manifest, unless it is the one we have.
    let ours = manifest::read_header(&save.join(crate::dtp::MANIFEST)).ok();
    // A mirror without its manifest (wiped, never synced) asks for everything.
    let etag = match &options.etag_file {
        _ if ours.is_none() => None,
        Some(file) => std::fs::read_to_string(file)
            .ok()
            .map(|t| t.trim().to_string()),
        None => ours.as_ref().map(|h| h.etag()),
    };
    let (bytes, manifest) = match fetch_manifest(&fetcher, options, etag.as_deref(), log).await? {
        Some(fetched) => fetched,
        None => {
            log(&format!(
                "manifest not modified ({}): the mirror is up to date",
                etag.as_deref().unwrap_or_default()
            ));
            return Ok(Summary {
                unchanged: true,
                entries: ours.map_or(0, |h| h.entries),
                ..Summary::default()
            });
        }
    };
    log(&format!(
        "manifest of {}: {} entries, {} bytes, digest {}",
        manifest.header.repo,
        manifest.header.entries,
        manifest.header.bytes,
        manifest.header.digest
    ));

    // 4: plan, and refuse too many removals while nothing is touched yet.
    log("comparing with the local tree");
    let root = Root::open(save).map_err(|e| ClientError::local(save, "open", e))?;
    let mut local =
        walk::walk(&root, WALK_THREADS).map_err(|(path, e)| ClientError::local(path, "read", e))?;
    for path in &options.protect {
        if manifest.find(path).is_none() {
            local.entries.remove(path);
        }
    }
    shrink_guard(options, &manifest, &local)?;
    let plan = diff::plan(&manifest, local);
    log(&format!(
        "plan: {} folders to create, stage one {} files ({} bytes), stage two {} files ({} bytes), {} symlinks, {} removals",
        plan.mkdirs.len(),
        plan.stage_one.len(),
        plan.bytes(&manifest, &plan.stage_one),
        plan.stage_two.len(),
        plan.bytes(&manifest, &plan.stage_two),
        plan.links.len(),
        plan.removals()
    ));
    if plan.removals() > options.max_delete {
        return Err(ClientError::TooManyDeletions {
            count: plan.removals(),
            max: options.max_delete,
        });
    }
    stop_if_signalled()?;

    // 5–6: folders, then everything but the indices.
    apply::make_dirs(&root, &manifest, &plan)?;
    apply::fix_modes(&root, &manifest, &plan)?;
    let stage_one = entries(&manifest, &plan.stage_one);
    let one = fetch_all(
        &fetcher,
        &root,
        &stage_one,
        Finish::Rename,
        options.connections,
        "stage one",
        log,
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
        entries: manifest.entries.len() as u64,
    };
    after_stage(1).map_err(ClientError::Hook)?;
    if std::env::var_os(STOP_AFTER_STAGE1).is_some_and(|v| v == "1") {
        log(&format!("{STOP_AFTER_STAGE1}=1: stopping after stage one"));
        return Ok(summary);
    }
    stop_if_signalled()?;

    // 7: the indices, all verified before the first takes its name; symlinks.
    let stage_two = entries(&manifest, &plan.stage_two);
    let two = fetch_all(
        &fetcher,
        &root,
        &stage_two,
        Finish::Keep,
        options.connections,
        "stage two",
        log,
    )
    .await?;
    stop_if_signalled()?;
    apply::install_indices(&root, &stage_two)?;
    let skipped = apply::make_links(&root, &manifest, &plan, log)?;
    summary.fetched_files += two.files;
    summary.fetched_bytes += two.bytes;
    log(&format!(
        "stage two done: {} index files ({} bytes) in place, {} symlinks made, {skipped} skipped",
        two.files,
        two.bytes,
        plan.links.len() as u64 - skipped
    ));

    // 8: what the upstream no longer has; then folder metadata.
    apply::remove_ours(&root, &plan);
    summary.deleted = apply::delete(&root, &plan)?;
    apply::dir_meta(&root, &manifest, &plan)?;
    if summary.deleted > 0 {
        log(&format!("deleted {} entries", summary.deleted));
    }

    after_stage(2).map_err(ClientError::Hook)?;

    // 9: the manifest, exactly as fetched.
    manifest::install_bytes(save, &bytes)
        .map_err(|e| ClientError::local(save.join(crate::dtp::MANIFEST), "write", e))?;
    if let Some(file) = &options.etag_file {
        std::fs::write(file, format!("{}\n", manifest.header.etag()))
            .map_err(|e| ClientError::local(file, "write", e))?;
    }
    Ok(summary)
}

/// The upstream's manifest and its bytes; `None` when it is the one we have.
/// An update in progress upstream is waited out `uip_retries` times.
async fn fetch_manifest(
    fetcher: &Fetcher,
    options: &ClientOptions,
    etag: Option<&str>,
    log: &dyn Fn(&str),
) -> Result<Option<(Vec<u8>, Manifest)>, ClientError> {
    // zstd never makes text much larger than it is.
    let max = options.limits.max_bytes.saturating_add(1 << 20);
    let mut waited = 0;
    loop {
        let bytes = match fetcher.manifest(etag, max).await? {
            ManifestReply::NotModified => return Ok(None),
            ManifestReply::Body(bytes) => bytes,
        };
        let manifest =
            Manifest::decode(&bytes, &options.limits).map_err(|source| ClientError::Manifest {
                url: fetcher.manifest_url(),
                source,
            })?;
        let Some(uip) = update_in_progress(&manifest) else {
            return Ok(Some((bytes, manifest)));
        };
        let file = uip.path.display().to_string();
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

fn update_in_progress(manifest: &Manifest) -> Option<&Entry> {
    manifest.entries.iter().find(|e| {
        e.path.file_name().is_some_and(|n| {
            n.as_encoded_bytes()
                .starts_with(UPDATE_IN_PROGRESS.as_bytes())
        })
    })
}

fn entries<'m>(manifest: &'m Manifest, indices: &[usize]) -> Vec<&'m Entry> {
    indices.iter().map(|&i| &manifest.entries[i]).collect()
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
