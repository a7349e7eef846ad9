//! kvmd-blikvm: BliKVM v1.4 compatibility (spec `compat-blikvm-kasm.md` Part A) over the
//! suite's own services. Scripts written for a BliKVM log in at `/api/login` (or
//! `/login_api`), get a token and call `/keyboard`, `/paste`, `/atx`, the mass-storage routes
//! and the `/kme` WebSocket as they would on a BliKVM; the answers are BliKVM's envelope
//! (`{"status", "info", "data"}`). Its MJPEG port (8008) is the front's, on kvmd-streamer.
//!
//! Unlike BliKVM, every route needs the token, which is a random 12-hour session of
//! kvmd-auth's table (not BliKVM's fixed MD5 of the credentials): revocable, listed with
//! the other sessions, and bound to its user's role. The service holds no authority of its
//! own: each call it makes to another service carries the caller's token, which kvmd-auth
//! decides on as for any other credential.
//!
//! # Layout
//! - [`config`]: the service's configuration.
//! - [`body`]: a request's fields (JSON or form, on any method).
//! - [`shim`]: where the token is found, and its check.
//! - [`upstream`]: the other services, asked with the caller's token.
//! - [`keys`]: BliKVM's key names.
//! - [`api`]: the routes, one module per group.
//! - [`reply`]: BliKVM's envelope and errors.

pub mod api;
pub mod body;
pub mod config;
pub mod keys;
pub mod reply;
pub mod shim;
pub mod upstream;

use std::os::unix::net::UnixListener;

use actix_web::web;
use kvmd_core::service::CancellationToken;

pub use config::Config;

/// A BliKVM token's lifetime: 12 hours (A.1.1).
pub const TOKEN_LIFETIME: u64 = 12 * 3600;

/// Every route of the service, with its handler.
pub fn routes() -> kvmd_core::routes::Api {
    let mut api = kvmd_core::routes::Api::new("kvmd-blikvm", "blikvm");
    api.errors(kvmd_core::routes::ErrorStyle::Blikvm);
    api.group(api::login::routes)
        .group(api::keyboard::routes)
        .group(api::paste::routes)
        .group(api::atx::routes)
        .group(api::wol::routes)
        .group(api::msd::routes)
        .group(api::ws::routes);
    api
}

/// The actix app for `config` (tests drive it without a socket).
pub fn create_app(
    config: web::Data<Config>,
    up: web::Data<upstream::Upstream>,
) -> actix_web::App<impl kvmd_core::service::ServiceApp> {
    kvmd_core::service::app(routes()).app_data(web::PayloadConfig::new(body::BODY_LIMIT)).app_data(config).app_data(up)
}

/// Serves kvmd-blikvm on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let workers = config.workers;
    let up = web::Data::new(upstream::Upstream::new(&config.sockets));
    let config = web::Data::new(config);
    kvmd_core::service::serve(listener, workers, shutdown, move || create_app(config.clone(), up.clone())).await
}
