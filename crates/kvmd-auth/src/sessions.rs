//! Login sessions: 64-hex tokens that survive a restart, with what each holds open.
//!
//! kvmd keeps sessions in memory and loses them on restart; kvmd-rs writes them to its
//! state directory so that restarting kvmd-auth (an upgrade, a crash) logs nobody out.
//! Only SHA-256 digests of tokens are stored, in memory and on disk, so the file leaks no
//! usable token. The file is rewritten atomically on every login and logout (and, for the
//! times sessions were last used, at most once a minute).
//!
//! Expiry follows kvmd (spec `auth.md` section 6): a requested `expire` of 0 takes the
//! global maximum (0 = never); N > 0 is capped by a non-zero global maximum; a session
//! is valid while `now < expires_at`. kvmd uses a monotonic clock, which cannot survive a
//! restart: we store wall-clock seconds. Beyond kvmd, an idle timeout: a session unused for
//! that long ends, unless it holds something open (a WebSocket, a video stream).
//!
//! Each session has a public id (32 hex, unrelated to its token) by which an admin lists
//! and revokes it. The services that keep a connection open for a session *hold* it
//! ([`Sessions::hold`]): the hold is what the session list shows, and it is told at once
//! when the session is revoked or expires, so the connection closes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
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

fn random_hex<const N: usize>() -> String {
    let mut raw = [0u8; N];
    if getrandom::fill(&mut raw).is_err() {
        panic!("the operating system gave no random bytes");
    }
    hex::encode(raw)
}

/// What a new session records besides its user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client address nginx saw.
    pub addr: String,
    /// The client's `User-Agent`.
    pub agent: String,
    /// How it was opened: `login`, `link`, …
    pub via: String,
    /// A fingerprint of the user's password hash at login ([`crate::manager`] revokes the
    /// session when it changes); empty: none.
    pub cred: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Session {
    #[serde(default)]
    id: String,
    user: String,
    /// The lifetime the login asked for (0 = the global default).
    expire: u64,
    /// Wall-clock expiry in unix seconds; 0 = never.
    expires_at: u64,
    #[serde(default)]
    created: u64,
    #[serde(default)]
    last_seen: AtomicU64,
    #[serde(default)]
    addr: String,
    #[serde(default)]
    agent: String,
    #[serde(default)]
    via: String,
    #[serde(default)]
    cred: String,
}

#[derive(Serialize)]
struct StoredRef<'a> {
    token_sha256: String,
    #[serde(flatten)]
    session: &'a Session,
}

#[derive(Deserialize)]
struct StoredSession {
    token_sha256: String,
    #[serde(flatten)]
    session: Session,
}

#[derive(Serialize)]
struct StoreRef<'a> {
    version: u32,
    sessions: Vec<StoredRef<'a>>,
}

#[derive(Deserialize)]
struct StoreFile {
    #[allow(dead_code)]
    version: u32,
    sessions: Vec<StoredSession>,
}

/// A live session as [`Sessions::check`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its user.
    pub user: String,
    /// Its public id.
    pub id: String,
}

/// Sent to every hold when kvmd-auth stops: the hold ends, the session does not.
pub const CLOSING: &str = "*";

/// What a session holds open, as the services name it.
pub const HOLD_KINDS: &[&str] = &["ws", "stream", "webrtc", "log"];

/// One session as the admin's list shows it (no token, no digest).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionView {
    /// The public id.
    pub id: String,
    /// The user.
    pub user: String,
    /// How it was opened (`login`, `link`, …).
    pub via: String,
    /// The client address at login.
    pub addr: String,
    /// The client's `User-Agent` at login.
    pub user_agent: String,
    /// When it was opened (unix seconds).
    pub since: u64,
    /// When it was last used (unix seconds).
    pub last_seen: u64,
    /// When it expires (unix seconds); `None`: by its idle timeout only, or never.
    pub expires: Option<u64>,
    /// What it holds open now: kind → count.
    pub holds: std::collections::BTreeMap<String, usize>,
}

/// Why sessions ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Their user logged out.
    Logout,
    /// An admin revoked them.
    Revoked,
    /// Their user's password changed, or the user is gone.
    Credentials,
    /// Their lifetime or idle timeout ran out.
    Expired,
}

impl Ended {
    /// The name in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Revoked => "revoked",
            Self::Credentials => "credentials changed",
            Self::Expired => "expired",
        }
    }
}

type Holds = Arc<Mutex<HashMap<String, Vec<(u64, &'static str)>>>>;

/// A connection holding a session open ([`Sessions::hold`]); dropping it lets go.
#[derive(Debug)]
pub struct Hold {
    holds: Holds,
    id: String,
    serial: u64,
    /// Tells the end of the session: its id comes through when it is revoked or expires.
    pub ended: tokio::sync::broadcast::Receiver<String>,
}

impl Hold {
    /// The held session's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut h = self.holds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(list) = h.get_mut(&self.id) {
            list.retain(|(s, _)| *s != self.serial);
            if list.is_empty() {
                h.remove(&self.id);
            }
        }
    }
}

/// The session table, persisted under the state directory.
#[derive(Debug)]
pub struct Sessions {
    path: Option<PathBuf>,
    global_expire: u64,
    idle: u64,
    map: RwLock<HashMap<TokenHash, Session>>,
    /// Serialises writers so that the file never goes back to an older snapshot.
    persist_lock: Mutex<()>,
    /// A `last_seen` moved since the file was last written.
    seen_dirty: AtomicBool,
    holds: Holds,
    serial: AtomicU64,
    ended: tokio::sync::broadcast::Sender<String>,
}

impl Sessions {
    /// Loads the sessions stored at `path` (a missing or unreadable file starts empty and
    /// is logged); `None` keeps sessions in memory only. `global_expire` is kvmd's
    /// `auth.expire`, `idle` the idle timeout (seconds; 0 = none).
    pub fn open(path: Option<PathBuf>, global_expire: u64, idle: u64) -> Self {
        let mut map = HashMap::new();
        if let Some(p) = &path {
            match std::fs::read(p) {
                Ok(bytes) => match serde_json::from_slice::<StoreFile>(&bytes) {
                    Ok(file) => {
                        let now = unix_now();
                        for mut s in file.sessions {
                            let mut h = [0u8; 32];
                            if hex::decode_to_slice(&s.token_sha256, &mut h).is_err() {
                                continue;
                            }
                            // A store written before sessions had ids and times.
                            if s.session.id.len() != 32 {
                                s.session.id = random_hex::<16>();
                            }
                            if *s.session.last_seen.get_mut() == 0 {
                                *s.session.last_seen.get_mut() = now;
                            }
                            if alive(&s.session, now, idle, false) {
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
        Self {
            path,
            global_expire,
            idle,
            map: RwLock::new(map),
            persist_lock: Mutex::new(()),
            seen_dirty: AtomicBool::new(false),
            holds: Arc::default(),
            serial: AtomicU64::new(0),
            ended: tokio::sync::broadcast::channel(256).0,
        }
    }

    /// Opens a new session for `user` and returns its token and id.
    pub fn create(&self, user: &str, expire: u64, origin: Origin) -> (String, String) {
        let token = random_hex::<32>();
        let id = random_hex::<16>();
        let lifetime = match (expire, self.global_expire) {
            (0, g) => g,
            (n, 0) => n,
            (n, g) => n.min(g),
        };
        let now = unix_now();
        let expires_at = if lifetime == 0 { 0 } else { now.saturating_add(lifetime) };
        let session = Session {
            id: id.clone(),
            user: user.to_owned(),
            expire,
            expires_at,
            created: now,
            last_seen: AtomicU64::new(now),
            addr: origin.addr,
            agent: origin.agent,
            via: origin.via,
            cred: origin.cred,
        };
        self.write().insert(token_hash(&token), session);
        self.persist();
        (token, id)
    }

    /// The user and id of a live session, which counts as a use of it.
    pub fn check(&self, token: &str) -> Option<Found> {
        let h = token_hash(token);
        let now = unix_now();
        let map = self.read();
        let s = map.get(&h)?;
        if !alive(s, now, self.idle, self.is_held(&s.id)) {
            return None; // the sweep ends it (and tells its holds)
        }
        if s.last_seen.swap(now, Ordering::Relaxed) != now {
            self.seen_dirty.store(true, Ordering::Relaxed);
        }
        Some(Found { user: s.user.clone(), id: s.id.clone() })
    }

    /// Ends every session of the user owning `token`; returns that user and how many ended.
    pub fn logout(&self, token: &str) -> Option<(String, usize)> {
        let user = self.read().get(&token_hash(token))?.user.clone();
        let n = self.end_where(|s| s.user == user).len();
        Some((user, n))
    }

    /// Ends the sessions for which `pred` (user, id, fingerprint) holds; returns their
    /// (id, user). Their holds are told at once.
    pub fn end_where(&self, pred: impl Fn(&SessionRef<'_>) -> bool) -> Vec<(String, String)> {
        let ended: Vec<(String, String)> = {
            let mut map = self.write();
            let mut out = Vec::new();
            map.retain(|_, s| {
                let keep = !pred(&SessionRef { id: &s.id, user: &s.user, cred: &s.cred });
                if !keep {
                    out.push((s.id.clone(), s.user.clone()));
                }
                keep
            });
            out
        };
        if !ended.is_empty() {
            self.persist();
            for (id, _) in &ended {
                let _ = self.ended.send(id.clone());
            }
        }
        ended
    }

    /// Ends the sessions past their lifetime or idle timeout (kvmd-auth's sweep, every
    /// second); also writes the last-use times when they moved and `flush_seen`.
    pub fn sweep(&self, flush_seen: bool) -> Vec<(String, String)> {
        let now = unix_now();
        let expired: Vec<String> = self
            .read()
            .values()
            .filter(|s| !alive(s, now, self.idle, self.is_held(&s.id)))
            .map(|s| s.id.clone())
            .collect();
        let ended = if expired.is_empty() { Vec::new() } else { self.end_where(|s| expired.iter().any(|e| e == s.id)) };
        if ended.is_empty() && flush_seen && self.seen_dirty.swap(false, Ordering::Relaxed) {
            self.persist();
        }
        ended
    }

    /// Holds session `id` open for a connection of `kind` ([`HOLD_KINDS`]); `None` when
    /// there is no such live session.
    pub fn hold(&self, id: &str, kind: &str) -> Option<Hold> {
        let kind = HOLD_KINDS.iter().copied().find(|k| *k == kind)?;
        let now = unix_now();
        // Subscribed before the check, so that an end between the two is not missed.
        let ended = self.ended.subscribe();
        let map = self.read();
        let s = map.values().find(|s| s.id == id)?;
        if !alive(s, now, self.idle, self.is_held(id)) {
            return None;
        }
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        self.holds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(id.to_owned())
            .or_default()
            .push((serial, kind));
        Some(Hold { holds: self.holds.clone(), id: id.to_owned(), serial, ended })
    }

    /// kvmd-auth is stopping: every hold ends without its session ending (the services
    /// hold their sessions again on the next process).
    pub fn closing(&self) {
        let _ = self.ended.send(CLOSING.to_owned());
    }

    /// Gives `user`'s sessions the password fingerprint `cred` (a new password that keeps
    /// them).
    pub fn restamp(&self, user: &str, cred: &str) {
        for s in self.write().values_mut().filter(|s| s.user == user) {
            s.cred = cred.to_owned();
        }
        self.persist();
    }

    /// Records where session `id` is used from (a login link's, when it is followed).
    pub fn note_client(&self, id: &str, addr: &str, agent: &str) {
        if let Some(s) = self.write().values_mut().find(|s| s.id == id) {
            s.addr = addr.to_owned();
            s.agent = agent.chars().take(256).collect();
        }
        self.persist();
    }

    /// Whether session `id` is still live.
    pub fn contains_id(&self, id: &str) -> bool {
        self.read().values().any(|s| s.id == id)
    }

    fn is_held(&self, id: &str) -> bool {
        self.holds.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(id)
    }

    /// Every live session, oldest first.
    pub fn list(&self) -> Vec<SessionView> {
        let now = unix_now();
        let holds = self.holds.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let mut out: Vec<SessionView> = self
            .read()
            .values()
            .filter(|s| alive(s, now, self.idle, holds.contains_key(&s.id)))
            .map(|s| {
                let mut held = std::collections::BTreeMap::new();
                for (_, kind) in holds.get(&s.id).map(Vec::as_slice).unwrap_or_default() {
                    *held.entry((*kind).to_owned()).or_insert(0) += 1;
                }
                SessionView {
                    id: s.id.clone(),
                    user: s.user.clone(),
                    via: if s.via.is_empty() { "login".into() } else { s.via.clone() },
                    addr: s.addr.clone(),
                    user_agent: s.agent.clone(),
                    since: s.created,
                    last_seen: s.last_seen.load(Ordering::Relaxed),
                    expires: (s.expires_at != 0).then_some(s.expires_at),
                    holds: held,
                }
            })
            .collect();
        out.sort_by(|a, b| (a.since, &a.id).cmp(&(b.since, &b.id)));
        out
    }

    /// The number of live sessions.
    pub fn len(&self) -> usize {
        let now = unix_now();
        self.read().values().filter(|s| alive(s, now, self.idle, self.is_held(&s.id))).count()
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
        self.seen_dirty.store(false, Ordering::Relaxed);
        let bytes = {
            let map = self.read();
            let sessions = map.iter().map(|(h, s)| StoredRef { token_sha256: hex::encode(h), session: s }).collect();
            serde_json::to_vec(&StoreRef { version: 2, sessions }).unwrap_or_default()
        };
        if let Err(e) = store(path, &bytes) {
            tracing::error!(path = %path.display(), error = %e, "cannot write the session store; sessions live in memory only");
        }
    }
}

/// What [`Sessions::end_where`]'s predicate sees of a session.
#[derive(Debug)]
pub struct SessionRef<'a> {
    /// The public id.
    pub id: &'a str,
    /// The user.
    pub user: &'a str,
    /// The password fingerprint at login (empty: none).
    pub cred: &'a str,
}

fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_atomic(path, bytes)
}

fn alive(s: &Session, now: u64, idle: u64, held: bool) -> bool {
    (s.expires_at == 0 || now < s.expires_at)
        && (idle == 0 || held || now < s.last_seen.load(Ordering::Relaxed).saturating_add(idle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin { addr: "192.0.2.7".into(), agent: "curl/8".into(), via: "login".into(), cred: String::new() }
    }

    #[test]
    fn tokens_are_64_hex_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("sessions.json");
        let s = Sessions::open(Some(path.clone()), 0, 0);
        let (t, id) = s.create("admin", 0, origin());
        assert_eq!(t.len(), 64);
        assert!(t.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(id.len(), 32);
        assert_ne!(&t[..32], id, "the id is not a part of the token");
        assert_eq!(s.check(&t), Some(Found { user: "admin".into(), id: id.clone() }));
        drop(s);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(!text.contains(&t), "the raw token is never stored");
        let s = Sessions::open(Some(path), 0, 0);
        assert_eq!(s.check(&t), Some(Found { user: "admin".into(), id }));
        let l = s.list();
        assert_eq!((l.len(), l[0].addr.as_str(), l[0].user_agent.as_str()), (1, "192.0.2.7", "curl/8"));
    }

    #[test]
    fn a_store_of_the_first_version_is_read() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("sessions.json");
        let t = "ab".repeat(32);
        let old = format!(
            r#"{{"version":1,"sessions":[{{"token_sha256":"{}","user":"admin","expire":0,"expires_at":0}}]}}"#,
            hex::encode(token_hash(&t))
        );
        std::fs::write(&path, old).unwrap_or_else(|e| panic!("{e}"));
        let s = Sessions::open(Some(path), 0, 3600);
        let found = s.check(&t).map(|f| (f.user, f.id.len()));
        assert_eq!(found, Some(("admin".into(), 32)), "given an id, and its idle time starts now");
    }

    #[test]
    fn logout_ends_all_sessions_of_the_user() {
        let s = Sessions::open(None, 0, 0);
        let (a1, _) = s.create("admin", 0, origin());
        let (a2, _) = s.create("admin", 3600, origin());
        let (b, _) = s.create("bob", 0, origin());
        assert_eq!(s.logout(&a1), Some(("admin".into(), 2)));
        assert_eq!(s.check(&a1), None);
        assert_eq!(s.check(&a2), None);
        assert_eq!(s.check(&b).map(|f| f.user).as_deref(), Some("bob"));
        assert_eq!(s.logout(&"0".repeat(64)), None);
    }

    #[test]
    fn expiry_rules() {
        let s = Sessions::open(None, 100, 0);
        let (t, _) = s.create("a", 0, origin());
        let e = s.read().get(&token_hash(&t)).map(|x| x.expires_at).unwrap_or(0);
        assert!(e > unix_now() && e <= unix_now() + 100, "0 takes the global maximum");
        let (t, _) = s.create("a", 5000, origin());
        let e = s.read().get(&token_hash(&t)).map(|x| x.expires_at).unwrap_or(0);
        assert!(e <= unix_now() + 100, "capped by the global maximum");
        let s = Sessions::open(None, 0, 0);
        let (t, _) = s.create("a", 0, origin());
        assert_eq!(s.read().get(&token_hash(&t)).map(|x| x.expires_at), Some(0), "never");
        // An expired session is refused, and the sweep deletes it.
        let (x, _) = s.create("a", 0, origin());
        if let Some(v) = s.write().get_mut(&token_hash(&x)) {
            v.expires_at = 1;
        }
        assert_eq!(s.check(&x), None);
        assert_eq!(s.sweep(false).len(), 1);
        assert!(!s.read().contains_key(&token_hash(&x)));
    }

    #[test]
    fn idle_sessions_end_unless_held() {
        let s = Sessions::open(None, 0, 60);
        let (t, id) = s.create("a", 0, origin());
        let (u, uid) = s.create("b", 0, origin());
        // `b`'s WebSocket keeps it alive; `a` runs out.
        let hold = s.hold(&uid, "ws");
        assert!(hold.is_some());
        for tok in [&t, &u] {
            if let Some(v) = s.read().get(&token_hash(tok)) {
                v.last_seen.store(unix_now() - 61, Ordering::Relaxed);
            }
        }
        assert_eq!(s.check(&t), None);
        assert!(s.hold(&id, "ws").is_none(), "an idle session cannot be held");
        assert_eq!(s.sweep(false), vec![(id, "a".to_owned())]);
        assert_eq!(s.check(&u).map(|f| f.user).as_deref(), Some("b"));
        assert_eq!(s.list()[0].holds.get("ws"), Some(&1));
        drop(hold);
        assert!(s.list()[0].holds.is_empty());
    }

    #[test]
    fn ending_a_session_tells_its_holds() {
        let s = Sessions::open(None, 0, 0);
        let (_, id) = s.create("a", 0, origin());
        let (_, other) = s.create("b", 0, origin());
        assert!(s.hold(&id, "nonsense").is_none());
        assert!(s.hold(&"0".repeat(32), "ws").is_none());
        let Some(mut hold) = s.hold(&id, "ws") else { panic!("no hold") };
        assert_eq!(s.end_where(|r| r.id == other).len(), 1);
        assert_eq!(s.end_where(|r| r.user == "a"), vec![(id.clone(), "a".to_owned())]);
        let mut told = Vec::new();
        while let Ok(e) = hold.ended.try_recv() {
            told.push(e);
        }
        assert!(told.contains(&id), "{told:?}");
        assert!(!s.contains_id(&id));
    }

    #[test]
    fn corrupt_store_starts_empty() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("sessions.json");
        std::fs::write(&path, b"{not json").unwrap_or_else(|e| panic!("{e}"));
        let s = Sessions::open(Some(path), 0, 0);
        assert!(s.is_empty());
        let (t, _) = s.create("a", 0, origin());
        assert_eq!(s.check(&t).map(|f| f.user).as_deref(), Some("a"));
    }
}
