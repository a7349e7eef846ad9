//! The HTTP API of kvmd-streamer: kvmd's `/streamer*` control face, uStreamer's
//! `/state`, `/snapshot`, `/stream` face, the internal state feed for `/ws` and the
//! internal H.264 feed for kvmd-webrtc.

pub mod feed;
pub mod h264;
pub mod kvmd;
pub mod ustreamer;

use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderValue};
use bytes::Bytes;

use crate::frame::{Jpeg, realtime, stamp};

/// uStreamer's no-cache headers.
pub const CACHE_CONTROL: &str =
    "no-store, no-cache, must-revalidate, proxy-revalidate, pre-check=0, post-check=0, max-age=0";
/// See [`CACHE_CONTROL`].
pub const EXPIRES: &str = "Mon, 3 Jan 2000 12:34:56 GMT";

/// An image answer with uStreamer's snapshot headers describing `frame` (the original
/// frame, also for previews), `body` as the picture.
pub fn image_response(frame: &Jpeg, body: Bytes, content_type: &'static str) -> HttpResponse {
    let mut r = HttpResponse::Ok();
    let now = crate::frame::monotonic();
    for (name, value) in [
        ("Cache-Control", CACHE_CONTROL.to_owned()),
        ("Pragma", "no-cache".to_owned()),
        ("Expires", EXPIRES.to_owned()),
        ("X-Timestamp", stamp(realtime())),
        ("X-UStreamer-Online", frame.online.to_string()),
        ("X-UStreamer-Width", frame.width.to_string()),
        ("X-UStreamer-Height", frame.height.to_string()),
        ("X-UStreamer-Grab-Begin-Timestamp", stamp(frame.grab_begin)),
        ("X-UStreamer-Grab-End-Timestamp", stamp(frame.grab_end)),
        ("X-UStreamer-Encode-Begin-Timestamp", stamp(frame.encode_begin)),
        ("X-UStreamer-Encode-End-Timestamp", stamp(frame.encode_end)),
        ("X-UStreamer-Send-Timestamp", stamp(now)),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            r.insert_header((name, v));
        }
    }
    r.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)));
    r.body(body)
}
