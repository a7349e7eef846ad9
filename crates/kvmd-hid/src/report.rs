//! Keyboard and mouse state, and the USB HID reports each change produces, byte for byte
//! as kvmd's OTG plugin writes them (spec `hid.md` sections 4 and 6; the golden report logs
//! `tests/golden/kvmd-4.197/*/hid_*.hid-*.txt` are the oracle).

use crate::keys::{Code, Key};

/// The boot keyboard: a modifier byte and six key slots that keep their positions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyboard {
    modifiers: u8,
    slots: [u8; 6],
}

impl Keyboard {
    /// The current 8-byte report `[modifiers, 0, k1..k6]`.
    pub fn report(&self) -> [u8; 8] {
        let s = self.slots;
        [self.modifiers, 0, s[0], s[1], s[2], s[3], s[4], s[5]]
    }

    /// Applies one press or release and returns the reports it produces, in order.
    pub fn apply(&mut self, key: Key, pressed: bool) -> Vec<[u8; 8]> {
        let mut out = Vec::new();
        match key.code {
            Code::Modifier(bit) => {
                if self.modifiers & bit != 0 {
                    self.modifiers &= !bit;
                    out.push(self.report());
                }
                if pressed {
                    self.modifiers |= bit;
                    out.push(self.report());
                }
            }
            Code::Usage(usage) => {
                if let Some(i) = self.slots.iter().position(|&s| s == usage) {
                    self.slots[i] = 0;
                    out.push(self.report());
                }
                if pressed {
                    let free = match self.slots.iter().position(|&s| s == 0) {
                        Some(i) => i,
                        None => {
                            // All six taken: release every non-modifier key first.
                            self.slots = [0; 6];
                            out.push(self.report());
                            0
                        }
                    };
                    self.slots[free] = usage;
                    out.push(self.report());
                }
            }
        }
        out
    }

    /// Releases everything; the all-zero report.
    pub fn release_all(&mut self) -> [u8; 8] {
        *self = Self::default();
        self.report()
    }

    /// Whether any key or modifier is held.
    pub fn any_held(&self) -> bool {
        self.modifiers != 0 || self.slots.iter().any(|&s| s != 0)
    }
}

/// Mouse buttons (`kvmd/mouse.py`): report bits.
pub fn button_bit(name: &str) -> Option<u8> {
    Some(match name {
        "left" => 0x01,
        "right" => 0x02,
        "middle" => 0x04,
        "up" => 0x08,
        "down" => 0x10,
        _ => return None,
    })
}

/// kvmd's remap of an API coordinate (−32768…32767) to the device's 0…32767.
pub fn to_device(v: i64) -> u16 {
    let v = v.clamp(-32768, 32767);
    let dev = ((v + 32768) * 32767).div_euclid(65535);
    dev.clamp(0, 32767) as u16
}

/// The absolute mouse: buttons and the last position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AbsMouse {
    buttons: u8,
    x: u16,
    y: u16,
}

impl AbsMouse {
    /// `[buttons, X lo, X hi, Y lo, Y hi, wheel, hwheel]`.
    pub fn report(&self, wheel: i8, hwheel: i8) -> [u8; 7] {
        let [xl, xh] = self.x.to_le_bytes();
        let [yl, yh] = self.y.to_le_bytes();
        [self.buttons, xl, xh, yl, yh, wheel as u8, hwheel as u8]
    }

    /// A button press or release ("release first if held, then press").
    pub fn button(&mut self, bit: u8, pressed: bool) -> Vec<[u8; 7]> {
        let mut out = Vec::new();
        if self.buttons & bit != 0 {
            self.buttons &= !bit;
            out.push(self.report(0, 0));
        }
        if pressed {
            self.buttons |= bit;
            out.push(self.report(0, 0));
        }
        out
    }

    /// Moves to API coordinates.
    pub fn move_to(&mut self, x: i64, y: i64) -> [u8; 7] {
        self.x = to_device(x);
        self.y = to_device(y);
        self.report(0, 0)
    }

    /// Buttons released at the last position.
    pub fn release_all(&mut self) -> [u8; 7] {
        self.buttons = 0;
        self.report(0, 0)
    }
}

/// The relative mouse: buttons only; moves are deltas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelMouse {
    buttons: u8,
}

impl RelMouse {
    /// `[buttons, dx, dy, wheel, hwheel]`.
    pub fn report(&self, dx: i8, dy: i8, wheel: i8, hwheel: i8) -> [u8; 5] {
        [self.buttons, dx as u8, dy as u8, wheel as u8, hwheel as u8]
    }

    /// A button press or release.
    pub fn button(&mut self, bit: u8, pressed: bool) -> Vec<[u8; 5]> {
        let mut out = Vec::new();
        if self.buttons & bit != 0 {
            self.buttons &= !bit;
            out.push(self.report(0, 0, 0, 0));
        }
        if pressed {
            self.buttons |= bit;
            out.push(self.report(0, 0, 0, 0));
        }
        out
    }

    /// Buttons released.
    pub fn release_all(&mut self) -> [u8; 5] {
        self.buttons = 0;
        self.report(0, 0, 0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::by_name;

    fn key(n: &str) -> Key {
        by_name(n).unwrap_or_else(|| panic!("{n}"))
    }

    fn hex(r: &[[u8; 8]]) -> Vec<String> {
        r.iter().map(|r| r.iter().map(|b| format!("{b:02x}")).collect()).collect()
    }

    #[test]
    fn golden_keyboard_sequences() {
        let mut k = Keyboard::default();
        // hid_send_key_KeyA: press + release.
        let mut r = k.apply(key("KeyA"), true);
        r.extend(k.apply(key("KeyA"), false));
        assert_eq!(hex(&r), ["0000040000000000", "0000000000000000"]);
        // hid_send_key_KeyA_state_true twice: the second releases first.
        assert_eq!(hex(&k.apply(key("KeyA"), true)), ["0000040000000000"]);
        assert_eq!(hex(&k.apply(key("KeyA"), true)), ["0000000000000000", "0000040000000000"]);
        assert_eq!(hex(&k.apply(key("KeyA"), false)), ["0000000000000000"]);
        assert!(k.apply(key("KeyA"), false).is_empty(), "releasing a key not held writes nothing");
        // hid_send_shortcut: ControlLeft, AltLeft, Delete, then reverse.
        let mut r = Vec::new();
        for n in ["ControlLeft", "AltLeft", "Delete"] {
            r.extend(k.apply(key(n), true));
        }
        for n in ["Delete", "AltLeft", "ControlLeft"] {
            r.extend(k.apply(key(n), false));
        }
        assert_eq!(
            hex(&r),
            [
                "0100000000000000",
                "0500000000000000",
                "05004c0000000000",
                "0500000000000000",
                "0100000000000000",
                "0000000000000000"
            ]
        );
    }

    #[test]
    fn slots_keep_positions_and_a_seventh_key_clears_them() {
        let mut k = Keyboard::default();
        for n in ["KeyA", "KeyB", "KeyC"] {
            k.apply(key(n), true);
        }
        assert_eq!(hex(&k.apply(key("KeyB"), false)), ["0000040006000000"]);
        for n in ["KeyD", "KeyE", "KeyF", "KeyG"] {
            k.apply(key(n), true);
        }
        assert_eq!(hex(&[k.report()]), ["000004070608090a"], "freed slots are reused first");
        let r = k.apply(key("KeyH"), true);
        assert_eq!(hex(&r), ["0000000000000000", "00000b0000000000"]);
    }

    #[test]
    fn golden_mouse_reports() {
        assert_eq!((to_device(100), to_device(-100)), (0x4031, 0x3FCD));
        assert_eq!((to_device(-32768), to_device(32767), to_device(99999)), (0, 32767, 32767));
        let mut m = AbsMouse::default();
        assert_eq!(m.move_to(100, -100), [0x00, 0x31, 0x40, 0xCD, 0x3F, 0x00, 0x00]);
        assert_eq!(m.report(-5, 0), [0x00, 0x31, 0x40, 0xCD, 0x3F, 0xFB, 0x00]);
        let mut r = m.button(0x01, true);
        r.extend(m.button(0x01, false));
        assert_eq!(r, [[0x01, 0x31, 0x40, 0xCD, 0x3F, 0, 0], [0x00, 0x31, 0x40, 0xCD, 0x3F, 0, 0]]);
        assert_eq!(m.release_all(), [0x00, 0x31, 0x40, 0xCD, 0x3F, 0, 0]);
        let rel = RelMouse::default();
        assert_eq!(rel.report(10, 10, 0, 0), [0x00, 0x0A, 0x0A, 0x00, 0x00]);
        assert_eq!(button_bit("down"), Some(0x10));
        assert_eq!(button_bit("Left"), None);
    }

    proptest::proptest! {
        #[test]
        fn keyboard_never_holds_more_than_six_keys(events in proptest::collection::vec((0usize..126, proptest::bool::ANY), 0..200)) {
            let mut k = Keyboard::default();
            for (i, pressed) in events {
                let key = crate::keys::KEYS[i];
                for r in k.apply(key, pressed) {
                    let held = r[2..].iter().filter(|&&b| b != 0).count();
                    proptest::prop_assert!(held <= 6);
                    proptest::prop_assert_eq!(r[1], 0);
                }
            }
            proptest::prop_assert_eq!(k.release_all(), [0u8; 8]);
        }
    }
}
