//! H.264: one encode of the captured pictures, shared by every viewer.
//!
//! ```text
//! capture thread (changed frame, planes filled) ─► offer: copy into a spare picture ─► slot (newest wins)
//!                                                                                        │
//! H.264 thread: newest picture, or the last one again (key frame asked for, keep-alive) ◄┘
//!     ─► encoder (VideoEncoder) ─► Unit ─► broadcast ─► /streamer/h264 readers (kvmd-webrtc)
//! ```
//!
//! Encoding runs only while someone reads the feed. Unchanged pictures are not offered,
//! so a still screen costs nothing but one tiny P frame a second (the stream stays alive
//! for decoders and statistics); a key frame comes with the first picture, when a reader
//! joins or asks (PLI/FIR in kvmd-webrtc), when the signal comes or goes, and every `gop`
//! frames if set. A reader that falls behind the broadcast's ring loses frames: it then
//! skips to the next key frame (and asks for one) rather than queueing.
//!
//! # Layout
//! - here: [`H264`], what the capture threads, the encoder thread and the readers share.
//! - `encoder`: the encoder trait and OpenH264.
//! - `worker`: the encoder thread.

pub mod encoder;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::encode::I420;
use crate::streamer::Fps;

pub(crate) use worker::run as run_worker;

/// Units kept for readers that are a little behind (about two seconds at 30 fps).
const RING: usize = 64;

/// One encoded picture, as the feed sends it.
#[derive(Debug)]
pub struct Unit {
    /// Annex B.
    pub data: Bytes,
    /// An IDR with SPS and PPS.
    pub key: bool,
    /// The picture had a signal.
    pub online: bool,
    /// The GOP it was encoded with.
    pub gop: u32,
    /// CLOCK_MONOTONIC seconds when its capture began.
    pub grab_begin: f64,
}

/// A picture handed to the encoder.
#[derive(Debug, Default)]
pub(crate) struct Picture {
    pub(crate) planes: I420,
    pub(crate) online: bool,
    pub(crate) grab_begin: f64,
}

#[derive(Debug, Default)]
struct Slot {
    fresh: Option<Picture>,
    spare: Vec<Picture>,
}

#[derive(Debug, Default)]
struct Stat {
    online: bool,
    fps: Fps,
}

/// What the capture threads, the encoder thread and the feed's readers share.
#[derive(Debug)]
pub struct H264 {
    slot: Mutex<Slot>,
    wake: Condvar,
    key: AtomicBool,
    clients: AtomicUsize,
    tx: broadcast::Sender<Arc<Unit>>,
    stat: Mutex<Stat>,
}

impl Default for H264 {
    fn default() -> Self {
        Self {
            slot: Mutex::default(),
            wake: Condvar::new(),
            key: AtomicBool::new(false),
            clients: AtomicUsize::new(0),
            tx: broadcast::Sender::new(RING),
            stat: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl H264 {
    /// Readers of the feed.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::SeqCst)
    }

    /// Whether the last encoded picture had a signal, and the encoded fps (previous second).
    pub fn stat(&self, now: f64) -> (bool, u32) {
        let s = lock(&self.stat);
        (s.online, s.fps.get(now))
    }

    /// The next picture to encode: a copy of `planes` (into a spare buffer, no allocation once warm).
    pub(crate) fn offer(&self, planes: &I420, online: bool, grab_begin: f64) {
        if self.clients() == 0 {
            return;
        }
        let mut pic = lock(&self.slot).spare.pop().unwrap_or_default();
        pic.planes.clone_from(planes);
        (pic.online, pic.grab_begin) = (online, grab_begin);
        let mut slot = lock(&self.slot);
        if let Some(old) = slot.fresh.replace(pic) {
            slot.spare.push(old);
        }
        drop(slot);
        self.wake.notify_one();
    }

    /// Asks for a key frame (a PLI or FIR, a reader joining or falling behind).
    pub fn request_key(&self) {
        self.key.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// A receiver of the units from now on, counted as a reader until [`H264::leave`].
    pub(crate) fn join(&self) -> broadcast::Receiver<Arc<Unit>> {
        self.clients.fetch_add(1, Ordering::SeqCst);
        let rx = self.tx.subscribe();
        self.request_key();
        rx
    }

    /// A reader left.
    pub(crate) fn leave(&self) {
        self.clients.fetch_sub(1, Ordering::SeqCst);
        self.wake.notify_one();
    }

    fn publish(&self, unit: Unit, now: f64) {
        {
            let mut s = lock(&self.stat);
            s.online = unit.online;
            s.fps.tick(now);
        }
        let _ = self.tx.send(Arc::new(unit));
    }

    fn recycle(&self, pic: Picture) {
        let mut slot = lock(&self.slot);
        if slot.spare.len() < 2 {
            slot.spare.push(pic);
        }
    }
}
