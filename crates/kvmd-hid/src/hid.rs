//! The HID task: one owner of the keyboard and mouse state, fed by a queue.
//!
//! Handlers only enqueue ([`Hid::send`]) and answer 200 at once, as kvmd does: write
//! failures never reach HTTP, they turn a device's `online` flag off. The task turns each
//! event into reports ([`crate::report`]) and hands them to the [`HidOutput`]; a report the
//! device did not take is retried every 100 ms (up to 150 times) unless a newer one for the
//! same device replaces it. It also reads the keyboard LEDs, runs the mouse jiggler and, on
//! shutdown, releases everything.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvmd_core::service::CancellationToken;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::backend::{Device, HidOutput};
use crate::config::JigglerConfig;
use crate::keys::Key;
use crate::report::{AbsMouse, Keyboard, RelMouse};

/// One queued input event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A key press (`true`) or release.
    Key(Key, bool),
    /// A mouse button bit pressed or released.
    Button(u8, bool),
    /// An absolute move, API coordinates (ignored while the relative mouse is active).
    MoveTo(i64, i64),
    /// A relative move (ignored while the absolute mouse is active).
    Relative(i8, i8),
    /// A wheel step: horizontal, vertical.
    Wheel(i8, i8),
    /// Switches the active mouse (`true` = relative).
    MouseRelative(bool),
    /// Releases everything on every device.
    Reset,
}

/// State the handlers read without asking the task.
pub struct Shared {
    online: [AtomicBool; 3],
    relative: AtomicBool,
    jiggler_active: AtomicBool,
    leds: AtomicU8,
    last_activity: Mutex<Instant>,
    jiggler: JigglerConfig,
    /// Recent arrival-to-write latencies (µs) of WebSocket input, bounded.
    latencies: Mutex<std::collections::VecDeque<u64>>,
}

/// How many latency samples are kept.
const LATENCY_SAMPLES: usize = 100_000;

fn idx(d: Device) -> usize {
    match d {
        Device::Keyboard => 0,
        Device::Mouse => 1,
        Device::MouseAlt => 2,
    }
}

/// The handle handlers use.
#[derive(Clone)]
pub struct Hid {
    tx: mpsc::Sender<(Event, Option<Instant>)>,
    shared: Arc<Shared>,
    /// Fires when the task has ended (after its final release reports).
    finished: Arc<Mutex<Option<tokio::sync::oneshot::Receiver<()>>>>,
}

/// `GET /hid` (and the WebSocket `hid` event), in kvmd's insertion order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HidState {
    enabled: bool,
    online: bool,
    busy: bool,
    connected: Option<bool>,
    keyboard: KeyboardState,
    mouse: MouseState,
    jiggler: JigglerState,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct KeyboardState {
    online: bool,
    leds: Leds,
    outputs: Outputs,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct Leds {
    caps: bool,
    scroll: bool,
    num: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct Outputs {
    available: Vec<&'static str>,
    active: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct MouseState {
    outputs: Outputs,
    online: bool,
    absolute: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct JigglerState {
    enabled: bool,
    active: bool,
    interval: u64,
}

impl Hid {
    /// Starts the task, on a thread of its own, with `output`.
    pub fn start(output: Arc<dyn HidOutput>, jiggler: JigglerConfig, shutdown: CancellationToken) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        let shared = Arc::new(Shared {
            online: [AtomicBool::new(true), AtomicBool::new(true), AtomicBool::new(true)],
            relative: AtomicBool::new(false),
            jiggler_active: AtomicBool::new(jiggler.active),
            leds: AtomicU8::new(0),
            last_activity: Mutex::new(Instant::now()),
            jiggler,
            latencies: Mutex::new(std::collections::VecDeque::new()),
        });
        // Its own thread: a device write may wait for the host (up to 100 ms, as kvmd's),
        // and nothing else should wait with it.
        let task = Task::new(output, shared.clone());
        let (done, finished) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new().name("hid-task".into()).spawn(move || {
            match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_time().build() {
                Ok(rt) => rt.block_on(task.run(rx, shutdown)),
                Err(e) => tracing::error!(error = %e, "cannot start the HID task"),
            }
            let _ = done.send(());
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the HID thread");
        }
        Self { tx, shared, finished: Arc::new(Mutex::new(Some(finished))) }
    }

    /// Waits (at most `limit`) for the task to end after shutdown: its final release
    /// reports are written by then.
    pub async fn finished(&self, limit: Duration) {
        let rx = self.finished.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(rx) = rx
            && tokio::time::timeout(limit, rx).await.is_err()
        {
            tracing::warn!("the HID task did not finish its release reports in time");
        }
    }

    /// Queues an event and counts it as activity.
    pub async fn send(&self, e: Event) {
        self.send_at(e, None).await;
    }

    /// Queues an event that arrived at `arrival` (WebSocket input): the task records how
    /// long it took from there to the report's write ([`Hid::input_latency`]).
    pub async fn send_at(&self, e: Event, arrival: Option<Instant>) {
        self.touch();
        if self.tx.send((e, arrival)).await.is_err() {
            tracing::error!("the HID task has stopped");
        }
    }

    /// Arrival-to-write latencies of recent WebSocket input, in microseconds:
    /// (samples, p50, p99, max); `reset` clears them.
    pub fn input_latency(&self, reset: bool) -> (usize, u64, u64, u64) {
        let mut l = self.shared.latencies.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut v: Vec<u64> = l.iter().copied().collect();
        if reset {
            l.clear();
        }
        drop(l);
        v.sort_unstable();
        let pick = |q: f64| v.get(((v.len() as f64 * q).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0);
        (v.len(), pick(0.5), pick(0.99), v.last().copied().unwrap_or(0))
    }

    /// Marks HID activity now (inactivity, jiggler).
    pub fn touch(&self) {
        *self.shared.last_activity.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
    }

    /// Whole seconds since the last HID event.
    pub fn inactivity(&self) -> u64 {
        self.shared.last_activity.lock().unwrap_or_else(std::sync::PoisonError::into_inner).elapsed().as_secs()
    }

    /// Whether the relative mouse is the active one.
    pub fn relative(&self) -> bool {
        self.shared.relative.load(Ordering::SeqCst)
    }

    /// Sets `jiggler.active` (ignored when the jiggler is disabled in the config).
    pub fn set_jiggler(&self, active: bool) {
        if self.shared.jiggler.enabled {
            self.shared.jiggler_active.store(active, Ordering::SeqCst);
        }
    }

    /// The state object.
    pub fn state(&self) -> HidState {
        let s = &self.shared;
        let leds = s.leds.load(Ordering::SeqCst);
        let relative = s.relative.load(Ordering::SeqCst);
        let mouse_online =
            s.online[idx(if relative { Device::MouseAlt } else { Device::Mouse })].load(Ordering::SeqCst);
        HidState {
            enabled: true,
            online: true,
            busy: false,
            connected: None,
            keyboard: KeyboardState {
                online: s.online[0].load(Ordering::SeqCst),
                leds: Leds { caps: leds & 2 != 0, scroll: leds & 4 != 0, num: leds & 1 != 0 },
                outputs: Outputs { available: vec![], active: "" },
            },
            mouse: MouseState {
                outputs: Outputs {
                    available: vec!["usb", "usb_rel"],
                    active: if relative { "usb_rel" } else { "usb" },
                },
                online: mouse_online,
                absolute: !relative,
            },
            jiggler: JigglerState {
                enabled: s.jiggler.enabled,
                active: s.jiggler_active.load(Ordering::SeqCst),
                interval: s.jiggler.interval,
            },
        }
    }
}

const RETRIES: u32 = 150;

struct Task {
    out: Arc<dyn HidOutput>,
    shared: Arc<Shared>,
    keyboard: Keyboard,
    abs: AbsMouse,
    rel: RelMouse,
    /// The last absolute position in API coordinates, for the jiggler.
    pos: (i64, i64),
    pending: [Option<(Vec<u8>, u32)>; 3],
}

impl Task {
    fn new(out: Arc<dyn HidOutput>, shared: Arc<Shared>) -> Self {
        Self {
            out,
            shared,
            keyboard: Keyboard::default(),
            abs: AbsMouse::default(),
            rel: RelMouse::default(),
            pos: (0, 0),
            pending: [None, None, None],
        }
    }

    fn write(&mut self, d: Device, report: &[u8]) {
        let ok = self.out.write(d, report);
        self.shared.online[idx(d)].store(ok, Ordering::SeqCst);
        self.pending[idx(d)] = (!ok).then(|| (report.to_vec(), RETRIES));
    }

    fn retry(&mut self) {
        for d in Device::ALL {
            let Some((report, left)) = self.pending[idx(d)].take() else { continue };
            let ok = self.out.write(d, &report);
            self.shared.online[idx(d)].store(ok, Ordering::SeqCst);
            if !ok && left > 1 {
                self.pending[idx(d)] = Some((report, left - 1));
            }
        }
    }

    fn relative(&self) -> bool {
        self.shared.relative.load(Ordering::SeqCst)
    }

    fn handle(&mut self, e: Event) {
        match e {
            Event::Key(key, pressed) => {
                for r in self.keyboard.apply(key, pressed) {
                    self.write(Device::Keyboard, &r);
                }
            }
            Event::Button(bit, pressed) => {
                if self.relative() {
                    for r in self.rel.button(bit, pressed) {
                        self.write(Device::MouseAlt, &r);
                    }
                } else {
                    for r in self.abs.button(bit, pressed) {
                        self.write(Device::Mouse, &r);
                    }
                }
            }
            Event::MoveTo(x, y) => {
                if !self.relative() {
                    self.pos = (x, y);
                    let r = self.abs.move_to(x, y);
                    self.write(Device::Mouse, &r);
                }
            }
            Event::Relative(dx, dy) => {
                if self.relative() {
                    let r = self.rel.report(dx, dy, 0, 0);
                    self.write(Device::MouseAlt, &r);
                }
            }
            Event::Wheel(h, v) => {
                if self.relative() {
                    let r = self.rel.report(0, 0, v, h);
                    self.write(Device::MouseAlt, &r);
                } else {
                    let r = self.abs.report(v, h);
                    self.write(Device::Mouse, &r);
                }
            }
            Event::MouseRelative(to_rel) => {
                if to_rel != self.relative() {
                    // kvmd releases everything on the old mouse before switching.
                    if to_rel {
                        let r = self.abs.release_all();
                        self.write(Device::Mouse, &r);
                    } else {
                        let r = self.rel.release_all();
                        self.write(Device::MouseAlt, &r);
                    }
                    self.shared.relative.store(to_rel, Ordering::SeqCst);
                }
            }
            Event::Reset => self.release_all(),
        }
    }

    fn release_all(&mut self) {
        let k = self.keyboard.release_all();
        self.write(Device::Keyboard, &k);
        let m = self.abs.release_all();
        self.write(Device::Mouse, &m);
        let r = self.rel.release_all();
        self.write(Device::MouseAlt, &r);
    }

    /// kvmd's jiggler moves: absolute, 11 moves around the last position ending on it;
    /// relative, 10 moves of (±10, ±10). Played one per 100 ms tick.
    fn jiggle_steps(&self) -> std::collections::VecDeque<Event> {
        if self.relative() {
            (0..10).map(|i| if i % 2 == 0 { Event::Relative(10, 10) } else { Event::Relative(-10, -10) }).collect()
        } else {
            let (x, y) = self.pos;
            (0..11)
                .map(|i| {
                    let d = if i == 10 {
                        0
                    } else if i % 2 == 0 {
                        100
                    } else {
                        -100
                    };
                    Event::MoveTo(x + d, y + d)
                })
                .collect()
        }
    }

    /// The next jiggler interval: a random whole number of seconds within ±25 % of the
    /// configured one, at least 1 (kvmd's `systask`).
    fn next_interval(&self) -> Duration {
        use std::hash::{BuildHasher, Hasher};
        let base = self.shared.jiggler.interval.max(1);
        let spread = base / 4;
        let r = std::collections::hash_map::RandomState::new().build_hasher().finish();
        let secs = if spread == 0 { base } else { base - spread + r % (2 * spread + 1) };
        Duration::from_secs(secs.max(1))
    }

    async fn run(mut self, mut rx: mpsc::Receiver<(Event, Option<Instant>)>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut last_jiggle_check = Instant::now();
        // The first interval is 0: a jiggler switched on moves at its next check.
        let mut jiggle_interval = Duration::ZERO;
        let mut last_jiggle = Instant::now();
        let mut steps = std::collections::VecDeque::new();
        let mut batch = Vec::with_capacity(64);
        loop {
            tokio::select! {
                // Everything queued at once: one wake-up for a burst of events.
                n = rx.recv_many(&mut batch, 64) => {
                    if n == 0 {
                        break;
                    }
                    for (e, arrival) in batch.drain(..) {
                        self.handle(e);
                        if let Some(t) = arrival {
                            let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                            let mut l = self.shared.latencies.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            if l.len() >= LATENCY_SAMPLES {
                                l.pop_front();
                            }
                            l.push_back(us);
                        }
                    }
                }
                _ = tick.tick() => {
                    self.retry();
                    // Every tick (kvmd asks whenever its queue is idle): is a host still there?
                    if self.out.host_configured() == Some(false) {
                        for flag in &self.shared.online {
                            flag.store(false, Ordering::SeqCst);
                        }
                    }
                    if let Some(leds) = self.out.read_leds() {
                        self.shared.leds.store(leds, Ordering::SeqCst);
                    }
                    if let Some(step) = steps.pop_front() {
                        self.handle(step);
                        if steps.is_empty() {
                            last_jiggle = Instant::now();
                        }
                    }
                    if last_jiggle_check.elapsed() >= Duration::from_secs(1) {
                        last_jiggle_check = Instant::now();
                        if !self.shared.jiggler_active.load(Ordering::SeqCst) {
                            jiggle_interval = Duration::ZERO;
                            steps.clear();
                        } else if steps.is_empty() {
                            let idle = self.shared.last_activity.lock().unwrap_or_else(std::sync::PoisonError::into_inner).elapsed();
                            if idle >= jiggle_interval && last_jiggle.elapsed() >= jiggle_interval {
                                steps = self.jiggle_steps();
                                jiggle_interval = self.next_interval();
                            }
                        }
                    }
                }
                () = shutdown.cancelled() => break,
            }
        }
        // kvmd releases everything on every device when it stops.
        self.release_all();
    }
}
