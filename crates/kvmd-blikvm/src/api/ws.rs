//! BliKVM's WebSocket (A.2.13; its client opens `/kme?token=<token>`): refused before the
//! upgrade without a valid token (401, A.4.3); then `{"welcome":"welcome to kvm"}`, and:
//!
//! | client → server | what the suite does |
//! |---|---|
//! | `{"k": [names]}` | the keys held now (A.2.5): the difference to the last set, as key events |
//! | `{"m": {buttons, relativeX, relativeY, verticalWheelDelta, horizontalWheelDelta}}` | the absolute pointer (a fraction of the picture), its buttons and the wheel (A.2.6) |
//! | `{"ping": n}` | `{"pong": n}` |
//! | `{"ext": 1}` | the LEDs: `{"fan_running", "fan_speed", "hdd_led", "power_led"}` (the suite has no fan) |
//! | `{"atx": 128/192/8}` | as `/atx` |
//! | `{"fan": n}`, `{"switch": n}` | ignored: the suite has no fan and no KVM switch |
//!
//! The keys and the mouse go to kvmd-hid's own `/ws` (`stream=0`), which this socket opens
//! with the caller's token for as long as it is open: kvmd-hid drops a viewer's input,
//! releases every key and button when the connection goes — whatever the reason, a revoked
//! token included, since it needs no authority of ours to do so — and closes it when the
//! token's session ends; this socket then closes too.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::AggregatedMessage as Message;
use futures_util::{SinkExt, StreamExt};
use kvmd_core::routes::{Answer, Api, Flow, Method, Role};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use crate::body::Fields;
use crate::keys;
use crate::reply::Failed;
use crate::upstream::{Caller, Upstream};

/// The group's route.
pub fn routes(api: &mut Api) {
    api.route(
        super::route(Method::Get, "/kme", "BliKVM's keyboard, mouse and ATX WebSocket (`?token=`)")
            .flow(Flow::WebSocket)
            .answer(Answer::WebSocket)
            .role(Role::Viewer),
        kme,
    );
}

type HidWs = tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>;

/// kvmd-hid's `/ws` as `caller`: the connection, or BliKVM's refusal.
async fn open_hid(up: &Upstream, caller: &Caller) -> Result<HidWs, Failed> {
    let stream = tokio::net::UnixStream::connect(&up.sockets().hid)
        .await
        .map_err(|e| Failed::upstream(format!("kvmd-hid cannot be reached: {e}")))?;
    let mut req = "ws://localhost/ws?stream=0".into_client_request().map_err(Failed::upstream)?;
    for (k, v) in up.credentials(caller) {
        if let Ok(v) = tungstenite::http::HeaderValue::from_str(&v) {
            req.headers_mut().insert(k, v);
        }
    }
    match tokio_tungstenite::client_async(req, stream).await {
        Ok((mut ws, _)) => {
            // Its first event (`loop`) comes after it released everything, as kvmd does
            // for a new session: from then on, what the client presses stays pressed.
            match tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(_))) => Ok(ws),
                _ => Err(Failed::upstream("kvmd-hid's /ws sent nothing")),
            }
        }
        Err(tungstenite::Error::Http(r)) if r.status() == 401 => Err(Failed::unauthorized()),
        Err(tungstenite::Error::Http(r)) if r.status() == 403 => Err(Failed::forbidden()),
        Err(e) => Err(Failed::upstream(format!("kvmd-hid's /ws: {e}"))),
    }
}

async fn kme(req: HttpRequest, body: web::Payload, up: web::Data<Upstream>) -> Result<HttpResponse, Failed> {
    let caller = crate::shim::caller(&req, &Fields::default()).await?;
    let upgrade = req.headers().get("Upgrade").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Err(Failed::because("this is a WebSocket"));
    }
    let hid = open_hid(&up, &caller).await?;
    let (resp, session, stream) = actix_ws::handle(&req, body).map_err(|_| Failed::because("this is a WebSocket"))?;
    let stream = stream.aggregate_continuations().max_continuation_size(64 * 1024);
    actix_web::rt::spawn(run(session, stream, hid, up.into_inner(), caller));
    Ok(resp)
}

/// What the connection holds down on the target.
#[derive(Debug, Default)]
struct Held {
    keys: Vec<&'static str>,
    buttons: u8,
    at: Option<(i64, i64)>,
}

/// kvmd's mouse buttons by `MouseEvent.buttons` bit.
const BUTTONS: [(u8, &str); 5] = [(1, "left"), (2, "right"), (4, "middle"), (8, "up"), (16, "down")];

async fn run(
    mut session: actix_ws::Session,
    mut stream: actix_ws::AggregatedMessageStream,
    hid: HidWs,
    up: Arc<Upstream>,
    caller: Caller,
) {
    let (mut to_hid, mut from_hid) = hid.split();
    let mut held = Held::default();
    let mut ended = false;
    if session.text(r#"{"welcome":"welcome to kvm"}"#).await.is_ok() {
        loop {
            tokio::select! {
                m = from_hid.next() => match m {
                    // kvmd-hid's events are not BliKVM's: read and dropped.
                    Some(Ok(tungstenite::Message::Close(_)) | Err(_)) | None => {
                        ended = true;
                        break;
                    }
                    Some(Ok(_)) => {}
                },
                m = stream.next() => match m {
                    Some(Ok(Message::Text(t))) => {
                        let (answer, events) = message(&t, &up, &caller, &mut held).await;
                        let mut sent = true;
                        for e in events {
                            sent &= to_hid.send(tungstenite::Message::text(e.to_string())).await.is_ok();
                        }
                        if !sent {
                            ended = true;
                            break;
                        }
                        if let Some(answer) = answer
                            && session.text(answer).await.is_err()
                        {
                            break;
                        }
                    }
                    Some(Ok(Message::Ping(p))) => {
                        if session.pong(&p).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
    // kvmd-hid releases what this connection held when its own socket closes.
    let _ = to_hid.close().await;
    let reason = ended.then(|| actix_ws::CloseReason {
        code: actix_ws::CloseCode::Policy,
        description: Some("the session ended".into()),
    });
    let _ = session.close(reason).await;
}

/// Handles one message: its answer, if any, and the events for kvmd-hid.
async fn message(text: &str, up: &Upstream, caller: &Caller, held: &mut Held) -> (Option<String>, Vec<Value>) {
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text) else {
        tracing::debug!("a BliKVM WebSocket message that is no JSON object");
        return (None, Vec::new());
    };
    let mut answer = None;
    let mut events = Vec::new();
    for (kind, v) in &m {
        let done = match kind.as_str() {
            "ping" => {
                answer = Some(crate::reply::ordered(&[("pong", v.clone())]));
                Ok(())
            }
            "ext" => {
                let s = crate::api::atx::state(up, caller).await.unwrap_or(Value::Null);
                let led = |n: &str| Value::from(s["leds"][n].as_bool().unwrap_or(false));
                answer = Some(crate::reply::ordered(&[
                    ("fan_running", false.into()),
                    ("fan_speed", 0.into()),
                    ("hdd_led", led("hdd")),
                    ("power_led", led("power")),
                ]));
                Ok(())
            }
            // kvmd-hid drops a viewer's input itself.
            "k" => keys(held, v, &mut events),
            "m" => {
                mouse(held, v, &mut events);
                Ok(())
            }
            "atx" if caller.role >= Role::Operator => match crate::api::atx::cmd_of(Some(v)) {
                Some(cmd) => crate::api::atx::run(up, caller, cmd).await.map(|_| ()),
                None => Err(Failed::plain()),
            },
            // A viewer's ATX, the fan and the switch: nothing to do.
            _ => Ok(()),
        };
        if let Err(e) = done {
            tracing::debug!(kind, error = %e, "a BliKVM WebSocket message failed");
        }
    }
    (answer, events)
}

fn key_event(key: &str, state: bool) -> Value {
    json!({"event_type": "key", "event": {"key": key, "state": state}})
}

/// `{"k": [...]}`: the keys held from now on.
fn keys(held: &mut Held, v: &Value, events: &mut Vec<Value>) -> Result<(), Failed> {
    let want = keys::chord(v).map_err(Failed::because)?;
    for k in held.keys.clone().into_iter().rev().filter(|k| !want.contains(k)) {
        held.keys.retain(|h| *h != k);
        events.push(key_event(k, false));
    }
    for k in want {
        if !held.keys.contains(&k) {
            held.keys.push(k);
            events.push(key_event(k, true));
        }
    }
    Ok(())
}

/// A fraction of the picture (0 … 1) as kvmd's absolute coordinate (−32768 … 32767).
pub fn coordinate(f: f64) -> i64 {
    let f = if f.is_finite() { f.clamp(0.0, 1.0) } else { 0.0 };
    ((f * 65535.0).round() as i64 - 32768).clamp(-32768, 32767)
}

/// A wheel delta as kvmd's (−127 … 127).
fn wheel(v: &Value) -> i64 {
    v.as_f64().filter(|f| f.is_finite()).map_or(0, |f| (f.round() as i64).clamp(-127, 127))
}

/// `{"m": {...}}`: where the pointer is, which buttons are down, the wheel.
fn mouse(held: &mut Held, v: &Value, events: &mut Vec<Value>) {
    if let (Some(x), Some(y)) = (v["relativeX"].as_f64(), v["relativeY"].as_f64()) {
        let at = (coordinate(x), coordinate(y));
        if held.at != Some(at) {
            held.at = Some(at);
            events.push(json!({"event_type": "mouse_move", "event": {"to": {"x": at.0, "y": at.1}}}));
        }
    }
    let buttons = v["buttons"].as_u64().map_or(held.buttons, |b| (b & 0x1f) as u8);
    for (bit, name) in BUTTONS {
        let down = buttons & bit != 0;
        if down != (held.buttons & bit != 0) {
            held.buttons ^= bit;
            events.push(json!({"event_type": "mouse_button", "event": {"button": name, "state": down}}));
        }
    }
    // BliKVM's vertical delta is the browser's (down is positive), kvmd's the report's.
    let (dy, dx) = (-wheel(&v["verticalWheelDelta"]), wheel(&v["horizontalWheelDelta"]));
    if dx != 0 || dy != 0 {
        events.push(json!({"event_type": "mouse_wheel", "event": {"delta": {"x": dx, "y": dy}}}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_span_kvmds_range() {
        assert_eq!(coordinate(0.0), -32768);
        assert_eq!(coordinate(1.0), 32767);
        assert_eq!(coordinate(0.5), 0);
        assert_eq!(coordinate(-3.0), -32768);
        assert_eq!(coordinate(f64::NAN), -32768);
        assert_eq!(wheel(&json!(-1)), -1);
        assert_eq!(wheel(&json!(1e9)), 127);
    }

    #[test]
    fn key_sets_become_kvmds_events() {
        let mut held = Held::default();
        let mut ev = Vec::new();
        assert!(keys(&mut held, &json!(["KeyA", "ShiftLeft"]), &mut ev).is_ok());
        assert!(keys(&mut held, &json!(["ShiftLeft"]), &mut ev).is_ok());
        assert!(keys(&mut held, &json!("KeyA"), &mut ev).is_err());
        let names: Vec<(String, bool)> = ev
            .iter()
            .map(|e| (e["event"]["key"].as_str().unwrap_or("").to_owned(), e["event"]["state"] == true))
            .collect();
        let want = [("ShiftLeft", true), ("KeyA", true), ("KeyA", false)];
        assert_eq!(names, want.map(|(k, s)| (k.to_owned(), s)));
        let mut ev = Vec::new();
        mouse(&mut held, &json!({"buttons": 3, "relativeX": 1.0, "relativeY": 0.0, "verticalWheelDelta": 2}), &mut ev);
        let types: Vec<&str> = ev.iter().map(|e| e["event_type"].as_str().unwrap_or("")).collect();
        assert_eq!(types, ["mouse_move", "mouse_button", "mouse_button", "mouse_wheel"]);
        assert_eq!(ev[3]["event"]["delta"], json!({"x": 0, "y": -2}));
        let mut ev = Vec::new();
        mouse(&mut held, &json!({"buttons": 3, "relativeX": 1.0, "relativeY": 0.0}), &mut ev);
        assert!(ev.is_empty(), "nothing changed: {ev:?}");
    }
}
