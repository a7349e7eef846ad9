//! kvmd-webrtc: H.264 over WebRTC for the browser. It speaks the subset of Janus's WebSocket
//! protocol and of uStreamer's Janus plugin that PiKVM's web UI sends (`/janus/ws`, spec
//! `webrtc-h264.md`), and sends each viewer, over its own WebRTC connection (str0m:
//! ICE-lite with host candidates, DTLS-SRTP, H.264 packetization mode 1, NACK/RTX, RTCP),
//! the access units of kvmd-streamer's one H.264 encode (its internal `/streamer/h264`
//! feed, read once for every viewer). It never opens the capture itself: kvmd-streamer
//! keeps the device, and kvmd-webrtc holds the network (UDP) kvmd-streamer is denied.
//!
//! # Layout
//! - [`config`]: the service's configuration.
//! - [`ice`]: host addresses, UDP ports, allowed networks.
//! - [`video`]: kvmd-streamer's feed, shared by the peers; key-frame requests.
//! - [`peer`]: one viewer's WebRTC connection.
//! - [`janus`]: the Janus protocol: sessions, handles, plugin messages, replies.
//! - [`ws`]: the `/janus/ws` route and its connections.

pub mod config;
pub mod ice;
pub mod janus;
pub mod peer;
pub mod video;
pub mod ws;

use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use kvmd_core::service::CancellationToken;

pub use config::Config;

/// Every route of the service, with its handler.
pub fn routes() -> kvmd_core::routes::Api {
    let mut api = kvmd_core::routes::Api::new("kvmd-webrtc", "webrtc");
    api.group(ws::routes);
    api
}

/// The shared state of the service for `config`.
pub fn shared(config: &Config, shutdown: CancellationToken) -> anyhow::Result<ws::Shared> {
    let env = janus::Env {
        ice: ice::Ice::new(&config.ice)?,
        video: video::Video::new(&config.streamer_socket),
        peers: Arc::new(kvmd_core::limit::Limit::new(config.max_peers, "WebRTC viewers")),
        max_sessions: config.max_sessions.max(1),
        session_timeout: Duration::from_secs(config.session_timeout.max(1)),
        connect_timeout: Duration::from_secs(config.connect_timeout.max(1)),
    };
    Ok(ws::Shared { env, places: kvmd_core::limit::Limit::new(config.max_connections, "Janus connections"), shutdown })
}

/// The actix app (tests drive it without a socket).
pub fn create_app(
    config: &Config,
    shared: web::Data<ws::Shared>,
) -> actix_web::App<impl kvmd_core::service::ServiceApp + use<>> {
    let front = kvmd_core::net::FrontTrust::resolve(&config.front);
    kvmd_core::service::authed_app(routes(), &config.auth_socket, config.usc.clone(), front).app_data(shared)
}

/// Serves kvmd-webrtc on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let shared = web::Data::new(shared(&config, shutdown.clone())?);
    let addrs = shared.env.ice.addresses();
    if addrs.is_empty() {
        tracing::warn!("no address to offer WebRTC on (ice.addresses, or an interface that is up)");
    } else {
        tracing::info!(addresses = ?addrs, "WebRTC host candidates");
    }
    let workers = config.workers;
    kvmd_core::service::serve(listener, workers, shutdown, move || create_app(&config, shared.clone())).await
}
