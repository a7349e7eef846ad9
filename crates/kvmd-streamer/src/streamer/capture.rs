//! The capture pipeline: `workers` threads taking turns at the source. The one holding it
//! grabs, checks for the same frame, and deinterleaves a changed frame into its own
//! planes; it then releases the source and encodes on its own core. Without a picture it
//! shows the reason's blank.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Streamer, lock};
use crate::config::SourceKind;
use crate::encode::{Encoder, I420, RowDigest, frame_digest, sample_digest};
use crate::frame::{Geometry, Jpeg, Kind, PixelFormat, RawRef, monotonic};
use crate::source::{Offline, Source, Wanted};

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
    /// Someone waits for its JPEG (else only H.264 does).
    jpeg: bool,
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

impl Streamer {
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

    /// Capture: `workers` threads take turns at the source (leader/follower). The one
    /// holding the source grabs a frame, checks it against the last one and, when it
    /// changed, deinterleaves it into its own planes; then it lets the source go to the
    /// next thread and encodes on its own core, with the planes still in its cache. No
    /// frame is copied or queued: when every thread is busy encoding, the source simply
    /// is not read (a capture card keeps its newest frames meanwhile). A thread that cannot
    /// be spawned stops the others and ends [`Streamer::run`] with the error.
    pub(super) fn capture_main(&self, stop: &AtomicBool) {
        let shared = Mutex::new(Shared {
            source: self.make_source(),
            open: false,
            dedup: Dedup::default(),
            next_due: 0.0,
            last_error: String::new(),
        });
        let quality = self.quality();
        std::thread::scope(|scope| {
            if lock(&self.inner.active).h264_bitrate.is_some() {
                let spawned = std::thread::Builder::new().name("h264".into()).spawn_scoped(scope, move || {
                    let settings = || {
                        let a = lock(&self.inner.active);
                        let fps = if a.desired_fps > 0 { a.desired_fps } else { self.inner.cfg.source.fps };
                        Some(crate::h264::encoder::Settings {
                            bitrate: a.h264_bitrate?,
                            gop: a.h264_gop.unwrap_or(0),
                            fps: fps.clamp(1, 60),
                        })
                    };
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        crate::h264::run_worker(&self.inner.h264, stop, &settings);
                    }));
                    if run.is_err() {
                        tracing::error!("the H.264 thread panicked");
                        self.fail(anyhow::anyhow!("the H.264 thread panicked"));
                    }
                });
                if let Err(e) = spawned {
                    stop.store(true, Ordering::SeqCst);
                    self.fail(anyhow::Error::new(e).context("cannot spawn the H.264 thread"));
                    return;
                }
            }
            for n in 0..self.inner.workers {
                let shared = &shared;
                let spawned = std::thread::Builder::new().name(format!("capture-{n}")).spawn_scoped(scope, move || {
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.capture_thread(stop, shared, quality);
                    }));
                    if run.is_err() {
                        tracing::error!("a capture thread panicked; the others go on");
                    }
                });
                if let Err(e) = spawned {
                    // Capture cannot run as configured: stop the threads already running
                    // and end the service (the controller returns the error).
                    stop.store(true, Ordering::SeqCst);
                    self.fail(anyhow::Error::new(e).context(format!("cannot spawn capture thread {n}")));
                    break;
                }
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
            if f.planes {
                i.h264.offer(&own.planes, true, f.grab_begin);
            }
            if !f.jpeg {
                i.in_flight.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
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
        if !self.jpeg_wanted() && !dedup.jpeg_stale {
            // Only H.264 is watched: JPEGs are not made, so the last one goes stale; the
            // first JPEG viewer gets the next frame encoded even when it did not change.
            dedup.jpeg_stale = true;
            i.latest.send_replace(None);
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
        let jpeg = self.jpeg_wanted();
        let same = same && !(jpeg && st.jpeg_stale);
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
        if jpeg {
            st.jpeg_stale = false;
        } else if !planes {
            return None; // H.264 takes planes only
        }
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
            jpeg,
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
        let mut h264_blank = None;
        loop {
            if self.inner.h264.clients() > 0 {
                let pic = h264_blank.get_or_insert_with(|| {
                    let mut p = crate::encode::I420::default();
                    let _ = p.fill_luma(&crate::blank::render(reason.text(), w, h), w, h);
                    p
                });
                self.inner.h264.offer(pic, false, monotonic());
            }
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
    /// No JPEG was made of the last frame (only H.264 was watched).
    jpeg_stale: bool,
}

impl Dedup {
    fn remember(&mut self, g: Geometry, sample: u128, digest: u128) {
        self.last = Some((g, sample, digest));
        self.dropped = 0;
        self.last_changed = true;
        self.last_expose = monotonic();
    }
}
