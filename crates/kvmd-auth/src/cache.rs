//! The verified-credential cache: header scripting without a password hash per request.
//!
//! A script sending `X-KVMD-User`/`X-KVMD-Passwd` (or Basic) on every request would pay a
//! full verification each time — a quarter of a second for a bcrypt entry. After a
//! successful verification we remember a keyed fingerprint, HMAC-SHA-256 under a key
//! drawn at start-up, of (user, password): never the password itself. An entry lives a
//! short TTL, never past the validity of a TOTP code it contains, and only for the
//! generation of the htpasswd and TOTP files it was verified against: any change of
//! either file drops every entry at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use sha2::Sha256;

type Fingerprint = [u8; 32];

/// Entries above this are pruned; beyond twice this the cache starts over.
const MAX_ENTRIES: usize = 4096;

#[derive(Debug)]
struct Entry {
    until: Instant,
    generation: u64,
}

/// Positive verification results, by keyed fingerprint.
#[derive(Debug)]
pub struct CredCache {
    key: [u8; 32],
    ttl: Duration,
    map: Mutex<HashMap<Fingerprint, Entry>>,
}

impl CredCache {
    /// An empty cache with a fresh random key.
    pub fn new(ttl: Duration) -> Self {
        let mut key = [0u8; 32];
        if getrandom::fill(&mut key).is_err() {
            panic!("the operating system gave no random bytes");
        }
        Self { key, ttl, map: Mutex::new(HashMap::new()) }
    }

    /// The fingerprint of (user, password).
    pub fn fingerprint(&self, user: &str, passwd: &str) -> Fingerprint {
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(user.as_bytes());
        mac.update(&[0]);
        mac.update(passwd.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whether `fp` was verified for this file generation and has not expired.
    pub fn hit(&self, fp: &Fingerprint, generation: u64) -> bool {
        let map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(fp).is_some_and(|e| e.generation == generation && Instant::now() < e.until)
    }

    /// Remembers `fp` until the TTL or `not_after`, whichever is first.
    pub fn insert(&self, fp: Fingerprint, generation: u64, not_after: Option<Instant>) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut until = now + self.ttl;
        if let Some(n) = not_after {
            until = until.min(n);
        }
        let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, e| e.generation == generation && now < e.until);
            if map.len() >= MAX_ENTRIES * 2 {
                map.clear();
            }
        }
        map.insert(fp, Entry { until, generation });
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_only_for_the_same_credentials_and_generation() {
        let c = CredCache::new(Duration::from_secs(60));
        let fp = c.fingerprint("admin", "admin");
        assert_ne!(fp, c.fingerprint("admin", "admin2"));
        assert_ne!(c.fingerprint("ad", "minadmin"), c.fingerprint("admin", "admin"));
        assert!(!c.hit(&fp, 1));
        c.insert(fp, 1, None);
        assert!(c.hit(&fp, 1));
        assert!(!c.hit(&fp, 2), "a file change invalidates");
        c.insert(fp, 1, Some(Instant::now()));
        assert!(!c.hit(&fp, 1), "never past not_after");
        c.insert(fp, 1, None);
        c.clear();
        assert!(!c.hit(&fp, 1));
        // Keys differ per process: fingerprints are useless elsewhere.
        assert_ne!(CredCache::new(Duration::from_secs(1)).fingerprint("a", "b"), c.fingerprint("a", "b"));
    }
}
