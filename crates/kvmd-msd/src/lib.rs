//! kvmd-msd: virtual media (`/msd`) and Redfish's VirtualMedia, compatible with kvmd 4.197
//! (spec `atx-msd-gpio-redfish.md` sections 3 and 4.2). The only service that writes the
//! image storage.
//!
//! # Layout
//! - [`config`]: the service's configuration, with kvmd's keys and defaults.
//! - [`name`]: kvmd's validators of image names, URLs and compression modes.
//! - [`storage`]: the storage directory: scan, images, partitions, incomplete markers.
//! - [`drive`]: the drive the host sees (the gadget's LUN, or the virtual target's).
//! - [`msd`]: the core: kvmd's virtual drive, the busy region, the state and its events.
//! - [`transfer`]: uploads and downloads on threads of their own, in bounded memory.
//! - [`providers`]: the storage providers `write_remote` can take images from.
//! - [`api`]: the HTTP routes, one module per URL group.

pub mod api;
pub mod config;
pub mod drive;
pub mod msd;
pub mod name;
pub mod providers;
pub mod storage;
pub mod transfer;

use std::os::unix::net::UnixListener;
use std::sync::Arc;

use actix_web::web;
use kvmd_core::service::CancellationToken;

pub use config::Config;

/// Every route of the service, with its handler.
pub fn routes() -> kvmd_core::routes::Api {
    let mut api = kvmd_core::routes::Api::new("kvmd-msd", "msd");
    api.group(api::msd::routes)
        .group(api::transfer::routes)
        .group(api::remote::routes)
        .group(api::providers::routes)
        .group(api::redfish::routes)
        .group(api::feed::routes);
    api
}

/// The drive the configuration names.
pub fn open_drive(config: &Config) -> Arc<dyn drive::Drive> {
    match config.drive.kind {
        config::DriveKind::Gadget => Arc::new(drive::GadgetDrive::new(config.drive.gadget.clone())),
        config::DriveKind::Virtual => Arc::new(drive::VirtualDrive::new(config.drive.announce.clone())),
    }
}

/// The service's parts, shared by every worker's app.
#[derive(Clone)]
pub struct Parts {
    /// The configuration.
    pub config: web::Data<Config>,
    /// The storage and the drive.
    pub msd: web::Data<msd::Msd>,
    /// Ends the feeds at shutdown.
    pub shutdown: web::Data<CancellationToken>,
    /// The storage providers.
    pub providers: web::Data<providers::Providers>,
}

impl Parts {
    /// The service of `config` on `drive`.
    pub fn new(config: Config, drive: Arc<dyn drive::Drive>, shutdown: CancellationToken) -> anyhow::Result<Self> {
        config.msd.check()?;
        let msd = msd::Msd::new(config.msd.clone(), drive);
        let providers = web::Data::new(providers::Providers::open(config.providers.clone()));
        Ok(Self {
            config: web::Data::new(config),
            msd: web::Data::from(msd),
            shutdown: web::Data::new(shutdown),
            providers,
        })
    }

    /// The actix app (tests drive it without a socket).
    pub fn app(&self) -> actix_web::App<impl kvmd_core::service::ServiceApp + use<>> {
        let c = &self.config;
        let front = kvmd_core::net::FrontTrust::resolve(&c.front);
        kvmd_core::service::authed_app(routes(), &c.auth_socket, c.usc.clone(), front)
            .app_data(self.config.clone())
            .app_data(self.msd.clone())
            .app_data(self.shutdown.clone())
            .app_data(self.providers.clone())
    }
}

/// Serves kvmd-msd on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let workers = config.workers;
    if config.msd.kind == config::MsdKind::Otg
        && let Err(e) = std::fs::read_dir(&config.msd.storage)
    {
        // Not fatal: the state says offline until the storage is there, as kvmd's does.
        tracing::warn!(storage = %config.msd.storage.display(), error = %e, "the image storage cannot be read");
    }
    let drive = open_drive(&config);
    let parts = Parts::new(config, drive, shutdown.clone())?;
    kvmd_core::service::serve(listener, workers, shutdown, move || parts.app()).await
}
