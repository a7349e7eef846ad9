//! JPEG encoding with mozjpeg at its fastest settings (libjpeg-turbo's code path, SIMD).
//!
//! Packed 4:2:2 captures (YUYV, UYVY) are deinterleaved into padded I420 planes and fed
//! to the planar (`raw_data_in`) API: that skips libjpeg's colour conversion and
//! up-front 4:4:4 expansion, the fastest input path measured (STACK.md §11.1). RGB24 and
//! BGR24 go through libjpeg's own SIMD colour conversion. mozjpeg reports libjpeg errors
//! as panics, so every encode runs under `catch_unwind`: a bad frame is an error, never a
//! dead process.

use std::panic::{AssertUnwindSafe, catch_unwind};

use mozjpeg::{ColorSpace, Compress};

use crate::frame::{Geometry, PixelFormat};

/// Why a frame could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The frame is smaller than its geometry says.
    #[error("frame too short: {got} bytes for {width}x{height}")]
    Short {
        /// Bytes given.
        got: usize,
        /// Pixels.
        width: u32,
        /// Pixels.
        height: u32,
    },
    /// libjpeg refused (a panic inside mozjpeg, caught).
    #[error("libjpeg: {0}")]
    Libjpeg(String),
    /// The format is not a raw format.
    #[error("{0:?} frames are not encoded")]
    NotRaw(PixelFormat),
}

/// One encoder's reusable state: its I420 planes and the last output size.
#[derive(Debug, Default)]
pub struct Encoder {
    planes: I420,
    last_size: usize,
}

/// Padded I420 planes of one picture, ready for libjpeg's raw input.
#[derive(Debug, Default, Clone)]
pub struct I420 {
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    width: u32,
    height: u32,
}

/// Padded I420 plane sizes for libjpeg's raw input at 2x2 subsampling:
/// (luma stride, luma rows, chroma stride, chroma rows).
fn plane_dims(width: u32, height: u32) -> (usize, usize, usize, usize) {
    let (w, h) = (width as usize, height as usize);
    // libjpeg's component strides are whole 8-sample blocks (luma ceil(w/8), chroma
    // ceil(w/16) blocks); rows must cover whole 16-row iMCUs or it reads past the end.
    (w.div_ceil(8) * 8, h.div_ceil(16) * 16, w.div_ceil(16) * 8, h.div_ceil(16) * 8)
}

impl Encoder {
    /// Encodes a raw frame at `quality` (1..=100).
    pub fn encode(&mut self, data: &[u8], g: Geometry, quality: u8) -> Result<Vec<u8>, EncodeError> {
        // 4:2:0 planes need 2x2 pixels; libjpeg's own RGB conversion takes a single one
        // (a preview may be that small).
        let min = if matches!(g.format, PixelFormat::Rgb24 | PixelFormat::Bgr24) { 1 } else { 2 };
        if g.width < min || g.height < min || g.width > 16384 || g.height > 16384 {
            return Err(EncodeError::Short { got: data.len(), width: g.width, height: g.height });
        }
        match g.format {
            PixelFormat::Yuyv | PixelFormat::Uyvy => {
                self.planes.fill(data, g)?;
                let out = self.planes.encode(quality, self.last_size)?;
                self.last_size = out.len();
                Ok(out)
            }
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => {
                let row = g.width as usize * 3;
                let stride = g.stride as usize;
                if stride < row || data.len() < stride * (g.height as usize - 1) + row {
                    return Err(EncodeError::Short { got: data.len(), width: g.width, height: g.height });
                }
                let hint = self.last_size;
                let out = guarded(|| encode_rgb(data, g, quality, hint))?;
                self.last_size = out.len();
                Ok(out)
            }
            PixelFormat::Mjpeg => Err(EncodeError::NotRaw(g.format)),
        }
    }

    /// Encodes a grey picture given as one luma byte per pixel (the blank frames).
    pub fn encode_luma(&mut self, luma: &[u8], width: u32, height: u32, quality: u8) -> Result<Vec<u8>, EncodeError> {
        self.planes.fill_luma(luma, width, height)?;
        self.planes.encode(quality, 0)
    }
}

/// The planes of an [`I420`] picture as an encoder reads them.
#[derive(Debug, Clone, Copy)]
pub struct Planes<'a> {
    /// Luma, `y_stride` bytes per line, at least `height` lines.
    pub y: &'a [u8],
    /// Chroma, `c_stride` bytes per line, at least `height / 2` lines.
    pub u: &'a [u8],
    /// See `u`.
    pub v: &'a [u8],
    /// Bytes per luma line.
    pub y_stride: usize,
    /// Bytes per chroma line.
    pub c_stride: usize,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

impl I420 {
    /// The planes (`None` before the first fill).
    pub fn planes(&self) -> Option<Planes<'_>> {
        let (ys, yr, cs, cr) = plane_dims(self.width, self.height);
        if self.width < 2
            || self.height < 2
            || self.y.len() < ys * yr
            || self.u.len() < cs * cr
            || self.v.len() < cs * cr
        {
            return None;
        }
        Some(Planes {
            y: &self.y[..ys * yr],
            u: &self.u[..cs * cr],
            v: &self.v[..cs * cr],
            y_stride: ys,
            c_stride: cs,
            width: self.width,
            height: self.height,
        })
    }

    /// A grey picture from one luma byte per pixel (the blank frames).
    pub fn fill_luma(&mut self, luma: &[u8], width: u32, height: u32) -> Result<(), EncodeError> {
        let (ys, yr, cs, cr) = plane_dims(width, height);
        let (w, h) = (width as usize, height as usize);
        if w < 2 || h < 2 || luma.len() < w * h {
            return Err(EncodeError::Short { got: luma.len(), width, height });
        }
        self.y.clear();
        self.y.resize(ys * yr, 0);
        for (dst, src) in self.y.chunks_exact_mut(ys).zip(luma.chunks_exact(w)) {
            dst[..w].copy_from_slice(src);
        }
        self.u.clear();
        self.u.resize(cs * cr, 128);
        self.v.clear();
        self.v.resize(cs * cr, 128);
        (self.width, self.height) = (width, height);
        Ok(())
    }

    /// Encodes the planes at `quality`; `hint` sizes the output buffer.
    pub fn encode(&self, quality: u8, hint: usize) -> Result<Vec<u8>, EncodeError> {
        let Some(p) = self.planes() else {
            return Err(EncodeError::Short { got: self.y.len(), width: self.width, height: self.height });
        };
        let planes = (p.y, p.u, p.v);
        guarded(|| encode_i420(planes, self.width, self.height, quality, hint))
    }

    /// The picture's size.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Deinterleaves a packed 4:2:2 frame (YUYV, UYVY) into these padded planes
    /// (chroma averaged over two lines).
    pub fn fill(&mut self, data: &[u8], g: Geometry) -> Result<(), EncodeError> {
        self.fill_digest(data, g, None)
    }

    /// [`I420::fill`], feeding every source line to `digest` on the way (while it is in
    /// the cache): the same value as [`frame_digest`] of the frame.
    pub fn fill_digest(
        &mut self,
        data: &[u8],
        g: Geometry,
        mut digest: Option<&mut RowDigest>,
    ) -> Result<(), EncodeError> {
        if !matches!(g.format, PixelFormat::Yuyv | PixelFormat::Uyvy) {
            return Err(EncodeError::NotRaw(g.format));
        }
        let (w, h) = (g.width as usize, g.height as usize);
        let stride = (g.stride as usize).max(w * 2);
        if w < 2 || h < 2 || data.len() < stride * (h - 1) + w * 2 {
            return Err(EncodeError::Short { got: data.len(), width: g.width, height: g.height });
        }
        let (ys, yr, cs, cr) = plane_dims(g.width, g.height);
        (self.width, self.height) = (g.width, g.height);
        self.y.resize(ys * yr, 0);
        self.u.resize(cs * cr, 128);
        self.v.resize(cs * cr, 128);
        let uyvy = g.format == PixelFormat::Uyvy;
        let pairs = w / 2;
        for row in 0..h.div_ceil(2) {
            let r0 = row * 2;
            let r1 = (r0 + 1).min(h - 1);
            let s0 = &data[r0 * stride..r0 * stride + pairs * 4];
            let s1 = &data[r1 * stride..r1 * stride + pairs * 4];
            if let Some(d) = digest.as_deref_mut() {
                d.row(&data[r0 * stride..r0 * stride + w * 2]);
                if r1 != r0 {
                    d.row(&data[r1 * stride..r1 * stride + w * 2]);
                }
            }
            let (y_top, y_rest) = self.y[r0 * ys..].split_at_mut(ys);
            let y_bot = &mut y_rest[..ys];
            let u = &mut self.u[row * cs..row * cs + pairs];
            let v = &mut self.v[row * cs..row * cs + pairs];
            if uyvy {
                row_pair::<1, 0, 3, 2>(s0, s1, &mut y_top[..pairs * 2], &mut y_bot[..pairs * 2], u, v);
            } else {
                row_pair::<0, 1, 2, 3>(s0, s1, &mut y_top[..pairs * 2], &mut y_bot[..pairs * 2], u, v);
            }
            if w % 2 == 1 {
                // An odd width: the last column repeats its left neighbour.
                y_top[w - 1] = y_top[w - 2];
                y_bot[w - 1] = y_bot[w - 2];
            }
        }
        // Padding rows repeat the last line, so the edge blocks stay clean.
        for r in h..yr {
            self.y.copy_within((h - 1) * ys..h * ys, r * ys);
        }
        let ch = h.div_ceil(2);
        for r in ch..cr {
            self.u.copy_within((ch - 1) * cs..ch * cs, r * cs);
            self.v.copy_within((ch - 1) * cs..ch * cs, r * cs);
        }
        Ok(())
    }
}

/// Two packed 4:2:2 lines into two luma lines and one line of each chroma plane. The
/// byte offsets of Y0, U, Y1, V in a macropixel are constants, so the loop compiles to
/// straight shuffles and averages with no bounds checks.
#[inline(always)]
fn row_pair<const Y0: usize, const U: usize, const Y1: usize, const V: usize>(
    s0: &[u8],
    s1: &[u8],
    y_top: &mut [u8],
    y_bot: &mut [u8],
    u: &mut [u8],
    v: &mut [u8],
) {
    let lumas = y_top.chunks_exact_mut(2).zip(y_bot.chunks_exact_mut(2));
    let chromas = u.iter_mut().zip(v.iter_mut());
    for (((a, b), (yt, yb)), (cu, cv)) in s0.chunks_exact(4).zip(s1.chunks_exact(4)).zip(lumas).zip(chromas) {
        yt[0] = a[Y0];
        yt[1] = a[Y1];
        yb[0] = b[Y0];
        yb[1] = b[Y1];
        *cu = ((u16::from(a[U]) + u16::from(b[U]) + 1) >> 1) as u8;
        *cv = ((u16::from(a[V]) + u16::from(b[V]) + 1) >> 1) as u8;
    }
}

fn guarded<T>(f: impl FnOnce() -> std::io::Result<T>) -> Result<T, EncodeError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(EncodeError::Libjpeg(e.to_string())),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panic".into());
            Err(EncodeError::Libjpeg(msg))
        }
    }
}

fn encode_i420(
    planes: (&[u8], &[u8], &[u8]),
    width: u32,
    height: u32,
    quality: u8,
    hint: usize,
) -> std::io::Result<Vec<u8>> {
    let mut c = Compress::new(ColorSpace::JCS_YCbCr);
    c.set_size(width as usize, height as usize);
    c.set_fastest_defaults();
    c.set_quality(f32::from(quality.clamp(1, 100)));
    c.set_raw_data_in(true);
    c.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
    let mut started = c.start_compress(Vec::with_capacity(hint.max(64 * 1024) + hint / 8))?;
    if !started.write_raw_data(&[planes.0, planes.1, planes.2]) {
        return Err(std::io::Error::other("short raw write"));
    }
    started.finish()
}

fn encode_rgb(data: &[u8], g: Geometry, quality: u8, hint: usize) -> std::io::Result<Vec<u8>> {
    let space = if g.format == PixelFormat::Bgr24 { ColorSpace::JCS_EXT_BGR } else { ColorSpace::JCS_RGB };
    let mut c = Compress::new(space);
    c.set_size(g.width as usize, g.height as usize);
    c.set_fastest_defaults();
    c.set_quality(f32::from(quality.clamp(1, 100)));
    c.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
    let mut started = c.start_compress(Vec::with_capacity(hint.max(64 * 1024) + hint / 8))?;
    let row = g.width as usize * 3;
    let stride = g.stride as usize;
    if stride == row {
        started.write_scanlines(&data[..row * g.height as usize])?;
    } else {
        for line in data.chunks(stride).take(g.height as usize) {
            started.write_scanlines(&line[..row])?;
        }
    }
    started.finish()
}

/// A frame digest built line by line: each line's XXH3-64 (one-shot, AVX2 when the CPU
/// has it) folded into two 64-bit lanes. Any one line that changes changes the digest
/// except with probability 2^-64; lines can be fed as they are read for something else.
#[derive(Debug, Clone, Copy)]
pub struct RowDigest {
    a: u64,
    b: u64,
}

impl Default for RowDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl RowDigest {
    /// An empty digest.
    pub const fn new() -> Self {
        Self { a: 0x9E37_79B9_7F4A_7C15, b: 0xC2B2_AE3D_27D4_EB4F }
    }

    /// Adds the next line.
    pub fn row(&mut self, line: &[u8]) {
        let r = twox_hash::XxHash3_64::oneshot(line);
        self.a = self.a.wrapping_mul(0x0000_0100_0000_01B3).wrapping_add(r);
        self.b = (self.b ^ r).rotate_left(23).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    /// The digest.
    pub fn finish(&self) -> u128 {
        (u128::from(self.a) << 64) | u128::from(self.b)
    }
}

/// Bytes of one line of picture (no stride padding), or the whole frame for MJPEG.
fn line_len(g: Geometry) -> usize {
    g.width as usize * g.format.bytes_per_pixel()
}

/// Digest of every `step`-th line of a frame's picture bytes (stride padding left out);
/// compressed frames are one line.
fn lines_digest(data: &[u8], g: Geometry, step: usize) -> u128 {
    let row = line_len(g);
    let stride = g.stride as usize;
    let mut d = RowDigest::new();
    if row == 0 || stride == 0 {
        d.row(data);
        return d.finish();
    }
    for line in data.chunks(stride).take(g.height as usize).step_by(step) {
        d.row(&line[..row.min(line.len())]);
    }
    d.finish()
}

/// The digest of a frame's picture (every line): what the same-frame check compares.
pub fn frame_digest(data: &[u8], g: Geometry) -> u128 {
    lines_digest(data, g, 1)
}

/// A cheap fingerprint of every 8th line: when it differs from the previous frame's, the
/// frame changed, without reading the other seven eighths. Small changes between sampled
/// lines are caught by the full digest, which confirms every "same".
pub fn sample_digest(data: &[u8], g: Geometry) -> u128 {
    lines_digest(data, g, 8)
}

/// Whether libjpeg's SIMD paths are compiled in and usable on this CPU.
///
/// mozjpeg-sys builds without SIMD when nasm is missing and only says so in a hidden
/// build warning; the result is ~3.5x slower. The service logs this at start-up and a
/// test fails on a build without it.
pub fn simd_available() -> bool {
    crate::sys::jsimd_can_fdct_islow()
}
