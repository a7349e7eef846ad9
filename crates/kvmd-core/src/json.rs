//! kvmd's JSON, byte for byte.
//!
//! kvmd answers HTTP with Python's `json.dumps(value, sort_keys=True, indent=4)` and
//! WebSocket events with the compact `json.dumps(value)`. Clients compare bytes
//! (`Content-Length` depends on them), so this module reproduces Python exactly:
//! 4-space indentation, `": "` and `","` at line ends, empty containers inline,
//! everything outside printable ASCII escaped as `\uxxxx` (lower-case hex, surrogate
//! pairs above U+FFFF), and floats in Python's `repr` form (`2.0`, `1e-05`, `1e+16`).
//!
//! Sorting comes from going through [`serde_json::Value`], whose map is a `BTreeMap` as
//! long as nobody in the build enables serde_json's `preserve_order` feature; a test
//! below fails if someone does.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, PrettyFormatter};

/// Serialises like Python `json.dumps(value, sort_keys=True, indent=4)`.
pub fn to_kvmd_string<T: Serialize + ?Sized>(value: &T) -> String {
    // Going through Value sorts the keys of structs as well as maps.
    let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyPretty::new());
    // Serialising a Value into a Vec cannot fail.
    let _ = value.serialize(&mut ser);
    String::from_utf8(out).unwrap_or_default()
}

/// Serialises like Python `json.dumps(value)`: one line, `", "` and `": "` separators,
/// fields in declaration order (kvmd's WebSocket events keep insertion order).
pub fn to_compact_string<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyCompact);
    if value.serialize(&mut ser).is_err() {
        return "null".to_owned();
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Pretty formatter with Python's escaping and float rules.
struct PyPretty<'a> {
    inner: PrettyFormatter<'a>,
}

impl PyPretty<'_> {
    fn new() -> Self {
        Self { inner: PrettyFormatter::with_indent(b"    ") }
    }
}

/// Compact formatter with Python's default separators.
struct PyCompact;

/// Writes a string fragment escaping everything outside 0x20..=0x7E as Python does.
fn write_ascii_fragment<W: ?Sized + io::Write>(writer: &mut W, fragment: &str) -> io::Result<()> {
    let mut start = 0;
    for (i, ch) in fragment.char_indices() {
        if (' '..='~').contains(&ch) {
            continue;
        }
        writer.write_all(&fragment.as_bytes()[start..i])?;
        let mut units = [0u16; 2];
        for unit in ch.encode_utf16(&mut units) {
            write!(writer, "\\u{unit:04x}")?;
        }
        start = i + ch.len_utf8();
    }
    writer.write_all(&fragment.as_bytes()[start..])
}

/// Python `repr(float)`: the shortest round-trip digits, fixed notation while the decimal
/// exponent is in `-4..16`, otherwise `d.ddde[+-]XX`; integral values keep a `.0`.
pub fn python_float_repr(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    // Rust's `{:e}` prints the shortest round-trip digits: "1.2345e3", "-5e-6".
    let sci = format!("{value:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    // Position of the decimal point relative to the first digit, as in Python's dtoa.
    let decpt = exp + 1;
    if (-3..=16).contains(&decpt) {
        let n = digits.len() as i32;
        let body = if decpt <= 0 {
            format!("0.{}{}", "0".repeat((-decpt) as usize), digits)
        } else if decpt >= n {
            format!("{}{}.0", digits, "0".repeat((decpt - n) as usize))
        } else {
            let (int, frac) = digits.split_at(decpt as usize);
            format!("{int}.{frac}")
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}

macro_rules! python_common {
    () => {
        fn write_string_fragment<W: ?Sized + io::Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
            write_ascii_fragment(writer, fragment)
        }

        fn write_char_escape<W: ?Sized + io::Write>(&mut self, writer: &mut W, escape: CharEscape) -> io::Result<()> {
            let s: &[u8] = match escape {
                CharEscape::Quote => b"\\\"",
                CharEscape::ReverseSolidus => b"\\\\",
                CharEscape::Solidus => b"/",
                CharEscape::Backspace => b"\\b",
                CharEscape::FormFeed => b"\\f",
                CharEscape::LineFeed => b"\\n",
                CharEscape::CarriageReturn => b"\\r",
                CharEscape::Tab => b"\\t",
                CharEscape::AsciiControl(byte) => {
                    return write!(writer, "\\u{:04x}", byte);
                }
            };
            writer.write_all(s)
        }

        fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
            writer.write_all(python_float_repr(value).as_bytes())
        }

        fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
            writer.write_all(python_float_repr(f64::from(value)).as_bytes())
        }
    };
}

impl Formatter for PyPretty<'_> {
    python_common!();

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.inner.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.inner.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object_value(w)
    }
}

impl Formatter for PyCompact {
    python_common!();

    fn begin_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_result_envelope_is_kvmds_36_bytes() {
        let body = to_kvmd_string(&json!({"ok": true, "result": {}}));
        assert_eq!(body, "{\n    \"ok\": true,\n    \"result\": {}\n}");
        assert_eq!(body.len(), 36);
    }

    #[test]
    fn keys_are_sorted_by_code_point_even_for_structs() {
        #[derive(Serialize)]
        struct S {
            name: u8,
            #[serde(rename = "Id")]
            id: u8,
            #[serde(rename = "@odata.id")]
            odata: u8,
        }
        let body = to_kvmd_string(&S { name: 1, id: 2, odata: 3 });
        assert_eq!(body, "{\n    \"@odata.id\": 3,\n    \"Id\": 2,\n    \"name\": 1\n}");
    }

    #[test]
    fn nested_and_empty_containers() {
        let body = to_kvmd_string(&json!({"a": [], "b": [1, {"c": null}], "d": {}}));
        assert_eq!(
            body,
            "{\n    \"a\": [],\n    \"b\": [\n        1,\n        {\n            \"c\": null\n        }\n    ],\n    \"d\": {}\n}"
        );
    }

    #[test]
    fn strings_are_ascii_escaped_like_python() {
        let body = to_compact_string(&json!("a\"b\\c/\n\u{7f}é€😀\u{1}"));
        assert_eq!(body, r#""a\"b\\c/\n\u007f\u00e9\u20ac\ud83d\ude00\u0001""#);
    }

    #[test]
    fn floats_follow_python_repr() {
        for (v, want) in [
            (2.0, "2.0"),
            (2.4, "2.4"),
            (36.511, "36.511"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789.125, "123456789.125"),
            (-0.5, "-0.5"),
            (1.5e-7, "1.5e-07"),
            (2.5e300, "2.5e+300"),
            (0.0, "0.0"),
        ] {
            assert_eq!(python_float_repr(v), want, "{v}");
        }
    }

    #[test]
    fn compact_keeps_declaration_order_and_python_separators() {
        #[derive(Serialize)]
        struct Ev {
            event_type: &'static str,
            event: serde_json::Value,
        }
        let s = to_compact_string(&Ev { event_type: "pong", event: json!({"b": 1.0, "a": [1, 2]}) });
        assert_eq!(s, r#"{"event_type": "pong", "event": {"a": [1, 2], "b": 1.0}}"#);
    }

    #[test]
    fn preserve_order_is_not_enabled_anywhere() {
        // If any crate in the build turns on serde_json/preserve_order, Value maps keep
        // insertion order and every kvmd body changes: fail loudly here.
        let v: serde_json::Value = serde_json::from_str(r#"{"b": 1, "a": 2}"#).unwrap_or_default();
        assert_eq!(to_kvmd_string(&v), "{\n    \"a\": 2,\n    \"b\": 1\n}");
    }
}
