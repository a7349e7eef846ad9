//! The streamer: demand, lifecycle, capture, encoding, and the shared latest frame.
//!
//! ```text
//! capture thread ──raw──► same-frame check ──changed──► encoder workers (N) ──► latest
//!  (source.grab)           (on the raw bytes,            one mozjpeg encode        frame
//!                           before encoding)             per changed frame         (watch)
//!                               └──unchanged: re-publish the last JPEG (no encode) ──┘
//! ```
//!
//! Capture runs while someone watches: a `/stream` client, a `/snapshot` waiter, a
//! `/streamer/feed?stream=1` subscriber (kvmd-hid's `/ws` sessions with `stream=1`), or
//! `forever`; it stops `shutdown_delay` seconds after the last one left. Encoding runs
//! only while a stream client or a snapshot waits. Every consumer shares the newest
//! [`Jpeg`] (a `tokio::sync::watch`): a slow client skips frames and never delays the
//! others or grows memory. Results that finish out of order are discarded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kvmd_core::service::CancellationToken;
use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::blank::Blanks;
use crate::config::{Config, SourceKind};
use crate::encode::{Encoder, I420, RowDigest, frame_digest, sample_digest};
use crate::frame::{Geometry, Jpeg, Kind, PixelFormat, RawRef, monotonic};
use crate::source::{Offline, Source, Wanted};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Frames counted per whole second of CLOCK_MONOTONIC (uStreamer's fps semantics: the
/// count of the previous second; 0 when nothing was counted for about two seconds).
#[derive(Debug, Default, Clone)]
pub struct Fps {
    sec: u64,
    count: u32,
    prev: u32,
}

impl Fps {
    /// Counts one frame at monotonic time `now`.
    pub fn tick(&mut self, now: f64) {
        let s = now as u64;
        if s != self.sec {
            self.prev = if s == self.sec + 1 { self.count } else { 0 };
            self.sec = s;
            self.count = 0;
        }
        self.count += 1;
    }

    /// Frames in the previous whole second.
    pub fn get(&self, now: f64) -> u32 {
        let s = now as u64;
        if s == self.sec {
            self.prev
        } else if s == self.sec + 1 {
            self.count
        } else {
            0
        }
    }
}

/// The stream parameters kvmd's `set_params` changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// JPEG quality, when the quality feature is on.
    pub quality: Option<u8>,
    /// Frames per second to encode at most (0 = all).
    pub desired_fps: u32,
    /// Capture resolution, when the resolution feature is on.
    pub resolution: Option<(u32, u32)>,
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

#[derive(Debug)]
struct Client {
    flags: ClientFlags,
    key: String,
    fps: Fps,
}

/// What the source last showed.
#[derive(Debug, Clone)]
struct Status {
    width: u32,
    height: u32,
    online: bool,
    format: Option<PixelFormat>,
    captured: Fps,
    queued: Fps,
}

/// The snapshot kept by `save=1`.
#[derive(Debug, Clone)]
pub struct Saved {
    /// The frame (original size).
    pub frame: Arc<Jpeg>,
    /// The picture returned (a preview when one was asked for).
    pub data: Bytes,
}

/// A changed frame taken by a capture thread, to encode once the source is released.
struct Grabbed {
    seq: u64,
    geometry: Geometry,
    grab_begin: f64,
    grab_end: f64,
    dropped: u32,
    expose_begin: f64,
    expose_cmp: f64,
    /// Planes already filled (packed 4:2:2), or a copy of the frame (RGB).
    planes: bool,
}

/// What the capture threads share, behind one lock: the source and the same-frame state.
struct Shared {
    source: Box<dyn Source>,
    open: bool,
    dedup: Dedup,
    next_due: f64,
    last_error: String,
}

/// One capture thread's own buffers.
#[derive(Default)]
struct Own {
    planes: I420,
    raw: Vec<u8>,
    encoder: Encoder,
    last_size: usize,
}

struct Capture {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// The shared state. Cheap to clone.
#[derive(Clone)]
pub struct Streamer {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: Config,
    /// The parameters asked for (applied on the next start).
    params: Mutex<Params>,
    /// The parameters of the running capture.
    active: Mutex<Params>,
    /// Parameters queued by `set_params`, and when they last changed (kvmd applies them
    /// after 1 s without further changes).
    pending: Mutex<Option<(Instant, Params)>>,
    restart: AtomicBool,
    latest: watch::Sender<Option<Arc<Jpeg>>>,
    seq: AtomicU64,
    in_flight: AtomicUsize,
    stream_clients: AtomicUsize,
    feed_clients: AtomicUsize,
    snapshot_waiters: AtomicUsize,
    running: AtomicBool,
    wake: Notify,
    changed: watch::Sender<u64>,
    status: Mutex<Status>,
    clients: Mutex<BTreeMap<String, Client>>,
    last_client_id: AtomicU64,
    saved: Mutex<Option<Saved>>,
    blanks: Mutex<Blanks>,
    workers: usize,
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

    /// Encoder threads.
    pub fn workers(&self) -> usize {
        self.inner.workers
    }

    fn notify(&self) {
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
    }

    fn encode_wanted(&self) -> bool {
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

    /// Drives the lifecycle until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut capture: Option<Capture> = None;
        let mut idle_since: Option<Instant> = None;
        loop {
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
                *lock(&self.inner.params) = params;
                self.inner.restart.store(true, Ordering::SeqCst);
                self.notify();
            }
            if self.inner.restart.swap(false, Ordering::SeqCst)
                && let Some(c) = capture.take()
            {
                self.stop(c).await;
                tokio::time::sleep(Duration::from_secs_f64(self.inner.cfg.reset_delay.max(0.0))).await;
                capture = Some(self.start());
            }
            if self.wanted() {
                idle_since = None;
                if capture.is_none() {
                    capture = Some(self.start());
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
                () = shutdown.cancelled() => break,
            }
        }
        if let Some(c) = capture.take() {
            self.stop(c).await;
        }
    }

    fn start(&self) -> Capture {
        *lock(&self.inner.active) = self.params();
        let stop = Arc::new(AtomicBool::new(false));
        let (me, flag) = (self.clone(), stop.clone());
        self.inner.running.store(true, Ordering::SeqCst);
        let thread = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || me.capture_main(&flag))
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot start the capture thread");
                std::thread::spawn(|| {})
            });
        tracing::info!("capture started");
        self.notify();
        Capture { stop, thread }
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

    fn make_source(&self) -> Box<dyn Source> {
        let c = &self.inner.cfg.source;
        match c.kind {
            SourceKind::V4l2 => Box::new(crate::source::v4l2::V4l2::new(c)),
            SourceKind::Vtarget => Box::new(crate::source::vtarget::Vtarget::new(c.device.clone(), c.read_timeout())),
            SourceKind::Pattern => {
                let p = crate::source::pattern::Pattern::new(c.width, c.height, c.fps, c.motion);
                Box::new(if c.clock { p } else { p.without_clock() })
            }
        }
    }

    fn quality(&self) -> u8 {
        lock(&self.inner.active).quality.unwrap_or(self.inner.cfg.encoder.quality).clamp(1, 100)
    }

    /// Capture: `workers` threads take turns at the source (leader/follower). The one
    /// holding the source grabs a frame, checks it against the last one and, when it
    /// changed, deinterleaves it into its own planes; then it lets the source go to the
    /// next thread and encodes on its own core, with the planes still in its cache. No
    /// frame is copied or queued: when every thread is busy encoding, the source simply
    /// is not read (a capture card keeps its newest frames meanwhile).
    fn capture_main(&self, stop: &AtomicBool) {
        let shared = Mutex::new(Shared {
            source: self.make_source(),
            open: false,
            dedup: Dedup::default(),
            next_due: 0.0,
            last_error: String::new(),
        });
        let quality = self.quality();
        std::thread::scope(|scope| {
            for n in 0..self.inner.workers {
                let shared = &shared;
                let _ = std::thread::Builder::new().name(format!("capture-{n}")).spawn_scoped(scope, move || {
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.capture_thread(stop, shared, quality);
                    }));
                    if run.is_err() {
                        tracing::error!("a capture thread panicked; the others go on");
                    }
                });
            }
        });
        lock(&shared).source.close();
    }

    fn capture_thread(&self, stop: &AtomicBool, shared: &Mutex<Shared>, quality: u8) {
        let i = &self.inner;
        let wanted = {
            let c = &i.cfg.source;
            let (width, height) = lock(&i.active).resolution.unwrap_or((c.width, c.height));
            Wanted { width, height }
        };
        let desired_fps = lock(&i.active).desired_fps;
        let period = if desired_fps > 0 { 1.0 / f64::from(desired_fps) } else { 0.0 };
        let drop_same = i.cfg.drop_same_frames.min(120);
        let mut own = Own::default();
        let mut errors = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let grabbed = {
                let mut g = lock(shared);
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                self.take_frame(&mut g, stop, &mut own, wanted, period, drop_same)
            };
            let Some(f) = grabbed else { continue };
            let encode_begin = monotonic();
            let result = if f.planes {
                own.planes.encode(quality, own.last_size)
            } else {
                own.encoder.encode(&own.raw, f.geometry, quality)
            };
            let encode_end = monotonic();
            match result {
                Ok(data) => {
                    own.last_size = data.len();
                    self.publish(Jpeg {
                        seq: f.seq,
                        data: Bytes::from(data),
                        width: f.geometry.width,
                        height: f.geometry.height,
                        online: true,
                        grab_begin: f.grab_begin,
                        grab_end: f.grab_end,
                        encode_begin,
                        encode_end,
                        expose_begin: f.expose_begin,
                        expose_cmp: f.expose_cmp,
                        expose_end: monotonic(),
                        dropped: f.dropped,
                        kind: Kind::New,
                    });
                }
                Err(e) => {
                    errors += 1;
                    if errors.is_power_of_two() {
                        tracing::warn!(error = %e, errors, "frame not encoded");
                    }
                }
            }
            i.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// With the source held: (re)open it, grab one frame, and decide. Returns a changed
    /// frame to encode (already deinterleaved into `own.planes`, or copied to `own.raw`).
    fn take_frame(
        &self,
        g: &mut Shared,
        stop: &AtomicBool,
        own: &mut Own,
        wanted: Wanted,
        period: f64,
        drop_same: u32,
    ) -> Option<Grabbed> {
        let i = &self.inner;
        let Shared { source, open, dedup, next_due, last_error } = g;
        if !*open {
            if let Err(e) = source.open(wanted) {
                if e.detail != *last_error {
                    tracing::warn!(reason = e.reason.text(), detail = %e.detail, "no capture");
                    last_error.clone_from(&e.detail);
                }
                self.offline(stop, e.reason);
                return None;
            }
            *open = true;
            *next_due = 0.0;
        }
        let raw = match source.grab() {
            Ok(Some(raw)) => raw,
            Ok(None) => return None,
            Err(e) => {
                if e.detail != *last_error {
                    tracing::warn!(reason = e.reason.text(), detail = %e.detail, "capture lost");
                    last_error.clone_from(&e.detail);
                }
                source.close();
                *open = false;
                *dedup = Dedup::default();
                if !e.reopen_now {
                    self.offline(stop, e.reason);
                }
                return None;
            }
        };
        last_error.clear();
        let now = monotonic();
        self.note_frame(raw.geometry, now);
        if !self.encode_wanted() {
            // Nobody waits for pictures: drop the last one, so the next viewer gets a
            // fresh frame rather than a stale one.
            if dedup.last.take().is_some() {
                i.latest.send_replace(None);
            }
            return None;
        }
        if period > 0.0 {
            if now + 0.002 < *next_due {
                return None;
            }
            *next_due = if *next_due + period < now { now + period } else { *next_due + period };
        }
        self.check_frame(&raw, dedup, drop_same, own)
    }

    /// The same-frame check, and the preparation of a changed frame.
    ///
    /// Frames are compared by a 128-bit digest of their picture bytes (XXH3 per line) with the
    /// digest of the last frame taken: at most one pass over the frame instead of the two
    /// of a memcmp against a kept copy (the compare is memory-bound: 4 MB per 1080p YUYV
    /// frame), and no copy to keep. A digest of every 8th line comes first: when it
    /// differs, the frame changed, and its full digest is taken while it is deinterleaved
    /// to I420, straight from the capture buffer, so it is never copied either.
    fn check_frame(&self, raw: &RawRef<'_>, st: &mut Dedup, drop_same: u32, own: &mut Own) -> Option<Grabbed> {
        let i = &self.inner;
        let expose_begin = monotonic();
        let g = raw.geometry;
        let packed = matches!(g.format, PixelFormat::Yuyv | PixelFormat::Uyvy);
        let mut sample = None;
        let mut digest = None;
        let same = match st.last {
            // A still picture (the last frame was the same again): straight to the full
            // digest; the sample would only add an eighth.
            Some((lg, _, ld)) if lg == g && st.dropped > 0 => {
                let d = frame_digest(raw.data, g);
                digest = Some(d);
                d == ld
            }
            Some((lg, ls, ld)) if lg == g => {
                let s = sample_digest(raw.data, g);
                sample = Some(s);
                s == ls && {
                    let d = frame_digest(raw.data, g);
                    digest = Some(d);
                    d == ld
                }
            }
            _ => false,
        };
        if !same && !packed && digest.is_none() {
            digest = Some(frame_digest(raw.data, g));
        }
        let expose_cmp = monotonic();
        if same {
            st.dropped += 1;
            if i.in_flight.load(Ordering::SeqCst) > 0 {
                return None; // the changed frame still being encoded will be published anyway
            }
            if st.last_changed {
                st.last_changed = false;
                self.republish(Kind::DualFinal, 0, expose_begin, expose_cmp);
            }
            let force = i.snapshot_waiters.load(Ordering::SeqCst) > 0;
            if force || drop_same == 0 || st.dropped > drop_same || expose_begin - st.last_expose >= 1.0 {
                self.republish(Kind::Repeat, st.dropped, expose_begin, expose_cmp);
                st.dropped = 0;
                st.last_expose = expose_begin;
            }
            return None;
        }
        let sample = sample.unwrap_or_else(|| sample_digest(raw.data, g));
        let seq = i.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let planes = match g.format {
            PixelFormat::Mjpeg => {
                // The device encoded it: publish as is (uStreamer's HW encoder).
                let now = monotonic();
                self.publish(Jpeg {
                    seq,
                    data: Bytes::copy_from_slice(raw.data),
                    width: g.width,
                    height: g.height,
                    online: true,
                    grab_begin: raw.grab_begin,
                    grab_end: raw.grab_end,
                    encode_begin: now,
                    encode_end: now,
                    expose_begin,
                    expose_cmp,
                    expose_end: now,
                    dropped: st.dropped,
                    kind: Kind::New,
                });
                st.remember(g, sample, digest.unwrap_or_default());
                return None;
            }
            PixelFormat::Yuyv | PixelFormat::Uyvy => {
                let mut hasher = digest.is_none().then(RowDigest::new);
                if let Err(e) = own.planes.fill_digest(raw.data, g, hasher.as_mut()) {
                    st.errors += 1;
                    if st.errors.is_power_of_two() {
                        tracing::warn!(error = %e, errors = st.errors, "bad frame dropped");
                    }
                    return None;
                }
                if let Some(h) = hasher {
                    digest = Some(h.finish());
                }
                true
            }
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => {
                own.raw.clear();
                own.raw.extend_from_slice(raw.data);
                false
            }
        };
        let dropped = st.dropped;
        st.remember(g, sample, digest.unwrap_or_default());
        i.in_flight.fetch_add(1, Ordering::SeqCst);
        Some(Grabbed {
            seq,
            geometry: g,
            grab_begin: raw.grab_begin,
            grab_end: raw.grab_end,
            dropped,
            expose_begin,
            expose_cmp,
            planes,
        })
    }

    /// Publishes the current picture again (no encode).
    fn republish(&self, kind: Kind, dropped: u32, expose_begin: f64, expose_cmp: f64) {
        let Some(cur) = self.inner.latest.borrow().clone() else { return };
        let seq = self.inner.seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.publish(Jpeg { seq, kind, dropped, expose_begin, expose_cmp, expose_end: monotonic(), ..(*cur).clone() });
    }

    fn publish(&self, j: Jpeg) {
        let now = monotonic();
        let counted = j.kind != Kind::DualFinal && self.inner.stream_clients.load(Ordering::SeqCst) > 0;
        let j = Arc::new(j);
        let published = self.inner.latest.send_if_modified(|cur| {
            if cur.as_ref().is_none_or(|c| c.seq < j.seq) {
                *cur = Some(j.clone());
                true
            } else {
                false
            }
        });
        if published && counted {
            lock(&self.inner.status).queued.tick(now);
        }
    }

    fn note_frame(&self, g: Geometry, now: f64) {
        let mut s = lock(&self.inner.status);
        s.captured.tick(now);
        let changed = !s.online || s.width != g.width || s.height != g.height;
        s.online = true;
        s.width = g.width;
        s.height = g.height;
        s.format = Some(g.format);
        drop(s);
        if changed {
            self.notify();
        }
    }

    /// No picture: the blank for `reason` now, and once a second until the error delay
    /// has passed.
    fn offline(&self, stop: &AtomicBool, reason: Offline) {
        let (was, w, h) = {
            let mut s = lock(&self.inner.status);
            (std::mem::replace(&mut s.online, false), s.width, s.height)
        };
        if was {
            self.notify();
        }
        let until = Instant::now() + Duration::from_secs_f64(self.inner.cfg.error_delay.clamp(0.05, 60.0));
        loop {
            let data = lock(&self.inner.blanks).get(reason, w, h);
            let seq = self.inner.seq.fetch_add(1, Ordering::SeqCst) + 1;
            self.publish(Jpeg::blank(seq, data, w, h, monotonic()));
            let next = Instant::now() + Duration::from_secs(1);
            while Instant::now() < next.min(until) {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if Instant::now() >= until {
                return;
            }
        }
    }

    /// uStreamer's `/state` result.
    pub fn ustate(&self) -> UState {
        let i = &self.inner;
        let now = monotonic();
        let s = lock(&i.status).clone();
        let running = self.running();
        let active = lock(&i.active).clone();
        let clients_stat = lock(&i.clients)
            .iter()
            .map(|(id, c)| {
                (
                    id.clone(),
                    ClientStat {
                        fps: c.fps.get(now),
                        extra_headers: c.flags.extra_headers,
                        advance_headers: c.flags.advance_headers,
                        dual_final_frames: c.flags.dual_final_frames,
                        zero_data: c.flags.zero_data,
                        key: c.key.clone(),
                    },
                )
            })
            .collect::<Vec<_>>();
        UState {
            instance_id: i.cfg.instance_id.clone(),
            encoder: EncoderState {
                r#type: if s.format == Some(PixelFormat::Mjpeg) { "HW" } else { "CPU" },
                quality: self.quality(),
            },
            sinks: i.cfg.report_jpeg_sink.then_some(Sinks { jpeg: SinkState { has_clients: false } }),
            source: SourceState {
                resolution: Resolution { width: s.width, height: s.height },
                online: running && s.online,
                desired_fps: active.desired_fps,
                captured_fps: if running { s.captured.get(now) } else { 0 },
            },
            stream: StreamState {
                queued_fps: s.queued.get(now),
                clients: i.stream_clients.load(Ordering::SeqCst) as u32,
                clients_stat: ClientsStat(clients_stat),
            },
        }
    }
}

/// The same-frame state of the capture loop.
#[derive(Default)]
struct Dedup {
    /// Geometry, sampled-lines digest and XXH3-128 digest of the last frame handed on.
    last: Option<(Geometry, u128, u128)>,
    dropped: u32,
    last_changed: bool,
    last_expose: f64,
    errors: u64,
}

impl Dedup {
    fn remember(&mut self, g: Geometry, sample: u128, digest: u128) {
        self.last = Some((g, sample, digest));
        self.dropped = 0;
        self.last_changed = true;
        self.last_expose = monotonic();
    }
}

/// uStreamer's `/state` result, fields in its order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UState {
    /// `--instance-id`.
    pub instance_id: String,
    /// The encoder.
    pub encoder: EncoderState,
    /// Memory sinks (kvmd's shape only; kvmd-rs has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sinks: Option<Sinks>,
    /// The capture.
    pub source: SourceState,
    /// The HTTP stream.
    pub stream: StreamState,
}

/// `encoder`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EncoderState {
    /// `CPU` or `HW` (MJPEG pass-through).
    pub r#type: &'static str,
    /// JPEG quality.
    pub quality: u8,
}

/// `sinks`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sinks {
    /// `jpeg`.
    pub jpeg: SinkState,
}

/// One sink.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SinkState {
    /// Readers within the client TTL.
    pub has_clients: bool,
}

/// `source`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SourceState {
    /// The last frame's size.
    pub resolution: Resolution,
    /// `false` while blanks are served.
    pub online: bool,
    /// The fps limit.
    pub desired_fps: u32,
    /// Frames grabbed in the previous second.
    pub captured_fps: u32,
}

/// `width`, `height`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Resolution {
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

/// `stream`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamState {
    /// Publications that reached clients in the previous second.
    pub queued_fps: u32,
    /// Open `/stream` connections.
    pub clients: u32,
    /// Per client.
    pub clients_stat: ClientsStat,
}

/// `clients_stat`: an object keyed by client id, in connection order.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientsStat(pub Vec<(String, ClientStat)>);

impl Serialize for ClientsStat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// One client.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClientStat {
    /// Frames handed to its socket in the previous second.
    pub fps: u32,
    /// Its flags.
    pub extra_headers: bool,
    /// See `extra_headers`.
    pub advance_headers: bool,
    /// See `extra_headers`.
    pub dual_final_frames: bool,
    /// See `extra_headers`.
    pub zero_data: bool,
    /// Its `key`, or `"0"`.
    pub key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fps_counts_the_previous_whole_second() {
        let mut f = Fps::default();
        for i in 0..30 {
            f.tick(100.0 + f64::from(i) / 30.0);
        }
        assert_eq!(f.get(100.9), 0, "nothing complete yet");
        assert_eq!(f.get(101.2), 30);
        f.tick(101.5);
        assert_eq!(f.get(101.6), 30);
        assert_eq!(f.get(103.0), 0, "stale after two seconds");
    }

    #[test]
    fn resolutions_parse() {
        assert_eq!(parse_resolution("1920x1080"), Some((1920, 1080)));
        assert_eq!(parse_resolution("1920"), None);
        assert_eq!(parse_resolution("ax1"), None);
    }
}
