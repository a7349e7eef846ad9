//! kvmd's HID validators (`kvmd/validators/hid.py`), with kvmd's raw-length limits and
//! messages (spec `http.md` section 5): one copy, used by the HTTP routes
//! ([`crate::api::hid`]), which answer a failure with kvmd's 400 `ValidatorError`, and by
//! the WebSocket input ([`crate::ws::input`]), which drops the event, as kvmd's WebSocket
//! handlers do (they call the same validators and return on any error).
//!
//! Each validator takes the raw argument (`None` when it was not sent). The WebSocket's
//! JSON values reach them as kvmd's do, through Python's `str()` ([`json_arg`]).

use std::borrow::Cow;

use kvmd_core::valid::check_raw;
use kvmd_core::{ApiError, valid};
use serde_json::Value;

use crate::keys::{self, Key};
use crate::report::button_bit;

/// `valid_hid_key`'s raw limit.
pub const KEY_RAW_LIMIT: usize = 16;

/// The raw limit of `valid_hid_mouse_move` and `valid_hid_mouse_delta`.
pub const MOUSE_RAW_LIMIT: usize = 8;

/// kvmd's mouse button names (`MOUSE_TO_EVDEV`).
pub const BUTTONS: &[&str] = &["left", "right", "middle", "up", "down"];

/// The absolute pointer's range (kvmd's `MouseRange`).
pub const MOVE_RANGE: (i64, i64) = (-32768, 32767);

/// A relative move's or a wheel step's range (kvmd's `MouseDelta`).
pub const DELTA_RANGE: (i64, i64) = (-127, 127);

/// kvmd's keyboard outputs.
pub const KEYBOARD_OUTPUTS: &[&str] = &["usb", "ps2", "disabled"];

/// kvmd's mouse outputs.
pub const MOUSE_OUTPUTS: &[&str] = &["usb", "usb_win98", "usb_rel", "ps2", "disabled"];

/// `valid_hid_key`: a web key name, stripped, case-sensitive; raw limit 16.
pub fn key(arg: Option<&str>) -> Result<Key, ApiError> {
    const NAME: &str = "Keyboard key";
    let arg = arg.ok_or_else(|| valid::none_error(NAME))?;
    check_raw(arg, KEY_RAW_LIMIT)?;
    let v = arg.trim();
    keys::by_name(v).ok_or_else(|| valid::invalid_error(v, NAME))
}

/// `valid_hid_mouse_button`: a button name, stripped and lower-cased; its report bit.
pub fn mouse_button(arg: Option<&str>) -> Result<u8, ApiError> {
    const NAME: &str = "Mouse button";
    let v = valid::string_in_list(arg, NAME, BUTTONS)?;
    button_bit(&v).ok_or_else(|| valid::invalid_error(&v, NAME))
}

/// `valid_hid_mouse_move`: an int (kvmd's number syntax), clamped ([`clamp_move`]); raw
/// limit 8.
pub fn mouse_move(arg: Option<&str>) -> Result<i64, ApiError> {
    mouse_number(arg, "Mouse move").map(clamp_move)
}

/// `valid_hid_mouse_delta`: an int, clamped ([`clamp_delta`]); raw limit 8.
pub fn mouse_delta(arg: Option<&str>) -> Result<i8, ApiError> {
    mouse_number(arg, "Mouse delta").map(clamp_delta)
}

fn mouse_number(arg: Option<&str>, name: &str) -> Result<i64, ApiError> {
    if let Some(v) = arg {
        check_raw(v, MOUSE_RAW_LIMIT)?;
    }
    valid::int(arg, name, None, None)
}

/// kvmd's `MouseRange.normalize`: an absolute coordinate clamped to −32768…32767.
pub fn clamp_move(v: i64) -> i64 {
    v.clamp(MOVE_RANGE.0, MOVE_RANGE.1)
}

/// kvmd's `MouseDelta.normalize`: a delta clamped to −127…127.
pub fn clamp_delta(v: i64) -> i8 {
    // In range after the clamp.
    v.clamp(DELTA_RANGE.0, DELTA_RANGE.1) as i8
}

/// `valid_hid_keyboard_output`.
pub fn keyboard_output(arg: Option<&str>) -> Result<String, ApiError> {
    valid::string_in_list(arg, "Keyboard output", KEYBOARD_OUTPUTS)
}

/// `valid_hid_mouse_output`.
pub fn mouse_output(arg: Option<&str>) -> Result<String, ApiError> {
    valid::string_in_list(arg, "Mouse output", MOUSE_OUTPUTS)
}

/// A WebSocket JSON value as kvmd's validators see it, Python's `str()` of it: a string
/// as it is, an integer in decimal, a float as Python prints it (so never an int), `True`
/// / `False`; `None` when it is absent or `null` (both fail every validator). Lists and
/// objects become their JSON text, which no HID validator accepts.
pub fn json_arg(v: Option<&Value>) -> Option<Cow<'_, str>> {
    Some(match v? {
        Value::Null => return None,
        Value::String(s) => Cow::Borrowed(s.as_str()),
        Value::Bool(b) => Cow::Borrowed(if *b { "True" } else { "False" }),
        Value::Number(n) => Cow::Owned(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (None, None, Some(f)) => kvmd_core::json::python_float_repr(f),
            (None, None, None) => n.to_string(),
        }),
        other => Cow::Owned(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg<T: std::fmt::Debug>(r: Result<T, ApiError>) -> String {
        r.err().map(|e| e.message.into_owned()).unwrap_or_else(|| "ok".to_owned())
    }

    #[test]
    fn keys() {
        assert_eq!(key(Some("KeyA")).map(|k| k.name).ok(), Some("KeyA"));
        assert_eq!(key(Some("  KeyA\t")).map(|k| k.name).ok(), Some("KeyA"), "stripped");
        // tests/golden/kvmd-4.197/direct/hid_send_key_bad_key.http, hid_send_key_no_key.http
        assert_eq!(msg(key(Some("NoSuchKey"))), "The argument 'NoSuchKey' is not a valid Keyboard key");
        assert_eq!(msg(key(None)), "None argument is not a valid Keyboard key");
        assert_eq!(msg(key(Some("keya"))), "The argument 'keya' is not a valid Keyboard key", "case-sensitive");
        assert_eq!(msg(key(Some(""))), "The argument '' is not a valid Keyboard key");
        // The raw limit counts the unstripped value.
        assert_eq!(msg(key(Some("AudioVolumeDown "))), "ok");
        assert_eq!(msg(key(Some(" AudioVolumeDown "))), valid::RAW_LIMIT_MSG);
        assert_eq!(msg(key(Some(&"x".repeat(17)))), valid::RAW_LIMIT_MSG);
    }

    #[test]
    fn buttons() {
        assert_eq!(mouse_button(Some("left")).ok(), Some(0x01));
        assert_eq!(mouse_button(Some(" Down ")).ok(), Some(0x10), "stripped and lower-cased");
        assert_eq!(mouse_button(Some("up")).ok(), Some(0x08));
        assert_eq!(msg(mouse_button(Some("Back"))), "The argument 'back' is not a valid Mouse button");
        assert_eq!(msg(mouse_button(None)), "None argument is not a valid Mouse button");
    }

    #[test]
    fn mouse_numbers() {
        assert_eq!(mouse_move(Some("100")).ok(), Some(100));
        assert_eq!(mouse_move(Some("-99999")).ok(), Some(-32768), "clamped");
        assert_eq!(mouse_move(Some("99999999")).ok(), Some(32767), "8 characters: clamped");
        assert_eq!(msg(mouse_move(Some("999999999"))), valid::RAW_LIMIT_MSG);
        assert_eq!(mouse_move(Some(" 0x10 ")).ok(), Some(16), "kvmd's number syntax");
        assert_eq!(msg(mouse_move(Some("1.5"))), "The argument '1.5' is not a valid Mouse move");
        assert_eq!(msg(mouse_move(None)), "None argument is not a valid Mouse move");
        assert_eq!(msg(mouse_move(Some(" "))), "None argument is not a valid Mouse move");
        assert_eq!(mouse_delta(Some("-5")).ok(), Some(-5));
        assert_eq!(mouse_delta(Some("-128")).ok(), Some(-127), "clamped");
        assert_eq!(mouse_delta(Some("1000")).ok(), Some(127), "clamped");
        assert_eq!(msg(mouse_delta(Some("x"))), "The argument 'x' is not a valid Mouse delta");
        assert_eq!(msg(mouse_delta(Some("123456789"))), valid::RAW_LIMIT_MSG);
        assert_eq!((clamp_move(40000), clamp_delta(-300)), (32767, -127));
    }

    #[test]
    fn outputs() {
        assert_eq!(mouse_output(Some("USB_rel")).ok().as_deref(), Some("usb_rel"));
        assert_eq!(msg(keyboard_output(Some("usb_rel"))), "The argument 'usb_rel' is not a valid Keyboard output");
    }

    #[test]
    fn json_values_as_python_prints_them() {
        let arg = |v: Value| json_arg(Some(&v)).map(Cow::into_owned);
        assert_eq!(arg(Value::from("KeyA")).as_deref(), Some("KeyA"));
        assert_eq!(arg(Value::from(-12)).as_deref(), Some("-12"));
        assert_eq!(arg(Value::from(5.0)).as_deref(), Some("5.0"), "a float is never an int");
        assert_eq!(arg(Value::from(true)).as_deref(), Some("True"));
        assert_eq!(arg(Value::Null), None);
        assert_eq!(json_arg(None), None);
        // Through the validators, as kvmd's WebSocket handlers see them.
        assert_eq!(mouse_move(arg(Value::from(-40000)).as_deref()).ok(), Some(-32768));
        assert!(mouse_move(arg(Value::from(1.5)).as_deref()).is_err());
        assert!(mouse_move(arg(Value::from(123_456_789)).as_deref()).is_err(), "raw limit");
        assert!(valid::boolean(arg(Value::from(true)).as_deref()).is_ok_and(|b| b));
        assert!(valid::boolean(arg(Value::from(0)).as_deref()).is_ok_and(|b| !b));
        assert!(valid::boolean(arg(Value::from(2)).as_deref()).is_err());
        assert!(key(arg(serde_json::json!(["KeyA"])).as_deref()).is_err());
    }
}
