//! Login sessions: 64-hex tokens that survive a restart.
//!
//! kvmd keeps sessions in memory and loses them on restart; kvmd-rs writes them to its
//! state directory so that restarting kvmd-auth (an upgrade, a crash) logs nobody out.
//! Only SHA-256 digests of tokens are stored, in memory and on disk, so the file leaks no
//! usable token. The file is rewritten atomically on every login and logout.
//!
//! Expiry follows kvmd (spec `auth.md` section 6): a requested `expire` of 0 takes the
//! global maximum (0 = never); N > 0 is capped by a non-zero global maximum; a session
//! is valid while `now < expires_at` and is deleted lazily when found expired. kvmd uses
//! a monotonic clock, which cannot survive a restart: we store wall-clock seconds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::htpasswd::write_atomic;

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

type TokenHash = [u8; 32];

fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Session {
    user: String,
    /// The lifetime the login asked for (0 = the global default).
    expire: u64,
    /// Wall-clock expiry in unix seconds; 0 = never.
    expires_at: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredSession {
    token_sha256: String,
    #[serde(flatten)]
    session: Session,
}

#[derive(Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    sessions: Vec<StoredSession>,
}

/// The session table, persisted under the state directory.
#[derive(Debug)]
pub struct Sessions {
    path: Option<PathBuf>,
    global_expire: u64,
    map: RwLock<HashMap<TokenHash, Session>>,
    /// Serialises writers so that the file never goes back to an older snapshot.
    persist_lock: Mutex<()>,
}

impl Sessions {
    /// Loads the sessions stored at `path` (a missing or unreadable file starts empty and
    /// is logged); `None` keeps sessions in memory only.
    pub fn open(path: Option<PathBuf>, global_expire: u64) -> Self {
        let mut map = HashMap::new();
        if let Some(p) = &path {
            match std::fs::read(p) {
                Ok(bytes) => match serde_json::from_slice::<StoreFile>(&bytes) {
                    Ok(file) => {
                        let now = unix_now();
                        for s in file.sessions {
                            let mut h = [0u8; 32];
                            if hex::decode_to_slice(&s.token_sha256, &mut h).is_ok() && alive(&s.session, now) {
                                map.insert(h, s.session);
                            }
                        }
                        tracing::info!(sessions = map.len(), path = %p.display(), "restored sessions");
                    }
                    Err(e) => {
                        tracing::error!(path = %p.display(), error = %e, "corrupt session store; starting without sessions")
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(path = %p.display(), error = %e, "cannot read the session store")
                }
            }
        }
        Self { path, global_expire, map: RwLock::new(map), persist_lock: Mutex::new(()) }
    }

    /// Opens a new session for `user` and returns its token.
    pub fn create(&self, user: &str, expire: u64) -> String {
        let mut raw = [0u8; 32];
        if getrandom::fill(&mut raw).is_err() {
            panic!("the operating system gave no random bytes");
        }
        let token = hex::encode(raw);
        let lifetime = match (expire, self.global_expire) {
            (0, g) => g,
            (n, 0) => n,
            (n, g) => n.min(g),
        };
        let expires_at = if lifetime == 0 { 0 } else { unix_now().saturating_add(lifetime) };
        let session = Session { user: user.to_owned(), expire, expires_at };
        self.write().insert(token_hash(&token), session);
        self.persist();
        token
    }

    /// The user of a live session, deleting it if it has expired.
    pub fn check(&self, token: &str) -> Option<String> {
        let h = token_hash(token);
        let now = unix_now();
        {
            let map = self.read();
            match map.get(&h) {
                Some(s) if alive(s, now) => return Some(s.user.clone()),
                Some(_) => {}
                None => return None,
            }
        }
        self.write().remove(&h);
        self.persist();
        None
    }

    /// Ends every session of the user owning `token`; returns that user, if any.
    pub fn logout(&self, token: &str) -> Option<String> {
        let user = {
            let mut map = self.write();
            let user = map.get(&token_hash(token))?.user.clone();
            map.retain(|_, s| s.user != user);
            user
        };
        self.persist();
        Some(user)
    }

    /// The number of live sessions.
    pub fn len(&self) -> usize {
        let now = unix_now();
        self.read().values().filter(|s| alive(s, now)).count()
    }

    /// Whether there is no live session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<TokenHash, Session>> {
        self.map.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<TokenHash, Session>> {
        self.map.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn persist(&self) {
        let Some(path) = &self.path else { return };
        let _guard = self.persist_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = unix_now();
        let sessions = self
            .read()
            .iter()
            .filter(|(_, s)| alive(s, now))
            .map(|(h, s)| StoredSession { token_sha256: hex::encode(h), session: s.clone() })
            .collect();
        let file = StoreFile { version: 1, sessions };
        let bytes = serde_json::to_vec(&file).unwrap_or_default();
        if let Err(e) = store(path, &bytes) {
            tracing::error!(path = %path.display(), error = %e, "cannot write the session store; sessions live in memory only");
        }
    }
}

fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_atomic(path, bytes)
}

fn alive(s: &Session, now: u64) -> bool {
    s.expires_at == 0 || now < s.expires_at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_64_hex_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("sessions.json");
        let s = Sessions::open(Some(path.clone()), 0);
        let t = s.create("admin", 0);
        assert_eq!(t.len(), 64);
        assert!(t.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(s.check(&t).as_deref(), Some("admin"));
        drop(s);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(!text.contains(&t), "the raw token is never stored");
        let s = Sessions::open(Some(path), 0);
        assert_eq!(s.check(&t).as_deref(), Some("admin"));
    }

    #[test]
    fn logout_ends_all_sessions_of_the_user() {
        let s = Sessions::open(None, 0);
        let (a1, a2, b) = (s.create("admin", 0), s.create("admin", 3600), s.create("bob", 0));
        assert_eq!(s.logout(&a1).as_deref(), Some("admin"));
        assert_eq!(s.check(&a1), None);
        assert_eq!(s.check(&a2), None);
        assert_eq!(s.check(&b).as_deref(), Some("bob"));
        assert_eq!(s.logout(&"0".repeat(64)), None);
    }

    #[test]
    fn expiry_rules() {
        let s = Sessions::open(None, 100);
        let t = s.create("a", 0);
        let e = s.read().get(&token_hash(&t)).map(|x| x.expires_at).unwrap_or(0);
        assert!(e > unix_now() && e <= unix_now() + 100, "0 takes the global maximum");
        let t = s.create("a", 5000);
        let e = s.read().get(&token_hash(&t)).map(|x| x.expires_at).unwrap_or(0);
        assert!(e <= unix_now() + 100, "capped by the global maximum");
        let s = Sessions::open(None, 0);
        let t = s.create("a", 0);
        assert_eq!(s.read().get(&token_hash(&t)).map(|x| x.expires_at), Some(0), "never");
        // An expired session is refused and deleted.
        s.write().insert(token_hash("x"), Session { user: "a".into(), expire: 1, expires_at: 1 });
        assert_eq!(s.check("x"), None);
        assert!(!s.read().contains_key(&token_hash("x")));
    }

    #[test]
    fn corrupt_store_starts_empty() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("sessions.json");
        std::fs::write(&path, b"{not json").unwrap_or_else(|e| panic!("{e}"));
        let s = Sessions::open(Some(path), 0);
        assert!(s.is_empty());
        let t = s.create("a", 0);
        assert_eq!(s.check(&t).as_deref(), Some("a"));
    }
}
