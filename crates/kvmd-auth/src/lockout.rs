//! Brute-force lockout per (user, client address).
//!
//! kvmd has no rate limiting at all. kvmd-rs counts consecutive failed password checks
//! per user and client address; after `failures` of them within `window`, that pair is
//! locked for `lock`: every password check of the pair fails, answered exactly like a
//! wrong password (403), and logged. A success resets the count. Locking per address
//! means an attacker elsewhere cannot lock a legitimate user out. The numbers are in
//! `docs/SECURITY.md`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The lockout knobs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    /// Consecutive failures that lock a (user, address) pair; 0 disables the lockout.
    pub failures: u32,
    /// Failures older than this many seconds are forgotten.
    pub window_secs: u64,
    /// How long a pair stays locked, in seconds.
    pub lock_secs: u64,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self { failures: 10, window_secs: 600, lock_secs: 300 }
    }
}

#[derive(Debug)]
struct Record {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Failure counters; bounded in size.
#[derive(Debug)]
pub struct Lockout {
    cfg: LockoutConfig,
    map: Mutex<HashMap<(String, String), Record>>,
}

const MAX_RECORDS: usize = 16384;

impl Lockout {
    /// Counters under `cfg`.
    pub fn new(cfg: LockoutConfig) -> Self {
        Self { cfg, map: Mutex::new(HashMap::new()) }
    }

    /// Whether the pair is locked now.
    pub fn is_locked(&self, user: &str, addr: &str) -> bool {
        if self.cfg.failures == 0 {
            return false;
        }
        let map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&(user.to_owned(), addr.to_owned()))
            .and_then(|r| r.locked_until)
            .is_some_and(|until| Instant::now() < until)
    }

    /// Counts a failure; returns true when this failure locked the pair.
    pub fn failure(&self, user: &str, addr: &str) -> bool {
        if self.cfg.failures == 0 {
            return false;
        }
        let now = Instant::now();
        let window = Duration::from_secs(self.cfg.window_secs);
        let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_RECORDS {
            map.retain(|_, r| now.duration_since(r.last) < window || r.locked_until.is_some_and(|u| now < u));
        }
        let r =
            map.entry((user.to_owned(), addr.to_owned())).or_insert(Record { count: 0, last: now, locked_until: None });
        if now.duration_since(r.last) >= window || r.locked_until.is_some_and(|u| now >= u) {
            r.count = 0;
            r.locked_until = None;
        }
        r.count += 1;
        r.last = now;
        if r.count >= self.cfg.failures && r.locked_until.is_none() {
            r.locked_until = Some(now + Duration::from_secs(self.cfg.lock_secs));
            return true;
        }
        false
    }

    /// Resets the pair after a success.
    pub fn success(&self, user: &str, addr: &str) {
        if self.cfg.failures == 0 {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(&(user.to_owned(), addr.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_n_failures_per_pair() {
        let l = Lockout::new(LockoutConfig { failures: 3, window_secs: 60, lock_secs: 60 });
        assert!(!l.failure("admin", "1.2.3.4"));
        assert!(!l.failure("admin", "1.2.3.4"));
        assert!(!l.is_locked("admin", "1.2.3.4"));
        assert!(l.failure("admin", "1.2.3.4"));
        assert!(l.is_locked("admin", "1.2.3.4"));
        assert!(!l.is_locked("admin", "5.6.7.8"), "other addresses are unaffected");
        assert!(!l.is_locked("bob", "1.2.3.4"), "other users are unaffected");
    }

    #[test]
    fn success_resets_and_zero_disables() {
        let l = Lockout::new(LockoutConfig { failures: 2, window_secs: 60, lock_secs: 60 });
        l.failure("a", "x");
        l.success("a", "x");
        l.failure("a", "x");
        assert!(!l.is_locked("a", "x"));
        let off = Lockout::new(LockoutConfig { failures: 0, ..LockoutConfig::default() });
        for _ in 0..100 {
            off.failure("a", "x");
        }
        assert!(!off.is_locked("a", "x"));
    }

    #[test]
    fn the_lock_expires() {
        let l = Lockout::new(LockoutConfig { failures: 1, window_secs: 60, lock_secs: 0 });
        l.failure("a", "x");
        assert!(!l.is_locked("a", "x"));
    }
}
