//! kvmd-webrtc's configuration (`/etc/kvmd/webrtc.toml`; layering in `kvmd_core::config`).

use std::net::IpAddr;
use std::path::PathBuf;

use kvmd_core::net::{FrontConfig, SocketConfig, UscConfig};
use serde::{Deserialize, Serialize};

/// ICE: where the media goes in and out, and from where it may come.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct IceConfig {
    /// The host candidates' addresses; empty: every address of every interface that is up
    /// (loopback ones only with `loopback`).
    pub addresses: Vec<IpAddr>,
    /// Offer loopback addresses too (the tests and the demo, on 127.0.0.1).
    pub loopback: bool,
    /// The UDP ports a viewer's socket is bound in (Janus's 20000-40000, the range PiKVM's
    /// docs tell users to open).
    pub port_min: u16,
    /// See `port_min`.
    pub port_max: u16,
    /// The STUN server the browser is told about (`features.ice.url`, for its reflexive
    /// candidate behind NAT); empty for none.
    pub stun_url: String,
    /// Networks (CIDR) media and trickled candidates may come from; empty for any.
    pub allowed_networks: Vec<String>,
}

impl Default for IceConfig {
    fn default() -> Self {
        Self {
            addresses: Vec::new(),
            loopback: false,
            port_min: 20000,
            port_max: 40000,
            stun_url: "stun:stun.l.google.com:19302".into(),
            allowed_networks: Vec::new(),
        }
    }
}

/// Everything kvmd-webrtc can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where it listens (nginx's `webrtc` upstream).
    pub socket: SocketConfig,
    /// HTTP worker threads.
    pub workers: usize,
    /// kvmd-auth's socket (direct callers; session holds).
    pub auth_socket: PathBuf,
    /// Trust for direct callers on the socket.
    pub usc: UscConfig,
    /// The front, whose identity header is believed.
    pub front: FrontConfig,
    /// kvmd-streamer's socket (its H.264 feed).
    pub streamer_socket: PathBuf,
    /// ICE.
    pub ice: IceConfig,
    /// Open `/janus/ws` connections at most.
    pub max_connections: usize,
    /// Janus sessions per connection at most.
    pub max_sessions: usize,
    /// Watching peers (WebRTC connections) at most, in all.
    pub max_peers: usize,
    /// Seconds without a request after which a session ends (Janus's `session_timeout`).
    pub session_timeout: u64,
    /// Seconds a peer may take from the offer to its media flowing.
    pub connect_timeout: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            socket: SocketConfig::at("/run/kvmd/webrtc.sock"),
            workers: 1,
            auth_socket: "/run/kvmd/auth.sock".into(),
            usc: UscConfig::default(),
            front: FrontConfig::default(),
            streamer_socket: "/run/kvmd/streamer.sock".into(),
            ice: IceConfig::default(),
            max_connections: 32,
            max_sessions: 8,
            max_peers: 16,
            session_timeout: 60,
            connect_timeout: 30,
        }
    }
}

kvmd_core::service_config!(Config);
