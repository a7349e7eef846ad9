//! `/streamer/h264` (internal, not routed by nginx): the H.264 feed kvmd-webrtc reads, in
//! `kvmd_core::h264feed`'s framing; and `/streamer/h264/key`, a key frame asked for.
//! Like uStreamer's H.264 memory sink, it is reachable by whoever may open the socket.
//!
//! A reader starts at a key frame. One that falls behind the shared ring skips to the next
//! key frame (and asks for one) instead of queueing: a delta frame without its reference
//! is of no use to a decoder.

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use kvmd_core::ApiError;
use kvmd_core::envelope::ApiResponse;
use kvmd_core::h264feed::UnitHeader;
use kvmd_core::routes::{Access, Answer, Api, Route};
use kvmd_core::service::CancellationToken;
use tokio::sync::broadcast::error::RecvError;

use crate::streamer::Streamer;

/// The feed's path on the service socket.
pub const PATH: &str = "/streamer/h264";
/// The key-frame request's path.
pub const KEY_PATH: &str = "/streamer/h264/key";

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get(PATH)
            .access(Access::Public)
            .internal()
            .doc("The H.264 access units (Annex B), each after a 16-byte header (kvmd_core::h264feed); capture and the encode run while it is read")
            .answer(Answer::Stream("application/octet-stream")),
        feed,
    )
    .route(
        Route::post(KEY_PATH)
            .access(Access::Public)
            .internal()
            .doc("Asks the H.264 encoder for a key frame (a viewer's PLI or FIR)"),
        key,
    );
}

fn frame(u: &crate::h264::Unit) -> Bytes {
    let header = UnitHeader {
        key: u.key,
        online: u.online,
        gop: u.gop.min(255) as u8,
        len: u.data.len() as u32,
        captured_us: (u.grab_begin.max(0.0) * 1e6) as u64,
    };
    let mut out = Vec::with_capacity(kvmd_core::h264feed::HEADER + u.data.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&u.data);
    Bytes::from(out)
}

async fn feed(
    req: HttpRequest,
    s: web::Data<Streamer>,
    shutdown: web::Data<CancellationToken>,
) -> Result<HttpResponse, ApiError> {
    let s = s.get_ref().clone();
    let Some((mut rx, guard)) = s.h264_join() else {
        return Err(ApiError::operation("StreamerH264NotSupported", "This streamer does not support H264"));
    };
    let mut resp = kvmd_core::service::feed_response(&req, shutdown.get_ref().clone(), move |tx| async move {
        let _guard = guard;
        let mut synced = false;
        loop {
            let unit = match rx.recv().await {
                Ok(u) => u,
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(lost = n, "an H.264 reader fell behind; skipping to a key frame");
                    synced = false;
                    s.h264_key();
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            if !synced && !unit.key {
                continue;
            }
            synced = true;
            if tx.send(frame(&unit)).await.is_err() {
                return;
            }
        }
    });
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    Ok(resp)
}

async fn key(s: web::Data<Streamer>) -> ApiResponse<serde_json::Value> {
    s.h264_key();
    ApiResponse::empty()
}
