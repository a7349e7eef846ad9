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
//! - [`users`]: the users' database (roles, flags, users made through the API) beside the file.
//! - [`keys`]: API keys (id and secret, scope, role, expiry, networks) in SQLite.
//! - [`totp`]: two-factor codes.
//! - [`sessions`]: the persistent session table, with what each session holds open.
//! - [`cache`], [`lockout`]: the verified-credential cache and the lockout counters.

/// One line of the audit log: a security-relevant event, at INFO under the target
/// `kvmd_audit`, with an `event` field and never a secret (docs/SECURITY.md, "Audit log").
#[macro_export]
macro_rules! audit {
    ($($arg:tt)+) => { ::tracing::info!(target: "kvmd_audit", $($arg)+) };
}

pub mod api;
pub mod cache;
pub mod config;
pub mod hash;
pub mod htpasswd;
pub mod keys;
pub mod lockout;
pub mod manager;
pub mod sessions;
pub mod store;
pub mod totp;
pub mod users;

use std::os::unix::net::UnixListener;

use actix_web::web;
use kvmd_core::service::CancellationToken;

pub use config::Config;
pub use manager::Manager;

/// Every route of the service, with its handler.
pub fn routes() -> kvmd_core::routes::Api {
    let mut api = kvmd_core::routes::Api::new("kvmd-auth", "auth");
    api.group(api::auth::routes).group(api::sessions::routes).group(api::users::routes);
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
    // Sessions past their lifetime or idle timeout end within a second, their open
    // connections with them; the last-use times are written once a minute.
    let sweeper = {
        let (m, stop) = (manager.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            let mut n = 0u64;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stop.cancelled() => break,
                }
                n += 1;
                m.sweep(n.is_multiple_of(60));
            }
            m.sessions.closing();
            m.sweep(true);
        })
    };
    let served = kvmd_core::service::serve(listener, workers, shutdown, move || create_app(manager.clone())).await;
    let _ = sweeper.await;
    served
}
