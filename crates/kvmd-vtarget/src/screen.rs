//! The virtual target's host side: what its keyboard typed and where its mouse points,
//! drawn as a YUYV picture.

/// Which HID node a report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// 8-byte boot keyboard reports.
    Keyboard,
    /// 7-byte absolute mouse reports (0..32767).
    Mouse,
    /// 5-byte relative mouse reports.
    MouseRelative,
}

/// The emulated host's state and picture.
#[derive(Debug)]
pub struct Screen {
    width: u32,
    height: u32,
    lines: Vec<String>,
    keys: [u8; 6],
    caps: bool,
    pointer: (i64, i64),
    buttons: u8,
    reports: u64,
    boots: u64,
    frame: Vec<u8>,
    dirty: bool,
    /// The USB drive's medium, shown at the bottom.
    medium: Option<String>,
}

const SCALE: usize = 2;
const CELL: usize = 8 * SCALE;

/// US layout: the characters of usages 0x04.. (unshifted, shifted).
fn us_char(usage: u8, shift: bool) -> Option<char> {
    const ROW: &[(u8, char, char)] = &[
        (0x2c, ' ', ' '),
        (0x2d, '-', '_'),
        (0x2e, '=', '+'),
        (0x2f, '[', '{'),
        (0x30, ']', '}'),
        (0x31, '\\', '|'),
        (0x33, ';', ':'),
        (0x34, '\'', '"'),
        (0x35, '`', '~'),
        (0x36, ',', '<'),
        (0x37, '.', '>'),
        (0x38, '/', '?'),
    ];
    match usage {
        0x04..=0x1d => {
            let c = (b'a' + usage - 0x04) as char;
            Some(if shift { c.to_ascii_uppercase() } else { c })
        }
        0x1e..=0x27 => {
            let i = usize::from(usage - 0x1e);
            Some(if shift { b"!@#$%^&*()"[i] } else { b"1234567890"[i] } as char)
        }
        _ => ROW.iter().find(|(u, _, _)| *u == usage).map(|(_, a, b)| if shift { *b } else { *a }),
    }
}

impl Screen {
    /// An empty screen of `width`×`height`.
    pub fn new(width: u32, height: u32) -> Self {
        let (width, height) = ((width.max(64)) & !1, height.max(48));
        Self {
            width,
            height,
            lines: vec![String::new()],
            keys: [0; 6],
            caps: false,
            pointer: (i64::from(width) / 2, i64::from(height) / 2),
            buttons: 0,
            reports: 0,
            boots: 0,
            frame: Vec::new(),
            dirty: true,
            medium: None,
        }
    }

    /// The USB drive's medium as the screen shows it, if any.
    pub fn medium(&self) -> Option<&str> {
        self.medium.as_deref()
    }

    /// The drive now holds this (a line to show), or nothing.
    pub fn set_medium(&mut self, medium: Option<String>) {
        self.medium = medium;
        self.dirty = true;
    }

    /// Pixels.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The typed text, one string per line.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// Where the pointer is, in pixels, and the buttons held.
    pub fn pointer(&self) -> ((i64, i64), u8) {
        (self.pointer, self.buttons)
    }

    /// Applies one report; returns the keyboard LED byte when it changed.
    pub fn input(&mut self, kind: Input, r: &[u8]) -> Option<u8> {
        self.reports += 1;
        self.dirty = true;
        match kind {
            Input::Keyboard if r.len() == 8 => {
                let shift = (r[0] & 0x22 != 0) != self.caps;
                let mut leds = None;
                for &k in &r[2..8] {
                    if k == 0 || self.keys.contains(&k) {
                        continue;
                    }
                    match k {
                        0x28 => self.lines.push(String::new()),
                        0x2a => {
                            let last = self.lines.last_mut().map(String::pop);
                            if last == Some(None) && self.lines.len() > 1 {
                                self.lines.pop();
                            }
                        }
                        0x39 => {
                            self.caps = !self.caps;
                            leds = Some(if self.caps { 0x02 } else { 0x00 });
                        }
                        _ => {
                            let letter = (0x04..=0x1d).contains(&k);
                            let s = if letter { shift } else { r[0] & 0x22 != 0 };
                            if let Some(c) = us_char(k, s)
                                && let Some(l) = self.lines.last_mut()
                            {
                                l.push(c);
                            }
                        }
                    }
                }
                self.keys.copy_from_slice(&r[2..8]);
                let rows = (self.height as usize / CELL).saturating_sub(4).max(1);
                let cols = (self.width as usize / CELL).saturating_sub(2).max(1);
                if self.lines.last().is_some_and(|l| l.len() >= cols) {
                    self.lines.push(String::new());
                }
                while self.lines.len() > rows {
                    self.lines.remove(0);
                }
                leds
            }
            Input::Mouse if r.len() == 7 => {
                let x = i64::from(u16::from_le_bytes([r[1], r[2]]));
                let y = i64::from(u16::from_le_bytes([r[3], r[4]]));
                self.buttons = r[0];
                self.pointer = (x * i64::from(self.width - 1) / 32767, y * i64::from(self.height - 1) / 32767);
                None
            }
            Input::MouseRelative if r.len() == 5 => {
                self.buttons = r[0];
                let (dx, dy) = (i64::from(r[1] as i8), i64::from(r[2] as i8));
                self.pointer = (
                    (self.pointer.0 + dx).clamp(0, i64::from(self.width) - 1),
                    (self.pointer.1 + dy).clamp(0, i64::from(self.height) - 1),
                );
                None
            }
            _ => None,
        }
    }

    /// The board's power changed: a boot or reboot starts the screen over, a shutdown
    /// says so (powered off, the screen sends no signal at all: [`crate::run`]).
    pub fn power(&mut self, change: crate::power::Change) {
        use crate::power::Change;
        self.dirty = true;
        match change {
            Change::Boot | Change::Reboot => {
                self.boots += 1;
                let what = if change == Change::Boot { "Powered on" } else { "Reset" };
                self.lines = vec![format!("{what}: boot {}", self.boots), String::new()];
                self.keys = [0; 6];
            }
            Change::ShuttingDown => {
                self.lines.push("Shutting down...".into());
                self.lines.push(String::new());
            }
            Change::Off => {}
        }
    }

    /// The picture (YUYV), redrawn when something changed.
    pub fn frame(&mut self) -> &[u8] {
        if self.dirty {
            self.render();
            self.dirty = false;
        }
        &self.frame
    }

    fn render(&mut self) {
        let (w, h) = (self.width as usize, self.height as usize);
        let stride = w * 2;
        self.frame.clear();
        self.frame.resize(stride * h, 0);
        fill(&mut self.frame, stride, 0, 0, w, h, 24, 128, 128);
        fill(&mut self.frame, stride, 0, 0, w, CELL + 8, 60, 150, 110);
        let title = format!(
            "kvmd-rs virtual target  {}x{}  caps:{}  reports:{}",
            w,
            h,
            if self.caps { "on" } else { "off" },
            self.reports
        );
        text(&mut self.frame, stride, 8, 4, &title, 230);
        for (i, line) in self.lines.iter().enumerate() {
            let y = CELL + 16 + i * CELL;
            let shown = if i + 1 == self.lines.len() { format!("{line}_") } else { line.clone() };
            text(&mut self.frame, stride, CELL, y, &shown, 220);
        }
        if let Some(m) = &self.medium {
            fill(&mut self.frame, stride, 0, h - CELL - 8, w, CELL + 8, 60, 110, 150);
            text(&mut self.frame, stride, 8, h - CELL - 4, m, 230);
        }
        // The pointer: a filled arrow, red-tinted while a button is held.
        let (px, py) = (self.pointer.0.max(0) as usize, self.pointer.1.max(0) as usize);
        let (u, v) = if self.buttons != 0 { (90, 240) } else { (128, 128) };
        for dy in 0..16usize {
            let span = (dy * 10 / 16).max(1);
            fill(&mut self.frame, stride, px, py + dy, span + 1, 1, 250, u, v);
        }
    }
}

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

fn text(b: &mut [u8], stride: usize, x: usize, y: usize, s: &str, yv: u8) {
    let width = stride / 2;
    for (i, ch) in s.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY.get(ch as usize).copied().unwrap_or([0; 8]);
        for (gy, bits) in glyph.iter().enumerate() {
            for gx in 0..8 {
                if bits & (1 << gx) == 0 {
                    continue;
                }
                for dy in 0..SCALE {
                    for dx in 0..SCALE {
                        let px = x + (i * 8 + gx) * SCALE + dx;
                        if px < width
                            && let Some(p) = b.get_mut((y + gy * SCALE + dy) * stride + px * 2)
                        {
                            *p = yv;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_and_pointing() {
        let mut s = Screen::new(640, 480);
        // "Hi" with Shift on H, then Enter and a key held across two reports.
        for r in [
            [0x02, 0, 0x0b, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0x0c, 0, 0, 0, 0, 0],
            [0, 0, 0x0c, 0, 0, 0, 0, 0],
        ] {
            s.input(Input::Keyboard, &r);
        }
        s.input(Input::Keyboard, &[0, 0, 0x28, 0, 0, 0, 0, 0]);
        s.input(Input::Keyboard, &[0, 0, 0x1e, 0, 0, 0, 0, 0]);
        assert_eq!(s.text(), "Hi\n1");
        // Caps Lock toggles and is reported as the LED byte.
        assert_eq!(s.input(Input::Keyboard, &[0, 0, 0x39, 0, 0, 0, 0, 0]), Some(0x02));
        s.input(Input::Keyboard, &[0, 0, 0x04, 0, 0, 0, 0, 0]);
        assert_eq!(s.text(), "Hi\n1A");
        s.input(Input::Mouse, &[1, 0xFF, 0x7F, 0, 0, 0, 0]);
        assert_eq!(s.pointer(), ((639, 0), 1));
        let a = s.frame().to_vec();
        s.input(Input::MouseRelative, &[0, 0xF6, 10, 0, 0]);
        assert_eq!(s.pointer(), ((629, 10), 0));
        assert_eq!(a.len(), 640 * 480 * 2);
        assert_ne!(a, s.frame());
    }
}
