//! The process lifecycle every service shares.
//!
//! `main` parses its arguments, sets up logging, loads its config, takes its listener and
//! hands an async body to [`run`], which owns the runtime and the signals: SIGTERM or
//! SIGINT sends `STOPPING=1` and cancels the shutdown token, which stops the HTTP server
//! (and every long-lived stream that watches the token). [`serve`] runs an actix app on a
//! unix listener, with peer credentials captured per connection, and reports `READY=1`
//! once it accepts.

use std::future::Future;
use std::os::unix::net::UnixListener;

use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpServer};
use tokio_util::sync::CancellationToken;

use crate::net;

/// Runs `body` on a multi-threaded runtime with signal handling; returns when it ends.
pub fn run<F, Fut>(worker_threads: usize, body: F) -> anyhow::Result<()>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(worker_threads.max(1)).enable_all().build()?;
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(wait_for_signals(shutdown.clone()));
        body(shutdown).await
    })
}

async fn wait_for_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        () = shutdown.cancelled() => return,
    }
    tracing::info!("stopping");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    shutdown.cancel();
}

/// Serves the app built by `factory` on `listener` until `shutdown` is cancelled.
pub async fn serve<F, T>(listener: UnixListener, workers: usize, shutdown: CancellationToken, factory: F) -> anyhow::Result<()>
where
    F: Fn() -> App<T> + Send + Clone + 'static,
    T: ServiceFactory<ServiceRequest, Config = (), Response = ServiceResponse, Error = actix_web::Error, InitError = ()>
        + 'static,
{
    let server = HttpServer::new(factory)
        .on_connect(net::on_connect)
        .workers(workers.max(1))
        .shutdown_signal(shutdown.clone().cancelled_owned())
        .shutdown_timeout(5)
        .listen_uds(listener)?
        .run();
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    server.await?;
    Ok(())
}
