//! Frames: raw captured pictures, encoded JPEGs, and the clocks they are stamped with.

use bytes::Bytes;

/// The pixel formats a source can deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// Packed 4:2:2, Y0 U Y1 V.
    Yuyv,
    /// Packed 4:2:2, U Y0 V Y1 (the TC358743's usual output).
    Uyvy,
    /// Packed 8-bit R G B.
    Rgb24,
    /// Packed 8-bit B G R.
    Bgr24,
    /// Motion JPEG from the device itself (passed through, never re-encoded).
    Mjpeg,
}

impl PixelFormat {
    /// Bytes per pixel of a packed format (0 for compressed ones).
    pub const fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Yuyv | PixelFormat::Uyvy => 2,
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => 3,
            PixelFormat::Mjpeg => 0,
        }
    }

    /// The V4L2 FourCC.
    pub const fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Uyvy => *b"UYVY",
            PixelFormat::Rgb24 => *b"RGB3",
            PixelFormat::Bgr24 => *b"BGR3",
            PixelFormat::Mjpeg => *b"MJPG",
        }
    }

    /// The format of a V4L2 FourCC (`JPEG` counts as MJPEG).
    pub fn from_fourcc(code: [u8; 4]) -> Option<Self> {
        match &code {
            b"YUYV" => Some(PixelFormat::Yuyv),
            b"UYVY" => Some(PixelFormat::Uyvy),
            b"RGB3" => Some(PixelFormat::Rgb24),
            b"BGR3" => Some(PixelFormat::Bgr24),
            b"MJPG" | b"JPEG" => Some(PixelFormat::Mjpeg),
            _ => None,
        }
    }
}

/// The geometry of raw frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// Bytes per line (≥ width × bytes per pixel; unused for MJPEG).
    pub stride: u32,
    /// Pixel format.
    pub format: PixelFormat,
}

/// A captured picture, borrowed from the source until its next grab.
#[derive(Debug, Clone, Copy)]
pub struct RawRef<'a> {
    /// The bytes (for MJPEG, the compressed frame).
    pub data: &'a [u8],
    /// Its geometry.
    pub geometry: Geometry,
    /// CLOCK_MONOTONIC seconds when the grab started and ended.
    pub grab_begin: f64,
    /// See `grab_begin`.
    pub grab_end: f64,
}

/// Why a frame was published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A picture that differs from the previous one (or a blank).
    New,
    /// The same picture again: the keep-alive resend after N drops or a second.
    Repeat,
    /// The same picture again for `dual_final_frames` clients only: a run of changes ended.
    DualFinal,
}

/// An encoded frame, shared by every consumer.
#[derive(Debug, Clone)]
pub struct Jpeg {
    /// Publication number, increasing.
    pub seq: u64,
    /// The JPEG bytes.
    pub data: Bytes,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// `false` for the blank (no-signal) frames.
    pub online: bool,
    /// CLOCK_MONOTONIC seconds (0 for blanks).
    pub grab_begin: f64,
    /// See `grab_begin`.
    pub grab_end: f64,
    /// CLOCK_MONOTONIC seconds.
    pub encode_begin: f64,
    /// See `encode_begin`.
    pub encode_end: f64,
    /// When the frame was handed to the clients, and when the same-frame check ran.
    pub expose_begin: f64,
    /// See `expose_begin`.
    pub expose_cmp: f64,
    /// See `expose_begin`.
    pub expose_end: f64,
    /// Same-frame drops since the previous publication.
    pub dropped: u32,
    /// Why it was published.
    pub kind: Kind,
}

impl Jpeg {
    /// A blank (no-signal) frame made at monotonic time `now`: no grab times, offline.
    pub fn blank(seq: u64, data: Bytes, width: u32, height: u32, now: f64) -> Self {
        Self {
            seq,
            data,
            width,
            height,
            online: false,
            grab_begin: 0.0,
            grab_end: 0.0,
            encode_begin: now,
            encode_end: now,
            expose_begin: now,
            expose_cmp: now,
            expose_end: now,
            dropped: 0,
            kind: Kind::New,
        }
    }
}

/// CLOCK_MONOTONIC in seconds.
pub fn monotonic() -> f64 {
    clock(nix::time::ClockId::CLOCK_MONOTONIC)
}

/// CLOCK_REALTIME in seconds.
pub fn realtime() -> f64 {
    clock(nix::time::ClockId::CLOCK_REALTIME)
}

fn clock(id: nix::time::ClockId) -> f64 {
    nix::time::clock_gettime(id).map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9).unwrap_or(0.0)
}

/// uStreamer's timestamp form: seconds with six decimals.
pub fn stamp(seconds: f64) -> String {
    format!("{seconds:.6}")
}
