//! Keyboard layouts for `/hid/print`: which key and modifiers type a character, and the
//! key events that type a text ([`paste`]).
//!
//! kvmd types text through QEMU-style keymap files. kvmd-rs reads the same layouts from
//! the system's XKB data through libxkbcommon (the `xkbcommon` crate): each of kvmd's 36
//! keymap names is compiled from its XKB layout and variant, every key and shift level is
//! walked, and each keysym remembers the first (lowest) way to type it. Levels that need
//! Control (or anything but Shift and AltGr) are skipped, as kvmd skips them. A character
//! goes to a keysym with `xkb_utf32_to_keysym`. A character the layout has no key for but
//! can compose (é on a German keyboard: dead acute, then e) is typed as the dead key and its
//! base letter, found by Unicode canonical decomposition — kvmd cannot type those at all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use xkbcommon::xkb;

use crate::keys::{self, Key};

/// kvmd's keymap names (`/usr/share/kvmd/keymaps`) and the XKB layout and variant of each.
pub const NAMES: &[(&str, &str, &str)] = &[
    ("ar", "ara", ""),
    ("bepo", "fr", "bepo"),
    ("cz", "cz", ""),
    ("da", "dk", ""),
    ("de", "de", ""),
    ("de-ch", "ch", "de"),
    ("en-gb", "gb", ""),
    ("en-us", "us", ""),
    ("en-us-altgr-intl", "us", "altgr-intl"),
    ("en-us-colemak", "us", "colemak"),
    ("es", "es", ""),
    ("et", "ee", ""),
    ("fi", "fi", ""),
    ("fo", "fo", ""),
    ("fr", "fr", ""),
    ("fr-be", "be", ""),
    ("fr-ca", "ca", "fr-legacy"),
    ("fr-ch", "ch", "fr"),
    ("hr", "hr", ""),
    ("hu", "hu", ""),
    ("is", "is", ""),
    ("it", "it", ""),
    ("ja", "jp", ""),
    ("lt", "lt", ""),
    ("lv", "lv", ""),
    ("mk", "mk", ""),
    ("nl", "nl", ""),
    ("no", "no", ""),
    ("pl", "pl", ""),
    ("pt", "pt", ""),
    ("pt-br", "br", ""),
    ("ru", "ru", ""),
    ("sl", "si", ""),
    ("sv", "se", ""),
    ("th", "th", ""),
    ("tr", "tr", ""),
];

/// kvmd's keymap names alone (the values `keymap=` accepts).
pub const KEYMAP_NAMES: [&str; NAMES.len()] = {
    let mut names = [""; NAMES.len()];
    let mut i = 0;
    while i < NAMES.len() {
        names[i] = NAMES[i].0;
        i += 1;
    }
    names
};

/// Dead keysyms (keysymdef.h) for the combining marks they add.
const DEAD: &[(char, u32)] = &[
    ('\u{300}', 0xfe50), // grave
    ('\u{301}', 0xfe51), // acute
    ('\u{302}', 0xfe52), // circumflex
    ('\u{303}', 0xfe53), // tilde
    ('\u{304}', 0xfe54), // macron
    ('\u{306}', 0xfe55), // breve
    ('\u{307}', 0xfe56), // abovedot
    ('\u{308}', 0xfe57), // diaeresis
    ('\u{30A}', 0xfe58), // abovering
    ('\u{30B}', 0xfe59), // doubleacute
    ('\u{30C}', 0xfe5a), // caron
    ('\u{327}', 0xfe5b), // cedilla
    ('\u{328}', 0xfe5c), // ogonek
];

/// How to type one character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stroke {
    /// The key.
    pub key: Key,
    /// Whether Shift is needed.
    pub shift: bool,
    /// Whether AltGr (AltRight) is needed.
    pub altgr: bool,
}

/// One compiled layout: keysym → stroke.
#[derive(Debug, Default)]
pub struct Layout {
    strokes: HashMap<u32, Stroke>,
}

/// kvmd's replacements before the lookup (typographic quotes and the en dash); `None`
/// drops the character (the em dash).
fn normalise(c: char) -> Option<char> {
    Some(match c {
        '‚' | '‘' | '’' => '\'',
        '„' | '“' | '”' => '"',
        '–' => '-',
        '—' => return None,
        c => c,
    })
}

impl Layout {
    /// Compiles the XKB layout behind kvmd keymap `name`.
    pub fn compile(name: &str) -> Option<Layout> {
        let &(_, layout, variant) = NAMES.iter().find(|(n, _, _)| *n == name)?;
        let ctx = xkb::Context::new(xkb::CONTEXT_NO_FLAGS);
        let keymap =
            xkb::Keymap::new_from_names(&ctx, "evdev", "pc105", layout, variant, None, xkb::KEYMAP_COMPILE_NO_FLAGS)?;
        let shift = 1u32 << keymap.mod_get_index("Shift");
        let level3 = 1u32 << keymap.mod_get_index("Mod5");
        let mut strokes: HashMap<u32, Stroke> = HashMap::new();
        let (min, max) = (keymap.min_keycode().raw(), keymap.max_keycode().raw());
        for code in min..=max {
            let kc = xkb::Keycode::new(code);
            // XKB keycodes are evdev codes + 8.
            let Some(key) = code.checked_sub(8).and_then(|e| u16::try_from(e).ok()).and_then(keys::by_evdev) else {
                continue;
            };
            if matches!(key.code, keys::Code::Modifier(_)) {
                continue;
            }
            for level in 0..keymap.num_levels_for_key(kc, 0) {
                let mut masks = [0u32; 8];
                let n = keymap.key_get_mods_for_level(kc, 0, level, &mut masks);
                // The simplest modifier set made only of Shift and AltGr.
                let Some(mask) = masks[..n.min(8)]
                    .iter()
                    .copied()
                    .filter(|m| m & !(shift | level3) == 0)
                    .min_by_key(|m| m.count_ones())
                else {
                    continue;
                };
                for sym in keymap.key_get_syms_by_level(kc, 0, level) {
                    strokes.entry(sym.raw()).or_insert(Stroke {
                        key,
                        shift: mask & shift != 0,
                        altgr: mask & level3 != 0,
                    });
                }
            }
        }
        Some(Layout { strokes })
    }

    /// The strokes that type `c`: one key, or a dead key and the base letter.
    pub fn strokes(&self, c: char) -> Option<Vec<Stroke>> {
        if let Some(s) = self.stroke(c) {
            return Some(vec![s]);
        }
        let c = normalise(c)?;
        let mut parts = Vec::new();
        unicode_normalization::char::decompose_canonical(c, |p| parts.push(p));
        let [base, mark] = parts[..] else { return None };
        let dead = DEAD.iter().find(|(m, _)| *m == mark).map(|(_, sym)| *sym)?;
        Some(vec![*self.strokes.get(&dead)?, self.stroke(base)?])
    }

    /// The stroke for `c`, if this layout has a key for it.
    pub fn stroke(&self, c: char) -> Option<Stroke> {
        let plain = |name| keys::by_name(name).map(|key| Stroke { key, shift: false, altgr: false });
        match normalise(c)? {
            '\n' => plain("Enter"),
            '\t' => plain("Tab"),
            ' ' => plain("Space"),
            c if c.is_control() => None,
            c => self.strokes.get(&xkb::utf32_to_keysym(u32::from(c)).raw()).copied(),
        }
    }
}

/// What typing a text takes (kvmd's `text_to_evdev_keys`): key presses (`true`) and
/// releases, in order, and how many characters the layout could not type (skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paste {
    /// The key events, in order.
    pub events: Vec<(Key, bool)>,
    /// Characters skipped: no key for them in the layout, or not printable.
    pub skipped: usize,
}

/// The key events that type the first `limit` characters of `text` (all of it when
/// `limit` is 0) with `layout` (spec `hid.md` section 5): per stroke, ShiftLeft and
/// AltRight pressed or released as the stroke needs them, then the key pressed and
/// released; at the end, the modifiers still held are released. `None` only if the key
/// table has no ShiftLeft or AltRight.
pub fn paste(layout: &Layout, text: &str, limit: usize) -> Option<Paste> {
    let (shift_key, altgr_key) = (keys::by_name("ShiftLeft")?, keys::by_name("AltRight")?);
    let limit = if limit == 0 { usize::MAX } else { limit };
    let (mut shift, mut altgr) = (false, false);
    let mut events = Vec::new();
    let mut skipped = 0;
    for c in text.chars().take(limit) {
        let Some(strokes) = layout.strokes(c) else {
            skipped += 1;
            continue;
        };
        for stroke in strokes {
            if stroke.shift != shift {
                shift = stroke.shift;
                events.push((shift_key, shift));
            }
            if stroke.altgr != altgr {
                altgr = stroke.altgr;
                events.push((altgr_key, altgr));
            }
            events.extend([(stroke.key, true), (stroke.key, false)]);
        }
    }
    for (held, key) in [(shift, shift_key), (altgr, altgr_key)] {
        if held {
            events.push((key, false));
        }
    }
    Some(Paste { events, skipped })
}

/// Compiled layouts, each built on first use.
#[derive(Default)]
pub struct Layouts {
    cache: Mutex<HashMap<String, Arc<Layout>>>,
}

impl Layouts {
    /// The layout for kvmd keymap `name`, or `None` when it is not one of [`NAMES`] or the
    /// system's XKB data cannot compile it.
    pub fn get(&self, name: &str) -> Option<Arc<Layout>> {
        if let Some(l) = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(name) {
            return Some(l.clone());
        }
        let l = Arc::new(Layout::compile(name)?);
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(name.to_owned(), l.clone());
        Some(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(l: &Layout, c: char) -> Option<(&'static str, bool, bool)> {
        l.stroke(c).map(|s| (s.key.name, s.shift, s.altgr))
    }

    #[test]
    fn us_and_german_and_russian() {
        let us = Layout::compile("en-us").unwrap_or_else(|| panic!("us"));
        assert_eq!(s(&us, 'H'), Some(("KeyH", true, false)));
        assert_eq!(s(&us, 'e'), Some(("KeyE", false, false)));
        assert_eq!(s(&us, ','), Some(("Comma", false, false)));
        assert_eq!(s(&us, '!'), Some(("Digit1", true, false)));
        assert_eq!(s(&us, '\n'), Some(("Enter", false, false)));
        assert_eq!(s(&us, '’'), Some(("Quote", false, false)));
        assert_eq!(s(&us, '—'), None);
        assert_eq!(s(&us, 'é'), None);
        assert_eq!(us.strokes('é'), None, "plain US has no dead keys");
        let de = Layout::compile("de").unwrap_or_else(|| panic!("de"));
        assert_eq!(s(&de, 'z'), Some(("KeyY", false, false)), "QWERTZ");
        assert_eq!(s(&de, '@'), Some(("KeyQ", false, true)), "AltGr level");
        assert_eq!(s(&de, 'ß'), Some(("Minus", false, false)));
        // é: no key of its own on de, composed with the dead acute (the key right of ß).
        let e = de.strokes('é').unwrap_or_default();
        let names: Vec<(&str, bool)> = e.iter().map(|s| (s.key.name, s.shift)).collect();
        assert_eq!(names, [("Equal", false), ("KeyE", false)]);
        assert_eq!(de.strokes('ê').map(|v| v.len()), Some(2), "dead circumflex");
        assert_eq!(de.strokes('ü').map(|v| v.len()), Some(1), "a key of its own wins");
        let ru = Layout::compile("ru").unwrap_or_else(|| panic!("ru"));
        assert_eq!(s(&ru, 'ф'), Some(("KeyA", false, false)));
        assert!(Layout::compile("nosuch").is_none());
    }

    #[test]
    fn every_kvmd_keymap_compiles() {
        for (name, _, _) in NAMES {
            let l = Layout::compile(name).unwrap_or_else(|| panic!("{name} does not compile"));
            assert!(l.strokes.len() > 40, "{name} types only {} keysyms", l.strokes.len());
        }
        assert_eq!(NAMES.len(), 36);
    }

    fn events(p: &Paste) -> Vec<(&'static str, bool)> {
        p.events.iter().map(|(k, pressed)| (k.name, *pressed)).collect()
    }

    #[test]
    fn paste_like_kvmd() {
        let us = Layout::compile("en-us").unwrap_or_else(|| panic!("us"));
        // tests/golden/kvmd-4.197/direct/hid_print.hid-keyboard.txt: "Hello, World!".
        let p = paste(&us, "Hello, World!", 1024).unwrap_or_else(|| panic!("no modifiers"));
        let e = events(&p);
        assert_eq!(
            e[..6],
            [
                ("ShiftLeft", true),
                ("KeyH", true),
                ("KeyH", false),
                ("ShiftLeft", false),
                ("KeyE", true),
                ("KeyE", false)
            ]
        );
        assert_eq!(
            e[e.len() - 4..],
            [("ShiftLeft", true), ("Digit1", true), ("Digit1", false), ("ShiftLeft", false)],
            "Shift released at the end"
        );
        // 13 characters, each a press and a release, and Shift pressed and released 3 times.
        assert_eq!((e.len(), p.skipped), (13 * 2 + 3 * 2, 0));
        // tests/golden/kvmd-4.197/direct/hid_print_limit.*: limit=3, "abcdef"; 0 = no limit.
        let names = |p: &Paste| events(p).into_iter().filter(|(_, d)| *d).map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(names(&paste(&us, "abcdef", 3).unwrap_or_else(|| panic!())), ["KeyA", "KeyB", "KeyC"]);
        assert_eq!(names(&paste(&us, "abcdef", 0).unwrap_or_else(|| panic!())).len(), 6);
        // The limit counts characters, not bytes; what cannot be typed is skipped, counted.
        let p = paste(&us, "é—a\u{7}b", 4).unwrap_or_else(|| panic!());
        assert_eq!((names(&p), p.skipped), (vec!["KeyA"], 3));
    }

    #[test]
    fn paste_with_altgr_and_dead_keys() {
        let de = Layout::compile("de").unwrap_or_else(|| panic!("de"));
        let p = paste(&de, "@é", 0).unwrap_or_else(|| panic!());
        assert_eq!(
            events(&p),
            [
                ("AltRight", true),
                ("KeyQ", true),
                ("KeyQ", false),
                ("AltRight", false),
                ("Equal", true),
                ("Equal", false),
                ("KeyE", true),
                ("KeyE", false),
            ]
        );
        // AltGr still held at the end is released.
        assert_eq!(events(&paste(&de, "a@", 0).unwrap_or_else(|| panic!())).last(), Some(&("AltRight", false)));
    }
}
