//! A synthetic test-pattern source: a desktop-like picture (gradient wallpaper, windows
//! full of text in light and dark themes, a taskbar with a clock), YUYV like a capture
//! card, at a set frame rate. With `motion` a block moves every frame (every frame
//! differs); without it only the clock changes, once a second (a static desktop).

use std::time::{Duration, Instant};

use crate::frame::{Geometry, PixelFormat, RawRef, monotonic};
use crate::source::{GrabError, Source, Wanted};

/// The test pattern.
#[derive(Debug)]
pub struct Pattern {
    width: u32,
    height: u32,
    fps: u32,
    motion: bool,
    clock_on: bool,
    base: Vec<u8>,
    buf: Vec<u8>,
    next: Option<Instant>,
    frame: u64,
    box_x: Option<usize>,
    clock: u64,
}

const TEXT: &str = "The quick brown fox jumps over the lazy dog. kvmd-rs streams this desktop as MJPEG; \
    fn main() { let frame = capture(); encode(frame); } 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ ";

impl Pattern {
    /// A pattern of `width`×`height` at `fps` (0 = as fast as possible), with the clock.
    pub fn new(width: u32, height: u32, fps: u32, motion: bool) -> Self {
        Self {
            width,
            height,
            fps,
            motion,
            clock_on: true,
            base: Vec::new(),
            buf: Vec::new(),
            next: None,
            frame: 0,
            box_x: None,
            clock: u64::MAX,
        }
    }

    /// Without the clock: a fully static picture unless `motion`.
    pub fn without_clock(mut self) -> Self {
        self.clock_on = false;
        self
    }

    fn stride(&self) -> usize {
        self.width as usize * 2
    }

    fn render_base(&mut self) {
        let (w, h, stride) = (self.width as usize, self.height as usize, self.stride());
        let mut b = vec![0u8; stride * h];
        // Wallpaper: a vertical gradient from deep blue to teal.
        for y in 0..h {
            let yv = 40 + (y * 100 / h.max(1)) as u8;
            let (u, v) = (160u8, (100 + (y * 30 / h.max(1))) as u8);
            fill(&mut b, stride, 0, y, w, 1, yv, u, v);
        }
        // Windows: light and dark themes, full of text.
        let windows = [(w / 20, h / 12, w * 9 / 20, h * 5 / 8, true), (w / 2, h / 8, w * 9 / 20, h / 2, false)];
        let mut k = 0usize;
        for (x0, y0, ww, wh, light) in windows {
            let (bg, fg) = if light { (235, 20) } else { (35, 220) };
            fill(&mut b, stride, x0, y0, ww, wh, bg, 128, 128);
            fill(&mut b, stride, x0, y0, ww, 24.min(wh), 90, 150, 110);
            let mut ty = y0 + 32;
            while ty + 10 < y0 + wh {
                let chars = (ww.saturating_sub(16)) / 8;
                let line: String = TEXT.chars().cycle().skip(k % TEXT.len()).take(chars).collect();
                k += 17;
                text(&mut b, stride, x0 + 8, ty, &line, 1, fg);
                ty += 12;
            }
        }
        // A chart: a smooth curve over a grid.
        let (cx, cy, cw, ch) = (w / 2, h * 5 / 8 + h / 40, w * 9 / 20, h / 4);
        fill(&mut b, stride, cx, cy, cw, ch, 250, 128, 128);
        for i in 0..cw {
            let t = i as f64 / cw.max(1) as f64;
            let yy = cy + ch / 2 + ((t * 12.0).sin() * (ch as f64 / 3.0)) as usize - ch / 6;
            fill(&mut b, stride, cx + i, yy.min(cy + ch - 2), 1, 2, 60, 200, 90);
        }
        // Taskbar.
        fill(&mut b, stride, 0, h.saturating_sub(40), w, 40.min(h), 55, 128, 128);
        text(&mut b, stride, 16, h.saturating_sub(28), "kvmd-rs test pattern", 2, 230);
        self.buf.clone_from(&b);
        self.base = b;
    }

    fn restore(&mut self, x: usize, y: usize, w: usize, h: usize) {
        let stride = self.stride();
        for row in y..(y + h).min(self.height as usize) {
            let a = row * stride + x * 2;
            let e = (a + w * 2).min(row * stride + stride);
            self.buf[a..e].copy_from_slice(&self.base[a..e]);
        }
    }

    fn update(&mut self) {
        let (w, h, stride) = (self.width as usize, self.height as usize, self.stride());
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if self.clock_on && secs != self.clock {
            self.clock = secs;
            let clock = format!("{:02}:{:02}:{:02}", (secs / 3600) % 24, (secs / 60) % 60, secs % 60);
            let x = w.saturating_sub(8 * 2 * 9);
            self.restore(x, h.saturating_sub(36), 8 * 2 * 9, 32);
            text(&mut self.buf, stride, x, h.saturating_sub(28), &clock, 2, 230);
        }
        if self.motion {
            let size = 64.min(w / 4).min(h / 4).max(2);
            let y = h / 2;
            if let Some(old) = self.box_x {
                self.restore(old, y, size, size);
            }
            let span = w.saturating_sub(size).max(1);
            let x = ((self.frame as usize * 8) % span) & !1;
            fill(&mut self.buf, stride, x, y, size, size, 200, 60, 200);
            let label = format!("{}", self.frame);
            text(&mut self.buf, stride, x + 4, y + 4, &label, 1, 16);
            self.box_x = Some(x);
        }
        self.frame += 1;
    }
}

/// Fills a rectangle of a YUYV picture (x and w are rounded to pixel pairs).
#[allow(clippy::too_many_arguments)]
fn fill(b: &mut [u8], stride: usize, x: usize, y: usize, w: usize, h: usize, yv: u8, u: u8, v: u8) {
    let width = stride / 2;
    let (x0, x1) = (x & !1, ((x + w + 1) & !1).min(width));
    for row in y..y + h {
        let Some(line) = b.get_mut(row * stride..row * stride + stride) else { return };
        for px in (x0..x1).step_by(2) {
            line[px * 2..px * 2 + 4].copy_from_slice(&[yv, u, yv, v]);
        }
    }
}

/// Draws text with the 8x8 font (luma only), `scale` pixels per font pixel.
fn text(b: &mut [u8], stride: usize, x: usize, y: usize, s: &str, scale: usize, yv: u8) {
    let width = stride / 2;
    crate::blank::for_each_dot(s, scale, |dx, dy| {
        for px in (x + dx..x + dx + scale).filter(|&px| px < width) {
            if let Some(p) = b.get_mut((y + dy) * stride + px * 2) {
                *p = yv;
            }
        }
    });
}

impl Source for Pattern {
    fn open(&mut self, wanted: Wanted) -> Result<Geometry, GrabError> {
        if wanted.width >= 16 && wanted.height >= 16 && (wanted.width, wanted.height) != (self.width, self.height) {
            // Like a capture card told another mode: the picture follows the resolution asked for.
            (self.width, self.height) = (wanted.width & !1, wanted.height);
            self.base.clear();
            self.box_x = None;
            self.clock = u64::MAX;
        }
        if self.base.is_empty() {
            self.render_base();
        }
        self.next = None;
        Ok(self.geometry())
    }

    fn grab(&mut self) -> Result<Option<RawRef<'_>>, GrabError> {
        if self.fps > 0 {
            let period = Duration::from_secs_f64(1.0 / f64::from(self.fps));
            let now = Instant::now();
            let due = self.next.unwrap_or(now);
            if due > now {
                std::thread::sleep(due - now);
            }
            // Never try to catch up a backlog: the next frame is one period from now at worst.
            self.next = Some((due + period).max(Instant::now()));
        }
        let grab_begin = monotonic();
        self.update();
        let geometry = self.geometry();
        Ok(Some(RawRef { data: &self.buf, geometry, grab_begin, grab_end: monotonic() }))
    }

    fn close(&mut self) {}
}

impl Pattern {
    fn geometry(&self) -> Geometry {
        Geometry { width: self.width, height: self.height, stride: self.width * 2, format: PixelFormat::Yuyv }
    }
}
