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
pub use tokio_util::sync::{CancellationToken, DropGuard};

use crate::net;

/// The command line every service binary takes.
#[derive(Debug, clap::Parser)]
struct ServiceCli {
    #[command(flatten)]
    config: crate::config::ConfigArgs,
    #[command(flatten)]
    log: crate::telemetry::LogArgs,
}

/// The whole `main` of a service binary: arguments, configuration (`--dump-config`
/// prints it and exits), logging, the listener, the runtime and signals, then `run`.
pub fn main<C, F, Fut>(name: &'static str, about: &'static str, env_prefix: &str, run: F) -> std::process::ExitCode
where
    C: crate::config::ServiceConfig,
    F: FnOnce(C, UnixListener, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    use clap::{CommandFactory, FromArgMatches};
    let matches = ServiceCli::command().name(name).about(about).version(env!("CARGO_PKG_VERSION")).get_matches();
    let result = ServiceCli::from_arg_matches(&matches).map_err(anyhow::Error::from).and_then(|cli| {
        let config: C = crate::config::load(&cli.config, env_prefix)?;
        if cli.config.dump_config {
            print!("{}", crate::config::dump(&config));
            return Ok(());
        }
        crate::telemetry::init(&cli.log)?;
        let listener = crate::net::unix_listener(config.socket())?;
        tracing::info!(socket = %config.socket().path.display(), "{name} listening");
        let threads = config.workers().max(1);
        let result = self::run(threads, |shutdown| run(config, listener, shutdown));
        crate::telemetry::flush();
        result
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

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

/// How long the front keeps an idle connection to a service (nginx's upstream
/// `keepalive_timeout`); a service keeps it longer.
pub const UPSTREAM_IDLE_SECS: u64 = 60;

/// Serves the app built by `factory` on `listener` until `shutdown` is cancelled.
pub async fn serve<F, T>(
    listener: UnixListener,
    workers: usize,
    shutdown: CancellationToken,
    factory: F,
) -> anyhow::Result<()>
where
    F: Fn() -> App<T> + Send + Clone + 'static,
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
{
    let server = HttpServer::new(factory)
        // Longer than the front's upstream keep-alive (60 s, kvmd-nginx): the front closes an
        // idle connection first. With actix's 5 s, nginx reused connections actix had just
        // closed, and a POST on one is a 502 (nginx never retries a POST it sent).
        .keep_alive(std::time::Duration::from_secs(UPSTREAM_IDLE_SECS + 15))
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

/// What a service's actix app is: the factory `serve` runs (an alias for the long bound).
pub trait ServiceApp:
    ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<actix_web::body::BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >
{
}

impl<T> ServiceApp for T where
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<actix_web::body::BoxBody>,
            Error = actix_web::Error,
            InitError = (),
        >
{
}

/// The user a handler authenticated, for the access log (`admin (token)`, kvmd's `%P`).
#[derive(Debug, Clone)]
pub struct AccessUser(pub String);

/// Marks a request whose access line is logged at debug level (nginx's auth subrequests,
/// which would otherwise double every logged request).
#[derive(Debug, Clone, Copy)]
pub struct AccessQuiet;

/// `Server` header of every service response (nginx replaces it with its own).
pub const SERVER_HEADER: &str = concat!("kvmd-rs/", env!("CARGO_PKG_VERSION"));

/// The app of a service with the routes of `api`: each declared route with its handler
/// (behind authentication where declared), kvmd's 404/405/308, the route table in the app
/// data, header names written in canonical case as aiohttp does, `Server`, and one
/// access-log line per request in kvmd's format.
pub fn app(api: crate::routes::Api) -> App<impl ServiceApp> {
    let table = api.table();
    App::new()
        .app_data(crate::routes::RouteTable(table.routes.into()))
        .app_data(table.errors)
        .app_data(ServiceName(table.service))
        .service(actix_web::web::resource(crate::metrics::SELF_PATH).route(actix_web::web::get().to(self_metrics)))
        .configure(move |cfg| api.configure(cfg))
        .default_service(crate::routes::default_service())
        .wrap(actix_web::middleware::from_fn(wire))
}

/// [`app`] with what authenticates a request that did not come through the front: the
/// client of kvmd-auth's socket `auth_socket` (a direct caller's credentials), kvmd's
/// peer-credential trust `usc`, and which peer is the front (whose identity header alone
/// is believed). Every service but kvmd-auth is made so.
pub fn authed_app(
    api: crate::routes::Api,
    auth_socket: &std::path::Path,
    usc: crate::net::UscConfig,
    front: crate::net::FrontTrust,
) -> App<impl ServiceApp + use<>> {
    app(api).app_data(crate::authn::AuthClient::new(auth_socket)).app_data(usc).app_data(front)
}

/// The name of the running service, in the app data.
#[derive(Debug, Clone, Copy)]
pub struct ServiceName(pub &'static str);

async fn self_metrics(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    use actix_web::HttpMessage;
    req.extensions_mut().insert(AccessQuiet);
    let name = req.app_data::<ServiceName>().map_or("-", |n| n.0);
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::json::to_compact_string(&crate::metrics::snapshot(name)))
}

async fn wire(
    req: ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    use actix_web::HttpMessage;
    use actix_web::http::header::{HeaderValue, SERVER};
    let method = req.method().clone();
    let uri = req.uri().clone();
    let version = req.version();
    let ip = req.headers().get("X-Real-IP").and_then(|v| v.to_str().ok()).map_or_else(|| "-".to_owned(), str::to_owned);
    let started = std::time::Instant::now();
    let mut res = next.call(req).await?.map_into_boxed_body();
    let route = res.request().match_pattern().unwrap_or_else(|| "-".to_owned());
    crate::metrics::record(&route, res.status().as_u16(), started.elapsed());
    // aiohttp writes canonical header names; but a 101's `Connection` value must stay
    // `upgrade`, which actix writes only in its lower-case mode.
    let switching = res.status() == actix_web::http::StatusCode::SWITCHING_PROTOCOLS;
    res.response_mut().head_mut().set_camel_case_headers(!switching);
    res.headers_mut().insert(SERVER, HeaderValue::from_static(SERVER_HEADER));
    let (who, quiet) = {
        let ext = res.request().extensions();
        (ext.get::<AccessUser>().map_or_else(|| "-".to_owned(), |u| u.0.clone()), ext.get::<AccessQuiet>().is_some())
    };
    let status = res.status().as_u16();
    if quiet {
        tracing::debug!(target: "access", "[{who} / {ip}] '{method} {uri} {version:?}' => {status}");
    } else {
        tracing::info!(target: "access", "[{who} / {ip}] '{method} {uri} {version:?}' => {status}");
    }
    Ok(res)
}

/// A streaming body fed by a channel: each message is one chunk; the body ends when the
/// sender is dropped.
pub fn channel_body(
    rx: tokio::sync::mpsc::Receiver<actix_web::web::Bytes>,
) -> impl futures_util::Stream<Item = Result<actix_web::web::Bytes, actix_web::Error>> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) })
}

/// An infinite NDJSON state feed for another service (kvmd-hid's `/ws` parts): `work`
/// writes lines into its sender; it is stopped when the client goes away (seen on the
/// connection itself, as actix notices only when it writes), the service stops, or the
/// body is dropped.
pub fn feed_response<Fut>(
    req: &actix_web::HttpRequest,
    shutdown: CancellationToken,
    work: impl FnOnce(tokio::sync::mpsc::Sender<actix_web::web::Bytes>) -> Fut,
) -> actix_web::HttpResponse
where
    Fut: Future<Output = ()> + Send + 'static,
{
    use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
    let client = req.conn_data::<net::ConnFd>().copied();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let closed = tx.clone();
    let work = work(tx);
    tokio::spawn(async move {
        tokio::select! {
            () = work => {}
            () = closed.closed() => {}
            () = shutdown.cancelled() => {}
            () = net::disconnected(client) => {}
        }
    });
    actix_web::HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson")))
        .streaming(channel_body(rx))
}
