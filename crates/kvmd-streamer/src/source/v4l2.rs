//! A V4L2 capture device through the v4l crate (format negotiation, MMAP streaming),
//! plus raw ioctls (`crate::sys`) for what v4l lacks: input selection, DV timings and
//! source-change events.
//!
//! Tested end to end against `kvmd-v4l2-fake` (an HDMI bridge emulated under LD_PRELOAD):
//! the driver's own format and size win over what was asked, DV timings, ENOLINK/ENOLCK,
//! POLLPRI source-change events with a reopen at once, a node that disappears, MJPEG
//! pass-through with broken frames dropped; and on a real kernel (`tests/vm`, `vivid`):
//! input selection, DV timings, signal loss and a mode change without a restart. Not done: the cable check
//! (`V4L2_CID_DV_RX_POWER_PRESENT`, `< NO VIDEO SOURCE >`) and the TC358743 lanes check
//! (`< UNSUPPORTED SIGNAL TIMINGS >` comes only from zero-sized or out-of-range timings);
//! draining to the newest buffer (v4l re-queues one buffer per `next()`).

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use v4l::buffer::Type;
use v4l::io::mmap::Stream as MmapStream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, FourCC};

use crate::config::SourceConfig;
use crate::frame::{Geometry, PixelFormat, RawRef, monotonic};
use crate::source::{GrabError, Offline, Source, Wanted};

/// uStreamer's `--min-frame-size`: smaller MJPEG frames are dropped.
const MIN_FRAME_SIZE: usize = 128;

/// A V4L2 capture device.
pub struct V4l2 {
    path: PathBuf,
    format: PixelFormat,
    buffers: u32,
    input: Option<u32>,
    dv_timings: bool,
    timeout: Duration,
    session: Option<Session>,
}

struct Session {
    // Field order matters: the stream (its mmaps) goes before the device.
    stream: MmapStream<'static>,
    dev: Device,
    fd: RawFd,
    geometry: Geometry,
    /// v4l queues the buffers and starts streaming on the first `next()`.
    started: bool,
}

impl std::fmt::Debug for V4l2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4l2").field("path", &self.path).field("format", &self.format).finish_non_exhaustive()
    }
}

impl V4l2 {
    /// The device `c` names (its V4L2 fields: device, format, buffers, input, DV timings,
    /// timeout).
    pub fn new(c: &SourceConfig) -> Self {
        Self {
            path: c.device.clone(),
            format: c.format,
            buffers: c.buffers.clamp(1, 32),
            input: c.input,
            dv_timings: c.dv_timings,
            timeout: c.read_timeout(),
            session: None,
        }
    }

    fn open_session(&self, wanted: Wanted) -> Result<Session, GrabError> {
        let dev = Device::with_path(&self.path).map_err(|e| GrabError::new(Offline::NoDevice, e))?;
        let fd = dev.handle().fd();
        let (mut width, mut height) = (wanted.width, wanted.height);
        if let Some(input) = self.input {
            crate::sys::select_input(fd, input)
                .map_err(|e| GrabError::new(Offline::NoDevice, format!("S_INPUT {input}: {e}")))?;
        }
        if self.dv_timings {
            match crate::sys::query_and_set_dv_timings(fd) {
                Ok((w, h)) if w > 0 && h > 0 => (width, height) = (w, h),
                Ok(_) => return Err(GrabError::new(Offline::Unsupported, "zero-sized DV timings")),
                Err(Errno::ENOLINK) => return Err(GrabError::new(Offline::NoSignal, "no signal")),
                Err(Errno::ENOLCK) => return Err(GrabError::new(Offline::NoSync, "no sync")),
                Err(Errno::ERANGE) => return Err(GrabError::new(Offline::Unsupported, "timings out of range")),
                Err(Errno::ENOTTY) => {} // no DV timings on this device: use the resolution asked for
                Err(e) => return Err(GrabError::new(Offline::Generic, format!("QUERY_DV_TIMINGS: {e}"))),
            }
            // The events of the input in use (a device's current one when none is configured).
            let input = self.input.or_else(|| crate::sys::current_input(fd).ok()).unwrap_or(0);
            if let Err(e) = crate::sys::subscribe_source_change(fd, input) {
                tracing::debug!(error = %e, "no source-change events");
            }
        }
        let mut fmt = dev.format().map_err(|e| GrabError::new(Offline::NoDevice, format!("G_FMT: {e}")))?;
        fmt.width = width;
        fmt.height = height;
        fmt.fourcc = FourCC::new(&self.format.fourcc());
        let fmt = dev.set_format(&fmt).map_err(|e| GrabError::new(Offline::Generic, format!("S_FMT: {e}")))?;
        // The driver may choose another format: use what it returned.
        let format = PixelFormat::from_fourcc(fmt.fourcc.repr)
            .ok_or_else(|| GrabError::new(Offline::Generic, format!("unsupported pixel format {}", fmt.fourcc)))?;
        let geometry = Geometry { width: fmt.width, height: fmt.height, stride: fmt.stride, format };
        let mut stream = MmapStream::with_buffers(&dev, Type::VideoCapture, self.buffers)
            .map_err(|e| GrabError::new(Offline::Generic, format!("REQBUFS: {e}")))?;
        stream.set_timeout(self.timeout);
        tracing::info!(device = %self.path.display(), ?geometry, "capture opened");
        Ok(Session { stream, dev, fd, geometry, started: false })
    }
}

fn valid_jpeg(data: &[u8]) -> bool {
    data.len() >= MIN_FRAME_SIZE
        && data.starts_with(&[0xFF, 0xD8])
        && matches!(data[data.len() - 2..], [0xFF, 0xD9] | [0xD9, 0x00] | [0x00, 0x00])
}

impl Source for V4l2 {
    fn open(&mut self, wanted: Wanted) -> Result<Geometry, GrabError> {
        self.close();
        let session = self.open_session(wanted)?;
        let g = session.geometry;
        self.session = Some(session);
        Ok(g)
    }

    fn grab(&mut self) -> Result<Option<RawRef<'_>>, GrabError> {
        let timeout_ms = i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX);
        let Some(s) = self.session.as_mut() else { return Err(GrabError::new(Offline::NoDevice, "not open")) };
        if s.started {
            // Our own poll, for POLLPRI too (v4l's waits for POLLIN only).
            let events = s
                .dev
                .handle()
                .poll(libc::POLLIN | libc::POLLPRI, timeout_ms)
                .map_err(|e| GrabError::new(Offline::Generic, format!("poll: {e}")))?;
            if events == 0 {
                return Err(GrabError::new(Offline::Generic, "capture timeout"));
            }
            // A pending event (POLLPRI) means the source changed: reopen.
            if let Ok(kind) = crate::sys::dequeue_event(s.fd)
                && kind == crate::sys::EVENT_SOURCE_CHANGE
            {
                return Err(GrabError::source_changed());
            }
        }
        s.started = true;
        let grab_begin = monotonic();
        let g = s.geometry;
        let (buf, meta) = s.stream.next().map_err(|e| GrabError::new(Offline::Generic, format!("DQBUF: {e}")))?;
        let data = &buf[..(meta.bytesused as usize).min(buf.len())];
        if g.format == PixelFormat::Mjpeg && !valid_jpeg(data) {
            return Ok(None); // a broken frame is dropped, not fatal
        }
        let ts = meta.timestamp;
        let stamp = ts.sec as f64 + ts.usec as f64 / 1e6;
        let begin = if stamp > 0.0 { stamp } else { grab_begin };
        Ok(Some(RawRef { data, geometry: g, grab_begin: begin, grab_end: monotonic() }))
    }

    fn close(&mut self) {
        if let Some(s) = self.session.take() {
            // v4l's stream panics on drop when STREAMOFF fails with anything but ENODEV.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(s))).is_err() {
                tracing::warn!(device = %self.path.display(), "STREAMOFF failed on close");
            }
        }
    }
}
