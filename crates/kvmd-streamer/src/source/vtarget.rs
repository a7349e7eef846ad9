//! The virtual target's screen (`kvmd-vtarget`, demo and tests): YUYV frames pushed over
//! a unix stream socket, each behind a 24-byte header (`KVTF`, sequence, width, height,
//! `YUYV`), like a capture card that always sends. A 0×0 header without pixels is the
//! target powered off: no signal.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::frame::{Geometry, PixelFormat, RawRef, monotonic};
use crate::source::{GrabError, Offline, Source, Wanted};

const HEADER: usize = 24;

/// The virtual target's screen socket.
#[derive(Debug)]
pub struct Vtarget {
    path: PathBuf,
    timeout: Duration,
    conn: Option<UnixStream>,
    buf: Vec<u8>,
}

impl Vtarget {
    /// The screen at `path`.
    pub fn new(path: PathBuf, timeout: Duration) -> Self {
        Self { path, timeout, conn: None, buf: Vec::new() }
    }
}

impl Source for Vtarget {
    fn open(&mut self, wanted: Wanted) -> Result<Geometry, GrabError> {
        let c = UnixStream::connect(&self.path).map_err(|e| GrabError::new(Offline::NoDevice, e))?;
        c.set_read_timeout(Some(self.timeout)).map_err(|e| GrabError::new(Offline::NoDevice, e))?;
        self.conn = Some(c);
        Ok(Geometry { width: wanted.width, height: wanted.height, stride: wanted.width * 2, format: PixelFormat::Yuyv })
    }

    fn grab(&mut self) -> Result<Option<RawRef<'_>>, GrabError> {
        let Some(c) = self.conn.as_mut() else { return Err(GrabError::new(Offline::NoDevice, "not open")) };
        let mut h = [0u8; HEADER];
        c.read_exact(&mut h).map_err(|e| GrabError::new(Offline::Generic, format!("screen: {e}")))?;
        let grab_begin = monotonic();
        if &h[..4] != b"KVTF" || &h[20..24] != b"YUYV" {
            return Err(GrabError::new(Offline::Generic, "screen: bad frame header"));
        }
        let w = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
        let hh = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
        if (w, hh) == (0, 0) {
            return Err(GrabError::new(Offline::NoSignal, "screen: no signal (the target is off)"));
        }
        if !(2..=8192).contains(&w) || !(2..=8192).contains(&hh) {
            return Err(GrabError::new(Offline::Unsupported, format!("screen: {w}x{hh}")));
        }
        self.buf.resize(w as usize * hh as usize * 2, 0);
        c.read_exact(&mut self.buf).map_err(|e| GrabError::new(Offline::Generic, format!("screen: {e}")))?;
        let geometry = Geometry { width: w, height: hh, stride: w * 2, format: PixelFormat::Yuyv };
        Ok(Some(RawRef { data: &self.buf, geometry, grab_begin, grab_end: monotonic() }))
    }

    fn close(&mut self) {
        self.conn = None;
    }
}
