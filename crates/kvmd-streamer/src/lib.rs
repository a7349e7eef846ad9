//! kvmd-streamer: video capture, MJPEG streaming and H.264 encoding, with kvmd's `/streamer*` control
//! API and uStreamer's `/state`, `/snapshot`, `/stream` API on one socket.
//!
//! # Layout
//! - [`config`]: the service's configuration.
//! - [`frame`]: raw and encoded frames, clocks.
//! - [`source`]: the video sources (V4L2, test pattern).
//! - [`encode`]: mozjpeg, the fast way (planar I420 input).
//! - [`blank`]: uStreamer's no-signal frames.
//! - [`h264`]: the H.264 encode (OpenH264), one for every viewer, while someone watches.
//! - [`streamer`]: the controller (demand, parameters, start and stop, snapshots), the
//!   capture threads (grab, same-frame check, encode, latest frame), uStreamer's `/state`.
//! - [`preview`]: snapshot previews.
//! - [`api`]: the HTTP routes.

pub mod api;
pub mod blank;
pub mod config;
pub mod encode;
pub mod frame;
pub mod h264;
pub mod preview;
pub mod source;
pub mod streamer;
mod sys;

use std::os::unix::net::UnixListener;

use actix_web::web;
use kvmd_core::service::CancellationToken;

pub use config::Config;
pub use streamer::Streamer;

/// Every route of the service, with its handler: kvmd's control API under `/api`, and
/// uStreamer's face under `/streamer/` (streamed, unbuffered, authenticated).
pub fn routes() -> kvmd_core::routes::Api {
    let mut api = kvmd_core::routes::Api::new("kvmd-streamer", "streamer");
    api.group(api::kvmd::routes).group(api::ustreamer::routes).group(api::feed::routes).group(api::h264::routes);
    api
}

/// The actix app (tests drive it without a socket).
pub fn create_app(
    streamer: web::Data<Streamer>,
    shutdown: web::Data<CancellationToken>,
) -> actix_web::App<impl kvmd_core::service::ServiceApp> {
    let c = streamer.config();
    let front = kvmd_core::net::FrontTrust::resolve(&c.front);
    kvmd_core::service::authed_app(routes(), &c.auth_socket, c.usc.clone(), front)
        .app_data(streamer.clone())
        .app_data(shutdown)
}

/// Serves kvmd-streamer on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Frames (raw ones are megabytes) are mapped and unmapped, never kept by the heap.
    sys::fixed_mmap_threshold(1 << 20);
    if encode::simd_available() {
        tracing::info!("libjpeg SIMD: on");
    } else {
        tracing::warn!("libjpeg SIMD: OFF (built without nasm?); encoding is ~3.5x slower");
    }
    let workers = config.workers;
    let streamer = Streamer::new(config);
    tracing::info!(threads = streamer.workers(), "capture threads (each grabs and encodes)");
    let controller = tokio::spawn(streamer.clone().run(shutdown.clone()));
    let data = web::Data::new(streamer);
    let token = web::Data::new(shutdown.clone());
    let server =
        kvmd_core::service::serve(listener, workers, shutdown.clone(), move || create_app(data.clone(), token.clone()));
    streamer::supervise(controller, server, shutdown).await
}
