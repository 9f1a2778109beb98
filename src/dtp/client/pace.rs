//! A watchdog over each network phase of a sync (the manifest download,
//! stage one, stage two): the phase fails when it falls below a minimum
//! average rate after a grace period, or when a termination signal comes.
//! A per-read timeout alone lets a host drip one byte a second forever.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::error::ClientError;

/// How often the watchdog looks: a signal stops a phase within about this.
const TICK: Duration = Duration::from_millis(250);
/// The grace period is the timeout, at most this.
const MAX_GRACE: Duration = Duration::from_secs(60);

/// The floor under a phase's average rate.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Bytes per second; 0: no floor (signals still stop the phase).
    min_rate: u64,
    grace: Duration,
}

impl Pace {
    /// The grace is `timeout` (zero: none set) but at most a minute, so a
    /// slow start, a busy host or a resumed file's hashing is not punished.
    pub fn new(min_rate: u64, timeout: Duration) -> Pace {
        let grace = if timeout.is_zero() {
            MAX_GRACE
        } else {
            timeout.min(MAX_GRACE)
        };
        Pace { min_rate, grace }
    }

    /// A phase `elapsed` into it with `bytes` received is behind when
    /// `elapsed > grace + bytes / min_rate`: so a known size gets a deadline
    /// of grace + size / min_rate.
    fn behind(&self, elapsed: Duration, bytes: u64) -> bool {
        if self.min_rate == 0 {
            return false;
        }
        let earned = Duration::from_secs_f64(bytes as f64 / self.min_rate as f64);
        elapsed > self.grace.saturating_add(earned)
    }
}

/// Run `phase`, stopping it when `received` (a counter of the bytes the
/// fetcher has received, shared by the phase) falls behind `pace`, or on a
/// signal. Dropping the phase leaves its part files for the next run.
pub async fn watched<T>(
    pace: Pace,
    name: &'static str,
    received: &AtomicU64,
    phase: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::select! {
        result = phase => result,
        stopped = watchdog(pace, name, received) => Err(stopped),
    }
}

/// Never ends but with the reason to stop.
async fn watchdog(pace: Pace, name: &'static str, received: &AtomicU64) -> ClientError {
    let start = Instant::now();
    let before = received.load(Ordering::Relaxed);
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        if let Some(signal) = crate::signals::received() {
            return ClientError::Stopped(signal);
        }
        let bytes = received.load(Ordering::Relaxed).saturating_sub(before);
        let elapsed = start.elapsed();
        if pace.behind(elapsed, bytes) {
            return ClientError::TooSlow {
                phase: name,
                bytes,
                secs: elapsed.as_secs(),
                min_rate: pace.min_rate,
                grace: pace.grace.as_secs(),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_is_behind_once_past_grace_plus_what_its_bytes_earned() {
        let pace = Pace::new(1000, Duration::from_secs(5));
        let s = Duration::from_secs;
        assert!(!pace.behind(s(5), 0));
        assert!(pace.behind(s(6), 0));
        assert!(!pace.behind(s(14), 10_000), "10 s earned");
        assert!(pace.behind(s(16), 10_000));
        assert!(!Pace::new(0, s(1)).behind(s(1 << 30), 0), "0: no floor");
        assert_eq!(Pace::new(1, Duration::ZERO).grace, MAX_GRACE);
        assert_eq!(Pace::new(1, s(3600)).grace, MAX_GRACE);
    }

    #[test]
    fn a_stalled_phase_fails_naming_itself_and_the_floor() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let counter = AtomicU64::new(0);
        let pace = Pace::new(16 << 10, Duration::from_millis(300));
        let stalled = std::future::pending::<Result<(), ClientError>>();
        let e = runtime
            .block_on(watched(pace, "stage one", &counter, stalled))
            .unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, ClientError::TooSlow { bytes: 0, .. }), "{e:?}");
        for word in ["stage one", "16384", "dtp-min-rate"] {
            assert!(text.contains(word), "{word}: {text}");
        }
    }
}
