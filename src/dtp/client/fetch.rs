//! HTTP to the DTP host: one client (and connection pool) per local address,
//! requests spread over them in turn, so a host with several uplinks uses all.

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, IF_NONE_MATCH, RANGE};
use reqwest::redirect::{Attempt, Policy};

use super::batch::Limits;
use super::error::{ClientError, chain, status_hint};
use super::precheck::Precheck;
use super::url;
use crate::dtp::manifest;

/// Redirects followed in a row before a request fails (reqwest's default).
const MAX_REDIRECTS: usize = 10;

/// Which redirects a host may send us to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Redirects {
    /// Only to the repository's own scheme, host and port: a hostile or
    /// compromised host must not point the client at another service.
    #[default]
    SameOrigin,
    /// Anywhere (`dtp-redirects=any`), for a repository behind a
    /// redirecting front end.
    Any,
}

pub struct Fetcher {
    base: String,
    clients: Vec<reqwest::Client>,
    next: AtomicUsize,
    /// The host's batch limits (protocol 1.1), from its manifest's answer;
    /// `None`: per-file requests only.
    batch: Mutex<Option<Limits>>,
    /// Bytes of every response body received so far: what the watchdog of a
    /// phase measures its rate by.
    received: AtomicU64,
}

/// The answer to "has the manifest changed?".
pub enum ManifestReply {
    NotModified,
    /// The manifest is in the spool given.
    Body,
}

/// How a file download starts.
pub enum Start {
    /// `200`: the whole file, from byte 0.
    Whole(reqwest::Response),
    /// `206`: from the offset asked for.
    Rest(reqwest::Response),
}

impl Fetcher {
    /// `connections` bounds the idle connections kept per address; a zero
    /// `timeout` means none.
    pub fn new(
        base: &str,
        addresses: &[IpAddr],
        connections: usize,
        timeout: Duration,
        redirects: Redirects,
    ) -> Result<Fetcher, ClientError> {
        // reqwest is built without a default TLS provider: name ours once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let locals: Vec<Option<IpAddr>> = if addresses.is_empty() {
            vec![None]
        } else {
            addresses.iter().copied().map(Some).collect()
        };
        let clients = locals
            .into_iter()
            .map(|local| {
                let mut builder = reqwest::Client::builder()
                    .user_agent(concat!("dsync/", env!("CARGO_PKG_VERSION")))
                    // Straight to the host, as rsync does: a proxy would also
                    // hide which local address a connection uses.
                    .no_proxy()
                    .pool_max_idle_per_host(connections.max(1))
                    .redirect(redirect_policy(base, redirects))
                    .local_address(local);
                if !timeout.is_zero() {
                    builder = builder.connect_timeout(timeout).read_timeout(timeout);
                }
                // Loading the system's root certificates costs ~20 ms a run:
                // only an https:// upstream needs them.
                if !base.starts_with("https://") {
                    builder = builder.tls_certs_only(Vec::new());
                }
                builder.build().map_err(|e| ClientError::Setup(chain(&e)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Fetcher {
            base: base.to_string(),
            clients,
            next: AtomicUsize::new(0),
            batch: Mutex::new(None),
            received: AtomicU64::new(0),
        })
    }

    /// Bytes of response bodies received so far.
    pub fn received(&self) -> &AtomicU64 {
        &self.received
    }

    /// The next piece of `response`'s body, counted in [`Fetcher::received`].
    pub async fn chunk(
        &self,
        response: &mut reqwest::Response,
    ) -> Result<Option<Bytes>, ClientError> {
        let chunk = response
            .chunk()
            .await
            .map_err(|e| network(response.url().as_str(), &e))?;
        if let Some(chunk) = &chunk {
            self.received
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        Ok(chunk)
    }

    pub fn manifest_url(&self) -> String {
        format!("{}{}", self.base, crate::dtp::MANIFEST)
    }

    fn client(&self) -> &reqwest::Client {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        &self.clients[n % self.clients.len()]
    }

    /// `GET data.dsync`, conditional on `etag`, into `out`; at most
    /// `max` bytes, checked while they arrive (see `precheck`).
    pub async fn manifest(
        &self,
        etag: Option<&str>,
        max: u64,
        limits: &manifest::Limits,
        out: &mut super::spool::Spool,
    ) -> Result<ManifestReply, ClientError> {
        out.clear()?;
        let url = self.manifest_url();
        let mut request = self.client().get(&url);
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let mut response = request.send().await.map_err(|e| network(&url, &e))?;
        match response.status() {
            StatusCode::NOT_MODIFIED => return Ok(ManifestReply::NotModified),
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(ClientError::NoManifest { url }),
            status => return Err(http(&url, status)),
        }
        self.set_batch(
            response
                .headers()
                .get(super::batch::HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(Limits::parse),
        );
        let invalid = |source| ClientError::Manifest {
            url: url.clone(),
            source,
        };
        let mut check = Precheck::new(limits).map_err(invalid)?;
        let mut len = 0u64;
        while let Some(chunk) = self.chunk(&mut response).await? {
            len += chunk.len() as u64;
            if len > max {
                return Err(invalid(manifest::ManifestError::Invalid {
                    line: 0,
                    reason: format!("larger than the limit of {max} bytes"),
                }));
            }
            check.push(&chunk).map_err(invalid)?;
            out.append(&chunk)?;
        }
        check.finish().map_err(invalid)?;
        out.mark_digest_checked();
        Ok(ManifestReply::Body)
    }

    /// The host's batch limits, if it serves batches.
    pub fn batch_limits(&self) -> Option<Limits> {
        *self.batch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Batches stop (`None`: the host turned out not to serve them).
    pub fn set_batch(&self, limits: Option<Limits>) {
        *self.batch.lock().unwrap_or_else(|e| e.into_inner()) = limits;
    }

    /// `POST data.dsync` naming `paths` (raw, as in the manifest): the
    /// response to read the batch from, or its status when not `200`.
    pub async fn batch(&self, paths: &[&[u8]]) -> Result<reqwest::Response, ClientError> {
        let url = self.manifest_url();
        let mut list = Vec::with_capacity(paths.len() * 64);
        // Escaped as in a file's URL, so the host checks them as it would a GET.
        for path in paths {
            list.extend_from_slice(url::path(path).as_bytes());
            list.push(b'\n');
        }
        let response = self
            .client()
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "text/plain")
            .body(list)
            .send()
            .await
            .map_err(|e| network(&url, &e))?;
        match response.status() {
            StatusCode::OK => Ok(response),
            status => Err(http(&url, status)),
        }
    }

    /// `GET` a file from byte `from` on (`Range: bytes=FROM-` when not 0).
    pub async fn file(&self, raw: &[u8], from: u64) -> Result<Start, ClientError> {
        let url = url::file(&self.base, raw);
        let mut request = self.client().get(&url);
        if from > 0 {
            request = request.header(RANGE, format!("bytes={from}-"));
        }
        let response = request.send().await.map_err(|e| network(&url, &e))?;
        match response.status() {
            StatusCode::OK => Ok(Start::Whole(response)),
            StatusCode::PARTIAL_CONTENT if from > 0 => {
                // Only `bytes FROM-…` continues what we have; anything else
                // is taken as the whole file would be: start over.
                let starts_right = response
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok())
                    == Some(from);
                if starts_right {
                    Ok(Start::Rest(response))
                } else {
                    Err(ClientError::Http {
                        url,
                        status: 206,
                        hint: "; the host answered another byte range than asked",
                    })
                }
            }
            status => Err(http(&url, status)),
        }
    }
}

/// reqwest's redirect policy for `redirects` from `base`.
fn redirect_policy(base: &str, redirects: Redirects) -> Policy {
    let origin = reqwest::Url::parse(base).map(|u| u.origin());
    match (redirects, origin) {
        (Redirects::SameOrigin, Ok(origin)) => Policy::custom(move |attempt: Attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else if attempt.url().origin() == origin {
                attempt.follow()
            } else {
                let to = attempt.url().to_string();
                attempt.error(OtherOrigin(to))
            }
        }),
        // A base that does not parse never gets this far (url::base).
        _ => Policy::limited(MAX_REDIRECTS),
    }
}

/// A redirect the policy refused, carried through reqwest's error.
#[derive(Debug, thiserror::Error)]
#[error("redirected to {0}")]
struct OtherOrigin(String);

pub fn network(url: &str, e: &reqwest::Error) -> ClientError {
    if let Some(to) = refused_redirect(e) {
        return ClientError::Redirect {
            url: url.to_string(),
            to,
        };
    }
    let mut reason = chain(e);
    // A host's firewall.conf turns addresses away with no answer at all.
    if ["closed before message completed", "reset by peer"]
        .iter()
        .any(|w| reason.contains(w))
    {
        reason.push_str(
            " (a DTP host closes connections from addresses its dtp/firewall.conf does not \
             allow without a word: if it keeps happening, ask its operator)",
        );
    }
    ClientError::Network {
        url: url.to_string(),
        reason,
    }
}

/// Where a redirect refused by [`redirect_policy`] pointed.
fn refused_redirect(e: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(OtherOrigin(to)) = cause.downcast_ref::<OtherOrigin>() {
            return Some(to.clone());
        }
        source = cause.source();
    }
    None
}

fn http(url: &str, status: StatusCode) -> ClientError {
    ClientError::Http {
        url: url.to_string(),
        status: status.as_u16(),
        hint: status_hint(status.as_u16()),
    }
}
