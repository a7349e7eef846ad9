//! kvmd-streamer's configuration (`/etc/kvmd/streamer.toml`; layering in `kvmd_core::config`).

use std::path::PathBuf;

use kvmd_core::net::{FrontConfig, SocketConfig, UscConfig};
use serde::{Deserialize, Serialize};

use crate::frame::PixelFormat;

/// The kind of video source.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A V4L2 capture device.
    V4l2,
    /// The synthetic desktop-like test pattern.
    Pattern,
    /// The virtual target's screen (`device` is its socket; demo and tests).
    Vtarget,
}

/// Where the pictures come from (one table: the fields of the other kind are ignored).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// Which source.
    #[serde(rename = "type")]
    pub kind: SourceKind,
    /// V4L2: the device node (udev gives a stable `/dev/kvmd-video`).
    pub device: PathBuf,
    /// V4L2: the pixel format to ask for (the driver may pick another).
    pub format: PixelFormat,
    /// V4L2: MMAP buffers (1..32).
    pub buffers: u32,
    /// V4L2: the video input to select (`VIDIOC_S_INPUT`, uStreamer's `--input`), for
    /// devices with several (a capture card's HDMI and analogue inputs); unset = the
    /// device's current one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<u32>,
    /// V4L2: query and apply DV timings, and follow source-change events (HDMI bridges).
    pub dv_timings: bool,
    /// V4L2: seconds without a frame before the device is reopened.
    pub timeout: f64,
    /// The size to capture when kvmd's resolution parameter is off (and the pattern's
    /// size): pixels.
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// Pattern: frames per second (0 = as fast as possible).
    pub fps: u32,
    /// Pattern: a block moves every frame (every frame differs); otherwise only the
    /// clock changes, once a second.
    pub motion: bool,
    /// Pattern: draw the clock (the once-a-second change of a static desktop).
    pub clock: bool,
}

impl SourceConfig {
    /// `timeout` as a duration, bounded to 0.1..60 s (V4L2 and the virtual target).
    pub fn read_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.timeout.clamp(0.1, 60.0))
    }
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            kind: SourceKind::V4l2,
            device: "/dev/kvmd-video".into(),
            format: PixelFormat::Yuyv,
            buffers: 4,
            input: None,
            dv_timings: false,
            timeout: 1.0,
            width: 1920,
            height: 1080,
            fps: 30,
            motion: false,
            clock: true,
        }
    }
}

/// kvmd's `streamer.*` parameters that `set_params` may change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ParamsConfig {
    /// Initial JPEG quality; `0` turns the quality feature off (kvmd's `quality: 0`,
    /// as on the USB-dongle platforms), the encoder then uses `encoder.quality`.
    pub quality: u8,
    /// Initial desired fps.
    pub desired_fps: u32,
    /// The desired-fps limits.
    pub desired_fps_min: u32,
    /// See `desired_fps_min`.
    pub desired_fps_max: u32,
    /// Initial resolution `WxH`; empty turns the resolution feature off.
    pub resolution: String,
    /// Initial H.264 bitrate in kbps; 0 turns H.264 off (kvmd's `h264_bitrate.default`:
    /// `features.h264` is true exactly when it is not 0).
    pub h264_bitrate: u32,
    /// The H.264 bitrate limits (kvmd's 25 and 20000).
    pub h264_bitrate_min: u32,
    /// See `h264_bitrate_min`.
    pub h264_bitrate_max: u32,
    /// Initial H.264 GOP: frames between key frames, 0 for none but those asked for.
    pub h264_gop: u32,
    /// The GOP limits (kvmd's 0 and 60).
    pub h264_gop_min: u32,
    /// See `h264_gop_min`.
    pub h264_gop_max: u32,
    /// The resolutions `set_params` accepts.
    pub available_resolutions: Vec<String>,
}

impl Default for ParamsConfig {
    fn default() -> Self {
        Self {
            quality: 80,
            desired_fps: 30,
            desired_fps_min: 0,
            desired_fps_max: 90,
            resolution: "1920x1080".into(),
            h264_bitrate: 0,
            h264_bitrate_min: 25,
            h264_bitrate_max: 20000,
            h264_gop: 0,
            h264_gop_min: 0,
            h264_gop_max: 60,
            available_resolutions: [
                "1920x1080",
                "1600x1200",
                "1360x768",
                "1280x1024",
                "1280x960",
                "1280x720",
                "1024x768",
                "800x600",
                "720x576",
                "720x480",
                "640x480",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        }
    }
}

/// The encoder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderConfig {
    /// JPEG quality when the quality feature is off (uStreamer's `--quality`).
    pub quality: u8,
    /// Capture-and-encode threads (they take turns at the source); 0 = one per core.
    pub workers: usize,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self { quality: 80, workers: 0 }
    }
}

/// Everything kvmd-streamer can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where it listens (nginx's `streamer` upstream).
    pub socket: SocketConfig,
    /// HTTP worker threads.
    pub workers: usize,
    /// kvmd-auth's socket, asked about credentials of direct callers.
    pub auth_socket: PathBuf,
    /// Local processes trusted by peer credentials.
    pub usc: UscConfig,
    /// The front, whose identity header is believed.
    pub front: FrontConfig,
    /// The video source.
    pub source: SourceConfig,
    /// The encoder.
    pub encoder: EncoderConfig,
    /// kvmd's stream parameters.
    pub params: ParamsConfig,
    /// uStreamer's `--drop-same-frames` (0..120): identical frames skipped in a row.
    pub drop_same_frames: u32,
    /// uStreamer's `--instance-id` (`/state`, cookie name).
    pub instance_id: String,
    /// Keep capturing without viewers (kvmd's `streamer.forever`).
    pub forever: bool,
    /// Seconds capture goes on after the last viewer left (kvmd: 10).
    pub shutdown_delay: f64,
    /// Seconds between stop and start on a restart (kvmd: 1).
    pub reset_delay: f64,
    /// Seconds before a failed device is reopened (uStreamer's `--device-error-delay`).
    pub error_delay: f64,
    /// Report kvmd's memory-sink block (`sinks.jpeg`) in `/state`, as a PiKVM whose
    /// uStreamer has `--jpeg-sink` does. kvmd-rs has no memory sinks: it always says
    /// `has_clients: false`.
    pub report_jpeg_sink: bool,
    /// `/stream` clients at once (uStreamer has no cap); past it a 503.
    pub max_clients: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            socket: SocketConfig::at("/run/kvmd/streamer.sock"),
            workers: 1,
            auth_socket: "/run/kvmd/auth.sock".into(),
            usc: UscConfig::default(),
            front: FrontConfig::default(),
            source: SourceConfig::default(),
            encoder: EncoderConfig::default(),
            params: ParamsConfig::default(),
            drop_same_frames: 30,
            instance_id: String::new(),
            forever: false,
            shutdown_delay: 10.0,
            reset_delay: 1.0,
            error_delay: 1.0,
            report_jpeg_sink: true,
            max_clients: 32,
        }
    }
}

kvmd_core::service_config!(Config);
