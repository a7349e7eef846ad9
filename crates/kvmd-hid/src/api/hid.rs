//! `/hid`: keyboard and mouse events and the HID state. Reproduces kvmd
//! `kvmd/apps/kvmd/api/hid.py` (spec `hid.md` section 1): every event endpoint answers
//! 200 `{}` once the event is queued.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use kvmd_core::envelope::{ApiResponse, ApiResult};
use kvmd_core::query::Query;
use kvmd_core::routes::{Answer, Api, Body, Flow, Param, Route, Ty};
use kvmd_core::{ApiError, valid};
use serde_json::{Value, json};

use crate::hid::{Event, Hid, HidState};
use crate::keys;
use crate::valid as hid_valid;

const KEY: Param = Param::req(
    "key",
    Ty::str(hid_valid::KEY_RAW_LIMIT as u32),
    "A web key name (`KeyboardEvent.code`, e.g. `KeyA`, `ShiftLeft`)",
);
const KEY_STATE: Param = Param::opt("state", Ty::Bool, "Pressed (true) or released; without it, a press and a release");
const MOVE: Ty = Ty::clamped(hid_valid::MOVE_RANGE.0, hid_valid::MOVE_RANGE.1);
const DELTA: Ty = Ty::clamped(hid_valid::DELTA_RANGE.0, hid_valid::DELTA_RANGE.1);
const DELTAS: &[Param] =
    &[Param::req("delta_x", DELTA, "Horizontal delta"), Param::req("delta_y", DELTA, "Vertical delta")];

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get("/hid")
            .doc("The HID state: keyboard and mouse, online, LEDs, outputs, jiggler")
            .answer(Answer::Envelope("the HID state")),
        state,
    )
    .route(
        Route::get("/hid/keymaps")
            .doc("The keymaps `/hid/print` can type with")
            .answer(Answer::Envelope("`{\"keymaps\": {\"default\", \"available\"}}`")),
        keymaps,
    )
    .route(
        Route::get(INPUT_LATENCY_PATH)
            .internal()
            .doc("Arrival-to-write latencies of WebSocket key input (benchmarks)")
            .params(const { &[Param::opt("reset", Ty::Bool, "Start a new sample")] }),
        input_latency,
    )
    .route(
        Route::post("/hid/print")
            .flow(Flow::BigPost)
            .doc("Types the body's text on the target with a keymap")
            .params(
                const {
                    &[
                        Param::opt(
                            "limit",
                            Ty::at_least(0),
                            "Type at most this many characters (0 = all); default 1024",
                        ),
                        Param::opt(
                            "keymap",
                            Ty::Enum(&crate::layout::KEYMAP_NAMES),
                            "The target's keyboard layout; default `en-us`",
                        ),
                        Param::opt("slow", Ty::Bool, "Wait 20 ms between key events"),
                        Param::opt(
                            "delay",
                            Ty::Float { min: Some(0.0), max: Some(5.0) },
                            "Seconds between key events (overrides `slow`)",
                        ),
                    ]
                },
            )
            .body(Body::Raw("text/plain")),
        print,
    )
    .route(
        Route::get("/hid/inactivity")
            .doc("Seconds since the last HID event")
            .answer(Answer::Envelope("`{\"inactivity\": <seconds>}`")),
        inactivity,
    )
    .route(
        Route::post("/hid/set_params").doc("Changes the mouse output and the jiggler").params(
            const {
                &[
                    Param::opt(
                        "keyboard_output",
                        Ty::Enum(hid_valid::KEYBOARD_OUTPUTS),
                        "Accepted; OTG has one keyboard",
                    ),
                    Param::opt(
                        "mouse_output",
                        Ty::Enum(hid_valid::MOUSE_OUTPUTS),
                        "`usb` (absolute) or `usb_rel` (relative); the others are accepted and ignored",
                    ),
                    Param::opt("jiggler", Ty::Bool, "Moves the mouse now and then while idle"),
                ]
            },
        ),
        set_params,
    )
    .route(
        Route::post("/hid/set_connected")
            .doc("Connects or disconnects the HID (a no-op on OTG)")
            .params(const { &[Param::req("connected", Ty::Bool, "Connected")] }),
        set_connected,
    )
    .route(Route::post("/hid/reset").doc("Releases every key and button"), reset)
    .route(
        Route::post("/hid/events/send_key").doc("Presses and/or releases a key").params(
            const {
                &[
                    KEY,
                    KEY_STATE,
                    Param::opt("finish", Ty::Bool, "With `state=true`: release it again at once (modifiers stay held)"),
                ]
            },
        ),
        send_key,
    )
    .route(
        Route::post("/hid/events/send_shortcut")
            .doc("Presses the keys in order, then releases them in reverse")
            .params(const { &[Param::req("keys", Ty::List(&[]), "Comma-separated web key names")] }),
        send_shortcut,
    )
    .route(
        Route::post("/hid/events/send_mouse_button").doc("Presses and/or releases a mouse button").params(
            const {
                &[
                    Param::req("button", Ty::Enum(hid_valid::BUTTONS), "The button"),
                    Param::opt("state", Ty::Bool, "Pressed (true) or released; without it, a click"),
                ]
            },
        ),
        send_mouse_button,
    )
    .route(
        Route::post("/hid/events/send_mouse_move").doc("Moves the absolute pointer").params(
            const {
                &[
                    Param::req("to_x", MOVE, "Horizontal position, -32768 (left) to 32767 (right)"),
                    Param::req("to_y", MOVE, "Vertical position, -32768 (top) to 32767 (bottom)"),
                ]
            },
        ),
        send_mouse_move,
    )
    .route(
        Route::post("/hid/events/send_mouse_relative").doc("Moves the relative mouse").params(DELTAS),
        send_mouse_relative,
    )
    .route(Route::post("/hid/events/send_mouse_wheel").doc("Scrolls the wheel").params(DELTAS), send_mouse_wheel);
}

/// An optional bool.
fn opt_bool(q: &Query, name: &str) -> Result<Option<bool>, ApiError> {
    q.get(name).map(|v| valid::boolean(Some(v))).transpose()
}

fn empty() -> ApiResponse<Value> {
    ApiResponse::empty()
}

async fn state(hid: web::Data<Hid>) -> ApiResult<HidState> {
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

async fn keymaps() -> ApiResult<KeymapsState> {
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

/// The body as text, decoded as aiohttp's `request.text()` does: with the charset of its
/// `Content-Type`, else UTF-8. kvmd answers an undecodable body or an unknown charset with
/// aiohttp's 500; a clear 400 says the same thing.
pub fn decode_text(
    content_type: Option<&actix_web::http::header::HeaderValue>,
    bytes: Vec<u8>,
) -> Result<String, ApiError> {
    let ct = content_type.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default();
    let charset = ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("charset").then(|| v.trim().trim_matches('"').to_ascii_lowercase())
    });
    let bad = |what: &str| ApiError::validator(format!("The text is not valid {what}"));
    match charset.as_deref() {
        None | Some("utf-8" | "utf8") => String::from_utf8(bytes).map_err(|_| bad("UTF-8")),
        // Python's latin-1 is ISO 8859-1 (each byte its code point), not WHATWG's windows-1252.
        Some("latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "l1") => {
            Ok(bytes.iter().map(|&b| char::from(b)).collect())
        }
        Some(label) => {
            let enc = encoding_rs::Encoding::for_label(label.as_bytes())
                .ok_or_else(|| ApiError::validator(format!("Unknown charset of the text: {label}")))?;
            let (text, _, malformed) = enc.decode(&bytes);
            if malformed { Err(bad(enc.name())) } else { Ok(text.into_owned()) }
        }
    }
}

async fn print(
    hid: web::Data<Hid>,
    layouts: web::Data<crate::layout::Layouts>,
    limits: web::Data<crate::Limits>,
    user: kvmd_core::authn::Authed,
    req: HttpRequest,
    body: web::Payload,
) -> actix_web::Result<HttpResponse> {
    // Held until the paste is typed (or cancelled), taken before the body is read.
    let _place = limits.prints.take(&user.user)?;
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
    let bytes = kvmd_core::envelope::read_body(body, kvmd_core::envelope::BODY_LIMIT).await?;
    let text = decode_text(req.headers().get(actix_web::http::header::CONTENT_TYPE), bytes)?;
    let paste = crate::layout::paste(&layout, &text, usize::try_from(limit).unwrap_or(usize::MAX))
        .ok_or_else(|| ApiError::internal("no modifier keys in the key table"))?;
    let pause = Duration::from_secs_f64(delay);
    let mut guard = PasteGuard { hid: hid.get_ref().clone(), held: Vec::new() };
    // A paste stops when its client goes away (nginx then closes our connection) or a
    // `/hid/reset` cancels it; the guard releases whatever it holds.
    let epoch = hid.paste_epoch();
    let client = req.conn_data::<kvmd_core::net::ConnFd>().copied();
    let typing = async {
        for (key, pressed) in paste.events {
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            if hid.paste_epoch() != epoch {
                tracing::info!("paste cancelled by a reset");
                return;
            }
            hid.send(Event::Key(key, pressed)).await;
            guard.sent(key, pressed);
        }
    };
    tokio::select! {
        () = typing => {}
        () = kvmd_core::net::disconnected(client) => tracing::info!("paste cancelled: the client went away"),
    }
    if paste.skipped > 0 {
        tracing::info!(skipped = paste.skipped, keymap = %keymap, "characters the layout cannot type were skipped");
    }
    Ok(kvmd_core::envelope::json_response(actix_web::http::StatusCode::OK, &json!({})))
}

async fn inactivity(hid: web::Data<Hid>) -> ApiResult<Value> {
    Ok(ApiResponse::new(json!({"inactivity": hid.inactivity()})))
}

async fn set_params(hid: web::Data<Hid>, req: HttpRequest) -> ApiResult<Value> {
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

async fn set_connected(req: HttpRequest) -> ApiResult<Value> {
    // OTG: a no-op, but the argument is validated.
    valid::boolean(Query::of(&req).get("connected"))?;
    Ok(empty())
}

async fn reset(hid: web::Data<Hid>) -> ApiResult<Value> {
    hid.cancel_pastes();
    hid.send(Event::Reset).await;
    Ok(empty())
}

async fn send_key(hid: web::Data<Hid>, req: HttpRequest) -> ApiResult<Value> {
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

async fn send_shortcut(hid: web::Data<Hid>, req: HttpRequest) -> ApiResult<Value> {
    let keys = valid::string_list(Query::of(&req).get("keys"), |k| hid_valid::key(Some(k)))?;
    for (key, pressed) in keys.iter().map(|k| (*k, true)).chain(keys.iter().rev().map(|k| (*k, false))) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        hid.send(Event::Key(key, pressed)).await;
    }
    Ok(empty())
}

async fn send_mouse_button(hid: web::Data<Hid>, req: HttpRequest) -> ApiResult<Value> {
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

async fn send_mouse_move(hid: web::Data<Hid>, req: HttpRequest) -> ApiResult<Value> {
    let q = Query::of(&req);
    let x = hid_valid::mouse_move(q.get("to_x"))?;
    let y = hid_valid::mouse_move(q.get("to_y"))?;
    hid.send(Event::MoveTo(x, y)).await;
    Ok(empty())
}

async fn send_mouse_relative(hid: web::Data<Hid>, req: HttpRequest) -> ApiResult<Value> {
    let q = Query::of(&req);
    let dx = hid_valid::mouse_delta(q.get("delta_x"))?;
    let dy = hid_valid::mouse_delta(q.get("delta_y"))?;
    hid.send(Event::Relative(dx, dy)).await;
    Ok(empty())
}

async fn send_mouse_wheel(hid: web::Data<Hid>, req: HttpRequest) -> ApiResult<Value> {
    let q = Query::of(&req);
    let dx = hid_valid::mouse_delta(q.get("delta_x"))?;
    let dy = hid_valid::mouse_delta(q.get("delta_y"))?;
    hid.send(Event::Wheel(dx, dy)).await;
    Ok(empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn decode(c: Option<&'static str>, b: &[u8]) -> Result<String, String> {
        let c = c.map(HeaderValue::from_static);
        decode_text(c.as_ref(), b.to_vec()).map_err(|e| e.message.into_owned())
    }

    #[test]
    fn print_bodies_are_decoded_with_their_charset() {
        assert_eq!(decode(None, "Grüße".as_bytes()), Ok("Grüße".into()));
        assert_eq!(decode(Some("text/plain; charset=latin-1"), b"Gr\xfc\xdfe"), Ok("Grüße".into()));
        assert_eq!(decode(Some("text/plain;charset=\"ISO-8859-1\""), b"\x80"), Ok("\u{80}".into()));
        let utf16: Vec<u8> = [0xFF, 0xFE].into_iter().chain("Hé".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        assert_eq!(decode(Some("text/plain; charset=utf-16"), &utf16), Ok("Hé".into()));
        let be: Vec<u8> = "Hé".encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(decode(Some("text/plain; charset=UTF-16BE"), &be), Ok("Hé".into()));
        assert_eq!(decode(None, b"\xff"), Err("The text is not valid UTF-8".into()));
        assert_eq!(
            decode(Some("text/plain; charset=x-nosuch"), b"a"),
            Err("Unknown charset of the text: x-nosuch".into())
        );
    }
}
