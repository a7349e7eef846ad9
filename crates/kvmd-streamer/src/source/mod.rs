//! Video sources behind one trait: a V4L2 capture device, a synthetic test pattern, and
//! the virtual target's screen.
//!
//! A source is opened, grabs frames (blocking, with a timeout) and is closed. Any grab
//! error ends the session; the capture loop then shows the blank frame for the reason
//! the source gives and reopens it after the error delay, as uStreamer does.

pub mod pattern;
pub mod v4l2;
pub mod vtarget;

use crate::frame::{Geometry, RawRef};

/// Why there is no picture: the text of uStreamer's blank frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Offline {
    /// The device node is missing or unusable.
    NoDevice,
    /// The cable is unplugged or the source is off (`DV_RX_POWER_PRESENT` = 0).
    NoSource,
    /// `QUERY_DV_TIMINGS` says `ENOLINK`.
    NoSignal,
    /// `QUERY_DV_TIMINGS` says `ENOLCK`.
    NoSync,
    /// Timings the receiver cannot handle.
    Unsupported,
    /// Anything else (and what `/snapshot` draws when offline).
    Generic,
}

impl Offline {
    /// The text uStreamer draws.
    pub const fn text(self) -> &'static str {
        match self {
            Offline::NoDevice => "< NO CAPTURE DEVICE >",
            Offline::NoSource => "< NO VIDEO SOURCE >",
            Offline::NoSignal => "< NO SIGNAL DETECTED >",
            Offline::NoSync => "< NO SYNC WITH SIGNAL >",
            Offline::Unsupported => "< UNSUPPORTED SIGNAL TIMINGS >",
            Offline::Generic => "< NO LIVE VIDEO >",
        }
    }
}

/// What the capture loop asks a source for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// The resolution to ask for (DV timings override it).
    pub width: u32,
    /// See `width`.
    pub height: u32,
}

/// A grab failure: the session ends, and the blank says why.
#[derive(Debug)]
pub struct GrabError {
    /// Shown on the blank frame.
    pub reason: Offline,
    /// For the log.
    pub detail: String,
    /// Reopen at once instead of after the error delay (the source changed: the new
    /// signal, or its absence, is known only after a reopen).
    pub reopen_now: bool,
}

impl GrabError {
    /// A failure with a reason and a log message.
    pub fn new(reason: Offline, detail: impl std::fmt::Display) -> Self {
        Self { reason, detail: detail.to_string(), reopen_now: false }
    }

    /// The source changed: reopen at once.
    pub fn source_changed() -> Self {
        Self { reopen_now: true, ..Self::new(Offline::Generic, "source changed") }
    }
}

/// A video source.
pub trait Source: Send {
    /// Opens the source; returns the geometry it will deliver.
    fn open(&mut self, wanted: Wanted) -> Result<Geometry, GrabError>;
    /// Waits for the next frame (up to the source's timeout); `None` for a frame the
    /// source dropped as invalid.
    fn grab(&mut self) -> Result<Option<RawRef<'_>>, GrabError>;
    /// Releases the device.
    fn close(&mut self);
}
