//! The HID core: one owner of the keyboard and mouse state, and the delivery of its
//! reports.
//!
//! Handlers call [`Hid::send`] and answer 200 at once, as kvmd does: write failures never
//! reach HTTP, they turn a device's `online` flag off. An event becomes reports
//! ([`crate::report`]) under one lock, in arrival order. A report is written right there,
//! by the caller, when nothing is queued before it and the output can take it without
//! waiting ([`HidOutput::try_write`]); otherwise it is queued for the HID thread, which
//! may wait for the device (an OTG write waits up to 100 ms for the host, as kvmd's). So
//! the common case costs no thread hand-off at all, and a slow device delays nothing but
//! the reports behind it.
//!
//! A report the device did not take is retried every 100 ms (up to 150 times) unless a
//! newer one for the same device replaces it. The thread also reads the keyboard LEDs,
//! runs the mouse jiggler and, when stopped, releases everything.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kvmd_core::service::CancellationToken;

use crate::backend::{Device, HidOutput};
use crate::config::JigglerConfig;
use crate::jiggler::Jiggler;
use crate::keys::Key;
use crate::report::{AbsMouse, Keyboard, RelMouse};
use crate::state::Flags;
pub use crate::state::HidState;

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

/// State the handlers read without asking the HID thread.
pub struct Shared {
    online: [AtomicBool; 3],
    relative: AtomicBool,
    jiggler_active: AtomicBool,
    leds: AtomicU8,
    last_activity: Mutex<Instant>,
    jiggler: JigglerConfig,
    /// Recent arrival-to-write latencies (µs) of WebSocket input, bounded.
    latencies: Mutex<std::collections::VecDeque<u64>>,
    out: Arc<dyn HidOutput>,
    core: Mutex<Core>,
    /// Wakes the HID thread: a report queued, or stop.
    wake: std::sync::Condvar,
    /// Wakes senders waiting for room in the queue.
    room: tokio::sync::Notify,
    /// Bumped by [`Hid::cancel_pastes`]: a paste that sees it change stops.
    paste_epoch: std::sync::atomic::AtomicU64,
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
    shared: Arc<Shared>,
    /// Cancelled when the HID thread has ended, however it ended (a panic included).
    ended: CancellationToken,
    /// Set when the HID thread ended because it was stopped, after its release reports.
    stopped: Arc<AtomicBool>,
}

/// Cancels its token when dropped: at the end of the HID thread, also when it unwinds.
struct OnEnd(CancellationToken);

impl Drop for OnEnd {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl Hid {
    /// Starts the HID thread, with `output`; fails when the thread cannot be spawned.
    pub fn start(output: Arc<dyn HidOutput>, jiggler: JigglerConfig) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            online: [AtomicBool::new(true), AtomicBool::new(true), AtomicBool::new(true)],
            relative: AtomicBool::new(false),
            jiggler_active: AtomicBool::new(jiggler.active),
            leds: AtomicU8::new(0),
            last_activity: Mutex::new(Instant::now()),
            jiggler,
            latencies: Mutex::new(std::collections::VecDeque::new()),
            out: output,
            core: Mutex::new(Core::default()),
            wake: std::sync::Condvar::new(),
            room: tokio::sync::Notify::new(),
            paste_epoch: std::sync::atomic::AtomicU64::new(0),
        });
        let (ended, stopped) = (CancellationToken::new(), Arc::new(AtomicBool::new(false)));
        let (s, on_end, done) = (shared.clone(), OnEnd(ended.clone()), stopped.clone());
        std::thread::Builder::new()
            .name("hid".into())
            .spawn(move || {
                let _on_end = on_end;
                run(&s);
                done.store(true, Ordering::SeqCst);
            })
            .context("cannot start the HID thread")?;
        Ok(Self { shared, ended, stopped })
    }

    /// Whether the HID thread has ended without finishing a stop (it panicked).
    pub fn has_failed(&self) -> bool {
        self.ended.is_cancelled() && !self.stopped.load(Ordering::SeqCst)
    }

    /// Resolves when the HID thread has ended without being stopped (it panicked): the
    /// service cannot deliver input any more and must end.
    pub async fn failed(&self) {
        self.ended.cancelled().await;
        if self.stopped.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }

    /// Stops the HID thread and waits (at most `limit`) for it: it writes what is queued,
    /// then releases everything on every device (as kvmd does when it stops).
    pub async fn stop(&self, limit: Duration) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if tokio::time::timeout(limit, self.ended.cancelled()).await.is_err() {
            tracing::warn!("the HID thread did not finish its release reports in time");
        }
    }

    /// Sends an event and counts it as activity.
    pub async fn send(&self, e: Event) {
        self.send_at(e, None).await;
    }

    /// Sends an event that arrived at `arrival` (WebSocket input): the report's write
    /// records how long it took from there ([`Hid::input_latency`]). Waits while the
    /// queue for the HID thread is full (a paste to a slow host).
    pub async fn send_at(&self, e: Event, arrival: Option<Instant>) {
        self.touch();
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut core = self.shared.lock();
                if core.queue.len() < QUEUE_LIMIT || core.stop {
                    self.shared.dispatch(&mut core, e, arrival);
                    break;
                }
            }
            room.await;
        }
        // A long paste to a device that takes everything at once must still let the
        // worker's other requests run.
        tokio::task::consume_budget().await;
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

    /// The paste generation: a paste notes it when it starts and stops when it changes.
    pub fn paste_epoch(&self) -> u64 {
        self.shared.paste_epoch.load(Ordering::SeqCst)
    }

    /// Stops every running paste (`/hid/reset`), before its next key event.
    pub fn cancel_pastes(&self) {
        self.shared.paste_epoch.fetch_add(1, Ordering::SeqCst);
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
        let relative = s.relative.load(Ordering::SeqCst);
        let mouse = if relative { Device::MouseAlt } else { Device::Mouse };
        HidState::new(Flags {
            keyboard_online: s.online[idx(Device::Keyboard)].load(Ordering::SeqCst),
            mouse_online: s.online[idx(mouse)].load(Ordering::SeqCst),
            leds: s.leds.load(Ordering::SeqCst),
            relative,
            jiggler: &s.jiggler,
            jiggler_active: s.jiggler_active.load(Ordering::SeqCst),
        })
    }
}

const RETRIES: u32 = 150;
/// Reports queued for the HID thread before senders wait.
const QUEUE_LIMIT: usize = 1024;
/// The HID thread's period: retries, LEDs, the host check, the jiggler.
const TICK: Duration = Duration::from_millis(100);

/// A report made and not yet written, with the arrival of the event it ends.
struct Queued {
    device: Device,
    report: Vec<u8>,
    arrival: Option<Instant>,
}

/// The state behind the lock: devices, what is pending and what is queued.
#[derive(Default)]
struct Core {
    keyboard: Keyboard,
    abs: AbsMouse,
    rel: RelMouse,
    /// The last absolute position in API coordinates, for the jiggler.
    pos: (i64, i64),
    /// A report the device did not take, and the retries left.
    pending: [Option<(Vec<u8>, u32)>; 3],
    /// Reports for the HID thread, in order.
    queue: std::collections::VecDeque<Queued>,
    /// The HID thread is writing outside the lock: nothing may overtake it.
    busy: bool,
    stop: bool,
}

impl Core {
    /// The reports of `e`, in order; updates the state.
    fn reports(&mut self, e: Event, relative: &AtomicBool) -> Vec<(Device, Vec<u8>)> {
        let rel = relative.load(Ordering::SeqCst);
        match e {
            Event::Key(key, pressed) => {
                self.keyboard.apply(key, pressed).into_iter().map(|r| (Device::Keyboard, r.to_vec())).collect()
            }
            Event::Button(bit, pressed) => {
                if rel {
                    self.rel.button(bit, pressed).into_iter().map(|r| (Device::MouseAlt, r.to_vec())).collect()
                } else {
                    self.abs.button(bit, pressed).into_iter().map(|r| (Device::Mouse, r.to_vec())).collect()
                }
            }
            Event::MoveTo(x, y) if !rel => {
                self.pos = (x, y);
                vec![(Device::Mouse, self.abs.move_to(x, y).to_vec())]
            }
            Event::Relative(dx, dy) if rel => vec![(Device::MouseAlt, self.rel.report(dx, dy, 0, 0).to_vec())],
            Event::MoveTo(..) | Event::Relative(..) => vec![],
            Event::Wheel(h, v) => {
                if rel {
                    vec![(Device::MouseAlt, self.rel.report(0, 0, v, h).to_vec())]
                } else {
                    vec![(Device::Mouse, self.abs.report(v, h).to_vec())]
                }
            }
            Event::MouseRelative(to_rel) if to_rel != rel => {
                // kvmd releases everything on the old mouse before switching.
                let r = if to_rel {
                    (Device::Mouse, self.abs.release_all().to_vec())
                } else {
                    (Device::MouseAlt, self.rel.release_all().to_vec())
                };
                relative.store(to_rel, Ordering::SeqCst);
                vec![r]
            }
            Event::MouseRelative(_) => vec![],
            Event::Reset => vec![
                (Device::Keyboard, self.keyboard.release_all().to_vec()),
                (Device::Mouse, self.abs.release_all().to_vec()),
                (Device::MouseAlt, self.rel.release_all().to_vec()),
            ],
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Turns `e` into reports and writes them: here, when nothing is queued before them
    /// and the output takes them without waiting; else queued for the HID thread.
    fn dispatch(&self, core: &mut Core, e: Event, arrival: Option<Instant>) {
        let reports = core.reports(e, &self.relative);
        let last = reports.len().saturating_sub(1);
        let mut queued = false;
        for (i, (device, report)) in reports.into_iter().enumerate() {
            let arrival = if i == last { arrival } else { None };
            if core.queue.is_empty()
                && !core.busy
                && let Some(ok) = self.out.try_write(device, &report)
            {
                self.record(core, device, report, ok, arrival);
                continue;
            }
            core.queue.push_back(Queued { device, report, arrival });
            queued = true;
        }
        if queued {
            self.wake.notify_one();
        }
    }

    /// What a write's outcome changes: the device's `online`, its pending retry (a newer
    /// report always replaces it), the input latency.
    fn record(&self, core: &mut Core, device: Device, report: Vec<u8>, ok: bool, arrival: Option<Instant>) {
        self.online[idx(device)].store(ok, Ordering::SeqCst);
        core.pending[idx(device)] = (!ok).then_some((report, RETRIES));
        if let Some(t) = arrival {
            let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
            let mut l = self.latencies.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if l.len() >= LATENCY_SAMPLES {
                l.pop_front();
            }
            l.push_back(us);
        }
    }

    /// Writes the pending reports again (on the HID thread, outside the lock).
    fn retry(&self) {
        let pending: Vec<(Device, Vec<u8>, u32)> = {
            let mut core = self.lock();
            let taken: Vec<_> =
                Device::ALL.iter().filter_map(|&d| core.pending[idx(d)].take().map(|(r, left)| (d, r, left))).collect();
            core.busy = !taken.is_empty();
            taken
        };
        if pending.is_empty() {
            return;
        }
        let results: Vec<_> = pending.into_iter().map(|(d, r, left)| (self.out.write(d, &r), d, r, left)).collect();
        let mut core = self.lock();
        core.busy = false;
        for (ok, d, r, left) in results {
            self.online[idx(d)].store(ok, Ordering::SeqCst);
            if !ok && left > 1 {
                core.pending[idx(d)] = Some((r, left - 1));
            }
        }
    }
}

/// The periodic work: retries, the host check, the LEDs, the jiggler.
fn tick(s: &Shared, jiggler: &mut Jiggler) {
    s.retry();
    // Every tick (kvmd asks whenever its queue is idle): is a host still there?
    if s.out.host_configured() == Some(false) {
        for flag in &s.online {
            flag.store(false, Ordering::SeqCst);
        }
    }
    if let Some(leds) = s.out.read_leds() {
        s.leds.store(leds, Ordering::SeqCst);
    }
    if let Some(step) = jiggler.next_step() {
        s.dispatch(&mut s.lock(), step, None);
    }
    let idle = s.last_activity.lock().unwrap_or_else(std::sync::PoisonError::into_inner).elapsed();
    let (active, relative) = (s.jiggler_active.load(Ordering::SeqCst), s.relative.load(Ordering::SeqCst));
    jiggler.check(active, idle, relative, || s.lock().pos);
}

/// The HID thread: writes queued reports (waiting for the device as long as the output
/// does), ticks every 100 ms, and when stopped writes what is left and releases everything.
fn run(s: &Shared) {
    let now = Instant::now();
    let mut jiggler = Jiggler::new(s.jiggler.interval, now);
    let mut next_tick = now + TICK;
    let mut core = s.lock();
    loop {
        // First, so that a backlog (a paste to a slow host) does not hold the tick up.
        let now = Instant::now();
        if now >= next_tick {
            next_tick = now + TICK;
            drop(core);
            tick(s, &mut jiggler);
            core = s.lock();
            continue;
        }
        if let Some(q) = core.queue.pop_front() {
            core.busy = true;
            let was_full = core.queue.len() + 1 >= QUEUE_LIMIT;
            drop(core);
            if was_full {
                s.room.notify_waiters();
            }
            let ok = s.out.write(q.device, &q.report);
            core = s.lock();
            core.busy = false;
            s.record(&mut core, q.device, q.report, ok, q.arrival);
            continue;
        }
        if core.stop {
            break;
        }
        core = s.wake.wait_timeout(core, next_tick - now).unwrap_or_else(std::sync::PoisonError::into_inner).0;
    }
    let reports = core.reports(Event::Reset, &s.relative);
    core.busy = true;
    drop(core);
    for (d, r) in reports {
        let ok = s.out.write(d, &r);
        s.online[idx(d)].store(ok, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Condvar;

    /// An output whose inline path can be shut (`try_write` answers `None`) and whose
    /// thread path can be held inside `write` until released.
    #[derive(Default)]
    struct Gate {
        inline_ok: AtomicBool,
        state: Mutex<GateState>,
        cv: Condvar,
    }

    #[derive(Default)]
    struct GateState {
        held: bool,
        writing: bool,
        log: Vec<(Device, Vec<u8>, &'static str)>,
    }

    impl Gate {
        fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
            self.state.lock().unwrap()
        }

        fn log(&self) -> Vec<(Device, Vec<u8>, &'static str)> {
            self.lock().log.clone()
        }

        async fn until(&self, what: impl Fn(&GateState) -> bool) {
            for _ in 0..500 {
                if what(&self.lock()) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the gate never got there: {:?}", self.log());
        }
    }

    impl HidOutput for Gate {
        fn write(&self, device: Device, report: &[u8]) -> bool {
            let mut st = self.lock();
            st.writing = true;
            while st.held {
                st = self.cv.wait(st).unwrap();
            }
            st.writing = false;
            st.log.push((device, report.to_vec(), "thread"));
            true
        }

        fn try_write(&self, device: Device, report: &[u8]) -> Option<bool> {
            if !self.inline_ok.load(Ordering::SeqCst) {
                return None;
            }
            self.lock().log.push((device, report.to_vec(), "inline"));
            Some(true)
        }
    }

    fn key(name: &str) -> Key {
        crate::keys::by_name(name).unwrap()
    }

    fn start(gate: &Arc<Gate>) -> Hid {
        Hid::start(gate.clone(), JigglerConfig::default()).unwrap_or_else(|e| panic!("{e:#}"))
    }

    #[tokio::test]
    async fn a_device_that_takes_reports_at_once_gets_them_from_the_sender() {
        let gate = Arc::new(Gate::default());
        gate.inline_ok.store(true, Ordering::SeqCst);
        // The thread could not write anything: it is held.
        gate.lock().held = true;
        let hid = start(&gate);
        hid.send(Event::Key(key("KeyA"), true)).await;
        hid.send(Event::Key(key("KeyA"), false)).await;
        let log = gate.log();
        assert_eq!(log.len(), 2, "{log:?}");
        assert!(log.iter().all(|(d, _, how)| *d == Device::Keyboard && *how == "inline"), "{log:?}");
        assert_eq!(log[0].1, [0, 0, 4, 0, 0, 0, 0, 0]);
        assert_eq!(log[1].1, [0; 8]);
        gate.lock().held = false;
        gate.cv.notify_all();
        hid.stop(Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn a_report_never_overtakes_one_the_thread_is_still_writing() {
        let gate = Arc::new(Gate::default());
        gate.lock().held = true;
        let hid = start(&gate);
        // The device cannot take A now: the thread writes it, and is held inside the write.
        hid.send(Event::Key(key("KeyA"), true)).await;
        gate.until(|st| st.writing).await;
        // Now the device could take B at once, but A is not written yet: B waits behind it.
        gate.inline_ok.store(true, Ordering::SeqCst);
        hid.send(Event::Key(key("KeyB"), true)).await;
        assert!(gate.log().is_empty(), "{:?}", gate.log());
        gate.lock().held = false;
        gate.cv.notify_all();
        gate.until(|st| st.log.len() == 2).await;
        let log = gate.log();
        assert_eq!(log[0], (Device::Keyboard, vec![0, 0, 4, 0, 0, 0, 0, 0], "thread"));
        assert_eq!(log[1], (Device::Keyboard, vec![0, 0, 4, 5, 0, 0, 0, 0], "thread"));
        // With nothing queued any more, the next report goes inline again.
        hid.send(Event::Key(key("KeyB"), false)).await;
        assert_eq!(gate.log()[2], (Device::Keyboard, vec![0, 0, 4, 0, 0, 0, 0, 0], "inline"));
        // Stopping releases everything on every device, last.
        hid.stop(Duration::from_secs(1)).await;
        let log = gate.log();
        let tail: Vec<_> = log[log.len() - 3..].iter().map(|(d, r, _)| (*d, r[0])).collect();
        assert_eq!(tail, [(Device::Keyboard, 0), (Device::Mouse, 0), (Device::MouseAlt, 0)], "no button held");
        assert_eq!(log[log.len() - 3].1, [0; 8], "no key held");
    }

    /// An output whose every write panics.
    struct Panics;

    impl HidOutput for Panics {
        fn write(&self, _device: Device, _report: &[u8]) -> bool {
            panic!("a write that panics (expected by the test)");
        }
    }

    #[tokio::test]
    async fn a_hid_thread_that_dies_is_reported() {
        let hid = Hid::start(Arc::new(Panics), JigglerConfig::default()).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!hid.has_failed());
        hid.send(Event::Key(key("KeyA"), true)).await;
        tokio::time::timeout(Duration::from_secs(5), hid.failed()).await.unwrap_or_else(|_| panic!("not reported"));
        assert!(hid.has_failed());
        // Stopping a dead thread does not wait.
        tokio::time::timeout(Duration::from_millis(100), hid.stop(Duration::from_secs(5)))
            .await
            .unwrap_or_else(|_| panic!("stop waited"));
    }

    #[tokio::test]
    async fn a_stopped_hid_thread_has_not_failed() {
        let hid = start(&Arc::new(Gate::default()));
        hid.stop(Duration::from_secs(1)).await;
        assert!(hid.ended.is_cancelled() && !hid.has_failed());
        assert!(tokio::time::timeout(Duration::from_millis(50), hid.failed()).await.is_err(), "never resolves");
    }
}
