//! kvmd-auth's configuration (`/etc/kvmd/auth.toml`; see `kvmd_core::config` for layering).

use std::collections::BTreeMap;
use std::path::PathBuf;

use kvmd_core::role::Role;

use kvmd_core::net::SocketConfig;
use serde::{Deserialize, Serialize};

use crate::lockout::LockoutConfig;

/// Everything kvmd-auth can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where it listens (nginx's `auth` upstream).
    pub socket: SocketConfig,
    /// HTTP worker threads. One is the default: a request costs microseconds, and a
    /// second worker measured slower (more threads waking for fewer requests each).
    pub workers: usize,
    /// kvmd `auth.enabled`: when false every request is allowed.
    pub enabled: bool,
    /// The htpasswd file (kvmd `auth.internal.file`).
    pub htpasswd: PathBuf,
    /// The TOTP secret file; an empty path disables TOTP (kvmd `auth.totp.secret.file`).
    pub totp_secret: PathBuf,
    /// Where sessions are kept across restarts; an empty path keeps them in memory only.
    pub sessions: PathBuf,
    /// The users' database (SQLite): users made through the API, every user's role and
    /// flags; an empty path: the htpasswd file alone, roles from `roles`.
    pub users: PathBuf,
    /// The API keys' database (SQLite; `kvmd-apikey` writes it); an empty path: no keys.
    pub keys: PathBuf,
    /// kvmd `auth.expire`: the longest session lifetime in seconds, and the lifetime of a
    /// login that asks for none; 0 = unlimited (kvmd's default; kvmd-rs's is 30 days).
    pub expire: u64,
    /// A session unused for this many seconds ends, unless it holds a connection open (a
    /// console's WebSocket, a video stream); 0 = never. kvmd has none.
    pub idle_timeout: u64,
    /// kvmd `auth.allow_redirects`: the login form's allowed `redirect` values.
    pub allow_redirects: Vec<String>,
    /// Lifetime of a verified-credential cache entry in seconds (0 disables the cache).
    pub cache_ttl_secs: u64,
    /// bcrypt cost for passwords written by `kvmd-htpasswd`.
    pub bcrypt_cost: u32,
    /// Brute-force lockout.
    pub lockout: LockoutConfig,
    /// The role of each user named here (`viewer`, `operator`, `admin`); every other user
    /// is an admin, as every kvmd user is (`kvmd_core::role`). With the users' database,
    /// this is the role a user of the htpasswd file gets in it when first seen; then the
    /// database's role counts (an admin changes it through the API).
    pub roles: BTreeMap<String, Role>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            socket: SocketConfig::at("/run/kvmd/auth.sock"),
            workers: 1,
            enabled: true,
            htpasswd: "/etc/kvmd/htpasswd".into(),
            totp_secret: "/etc/kvmd/totp.secret".into(),
            sessions: "/var/lib/kvmd-auth/sessions.json".into(),
            users: "/var/lib/kvmd-auth/users.db".into(),
            keys: "/var/lib/kvmd-auth/keys.db".into(),
            expire: 30 * 86400,
            idle_timeout: 86400,
            allow_redirects: vec!["/".into(), "/kvm".into(), "/kvm/".into()],
            cache_ttl_secs: 10,
            bcrypt_cost: 12,
            lockout: LockoutConfig::default(),
            roles: BTreeMap::new(),
        }
    }
}

kvmd_core::service_config!(Config);
