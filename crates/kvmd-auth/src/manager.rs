//! The authentication manager: password checks, TOTP, the cache, the lockout, sessions.
//!
//! kvmd re-reads the htpasswd and TOTP files on every password check (0.5 ms of its 1 ms
//! per header-authenticated request). We `stat` them instead and re-read only when
//! they change; a change bumps the file generation, which drops the credential cache.
//! The users come from a [`CredentialStore`] (the htpasswd file unless another is given).
//! A broken file never takes the service down: a corrupt htpasswd keeps the last good
//! copy (or, with none, refuses every password), and a configured TOTP file that cannot
//! be read refuses every password (kvmd answers 500 in both cases).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::cache::CredCache;
use crate::config::Config;
use crate::hash;
use crate::lockout::{Locked, Lockout, UNKNOWN_USER};
use crate::sessions::{Sessions, unix_now};
use crate::store::{CredentialStore, HtpasswdFile, Stamp, stamp};
use crate::totp;

#[derive(Clone)]
enum TotpState {
    Off,
    On(Arc<totp_rs::Totp>),
    /// Configured but unreadable or invalid: every password is refused.
    Broken,
}

/// What the checks read, behind one lock: the users and the TOTP secret.
struct Files {
    users: Box<dyn CredentialStore>,
    totp_stamp: Stamp,
    totp: TotpState,
    loaded: bool,
}

/// One check's view of the files: the user's stored hash, the TOTP state, and the
/// generation they belong to.
struct Snapshot {
    stored: Option<String>,
    totp: TotpState,
    generation: u64,
}

/// One in-flight slow verification, shared by identical concurrent requests.
type Flight = Arc<OnceCell<bool>>;

/// Slow hashes running now, and the most that ever ran at once.
type Gauge = Arc<(AtomicUsize, AtomicUsize)>;

/// kvmd's `AuthManager`, with kvmd-rs's cache, lockout and persistent sessions.
pub struct Manager {
    cfg: Config,
    files: Mutex<Files>,
    generation: AtomicU64,
    /// The sessions.
    pub sessions: Sessions,
    cache: CredCache,
    lockout: Lockout,
    inflight: Mutex<HashMap<[u8; 32], Flight>>,
    /// Slots for slow hashes (bcrypt, `$5$`, `$6$`).
    slow: Arc<tokio::sync::Semaphore>,
    slow_slots: usize,
    slow_waiting: AtomicUsize,
    hashing: Gauge,
    dummy: std::sync::OnceLock<String>,
}

impl Manager {
    /// A manager for `cfg`, with the users of its htpasswd file; reads the files once so
    /// start-up logs their state.
    pub fn new(cfg: Config) -> Self {
        let users = HtpasswdFile::new(cfg.htpasswd.clone());
        Self::with_store(cfg, Box::new(users))
    }

    /// A manager for `cfg` with the users of `users` (`cfg.htpasswd` is not read); reads
    /// them and the TOTP secret once so start-up logs their state.
    pub fn with_store(cfg: Config, users: Box<dyn CredentialStore>) -> Self {
        let sessions_path = (!cfg.sessions.as_os_str().is_empty()).then(|| cfg.sessions.clone());
        let slots = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
        let m = Self {
            sessions: Sessions::open(sessions_path, cfg.expire),
            cache: CredCache::new(Duration::from_secs(cfg.cache_ttl_secs)),
            lockout: Lockout::new(cfg.lockout.clone()),
            files: Mutex::new(Files { users, totp_stamp: None, totp: TotpState::Off, loaded: false }),
            generation: AtomicU64::new(0),
            inflight: Mutex::new(HashMap::new()),
            slow: Arc::new(tokio::sync::Semaphore::new(slots)),
            slow_slots: slots,
            slow_waiting: AtomicUsize::new(0),
            hashing: Gauge::default(),
            dummy: std::sync::OnceLock::new(),
            cfg,
        };
        drop(m.refresh());
        m
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Brings the users and the TOTP secret up to date; returns them, still locked.
    fn refresh(&self) -> MutexGuard<'_, Files> {
        let mut f = self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut changed = f.users.reload();
        if !self.cfg.totp_secret.as_os_str().is_empty() {
            let ts = stamp(&self.cfg.totp_secret);
            if !f.loaded || ts != f.totp_stamp {
                f.totp_stamp = ts;
                changed = true;
                f.totp = match std::fs::read_to_string(&self.cfg.totp_secret) {
                    Ok(text) => match totp::parse_secret(&text) {
                        Ok(Some(t)) => TotpState::On(Arc::new(t)),
                        Ok(None) => TotpState::Off,
                        Err(e) => {
                            tracing::error!(path = %self.cfg.totp_secret.display(), error = %e, "every password is refused");
                            TotpState::Broken
                        }
                    },
                    Err(e) => {
                        tracing::error!(path = %self.cfg.totp_secret.display(), error = %e,
                            "cannot read the configured TOTP secret; every password is refused");
                        TotpState::Broken
                    }
                };
            }
        }
        f.loaded = true;
        if changed {
            self.generation.fetch_add(1, Ordering::SeqCst);
            self.cache.clear();
        }
        f
    }

    /// `user`'s view of the files, up to date.
    fn snapshot(&self, user: &str) -> Snapshot {
        let f = self.refresh();
        Snapshot {
            stored: f.users.hash(user),
            totp: f.totp.clone(),
            generation: self.generation.load(Ordering::SeqCst),
        }
    }

    /// Whether `user` is (still) in the credential store (the htpasswd file): a deleted
    /// user's sessions are refused at once (kvmd keeps them until it restarts).
    pub fn user_exists(&self, user: &str) -> bool {
        self.refresh().users.contains(user)
    }

    /// kvmd's `authorize(user, passwd)`: TOTP first, then the stored hash. `addr` is the
    /// client address for the lockout. `Err(Busy)` when the slow-hash queue is full (kvmd's
    /// 503).
    ///
    /// The attempt is reserved in the lockout before anything is verified, and a refusal
    /// costs the same work whichever part was wrong: an unknown user's password is checked
    /// against another user's hash (never accepted; a bcrypt hash of the configured cost
    /// when there are no users), and a wrong TOTP code still runs the password's hash.
    pub async fn authorize(&self, user: &str, passwd: &str, addr: &str) -> Result<bool, Busy> {
        let snap = self.snapshot(user);
        let bucket = if snap.stored.is_some() { user } else { UNKNOWN_USER };
        let fp = self.cache.fingerprint(user, passwd);
        // A password verified a moment ago needs no reservation (nothing is hashed): the
        // common case of a script's X-KVMD headers costs a lookup, not a table write.
        if self.cache.hit(&fp, snap.generation) {
            if self.lockout.is_locked(bucket, addr) {
                tracing::warn!(user, addr, "access denied: too many failed attempts, locked out");
                return Ok(false);
            }
            self.lockout.success(bucket, addr);
            return Ok(true);
        }
        let (pw, not_after, totp_ok) = match &snap.totp {
            TotpState::Off => (passwd, None, true),
            TotpState::Broken => (passwd, None, false),
            TotpState::On(t) => {
                let now = unix_now();
                match totp::check(t, passwd, now) {
                    Some((pw, step)) => {
                        // A code of step s is accepted until step s + 1 ends.
                        let end = (step + 2) * totp::STEP;
                        (pw, Some(Instant::now() + Duration::from_secs(end.saturating_sub(now))), true)
                    }
                    None => (passwd, None, false),
                }
            }
        };
        let known = snap.stored.is_some();
        let stored = match snap.stored {
            Some(h) => h,
            None => self.refresh().users.sample_hash().unwrap_or_else(|| self.dummy_hash()),
        };
        let slow = hash::identify(&stored).is_slow();
        // A slow hash is reserved in the lockout before it runs, so a burst of wrong
        // passwords stops at the limit instead of all hashing first. An identical check
        // already running is joined, not reserved again (a script's parallel requests with
        // the right password must not lock it out). A fast hash is counted after it ran.
        let joined = slow && self.inflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(&fp);
        let reserved = slow && !joined;
        let refused =
            if reserved { self.count_attempt(user, bucket, addr) } else { self.lockout.is_locked(bucket, addr) };
        if refused {
            tracing::warn!(user, addr, "access denied: too many failed attempts, locked out");
            return Ok(false);
        }
        let ok = if slow { self.verify_slow(fp, stored, pw.to_owned()).await? } else { hash::verify(&stored, pw) };
        if !(totp_ok && ok && known) {
            if totp_ok {
                tracing::error!("Got access denied for user '{user}' from auth service 'htpasswd'");
            } else {
                tracing::error!("Got access denied for user '{user}' by TOTP");
            }
            if !reserved {
                self.count_attempt(user, bucket, addr);
            }
            return Ok(false);
        }
        self.cache.insert(fp, snap.generation, not_after);
        self.lockout.success(bucket, addr);
        tracing::debug!("Authorized user '{user}' via auth service 'htpasswd'");
        Ok(true)
    }

    /// Counts an attempt that has not succeeded (yet) in the lockout; true when the pair
    /// was already locked.
    fn count_attempt(&self, user: &str, bucket: &str, addr: &str) -> bool {
        match self.lockout.reserve(bucket, addr) {
            Err(Locked) => true,
            Ok(true) => {
                tracing::warn!(user, addr, secs = self.cfg.lockout.lock_secs, "too many failed attempts: locked out");
                false
            }
            Ok(false) => false,
        }
    }

    /// A bcrypt hash of nothing anyone knows, at the configured cost: what an unknown user
    /// is checked against when there are no users at all (made once).
    fn dummy_hash(&self) -> String {
        self.dummy
            .get_or_init(|| {
                let secret = hex::encode(crate::hash::random_bytes::<16>());
                bcrypt::hash(secret, self.cfg.bcrypt_cost).unwrap_or_default()
            })
            .clone()
    }

    /// A slow hash off the worker thread, at most [`Manager::slow_slots`] at a time and
    /// [`SLOW_QUEUE`] waiting; identical concurrent checks share one run.
    async fn verify_slow(&self, fp: [u8; 32], stored: String, pw: String) -> Result<bool, Busy> {
        let flight = {
            let mut map = self.inflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(fp).or_default().clone()
        };
        let result = flight
            .get_or_try_init(|| async move {
                let queued = self.slow_waiting.fetch_add(1, Ordering::SeqCst);
                let _waiting = Decrement(&self.slow_waiting);
                if queued >= SLOW_QUEUE {
                    tracing::warn!("password checks are queued to the limit: 503");
                    return Err(Busy);
                }
                let permit = self.slow.clone().acquire_owned().await.map_err(|_| Busy)?;
                let hashing = Arc::clone(&self.hashing);
                Ok(tokio::task::spawn_blocking(move || {
                    let now = hashing.0.fetch_add(1, Ordering::SeqCst) + 1;
                    hashing.1.fetch_max(now, Ordering::SeqCst);
                    let ok = hash::verify(&stored, &pw);
                    hashing.0.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                    ok
                })
                .await
                .unwrap_or(false))
            })
            .await
            .copied();
        self.inflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&fp);
        result
    }

    /// How many slow hashes may run at once (about half the cores).
    pub fn slow_slots(&self) -> usize {
        self.slow_slots
    }

    /// The most slow hashes that ran at the same time so far.
    pub fn max_concurrent_hashes(&self) -> usize {
        self.hashing.1.load(Ordering::SeqCst)
    }

    /// The records the lockout holds now (bounded by `lockout::MAX_RECORDS`).
    pub fn lockout_records(&self) -> usize {
        self.lockout.len()
    }
}

/// Decrements its counter when dropped.
struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Too many password checks waiting for a slow hash: kvmd's 503 `UnavailableError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Slow checks that may wait for a slot before the next one is refused with 503.
pub const SLOW_QUEUE: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    /// Users in memory, changed by the test through a shared handle.
    struct Memory(Arc<Mutex<(bool, HashMap<String, String>)>>);

    impl CredentialStore for Memory {
        fn reload(&mut self) -> bool {
            std::mem::take(&mut self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0)
        }

        fn hash(&self, user: &str) -> Option<String> {
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).1.get(user).cloned()
        }
    }

    #[tokio::test]
    async fn another_store_plugs_in_and_its_changes_drop_the_cache() {
        let users = Arc::new(Mutex::new((true, HashMap::from([("admin".to_owned(), "pw".to_owned())]))));
        let cfg = Config { totp_secret: "".into(), sessions: "".into(), ..Config::default() };
        let m = Manager::with_store(cfg, Box::new(Memory(users.clone())));
        assert!(m.user_exists("admin"));
        assert!(!m.user_exists("bob"));
        assert_eq!(m.authorize("admin", "pw", "127.0.0.1").await, Ok(true));
        assert_eq!(m.authorize("admin", "nope", "127.0.0.1").await, Ok(false));
        let generation = m.generation.load(Ordering::SeqCst);
        *users.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = (true, HashMap::new());
        assert_eq!(
            m.authorize("admin", "pw", "127.0.0.1").await,
            Ok(false),
            "a removed user's cached password is refused"
        );
        assert_eq!(m.generation.load(Ordering::SeqCst), generation + 1);
        assert!(!m.user_exists("admin"));
    }

    fn bcrypt_manager(failures: u32) -> Manager {
        let hash = bcrypt::hash("right", 4).unwrap_or_default();
        let users = Arc::new(Mutex::new((true, HashMap::from([("admin".to_owned(), hash)]))));
        let lockout =
            crate::lockout::LockoutConfig { failures, window_secs: 600, lock_secs: 600, ..Default::default() };
        let cfg = Config { totp_secret: "".into(), sessions: "".into(), bcrypt_cost: 4, lockout, ..Config::default() };
        Manager::with_store(cfg, Box::new(Memory(users)))
    }

    /// 500 concurrent wrong bcrypt passwords: from one address, only the lockout's worth are
    /// hashed (the attempt is reserved before the hash); from 500 addresses, never more than
    /// the slots at once, and what the queue cannot hold is refused as busy.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_wrong_passwords_are_bounded() {
        let m = Arc::new(bcrypt_manager(10));
        let tasks: Vec<_> = (0..500)
            .map(|i| {
                let m = m.clone();
                tokio::spawn(async move { m.authorize("admin", &format!("wrong{i}"), "192.0.2.1").await })
            })
            .collect();
        let mut refused = 0;
        for t in tasks {
            assert_ne!(t.await.ok(), Some(Ok(true)));
            refused += 1;
        }
        assert_eq!(refused, 500);
        assert!(m.max_concurrent_hashes() <= m.slow_slots(), "{} > {}", m.max_concurrent_hashes(), m.slow_slots());
        assert_eq!(m.authorize("admin", "right", "192.0.2.1").await, Ok(false), "the pair is locked");
        assert_eq!(m.authorize("admin", "right", "192.0.2.2").await, Ok(true), "elsewhere it is not");

        let m = Arc::new(bcrypt_manager(10));
        let tasks: Vec<_> = (0..500)
            .map(|i| {
                let m = m.clone();
                tokio::spawn(async move {
                    m.authorize("admin", &format!("wrong{i}"), &format!("10.0.{}.{}", i / 256, i % 256)).await
                })
            })
            .collect();
        let (mut busy, mut denied) = (0, 0);
        for t in tasks {
            match t.await.ok() {
                Some(Err(Busy)) => busy += 1,
                Some(Ok(false)) => denied += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(busy + denied, 500);
        assert!(denied >= SLOW_QUEUE, "at least the queue's worth were checked: {denied}");
        assert!(m.max_concurrent_hashes() <= m.slow_slots(), "{} > {}", m.max_concurrent_hashes(), m.slow_slots());
    }

    /// Unknown names share one lockout bucket per address (the table's hard bound under a
    /// million of them is `lockout::tests::a_million_failures_keep_the_table_bounded`).
    #[tokio::test]
    async fn unknown_users_share_one_bucket_per_address() {
        let m = bcrypt_manager(3);
        for i in 0..3 {
            assert_eq!(m.authorize(&format!("nobody{i}"), "x", "192.0.2.9").await, Ok(false));
        }
        assert_eq!(m.lockout.len(), 1, "one bucket for every unknown name");
        assert_eq!(m.max_concurrent_hashes(), 1, "an unknown name costs a real user's bcrypt check too");
        assert!(m.lockout.is_locked(UNKNOWN_USER, "192.0.2.9"));
        assert_eq!(m.authorize("admin", "right", "192.0.2.9").await, Ok(true), "a real user is not locked by it");
    }

    /// A script's parallel requests with the right bcrypt password, before it is cached:
    /// they share one hash and none is refused (they are not distinct guesses).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_identical_checks_are_not_locked_out() {
        let m = Arc::new(bcrypt_manager(3));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move { m.authorize("admin", "right", "192.0.2.1").await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.ok(), Some(Ok(true)));
        }
        assert!(!m.lockout.is_locked("admin", "192.0.2.1"));
    }
}
