//! Snapshot previews: the JPEG decoded, shrunk to fit a box keeping the aspect ratio
//! (Lanczos3, fast_image_resize), re-encoded. PIL's `thumbnail` rounding, as kvmd uses.

use std::panic::{AssertUnwindSafe, catch_unwind};

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::encode::Encoder;
use crate::frame::{Geometry, PixelFormat};

/// kvmd's box: both 0 → original / 5; otherwise 0 means the original size, and each
/// value is capped to the original.
pub fn preview_box(orig: (u32, u32), max_w: u32, max_h: u32) -> (u32, u32) {
    let (ow, oh) = orig;
    if max_w == 0 && max_h == 0 {
        return (ow / 5, oh / 5);
    }
    (if max_w == 0 { ow } else { max_w.min(ow) }, if max_h == 0 { oh } else { max_h.min(oh) })
}

/// The size `orig` shrinks to inside `bx` (never enlarged), as PIL's `thumbnail`.
pub fn fit(orig: (u32, u32), bx: (u32, u32)) -> (u32, u32) {
    let (ow, oh) = (f64::from(orig.0.max(1)), f64::from(orig.1.max(1)));
    let (bw, bh) = (f64::from(bx.0.max(1)), f64::from(bx.1.max(1)));
    let aspect = ow / oh;
    let (w, h) = if bw / bh >= aspect { ((bh * aspect).round(), bh) } else { (bw, (bw / aspect).round()) };
    ((w as u32).clamp(1, orig.0.max(1)), (h as u32).clamp(1, orig.1.max(1)))
}

/// Shrinks `jpeg` to `size` and encodes it at `quality`.
pub fn shrink(jpeg: &[u8], size: (u32, u32), quality: u8) -> anyhow::Result<Vec<u8>> {
    let decoded = catch_unwind(AssertUnwindSafe(|| -> std::io::Result<(u32, u32, Vec<u8>)> {
        let d = mozjpeg::Decompress::new_mem(jpeg)?;
        let mut started = d.rgb()?;
        let (w, h) = (started.width() as u32, started.height() as u32);
        let pixels = started.read_scanlines::<u8>()?;
        started.finish()?;
        Ok((w, h, pixels))
    }))
    .map_err(|_| anyhow::anyhow!("libjpeg could not decode the frame"))??;
    let (w, h, pixels) = decoded;
    let src = Image::from_vec_u8(w, h, pixels, PixelType::U8x3)?;
    let mut dst = Image::new(size.0, size.1, PixelType::U8x3);
    Resizer::new().resize(
        &src,
        &mut dst,
        &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
    )?;
    let g = Geometry { width: size.0, height: size.1, stride: size.0 * 3, format: PixelFormat::Rgb24 };
    Ok(Encoder::default().encode(dst.buffer(), g, quality)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_and_fits_match_the_goldens() {
        let o = (1920, 1080);
        assert_eq!(fit(o, preview_box(o, 320, 0)), (320, 180)); // streamer_snapshot_preview
        assert_eq!(fit(o, preview_box(o, 64, 0)), (64, 36)); // streamer_snapshot_save
        assert_eq!(preview_box(o, 0, 0), (384, 216));
        assert_eq!(preview_box(o, 5000, 0), o);
        assert_eq!(fit(o, (1920, 100)), (178, 100));
    }

    #[test]
    fn tiny_previews_are_jpegs_too() {
        // preview_max_width=2&preview_max_height=2 answered 500 "Internal error".
        let jpeg = crate::blank::Blanks::default().get(crate::source::Offline::NoSignal, 1920, 1080);
        for max in [1, 2, 3, 7] {
            let size = fit((1920, 1080), preview_box((1920, 1080), max, max));
            let out = shrink(&jpeg, size, 80);
            assert!(out.as_ref().is_ok_and(|j| j.starts_with(&[0xFF, 0xD8])), "{max}: {size:?} {:?}", out.err());
        }
    }
}
