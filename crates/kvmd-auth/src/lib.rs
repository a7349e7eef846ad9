//! kvmd-auth: the authentication service of kvmd-rs.
//!
//! It serves kvmd's `/auth/login`, `/auth/logout` and `/auth/check` and decides nginx's
//! `auth_request` subrequests for every other protected location, so the rest of the
//! suite never sees a password. Compatible with kvmd 4.197 (spec `auth.md`), plus: bcrypt
//! entries, sessions that survive restarts, a verified-credential cache, a brute-force
//! lockout, and no default password.
//!
//! # Layout
//! - [`config`]: the service's configuration.
//! - [`api`]: the HTTP routes (`/auth/*` and nginx's internal ones).
//! - [`manager`]: password checks, TOTP, cache, lockout, sessions.
//! - [`store`]: where the users come from: the credential-store trait, the htpasswd file.
//! - [`htpasswd`], [`hash`]: the user file and its hash schemes.
//! - [`totp`]: two-factor codes.
//! - [`sessions`]: the persistent session table.
//! - [`cache`], [`lockout`]: the verified-credential cache and the lockout counters.

pub mod api;
pub mod cache;
pub mod config;
pub mod hash;
pub mod htpasswd;
pub mod lockout;
pub mod manager;
pub mod sessions;
pub mod store;
pub mod totp;

use std::os::unix::net::UnixListener;

use actix_web::web;
use kvmd_core::service::CancellationToken;

pub use config::Config;
pub use manager::Manager;

/// Every route of the service, with its handler.
pub fn routes() -> kvmd_core::routes::Api {
    let mut api = kvmd_core::routes::Api::new("kvmd-auth", "auth");
    api.group(api::auth::routes);
    api
}

/// The actix app around `manager` (tests drive it without a socket).
pub fn create_app(manager: web::Data<Manager>) -> actix_web::App<impl kvmd_core::service::ServiceApp> {
    kvmd_core::service::app(routes()).app_data(manager)
}

/// Serves kvmd-auth on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let workers = config.workers;
    let manager = web::Data::new(Manager::new(config));
    kvmd_core::service::serve(listener, workers, shutdown, move || create_app(manager.clone())).await
}
