//! kvmd-auth's configuration (`/etc/kvmd/auth.toml`; see `kvmd_core::config` for layering).

use std::path::PathBuf;

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
    /// kvmd `auth.expire`: the longest session lifetime in seconds, 0 = unlimited.
    pub expire: u64,
    /// kvmd `auth.allow_redirects`: the login form's allowed `redirect` values.
    pub allow_redirects: Vec<String>,
    /// Lifetime of a verified-credential cache entry in seconds (0 disables the cache).
    pub cache_ttl_secs: u64,
    /// bcrypt cost for passwords written by `kvmd-htpasswd`.
    pub bcrypt_cost: u32,
    /// Brute-force lockout.
    pub lockout: LockoutConfig,
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
            expire: 0,
            allow_redirects: vec!["/".into(), "/kvm".into(), "/kvm/".into()],
            cache_ttl_secs: 10,
            bcrypt_cost: 12,
            lockout: LockoutConfig::default(),
        }
    }
}

kvmd_core::service_config!(Config);
