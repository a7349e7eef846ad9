//! WebSocket input: kvmd's JSON events and the web UI's binary protocol (spec `ws.md`
//! sections 3 and 4), turned into HID events. Every field goes through the validator the
//! HTTP routes use ([`crate::valid`]; JSON values as Python's `str()` of them, as kvmd's
//! handlers pass them); an event that is malformed or fails a validator is dropped (logged
//! at debug level), as kvmd drops it, with no reply. Nothing here can end the session
//! except a zero-length binary frame (the caller's business) and, as in kvmd, a numeric
//! key or button code it does not know.

use std::time::Instant;

use kvmd_core::{ApiError, valid};
use serde_json::Value;

use crate::hid::{Event, Hid};
use crate::keys::{self, Key};
use crate::valid::{self as hid_valid, json_arg};

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

/// kvmd's validator result for a WebSocket field: an invalid field drops its whole event
/// (kvmd's handlers `return` on any validator error), logged here at debug level.
fn checked<T>(r: Result<T, ApiError>, event_type: &str) -> Option<T> {
    r.map_err(|e| tracing::debug!(event_type, error = %e.message, "invalid WebSocket event ignored")).ok()
}

/// `valid_bool(event.get(name, default))`.
fn bool_field(e: &Value, name: &str, default: Option<bool>) -> Result<bool, ApiError> {
    match (e.get(name), default) {
        (None, Some(d)) => Ok(d),
        (v, _) => valid::boolean(json_arg(v).as_deref()),
    }
}

/// `(valid_hid_mouse_delta(d["x"]), valid_hid_mouse_delta(d["y"]))` for one delta or a
/// list of them.
fn delta_list(v: Option<&Value>) -> Result<Vec<(i8, i8)>, ApiError> {
    let one = |d: &Value| {
        Ok((
            hid_valid::mouse_delta(json_arg(d.get("x")).as_deref())?,
            hid_valid::mouse_delta(json_arg(d.get("y")).as_deref())?,
        ))
    };
    match v {
        Some(Value::Array(a)) => a.iter().map(one).collect(),
        Some(d) => Ok(vec![one(d)?]),
        None => Err(valid::none_error("Mouse delta")),
    }
}

/// A binary name field as kvmd reads it: at most 32 bytes, ASCII only.
fn ascii_name(rest: &[u8]) -> Option<&str> {
    std::str::from_utf8(&rest[..rest.len().min(32)]).ok().filter(|s| s.is_ascii())
}

async fn key(hid: &Hid, key: Key, pressed: bool, finish: bool, arrival: Instant) {
    hid.send_at(Event::Key(key, pressed), Some(arrival)).await;
    if pressed && finish && !key.sticks() {
        hid.send(Event::Key(key, false)).await;
    }
}

/// kvmd's squash: deltas summed while both sums stay within ±127.
fn squash(deltas: &[(i8, i8)]) -> Vec<(i8, i8)> {
    let mut out = Vec::new();
    let (mut sx, mut sy) = (0i64, 0i64);
    for &(x, y) in deltas {
        let (x, y) = (i64::from(x), i64::from(y));
        if (sx + x).abs() > 127 || (sy + y).abs() > 127 {
            out.push((hid_valid::clamp_delta(sx), hid_valid::clamp_delta(sy)));
            (sx, sy) = (x, y);
        } else {
            sx += x;
            sy += y;
        }
    }
    if sx != 0 || sy != 0 {
        out.push((hid_valid::clamp_delta(sx), hid_valid::clamp_delta(sy)));
    }
    out
}

async fn deltas(hid: &Hid, list: Vec<(i8, i8)>, squashed: bool, wheel: bool) {
    let steps = if squashed { squash(&list) } else { list };
    for (x, y) in steps {
        hid.send(if wheel { Event::Wheel(x, y) } else { Event::Relative(x, y) }).await;
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
            let k = checked(hid_valid::key(json_arg(e.get("key")).as_deref()), t)?;
            let state = checked(bool_field(e, "state", None), t)?;
            let finish = checked(bool_field(e, "finish", Some(false)), t)?;
            key(hid, k, state, finish, arrival).await;
        }
        "mouse_button" => {
            let bit = checked(hid_valid::mouse_button(json_arg(e.get("button")).as_deref()), t)?;
            let state = checked(bool_field(e, "state", None), t)?;
            hid.send(Event::Button(bit, state)).await;
        }
        "mouse_move" => {
            let to = e.get("to");
            let coord = |c| hid_valid::mouse_move(json_arg(to.and_then(|to| to.get(c))).as_deref());
            let (x, y) = (checked(coord("x"), t)?, checked(coord("y"), t)?);
            hid.send(Event::MoveTo(x, y)).await;
        }
        "mouse_relative" | "mouse_wheel" => {
            let list = checked(delta_list(e.get("delta")), t)?;
            let squashed = checked(bool_field(e, "squash", Some(false)), t)?;
            deltas(hid, list, squashed, t == "mouse_wheel").await;
        }
        other => tracing::debug!(event_type = other, "unknown WebSocket event ignored"),
    }
    None
}

/// A viewer's JSON message: a ping is answered as [`json`] answers it; input is dropped
/// (a viewer may watch, not type or point).
pub fn viewer_json(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    let t = v.get("event_type")?.as_str()?;
    v.get("event").filter(|e| e.is_object())?;
    if t == "ping" {
        return Some(r#"{"event_type": "pong", "event": {}}"#.to_owned());
    }
    tracing::debug!(event_type = t, "a viewer's input dropped");
    None
}

/// A viewer's non-empty binary message: a ping is answered, input is dropped.
pub fn viewer_binary(b: &[u8]) -> Reply {
    if b[0] == 0x00 { Reply::Pong } else { Reply::None }
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
                    match ascii_name(rest).map(|n| hid_valid::key(Some(n))) {
                        Some(Ok(k)) => k,
                        _ => return Reply::None,
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
                    match ascii_name(rest).map(|n| hid_valid::mouse_button(Some(n))) {
                        Some(Ok(bit)) => bit,
                        _ => return Reply::None,
                    }
                };
                hid.send(Event::Button(bit, pressed)).await;
            }
        }
        0x03 => {
            let [x1, x2, y1, y2] = data else { return Reply::None };
            let (x, y) = (i16::from_be_bytes([*x1, *x2]), i16::from_be_bytes([*y1, *y2]));
            let (x, y) = (hid_valid::clamp_move(i64::from(x)), hid_valid::clamp_move(i64::from(y)));
            hid.send(Event::MoveTo(x, y)).await;
        }
        0x04 | 0x05 => {
            let Some((&flags, pairs)) = data.split_first() else { return Reply::None };
            if pairs.len() % 2 != 0 {
                return Reply::None;
            }
            let list: Vec<(i8, i8)> = pairs
                .chunks(2)
                .map(|p| (hid_valid::clamp_delta(i64::from(p[0] as i8)), hid_valid::clamp_delta(i64::from(p[1] as i8))))
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
    fn fields_go_through_kvmds_validators() {
        let e = |v: Value| v;
        assert!(bool_field(&e(serde_json::json!({"state": "yes"})), "state", None).is_ok_and(|b| b));
        assert!(bool_field(&e(serde_json::json!({"state": 0})), "state", None).is_ok_and(|b| !b));
        assert!(bool_field(&e(serde_json::json!({"state": 2})), "state", None).is_err());
        assert!(bool_field(&e(serde_json::json!({})), "state", None).is_err(), "required");
        assert!(bool_field(&e(serde_json::json!({})), "finish", Some(false)).is_ok_and(|b| !b));
        assert!(bool_field(&e(serde_json::json!({"finish": null})), "finish", Some(false)).is_err());
        let d = |v: Value| delta_list(Some(&v)).ok();
        assert_eq!(d(serde_json::json!({"x": "-500", "y": 3})), Some(vec![(-127, 3)]));
        assert_eq!(d(serde_json::json!([{"x": 1, "y": 2}, {"x": 3, "y": 4}])), Some(vec![(1, 2), (3, 4)]));
        assert_eq!(d(serde_json::json!([{"x": 1, "y": 2}, {"x": 1.5, "y": 4}])), None, "one bad delta drops all");
        assert_eq!(d(serde_json::json!("x")), None);
        assert_eq!(ascii_name(b" KeyA"), Some(" KeyA"));
        assert_eq!(ascii_name("Ké".as_bytes()), None);
        assert_eq!(ascii_name(&[b'a'; 40]).map(str::len), Some(32));
    }

    /// An output that keeps what it is given.
    #[derive(Default)]
    struct Keep(std::sync::Mutex<Vec<(crate::backend::Device, Vec<u8>)>>);

    impl crate::backend::HidOutput for Keep {
        fn write(&self, device: crate::backend::Device, report: &[u8]) -> bool {
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((device, report.to_vec()));
            true
        }
    }

    #[tokio::test]
    async fn invalid_events_are_dropped_and_the_session_goes_on() {
        let out = std::sync::Arc::new(Keep::default());
        let hid = Hid::start(out.clone(), crate::config::JigglerConfig::default()).unwrap_or_else(|e| panic!("{e:#}"));
        let log = || out.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        for bad in [
            r#"{"event_type": "key", "event": {"key": "NoSuchKey", "state": true}}"#,
            r#"{"event_type": "key", "event": {"key": "KeyA", "state": "maybe"}}"#,
            r#"{"event_type": "key", "event": {"key": "KeyA                 ", "state": true}}"#,
            r#"{"event_type": "mouse_move", "event": {"to": {"x": 1.5, "y": 0}}}"#,
            r#"{"event_type": "mouse_button", "event": {"button": "back", "state": true}}"#,
        ] {
            assert_eq!(json(&hid, bad).await, None);
        }
        assert_eq!(binary(&hid, b"\x01\x01NoSuchKey").await, Reply::None);
        assert_eq!(binary(&hid, "\x01\x01Ké".as_bytes()).await, Reply::None);
        assert_eq!(binary(&hid, b"\x02\x01back").await, Reply::None);
        hid.stop(std::time::Duration::from_secs(1)).await;
        // Only the release-everything of the stop reached the devices.
        assert_eq!(log().len(), 3, "{:?}", log());
        let hid = Hid::start(out.clone(), crate::config::JigglerConfig::default()).unwrap_or_else(|e| panic!("{e:#}"));
        // Stripped, as kvmd's validator strips.
        assert_eq!(json(&hid, r#"{"event_type": "key", "event": {"key": " KeyA ", "state": true}}"#).await, None);
        assert_eq!(binary(&hid, b"\x02\x01 Left").await, Reply::None);
        hid.stop(std::time::Duration::from_secs(1)).await;
        let log = log();
        assert_eq!(log[3], (crate::backend::Device::Keyboard, vec![0, 0, 4, 0, 0, 0, 0, 0]), "{log:?}");
        assert_eq!(log[4].0, crate::backend::Device::Mouse, "{log:?}");
        assert_eq!(log[4].1[0], 1, "{log:?}");
    }

    /// One runtime for every case of the property below.
    fn runtime() -> &'static tokio::runtime::Runtime {
        static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
        RT.get_or_init(|| {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"))
        })
    }

    /// A JSON message: arbitrary text, or one of kvmd's event shapes with hostile values.
    fn message() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let value = prop_oneof![
            Just("null".to_owned()),
            Just("1e400".to_owned()),
            Just("-0".to_owned()),
            Just("\"NaN\"".to_owned()),
            Just("[]".to_owned()),
            Just("{}".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| serde_json::to_string(&f).unwrap_or_default()),
            ".{0,20}".prop_map(|t| serde_json::to_string(&t).unwrap_or_default()),
            Just("\"KeyA\"".to_owned()),
            Just("\"ShiftLeft\"".to_owned()),
            Just("\"left\"".to_owned()),
            Just("true".to_owned()),
        ];
        let kind = prop_oneof![
            Just("key"),
            Just("mouse_button"),
            Just("mouse_move"),
            Just("mouse_relative"),
            Just("mouse_wheel"),
            Just("ping"),
            Just("nosuch")
        ];
        let shaped = (kind, value.clone(), value.clone(), value.clone(), value).prop_map(|(k, a, b, c, d)| {
            format!(
                r#"{{"event_type": "{k}", "event": {{"key": {a}, "button": {a}, "state": {b}, "finish": {c}, "to": {{"x": {c}, "y": {d}}}, "delta": [{{"x": {b}, "y": {d}}}], "squash": {c}}}}}"#
            )
        });
        prop_oneof![shaped, "(?s).{0,120}"]
    }

    proptest::proptest! {
        /// Whatever a client sends, the session never panics, every report written is
        /// whole, and its end leaves nothing held.
        #[test]
        fn ws_messages_never_panic(
            texts in proptest::collection::vec(message(), 0..6),
            binaries in proptest::collection::vec(
                (0u8..7, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)), 0..6),
        ) {
            let out = std::sync::Arc::new(Keep::default());
            let hid = Hid::start(out.clone(), crate::config::JigglerConfig::default());
            let hid = hid.unwrap_or_else(|e| panic!("{e:#}"));
            runtime().block_on(async {
                for t in &texts {
                    let _ = json(&hid, t).await;
                }
                for (op, rest) in &binaries {
                    let mut b = vec![*op];
                    b.extend_from_slice(rest);
                    let _ = binary(&hid, &b).await;
                }
                // A session's end: everything released, every queued report written.
                hid.stop(std::time::Duration::from_secs(5)).await;
            });
            let log = std::mem::take(&mut *out.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            for (device, report) in &log {
                let len = match device {
                    crate::backend::Device::Keyboard => 8,
                    crate::backend::Device::Mouse => 7,
                    crate::backend::Device::MouseAlt => 5,
                };
                proptest::prop_assert_eq!(report.len(), len, "{:?} {:?}", device, report);
            }
            let last = log.iter().rev().find(|(d, _)| *d == crate::backend::Device::Keyboard);
            proptest::prop_assert!(last.is_none_or(|(_, r)| r.iter().all(|&b| b == 0)), "held after reset: {:?}", last);
        }
    }
}
