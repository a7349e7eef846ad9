//! kvmd-info's configuration (`/etc/kvmd/info.toml`; layering in `kvmd_core::config`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use kvmd_core::net::{FrontConfig, SocketConfig, UscConfig};
use serde::{Deserialize, Serialize};

/// What `system.streamer` reports (the streamer service fills it in once it exists).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StreamerInfo {
    /// `system.streamer.app`.
    pub app: String,
    /// `system.streamer.version`.
    pub version: String,
    /// `system.streamer.features`.
    pub features: BTreeMap<String, bool>,
}

impl Default for StreamerInfo {
    fn default() -> Self {
        Self { app: "kvmd-streamer".into(), version: env!("CARGO_PKG_VERSION").into(), features: BTreeMap::new() }
    }
}

/// Where `/log` reads from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogSourceKind {
    /// The journal when one exists, else the log files, else nothing.
    Auto,
    /// The systemd journal through `journalctl`.
    Journal,
    /// `<unit>.log` files in `log.dir`.
    Files,
    /// kvmd's `log_reader.enabled = false`: `/log` answers `LogReaderDisabledError`.
    Disabled,
}

/// The log reader.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// The source.
    pub source: LogSourceKind,
    /// The directory of the files source.
    pub dir: PathBuf,
    /// A journal file to read instead of the system journal (tests).
    pub journal_file: PathBuf,
    /// The `journalctl` binary.
    pub journalctl: PathBuf,
    /// `follow=1` readers at most at once (each holds a `journalctl`); past it kvmd's 503.
    pub max_followers: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            source: LogSourceKind::Auto,
            dir: "/var/log/kvmd".into(),
            journal_file: PathBuf::new(),
            journalctl: "journalctl".into(),
            max_followers: 8,
        }
    }
}

/// Everything kvmd-info can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where it listens (nginx's `info` upstream).
    pub socket: SocketConfig,
    /// HTTP worker threads. One is the default: a request costs microseconds, and a
    /// second worker measured slower (more threads waking for fewer requests each).
    pub workers: usize,
    /// kvmd-auth's socket, asked about credentials of direct callers.
    pub auth_socket: PathBuf,
    /// Local processes trusted by peer credentials.
    pub usc: UscConfig,
    /// The front, whose identity header is believed.
    pub front: FrontConfig,
    /// The root under which `/proc`, `/sys`, `/etc/...` and the paths below are read
    /// (`/` on a device; a fake tree in tests).
    pub root: PathBuf,
    /// kvmd's `meta.yaml`.
    pub meta: PathBuf,
    /// The extras directory (`<name>/manifest.yaml`).
    pub extras: PathBuf,
    /// Ports of extras whose manifest names a kvmd config path (e.g. `vnc/server/port`).
    pub extras_ports: BTreeMap<String, i64>,
    /// The platform file (`PIKVM_MODEL=...`).
    pub platform: PathBuf,
    /// Reported as `auth.enabled`.
    pub auth_enabled: bool,
    /// Reported as `system.kvmd.version`.
    pub version: String,
    /// Reported as `system.streamer`.
    pub streamer: StreamerInfo,
    /// The command printing `throttled=0x...` (Raspberry Pi firmware); its failure gives
    /// `throttling: null`.
    pub throttling_cmd: Vec<String>,
    /// kvmd's `info.hw.ignore_past`.
    pub ignore_past: bool,
    /// The log reader.
    pub log: LogConfig,
    /// The suite's services and their sockets, whose request metrics and memory the
    /// Prometheus export adds to kvmd's metrics (and kvmd-gpio's, its ATX and GPIO gauges).
    pub services: BTreeMap<String, PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            socket: SocketConfig::at("/run/kvmd/info.sock"),
            workers: 1,
            auth_socket: "/run/kvmd/auth.sock".into(),
            usc: UscConfig::default(),
            front: FrontConfig::default(),
            root: "/".into(),
            meta: "/etc/kvmd/meta.yaml".into(),
            extras: "/usr/share/kvmd/extras".into(),
            extras_ports: BTreeMap::from([("vnc/server/port".into(), 5900), ("ipmi/server/port".into(), 623)]),
            platform: "/usr/lib/kvmd/platform".into(),
            auth_enabled: true,
            version: env!("CARGO_PKG_VERSION").into(),
            streamer: StreamerInfo::default(),
            throttling_cmd: vec!["vcgencmd".into(), "get_throttled".into()],
            ignore_past: false,
            log: LogConfig::default(),
            services: ["auth", "gpio", "hid", "info", "msd", "streamer"]
                .into_iter()
                .map(|s| (format!("kvmd-{s}"), PathBuf::from(format!("/run/kvmd/{s}.sock"))))
                .collect(),
        }
    }
}

impl Config {
    /// `path` below the configured root.
    pub fn under_root(&self, path: &std::path::Path) -> PathBuf {
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }
}

kvmd_core::service_config!(Config);
