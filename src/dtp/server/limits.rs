//! Per-client-address state: how many connections it holds (capped), and the
//! token bucket its downloads share when a bandwidth limit is set.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every client address with at least one open connection.
#[derive(Debug, Default)]
pub struct Clients {
    map: Mutex<HashMap<IpAddr, (usize, Arc<Client>)>>,
}

/// One client address.
#[derive(Debug)]
pub struct Client {
    bucket: Mutex<Bucket>,
}

/// A connection's place in its address's count; given back on drop.
#[derive(Debug)]
pub struct Slot {
    clients: Arc<Clients>,
    ip: IpAddr,
    client: Arc<Client>,
}

impl Clients {
    /// Take a slot for `ip` unless it already holds `cap` connections.
    pub fn enter(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<Slot> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let (count, client) = map.entry(ip).or_insert_with(|| {
            (
                0,
                Arc::new(Client {
                    bucket: Mutex::new(Bucket::new()),
                }),
            )
        });
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(Slot {
            clients: Arc::clone(self),
            ip,
            client: Arc::clone(client),
        })
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

impl Slot {
    pub fn client(&self) -> Arc<Client> {
        Arc::clone(&self.client)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.clients.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((count, _)) = map.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl Client {
    /// Take `n` bytes at `rate` bytes/s; how long to wait before sending them.
    pub fn reserve(&self, n: u64, rate: u64) -> Duration {
        self.bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reserve(n, rate, Instant::now())
    }
}

/// Tokens are bytes; they refill at the rate, up to one second's worth. A
/// taker may drive the level below zero and waits for the debt to be repaid,
/// so concurrent downloads queue behind each other fairly.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            tokens: 0.0,
            last: None,
        }
    }

    fn reserve(&mut self, n: u64, rate: u64, now: Instant) -> Duration {
        let rate = rate.max(1) as f64;
        let capacity = rate;
        self.tokens = match self.last {
            None => capacity,
            Some(last) => {
                (self.tokens + now.duration_since(last).as_secs_f64() * rate).min(capacity)
            }
        };
        self.last = Some(now);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

/// Bytes to read and send at once: small chunks under a small limit, so the
/// rate stays even.
pub fn chunk_size(rate: Option<u64>) -> usize {
    const MAX: u64 = 256 * 1024;
    match rate {
        None => MAX as usize,
        Some(rate) => (rate / 8).clamp(1024, MAX) as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_per_address_and_release() {
        let clients = Arc::new(Clients::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = clients.enter(a, 2).unwrap();
        let s2 = clients.enter(a, 2).unwrap();
        assert!(clients.enter(a, 2).is_none());
        let s3 = clients.enter(b, 2).unwrap();
        assert!(Arc::ptr_eq(&s1.client(), &s2.client()));
        drop(s1);
        let s4 = clients.enter(a, 2).unwrap();
        drop((s2, s3, s4));
        assert!(clients.is_empty());
    }

    #[test]
    fn bucket_rate() {
        let mut b = Bucket::new();
        let t0 = Instant::now();
        // One second's burst, then debt.
        assert_eq!(b.reserve(1000, 1000, t0), Duration::ZERO);
        assert_eq!(b.reserve(500, 1000, t0), Duration::from_millis(500));
        assert_eq!(b.reserve(500, 1000, t0), Duration::from_millis(1000));
        // Two seconds later the debt is paid and nothing more accrues.
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(b.reserve(1, 1000, t2), Duration::ZERO);
        assert_eq!(chunk_size(None), 256 * 1024);
        assert_eq!(chunk_size(Some(1024)), 1024);
        assert_eq!(chunk_size(Some(128 * 1024)), 16384);
    }
}
