//! What every connection shares: the current configuration (swapped whole on
//! reload), the access log, the per-address counters, the descriptor budget
//! and the header cache.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::access_log::AccessLog;
use super::config::Config;
use super::descriptors::Budget;
use super::headers::HeaderCache;
use super::limits::Clients;

pub struct Shared {
    config: RwLock<Arc<Config>>,
    pub log: Arc<AccessLog>,
    pub clients: Arc<Clients>,
    pub budget: Budget,
    pub headers: HeaderCache,
    pub timeouts: Timeouts,
}

impl Shared {
    pub fn new(config: Config, log: AccessLog, timeouts: Timeouts, budget: Budget) -> Shared {
        Shared {
            config: RwLock::new(Arc::new(config)),
            log: Arc::new(log),
            clients: Arc::default(),
            budget,
            headers: HeaderCache::default(),
            timeouts,
        }
    }

    /// The configuration now; a request keeps the one it started with.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn replace(&self, config: Config) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }
}

/// How long the service waits for clients. Tests shorten them through the
/// environment (milliseconds): `DSYNC_DTP_HEADER_TIMEOUT_MS`,
/// `DSYNC_DTP_WRITE_TIMEOUT_MS`, `DSYNC_DTP_GRACE_MS`.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A request head must arrive within this; also how long an idle
    /// keep-alive connection is kept (10 s).
    pub header: Duration,
    /// A write may stay stuck this long before the client is dropped (60 s).
    pub write: Duration,
    /// On SIGTERM, transfers in progress get this long to finish (5 s).
    pub grace: Duration,
}

impl Timeouts {
    pub fn from_env() -> Timeouts {
        let ms = |name: &str, default: u64| {
            let value = std::env::var(name).ok().and_then(|v| v.trim().parse().ok());
            Duration::from_millis(value.filter(|v| *v > 0).unwrap_or(default))
        };
        Timeouts {
            header: ms("DSYNC_DTP_HEADER_TIMEOUT_MS", 10_000),
            write: ms("DSYNC_DTP_WRITE_TIMEOUT_MS", 60_000),
            grace: ms("DSYNC_DTP_GRACE_MS", 5_000),
        }
    }
}
