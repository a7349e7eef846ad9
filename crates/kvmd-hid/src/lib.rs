//! kvmd-hid: keyboard and mouse, kvmd-compatible.
//!
//! This first part serves kvmd's HID state and event endpoints and writes the exact
//! reports kvmd writes, to the USB OTG gadget or to the virtual target, and serves the
//! `/ws` WebSocket, and types text with the XKB keyboard layouts (`/hid/print`).
//!
//! # Layout
//! - [`config`]: the service's configuration.
//! - [`gadget`]: the USB gadget through configfs (`kvmd-otg`).
//! - [`keys`]: the web key names and their USB usages.
//! - [`layout`]: keyboard layouts (XKB) and the key events of a text paste.
//! - [`valid`]: kvmd's HID validators, shared by the HTTP routes and the WebSocket input.
//! - [`report`]: keyboard and mouse state and their reports.
//! - [`hid`]: the HID core and the HID thread that own the state and the output.
//! - [`jiggler`]: the mouse jiggler the HID thread runs.
//! - [`state`]: the HID state view (`GET /hid`, the WebSocket `hid` event).
//! - [`backend`]: the outputs (OTG gadget, virtual target).
//! - [`ws`]: the `/ws` WebSocket (state events and input).
//! - [`api`]: the HTTP routes.

pub mod api;
pub mod backend;
pub mod config;
pub mod gadget;
pub mod hid;
pub mod jiggler;
pub mod keys;
pub mod layout;
pub mod report;
pub mod state;
pub mod valid;
pub mod ws;

use std::os::unix::net::UnixListener;
use std::sync::Arc;

use actix_web::web;
use kvmd_core::service::CancellationToken;

pub use config::Config;

/// The service's caps (one for the whole service, shared by its workers).
#[derive(Debug, Clone)]
pub struct Limits {
    /// `/ws` sessions.
    pub ws: kvmd_core::limit::Limit,
    /// `/hid/print` requests in flight, per user and in all.
    pub prints: kvmd_core::limit::PerKey,
}

impl Limits {
    /// The caps of `cfg`.
    pub fn new(cfg: &config::LimitsConfig) -> Self {
        Self {
            ws: kvmd_core::limit::Limit::new(cfg.ws_sessions, "WebSocket sessions"),
            prints: kvmd_core::limit::PerKey::new(cfg.prints, cfg.prints_per_user, "prints in flight"),
        }
    }
}

/// Every route of the service, with its handler.
pub fn routes() -> kvmd_core::routes::Api {
    let mut api = kvmd_core::routes::Api::new("kvmd-hid", "hid");
    api.group(api::hid::routes).group(ws::routes);
    api
}

/// The actix app (tests drive it without a socket).
pub fn create_app(
    hid: web::Data<hid::Hid>,
    ws: web::Data<ws::WsShared>,
    layouts: web::Data<layout::Layouts>,
    auth_socket: std::path::PathBuf,
    usc: kvmd_core::net::UscConfig,
    front: kvmd_core::net::FrontTrust,
    limits: web::Data<Limits>,
) -> actix_web::App<impl kvmd_core::service::ServiceApp> {
    kvmd_core::service::authed_app(routes(), &auth_socket, usc, front)
        .app_data(hid)
        .app_data(ws)
        .app_data(layouts)
        .app_data(limits)
}

/// Serves kvmd-hid on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let output: Arc<dyn backend::HidOutput> = match &config.backend {
        config::Backend::Otg { keyboard, mouse, mouse_alt, gadget } => {
            Arc::new(backend::otg::Otg::new(keyboard.clone(), mouse.clone(), mouse_alt.clone(), gadget.clone()))
        }
        config::Backend::Ch9329 { device, speed } => Arc::new(backend::ch9329::Ch9329::new(device.clone(), *speed)),
        config::Backend::Vtarget => Arc::new(backend::vtarget::Vtarget::default()),
    };
    let hid = web::Data::new(hid::Hid::start(output, config.jiggler.clone())?);
    // A HID thread that dies (a panic) ends the service with an error, for systemd to
    // restart it: it stops the server as a signal would.
    let shutdown = shutdown.child_token();
    let failed = {
        let (hid, shutdown) = (hid.clone(), shutdown.clone());
        tokio::spawn(async move {
            hid.failed().await;
            tracing::error!("the HID thread died");
            shutdown.cancel();
        })
    };
    let workers = config.workers;
    let feeds = ws::Feeds {
        info: config.info_socket.clone(),
        streamer: config.streamer_socket.clone(),
        gpio: config.gpio_socket.clone(),
        msd: config.msd_socket.clone(),
    };
    let ws = web::Data::new(ws::WsShared::new(feeds, shutdown.clone()));
    let follower = tokio::spawn(ws.clone().into_inner().follow());
    let (auth_socket, usc) = (config.auth_socket.clone(), config.usc.clone());
    let front = kvmd_core::net::FrontTrust::resolve(&config.front);
    let limits = web::Data::new(Limits::new(&config.limits));
    let layouts = web::Data::new(layout::Layouts::default());
    let hid_thread = hid.clone();
    let factory = move || {
        create_app(
            hid.clone(),
            ws.clone(),
            layouts.clone(),
            auth_socket.clone(),
            usc.clone(),
            front.clone(),
            limits.clone(),
        )
    };
    let result = kvmd_core::service::serve(listener, workers, shutdown, factory).await;
    // Stopped after the HTTP server: the HID thread's release reports come last (each may
    // wait 100 ms for a host).
    hid_thread.stop(std::time::Duration::from_secs(1)).await;
    failed.abort();
    follower.abort();
    result?;
    if hid_thread.has_failed() {
        anyhow::bail!("the HID thread died");
    }
    Ok(())
}
