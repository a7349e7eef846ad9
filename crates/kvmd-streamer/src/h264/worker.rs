//! The H.264 encoder thread: runs beside the capture threads while capture runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;

use super::encoder::{OpenH264, Settings, VideoEncoder};
use super::{H264, Picture, Unit, lock};
use crate::frame::monotonic;

/// A still picture is encoded again (a P frame of a few bytes) this often, so decoders and
/// statistics see a live stream.
const KEEPALIVE: f64 = 1.0;

/// Encodes until `stop`: the newest offered picture, or the last one again when a key frame
/// is asked for or the keep-alive is due. `settings` gives what to encode with now (read
/// before every frame: a change makes a new encoder, whose first frame is an IDR).
pub(crate) fn run(h: &H264, stop: &AtomicBool, settings: &dyn Fn() -> Option<Settings>) {
    let mut enc: Option<Box<dyn VideoEncoder>> = None;
    let mut last: Option<Picture> = None;
    let mut last_online = None;
    let mut last_encode = 0.0f64;
    let epoch = monotonic();
    let mut errors = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let fresh = {
            let mut slot = lock(&h.slot);
            if slot.fresh.is_none() && !h.key.load(Ordering::SeqCst) {
                let wait = if last.is_some() && h.clients() > 0 { 0.1 } else { 0.25 };
                slot = h
                    .wake
                    .wait_timeout(slot, Duration::from_secs_f64(wait))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            slot.fresh.take()
        };
        if h.clients() == 0 {
            // Nobody reads: forget the encoder and the picture (the next reader starts fresh).
            enc = None;
            if let Some(p) = last.take() {
                h.recycle(p);
            }
            if let Some(p) = fresh {
                h.recycle(p);
            }
            last_online = None;
            continue;
        }
        let Some(want) = settings() else { continue };
        let now = monotonic();
        let mut key = false;
        if let Some(p) = fresh {
            if let Some(old) = last.replace(p) {
                h.recycle(old);
            }
        } else if !h.key.load(Ordering::SeqCst) && now - last_encode < KEEPALIVE {
            continue;
        }
        let Some(pic) = last.as_ref() else { continue };
        if h.key.swap(false, Ordering::SeqCst) {
            key = true;
        }
        if last_online != Some(pic.online) {
            key = true;
            last_online = Some(pic.online);
        }
        if enc.as_ref().is_none_or(|e| e.settings() != want) {
            match OpenH264::new(want) {
                Ok(e) => enc = Some(Box::new(e)),
                Err(e) => {
                    errors += 1;
                    if errors.is_power_of_two() {
                        tracing::error!(error = %e, errors, "no H.264 encoder");
                    }
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            }
            key = true;
        }
        let (Some(e), Some(planes)) = (enc.as_mut(), pic.planes.planes()) else { continue };
        let ms = ((now - epoch) * 1000.0) as u64;
        match e.encode(planes, ms, key) {
            Ok(Some(out)) => {
                last_encode = now;
                h.publish(
                    Unit {
                        data: Bytes::from(out.data),
                        key: out.key,
                        online: pic.online,
                        gop: want.gop,
                        grab_begin: if pic.online { pic.grab_begin } else { now },
                    },
                    now,
                );
            }
            Ok(None) => last_encode = now,
            Err(err) => {
                errors += 1;
                if errors.is_power_of_two() {
                    tracing::warn!(error = %err, errors, "H.264 frame not encoded");
                }
                // A broken encoder state: start over with a key frame.
                enc = None;
            }
        }
    }
}
