//! WebSocket input: kvmd's JSON events and the web UI's binary protocol (spec `ws.md`
//! sections 3 and 4), turned into HID events. Anything malformed is dropped silently, as
//! kvmd does; nothing here can end the session except a zero-length binary frame (the
//! caller's business) and, as in kvmd, a numeric key code it does not know.

use std::time::Instant;

use serde_json::Value;

use crate::hid::{Event, Hid};
use crate::keys::{self, Key};
use crate::report::button_bit;

/// What a binary message asks the session to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Nothing to send.
    None,
    /// Send the binary pong `FF`.
    Pong,
    /// End the session.
    Close,
}

/// A bool as kvmd's WebSocket accepts it: JSON bool, 0/1, or the HTTP bool strings.
fn as_bool(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        },
        Value::String(s) => kvmd_core::valid::boolean(Some(s)).ok(),
        _ => None,
    }
}

/// An integer, also from a numeric string, clamped.
fn as_int(v: Option<&Value>, min: i64, max: i64) -> Option<i64> {
    let n = match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    Some(n.clamp(min, max))
}

async fn key(hid: &Hid, key: Key, pressed: bool, finish: bool, arrival: Instant) {
    hid.send_at(Event::Key(key, pressed), Some(arrival)).await;
    if pressed && finish && !key.sticks() {
        hid.send(Event::Key(key, false)).await;
    }
}

/// kvmd's squash: deltas summed while both sums stay within ±127.
fn squash(deltas: &[(i64, i64)]) -> Vec<(i8, i8)> {
    let mut out = Vec::new();
    let (mut sx, mut sy) = (0i64, 0i64);
    for &(x, y) in deltas {
        if (sx + x).abs() > 127 || (sy + y).abs() > 127 {
            out.push((sx as i8, sy as i8));
            (sx, sy) = (x, y);
        } else {
            sx += x;
            sy += y;
        }
    }
    if sx != 0 || sy != 0 {
        out.push((sx as i8, sy as i8));
    }
    out
}

async fn deltas(hid: &Hid, list: Vec<(i64, i64)>, squashed: bool, wheel: bool) {
    let steps: Vec<(i8, i8)> =
        if squashed { squash(&list) } else { list.iter().map(|&(x, y)| (x as i8, y as i8)).collect() };
    for (x, y) in steps {
        hid.send(if wheel { Event::Wheel(x, y) } else { Event::Relative(x, y) }).await;
    }
}

fn delta_list(v: Option<&Value>) -> Option<Vec<(i64, i64)>> {
    let one = |d: &Value| Some((as_int(d.get("x"), -127, 127)?, as_int(d.get("y"), -127, 127)?));
    match v? {
        Value::Array(a) => a.iter().map(one).collect(),
        d @ Value::Object(_) => Some(vec![one(d)?]),
        _ => None,
    }
}

/// Handles one JSON message; returns the text to answer, if any.
pub async fn json(hid: &Hid, text: &str) -> Option<String> {
    let arrival = Instant::now();
    let v: Value = serde_json::from_str(text).ok()?;
    let t = v.get("event_type")?.as_str()?;
    let e = v.get("event").filter(|e| e.is_object())?;
    match t {
        "ping" => return Some(r#"{"event_type": "pong", "event": {}}"#.to_owned()),
        "key" => {
            let k = keys::by_name(e.get("key")?.as_str()?)?;
            let state = as_bool(e.get("state"))?;
            let finish = e.get("finish").map_or(Some(false), |f| as_bool(Some(f)))?;
            key(hid, k, state, finish, arrival).await;
        }
        "mouse_button" => {
            let bit = button_bit(&e.get("button")?.as_str()?.trim().to_lowercase())?;
            hid.send(Event::Button(bit, as_bool(e.get("state"))?)).await;
        }
        "mouse_move" => {
            let to = e.get("to")?;
            let (x, y) = (as_int(to.get("x"), -32768, 32767)?, as_int(to.get("y"), -32768, 32767)?);
            hid.send(Event::MoveTo(x, y)).await;
        }
        "mouse_relative" | "mouse_wheel" => {
            let list = delta_list(e.get("delta"))?;
            let squashed = e.get("squash").map_or(Some(false), |s| as_bool(Some(s)))?;
            deltas(hid, list, squashed, t == "mouse_wheel").await;
        }
        other => tracing::debug!(event_type = other, "unknown WebSocket event ignored"),
    }
    None
}

/// Handles one non-empty binary message.
pub async fn binary(hid: &Hid, b: &[u8]) -> Reply {
    let arrival = Instant::now();
    let (op, data) = (b[0], &b[1..]);
    match op {
        0x00 => return Reply::Pong,
        0x01 | 0x02 => {
            let Some((&flags, rest)) = data.split_first() else { return Reply::None };
            let pressed = flags & 0x01 != 0;
            if op == 0x01 {
                let k = if flags & 0x80 != 0 {
                    let [hi, lo] = rest else { return Reply::None };
                    match keys::by_evdev(u16::from_be_bytes([*hi, *lo])) {
                        Some(k) => k,
                        // kvmd raises on an unknown code and the session dies.
                        None => return Reply::Close,
                    }
                } else {
                    let name = String::from_utf8_lossy(&rest[..rest.len().min(32)]).into_owned();
                    match keys::by_name(&name).filter(|_| name.len() <= 16) {
                        Some(k) => k,
                        None => return Reply::None,
                    }
                };
                key(hid, k, pressed, flags & 0x02 != 0, arrival).await;
            } else {
                let bit = if flags & 0x80 != 0 {
                    let [hi, lo] = rest else { return Reply::None };
                    match u16::from_be_bytes([*hi, *lo]) {
                        272 => 0x01,
                        273 => 0x02,
                        274 => 0x04,
                        278 => 0x08,
                        277 => 0x10,
                        _ => return Reply::Close,
                    }
                } else {
                    match button_bit(&String::from_utf8_lossy(rest)) {
                        Some(bit) => bit,
                        None => return Reply::None,
                    }
                };
                hid.send(Event::Button(bit, pressed)).await;
            }
        }
        0x03 => {
            let [x1, x2, y1, y2] = data else { return Reply::None };
            let (x, y) = (i16::from_be_bytes([*x1, *x2]), i16::from_be_bytes([*y1, *y2]));
            hid.send(Event::MoveTo(i64::from(x), i64::from(y))).await;
        }
        0x04 | 0x05 => {
            let Some((&flags, pairs)) = data.split_first() else { return Reply::None };
            if pairs.len() % 2 != 0 {
                return Reply::None;
            }
            let list: Vec<(i64, i64)> = pairs
                .chunks(2)
                .map(|p| (i64::from(p[0] as i8).clamp(-127, 127), i64::from(p[1] as i8).clamp(-127, 127)))
                .collect();
            deltas(hid, list, flags & 0x01 != 0, op == 0x05).await;
        }
        other => tracing::debug!(op = other, "unknown binary WebSocket op ignored"),
    }
    Reply::None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squash_like_kvmd() {
        assert_eq!(squash(&[(10, 10), (20, -5)]), [(30, 5)]);
        assert_eq!(squash(&[(100, 0), (100, 0), (-10, 0)]), [(100, 0), (90, 0)]);
        assert_eq!(squash(&[(0, 0)]), Vec::<(i8, i8)>::new());
    }

    #[test]
    fn loose_values() {
        assert_eq!(as_bool(Some(&Value::from("yes"))), Some(true));
        assert_eq!(as_bool(Some(&Value::from(0))), Some(false));
        assert_eq!(as_bool(Some(&Value::from(2))), None);
        assert_eq!(as_int(Some(&Value::from("-99999")), -32768, 32767), Some(-32768));
    }
}
