//! BliKVM's key names (spec `compat-blikvm-kasm.md` A.1.4, the document's complete table:
//! name → USB HID usage), the modifiers and extra names the real server and the shim accept
//! (A.2.4, A.4.4), and for each the name kvmd-hid knows it by, so that `/keyboard` and the
//! WebSocket's `k` make exactly the reports kvmd-hid makes for those keys.

use serde_json::Value;

/// The document's table: (BliKVM name, usage, kvmd-hid's name).
pub const DOCUMENT: &[(&str, u8, &str)] = &[
    ("KeyA", 4, "KeyA"),
    ("KeyB", 5, "KeyB"),
    ("KeyC", 6, "KeyC"),
    ("KeyD", 7, "KeyD"),
    ("KeyE", 8, "KeyE"),
    ("KeyF", 9, "KeyF"),
    ("KeyG", 10, "KeyG"),
    ("KeyH", 11, "KeyH"),
    ("KeyI", 12, "KeyI"),
    ("KeyJ", 13, "KeyJ"),
    ("KeyK", 14, "KeyK"),
    ("KeyL", 15, "KeyL"),
    ("KeyM", 16, "KeyM"),
    ("KeyN", 17, "KeyN"),
    ("KeyO", 18, "KeyO"),
    ("KeyP", 19, "KeyP"),
    ("KeyQ", 20, "KeyQ"),
    ("KeyR", 21, "KeyR"),
    ("KeyS", 22, "KeyS"),
    ("KeyT", 23, "KeyT"),
    ("KeyU", 24, "KeyU"),
    ("KeyV", 25, "KeyV"),
    ("KeyW", 26, "KeyW"),
    ("KeyX", 27, "KeyX"),
    ("KeyY", 28, "KeyY"),
    ("KeyZ", 29, "KeyZ"),
    ("Digit1", 30, "Digit1"),
    ("Digit2", 31, "Digit2"),
    ("Digit3", 32, "Digit3"),
    ("Digit4", 33, "Digit4"),
    ("Digit5", 34, "Digit5"),
    ("Digit6", 35, "Digit6"),
    ("Digit7", 36, "Digit7"),
    ("Digit8", 37, "Digit8"),
    ("Digit9", 38, "Digit9"),
    ("Digit0", 39, "Digit0"),
    ("Enter", 40, "Enter"),
    ("Escape", 41, "Escape"),
    ("Backspace", 42, "Backspace"),
    ("Tab", 43, "Tab"),
    ("Space", 44, "Space"),
    ("Minus", 45, "Minus"),
    ("Equal", 46, "Equal"),
    ("BracketLeft", 47, "BracketLeft"),
    ("BracketRight", 48, "BracketRight"),
    ("Backslash", 49, "Backslash"),
    ("Semicolon", 51, "Semicolon"),
    ("Quote", 52, "Quote"),
    ("Backquote", 53, "Backquote"),
    ("Comma", 54, "Comma"),
    ("Period", 55, "Period"),
    ("Slash", 56, "Slash"),
    ("CapsLock", 57, "CapsLock"),
    ("F1", 58, "F1"),
    ("F2", 59, "F2"),
    ("F3", 60, "F3"),
    ("F4", 61, "F4"),
    ("F5", 62, "F5"),
    ("F6", 63, "F6"),
    ("F7", 64, "F7"),
    ("F8", 65, "F8"),
    ("F9", 66, "F9"),
    ("F10", 67, "F10"),
    ("F11", 68, "F11"),
    ("F12", 69, "F12"),
    ("PrtSc", 70, "PrintScreen"),
    ("ScrollLock", 71, "ScrollLock"),
    ("Pause", 72, "Pause"),
    ("Insert", 73, "Insert"),
    ("Home", 74, "Home"),
    ("PageUp", 75, "PageUp"),
    ("Delete", 76, "Delete"),
    ("End", 77, "End"),
    ("PageDown", 78, "PageDown"),
    ("ArrowRight", 79, "ArrowRight"),
    ("ArrowLeft", 80, "ArrowLeft"),
    ("ArrowDown", 81, "ArrowDown"),
    ("ArrowUp", 82, "ArrowUp"),
    ("NumLock", 83, "NumLock"),
    ("NumpadDivide", 84, "NumpadDivide"),
    ("NumpadMultiply", 85, "NumpadMultiply"),
    ("NumpadSubtract", 86, "NumpadSubtract"),
    ("NumpadAdd", 87, "NumpadAdd"),
    ("NumpadEnter", 88, "NumpadEnter"),
    ("Numpad1", 89, "Numpad1"),
    ("Numpad2", 90, "Numpad2"),
    ("Numpad3", 91, "Numpad3"),
    ("Numpad4", 92, "Numpad4"),
    ("Numpad5", 93, "Numpad5"),
    ("Numpad6", 94, "Numpad6"),
    ("Numpad7", 95, "Numpad7"),
    ("Numpad8", 96, "Numpad8"),
    ("Numpad9", 97, "Numpad9"),
    ("Numpad0", 98, "Numpad0"),
    ("NumpadDecimal", 99, "NumpadDecimal"),
];

/// The eight modifiers, which BliKVM puts in the report's first byte: (name, bit).
pub const MODIFIERS: &[(&str, u8)] = &[
    ("ControlLeft", 0x01),
    ("ShiftLeft", 0x02),
    ("AltLeft", 0x04),
    ("MetaLeft", 0x08),
    ("ControlRight", 0x10),
    ("ShiftRight", 0x20),
    ("AltRight", 0x40),
    ("MetaRight", 0x80),
];

/// The names the shim adds (A.4.4): the browser's name of `PrtSc`, and two keys the
/// document's table misses.
pub const EXTRA: &[(&str, u8, &str)] =
    &[("PrintScreen", 70, "PrintScreen"), ("IntlBackslash", 100, "IntlBackslash"), ("ContextMenu", 101, "ContextMenu")];

/// At most this many keys besides the modifiers (one boot-keyboard report's six slots).
pub const MAX_KEYS: usize = 6;

/// kvmd-hid's name of one BliKVM key: a name of the table, a modifier, an extra name, or
/// a usage (an integer or a numeric string, 0 … 255) of one of them. `Ok(None)`: usage 0,
/// which is no key.
pub fn kvmd_name(v: &Value) -> Result<Option<&'static str>, String> {
    let usage = match v {
        Value::String(s) => {
            if let Some((_, _, k)) = DOCUMENT.iter().chain(EXTRA).find(|(n, _, _)| n == s) {
                return Ok(Some(k));
            }
            if let Some((n, _)) = MODIFIERS.iter().find(|(n, _)| n == s) {
                return Ok(Some(n));
            }
            s.trim().parse::<u64>().map_err(|_| format!("unknown key: {}", shown(s)))?
        }
        Value::Number(n) => n.as_u64().ok_or_else(|| format!("unknown key: {n}"))?,
        _ => return Err("keycodes must be a list of key names".into()),
    };
    if usage == 0 {
        return Ok(None);
    }
    DOCUMENT
        .iter()
        .chain(EXTRA)
        .find(|(_, u, _)| u64::from(*u) == usage)
        .map(|(_, _, k)| Some(*k))
        .ok_or_else(|| format!("unknown key: {usage}"))
}

/// A name as an error shows it: at most 32 characters, control characters dropped.
fn shown(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(32).collect()
}

/// Whether kvmd-hid's `name` is a modifier.
pub fn is_modifier(name: &str) -> bool {
    MODIFIERS.iter().any(|(n, _)| *n == name)
}

/// A BliKVM key list as kvmd-hid's names: modifiers first (they are one byte of BliKVM's
/// single report, so they are down before any key), each once, at most [`MAX_KEYS`] keys.
pub fn chord(list: &Value) -> Result<Vec<&'static str>, String> {
    let Value::Array(items) = list else { return Err("keycodes must be a list of key names".into()) };
    if items.len() > MODIFIERS.len() + MAX_KEYS {
        return Err(format!("too many keys: at most {MAX_KEYS} besides the modifiers"));
    }
    let mut mods = Vec::new();
    let mut keys = Vec::new();
    for v in items {
        let Some(k) = kvmd_name(v)? else { continue };
        let into = if is_modifier(k) { &mut mods } else { &mut keys };
        if !into.contains(&k) {
            into.push(k);
        }
    }
    if keys.len() > MAX_KEYS {
        return Err(format!("too many keys: at most {MAX_KEYS} besides the modifiers"));
    }
    mods.extend(keys);
    Ok(mods)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvmd_hid::keys::Code;
    use serde_json::json;

    #[test]
    fn the_documents_table_is_complete_and_its_usages_are_kvmd_hids() {
        assert_eq!(DOCUMENT.len(), 95);
        assert!(!DOCUMENT.iter().any(|(_, u, _)| *u == 50), "usage 50 is not in the document");
        for (name, usage, kvmd) in DOCUMENT.iter().chain(EXTRA) {
            let key = kvmd_hid::keys::by_name(kvmd).unwrap_or_else(|| panic!("{name}: kvmd-hid has no {kvmd}"));
            assert_eq!(key.code, Code::Usage(*usage), "{name}");
        }
        for (name, bit) in MODIFIERS {
            let key = kvmd_hid::keys::by_name(name).unwrap_or_else(|| panic!("kvmd-hid has no {name}"));
            assert_eq!(key.code, Code::Modifier(*bit), "{name}");
        }
    }

    #[test]
    fn names_usages_and_refusals() {
        assert_eq!(kvmd_name(&json!("Digit1")), Ok(Some("Digit1")));
        assert_eq!(kvmd_name(&json!("PrtSc")), Ok(Some("PrintScreen")));
        assert_eq!(kvmd_name(&json!(30)), Ok(Some("Digit1")));
        assert_eq!(kvmd_name(&json!("76")), Ok(Some("Delete")));
        assert_eq!(kvmd_name(&json!(0)), Ok(None));
        assert_eq!(kvmd_name(&json!("Nope")), Err("unknown key: Nope".into()));
        assert_eq!(kvmd_name(&json!(50)), Err("unknown key: 50".into()));
        assert_eq!(kvmd_name(&json!(-1)), Err("unknown key: -1".into()));
        assert!(kvmd_name(&json!([1])).is_err());
        let c = chord(&json!(["Delete", "AltLeft", "ControlLeft", "Delete"]));
        assert_eq!(c, Ok(vec!["AltLeft", "ControlLeft", "Delete"]));
        assert!(chord(&json!(["KeyA", "KeyB", "KeyC", "KeyD", "KeyE", "KeyF", "KeyG"])).is_err());
        assert!(chord(&json!(vec!["KeyA"; 100])).is_err());
        assert!(chord(&json!("KeyA")).is_err());
        assert_eq!(chord(&json!([])), Ok(vec![]));
    }
}
