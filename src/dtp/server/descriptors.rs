//! The descriptor budget: clients must not be able to run the service out of
//! file descriptors, or every request after that fails (`EMFILE`).
//!
//! At start the soft `RLIMIT_NOFILE` is raised to the hard one; the limit is
//! then split three ways:
//!
//! - a reserve, never handed out: what is open already (runtime, listener,
//!   access log, held home) and [`RESERVE`] more for accepting, reopening the
//!   log and reading the configuration again on reload;
//! - refusals: a few sockets answered 503 and closed, when an address holds
//!   too many connections or the budget below is spent (beyond, a refused
//!   connection is closed without a word);
//! - the budget proper: each connection's socket and each file it has open
//!   takes a [`Permit`] for as long as it is open. A request that cannot have
//!   its permits is answered 503 with `Retry-After`, never 500.

use std::fs::File;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Descriptors kept back beyond those open at start: the socket being
/// accepted, the access log reopened on reload, the configuration files and
/// served trees read and checked on reload.
pub const RESERVE: u64 = 32;
/// Most refusals (503, then close) in progress at once.
const MAX_REFUSALS: u64 = 256;
/// Under this budget the service still runs, but says the limit is too low.
const SMALL_BUDGET: usize = 64;
/// How often, at most, the service log says the budget is spent.
const SAY_EVERY_SECS: u64 = 60;

/// The descriptor limit after [`raise_limit`]: what it was and what it is.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub was: u64,
    pub now: u64,
}

/// Raise the soft `RLIMIT_NOFILE` to the hard one: the default soft limit
/// (1024) is far below what a busy service needs, and the hard one is the
/// operator's choice. A hard limit the kernel refuses (above
/// `fs.nr_open`) leaves the soft one as it was.
pub fn raise_limit() -> Limit {
    let old = getrlimit(Resource::Nofile);
    // No NOFILE limit is unlimited on Linux; `None` would mean it is.
    let was = old.current.unwrap_or(u64::MAX);
    let Some(hard) = old.maximum.filter(|hard| *hard > was) else {
        return Limit { was, now: was };
    };
    let raised = Rlimit {
        current: Some(hard),
        maximum: old.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => Limit { was, now: hard },
        Err(_) => Limit { was, now: was },
    }
}

/// Descriptors open in this process now.
pub fn open_now() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64)
}

/// The budget; cheap to clone, shared by every connection.
#[derive(Debug, Clone)]
pub struct Budget {
    permits: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
    size: usize,
    /// When the service log last said the budget was spent (Unix seconds).
    said: Arc<AtomicU64>,
}

/// Descriptors held while it lives.
#[derive(Debug)]
pub struct Permit(#[allow(dead_code)] OwnedSemaphorePermit);

/// No descriptor left in the budget: the request is answered 503.
#[derive(Debug, thiserror::Error)]
#[error("the service has no file descriptor to spare now (all {size} in use)")]
pub struct Spent {
    pub size: usize,
}

impl Budget {
    /// The budget under a limit of `limit` descriptors, `open` of them open.
    pub fn new(limit: u64, open: u64) -> Budget {
        let refusals = (limit / 8).min(MAX_REFUSALS);
        let size = limit.saturating_sub(open + RESERVE + refusals);
        let size = usize::try_from(size)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Budget {
            permits: Arc::new(Semaphore::new(size)),
            refusals: Arc::new(Semaphore::new(refusals as usize)),
            size,
            said: Arc::default(),
        }
    }

    /// Descriptors for connections and their files.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Is this budget too small for a service of any use?
    pub fn is_small(&self) -> bool {
        self.size < SMALL_BUDGET
    }

    /// `n` descriptors, or [`Spent`] now (never waits: a client told 503
    /// comes back later, one kept waiting holds its socket meanwhile).
    pub fn take(&self, n: u32) -> Result<Permit, Spent> {
        match Arc::clone(&self.permits).try_acquire_many_owned(n) {
            Ok(permit) => Ok(Permit(permit)),
            Err(_) => {
                self.say_spent();
                Err(Spent { size: self.size })
            }
        }
    }

    /// `n` descriptors if they are free now, for something the service can
    /// do without (nothing is said when they are not).
    pub fn try_take(&self, n: u32) -> Option<Permit> {
        Arc::clone(&self.permits)
            .try_acquire_many_owned(n)
            .ok()
            .map(Permit)
    }

    /// A socket to answer 503 on, or none: close it without a word.
    pub fn refusal(&self) -> Option<Permit> {
        Arc::clone(&self.refusals)
            .try_acquire_owned()
            .ok()
            .map(Permit)
    }

    /// Tell the operator, once a minute at most: each refused request is in
    /// the access log already.
    fn say_spent(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.said.load(Ordering::Relaxed);
        if now >= last + SAY_EVERY_SECS
            && self
                .said
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            super::say(&format!(
                "all {} file descriptors for clients are in use: requests are answered 503 \
                 until some close. If this is not an attack, raise the service's descriptor \
                 limit (LimitNOFILE= in its unit, or ulimit -Hn) or lower dtp-maxconn",
                self.size
            ));
        }
    }
}

impl Permit {
    /// One permit for the descriptors of both.
    pub fn join(mut self, other: Permit) -> Permit {
        self.0.merge(other.0);
        self
    }

    /// Give back all but `keep` of the descriptors held (`keep` must not be
    /// more than are held): the rest were open only for a moment.
    pub fn keep(mut self, keep: u32) -> Permit {
        let held = self.0.num_permits();
        if let Some(freed) = self.0.split(held.saturating_sub(keep as usize)) {
            drop(freed);
        }
        self
    }
}

/// A served file with the permit for its descriptor: the permit is given
/// back when the file is closed, wherever its last reference goes.
#[derive(Debug)]
pub struct HeldFile {
    file: File,
    _permit: Option<Permit>,
}

impl HeldFile {
    pub fn new(file: File, permit: Permit) -> HeldFile {
        HeldFile {
            file,
            _permit: Some(permit),
        }
    }

    /// A file outside the budget (unit tests).
    #[cfg(test)]
    pub fn unbudgeted(file: File) -> HeldFile {
        HeldFile {
            file,
            _permit: None,
        }
    }
}

impl Deref for HeldFile {
    type Target = File;

    fn deref(&self) -> &File {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_split_into_reserve_refusals_and_budget() {
        let budget = Budget::new(256, 12);
        // 256 - 12 open - 32 reserve - 32 refusals.
        assert_eq!(budget.size(), 180);
        assert!(!budget.is_small());
        let refusals: Vec<Permit> = std::iter::from_fn(|| budget.refusal()).collect();
        assert_eq!(refusals.len(), 32);
        // A limit below what is open already leaves nothing, without panic.
        let none = Budget::new(40, 50);
        assert_eq!(none.size(), 0);
        assert!(none.take(1).is_err());
        // Huge limits: refusals capped, the budget within the semaphore's range.
        let huge = Budget::new(u64::MAX, 10);
        assert_eq!(huge.size(), Semaphore::MAX_PERMITS);
    }

    #[test]
    fn permits_are_taken_whole_or_not_and_given_back() {
        let budget = Budget::new(256, 12 + 180 - 5);
        assert_eq!(budget.size(), 5);
        let three = budget.take(3).unwrap();
        assert!(budget.take(3).is_err(), "two left: three are refused whole");
        let one = three.keep(1);
        let four = budget.take(4).unwrap();
        assert!(budget.take(1).is_err());
        drop((one, four));
        assert!(budget.take(5).is_ok());
    }

    #[test]
    fn raising_the_limit_never_lowers_it() {
        let before = getrlimit(Resource::Nofile);
        let limit = raise_limit();
        let after = getrlimit(Resource::Nofile);
        assert_eq!(Some(limit.now), after.current);
        assert!(limit.now >= limit.was);
        assert_eq!(after.maximum, before.maximum);
        assert!(open_now() > 0);
    }
}
