//! kvmd's control face: `/streamer`, `/streamer/snapshot`, `/streamer/ocr`,
//! `/streamer/set_params`, `/streamer/reset` (spec `streamer-kvmd.md`).

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use kvmd_core::envelope::ApiResponse;
use kvmd_core::query::Query;
use kvmd_core::routes::{Answer, Api, Param, Route, Ty};
use kvmd_core::{ApiError, valid};
use serde::Serialize;

use crate::streamer::{Params, Saved, Streamer, UState, parse_resolution};

const PREVIEW_SIZE: Ty = Ty::at_least(0);
/// kvmd's JPEG quality range (`valid_stream_quality`), for the stream and previews.
const QUALITY: (i64, i64) = (1, 100);
/// kvmd's `valid_stream_fps` range.
const FPS: (i64, i64) = (0, 120);
/// kvmd's `valid_stream_h264_bitrate` range (kbps).
const H264_BITRATE: (i64, i64) = (25, 20_000);
/// kvmd's `valid_stream_h264_gop` range.
const H264_GOP: (i64, i64) = (0, 60);

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get("/streamer")
            .doc("The streamer's state: features, limits, params, uStreamer's state, the saved snapshot")
            .answer(Answer::Envelope("`{features, limits, params, applied, streamer, snapshot}`")),
        state,
    )
    .route(
        Route::get("/streamer/snapshot")
            .doc("A JPEG of the screen (or the saved one), optionally shrunk")
            .params(const { &[
                Param::opt("save", Ty::Bool, "Keep it as the saved snapshot"),
                Param::opt("load", Ty::Bool, "Answer the saved snapshot instead"),
                Param::opt("allow_offline", Ty::Bool, "Answer the no-signal picture too, rather than 503"),
                Param::opt("ocr", Ty::Bool, "Recognise text (not built in: kvmd's `OcrError`)"),
                Param::opt("preview", Ty::Bool, "Shrink it"),
                Param::opt("preview_max_width", PREVIEW_SIZE, "Preview width limit (0 = none)"),
                Param::opt("preview_max_height", PREVIEW_SIZE, "Preview height limit (0 = none)"),
                Param::opt("preview_quality", Ty::int(QUALITY.0, QUALITY.1), "Preview JPEG quality; default 80"),
            ] })
            .answer(Answer::Media("image/jpeg")),
        snapshot,
    )
    .route(Route::delete("/streamer/snapshot").doc("Forgets the saved snapshot"), forget_snapshot)
    .route(
        Route::get("/streamer/ocr")
            .doc("The OCR state (OCR is not built in)")
            .answer(Answer::Envelope("`{\"ocr\": {\"enabled\", \"langs\"}}`")),
        ocr,
    )
    .route(
        Route::post("/streamer/set_params").doc("Changes the stream's parameters (applied after a quiet second)").params(const { &[
            Param::opt("quality", Ty::int(QUALITY.0, QUALITY.1), "JPEG quality"),
            Param::opt(
                "desired_fps",
                Ty::int(FPS.0, FPS.1),
                "Frames per second (0 = as many as the source gives); outside the configured limits it is ignored",
            ),
            Param::opt(
                "resolution",
                Ty::pattern(64, "^[0-9]+x[0-9]+$"),
                "`WxH`, one of `limits.available_resolutions` (others are ignored)",
            ),
            Param::opt(
                "h264_bitrate",
                Ty::int(H264_BITRATE.0, H264_BITRATE.1),
                "H.264 bitrate in kbps, retuned live (H.264 off: kvmd's `StreamerH264NotSupported`); outside the configured limits it is ignored",
            ),
            Param::opt(
                "h264_gop",
                Ty::int(H264_GOP.0, H264_GOP.1),
                "H.264 frames between key frames, 0 for none unasked (H.264 off: kvmd's `StreamerH264NotSupported`); outside the configured limits it is ignored",
            ),
        ] }),
        set_params,
    )
    .route(Route::post("/streamer/reset").doc("Restarts capture"), reset);
}

/// `features`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Features {
    /// Quality settable.
    pub quality: bool,
    /// Resolution settable.
    pub resolution: bool,
    /// H.264 available (`h264_bitrate` configured not 0).
    pub h264: bool,
}

/// `{min, max}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MinMax {
    /// Lowest.
    pub min: u32,
    /// Highest.
    pub max: u32,
}

/// `limits`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Limits {
    /// fps range.
    pub desired_fps: MinMax,
    /// When the resolution feature is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_resolutions: Option<Vec<String>>,
    /// When H.264 is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h264_bitrate: Option<MinMax>,
    /// When H.264 is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h264_gop: Option<MinMax>,
}

/// `params` and `applied`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ParamsOut {
    /// When the quality feature is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    /// Always.
    pub desired_fps: u32,
    /// When the resolution feature is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// When H.264 is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h264_bitrate: Option<u32>,
    /// When H.264 is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h264_gop: Option<u32>,
}

/// `snapshot.saved`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SavedOut {
    /// Whether it had a signal.
    pub online: bool,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

/// `snapshot`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SnapshotOut {
    /// The saved snapshot.
    pub saved: Option<SavedOut>,
}

/// kvmd's streamer state, fields in kvmd's insertion order (the WebSocket keeps it;
/// HTTP sorts).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KvmdState {
    /// What can be set.
    pub features: Features,
    /// The limits.
    pub limits: Limits,
    /// Asked for.
    pub params: ParamsOut,
    /// In effect.
    pub applied: ParamsOut,
    /// uStreamer's `/state` result, `null` while not capturing.
    pub streamer: Option<UState>,
    /// The saved snapshot.
    pub snapshot: SnapshotOut,
}

fn params_out(p: &Params) -> ParamsOut {
    ParamsOut {
        quality: p.quality,
        desired_fps: p.desired_fps,
        resolution: p.resolution.map(|(w, h)| format!("{w}x{h}")),
        h264_bitrate: p.h264_bitrate,
        h264_gop: p.h264_gop,
    }
}

/// The whole state.
pub fn kvmd_state(s: &Streamer) -> KvmdState {
    let cfg = &s.config().params;
    let params = s.params();
    let features = Features {
        quality: params.quality.is_some(),
        resolution: params.resolution.is_some(),
        h264: params.h264_bitrate.is_some(),
    };
    let limits = Limits {
        desired_fps: MinMax { min: cfg.desired_fps_min, max: cfg.desired_fps_max },
        available_resolutions: features.resolution.then(|| cfg.available_resolutions.clone()),
        h264_bitrate: features.h264.then_some(MinMax { min: cfg.h264_bitrate_min, max: cfg.h264_bitrate_max }),
        h264_gop: features.h264.then_some(MinMax { min: cfg.h264_gop_min, max: cfg.h264_gop_max }),
    };
    let streamer = s.running().then(|| s.ustate());
    let mut applied = params_out(&params);
    if let Some(u) = &streamer {
        applied.desired_fps = u.source.desired_fps;
        if applied.resolution.is_some() {
            applied.resolution = Some(format!("{}x{}", u.source.resolution.width, u.source.resolution.height));
        }
        if applied.quality.is_some() {
            applied.quality = Some(u.encoder.quality);
        }
        if let Some(h) = &u.h264 {
            (applied.h264_bitrate, applied.h264_gop) = (Some(h.bitrate), Some(h.gop));
        }
    }
    let saved = s.saved().map(|v| SavedOut { online: v.frame.online, width: v.frame.width, height: v.frame.height });
    KvmdState { features, limits, params: params_out(&params), applied, streamer, snapshot: SnapshotOut { saved } }
}

async fn state(s: web::Data<Streamer>) -> ApiResponse<KvmdState> {
    ApiResponse::new(kvmd_state(&s))
}

fn flag(q: &Query, name: &str) -> Result<bool, ApiError> {
    valid::boolean(Some(q.get(name).unwrap_or("0")))
}

fn uint(q: &Query, name: &str, default: &str, min: i64, max: Option<i64>) -> Result<u32, ApiError> {
    let v = valid::int(Some(q.get(name).unwrap_or(default)), "int", Some(min), max)?;
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

async fn snapshot(req: HttpRequest, s: web::Data<Streamer>) -> Result<HttpResponse, ApiError> {
    let q = Query::of(&req);
    let save = flag(&q, "save")?;
    let load = flag(&q, "load")?;
    let allow_offline = flag(&q, "allow_offline")?;
    if load {
        let saved = s.saved().ok_or_else(ApiError::unavailable)?;
        return Ok(super::image_response(&saved.frame, saved.data, "image/jpeg"));
    }
    // kvmd does not start the streamer for a snapshot: no viewer, no picture.
    if !s.running() {
        return Err(ApiError::unavailable());
    }
    let frame = s.snapshot().await;
    if !frame.online && !allow_offline {
        return Err(ApiError::unavailable());
    }
    // Preview and OCR parameters are read only once there is a picture (as kvmd).
    if flag(&q, "ocr")? {
        return Err(ApiError::operation("OcrError", "Tesseract is not available"));
    }
    let mut body = frame.data.clone();
    if flag(&q, "preview")? {
        let max_w = uint(&q, "preview_max_width", "0", 0, None)?;
        let max_h = uint(&q, "preview_max_height", "0", 0, None)?;
        let quality = uint(&q, "preview_quality", "80", QUALITY.0, Some(QUALITY.1))? as u8;
        let orig = (frame.width, frame.height);
        let bx = crate::preview::preview_box(orig, max_w, max_h);
        if bx != orig {
            let size = crate::preview::fit(orig, bx);
            let jpeg = frame.data.clone();
            body = web::block(move || crate::preview::shrink(&jpeg, size, quality))
                .await
                .map_err(ApiError::internal)?
                .map(Bytes::from)
                .map_err(ApiError::internal)?;
        }
    }
    if save {
        s.save(Some(Saved { frame: frame.clone(), data: body.clone() }));
    }
    Ok(super::image_response(&frame, body, "image/jpeg"))
}

async fn forget_snapshot(s: web::Data<Streamer>) -> ApiResponse<serde_json::Value> {
    s.save(None);
    ApiResponse::empty()
}

/// `/streamer/ocr`: OCR is not built in; kvmd's answer without libtesseract.
async fn ocr() -> ApiResponse<serde_json::Value> {
    ApiResponse::new(serde_json::json!({"ocr": {"enabled": false, "langs": {"available": [], "default": []}}}))
}

fn resolution(arg: &str) -> Result<(u32, u32), ApiError> {
    const NAME: &str = "stream resolution";
    let parts: Vec<&str> = arg.trim().split('x').collect();
    let [w, h] = parts[..] else { return Err(valid::invalid_error(arg, NAME)) };
    let w = valid::int(Some(w), &format!("{NAME} (width)"), Some(1), None)?;
    let h = valid::int(Some(h), &format!("{NAME} (height)"), Some(1), None)?;
    Ok((u32::try_from(w).unwrap_or(u32::MAX), u32::try_from(h).unwrap_or(u32::MAX)))
}

async fn set_params(req: HttpRequest, s: web::Data<Streamer>) -> Result<ApiResponse<serde_json::Value>, ApiError> {
    let q = Query::of(&req);
    let cfg = &s.config().params;
    let mut p = s.queued_params();
    let given = |name: &str| q.get(name).filter(|v| !v.trim().is_empty());
    if let Some(v) = given("quality") {
        if p.quality.is_none() {
            return Err(ApiError::operation(
                "StreamerQualityNotSupported",
                "This streamer does not support quality settings",
            ));
        }
        p.quality = Some(valid::int(Some(v), "stream quality", Some(QUALITY.0), Some(QUALITY.1))? as u8);
    }
    if let Some(v) = given("desired_fps") {
        let fps = valid::int(Some(v), "stream FPS", Some(FPS.0), Some(FPS.1))? as u32;
        // Outside the configured limits: ignored, as kvmd does.
        if (cfg.desired_fps_min..=cfg.desired_fps_max).contains(&fps) {
            p.desired_fps = fps;
        }
    }
    if let Some(v) = given("resolution") {
        if p.resolution.is_none() {
            return Err(ApiError::operation(
                "StreamerResolutionNotSupported",
                "This streamer does not support resolution settings",
            ));
        }
        let (w, h) = resolution(v)?;
        let r = format!("{w}x{h}");
        // Not one of the available resolutions: silently ignored, as kvmd does.
        if cfg.available_resolutions.contains(&r) {
            p.resolution = parse_resolution(&r);
        }
    }
    let h264_on = p.h264_bitrate.is_some();
    let h264 = |v: &str, name: &str, range: (i64, i64), limits: (u32, u32)| {
        if !h264_on {
            return Err(ApiError::operation("StreamerH264NotSupported", "This streamer does not support H264"));
        }
        let n = valid::int(Some(v), name, Some(range.0), Some(range.1))? as u32;
        // Outside the configured limits: dropped silently, as kvmd does.
        Ok((limits.0..=limits.1).contains(&n).then_some(n))
    };
    if let Some(v) = given("h264_bitrate")
        && let Some(n) = h264(v, "stream H264 bitrate", H264_BITRATE, (cfg.h264_bitrate_min, cfg.h264_bitrate_max))?
    {
        p.h264_bitrate = Some(n);
    }
    if let Some(v) = given("h264_gop")
        && let Some(n) = h264(v, "stream H264 GOP", H264_GOP, (cfg.h264_gop_min, cfg.h264_gop_max))?
    {
        p.h264_gop = Some(n);
    }
    s.set_params(p);
    Ok(ApiResponse::empty())
}

async fn reset(s: web::Data<Streamer>) -> ApiResponse<serde_json::Value> {
    s.reset();
    ApiResponse::empty()
}
