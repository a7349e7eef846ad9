//! kvmd-gpio: ATX power control (`/atx`), GPIO channels (`/gpio`) and Redfish
//! (`/redfish/v1`), compatible with kvmd 4.197 (spec `atx-msd-gpio-redfish.md`).
//!
//! # Layout
//! - [`config`]: the service's configuration, with kvmd's keys and defaults.
//! - [`chip`]: the GPIO lines (the [`chip::Chip`] trait and its virtual chip).
//! - [`atx`]: buttons, LEDs, clicks and power actions.
//! - [`gpio`]: the channels: model, view, state, switch and pulse.
//! - [`region`]: busy-region operations as tasks, answered at once or when over.
//! - [`api`]: the HTTP routes, one module per URL group.

pub mod api;
pub mod atx;
pub mod chip;
pub mod config;
pub mod gpio;
pub mod region;

use std::os::unix::net::UnixListener;
use std::sync::Arc;

use actix_web::web;
use kvmd_core::service::CancellationToken;

pub use config::Config;

/// Every route of the service, with its handler.
pub fn routes() -> kvmd_core::routes::Api {
    let mut api = kvmd_core::routes::Api::new("kvmd-gpio", "gpio");
    api.group(api::atx::routes).group(api::gpio::routes).group(api::redfish::routes);
    api
}

/// The chip the configuration names.
pub fn open_chip(config: &Config) -> Arc<dyn chip::Chip> {
    match config.chip.kind {
        config::ChipKind::Virtual => Arc::new(chip::VirtualChip::new(config.chip.lines)),
    }
}

/// The actix app (tests drive it without a socket).
pub fn create_app(
    config: web::Data<Config>,
    atx: web::Data<atx::Atx>,
    gpio: web::Data<gpio::Gpio>,
) -> actix_web::App<impl kvmd_core::service::ServiceApp> {
    let auth = kvmd_core::authn::AuthClient::new(&config.auth_socket);
    let usc = config.usc.clone();
    let front = kvmd_core::net::FrontTrust::resolve(&config.front);
    kvmd_core::service::app(routes())
        .app_data(config)
        .app_data(atx)
        .app_data(gpio)
        .app_data(auth)
        .app_data(usc)
        .app_data(front)
}

/// Serves kvmd-gpio on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let workers = config.workers;
    let chip = open_chip(&config);
    let atx = atx::Atx::new(config.atx.clone(), chip.clone())?;
    tokio::spawn(atx.clone().run_leds(shutdown.clone()));
    let atx = web::Data::from(atx);
    let gpio = web::Data::from(gpio::Gpio::new(&config.gpio, chip)?);
    let config = web::Data::new(config);
    kvmd_core::service::serve(listener, workers, shutdown, move || {
        create_app(config.clone(), atx.clone(), gpio.clone())
    })
    .await
}
