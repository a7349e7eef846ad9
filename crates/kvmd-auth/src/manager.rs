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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::cache::CredCache;
use crate::config::Config;
use crate::hash;
use crate::lockout::Lockout;
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
        let m = Self {
            sessions: Sessions::open(sessions_path, cfg.expire),
            cache: CredCache::new(Duration::from_secs(cfg.cache_ttl_secs)),
            lockout: Lockout::new(cfg.lockout.clone()),
            files: Mutex::new(Files { users, totp_stamp: None, totp: TotpState::Off, loaded: false }),
            generation: AtomicU64::new(0),
            inflight: Mutex::new(HashMap::new()),
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

    /// kvmd's `authorize(user, passwd)`: TOTP first, then the htpasswd entry. `addr` is
    /// the client address for the lockout.
    pub async fn authorize(&self, user: &str, passwd: &str, addr: &str) -> bool {
        if self.lockout.is_locked(user, addr) {
            tracing::warn!(user, addr, "access denied: too many failed attempts, locked out");
            return false;
        }
        let snap = self.snapshot(user);
        let fp = self.cache.fingerprint(user, passwd);
        if self.cache.hit(&fp, snap.generation) {
            return true;
        }
        let (pw, not_after) = match &snap.totp {
            TotpState::Off => (passwd, None),
            TotpState::Broken => return self.denied(user, addr, "TOTP"),
            TotpState::On(t) => {
                let now = unix_now();
                match totp::check(t, passwd, now) {
                    Some((pw, step)) => {
                        // A code of step s is accepted until step s + 1 ends.
                        let end = (step + 2) * totp::STEP;
                        (pw, Some(Instant::now() + Duration::from_secs(end.saturating_sub(now))))
                    }
                    None => return self.denied(user, addr, "TOTP"),
                }
            }
        };
        let Some(stored) = snap.stored else {
            return self.denied(user, addr, "htpasswd");
        };
        let ok = if hash::identify(&stored).is_slow() {
            self.verify_slow(fp, stored, pw.to_owned()).await
        } else {
            hash::verify(&stored, pw)
        };
        if !ok {
            return self.denied(user, addr, "htpasswd");
        }
        self.cache.insert(fp, snap.generation, not_after);
        self.lockout.success(user, addr);
        tracing::debug!("Authorized user '{user}' via auth service 'htpasswd'");
        true
    }

    /// A slow hash off the worker thread; identical concurrent checks share one run.
    async fn verify_slow(&self, fp: [u8; 32], stored: String, pw: String) -> bool {
        let flight = {
            let mut map = self.inflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(fp).or_default().clone()
        };
        let ok = *flight
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || hash::verify(&stored, &pw)).await.unwrap_or(false)
            })
            .await;
        self.inflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&fp);
        ok
    }

    fn denied(&self, user: &str, addr: &str, by: &str) -> bool {
        if by == "TOTP" {
            tracing::error!("Got access denied for user '{user}' by TOTP");
        } else {
            tracing::error!("Got access denied for user '{user}' from auth service '{by}'");
        }
        if self.lockout.failure(user, addr) {
            tracing::warn!(user, addr, secs = self.cfg.lockout.lock_secs, "too many failed attempts: locked out");
        }
        false
    }
}

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
        assert!(m.authorize("admin", "pw", "127.0.0.1").await);
        assert!(!m.authorize("admin", "nope", "127.0.0.1").await);
        let generation = m.generation.load(Ordering::SeqCst);
        *users.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = (true, HashMap::new());
        assert!(!m.authorize("admin", "pw", "127.0.0.1").await, "a removed user's cached password is refused");
        assert_eq!(m.generation.load(Ordering::SeqCst), generation + 1);
        assert!(!m.user_exists("admin"));
    }
}
