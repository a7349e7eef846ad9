//! Brute-force lockout per (user, client network).
//!
//! kvmd has no rate limiting at all. kvmd-rs counts password checks that did not succeed
//! per user and client network; after `failures` of them within `window`, that pair is
//! locked for `lock`: every password check of the pair fails, answered exactly like a
//! wrong password (403), and logged. A success resets the count. Locking per network means
//! an attacker elsewhere cannot lock a legitimate user out (behind one NAT address,
//! everyone shares the pair: see `docs/SECURITY.md`).
//!
//! - An attempt is **reserved before** its password is verified ([`Lockout::reserve`]), so
//!   a burst of concurrent wrong passwords stops at `failures` hashes instead of all
//!   hashing before the first failure is counted.
//! - Users that do not exist share **one bucket per network**, so guessing names cannot
//!   grow the table; an IPv6 client is keyed by its /64 (one host usually holds a whole
//!   /64, and would otherwise have 2^64 buckets).
//! - The table is **bounded hard**: at [`MAX_RECORDS`] the oldest record is evicted, and
//!   every operation is O(1) (a hash map plus an insertion-order queue).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::Ipv6Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The lockout knobs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    /// Consecutive failures that lock a (user, network) pair; 0 disables the lockout.
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

/// The records kept at most; the oldest goes first.
pub const MAX_RECORDS: usize = 65536;

/// The bucket of every user that does not exist, per network.
pub const UNKNOWN_USER: &str = "";

/// A (user, network) pair, hashed with this process's random key (no allocation per check;
/// a collision of two pairs' 64-bit hashes would only share their count).
type Key = u64;

#[derive(Debug)]
struct Record {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
    /// This record's place in the insertion order (stale queue entries are skipped).
    serial: u64,
}

#[derive(Debug, Default)]
struct Table {
    map: HashMap<Key, Record>,
    /// Keys in insertion order with the serial they were inserted with.
    order: VecDeque<(Key, u64)>,
    next_serial: u64,
}

impl Table {
    fn insert(&mut self, key: Key, now: Instant) {
        while self.map.len() >= MAX_RECORDS {
            let Some((old, serial)) = self.order.pop_front() else { break };
            if self.map.get(&old).is_some_and(|r| r.serial == serial) {
                self.map.remove(&old);
            }
        }
        // Removed records leave stale entries behind: compact once they dominate.
        if self.order.len() > 2 * MAX_RECORDS {
            let map = &self.map;
            self.order.retain(|(k, s)| map.get(k).is_some_and(|r| r.serial == *s));
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        self.order.push_back((key, serial));
        self.map.insert(key, Record { count: 0, last: now, locked_until: None, serial });
    }
}

/// Why an attempt was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked;

/// Failure counters; bounded in size.
#[derive(Debug)]
pub struct Lockout {
    cfg: LockoutConfig,
    table: Mutex<Table>,
    keys: std::collections::hash_map::RandomState,
}

/// The network an address counts for: an IPv6 address's /64, anything else as given.
pub fn network(addr: &str) -> Cow<'_, str> {
    let bare = addr.trim_start_matches('[').trim_end_matches(']');
    if !bare.contains(':') {
        return Cow::Borrowed(bare);
    }
    match bare.parse::<Ipv6Addr>() {
        Ok(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => Cow::Owned(v4.to_string()),
            None => {
                let s = ip.segments();
                Cow::Owned(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
            }
        },
        Err(_) => Cow::Borrowed(bare),
    }
}

impl Lockout {
    /// Counters under `cfg`.
    pub fn new(cfg: LockoutConfig) -> Self {
        Self { cfg, table: Mutex::new(Table::default()), keys: Default::default() }
    }

    fn key(&self, user: &str, addr: &str) -> Key {
        self.keys.hash_one((user, network(addr).as_ref()))
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reserves a password check of `user` (or [`UNKNOWN_USER`]) from `addr`: counted now,
    /// as a failure until [`Lockout::success`] says otherwise. `Err(Locked)` when the pair
    /// is locked; `Ok(true)` when this attempt reached the limit and locked it (the attempt
    /// itself still runs: it may be the right password).
    pub fn reserve(&self, user: &str, addr: &str) -> Result<bool, Locked> {
        if self.cfg.failures == 0 {
            return Ok(false);
        }
        let now = Instant::now();
        let window = Duration::from_secs(self.cfg.window_secs);
        let key = self.key(user, addr);
        let mut t = self.table();
        if !t.map.contains_key(&key) {
            t.insert(key, now);
        }
        let Some(r) = t.map.get_mut(&key) else { return Ok(false) };
        if let Some(until) = r.locked_until {
            if now < until {
                return Err(Locked);
            }
            r.count = 0;
            r.locked_until = None;
        }
        if now.duration_since(r.last) >= window {
            r.count = 0;
        }
        r.count += 1;
        r.last = now;
        if r.count >= self.cfg.failures {
            r.locked_until = Some(now + Duration::from_secs(self.cfg.lock_secs));
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether the pair is locked now.
    pub fn is_locked(&self, user: &str, addr: &str) -> bool {
        if self.cfg.failures == 0 {
            return false;
        }
        let key = self.key(user, addr);
        self.table().map.get(&key).and_then(|r| r.locked_until).is_some_and(|until| Instant::now() < until)
    }

    /// Resets the pair after a success.
    pub fn success(&self, user: &str, addr: &str) {
        if self.cfg.failures == 0 {
            return;
        }
        let key = self.key(user, addr);
        self.table().map.remove(&key);
    }

    /// The records held now.
    pub fn len(&self) -> usize {
        self.table().map.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_n_attempts_per_pair() {
        let l = Lockout::new(LockoutConfig { failures: 3, window_secs: 60, lock_secs: 60 });
        assert_eq!(l.reserve("admin", "1.2.3.4"), Ok(false));
        assert_eq!(l.reserve("admin", "1.2.3.4"), Ok(false));
        assert!(!l.is_locked("admin", "1.2.3.4"));
        assert_eq!(l.reserve("admin", "1.2.3.4"), Ok(true), "the third reaches the limit");
        assert!(l.is_locked("admin", "1.2.3.4"));
        assert_eq!(l.reserve("admin", "1.2.3.4"), Err(Locked), "refused before any hash");
        assert!(!l.is_locked("admin", "5.6.7.8"), "other addresses are unaffected");
        assert!(!l.is_locked("bob", "1.2.3.4"), "other users are unaffected");
    }

    #[test]
    fn success_resets_and_zero_disables() {
        let l = Lockout::new(LockoutConfig { failures: 2, window_secs: 60, lock_secs: 60 });
        let _ = l.reserve("a", "x");
        l.success("a", "x");
        let _ = l.reserve("a", "x");
        assert!(!l.is_locked("a", "x"));
        // A success on the attempt that reached the limit unlocks.
        assert_eq!(l.reserve("a", "x"), Ok(true));
        l.success("a", "x");
        assert!(!l.is_locked("a", "x"));
        let off = Lockout::new(LockoutConfig { failures: 0, ..LockoutConfig::default() });
        for _ in 0..100 {
            assert_eq!(off.reserve("a", "x"), Ok(false));
        }
        assert!(!off.is_locked("a", "x") && off.is_empty());
    }

    #[test]
    fn the_lock_expires() {
        let l = Lockout::new(LockoutConfig { failures: 1, window_secs: 60, lock_secs: 0 });
        assert_eq!(l.reserve("a", "x"), Ok(true));
        assert!(!l.is_locked("a", "x"));
        assert_eq!(l.reserve("a", "x"), Ok(true), "a fresh count after the lock ended");
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        assert_eq!(network("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(network("[2001:db8:1:2::ffff]"), "2001:db8:1:2::/64");
        assert_eq!(network("::ffff:10.0.0.1"), "10.0.0.1");
        assert_eq!(network("192.0.2.7"), "192.0.2.7");
        assert_eq!(network("unix"), "unix");
        let l = Lockout::new(LockoutConfig { failures: 2, window_secs: 60, lock_secs: 60 });
        let _ = l.reserve("a", "2001:db8:1:2::1");
        assert_eq!(l.reserve("a", "2001:db8:1:2::2"), Ok(true), "one host of the /64 after another");
        assert!(l.is_locked("a", "2001:db8:1:2:ffff::9"));
        assert!(!l.is_locked("a", "2001:db8:1:3::1"));
    }

    /// 10^6 failures from distinct networks: the table stays at its bound, and the newest
    /// pairs are still counted (the oldest were evicted).
    #[test]
    fn a_million_failures_keep_the_table_bounded() {
        let l = Lockout::new(LockoutConfig { failures: 3, window_secs: 600, lock_secs: 60 });
        for i in 0..1_000_000u32 {
            let addr = std::net::Ipv4Addr::from(i).to_string();
            let _ = l.reserve(UNKNOWN_USER, &addr);
            if i % 100_000 == 0 {
                l.success(UNKNOWN_USER, &addr); // leaves a stale queue entry behind
            }
        }
        assert_eq!(l.len(), MAX_RECORDS);
        assert!(l.table().order.len() <= 2 * MAX_RECORDS + 1);
        let last = std::net::Ipv4Addr::from(999_999u32).to_string();
        let _ = l.reserve(UNKNOWN_USER, &last);
        assert_eq!(l.reserve(UNKNOWN_USER, &last), Ok(true));
        assert!(!l.is_locked(UNKNOWN_USER, &std::net::Ipv4Addr::from(0u32).to_string()), "evicted");
    }
}
