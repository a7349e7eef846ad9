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
use crate::keys::{ApiKey, KeyStore, Refusal};
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
    /// Each user's password fingerprint as last read ([`cred_fingerprint`]), to tell
    /// who was added, removed or given a new password.
    known: Option<HashMap<String, String>>,
    totp_stamp: Stamp,
    totp: TotpState,
    loaded: bool,
}

/// What a session remembers of its user's password: a short digest of the stored hash
/// (never of the password), so that a new password ends the sessions opened with the old.
pub fn cred_fingerprint(stored_hash: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("kvmd-rs session credential\0{stored_hash}").as_bytes());
    hex::encode(&d[..8])
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
    /// The API keys (`None` when there is no database).
    keys: Option<Mutex<KeyStore>>,
    /// When each key's use was last written to the audit log.
    key_audited: Mutex<HashMap<String, Instant>>,
    /// One-time login links not yet followed: the digest of the link's token → the
    /// session it opens.
    links: Mutex<HashMap<[u8; 32], Link>>,
}

/// A one-time login link: followed once, before `expires`, it hands its session's token to
/// the browser as the cookie.
struct Link {
    token: String,
    session: String,
    expires: Instant,
}

/// A user as the admin's list shows it (never a hash).
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct UserView {
    /// A stable id (32 hex, from the name: [`user_id`]).
    pub user_id: String,
    /// The name.
    pub username: String,
    /// The role.
    pub role: kvmd_core::role::Role,
    /// Where the password is: `htpasswd` (the file, read-only here) or `database`.
    pub password_in: &'static str,
    /// Locked, disabled, the profile, when made.
    #[serde(flatten)]
    pub row: crate::users::UserRow,
    /// How many live sessions the user has.
    pub sessions: usize,
}

/// What an admin changes of a user ([`Manager::update_user`]); `None`: unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChange {
    /// A new password (hashed with bcrypt here).
    pub password: Option<String>,
    /// A new role.
    pub role: Option<kvmd_core::role::Role>,
    /// Locked or not.
    pub locked: Option<bool>,
    /// Disabled or not.
    pub disabled: Option<bool>,
    /// Profile fields.
    pub profile: [Option<String>; 4],
    /// Keep the user's sessions through a new password or role (they end otherwise).
    pub keep_sessions: bool,
}

/// Why a user could not be made or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// There is no users' database (`users = ""`, or it cannot be opened).
    #[error("users cannot be changed here: there is no users' database")]
    NoDatabase,
    /// The name is taken.
    #[error("user {0} exists")]
    Exists(String),
    /// No such user.
    #[error("no user {0}")]
    Unknown(String),
    /// The user's password is in the htpasswd file, which kvmd-auth only reads.
    #[error("the password of {0} is in the htpasswd file: change it with kvmd-htpasswd")]
    InFile(String),
    /// The database or the hash failed.
    #[error("{0}")]
    Failed(String),
}

/// The stable id of user `name` (Kasm's 32-hex form): the users live in a file that has no
/// ids, so it is derived from the name.
pub fn user_id(name: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(format!("kvmd-rs user\0{name}").as_bytes())[..16])
}

impl Manager {
    /// A manager for `cfg`, with the users of its htpasswd file; reads the files once so
    /// start-up logs their state.
    pub fn new(cfg: Config) -> Self {
        let file = HtpasswdFile::new(cfg.htpasswd.clone());
        let db = (!cfg.users.as_os_str().is_empty())
            .then(|| match crate::users::UserDb::open(&cfg.users) {
                Ok(db) => Some(db),
                Err(e) => {
                    tracing::error!(path = %cfg.users.display(), error = %e, "the users' database cannot be opened: the htpasswd file alone");
                    None
                }
            })
            .flatten();
        let users = crate::users::UserStore::new(file, db, cfg.roles.clone());
        Self::with_store(cfg, Box::new(users))
    }

    /// A manager for `cfg` with the users of `users` (`cfg.htpasswd` is not read); reads
    /// them and the TOTP secret once so start-up logs their state.
    pub fn with_store(cfg: Config, users: Box<dyn CredentialStore>) -> Self {
        let keys = (!cfg.keys.as_os_str().is_empty())
            .then(|| match KeyStore::open(&cfg.keys) {
                Ok(k) => Some(Mutex::new(k)),
                Err(e) => {
                    tracing::error!(path = %cfg.keys.display(), error = %e, "the API keys cannot be opened: none is accepted");
                    None
                }
            })
            .flatten();
        let sessions_path = (!cfg.sessions.as_os_str().is_empty()).then(|| cfg.sessions.clone());
        let slots = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
        let m = Self {
            sessions: Sessions::open(sessions_path, cfg.expire, cfg.idle_timeout),
            cache: CredCache::new(Duration::from_secs(cfg.cache_ttl_secs)),
            lockout: Lockout::new(cfg.lockout.clone()),
            files: Mutex::new(Files { users, known: None, totp_stamp: None, totp: TotpState::Off, loaded: false }),
            generation: AtomicU64::new(0),
            inflight: Mutex::new(HashMap::new()),
            slow: Arc::new(tokio::sync::Semaphore::new(slots)),
            slow_slots: slots,
            slow_waiting: AtomicUsize::new(0),
            hashing: Gauge::default(),
            dummy: std::sync::OnceLock::new(),
            keys,
            key_audited: Mutex::new(HashMap::new()),
            links: Mutex::new(HashMap::new()),
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
            self.users_changed(&mut f);
        }
        f
    }

    /// After the users were read again: the audit of who was added, removed or given a new
    /// password, and the end of the sessions of those removed or given a new password
    /// (also of changes made while kvmd-auth was down: the sessions remember the
    /// fingerprint). A store that could not be read changes nothing.
    fn users_changed(&self, f: &mut Files) {
        let Some(names) = f.users.users() else { return };
        // Each user's fingerprint; an empty one for a user who may not log in (locked,
        // disabled).
        let now: HashMap<String, String> = names
            .into_iter()
            .map(|u| {
                let fp = f.users.hash(&u).map(|h| cred_fingerprint(&h)).unwrap_or_default();
                (u, fp)
            })
            .collect();
        if let Some(before) = &f.known {
            for (u, fp) in &now {
                match before.get(u) {
                    None => crate::audit!(event = "user_added", user = ?u, "user added"),
                    Some(old) if old.is_empty() && !fp.is_empty() => {
                        crate::audit!(event = "user_enabled", user = ?u, "user may log in again")
                    }
                    Some(old) if !old.is_empty() && fp.is_empty() => {
                        crate::audit!(event = "user_disabled", user = ?u, "user locked or disabled")
                    }
                    Some(old) if old != fp => crate::audit!(event = "password_changed", user = ?u, "password changed"),
                    Some(_) => {}
                }
            }
            for u in before.keys().filter(|u| !now.contains_key(*u)) {
                crate::audit!(event = "user_removed", user = ?u, "user removed");
            }
        }
        let ended = self.sessions.end_where(|s| match now.get(s.user) {
            None => true,
            Some(fp) if fp.is_empty() => true,
            Some(fp) => !s.cred.is_empty() && s.cred != fp,
        });
        for (id, user) in &ended {
            crate::audit!(event = "session_ended", session = ?id, user = ?user, reason = "credentials changed", "session ended");
        }
        f.known = Some(now);
    }

    /// The fingerprint a new session of `user` remembers ([`cred_fingerprint`]; empty for
    /// a store that names no users).
    pub fn cred_of(&self, user: &str) -> String {
        let f = self.refresh();
        if f.users.users().is_none() {
            return String::new();
        }
        f.users.hash(user).map(|h| cred_fingerprint(&h)).unwrap_or_default()
    }

    /// Every user, sorted, with their role and live sessions (empty when the store names
    /// none).
    pub fn users(&self) -> Vec<UserView> {
        let mut f = self.refresh();
        let has_db = f.users.db().is_some();
        let mut rows = f.users.rows();
        if rows.is_empty() {
            // A store without rows (no database): its names, roles from auth.toml.
            rows = f
                .users
                .users()
                .unwrap_or_default()
                .iter()
                .map(|u| crate::users::UserRow::new(u, self.cfg.roles.get(u).copied().unwrap_or_default()))
                .collect();
        }
        let file: Vec<bool> = rows.iter().map(|r| f.users.in_file(&r.name) || !has_db).collect();
        drop(f);
        let sessions = self.sessions.list();
        let mut out: Vec<UserView> = rows
            .into_iter()
            .zip(file)
            .map(|(row, in_file)| UserView {
                user_id: user_id(&row.name),
                username: row.name.clone(),
                role: row.role,
                password_in: if in_file { "htpasswd" } else { "database" },
                sessions: sessions.iter().filter(|s| s.user == row.name).count(),
                row,
            })
            .collect();
        out.sort_by(|a, b| a.username.cmp(&b.username));
        out
    }

    /// One user, as the list shows them.
    pub fn user(&self, name: &str) -> Option<UserView> {
        self.users().into_iter().find(|u| u.username == name)
    }

    /// Makes user `row.name` with `password` (bcrypt at the configured cost) in the users'
    /// database.
    pub async fn create_user(
        &self,
        mut row: crate::users::UserRow,
        password: String,
        by: &str,
    ) -> Result<UserView, UserError> {
        if self.refresh().users.db().is_none() {
            return Err(UserError::NoDatabase);
        }
        if self.user_exists_at_all(&row.name) {
            return Err(UserError::Exists(row.name));
        }
        row.hash = Some(self.bcrypt(password).await?);
        {
            let mut f = self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let db = f.users.db().ok_or(UserError::NoDatabase)?;
            if db.get(&row.name).is_some_and(|r| r.hash.is_some()) {
                return Err(UserError::Exists(row.name));
            }
            db.put(&row).map_err(|e| UserError::Failed(e.to_string()))?;
        }
        crate::audit!(event = "user_created", user = ?row.name, role = %row.role, by, "user created");
        self.user(&row.name).ok_or(UserError::Unknown(row.name))
    }

    /// Changes user `name`. A new password or role ends the user's sessions unless
    /// `keep_sessions`; locking or disabling ends them always.
    pub async fn update_user(&self, name: &str, change: UserChange, by: &str) -> Result<UserView, UserError> {
        let mut row = {
            let mut f = self.refresh();
            let in_file = f.users.in_file(name);
            let db = f.users.db().ok_or(UserError::NoDatabase)?;
            let row = db.get(name).cloned().filter(|r| in_file || r.hash.is_some());
            let row = row.ok_or_else(|| UserError::Unknown(name.to_owned()))?;
            if change.password.is_some() && in_file {
                return Err(UserError::InFile(name.to_owned()));
            }
            row
        };
        let new_hash = match change.password {
            Some(p) => Some(self.bcrypt(p).await?),
            None => None,
        };
        let role_changed = change.role.is_some_and(|r| r != row.role);
        if let Some(h) = &new_hash {
            row.hash = Some(h.clone());
        }
        if let Some(r) = change.role {
            row.role = r;
        }
        if let Some(l) = change.locked {
            row.locked = l;
        }
        if let Some(d) = change.disabled {
            row.disabled = d;
        }
        let [first, last, phone, org] = change.profile;
        for (field, v) in [
            (&mut row.first_name, first),
            (&mut row.last_name, last),
            (&mut row.phone, phone),
            (&mut row.organization, org),
        ] {
            if let Some(v) = v {
                *field = v;
            }
        }
        {
            let mut f = self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let db = f.users.db().ok_or(UserError::NoDatabase)?;
            db.put(&row).map_err(|e| UserError::Failed(e.to_string()))?;
        }
        if let Some(h) = &new_hash
            && change.keep_sessions
        {
            self.sessions.restamp(name, &cred_fingerprint(h));
        }
        if role_changed && !change.keep_sessions {
            for (id, user) in self.sessions.end_where(|s| s.user == name) {
                crate::audit!(event = "session_ended", session = ?id, user = ?user, reason = "role changed", "session ended");
            }
        }
        crate::audit!(event = "user_changed", user = name, role = %row.role, locked = row.locked, disabled = row.disabled,
            password = new_hash.is_some(), by, "user changed");
        self.user(name).ok_or_else(|| UserError::Unknown(name.to_owned()))
    }

    /// Deletes user `name` of the users' database (one of the htpasswd file is deleted with
    /// `kvmd-htpasswd del`); their sessions end.
    pub fn delete_user(&self, name: &str, by: &str) -> Result<(), UserError> {
        {
            let mut f = self.refresh();
            let in_file = f.users.in_file(name);
            let db = f.users.db().ok_or(UserError::NoDatabase)?;
            if in_file {
                return Err(UserError::InFile(name.to_owned()));
            }
            if !db.delete(name).map_err(|e| UserError::Failed(e.to_string()))? {
                return Err(UserError::Unknown(name.to_owned()));
            }
        }
        crate::audit!(event = "user_deleted", user = name, by, "user deleted");
        drop(self.refresh());
        Ok(())
    }

    /// Whether any store names `name` (active or not).
    fn user_exists_at_all(&self, name: &str) -> bool {
        let mut f = self.refresh();
        f.users.in_file(name) || f.users.db().is_some_and(|d| d.get(name).is_some_and(|r| r.hash.is_some()))
    }

    async fn bcrypt(&self, password: String) -> Result<String, UserError> {
        let cost = self.cfg.bcrypt_cost;
        let _slot = self.slow.clone().acquire_owned().await.map_err(|e| UserError::Failed(e.to_string()))?;
        tokio::task::spawn_blocking(move || crate::hash::make_bcrypt(&password, cost))
            .await
            .map_err(|e| UserError::Failed(e.to_string()))?
            .map_err(|e| UserError::Failed(e.to_string()))
    }

    /// A one-time login link for `user`, valid `ttl`: its token and the id of the session
    /// it opens (made now, unusable until the link is followed). `None` for an unknown user.
    pub fn make_link(&self, user: &str, ttl: Duration, made_by: &str) -> Option<(String, String)> {
        if !self.user_exists(user) {
            return None;
        }
        let origin = crate::sessions::Origin { via: "link".into(), cred: self.cred_of(user), ..Default::default() };
        let (token, session) = self.sessions.create(user, 0, origin);
        let link = hex::encode(crate::hash::random_bytes::<32>());
        let mut links = self.links.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        links.retain(|_, l| l.expires > Instant::now());
        links.insert(link_digest(&link), Link { token, session: session.clone(), expires: Instant::now() + ttl });
        drop(links);
        crate::audit!(event = "link_made", user, session = ?session, by = made_by, "login link made");
        Some((link, session))
    }

    /// Follows login link `link` once: the token of its session, if the link is good.
    pub fn follow_link(&self, link: &str, addr: &str, agent: &str) -> Option<String> {
        let l = self.links.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&link_digest(link))?;
        if l.expires <= Instant::now() || !self.sessions.contains_id(&l.session) {
            return None;
        }
        self.sessions.note_client(&l.session, addr, agent);
        crate::audit!(event = "link_followed", session = ?l.session, addr, "login link followed");
        Some(l.token)
    }

    /// Ends the sessions past their lifetime or idle timeout, telling their holds (run every
    /// second); writes the sessions' last-use times when `flush` and they moved.
    pub fn sweep(&self, flush: bool) {
        // Keys made or revoked elsewhere reach the audit log within a second, used or not.
        if let Some(keys) = &self.keys {
            keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner).refresh();
        }
        for (id, user) in self.sessions.sweep(flush) {
            crate::audit!(event = "session_ended", session = ?id, user = ?user, reason = "expired", "session ended");
        }
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

    /// The live session of `token` whose user still exists, after the users were brought up
    /// to date (so that a new password or a deleted user ends the session before it is
    /// found).
    pub fn session(&self, token: &str) -> Option<crate::sessions::Found> {
        let f = self.refresh();
        let found = self.sessions.check(token)?;
        f.users.contains(&found.user).then_some(found)
    }

    /// Whether `user` is (still) in the credential store (the htpasswd file): a deleted
    /// user's sessions are refused at once (kvmd keeps them until it restarts).
    pub fn user_exists(&self, user: &str) -> bool {
        self.refresh().users.contains(user)
    }

    /// Checks API key `id` with `secret` from client `addr` (nginx's `X-Real-IP`): the
    /// key, or why not. Failures are locked out as passwords are (per key id and address;
    /// unknown ids share the unknown users' bucket).
    pub fn authorize_key(&self, id: &str, secret: &str, addr: &str) -> Result<ApiKey, Refusal> {
        let Some(keys) = &self.keys else { return Err(Refusal::Unknown) };
        let mut keys = keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.refresh();
        let bucket = if keys.contains(id) { format!("key:{id}") } else { UNKNOWN_USER.to_owned() };
        if self.lockout.is_locked(&bucket, addr) {
            tracing::warn!(key = id, addr, "API key refused: too many failed attempts, locked out");
            return Err(Refusal::WrongSecret);
        }
        let ip = addr.parse::<std::net::IpAddr>().ok();
        match keys.check(id, secret, ip, i64::try_from(unix_now()).unwrap_or(i64::MAX)) {
            Ok(key) => {
                drop(keys);
                self.lockout.success(&bucket, addr);
                // A key's use in the audit log: its first, then at most once a minute.
                let mut seen = self.key_audited.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if seen.get(id).is_none_or(|t| t.elapsed() >= KEY_AUDIT_EVERY) {
                    if seen.len() >= 4096 {
                        seen.retain(|_, t| t.elapsed() < KEY_AUDIT_EVERY);
                    }
                    seen.insert(id.to_owned(), Instant::now());
                    crate::audit!(event = "key_used", key = id, addr, role = %key.role, "API key used");
                }
                Ok(key)
            }
            Err(why) => {
                drop(keys);
                crate::audit!(event = "key_refused", key = id, addr, reason = ?why, "API key refused");
                self.count_attempt(&bucket, &bucket, addr);
                Err(why)
            }
        }
    }

    /// What `user` may do: the role the config gives them, else admin (kvmd's every user).
    /// With auth disabled, everybody is an admin.
    /// The users are not read again here: every caller has just checked the user's
    /// credentials, which brought them up to date.
    pub fn role(&self, user: &str) -> kvmd_core::role::Role {
        let f = self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f.users.role(user).or_else(|| self.cfg.roles.get(user).copied()).unwrap_or_default()
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
                crate::audit!(event = "locked_out", user, addr, secs = self.cfg.lockout.lock_secs, "locked out");
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

fn link_digest(link: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(link.as_bytes()).into()
}

/// How often one key's use is written to the audit log.
const KEY_AUDIT_EVERY: Duration = Duration::from_secs(60);

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
