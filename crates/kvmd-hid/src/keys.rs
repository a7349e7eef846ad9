//! The 126 web key names kvmd accepts (`KeyboardEvent.code` values, in the order of kvmd's
//! `keymap.csv`), with their evdev codes and USB HID usages (page 0x07). Modifiers are
//! report bits, not usages. Facts from the spec's appendix A (`hid.md`).

/// How a key appears in a keyboard report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// A usage in one of the six key slots.
    Usage(u8),
    /// A bit of the modifier byte.
    Modifier(u8),
}

/// One key: web name, evdev code, report code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The web name, e.g. `KeyA`.
    pub name: &'static str,
    /// The Linux evdev code, e.g. 30 (`KEY_A`).
    pub evdev: u16,
    /// Its place in the report.
    pub code: Code,
}

impl Key {
    /// Modifiers and PrintScreen stay pressed after a press with `finish` (kvmd).
    pub fn sticks(self) -> bool {
        matches!(self.code, Code::Modifier(_)) || self.name == "PrintScreen"
    }
}

/// The key named `name` (case-sensitive).
pub fn by_name(name: &str) -> Option<Key> {
    KEYS.iter().copied().find(|k| k.name == name)
}

/// The key with evdev code `code`.
pub fn by_evdev(code: u16) -> Option<Key> {
    KEYS.iter().copied().find(|k| k.evdev == code)
}

const fn u(name: &'static str, evdev: u16, usage: u8) -> Key {
    Key { name, evdev, code: Code::Usage(usage) }
}

const fn m(name: &'static str, evdev: u16, bit: u8) -> Key {
    Key { name, evdev, code: Code::Modifier(bit) }
}

/// Every key, in `keymap.csv` order.
pub const KEYS: &[Key] = &[
    u("KeyA", 30, 0x04),
    u("KeyB", 48, 0x05),
    u("KeyC", 46, 0x06),
    u("KeyD", 32, 0x07),
    u("KeyE", 18, 0x08),
    u("KeyF", 33, 0x09),
    u("KeyG", 34, 0x0A),
    u("KeyH", 35, 0x0B),
    u("KeyI", 23, 0x0C),
    u("KeyJ", 36, 0x0D),
    u("KeyK", 37, 0x0E),
    u("KeyL", 38, 0x0F),
    u("KeyM", 50, 0x10),
    u("KeyN", 49, 0x11),
    u("KeyO", 24, 0x12),
    u("KeyP", 25, 0x13),
    u("KeyQ", 16, 0x14),
    u("KeyR", 19, 0x15),
    u("KeyS", 31, 0x16),
    u("KeyT", 20, 0x17),
    u("KeyU", 22, 0x18),
    u("KeyV", 47, 0x19),
    u("KeyW", 17, 0x1A),
    u("KeyX", 45, 0x1B),
    u("KeyY", 21, 0x1C),
    u("KeyZ", 44, 0x1D),
    u("Digit1", 2, 0x1E),
    u("Digit2", 3, 0x1F),
    u("Digit3", 4, 0x20),
    u("Digit4", 5, 0x21),
    u("Digit5", 6, 0x22),
    u("Digit6", 7, 0x23),
    u("Digit7", 8, 0x24),
    u("Digit8", 9, 0x25),
    u("Digit9", 10, 0x26),
    u("Digit0", 11, 0x27),
    u("Enter", 28, 0x28),
    u("Escape", 1, 0x29),
    u("Backspace", 14, 0x2A),
    u("Tab", 15, 0x2B),
    u("Space", 57, 0x2C),
    u("Minus", 12, 0x2D),
    u("Equal", 13, 0x2E),
    u("BracketLeft", 26, 0x2F),
    u("BracketRight", 27, 0x30),
    u("Backslash", 43, 0x31),
    u("Semicolon", 39, 0x33),
    u("Quote", 40, 0x34),
    u("Backquote", 41, 0x35),
    u("Comma", 51, 0x36),
    u("Period", 52, 0x37),
    u("Slash", 53, 0x38),
    u("CapsLock", 58, 0x39),
    u("F1", 59, 0x3A),
    u("F2", 60, 0x3B),
    u("F3", 61, 0x3C),
    u("F4", 62, 0x3D),
    u("F5", 63, 0x3E),
    u("F6", 64, 0x3F),
    u("F7", 65, 0x40),
    u("F8", 66, 0x41),
    u("F9", 67, 0x42),
    u("F10", 68, 0x43),
    u("F11", 87, 0x44),
    u("F12", 88, 0x45),
    u("PrintScreen", 99, 0x46),
    u("Insert", 110, 0x49),
    u("Home", 102, 0x4A),
    u("PageUp", 104, 0x4B),
    u("Delete", 111, 0x4C),
    u("End", 107, 0x4D),
    u("PageDown", 109, 0x4E),
    u("ArrowRight", 106, 0x4F),
    u("ArrowLeft", 105, 0x50),
    u("ArrowDown", 108, 0x51),
    u("ArrowUp", 103, 0x52),
    m("ControlLeft", 29, 0x01),
    m("ShiftLeft", 42, 0x02),
    m("AltLeft", 56, 0x04),
    m("MetaLeft", 125, 0x08),
    m("ControlRight", 97, 0x10),
    m("ShiftRight", 54, 0x20),
    m("AltRight", 100, 0x40),
    m("MetaRight", 126, 0x80),
    u("Pause", 119, 0x48),
    u("ScrollLock", 70, 0x47),
    u("NumLock", 69, 0x53),
    u("ContextMenu", 438, 0x65),
    u("NumpadDivide", 98, 0x54),
    u("NumpadMultiply", 55, 0x55),
    u("NumpadSubtract", 74, 0x56),
    u("NumpadAdd", 78, 0x57),
    u("NumpadEnter", 96, 0x58),
    u("Numpad1", 79, 0x59),
    u("Numpad2", 80, 0x5A),
    u("Numpad3", 81, 0x5B),
    u("Numpad4", 75, 0x5C),
    u("Numpad5", 76, 0x5D),
    u("Numpad6", 77, 0x5E),
    u("Numpad7", 71, 0x5F),
    u("Numpad8", 72, 0x60),
    u("Numpad9", 73, 0x61),
    u("Numpad0", 82, 0x62),
    u("NumpadDecimal", 83, 0x63),
    u("Power", 116, 0x66),
    u("IntlBackslash", 86, 0x64),
    u("IntlYen", 124, 0x89),
    u("IntlRo", 89, 0x87),
    u("KanaMode", 90, 0x88),
    u("Convert", 92, 0x8A),
    u("NonConvert", 94, 0x8B),
    u("AudioVolumeMute", 113, 0x7F),
    u("AudioVolumeUp", 115, 0x80),
    u("AudioVolumeDown", 114, 0x81),
    u("F20", 190, 0x6F),
    u("F21", 191, 0x70),
    u("F22", 192, 0x71),
    u("F23", 193, 0x72),
    u("F24", 194, 0x73),
    u("F13", 183, 0x68),
    u("F14", 184, 0x69),
    u("F15", 185, 0x6A),
    u("F16", 186, 0x6B),
    u("F17", 187, 0x6C),
    u("F18", 188, 0x6D),
    u("F19", 189, 0x6E),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(KEYS.len(), 126);
        assert_eq!(by_name("KeyA").map(|k| k.code), Some(Code::Usage(0x04)));
        assert_eq!(by_name("ShiftLeft").map(|k| k.code), Some(Code::Modifier(0x02)));
        assert_eq!(by_name("Delete").map(|k| k.code), Some(Code::Usage(0x4C)));
        assert!(by_name("keya").is_none() && by_name("IntlHash").is_none());
        assert!(by_name("PrintScreen").is_some_and(Key::sticks));
        assert!(by_name("AltRight").is_some_and(Key::sticks));
        assert!(!by_name("Enter").is_some_and(Key::sticks));
        let mut names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 126, "unique names");
    }
}
