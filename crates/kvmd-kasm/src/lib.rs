//! kvmd-kasm: the Kasm-style JSON API (spec `compat-blikvm-kasm.md` Part B) over the suite's
//! own services. Every call is a `POST` of JSON with `api_key` and `api_key_secret` in the
//! body; the answer is JSON, and an error a real status with
//! `{"error_message": ..., "status": "error"}`.
//!
//! It holds no authority of its own: each call is checked by kvmd-auth (the key, its
//! lockout, networks, expiry) and each request it makes to another service carries the
//! caller's key, so a key can do through this API exactly what it can do natively (its
//! role), and the `/api/admin/` routes and the users' need its admin scope besides.
//!
//! # Layout
//! - [`config`]: the service's configuration.
//! - [`call`]: one call: its body, its key checked, its fields read.
//! - [`upstream`]: the other services, asked with the caller's key.
//! - [`images`]: the targets' ids and metadata.
//! - [`api`]: the routes, one module per group (sessions, images, users, storage, system).
//! - [`error`]: Kasm's error body.

pub mod api;
pub mod call;
pub mod config;
pub mod error;
pub mod images;
pub mod upstream;

use std::os::unix::net::UnixListener;

use actix_web::web;
use kvmd_core::service::CancellationToken;

pub use config::Config;

/// Every route of the service, with its handler.
pub fn routes() -> kvmd_core::routes::Api {
    let mut api = kvmd_core::routes::Api::new("kvmd-kasm", "kasm");
    api.errors(kvmd_core::routes::ErrorStyle::Kasm);
    api.group(api::kasms::routes)
        .group(api::images::routes)
        .group(api::users::routes)
        .group(api::storage::routes)
        .group(api::system::routes);
    api
}

/// The actix app for `config` (tests drive it without a socket).
pub fn create_app(
    config: web::Data<Config>,
    up: web::Data<upstream::Upstream>,
    images: web::Data<images::Images>,
) -> actix_web::App<impl kvmd_core::service::ServiceApp> {
    kvmd_core::service::app(routes())
        .app_data(web::PayloadConfig::new(call::BODY_LIMIT))
        .app_data(config)
        .app_data(up)
        .app_data(images)
}

/// Serves kvmd-kasm on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let workers = config.workers;
    let up = web::Data::new(upstream::Upstream::new(&config.sockets));
    let images = web::Data::new(images::Images::open(config.images.clone()));
    let config = web::Data::new(config);
    kvmd_core::service::serve(listener, workers, shutdown, move || {
        create_app(config.clone(), up.clone(), images.clone())
    })
    .await
}
