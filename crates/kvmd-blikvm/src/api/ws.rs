//! BliKVM's WebSocket (A.2.13; its client opens `/kme?token=<token>`): refused before the
//! upgrade without a valid token (401, A.4.3); then `{"welcome":"welcome to kvm"}`, and:
//!
//! | client → server | what the suite does |
//! |---|---|
//! | `{"k": [names]}` | the keys held now (A.2.5): the difference to the last set is pressed and released on kvmd-hid |
//! | `{"m": {buttons, relativeX, relativeY, verticalWheelDelta, horizontalWheelDelta}}` | the absolute pointer (a fraction of the picture), its buttons and the wheel (A.2.6) |
//! | `{"ping": n}` | `{"pong": n}` |
//! | `{"ext": 1}` | the LEDs: `{"fan_running", "fan_speed", "hdd_led", "power_led"}` (the suite has no fan) |
//! | `{"atx": 128/192/8}` | as `/atx` |
//! | `{"fan": n}`, `{"switch": n}` | ignored: the suite has no fan and no KVM switch |
//!
//! A viewer's keys, mouse and ATX messages are dropped. The socket closes when the token's
//! session ends (revoked, logged out, expired), and everything it holds is released when it
//! closes, as kvmd's `/ws` does.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::AggregatedMessage as Message;
use futures_util::StreamExt;
use kvmd_core::routes::{Answer, Api, Flow, Method, Role};
use serde_json::Value;

use crate::body::Fields;
use crate::keys;
use crate::reply::Failed;
use crate::upstream::{Caller, Send, Svc, Upstream};

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

async fn kme(req: HttpRequest, body: web::Payload, up: web::Data<Upstream>) -> Result<HttpResponse, Failed> {
    let caller = crate::shim::caller(&req, &Fields::default()).await?;
    let upgrade = req.headers().get("Upgrade").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Err(Failed::because("this is a WebSocket"));
    }
    let (resp, session, stream) = actix_ws::handle(&req, body).map_err(|_| Failed::because("this is a WebSocket"))?;
    let stream = stream.aggregate_continuations().max_continuation_size(64 * 1024);
    actix_web::rt::spawn(run(session, stream, up.into_inner(), caller));
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
    up: Arc<Upstream>,
    caller: Caller,
) {
    let mut held = Held::default();
    let mut ended = false;
    if session.text(r#"{"welcome":"welcome to kvm"}"#).await.is_ok() {
        let hold = up.hold(&caller, "ws");
        tokio::pin!(hold);
        loop {
            tokio::select! {
                () = &mut hold => {
                    ended = true;
                    break;
                }
                m = stream.next() => match m {
                    Some(Ok(Message::Text(t))) => {
                        if let Some(answer) = message(&t, &up, &caller, &mut held).await
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
    release(&up, &caller, &mut held).await;
    let reason = ended.then(|| actix_ws::CloseReason {
        code: actix_ws::CloseCode::Policy,
        description: Some("the session ended".into()),
    });
    let _ = session.close(reason).await;
}

/// Handles one message; its answer, if it has one.
async fn message(text: &str, up: &Upstream, caller: &Caller, held: &mut Held) -> Option<String> {
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text) else {
        tracing::debug!("a BliKVM WebSocket message that is no JSON object");
        return None;
    };
    let control = caller.role >= Role::Operator;
    let mut answer = None;
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
            "k" if control => keys(up, caller, held, v).await,
            "m" if control => mouse(up, caller, held, v).await,
            "atx" if control => match crate::api::atx::cmd_of(Some(v)) {
                Some(cmd) => crate::api::atx::run(up, caller, cmd).await.map(|_| ()),
                None => Err(Failed::plain()),
            },
            "k" | "m" | "atx" => Ok(()), // a viewer's: dropped
            "fan" | "switch" => Ok(()),
            _ => Ok(()),
        };
        if let Err(e) = done {
            tracing::debug!(kind, error = %e, "a BliKVM WebSocket message failed");
        }
    }
    answer
}

async fn send_key(up: &Upstream, caller: &Caller, key: &str, down: bool) -> Result<(), Failed> {
    let path = format!("/hid/events/send_key?key={key}&state={down}");
    up.call(Svc::Hid, "POST", &path, caller, Send::Nothing).await.map(|_| ())
}

async fn send_button(up: &Upstream, caller: &Caller, button: &str, down: bool) -> Result<(), Failed> {
    let path = format!("/hid/events/send_mouse_button?button={button}&state={down}");
    up.call(Svc::Hid, "POST", &path, caller, Send::Nothing).await.map(|_| ())
}

/// `{"k": [...]}`: the keys held from now on.
async fn keys(up: &Upstream, caller: &Caller, held: &mut Held, v: &Value) -> Result<(), Failed> {
    let want = keys::chord(v).map_err(Failed::because)?;
    for k in held.keys.clone().into_iter().rev().filter(|k| !want.contains(k)) {
        held.keys.retain(|h| *h != k);
        send_key(up, caller, k, false).await?;
    }
    for k in want {
        if !held.keys.contains(&k) {
            held.keys.push(k);
            send_key(up, caller, k, true).await?;
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
async fn mouse(up: &Upstream, caller: &Caller, held: &mut Held, v: &Value) -> Result<(), Failed> {
    if let (Some(x), Some(y)) = (v["relativeX"].as_f64(), v["relativeY"].as_f64()) {
        let at = (coordinate(x), coordinate(y));
        if held.at != Some(at) {
            held.at = Some(at);
            let path = format!("/hid/events/send_mouse_move?to_x={}&to_y={}", at.0, at.1);
            up.call(Svc::Hid, "POST", &path, caller, Send::Nothing).await?;
        }
    }
    let buttons = v["buttons"].as_u64().map_or(held.buttons, |b| (b & 0x1f) as u8);
    for (bit, name) in BUTTONS {
        let down = buttons & bit != 0;
        if down != (held.buttons & bit != 0) {
            held.buttons ^= bit;
            send_button(up, caller, name, down).await?;
        }
    }
    // BliKVM's vertical delta is the browser's (down is positive), kvmd's the report's.
    let (dy, dx) = (-wheel(&v["verticalWheelDelta"]), wheel(&v["horizontalWheelDelta"]));
    if dx != 0 || dy != 0 {
        let path = format!("/hid/events/send_mouse_wheel?delta_x={dx}&delta_y={dy}");
        up.call(Svc::Hid, "POST", &path, caller, Send::Nothing).await?;
    }
    Ok(())
}

/// Lets go of every key and button the connection holds.
async fn release(up: &Upstream, caller: &Caller, held: &mut Held) {
    for k in std::mem::take(&mut held.keys).into_iter().rev() {
        let _ = send_key(up, caller, k, false).await;
    }
    for (bit, name) in BUTTONS {
        if held.buttons & bit != 0 {
            let _ = send_button(up, caller, name, false).await;
        }
    }
    held.buttons = 0;
}

#[cfg(test)]
mod tests {
    #[test]
    fn coordinates_span_kvmds_range() {
        assert_eq!(super::coordinate(0.0), -32768);
        assert_eq!(super::coordinate(1.0), 32767);
        assert_eq!(super::coordinate(0.5), 0);
        assert_eq!(super::coordinate(-3.0), -32768);
        assert_eq!(super::coordinate(f64::NAN), -32768);
        assert_eq!(super::wheel(&serde_json::json!(-1)), -1);
        assert_eq!(super::wheel(&serde_json::json!(1e9)), 127);
    }
}
