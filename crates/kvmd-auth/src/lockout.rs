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
//! - A **per-user backoff** across networks, for guessing spread over many addresses: after
//!   `user_failures` failures of one user (from anywhere) within `window`, that user's
//!   password checks are let through one at a time with a growing pause (1 s, 2 s, 4 s, …
//!   up to `user_backoff_max_secs`); one inside the pause is refused like a locked pair. A
//!   network the user logged in from before (within [`KNOWN_FOR`]) is exempt, so an attack
//!   elsewhere cannot keep the user out of their usual place; its failures are not counted
//!   towards the backoff either.

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
    /// Failures of one user from networks it never logged in from, within `window_secs`,
    /// after which its checks back off (0 disables the backoff).
    pub user_failures: u32,
    /// The longest pause of the per-user backoff, in seconds.
    pub user_backoff_max_secs: u64,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self { failures: 10, window_secs: 600, lock_secs: 300, user_failures: 30, user_backoff_max_secs: 60 }
    }
}

/// How long a network a user logged in from stays exempt from that user's backoff.
pub const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// The pause of the per-user backoff after `over` failures past the limit: 1 s, doubling,
/// at most `max` seconds.
pub fn backoff(over: u32, max: u64) -> Duration {
    Duration::from_secs(1u64.checked_shl(over).unwrap_or(u64::MAX).min(max.max(1)))
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

    /// The record of `user` across networks (its backoff).
    fn user_key(&self, user: &str) -> Key {
        self.keys.hash_one((user, "\0any network"))
    }

    /// The mark of a network `user` logged in from.
    fn known_key(&self, user: &str, addr: &str) -> Key {
        self.keys.hash_one((user, network(addr).as_ref(), "\0known"))
    }

    /// Whether `user` has a backoff at all (a real user, the backoff on).
    fn backs_off(&self, user: &str) -> bool {
        self.cfg.user_failures > 0 && user != UNKNOWN_USER
    }

    /// Whether `addr` is a network `user` logged in from lately.
    fn is_known(&self, t: &Table, user: &str, addr: &str, now: Instant) -> bool {
        t.map.get(&self.known_key(user, addr)).and_then(|r| r.locked_until).is_some_and(|until| now < until)
    }

    /// Whether `user`'s backoff refuses a check from `addr` now.
    fn backing_off(&self, t: &Table, user: &str, addr: &str, now: Instant) -> bool {
        self.backs_off(user)
            && t.map.get(&self.user_key(user)).and_then(|r| r.locked_until).is_some_and(|until| now < until)
            && !self.is_known(t, user, addr, now)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reserves a password check of `user` (or [`UNKNOWN_USER`]) from `addr`: counted now,
    /// as a failure until [`Lockout::success`] says otherwise. `Err(Locked)` when the pair
    /// is locked; `Ok(true)` when this attempt reached the limit and locked it (the attempt
    /// itself still runs: it may be the right password).
    pub fn reserve(&self, user: &str, addr: &str) -> Result<bool, Locked> {
        self.reserve_at(user, addr, Instant::now())
    }

    fn reserve_at(&self, user: &str, addr: &str, now: Instant) -> Result<bool, Locked> {
        if self.cfg.failures == 0 {
            return Ok(false);
        }
        let window = Duration::from_secs(self.cfg.window_secs);
        let key = self.key(user, addr);
        let mut t = self.table();
        let pair_locked = t.map.get(&key).and_then(|r| r.locked_until).is_some_and(|until| now < until);
        // The user's backoff applies here (and counts this check) unless the network is known.
        let per_user = self.backs_off(user) && !self.is_known(&t, user, addr, now);
        let ukey = self.user_key(user);
        let paused = per_user && t.map.get(&ukey).and_then(|r| r.locked_until).is_some_and(|until| now < until);
        if pair_locked || paused {
            return Err(Locked);
        }
        if per_user {
            if !t.map.contains_key(&ukey) {
                t.insert(ukey, now);
            }
            if let Some(u) = t.map.get_mut(&ukey) {
                if now.duration_since(u.last) >= window {
                    u.count = 0;
                }
                u.count += 1;
                u.last = now;
                if u.count >= self.cfg.user_failures {
                    let pause = backoff(u.count - self.cfg.user_failures, self.cfg.user_backoff_max_secs);
                    u.locked_until = Some(now + pause);
                }
            }
        }
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

    /// Whether the pair is locked now, or the user's backoff refuses this network.
    pub fn is_locked(&self, user: &str, addr: &str) -> bool {
        self.is_locked_at(user, addr, Instant::now())
    }

    fn is_locked_at(&self, user: &str, addr: &str, now: Instant) -> bool {
        if self.cfg.failures == 0 {
            return false;
        }
        let key = self.key(user, addr);
        let t = self.table();
        t.map.get(&key).and_then(|r| r.locked_until).is_some_and(|until| now < until)
            || self.backing_off(&t, user, addr, now)
    }

    /// After a success: resets the pair and the user's backoff, and marks the network as
    /// one the user logs in from.
    pub fn success(&self, user: &str, addr: &str) {
        self.success_at(user, addr, Instant::now());
    }

    fn success_at(&self, user: &str, addr: &str, now: Instant) {
        if self.cfg.failures == 0 {
            return;
        }
        let key = self.key(user, addr);
        let mut t = self.table();
        t.map.remove(&key);
        if self.backs_off(user) {
            t.map.remove(&self.user_key(user));
            let known = self.known_key(user, addr);
            if !t.map.contains_key(&known) {
                t.insert(known, now);
            }
            if let Some(r) = t.map.get_mut(&known) {
                r.locked_until = Some(now + KNOWN_FOR);
            }
        }
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
        let l = Lockout::new(cfg(3, 0));
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
        let l = Lockout::new(cfg(2, 0));
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

    fn cfg(failures: u32, user_failures: u32) -> LockoutConfig {
        LockoutConfig { failures, window_secs: 60, lock_secs: 60, user_failures, user_backoff_max_secs: 60 }
    }

    /// On a clock of its own (`t(s)`: s seconds after the start), so the pauses are exact.
    #[test]
    fn one_user_guessed_from_many_networks_backs_off_but_not_where_it_logs_in() {
        let start = Instant::now();
        let t = |s: u64| start + Duration::from_secs(s);
        let l = Lockout::new(cfg(10, 5));
        l.success_at("admin", "10.0.0.1", t(0)); // the admin's usual place
        for i in 1..=4 {
            assert_eq!(l.reserve_at("admin", &format!("192.0.2.{i}"), t(1)), Ok(false));
        }
        assert!(!l.is_locked_at("admin", "192.0.2.200", t(1)));
        // The fifth failure from anywhere starts the backoff: 1 s in which checks elsewhere wait.
        assert_eq!(l.reserve_at("admin", "192.0.2.5", t(1)), Ok(false));
        assert!(l.is_locked_at("admin", "192.0.2.200", t(1)), "a new network is refused in the pause");
        assert_eq!(l.reserve_at("admin", "192.0.2.201", t(1)), Err(Locked), "... before any hash");
        // Where the admin logged in before, checks go on (and their failures are not counted).
        assert!(!l.is_locked_at("admin", "10.0.0.1", t(1)));
        assert_eq!(l.reserve_at("admin", "10.0.0.1", t(1)), Ok(false));
        // After the pause one more check, then 2 s, then 4 s. (No pair is locked: one failure each.)
        assert!(!l.is_locked_at("admin", "192.0.2.1", t(2)));
        assert_eq!(l.reserve_at("admin", "192.0.2.6", t(2)), Ok(false));
        assert_eq!(l.reserve_at("admin", "192.0.2.7", t(3)), Err(Locked));
        assert_eq!(l.reserve_at("admin", "192.0.2.7", t(4)), Ok(false));
        assert!(l.is_locked_at("admin", "192.0.2.8", t(7)));
        assert!(!l.is_locked_at("admin", "192.0.2.8", t(8)));
        // Other users are unaffected, and unknown names have no per-user backoff.
        assert!(!l.is_locked_at("bob", "192.0.2.200", t(4)));
        for i in 0..20 {
            let _ = l.reserve_at(UNKNOWN_USER, &format!("198.51.100.{i}"), t(4));
        }
        assert!(!l.is_locked_at(UNKNOWN_USER, "198.51.100.250", t(4)));
        // A success resets the backoff.
        l.success_at("admin", "10.0.0.1", t(5));
        assert!(!l.is_locked_at("admin", "192.0.2.200", t(5)));
        // A pair's own lock is not a failure of the user: refused, and not counted.
        let l = Lockout::new(cfg(2, 3));
        let _ = l.reserve_at("admin", "192.0.2.1", t(0));
        let _ = l.reserve_at("admin", "192.0.2.1", t(0));
        for _ in 0..10 {
            assert_eq!(l.reserve_at("admin", "192.0.2.1", t(0)), Err(Locked));
        }
        assert!(!l.is_locked_at("admin", "192.0.2.2", t(0)), "two failures of the user so far, not three");
        // Off: never.
        let off = Lockout::new(cfg(10, 0));
        for i in 0..50 {
            let _ = off.reserve_at("admin", &format!("192.0.2.{i}"), t(0));
        }
        assert!(!off.is_locked_at("admin", "192.0.2.200", t(0)));
    }

    #[test]
    fn the_backoff_doubles_up_to_its_maximum() {
        let secs = |over| backoff(over, 60).as_secs();
        assert_eq!(
            [secs(0), secs(1), secs(2), secs(5), secs(6), secs(63), secs(64), secs(u32::MAX)],
            [1, 2, 4, 32, 60, 60, 60, 60]
        );
        assert_eq!(backoff(3, 0).as_secs(), 1, "a zero maximum still pauses a second");
    }

    #[test]
    fn the_lock_expires() {
        let l = Lockout::new(LockoutConfig { lock_secs: 0, ..cfg(1, 0) });
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
        let l = Lockout::new(cfg(2, 0));
        let _ = l.reserve("a", "2001:db8:1:2::1");
        assert_eq!(l.reserve("a", "2001:db8:1:2::2"), Ok(true), "one host of the /64 after another");
        assert!(l.is_locked("a", "2001:db8:1:2:ffff::9"));
        assert!(!l.is_locked("a", "2001:db8:1:3::1"));
    }

    /// 10^6 failures from distinct networks: the table stays at its bound, and the newest
    /// pairs are still counted (the oldest were evicted).
    #[test]
    fn a_million_failures_keep_the_table_bounded() {
        let l = Lockout::new(LockoutConfig { window_secs: 600, ..cfg(3, 0) });
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
