//! The encoder, the blanks and the sources, against decoded pictures.

use kvmd_streamer::blank;
use kvmd_streamer::encode::Encoder;
use kvmd_streamer::frame::{Geometry, PixelFormat};
use kvmd_streamer::source::pattern::Pattern;
use kvmd_streamer::source::{Offline, Source, Wanted};

fn decode(jpeg: &[u8]) -> (usize, usize, Vec<u8>) {
    let d = mozjpeg::Decompress::new_mem(jpeg).unwrap_or_else(|e| panic!("{e}"));
    let mut s = d.rgb().unwrap_or_else(|e| panic!("{e}"));
    let (w, h) = (s.width(), s.height());
    let px: Vec<u8> = s.read_scanlines().unwrap_or_else(|e| panic!("{e}"));
    (w, h, px)
}

/// Luma of an RGB pixel (BT.601, full range), as the JPEG's Y.
fn luma(p: &[u8]) -> f64 {
    0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])
}

#[test]
fn the_build_has_libjpeg_simd() {
    // mozjpeg-sys silently builds without SIMD when nasm is missing (~3.5x slower).
    assert!(
        kvmd_streamer::encode::simd_available(),
        "libjpeg was built without SIMD: install nasm, cargo clean -p mozjpeg-sys"
    );
}

fn grab_pattern(w: u32, h: u32, motion: bool) -> (Vec<u8>, Geometry) {
    let mut p = Pattern::new(w, h, 0, motion);
    p.open(Wanted { width: w, height: h }).unwrap_or_else(|e| panic!("{e:?}"));
    let f = p.grab().unwrap_or_else(|e| panic!("{e:?}")).unwrap_or_else(|| panic!("no frame"));
    (f.data.to_vec(), f.geometry)
}

#[test]
fn yuyv_and_uyvy_encode_to_the_same_picture() {
    let (yuyv, g) = grab_pattern(1920, 1080, true);
    let mut enc = Encoder::default();
    let a = enc.encode(&yuyv, g, 80).unwrap_or_else(|e| panic!("{e}"));
    // The same picture as UYVY: swap each byte pair.
    let uyvy: Vec<u8> = yuyv.chunks_exact(2).flat_map(|p| [p[1], p[0]]).collect();
    let b = enc.encode(&uyvy, Geometry { format: PixelFormat::Uyvy, ..g }, 80).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a, b, "UYVY must give the bytes of the same YUYV picture");
    let (w, h, rgb) = decode(&a);
    assert_eq!((w, h), (1920, 1080));
    // Decoded luma follows the source luma (the Y bytes of YUYV) closely.
    let mut err = 0.0;
    let mut n = 0.0;
    for y in (0..1080).step_by(7) {
        for x in (0..1920).step_by(5) {
            let src = f64::from(yuyv[y * 3840 + x * 2]);
            err += (luma(&rgb[(y * 1920 + x) * 3..]) - src).abs();
            n += 1.0;
        }
    }
    assert!(err / n < 6.0, "mean luma error {}", err / n);
}

#[test]
fn odd_sizes_encode() {
    for (w, h) in [(1366, 768), (642, 481), (16, 16), (1280, 720)] {
        let (data, g) = grab_pattern(w, h, false);
        let jpeg = Encoder::default().encode(&data, g, 80).unwrap_or_else(|e| panic!("{w}x{h}: {e}"));
        let (dw, dh, _) = decode(&jpeg);
        assert_eq!((dw as u32, dh as u32), (g.width, h), "{w}x{h}");
    }
}

#[test]
fn rgb_and_bgr_keep_their_colours() {
    let (w, h) = (64u32, 32u32);
    let rgb: Vec<u8> = (0..w * h).flat_map(|_| [220u8, 30, 40]).collect();
    let g = Geometry { width: w, height: h, stride: w * 3, format: PixelFormat::Rgb24 };
    let (_, _, px) = decode(&Encoder::default().encode(&rgb, g, 90).unwrap_or_else(|e| panic!("{e}")));
    assert!(px[0] > 180 && px[1] < 80 && px[2] < 80, "{:?}", &px[..3]);
    let bgr: Vec<u8> = rgb.chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
    let g = Geometry { format: PixelFormat::Bgr24, ..g };
    let (_, _, px) = decode(&Encoder::default().encode(&bgr, g, 90).unwrap_or_else(|e| panic!("{e}")));
    assert!(px[0] > 180 && px[1] < 80 && px[2] < 80, "{:?}", &px[..3]);
}

#[test]
fn short_or_compressed_frames_are_errors_not_panics() {
    let g = Geometry { width: 1920, height: 1080, stride: 3840, format: PixelFormat::Yuyv };
    assert!(Encoder::default().encode(&[0u8; 1000], g, 80).is_err());
    let g = Geometry { width: 100, height: 100, stride: 300, format: PixelFormat::Rgb24 };
    assert!(Encoder::default().encode(&[0u8; 299], g, 80).is_err());
    let g = Geometry { format: PixelFormat::Mjpeg, ..g };
    assert!(Encoder::default().encode(&[0u8; 30000], g, 80).is_err());
}

#[test]
fn blanks_show_white_text_on_black_at_the_size() {
    let luma = blank::render(Offline::NoSignal.text(), 1920, 1080);
    assert_eq!(luma.len(), 1920 * 1080);
    let white = luma.iter().filter(|&&v| v == 0xFF).count();
    assert!(white > 5_000, "text is drawn ({white} white pixels)");
    assert!(luma[..1920 * 100].iter().all(|&v| v == 0), "the top is black");
    let mut b = blank::Blanks::default();
    let jpeg = b.get(Offline::NoDevice, 1920, 1080);
    let (w, h, _) = decode(&jpeg);
    assert_eq!((w, h), (1920, 1080));
    assert_eq!(b.get(Offline::NoDevice, 1920, 1080), jpeg, "cached");
}

#[test]
fn the_pattern_moves_only_with_motion() {
    let mut still = Pattern::new(320, 240, 0, false);
    still.open(Wanted { width: 320, height: 240 }).unwrap_or_else(|e| panic!("{e:?}"));
    let frames: Vec<Vec<u8>> =
        (0..3).map(|_| still.grab().ok().flatten().map(|f| f.data.to_vec()).unwrap_or_default()).collect();
    // The clock may tick once between grabs; two of three consecutive frames are equal.
    assert!(frames[0] == frames[1] || frames[1] == frames[2]);
    let mut moving = Pattern::new(320, 240, 0, true);
    moving.open(Wanted { width: 320, height: 240 }).unwrap_or_else(|e| panic!("{e:?}"));
    let a = moving.grab().ok().flatten().map(|f| f.data.to_vec()).unwrap_or_default();
    let b = moving.grab().ok().flatten().map(|f| f.data.to_vec()).unwrap_or_default();
    assert_ne!(a, b);
}

#[test]
fn a_missing_device_is_no_capture_device() {
    let mut dev = kvmd_streamer::source::v4l2::V4l2::new(&kvmd_streamer::config::SourceConfig {
        device: "/nonexistent/video".into(),
        format: PixelFormat::Yuyv,
        dv_timings: true,
        ..Default::default()
    });
    let err = dev.open(Wanted { width: 1920, height: 1080 }).err().unwrap_or_else(|| panic!("opened"));
    assert_eq!(err.reason, Offline::NoDevice);
    assert_eq!(err.reason.text(), "< NO CAPTURE DEVICE >");
    assert!(dev.grab().is_err());
}

mod props {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Any geometry and any bytes: an encode returns, it never panics.
        #[test]
        fn encoding_never_panics(w in 0u32..80, h in 0u32..80, pad in 0u32..8, fmt in 0usize..5, extra in -64i64..64) {
            let format = [PixelFormat::Yuyv, PixelFormat::Uyvy, PixelFormat::Rgb24, PixelFormat::Bgr24, PixelFormat::Mjpeg][fmt];
            let stride = w * format.bytes_per_pixel() as u32 + pad;
            // Around the exact size the geometry needs, so real encodes run too.
            let need = i64::from(stride) * i64::from(h);
            let data = vec![0x5Au8; usize::try_from(need + extra).unwrap_or(0)];
            let _ = Encoder::default().encode(&data, Geometry { width: w, height: h, stride, format }, 80);
        }
    }
}

#[test]
fn the_digest_taken_while_converting_is_the_frame_digest() {
    use kvmd_streamer::encode::{I420, RowDigest, frame_digest, sample_digest};
    for (w, h) in [(1920u32, 1080u32), (642, 481), (64, 33)] {
        let (data, g) = grab_pattern(w, h, true);
        let mut planes = I420::default();
        let mut hasher = RowDigest::new();
        planes.fill_digest(&data, g, Some(&mut hasher)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hasher.finish(), frame_digest(&data, g), "{w}x{h}");
        // Stride padding is not part of the picture.
        let padded: Vec<u8> = data.chunks(g.stride as usize).flat_map(|l| l.iter().copied().chain([0xEE; 6])).collect();
        let pg = Geometry { stride: g.stride + 6, ..g };
        assert_eq!(frame_digest(&padded, pg), frame_digest(&data, g));
        assert_eq!(sample_digest(&padded, pg), sample_digest(&data, g));
    }
    // A change on a line the sample skips still changes the full digest.
    let (data, g) = grab_pattern(320, 240, false);
    let mut other = data.clone();
    other[(g.stride * 3) as usize + 10] ^= 0xFF;
    assert_eq!(sample_digest(&data, g), sample_digest(&other, g));
    assert_ne!(frame_digest(&data, g), frame_digest(&other, g));
}
