//! H.264 encoders behind one trait: OpenH264 (software, built from source by its crate).
//! A V4L2 M2M hardware encoder would be a second implementation.

use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile, QpRange, RateControlMode,
    UsageType,
};
use openh264::formats::YUVSource;

use crate::encode::Planes;

/// How to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// kbps.
    pub bitrate: u32,
    /// Frames between key frames (0: only the first and those asked for).
    pub gop: u32,
    /// The frame rate rate control plans for.
    pub fps: u32,
}

/// One encoded picture.
#[derive(Debug)]
pub struct Encoded {
    /// Annex B, start codes included; SPS and PPS before an IDR.
    pub data: Vec<u8>,
    /// An IDR.
    pub key: bool,
}

/// An H.264 encoder: Constrained Baseline, one access unit per picture.
pub trait VideoEncoder: Send {
    /// Encodes `pic` captured at `ms` (milliseconds, increasing; rate control reads them);
    /// `key` asks for an IDR. `None`: the encoder skipped the picture.
    fn encode(&mut self, pic: Planes<'_>, ms: u64, key: bool) -> anyhow::Result<Option<Encoded>>;
    /// What it was made with.
    fn settings(&self) -> Settings;
}

/// OpenH264 for screens: bitrate rate control, no frame skipping (a skipped frame of a
/// desktop can be the one change for seconds), QP 16..40, single slice.
pub struct OpenH264 {
    enc: Encoder,
    settings: Settings,
}

impl OpenH264 {
    /// An encoder for `settings`.
    pub fn new(settings: Settings) -> anyhow::Result<Self> {
        let cfg = EncoderConfig::new()
            .bitrate(BitRate::from_bps(settings.bitrate.saturating_mul(1000)))
            .rate_control_mode(RateControlMode::Bitrate)
            .max_frame_rate(FrameRate::from_hz(settings.fps.clamp(1, 60) as f32))
            .profile(Profile::Baseline)
            .intra_frame_period(IntraFramePeriod::from_num_frames(settings.gop))
            .skip_frames(false)
            .usage_type(UsageType::ScreenContentRealTime)
            .scene_change_detect(false)
            .qp(QpRange::new(16, 40))
            .num_threads(1);
        let enc = Encoder::with_api_config(OpenH264API::from_source(), cfg)
            .map_err(|e| anyhow::anyhow!("cannot make the H.264 encoder: {e}"))?;
        Ok(Self { enc, settings })
    }
}

/// The planes as OpenH264 reads them (even dimensions: the odd last column or line is left out).
struct Source<'a>(Planes<'a>);

impl YUVSource for Source<'_> {
    fn dimensions(&self) -> (usize, usize) {
        ((self.0.width & !1) as usize, (self.0.height & !1) as usize)
    }
    fn strides(&self) -> (usize, usize, usize) {
        (self.0.y_stride, self.0.c_stride, self.0.c_stride)
    }
    fn y(&self) -> &[u8] {
        self.0.y
    }
    fn u(&self) -> &[u8] {
        self.0.u
    }
    fn v(&self) -> &[u8] {
        self.0.v
    }
}

impl VideoEncoder for OpenH264 {
    fn encode(&mut self, pic: Planes<'_>, ms: u64, key: bool) -> anyhow::Result<Option<Encoded>> {
        if key {
            self.enc.force_intra_frame();
        }
        let bs = self
            .enc
            .encode_at(&Source(pic), openh264::Timestamp::from_millis(ms))
            .map_err(|e| anyhow::anyhow!("H.264 encode failed: {e}"))?;
        let ft = bs.frame_type();
        if ft == FrameType::Skip {
            return Ok(None);
        }
        let mut data = Vec::new();
        bs.write_vec(&mut data);
        Ok((!data.is_empty()).then_some(Encoded { data, key: ft == FrameType::IDR }))
    }

    fn settings(&self) -> Settings {
        self.settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::I420;

    /// A gradient, with a bright block at `(mark, mark)` (a small change between pictures).
    fn picture(w: u32, h: u32, mark: u32) -> I420 {
        let mut p = I420::default();
        let luma: Vec<u8> = (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                if (mark..mark + 16).contains(&x) && (mark..mark + 16).contains(&y) {
                    250
                } else {
                    (x % 200) as u8 + 40
                }
            })
            .collect();
        p.fill_luma(&luma, w, h).unwrap_or_else(|e| panic!("{e}"));
        p
    }

    #[test]
    fn encodes_constrained_baseline_with_key_frames_on_request() {
        let mut e = OpenH264::new(Settings { bitrate: 1000, gop: 0, fps: 30 }).unwrap_or_else(|e| panic!("{e}"));
        let p = picture(320, 240, 0);
        let first = e.encode(p.planes().unwrap_or_else(|| panic!("planes")), 0, false);
        let first = first.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("a frame"));
        assert!(first.key, "the first frame is an IDR");
        // SPS first: 00 00 00 01 67, profile_idc 66 (Baseline), constraint_set0+1 (Constrained).
        let sps = first.data.windows(5).position(|w| w == [0, 0, 0, 1, 0x67]).unwrap_or_else(|| panic!("no SPS"));
        assert_eq!(first.data[sps + 5], 66);
        assert_eq!(first.data[sps + 6] & 0xC0, 0xC0);
        let q = picture(320, 240, 7);
        let next = e.encode(q.planes().unwrap_or_else(|| panic!("planes")), 33, false);
        let next = next.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("a frame"));
        assert!(!next.key, "then P frames (gop 0)");
        let same = e.encode(q.planes().unwrap_or_else(|| panic!("planes")), 66, false);
        let same = same.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("a frame"));
        assert!(same.data.len() < 200, "an unchanged picture costs a few bytes: {}", same.data.len());
        let key = e.encode(q.planes().unwrap_or_else(|| panic!("planes")), 99, true);
        let key = key.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("a frame"));
        assert!(key.key, "an IDR when asked");
    }

    #[test]
    fn decodes_back_to_the_picture() {
        let mut e = OpenH264::new(Settings { bitrate: 5000, gop: 30, fps: 30 }).unwrap_or_else(|e| panic!("{e}"));
        let p = picture(64, 48, 40);
        let au = e.encode(p.planes().unwrap_or_else(|| panic!("planes")), 0, false);
        let au = au.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("a frame"));
        let mut d = openh264::decoder::Decoder::new().unwrap_or_else(|e| panic!("{e}"));
        let pic = d.decode(&au.data).unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("a picture"));
        assert_eq!(pic.dimensions(), (64, 48));
        let (sy, _, _) = pic.strides();
        for x in [0usize, 20, 63] {
            let got = i32::from(pic.y()[30 * sy + x]);
            assert!((got - (x as i32 + 40)).abs() <= 6, "luma at {x}: {got}");
        }
    }
}
