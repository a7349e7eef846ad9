//! kvmd-msd's configuration (`/etc/kvmd/msd.toml`; layering in `kvmd_core::config`), with
//! kvmd's knobs and defaults (spec `atx-msd-gpio-redfish.md` section 5).

use std::path::PathBuf;

use kvmd_core::net::{FrontConfig, SocketConfig, UscConfig};
use serde::{Deserialize, Serialize};

/// kvmd's `kvmd.msd.type`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MsdKind {
    /// The image storage and the drive (kvmd's `otg`).
    Otg,
    /// No mass storage: `GET /msd` says so, every other route is `MsdDisabledError`.
    Disabled,
}

/// The image storage and its transfers (kvmd's `kvmd.msd`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MsdConfig {
    /// Enabled or not.
    #[serde(rename = "type")]
    pub kind: MsdKind,
    /// The storage directory (on a device its own partition; kvmd's fstab root).
    pub storage: PathBuf,
    /// Bytes per read of a download.
    pub read_chunk_size: usize,
    /// Bytes per write of an upload.
    pub write_chunk_size: usize,
    /// Bytes between `fsync`s of an upload.
    pub sync_chunk_size: u64,
    /// kvmd's remount helper, `{mode}` = `rw` / `ro`, run around writes of a storage kept
    /// read-only at rest. Empty (the default): the storage is always writable by the
    /// service (its unit grants exactly that directory), nothing is run.
    pub remount_cmd: Vec<String>,
}

impl Default for MsdConfig {
    fn default() -> Self {
        Self {
            kind: MsdKind::Otg,
            storage: "/var/lib/kvmd/msd".into(),
            read_chunk_size: 65536,
            write_chunk_size: 65536,
            sync_chunk_size: 4 * 1024 * 1024,
            remount_cmd: Vec::new(),
        }
    }
}

impl MsdConfig {
    /// kvmd's validators: chunk sizes of at least 1024 bytes.
    pub fn check(&self) -> anyhow::Result<()> {
        for (name, v) in [
            ("read_chunk_size", self.read_chunk_size as u64),
            ("write_chunk_size", self.write_chunk_size as u64),
            ("sync_chunk_size", self.sync_chunk_size),
        ] {
            if !(1024..=1 << 30).contains(&v) {
                anyhow::bail!("msd.{name} = {v}: from 1024 bytes to 1 GiB is needed");
            }
        }
        Ok(())
    }
}

/// Where the image goes when it is connected.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DriveKind {
    /// The USB gadget's mass-storage LUN that `kvmd-otg` creates (configfs).
    Gadget,
    /// A drive in memory, the virtual target's (tests and the demo): it shows the
    /// attached medium on the target's screen through `drive.announce`.
    Virtual,
}

/// The drive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DriveConfig {
    /// The backend.
    #[serde(rename = "type")]
    pub kind: DriveKind,
    /// `gadget`: the gadget's configfs directory.
    pub gadget: PathBuf,
    /// `virtual`: a file the drive writes what it holds to (`<name>\t<size>\t<cdrom>\t<rw>`),
    /// for the virtual target's screen; none if empty.
    pub announce: PathBuf,
}

impl Default for DriveConfig {
    fn default() -> Self {
        Self { kind: DriveKind::Gadget, gadget: "/sys/kernel/config/usb_gadget/kvmd".into(), announce: PathBuf::new() }
    }
}

/// Downloads of `write_remote`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteConfig {
    /// Redirects followed before giving up (a loop ends here).
    pub max_redirects: usize,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        Self { max_redirects: 10 }
    }
}

/// Everything kvmd-msd can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where it listens (nginx's `msd` upstream).
    pub socket: SocketConfig,
    /// HTTP worker threads.
    pub workers: usize,
    /// kvmd-auth's socket, asked about credentials of direct callers.
    pub auth_socket: PathBuf,
    /// Local processes trusted by peer credentials.
    pub usc: UscConfig,
    /// The front, whose identity header is believed.
    pub front: FrontConfig,
    /// The storage.
    pub msd: MsdConfig,
    /// The drive.
    pub drive: DriveConfig,
    /// `write_remote`'s client.
    pub remote: RemoteConfig,
    /// Where the storage providers are kept (`crate::providers`).
    pub providers: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            socket: SocketConfig::at("/run/kvmd/msd.sock"),
            workers: 1,
            auth_socket: "/run/kvmd/auth.sock".into(),
            usc: UscConfig::default(),
            front: FrontConfig::default(),
            msd: MsdConfig::default(),
            drive: DriveConfig::default(),
            remote: RemoteConfig::default(),
            providers: "/var/lib/kvmd-msd/providers.json".into(),
        }
    }
}

kvmd_core::service_config!(Config);
