//! kvmd-info: `/info`, `/log` (with `follow=1`), `/export/prometheus/metrics`, and the
//! `info` state feed for `/api/ws`.
//!
//! Compatible with kvmd 4.197 (spec `info-log.md`). Every value is read from files below a
//! configurable root, so the same code serves a device and a fake tree in tests.
//!
//! # Layout
//! - [`config`]: the service's configuration.
//! - [`info`]: the categories and their sources and caches.
//! - [`yaml`]: order-keeping YAML values (`meta.yaml`, extras manifests).
//! - [`logs`]: the `/log` source trait and its two sources, the journal (`logs/journal.rs`)
//!   and the services' log files (`logs/files.rs`).
//! - [`api`]: the HTTP routes, one module per URL group.

pub mod api;
pub mod config;
pub mod info;
pub mod logs;
pub mod yaml;

use std::os::unix::net::UnixListener;

use actix_web::web;
use kvmd_core::service::CancellationToken;

pub use config::Config;
pub use info::Info;

/// Every route of the service, with its handler.
pub fn routes() -> kvmd_core::routes::Api {
    let mut api = kvmd_core::routes::Api::new("kvmd-info", "info");
    api.group(api::info::routes).group(api::log::routes).group(api::export::routes).group(api::feed::routes);
    api
}

/// The actix app (tests drive it without a socket).
pub fn create_app(
    info: web::Data<Info>,
    shutdown: web::Data<CancellationToken>,
    tail: web::Data<logs::FileTail>,
    followers: web::Data<logs::Followers>,
) -> actix_web::App<impl kvmd_core::service::ServiceApp> {
    let c = info.config();
    let front = kvmd_core::net::FrontTrust::resolve(&c.front);
    kvmd_core::service::authed_app(routes(), &c.auth_socket, c.usc.clone(), front)
        .app_data(info.clone())
        .app_data(shutdown)
        .app_data(tail)
        .app_data(followers)
        .app_data(web::Data::new(api::export::MetricsCache::default()))
}

/// Serves kvmd-info on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let workers = config.workers;
    let info = web::Data::new(Info::new(config));
    let token = web::Data::new(shutdown.clone());
    let tail = web::Data::new(logs::FileTail::default());
    let followers = web::Data::new(logs::Followers::new(&info.config().log));
    kvmd_core::service::serve(listener, workers, shutdown, move || {
        create_app(info.clone(), token.clone(), tail.clone(), followers.clone())
    })
    .await
}
