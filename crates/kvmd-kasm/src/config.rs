//! kvmd-kasm's configuration (`/etc/kvmd/kasm.toml`; layering in `kvmd_core::config`).

use std::path::PathBuf;

use kvmd_core::net::SocketConfig;
use serde::{Deserialize, Serialize};

/// The sockets of the services kvmd-kasm asks, each with the caller's key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Sockets {
    /// kvmd-auth (keys, users, sessions, login links).
    pub auth: PathBuf,
    /// kvmd-hid.
    pub hid: PathBuf,
    /// kvmd-streamer.
    pub streamer: PathBuf,
    /// kvmd-gpio (ATX).
    pub gpio: PathBuf,
    /// kvmd-msd.
    pub msd: PathBuf,
    /// kvmd-info.
    pub info: PathBuf,
}

impl Default for Sockets {
    fn default() -> Self {
        let at = |n: &str| PathBuf::from(format!("/run/kvmd/{n}.sock"));
        Self {
            auth: at("auth"),
            hid: at("hid"),
            streamer: at("streamer"),
            gpio: at("gpio"),
            msd: at("msd"),
            info: at("info"),
        }
    }
}

/// Everything kvmd-kasm can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where it listens (nginx's `kasm` upstream).
    pub socket: SocketConfig,
    /// HTTP worker threads.
    pub workers: usize,
    /// The services it asks.
    pub sockets: Sockets,
    /// Where the targets' metadata is kept (their ids, names; `update_image`).
    pub images: PathBuf,
    /// How long the login link of `request_kasm` may be followed, in seconds.
    pub link_ttl: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            socket: SocketConfig::at("/run/kvmd/kasm.sock"),
            workers: 1,
            sockets: Sockets::default(),
            images: "/var/lib/kvmd-kasm/images.json".into(),
            link_ttl: 300,
        }
    }
}

kvmd_core::service_config!(Config);
