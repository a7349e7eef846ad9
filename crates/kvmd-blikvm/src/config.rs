//! kvmd-blikvm's configuration (`/etc/kvmd/blikvm.toml`; layering in `kvmd_core::config`).

use std::path::PathBuf;

use kvmd_core::net::SocketConfig;
use serde::{Deserialize, Serialize};

/// The sockets of the services kvmd-blikvm asks, each with the caller's token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Sockets {
    /// kvmd-auth (logins, tokens).
    pub auth: PathBuf,
    /// kvmd-hid (keys, mouse, paste).
    pub hid: PathBuf,
    /// kvmd-gpio (ATX).
    pub gpio: PathBuf,
    /// kvmd-msd (virtual media).
    pub msd: PathBuf,
}

impl Default for Sockets {
    fn default() -> Self {
        let at = |n: &str| PathBuf::from(format!("/run/kvmd/{n}.sock"));
        Self { auth: at("auth"), hid: at("hid"), gpio: at("gpio"), msd: at("msd") }
    }
}

/// Everything kvmd-blikvm can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where it listens (nginx's `blikvm` upstream).
    pub socket: SocketConfig,
    /// HTTP worker threads.
    pub workers: usize,
    /// The services it asks.
    pub sockets: Sockets,
    /// The keymap `/paste` types with (one of kvmd-hid's `/hid/keymaps`).
    pub paste_keymap: String,
    /// Seconds between the key events of `/paste` (kvmd-hid's `delay`, 0 … 5).
    pub paste_delay: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            socket: SocketConfig::at("/run/kvmd/blikvm.sock"),
            workers: 1,
            sockets: Sockets::default(),
            paste_keymap: "en-us".into(),
            paste_delay: 0.02,
        }
    }
}

kvmd_core::service_config!(Config);
