//! The HID state as kvmd shows it: `GET /hid` and the WebSocket `hid` event (spec
//! `hid.md` section 2, OTG plugin). [`crate::hid::Hid::state`] fills it from the flags the
//! HID core and the HID thread keep.

use serde::Serialize;

use crate::config::JigglerConfig;

/// `GET /hid` (and the WebSocket `hid` event), in kvmd's insertion order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HidState {
    enabled: bool,
    online: bool,
    busy: bool,
    connected: Option<bool>,
    keyboard: KeyboardState,
    mouse: MouseState,
    jiggler: JigglerState,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct KeyboardState {
    online: bool,
    leds: Leds,
    outputs: Outputs,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct Leds {
    caps: bool,
    scroll: bool,
    num: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct Outputs {
    available: Vec<&'static str>,
    active: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct MouseState {
    outputs: Outputs,
    online: bool,
    absolute: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct JigglerState {
    enabled: bool,
    active: bool,
    interval: u64,
}

/// What the state is made of, as the HID core keeps it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flags<'a> {
    /// The keyboard's last write went through.
    pub(crate) keyboard_online: bool,
    /// The active mouse's last write went through.
    pub(crate) mouse_online: bool,
    /// The keyboard LED byte the host sent (bit 0 num, 1 caps, 2 scroll).
    pub(crate) leds: u8,
    /// The relative mouse is the active one.
    pub(crate) relative: bool,
    /// The jiggler's configuration.
    pub(crate) jiggler: &'a JigglerConfig,
    /// The jiggler is on.
    pub(crate) jiggler_active: bool,
}

impl HidState {
    /// The OTG plugin's state for `f`.
    pub(crate) fn new(f: Flags<'_>) -> Self {
        let leds = f.leds;
        HidState {
            enabled: true,
            online: true,
            busy: false,
            connected: None,
            keyboard: KeyboardState {
                online: f.keyboard_online,
                leds: Leds { caps: leds & 2 != 0, scroll: leds & 4 != 0, num: leds & 1 != 0 },
                outputs: Outputs { available: vec![], active: "" },
            },
            mouse: MouseState {
                outputs: Outputs {
                    available: vec!["usb", "usb_rel"],
                    active: if f.relative { "usb_rel" } else { "usb" },
                },
                online: f.mouse_online,
                absolute: !f.relative,
            },
            jiggler: JigglerState {
                enabled: f.jiggler.enabled,
                active: f.jiggler_active,
                interval: f.jiggler.interval,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ws_event_is_kvmds() {
        let jiggler = JigglerConfig::default();
        let f = Flags {
            keyboard_online: true,
            mouse_online: true,
            leds: 0,
            relative: false,
            jiggler: &jiggler,
            jiggler_active: false,
        };
        // tests/golden/kvmd-4.197/ws/ws_stream1_default.txt, the `hid` event.
        assert_eq!(
            kvmd_core::json::to_compact_string(&HidState::new(f)),
            r#"{"enabled": true, "online": true, "busy": false, "connected": null, "keyboard": {"online": true, "leds": {"caps": false, "scroll": false, "num": false}, "outputs": {"available": [], "active": ""}}, "mouse": {"outputs": {"available": ["usb", "usb_rel"], "active": "usb"}, "online": true, "absolute": true}, "jiggler": {"enabled": true, "active": false, "interval": 60}}"#
        );
        let s = HidState::new(Flags { leds: 2 | 4, relative: true, mouse_online: false, ..f });
        assert!(s.keyboard.leds.caps && s.keyboard.leds.scroll && !s.keyboard.leds.num);
        assert_eq!((s.mouse.outputs.active, s.mouse.online, s.mouse.absolute), ("usb_rel", false, false));
    }
}
