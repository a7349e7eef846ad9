//! The controller: demand and its guards, the parameters, starting and stopping capture,
//! snapshots. [`Streamer::run`] is its task.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use kvmd_core::service::CancellationToken;
use tokio::sync::{Notify, watch};

use super::{Fps, lock};
use crate::blank::Blanks;
use crate::config::Config;
use crate::frame::{Jpeg, Kind, PixelFormat, monotonic};
use crate::source::Offline;

/// The stream parameters kvmd's `set_params` changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// JPEG quality, when the quality feature is on.
    pub quality: Option<u8>,
    /// Frames per second to encode at most (0 = all).
    pub desired_fps: u32,
    /// Capture resolution, when the resolution feature is on.
    pub resolution: Option<(u32, u32)>,
    /// H.264 bitrate in kbps, when H.264 is on.
    pub h264_bitrate: Option<u32>,
    /// H.264 GOP, when H.264 is on.
    pub h264_gop: Option<u32>,
}

impl Params {
    /// The same parameters but for H.264's (which are retuned live, without a restart).
    fn same_capture(&self, other: &Params) -> bool {
        (self.quality, self.desired_fps, self.resolution) == (other.quality, other.desired_fps, other.resolution)
    }
}

/// Parses `WxH`.
pub fn parse_resolution(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once('x')?;
    Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
}

/// A `/stream` client's query flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientFlags {
    /// `extra_headers=1`.
    pub extra_headers: bool,
    /// `advance_headers=1`.
    pub advance_headers: bool,
    /// `dual_final_frames=1`.
    pub dual_final_frames: bool,
    /// `zero_data=1`.
    pub zero_data: bool,
}

/// A `/stream` client, as `/state` reports it.
#[derive(Debug)]
pub(super) struct Client {
    pub(super) flags: ClientFlags,
    pub(super) key: String,
    pub(super) fps: Fps,
}

/// What the source last showed.
#[derive(Debug, Clone)]
pub(super) struct Status {
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) online: bool,
    pub(super) format: Option<PixelFormat>,
    pub(super) captured: Fps,
    pub(super) queued: Fps,
}

/// The snapshot kept by `save=1`.
#[derive(Debug, Clone)]
pub struct Saved {
    /// The frame (original size).
    pub frame: Arc<Jpeg>,
    /// The picture returned (a preview when one was asked for).
    pub data: Bytes,
}

/// A running capture: its stop flag and its thread (`capture_main`).
struct Capture {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// The shared state. Cheap to clone.
#[derive(Clone)]
pub struct Streamer {
    pub(super) inner: Arc<Inner>,
}

/// What every clone of a [`Streamer`] shares: the controller, the capture threads and the
/// HTTP handlers.
pub(super) struct Inner {
    pub(super) cfg: Config,
    /// The parameters asked for (applied on the next start).
    pub(super) params: Mutex<Params>,
    /// The parameters of the running capture.
    pub(super) active: Mutex<Params>,
    /// Parameters queued by `set_params`, and when they last changed (kvmd applies them
    /// after 1 s without further changes).
    pub(super) pending: Mutex<Option<(Instant, Params)>>,
    pub(super) restart: AtomicBool,
    pub(super) latest: watch::Sender<Option<Arc<Jpeg>>>,
    pub(super) seq: AtomicU64,
    pub(super) in_flight: AtomicUsize,
    pub(super) stream_clients: AtomicUsize,
    pub(super) feed_clients: AtomicUsize,
    pub(super) snapshot_waiters: AtomicUsize,
    pub(super) running: AtomicBool,
    pub(super) wake: Notify,
    pub(super) changed: watch::Sender<u64>,
    pub(super) status: Mutex<Status>,
    pub(super) clients: Mutex<BTreeMap<String, Client>>,
    pub(super) last_client_id: AtomicU64,
    pub(super) saved: Mutex<Option<Saved>>,
    pub(super) blanks: Mutex<Blanks>,
    pub(super) workers: usize,
    /// Why capture cannot go on (a capture thread that could not be spawned): ends
    /// [`Streamer::run`] with this error.
    pub(super) fatal: Mutex<Option<anyhow::Error>>,
    /// The cap on `/stream` clients (`max_clients`).
    pub(super) stream_places: kvmd_core::limit::Limit,
    /// The H.264 encode and its readers.
    pub(super) h264: crate::h264::H264,
}

impl std::fmt::Debug for Streamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streamer").field("running", &self.running()).finish_non_exhaustive()
    }
}

/// Unregisters a consumer when dropped.
#[derive(Debug)]
pub struct DemandGuard {
    streamer: Streamer,
    kind: DemandKind,
}

#[derive(Debug, Clone)]
enum DemandKind {
    Stream(String),
    Feed,
    Snapshot,
    H264,
}

impl Drop for DemandGuard {
    fn drop(&mut self) {
        let i = &self.streamer.inner;
        match &self.kind {
            DemandKind::Stream(id) => {
                lock(&i.clients).remove(id);
                i.stream_clients.fetch_sub(1, Ordering::SeqCst);
            }
            DemandKind::Feed => {
                i.feed_clients.fetch_sub(1, Ordering::SeqCst);
            }
            DemandKind::Snapshot => {
                i.snapshot_waiters.fetch_sub(1, Ordering::SeqCst);
            }
            DemandKind::H264 => i.h264.leave(),
        }
        self.streamer.notify();
    }
}

impl Streamer {
    /// A streamer for `cfg`; [`Streamer::run`] drives it.
    pub fn new(cfg: Config) -> Self {
        let params = Params {
            quality: (cfg.params.quality > 0).then_some(cfg.params.quality.min(100)),
            desired_fps: cfg.params.desired_fps.clamp(cfg.params.desired_fps_min, cfg.params.desired_fps_max),
            resolution: parse_resolution(&cfg.params.resolution),
            h264_bitrate: (cfg.params.h264_bitrate > 0)
                .then(|| cfg.params.h264_bitrate.clamp(cfg.params.h264_bitrate_min, cfg.params.h264_bitrate_max)),
            h264_gop: (cfg.params.h264_bitrate > 0)
                .then(|| cfg.params.h264_gop.clamp(cfg.params.h264_gop_min, cfg.params.h264_gop_max)),
        };
        let (width, height) = params.resolution.unwrap_or((cfg.source.width, cfg.source.height));
        let workers = if cfg.encoder.workers == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        } else {
            cfg.encoder.workers
        };
        let inner = Inner {
            params: Mutex::new(params.clone()),
            active: Mutex::new(params),
            pending: Mutex::new(None),
            restart: AtomicBool::new(false),
            latest: watch::Sender::new(None),
            seq: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            stream_clients: AtomicUsize::new(0),
            feed_clients: AtomicUsize::new(0),
            snapshot_waiters: AtomicUsize::new(0),
            running: AtomicBool::new(false),
            wake: Notify::new(),
            changed: watch::Sender::new(0),
            status: Mutex::new(Status {
                width,
                height,
                online: false,
                format: None,
                captured: Fps::default(),
                queued: Fps::default(),
            }),
            clients: Mutex::new(BTreeMap::new()),
            last_client_id: AtomicU64::new(0),
            saved: Mutex::new(None),
            blanks: Mutex::new(Blanks::default()),
            workers: workers.clamp(1, 16),
            fatal: Mutex::new(None),
            stream_places: kvmd_core::limit::Limit::new(cfg.max_clients, "stream clients"),
            h264: crate::h264::H264::default(),
            cfg,
        };
        Self { inner: Arc::new(inner) }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.cfg
    }

    /// Whether capture is running (kvmd: uStreamer is running).
    pub fn running(&self) -> bool {
        self.inner.running.load(Ordering::SeqCst)
    }

    /// Capture threads (each one grabs and encodes).
    pub fn workers(&self) -> usize {
        self.inner.workers
    }

    pub(super) fn notify(&self) {
        self.inner.wake.notify_one();
        self.inner.changed.send_modify(|n| *n += 1);
    }

    /// A change counter feeds watch (parameters, snapshot, lifecycle, signal).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// The newest frame, for consumers.
    pub fn frames(&self) -> watch::Receiver<Option<Arc<Jpeg>>> {
        self.inner.latest.subscribe()
    }

    /// A place for one more `/stream` client, or kvmd's 503 at `max_clients`.
    pub fn stream_place(&self) -> Result<kvmd_core::limit::Permit, kvmd_core::ApiError> {
        self.inner.stream_places.take()
    }

    /// Registers a `/stream` client; returns its id (16 lower-case hex digits, from the
    /// monotonic microsecond clock, unique) and the guard that unregisters it.
    pub fn add_client(&self, flags: ClientFlags, key: &str) -> (String, DemandGuard) {
        let now = (monotonic() * 1e6) as u64;
        let mut last = self.inner.last_client_id.load(Ordering::SeqCst);
        let id = loop {
            let id = now.max(last + 1);
            match self.inner.last_client_id.compare_exchange(last, id, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break id,
                Err(cur) => last = cur,
            }
        };
        let id = format!("{id:016x}");
        lock(&self.inner.clients).insert(id.clone(), Client { flags, key: key.to_owned(), fps: Fps::default() });
        self.inner.stream_clients.fetch_add(1, Ordering::SeqCst);
        self.notify();
        (id.clone(), DemandGuard { streamer: self.clone(), kind: DemandKind::Stream(id) })
    }

    /// Counts a frame handed to client `id`'s socket.
    pub fn client_sent(&self, id: &str) {
        if let Some(c) = lock(&self.inner.clients).get_mut(id) {
            c.fps.tick(monotonic());
        }
    }

    /// This client's fps.
    pub fn client_fps(&self, id: &str) -> u32 {
        lock(&self.inner.clients).get(id).map_or(0, |c| c.fps.get(monotonic()))
    }

    /// Registers a state-feed subscriber; with `stream` it keeps capture running.
    pub fn add_feed(&self, stream: bool) -> Option<DemandGuard> {
        if !stream {
            return None;
        }
        self.inner.feed_clients.fetch_add(1, Ordering::SeqCst);
        self.notify();
        Some(DemandGuard { streamer: self.clone(), kind: DemandKind::Feed })
    }

    /// A reader of the H.264 feed (capture and the encode run while it is there): the
    /// units from now on (a key frame first is asked for) and its guard. `None` when H.264 is off.
    pub fn h264_join(&self) -> Option<(tokio::sync::broadcast::Receiver<Arc<crate::h264::Unit>>, DemandGuard)> {
        self.params().h264_bitrate?;
        let rx = self.inner.h264.join();
        self.notify();
        Some((rx, DemandGuard { streamer: self.clone(), kind: DemandKind::H264 }))
    }

    /// Asks the H.264 encoder for a key frame.
    pub fn h264_key(&self) {
        self.inner.h264.request_key();
    }

    /// kvmd's stream-client count: feed subscribers with `stream=1`.
    pub fn feed_clients(&self) -> usize {
        self.inner.feed_clients.load(Ordering::SeqCst)
    }

    fn wanted(&self) -> bool {
        let i = &self.inner;
        i.cfg.forever
            || i.stream_clients.load(Ordering::SeqCst) > 0
            || i.feed_clients.load(Ordering::SeqCst) > 0
            || i.snapshot_waiters.load(Ordering::SeqCst) > 0
            || i.h264.clients() > 0
    }

    /// Someone waits for pictures: JPEGs or H.264.
    pub(super) fn encode_wanted(&self) -> bool {
        self.jpeg_wanted() || self.inner.h264.clients() > 0
    }

    /// Someone waits for JPEGs: a stream client or a snapshot.
    pub(super) fn jpeg_wanted(&self) -> bool {
        let i = &self.inner;
        i.stream_clients.load(Ordering::SeqCst) > 0 || i.snapshot_waiters.load(Ordering::SeqCst) > 0
    }

    /// The parameters in effect (what `params` reports).
    pub fn params(&self) -> Params {
        lock(&self.inner.params).clone()
    }

    /// The parameters `set_params` would change: the queued ones, else the current.
    pub fn queued_params(&self) -> Params {
        lock(&self.inner.pending).as_ref().map_or_else(|| self.params(), |(_, p)| p.clone())
    }

    /// Queues new parameters: applied, with a restart, after 1 s without further changes.
    pub fn set_params(&self, p: Params) {
        let mut pending = lock(&self.inner.pending);
        let base = pending.as_ref().map_or_else(|| self.params(), |(_, q)| q.clone());
        if base != p {
            *pending = Some((Instant::now(), p));
            drop(pending);
            self.notify();
        }
    }

    /// Restarts capture if it runs (kvmd's `reset`).
    pub fn reset(&self) {
        self.inner.restart.store(true, Ordering::SeqCst);
        self.notify();
    }

    /// The saved snapshot.
    pub fn saved(&self) -> Option<Saved> {
        lock(&self.inner.saved).clone()
    }

    /// Stores (or with `None` forgets) the saved snapshot.
    pub fn save(&self, s: Option<Saved>) {
        *lock(&self.inner.saved) = s;
        self.notify();
    }

    /// A fresh frame: one published after this call, or after 3 s the generic blank.
    /// Offline frames are replaced by the generic `< NO LIVE VIDEO >` blank, as
    /// uStreamer's `/snapshot` does. Registers as demand while waiting (so the uStreamer
    /// face's `/snapshot` starts capture by itself).
    pub async fn snapshot(&self) -> Arc<Jpeg> {
        let mut rx = self.frames();
        let start = rx.borrow().as_ref().map_or(0, |j| j.seq);
        self.inner.snapshot_waiters.fetch_add(1, Ordering::SeqCst);
        let _guard = DemandGuard { streamer: self.clone(), kind: DemandKind::Snapshot };
        self.notify();
        let timeout = Duration::from_secs_f64((3.0 * self.inner.cfg.error_delay).max(1.0));
        let wait = async {
            loop {
                if let Some(j) = rx.borrow_and_update().as_ref()
                    && j.seq > start
                    && j.kind != Kind::DualFinal
                {
                    return Some(j.clone());
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        let frame = tokio::time::timeout(timeout, wait).await.ok().flatten();
        match frame {
            Some(j) if j.online => j,
            other => {
                let (w, h) = other.as_ref().map_or_else(
                    || {
                        let s = lock(&self.inner.status);
                        (s.width, s.height)
                    },
                    |j| (j.width, j.height),
                );
                let now = monotonic();
                let data = lock(&self.inner.blanks).get(Offline::Generic, w, h);
                let mut blank = Jpeg::blank(0, data, w, h, now);
                if let Some(j) = &other {
                    (blank.encode_begin, blank.encode_end) = (j.encode_begin, j.encode_end);
                }
                Arc::new(blank)
            }
        }
    }

    /// Drives the lifecycle until `shutdown`. Ends with an error, capture stopped, when
    /// capture cannot run: a capture thread that cannot be spawned.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut capture: Option<Capture> = None;
        let result = self.drive(&mut capture, &shutdown).await;
        if let Some(c) = capture.take() {
            self.stop(c).await;
        }
        result
    }

    async fn drive(&self, capture: &mut Option<Capture>, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let mut idle_since: Option<Instant> = None;
        loop {
            let fatal = lock(&self.inner.fatal).take();
            if let Some(e) = fatal {
                return Err(e);
            }
            let debounced = {
                let mut p = lock(&self.inner.pending);
                match p.take() {
                    Some((t, params)) if t.elapsed() >= Duration::from_secs(1) => Some(params),
                    other => {
                        *p = other;
                        None
                    }
                }
            };
            if let Some(params) = debounced {
                let old = std::mem::replace(&mut *lock(&self.inner.params), params.clone());
                if old.same_capture(&params) {
                    // Only H.264's: the encoder is retuned on its next frame, capture goes on.
                    let mut active = lock(&self.inner.active);
                    (active.h264_bitrate, active.h264_gop) = (params.h264_bitrate, params.h264_gop);
                } else {
                    self.inner.restart.store(true, Ordering::SeqCst);
                }
                self.notify();
            }
            if self.inner.restart.swap(false, Ordering::SeqCst)
                && let Some(c) = capture.take()
            {
                self.stop(c).await;
                tokio::time::sleep(Duration::from_secs_f64(self.inner.cfg.reset_delay.max(0.0))).await;
                *capture = Some(self.start()?);
            }
            if self.wanted() {
                idle_since = None;
                if capture.is_none() {
                    *capture = Some(self.start()?);
                }
            } else if capture.is_some() {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= Duration::from_secs_f64(self.inner.cfg.shutdown_delay.max(0.0))
                    && let Some(c) = capture.take()
                {
                    self.stop(c).await;
                    idle_since = None;
                }
            }
            tokio::select! {
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// Ends [`Streamer::run`] with `error` (the first one reported wins).
    pub(super) fn fail(&self, error: anyhow::Error) {
        lock(&self.inner.fatal).get_or_insert(error);
        self.notify();
    }

    fn start(&self) -> anyhow::Result<Capture> {
        *lock(&self.inner.active) = self.params();
        let stop = Arc::new(AtomicBool::new(false));
        let (me, flag) = (self.clone(), stop.clone());
        self.inner.running.store(true, Ordering::SeqCst);
        let spawned = std::thread::Builder::new().name("capture".into()).spawn(move || me.capture_main(&flag));
        let thread = match spawned {
            Ok(thread) => thread,
            Err(e) => {
                self.inner.running.store(false, Ordering::SeqCst);
                self.notify();
                return Err(e).context("cannot spawn the capture thread");
            }
        };
        tracing::info!("capture started");
        self.notify();
        Ok(Capture { stop, thread })
    }

    async fn stop(&self, c: Capture) {
        c.stop.store(true, Ordering::SeqCst);
        // A driver stuck in an ioctl must not hang the service: give up on the thread
        // after a while (it ends with the process, or when the call returns).
        let join = tokio::task::spawn_blocking(move || c.thread.join());
        if tokio::time::timeout(Duration::from_secs(5), join).await.is_err() {
            tracing::error!("the capture thread does not stop (stuck in the driver?); left behind");
        }
        self.inner.running.store(false, Ordering::SeqCst);
        self.inner.latest.send_replace(None);
        {
            let mut s = lock(&self.inner.status);
            s.online = false;
        }
        tracing::info!("capture stopped");
        self.notify();
    }

    /// The JPEG quality of the running capture.
    pub(super) fn quality(&self) -> u8 {
        lock(&self.inner.active).quality.unwrap_or(self.inner.cfg.encoder.quality).clamp(1, 100)
    }
}

/// Runs the HTTP `server` beside the `controller` task ([`Streamer::run`]) until both end.
///
/// Whichever ends first, the other is stopped by cancelling `shutdown`, so the service never
/// goes on half alive: a controller that fails, panics or ends before shutdown was asked for
/// ends the service with an error (systemd restarts it). A server that ends with an error
/// returns that error, once the controller has stopped.
pub(crate) async fn supervise(
    mut controller: tokio::task::JoinHandle<anyhow::Result<()>>,
    server: impl Future<Output = anyhow::Result<()>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut server = std::pin::pin!(server);
    tokio::select! {
        served = &mut server => {
            shutdown.cancel();
            let ended = controller.await;
            served?;
            ended.context("the streamer's controller panicked")?.context("the streamer's controller failed")
        }
        ended = &mut controller => {
            let asked = shutdown.is_cancelled();
            if !asked {
                tracing::error!("the streamer's controller ended; stopping the service");
            }
            shutdown.cancel();
            let served = server.await;
            match ended {
                Ok(Ok(())) if asked => served,
                Ok(Ok(())) => Err(anyhow::anyhow!("the streamer's controller ended before shutdown")),
                Ok(Err(e)) => Err(e.context("the streamer's controller failed")),
                Err(e) => Err(anyhow::Error::new(e).context("the streamer's controller panicked")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceKind;

    #[test]
    fn resolutions_parse() {
        assert_eq!(parse_resolution("1920x1080"), Some((1920, 1080)));
        assert_eq!(parse_resolution("1920"), None);
        assert_eq!(parse_resolution("ax1"), None);
    }

    /// A server that runs until `shutdown`, then returns `result`.
    async fn server(shutdown: CancellationToken, result: anyhow::Result<()>) -> anyhow::Result<()> {
        shutdown.cancelled().await;
        result
    }

    #[tokio::test]
    async fn a_fatal_capture_error_ends_the_controller_with_capture_stopped() {
        let mut c = Config::default();
        c.source.kind = SourceKind::Pattern;
        c.forever = true;
        c.encoder.workers = 1;
        let s = Streamer::new(c);
        let stop = CancellationToken::new();
        let ctl = tokio::spawn(s.clone().run(stop.clone()));
        tokio::time::timeout(Duration::from_secs(10), async {
            while !s.running() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("capture never started"));
        s.fail(anyhow::anyhow!("cannot spawn capture thread 0"));
        let ended = tokio::time::timeout(Duration::from_secs(10), ctl).await;
        let Ok(Ok(Err(e))) = ended else { panic!("the controller must end with the error: {ended:?}") };
        assert_eq!(e.to_string(), "cannot spawn capture thread 0");
        assert!(!s.running(), "capture stopped");
        assert!(!stop.is_cancelled());
    }

    #[tokio::test]
    async fn a_failing_controller_ends_the_service() {
        let shutdown = CancellationToken::new();
        let ctl = tokio::spawn(async { Err(anyhow::anyhow!("no thread")) });
        let r = supervise(ctl, server(shutdown.clone(), Ok(())), shutdown.clone()).await;
        let e = r.expect_err("an error");
        assert_eq!(format!("{e:#}"), "the streamer's controller failed: no thread");
        assert!(shutdown.is_cancelled(), "the server was stopped");
    }

    #[tokio::test]
    async fn a_panicking_or_returning_controller_ends_the_service() {
        let shutdown = CancellationToken::new();
        let ctl = tokio::spawn(async { panic!("boom") });
        let r = supervise(ctl, server(shutdown.clone(), Ok(())), shutdown.clone()).await;
        assert!(format!("{:#}", r.expect_err("an error")).starts_with("the streamer's controller panicked"));
        assert!(shutdown.is_cancelled());

        let shutdown = CancellationToken::new();
        let ctl = tokio::spawn(async { Ok(()) });
        let r = supervise(ctl, server(shutdown.clone(), Ok(())), shutdown.clone()).await;
        assert_eq!(r.expect_err("an error").to_string(), "the streamer's controller ended before shutdown");
    }

    #[tokio::test]
    async fn a_shutdown_ends_both_without_an_error() {
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let ctl = tokio::spawn(async move {
            token.cancelled().await;
            Ok(())
        });
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            stopper.cancel();
        });
        supervise(ctl, server(shutdown.clone(), Ok(())), shutdown).await.unwrap_or_else(|e| panic!("{e:#}"));
    }

    #[tokio::test]
    async fn a_failing_server_stops_the_controller() {
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let ctl = tokio::spawn(async move {
            token.cancelled().await;
            Ok(())
        });
        let r = supervise(ctl, async { Err(anyhow::anyhow!("cannot listen")) }, shutdown.clone()).await;
        assert_eq!(r.expect_err("an error").to_string(), "cannot listen");
        assert!(shutdown.is_cancelled());
    }
}
