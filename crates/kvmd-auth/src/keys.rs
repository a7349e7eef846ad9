//! API keys: a key id and a secret, made by an admin (`kvmd-apikey`), shown once, stored
//! hashed in an embedded SQLite database, each with a scope, a role, an optional expiry
//! and optional client networks, revocable at once.
//!
//! A request carries one as `Authorization: Bearer <id>:<secret>` on any route (kvmd
//! ignores a bearer, so nothing of PiKVM's changes), or in the JSON body of the Kasm-style
//! routes. A generated secret has 256 random bits, so its SHA-256 is as safe at rest as a
//! slow hash of a password and costs what a cached password check costs; it is compared in
//! constant time. Guessing is locked out like passwords (the manager counts failures per key
//! id and address).
//!
//! The database is shared by the service (which reads it) and the CLI (which writes it):
//! SQLite's locking makes concurrent writers safe, and the service keeps the keys in memory,
//! reading them again whenever SQLite's `data_version` says another connection changed them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use kvmd_core::role::Role;
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a key may reach besides kvmd's routes (which its role decides): the Kasm-style
/// `/api/public/*` routes, or those and `/api/admin/*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Kasm's standard key.
    Public,
    /// Kasm's admin key.
    Admin,
}

impl Scope {
    /// Its name in the database and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Public => "public",
            Scope::Admin => "admin",
        }
    }

    /// The scope named `s`.
    pub fn parse(s: &str) -> Option<Scope> {
        [Scope::Public, Scope::Admin].into_iter().find(|x| x.as_str() == s)
    }
}

/// One key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The public half (`api_key`).
    pub id: String,
    /// What it is for, in the admin's words.
    pub name: String,
    /// Kasm's standard or admin key.
    pub scope: Scope,
    /// What it may do on kvmd's routes.
    pub role: Role,
    /// Unix time after which it is refused; `None` = never.
    pub expires: Option<i64>,
    /// The client networks it is accepted from; empty = any.
    pub networks: Vec<ipnet::IpNet>,
    /// Unix time of its creation.
    pub created: i64,
}

/// A key as the service holds it: the key and its secret's digest.
#[derive(Debug, Clone)]
struct Held {
    key: ApiKey,
    digest: [u8; 32],
}

/// Why a key was refused (each is kvmd's 403 on kvmd's routes, Kasm's 401 on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such key (or revoked).
    Unknown,
    /// The secret is not the key's.
    WrongSecret,
    /// Past its expiry.
    Expired,
    /// From a network it is not allowed from.
    Network,
}

/// Key ids: what `kvmd-apikey` accepts and makes (Kasm's are 12 letters and digits).
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The keys' database.
pub struct KeyStore {
    conn: Connection,
    keys: HashMap<String, Held>,
    version: i64,
    loaded: bool,
    path: std::path::PathBuf,
    /// The file's version when the keys were last read: a commit of another connection
    /// rewrites the file (SQLite's rollback journal), so an unchanged `stat` spares the
    /// `data_version` query (a key check then costs what a cached password check costs).
    stamp: crate::store::Stamp,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore").field("keys", &self.keys.len()).finish_non_exhaustive()
    }
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    secret_sha256 BLOB NOT NULL,
    scope TEXT NOT NULL,
    role TEXT NOT NULL,
    expires INTEGER,
    networks TEXT NOT NULL DEFAULT '',
    created INTEGER NOT NULL
)";

impl KeyStore {
    /// Opens (creating it and its table when missing) the database at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        // The state directory may not exist yet on a first start outside systemd.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn, keys: HashMap::new(), version: -1, loaded: false, path: path.to_owned(), stamp: None })
    }

    /// Reads the keys again when another connection changed them (cheap when nothing did:
    /// one pragma). Returns whether they were read.
    pub fn refresh(&mut self) -> bool {
        let stamp = crate::store::stamp(&self.path);
        if self.loaded && stamp.is_some() && stamp == self.stamp {
            return false;
        }
        self.stamp = stamp;
        let version: i64 = self.conn.query_row("PRAGMA data_version", [], |r| r.get(0)).unwrap_or(-1);
        if self.loaded && version == self.version {
            return false;
        }
        match self.read_all() {
            Ok(keys) => {
                let keys: HashMap<String, Held> = keys.into_iter().map(|h| (h.key.id.clone(), h)).collect();
                // The audit of keys made or revoked by `kvmd-apikey` (another process).
                if self.loaded {
                    for (id, h) in keys.iter().filter(|(id, _)| !self.keys.contains_key(*id)) {
                        crate::audit!(event = "key_created", key = ?id, scope = h.key.scope.as_str(), role = %h.key.role, "API key created");
                    }
                    for id in self.keys.keys().filter(|id| !keys.contains_key(*id)) {
                        crate::audit!(event = "key_revoked", key = ?id, "API key revoked");
                    }
                }
                self.keys = keys;
                self.version = version;
                self.loaded = true;
            }
            // Unreadable: keep what was there (or nothing), try again next time.
            Err(e) => tracing::error!(error = %e, "the API keys cannot be read"),
        }
        true
    }

    fn read_all(&self) -> rusqlite::Result<Vec<Held>> {
        let mut st = self.conn.prepare(
            "SELECT id, name, secret_sha256, scope, role, expires, networks, created FROM api_keys ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            let secret: Vec<u8> = r.get(2)?;
            let scope: String = r.get(3)?;
            let role: String = r.get(4)?;
            let networks: String = r.get(6)?;
            Ok((
                ApiKey {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    // A row the service cannot read is the narrowest key there is.
                    scope: Scope::parse(&scope).unwrap_or(Scope::Public),
                    role: Role::parse(&role).unwrap_or(Role::Viewer),
                    expires: r.get(5)?,
                    networks: networks.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
                    created: r.get(7)?,
                },
                secret,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (key, secret) = row?;
            let Ok(digest) = <[u8; 32]>::try_from(secret.as_slice()) else { continue };
            out.push(Held { key, digest });
        }
        Ok(out)
    }

    /// Whether a key `id` exists.
    pub fn contains(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }

    /// Checks `secret` for key `id` from client `addr` at unix time `now`.
    pub fn check(&self, id: &str, secret: &str, addr: Option<IpAddr>, now: i64) -> Result<ApiKey, Refusal> {
        let Some(held) = self.keys.get(id) else {
            // The same work as a wrong secret, so that a refusal does not tell which.
            let _ = digest(secret).ct_eq(&[0u8; 32]);
            return Err(Refusal::Unknown);
        };
        if !bool::from(digest(secret).ct_eq(&held.digest)) {
            return Err(Refusal::WrongSecret);
        }
        if held.key.expires.is_some_and(|t| now >= t) {
            return Err(Refusal::Expired);
        }
        if !held.key.networks.is_empty() && !addr.is_some_and(|a| held.key.networks.iter().any(|n| n.contains(&a))) {
            return Err(Refusal::Network);
        }
        Ok(held.key.clone())
    }

    /// Every key, by id (what `kvmd-apikey list` prints).
    pub fn list(&self) -> rusqlite::Result<Vec<ApiKey>> {
        Ok(self.read_all()?.into_iter().map(|h| h.key).collect())
    }

    /// Stores `key` with `secret` (only its digest is kept). Refuses an id that exists.
    pub fn create(&self, key: &ApiKey, secret: &str) -> rusqlite::Result<()> {
        let networks: Vec<String> = key.networks.iter().map(ToString::to_string).collect();
        self.conn.execute(
            "INSERT INTO api_keys (id, name, secret_sha256, scope, role, expires, networks, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                key.id,
                key.name,
                digest(secret).to_vec(),
                key.scope.as_str(),
                key.role.as_str(),
                key.expires,
                networks.join(","),
                key.created
            ],
        )?;
        Ok(())
    }

    /// Deletes key `id`; whether it existed. The service refuses it from its next check.
    pub fn revoke(&self, id: &str) -> rusqlite::Result<bool> {
        Ok(self.conn.execute("DELETE FROM api_keys WHERE id = ?1", params![id])? > 0)
    }

    /// The key `id`, read from the database.
    pub fn get(&self, id: &str) -> rusqlite::Result<Option<ApiKey>> {
        Ok(self.read_all()?.into_iter().find(|h| h.key.id == id).map(|h| h.key))
    }
}

/// A new key id: 12 letters and digits, as Kasm's.
pub fn new_id() -> String {
    random_alnum(12)
}

/// A new secret: 43 letters and digits (256 bits).
pub fn new_secret() -> String {
    random_alnum(43)
}

fn random_alnum(n: usize) -> String {
    const SET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in crate::hash::random_bytes::<64>() {
            // 248 = 4 × 62: no bias.
            if b < 248 && out.len() < n {
                out.push(char::from(SET[usize::from(b) % 62]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> ApiKey {
        ApiKey {
            id: id.into(),
            name: "test".into(),
            scope: Scope::Admin,
            role: Role::Operator,
            expires: None,
            networks: Vec::new(),
            created: 1,
        }
    }

    #[test]
    fn a_key_is_checked_by_its_secret_expiry_and_networks_and_revoked_at_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("keys.db");
        let mut service = KeyStore::open(&path).unwrap_or_else(|e| panic!("{e}"));
        // The CLI: another connection.
        let cli = KeyStore::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut k = key("k1");
        k.networks = vec!["10.0.0.0/8".parse().unwrap_or_else(|e| panic!("{e}"))];
        k.expires = Some(100);
        cli.create(&k, "s3cret").unwrap_or_else(|e| panic!("{e}"));
        assert!(cli.create(&k, "again").is_err(), "an id is made once");
        assert!(service.refresh());
        assert!(!service.refresh(), "nothing changed: nothing read");
        let inside = Some("10.1.2.3".parse().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(service.check("k1", "s3cret", inside, 50), Ok(k.clone()));
        assert_eq!(service.check("k1", "s3cret!", inside, 50), Err(Refusal::WrongSecret));
        assert_eq!(service.check("k2", "s3cret", inside, 50), Err(Refusal::Unknown));
        assert_eq!(service.check("k1", "s3cret", inside, 100), Err(Refusal::Expired));
        assert_eq!(service.check("k1", "s3cret", "192.0.2.1".parse().ok(), 50), Err(Refusal::Network));
        assert_eq!(service.check("k1", "s3cret", None, 50), Err(Refusal::Network));
        // Only the digest is stored.
        let raw = std::fs::read(&path).unwrap_or_default();
        assert!(!raw.windows(6).any(|w| w == b"s3cret"));
        assert!(cli.revoke("k1").unwrap_or(false));
        assert!(service.refresh());
        assert_eq!(service.check("k1", "s3cret", inside, 50), Err(Refusal::Unknown));
    }

    #[test]
    fn ids_and_secrets() {
        let (a, b) = (new_secret(), new_secret());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(valid_id(&new_id()) && new_id().len() == 12);
        assert!(valid_id("demo") && !valid_id("") && !valid_id("a:b") && !valid_id(&"a".repeat(65)));
    }
}
