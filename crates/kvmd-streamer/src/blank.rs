//! uStreamer's blank frames: white 8x8-font text on black, at the last resolution,
//! JPEG quality 95, one per reason and size (encoded once, then reused).

use std::collections::HashMap;

use bytes::Bytes;

use crate::encode::Encoder;
use crate::source::Offline;

/// uStreamer's blank quality.
const QUALITY: u8 = 95;

/// Calls `dot(x, y)` for the left end of every lit run of `scale` pixels of `text` in the
/// 8x8 font at `scale` (offsets from the text's top-left corner; each dot is `scale`
/// pixels wide and is called once per pixel row).
pub fn for_each_dot(text: &str, scale: usize, mut dot: impl FnMut(usize, usize)) {
    for (i, ch) in text.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY.get(ch as usize).copied().unwrap_or([0; 8]);
        for (gy, bits) in glyph.iter().enumerate() {
            for gx in (0..8).filter(|gx| bits & (1 << gx) != 0) {
                for dy in 0..scale {
                    dot((i * 8 + gx) * scale, gy * scale + dy);
                }
            }
        }
    }
}

/// The luma picture of a blank: `text` centred, scaled to about half the width.
pub fn render(text: &str, width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let mut luma = vec![0u8; w * h];
    let chars = text.chars().count().max(1);
    let scale = (w / 2 / (chars * 8)).clamp(1, (h / 16).max(1));
    let (tw, th) = (chars * 8 * scale, 8 * scale);
    let (x0, y0) = (w.saturating_sub(tw) / 2, h.saturating_sub(th) / 2);
    for_each_dot(text, scale, |x, y| {
        let (x, y) = (x0 + x, y0 + y);
        if y < h && x + scale <= w {
            luma[y * w + x..y * w + x + scale].fill(0xFF);
        }
    });
    luma
}

/// Encoded blanks by reason and size.
#[derive(Debug, Default)]
pub struct Blanks {
    cache: HashMap<(Offline, u32, u32), Bytes>,
    encoder: Encoder,
}

impl Blanks {
    /// The JPEG of the blank for `reason` at `width`×`height`.
    pub fn get(&mut self, reason: Offline, width: u32, height: u32) -> Bytes {
        if let Some(b) = self.cache.get(&(reason, width, height)) {
            return b.clone();
        }
        let luma = render(reason.text(), width, height);
        let jpeg = match self.encoder.encode_luma(&luma, width, height, QUALITY) {
            Ok(j) => Bytes::from(j),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the blank frame");
                Bytes::new()
            }
        };
        if self.cache.len() > 16 {
            self.cache.clear();
        }
        self.cache.insert((reason, width, height), jpeg.clone());
        jpeg
    }
}
