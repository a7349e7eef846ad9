//! uStreamer's `/state` result: its wire types, fields in its order, and
//! [`Streamer::ustate`], which fills them in.

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::{Streamer, lock};
use crate::frame::{PixelFormat, monotonic};

impl Streamer {
    /// uStreamer's `/state` result.
    pub fn ustate(&self) -> UState {
        let i = &self.inner;
        let now = monotonic();
        let s = lock(&i.status).clone();
        let running = self.running();
        let active = lock(&i.active).clone();
        let clients_stat = lock(&i.clients)
            .iter()
            .map(|(id, c)| {
                (
                    id.clone(),
                    ClientStat {
                        fps: c.fps.get(now),
                        extra_headers: c.flags.extra_headers,
                        advance_headers: c.flags.advance_headers,
                        dual_final_frames: c.flags.dual_final_frames,
                        zero_data: c.flags.zero_data,
                        key: c.key.clone(),
                    },
                )
            })
            .collect::<Vec<_>>();
        UState {
            instance_id: i.cfg.instance_id.clone(),
            encoder: EncoderState {
                r#type: if s.format == Some(PixelFormat::Mjpeg) { "HW" } else { "CPU" },
                quality: self.quality(),
            },
            h264: active.h264_bitrate.map(|bitrate| {
                let (online, fps) = i.h264.stat(now);
                H264State { bitrate, gop: active.h264_gop.unwrap_or(0), online: running && online, fps }
            }),
            sinks: (i.cfg.report_jpeg_sink || active.h264_bitrate.is_some()).then(|| Sinks {
                jpeg: SinkState { has_clients: false },
                h264: active.h264_bitrate.map(|_| SinkState { has_clients: i.h264.clients() > 0 }),
            }),
            source: SourceState {
                resolution: Resolution { width: s.width, height: s.height },
                online: running && s.online,
                desired_fps: active.desired_fps,
                captured_fps: if running { s.captured.get(now) } else { 0 },
            },
            stream: StreamState {
                queued_fps: s.queued.get(now),
                clients: i.stream_clients.load(Ordering::SeqCst) as u32,
                clients_stat: ClientsStat(clients_stat),
            },
        }
    }
}

/// uStreamer's `/state` result, fields in its order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UState {
    /// `--instance-id`.
    pub instance_id: String,
    /// The encoder.
    pub encoder: EncoderState,
    /// The H.264 encoder, when H.264 is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h264: Option<H264State>,
    /// Memory sinks (kvmd's shape; kvmd-rs's H.264 "sink" is its `/streamer/h264` feed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sinks: Option<Sinks>,
    /// The capture.
    pub source: SourceState,
    /// The HTTP stream.
    pub stream: StreamState,
}

/// `encoder`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EncoderState {
    /// `CPU` or `HW` (MJPEG pass-through).
    pub r#type: &'static str,
    /// JPEG quality.
    pub quality: u8,
}

/// `h264`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct H264State {
    /// kbps.
    pub bitrate: u32,
    /// Frames between key frames (0: only those asked for).
    pub gop: u32,
    /// Whether the last encoded frame had a signal.
    pub online: bool,
    /// Frames encoded in the previous second.
    pub fps: u32,
}

/// `sinks`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sinks {
    /// `jpeg`.
    pub jpeg: SinkState,
    /// `h264`, when H.264 is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h264: Option<SinkState>,
}

/// One sink.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SinkState {
    /// Readers within the client TTL.
    pub has_clients: bool,
}

/// `source`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SourceState {
    /// The last frame's size.
    pub resolution: Resolution,
    /// `false` while blanks are served.
    pub online: bool,
    /// The fps limit.
    pub desired_fps: u32,
    /// Frames grabbed in the previous second.
    pub captured_fps: u32,
}

/// `width`, `height`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Resolution {
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

/// `stream`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamState {
    /// Publications that reached clients in the previous second.
    pub queued_fps: u32,
    /// Open `/stream` connections.
    pub clients: u32,
    /// Per client.
    pub clients_stat: ClientsStat,
}

/// `clients_stat`: an object keyed by client id, in connection order.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientsStat(pub Vec<(String, ClientStat)>);

impl Serialize for ClientsStat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// One client.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClientStat {
    /// Frames handed to its socket in the previous second.
    pub fps: u32,
    /// Its flags.
    pub extra_headers: bool,
    /// See `extra_headers`.
    pub advance_headers: bool,
    /// See `extra_headers`.
    pub dual_final_frames: bool,
    /// See `extra_headers`.
    pub zero_data: bool,
    /// Its `key`, or `"0"`.
    pub key: String,
}
