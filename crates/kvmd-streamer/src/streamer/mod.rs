//! The streamer: demand, lifecycle, capture, encoding, and the shared latest frame.
//!
//! ```text
//! capture threads 1..N, taking turns at the source (leader/follower):
//!
//!  holding the source                                        source released
//!  ──────────────────────────────────────────────────────    ──────────────────
//!  grab ─► same frame? ─changed─► YUYV/UYVY → I420 planes ─► mozjpeg encode on ─► publish ─► latest
//!          (digests of the │      (this thread's own)        this thread's core   (newest    frame
//!           raw bytes)     │                                                       seq wins) (watch)
//!                          ├─unchanged: re-publish the last JPEG (no encode) ──────►┤
//!                          └─changed MJPEG: published as is ───────────────────────►┤
//!  no source, no signal: the reason's blank, once a second ────────────────────────►┘
//!
//!  changed YUYV/UYVY frame, H.264 read: its I420 planes also go to the H.264 thread
//!  (crate::h264, one OpenH264 encode for every reader of /streamer/h264); with only
//!  H.264 read, no JPEG is made.
//! ```
//!
//! Capture runs while someone watches: a `/stream` client, a `/snapshot` waiter, a
//! `/streamer/feed?stream=1` subscriber (kvmd-hid's `/ws` sessions with `stream=1`), or
//! `forever`; it stops `shutdown_delay` seconds after the last one left. Encoding runs
//! only while a stream client or a snapshot waits. The thread that grabbed a changed frame
//! lets the source go to the next thread before it encodes, so up to N frames are encoded
//! at once, each on its own core; when all N are encoding, the source is not read. Every
//! consumer shares the newest [`Jpeg`](crate::frame::Jpeg) (a `tokio::sync::watch`): a
//! slow client skips frames and never delays the others or grows memory. A frame whose
//! encode finishes after a newer one was published is discarded (the newest `seq` wins).
//!
//! # Layout
//! - `controller`: [`Streamer`]: demand and its guards, parameters (`set_params`, applied
//!   with a restart), starting and stopping capture, snapshots.
//! - `capture`: the capture threads: the source, the same-frame check, deinterleaving,
//!   encoding and publication, the offline blanks.
//! - `state`: uStreamer's `/state` result ([`UState`]).
//! - here: what they share ([`Fps`], the lock helper).

mod capture;
mod controller;
mod state;

use std::sync::{Mutex, MutexGuard, PoisonError};

pub(crate) use controller::supervise;
pub use controller::{ClientFlags, DemandGuard, Params, Saved, Streamer, parse_resolution};
pub use state::{
    ClientStat, ClientsStat, EncoderState, H264State, Resolution, SinkState, Sinks, SourceState, StreamState, UState,
};

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
}
