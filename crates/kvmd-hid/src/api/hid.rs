//! `/hid`: keyboard and mouse events and the HID state. Reproduces kvmd
//! `kvmd/apps/kvmd/api/hid.py` (spec `hid.md` section 1): every event endpoint answers
//! 200 `{}` once the event is queued.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use kvmd_core::authn::Authed;
use kvmd_core::envelope::{ApiResponse, ApiResult};
use kvmd_core::query::Query;
use kvmd_core::routes::{Access, Route, resource};
use kvmd_core::{ApiError, valid};
use serde_json::{Value, json};

use crate::hid::{Event, Hid, HidState};
use crate::keys;
use crate::valid as hid_valid;

/// The group's routes.
pub const ROUTES: &[Route] = &[
    Route::get("/hid", Access::User),
    Route::get("/hid/keymaps", Access::User),
    Route::post("/hid/print", Access::User).flow(kvmd_core::routes::Flow::BigPost),
    Route::get("/hid/inactivity", Access::User),
    Route::post("/hid/set_params", Access::User),
    Route::post("/hid/set_connected", Access::User),
    Route::post("/hid/reset", Access::User),
    Route::post("/hid/events/send_key", Access::User),
    Route::post("/hid/events/send_shortcut", Access::User),
    Route::post("/hid/events/send_mouse_button", Access::User),
    Route::post("/hid/events/send_mouse_move", Access::User),
    Route::post("/hid/events/send_mouse_relative", Access::User),
    Route::post("/hid/events/send_mouse_wheel", Access::User),
];

/// Mounts the group.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/hid").route(web::get().to(state)))
        .service(resource("/hid/keymaps").route(web::get().to(keymaps)))
        .service(web::resource(INPUT_LATENCY_PATH).route(web::get().to(input_latency)))
        .service(resource("/hid/print").route(web::post().to(print)))
        .service(resource("/hid/inactivity").route(web::get().to(inactivity)))
        .service(resource("/hid/set_params").route(web::post().to(set_params)))
        .service(resource("/hid/set_connected").route(web::post().to(set_connected)))
        .service(resource("/hid/reset").route(web::post().to(reset)))
        .service(resource("/hid/events/send_key").route(web::post().to(send_key)))
        .service(resource("/hid/events/send_shortcut").route(web::post().to(send_shortcut)))
        .service(resource("/hid/events/send_mouse_button").route(web::post().to(send_mouse_button)))
        .service(resource("/hid/events/send_mouse_move").route(web::post().to(send_mouse_move)))
        .service(resource("/hid/events/send_mouse_relative").route(web::post().to(send_mouse_relative)))
        .service(resource("/hid/events/send_mouse_wheel").route(web::post().to(send_mouse_wheel)));
}

/// An optional bool.
fn opt_bool(q: &Query, name: &str) -> Result<Option<bool>, ApiError> {
    q.get(name).map(|v| valid::boolean(Some(v))).transpose()
}

fn empty() -> ApiResponse<Value> {
    ApiResponse::empty()
}

async fn state(hid: web::Data<Hid>, _user: Authed) -> ApiResult<HidState> {
    Ok(ApiResponse::new(hid.state()))
}

/// Internal (not routed by nginx): arrival-to-write latencies of WebSocket key input, for
/// `just bench-hid`.
pub const INPUT_LATENCY_PATH: &str = "/hid/input_latency";

async fn input_latency(hid: web::Data<Hid>, req: HttpRequest) -> ApiResult<Value> {
    let reset = valid::boolean(Some(Query::of(&req).get("reset").unwrap_or("0")))?;
    let (samples, p50, p99, max) = hid.input_latency(reset);
    Ok(ApiResponse::new(json!({"samples": samples, "p50_us": p50, "p99_us": p99, "max_us": max})))
}

/// `/hid/keymaps` (and the WebSocket `hid_keymaps` event, in this field order).
#[derive(Debug, serde::Serialize)]
pub struct KeymapsState {
    keymaps: Keymaps,
}

#[derive(Debug, serde::Serialize)]
struct Keymaps {
    default: &'static str,
    available: Vec<&'static str>,
}

/// kvmd's keymap names and the default.
pub fn keymaps_value() -> KeymapsState {
    let available = crate::layout::NAMES.iter().map(|(n, _, _)| *n).collect();
    KeymapsState { keymaps: Keymaps { default: DEFAULT_KEYMAP, available } }
}

/// The keymap `/hid/print` uses without `keymap=` (kvmd's `hid.keymap`).
pub const DEFAULT_KEYMAP: &str = "en-us";

async fn keymaps(_user: Authed) -> ApiResult<KeymapsState> {
    Ok(ApiResponse::new(keymaps_value()))
}

/// Releases the keys a paste holds if the paste is cut short (the client went away).
struct PasteGuard {
    hid: Hid,
    /// Pressed and not released yet (the paste's Shift and AltGr).
    held: Vec<keys::Key>,
}

impl PasteGuard {
    fn sent(&mut self, key: keys::Key, pressed: bool) {
        self.held.retain(|k| *k != key);
        if pressed {
            self.held.push(key);
        }
    }
}

impl Drop for PasteGuard {
    fn drop(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let (hid, held) = (self.hid.clone(), std::mem::take(&mut self.held));
        actix_web::rt::spawn(async move {
            for k in held {
                hid.send(Event::Key(k, false)).await;
            }
        });
    }
}

async fn print(
    hid: web::Data<Hid>,
    layouts: web::Data<crate::layout::Layouts>,
    req: HttpRequest,
    body: web::Payload,
    _user: Authed,
) -> Result<HttpResponse, ApiError> {
    let q = Query::of(&req);
    let limit = valid::int(Some(q.get("limit").unwrap_or("1024")), "text limit", Some(0), None)?;
    let keymap = q.get("keymap").unwrap_or(DEFAULT_KEYMAP).trim().to_owned();
    let layout = layouts.get(&keymap).ok_or_else(|| valid::invalid_error(&keymap, "keymap"))?;
    let slow = valid::boolean(Some(q.get("slow").unwrap_or("0")))?;
    let delay = match q.get("delay") {
        Some(d) => valid::float(Some(d), "keys delay", Some(0.0), Some(5.0))?,
        None if slow => 0.02,
        None => 0.0,
    };
    let bytes = match kvmd_core::envelope::read_body(body, kvmd_core::envelope::BODY_LIMIT).await {
        Ok(b) => b,
        Err(resp) => return Ok(resp),
    };
    // kvmd answers undecodable text with aiohttp's 500; a clear 400 says the same thing.
    let text = String::from_utf8(bytes).map_err(|_| ApiError::validator("The text is not valid UTF-8"))?;
    let paste = crate::layout::paste(&layout, &text, usize::try_from(limit).unwrap_or(usize::MAX))
        .ok_or_else(|| ApiError::internal("no modifier keys in the key table"))?;
    let pause = Duration::from_secs_f64(delay);
    let mut guard = PasteGuard { hid: hid.get_ref().clone(), held: Vec::new() };
    for (key, pressed) in paste.events {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        hid.send(Event::Key(key, pressed)).await;
        guard.sent(key, pressed);
    }
    if paste.skipped > 0 {
        tracing::info!(skipped = paste.skipped, keymap = %keymap, "characters the layout cannot type were skipped");
    }
    Ok(kvmd_core::envelope::json_response(actix_web::http::StatusCode::OK, &json!({})))
}

async fn inactivity(hid: web::Data<Hid>, _user: Authed) -> ApiResult<Value> {
    Ok(ApiResponse::new(json!({"inactivity": hid.inactivity()})))
}

async fn set_params(hid: web::Data<Hid>, req: HttpRequest, _user: Authed) -> ApiResult<Value> {
    let q = Query::of(&req);
    if let Some(v) = q.get("keyboard_output") {
        // OTG has one keyboard: validated, then ignored.
        hid_valid::keyboard_output(Some(v))?;
    }
    let mouse = q.get("mouse_output").map(|v| hid_valid::mouse_output(Some(v))).transpose()?;
    let jiggler = opt_bool(&q, "jiggler")?;
    match mouse.as_deref() {
        Some("usb") => hid.send(Event::MouseRelative(false)).await,
        Some("usb_rel") => hid.send(Event::MouseRelative(true)).await,
        // Valid but unavailable outputs are ignored, as by kvmd.
        _ => {}
    }
    if let Some(j) = jiggler {
        hid.set_jiggler(j);
    }
    Ok(empty())
}

async fn set_connected(req: HttpRequest, _user: Authed) -> ApiResult<Value> {
    // OTG: a no-op, but the argument is validated.
    valid::boolean(Query::of(&req).get("connected"))?;
    Ok(empty())
}

async fn reset(hid: web::Data<Hid>, _user: Authed) -> ApiResult<Value> {
    hid.send(Event::Reset).await;
    Ok(empty())
}

async fn send_key(hid: web::Data<Hid>, req: HttpRequest, _user: Authed) -> ApiResult<Value> {
    let q = Query::of(&req);
    let key = hid_valid::key(q.get("key"))?;
    let state = opt_bool(&q, "state")?;
    let finish = opt_bool(&q, "finish")?.unwrap_or(false);
    // Without `state`: a press with finish (press + release, but modifiers stick).
    let (pressed, finish) = match state {
        Some(s) => (s, finish),
        None => (true, true),
    };
    hid.send(Event::Key(key, pressed)).await;
    if pressed && finish && !key.sticks() {
        hid.send(Event::Key(key, false)).await;
    }
    Ok(empty())
}

async fn send_shortcut(hid: web::Data<Hid>, req: HttpRequest, _user: Authed) -> ApiResult<Value> {
    let keys = valid::string_list(Query::of(&req).get("keys"), |k| hid_valid::key(Some(k)))?;
    for (key, pressed) in keys.iter().map(|k| (*k, true)).chain(keys.iter().rev().map(|k| (*k, false))) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        hid.send(Event::Key(key, pressed)).await;
    }
    Ok(empty())
}

async fn send_mouse_button(hid: web::Data<Hid>, req: HttpRequest, _user: Authed) -> ApiResult<Value> {
    let q = Query::of(&req);
    let bit = hid_valid::mouse_button(q.get("button"))?;
    match opt_bool(&q, "state")? {
        Some(s) => hid.send(Event::Button(bit, s)).await,
        None => {
            hid.send(Event::Button(bit, true)).await;
            hid.send(Event::Button(bit, false)).await;
        }
    }
    Ok(empty())
}

async fn send_mouse_move(hid: web::Data<Hid>, req: HttpRequest, _user: Authed) -> ApiResult<Value> {
    let q = Query::of(&req);
    let x = hid_valid::mouse_move(q.get("to_x"))?;
    let y = hid_valid::mouse_move(q.get("to_y"))?;
    hid.send(Event::MoveTo(x, y)).await;
    Ok(empty())
}

async fn send_mouse_relative(hid: web::Data<Hid>, req: HttpRequest, _user: Authed) -> ApiResult<Value> {
    let q = Query::of(&req);
    let dx = hid_valid::mouse_delta(q.get("delta_x"))?;
    let dy = hid_valid::mouse_delta(q.get("delta_y"))?;
    hid.send(Event::Relative(dx, dy)).await;
    Ok(empty())
}

async fn send_mouse_wheel(hid: web::Data<Hid>, req: HttpRequest, _user: Authed) -> ApiResult<Value> {
    let q = Query::of(&req);
    let dx = hid_valid::mouse_delta(q.get("delta_x"))?;
    let dy = hid_valid::mouse_delta(q.get("delta_y"))?;
    hid.send(Event::Wheel(dx, dy)).await;
    Ok(empty())
}
