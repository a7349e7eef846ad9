//! kvmd-hid's configuration (`/etc/kvmd/hid.toml`; layering in `kvmd_core::config`).

use std::path::PathBuf;

use kvmd_core::net::{FrontConfig, SocketConfig, UscConfig};
use serde::{Deserialize, Serialize};

/// The HID output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Backend {
    /// The USB OTG gadget's device nodes.
    Otg {
        /// Keyboard (hidg0).
        keyboard: PathBuf,
        /// Absolute mouse (hidg1).
        mouse: PathBuf,
        /// Relative mouse (hidg2).
        mouse_alt: PathBuf,
        /// The gadget's configfs directory, for the host-presence check (kvmd-otg's).
        #[serde(default = "default_gadget")]
        gadget: PathBuf,
    },
    /// A CH9329 serial HID chip.
    Ch9329 {
        /// The serial port, e.g. `/dev/ttyAMA0`.
        device: PathBuf,
        /// Its speed in baud (PiKVM: 9600).
        speed: u32,
    },
    /// The virtual target (demo, tests).
    Vtarget,
}

fn default_gadget() -> PathBuf {
    PathBuf::from("/sys/kernel/config/usb_gadget/kvmd")
}

/// kvmd's `hid.jiggler`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct JigglerConfig {
    /// Whether `set_params?jiggler=` may turn it on.
    pub enabled: bool,
    /// Whether it starts on.
    pub active: bool,
    /// Seconds without HID activity before it moves the mouse.
    pub interval: u64,
}

impl Default for JigglerConfig {
    fn default() -> Self {
        Self { enabled: true, active: false, interval: 60 }
    }
}

/// Everything kvmd-hid can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where it listens (nginx's `hid` upstream).
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
    /// kvmd-info's socket: the `info` part of `/ws` comes from its feed.
    pub info_socket: PathBuf,
    /// kvmd-streamer's socket: the `streamer` part of `/ws` comes from its feed.
    pub streamer_socket: PathBuf,
    /// kvmd-gpio's socket: the `gpio` and `atx` parts of `/ws` come from its feed.
    pub gpio_socket: PathBuf,
    /// kvmd-msd's socket: the `msd` part of `/ws` comes from its feed.
    pub msd_socket: PathBuf,
    /// The output.
    pub backend: Backend,
    /// The mouse jiggler.
    pub jiggler: JigglerConfig,
    /// Caps on what clients hold open or in flight (past one, kvmd's 503).
    pub limits: LimitsConfig,
}

/// kvmd-hid's caps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// `/ws` sessions at once.
    pub ws_sessions: usize,
    /// `/hid/print` requests in flight at once (each may hold a 1 MiB body), in all ...
    pub prints: usize,
    /// ... and of one user.
    pub prints_per_user: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { ws_sessions: 64, prints: 4, prints_per_user: 2 }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            socket: SocketConfig::at("/run/kvmd/hid.sock"),
            workers: 1,
            auth_socket: "/run/kvmd/auth.sock".into(),
            usc: UscConfig::default(),
            front: FrontConfig::default(),
            info_socket: "/run/kvmd/info.sock".into(),
            streamer_socket: "/run/kvmd/streamer.sock".into(),
            gpio_socket: "/run/kvmd/gpio.sock".into(),
            msd_socket: "/run/kvmd/msd.sock".into(),
            backend: Backend::Otg {
                keyboard: "/dev/kvmd-hid-keyboard".into(),
                mouse: "/dev/kvmd-hid-mouse".into(),
                mouse_alt: "/dev/kvmd-hid-mouse-alt".into(),
                gadget: default_gadget(),
            },
            jiggler: JigglerConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

kvmd_core::service_config!(Config);
