//! The whole chain with the virtual target as the host: HID requests through nginx →
//! kvmd-hid's real OTG backend → the target's HID nodes (pseudo-terminals) → its screen
//! → kvmd-streamer → the picture a client gets; and the Caps Lock LED the target sends
//! back, in `/api/hid`.

use std::time::{Duration, Instant};

use kvmd_testkit::{Stack, StackOptions};

use crate::common;

/// Bright pixels in the first text line of the target's screen (rows 40..56).
pub(crate) fn text_pixels(jpeg: &[u8]) -> usize {
    let d = mozjpeg::Decompress::new_mem(jpeg).unwrap_or_else(|e| panic!("{e}"));
    let mut s = d.grayscale().unwrap_or_else(|e| panic!("{e}"));
    let w = s.width();
    let px: Vec<u8> = s.read_scanlines().unwrap_or_else(|e| panic!("{e}"));
    px[40 * w..56 * w].iter().filter(|&&v| v > 150).count()
}

#[test]
fn typed_text_shows_on_the_targets_screen_and_its_leds_come_back() {
    let stack = Stack::start(StackOptions { vtarget: true, ..StackOptions::default() })
        .unwrap_or_else(|e| panic!("cannot start the stack: {e:#}"));
    let cookie = common::cookie(&stack);
    let _viewer = common::stream_viewer(&stack);
    let snapshot = || {
        let r = common::get(&stack, "/api/streamer/snapshot", &["-H", &cookie]);
        assert_eq!(r.status(), 200, "{}", common::text(&r));
        assert_eq!(r.header("X-UStreamer-Width"), Some("1280"));
        r.body
    };
    let before = text_pixels(&snapshot());
    let r = common::get(&stack, "/api/hid/print", &["-X", "POST", "-H", &cookie, "--data-binary", "Hello, target!"]);
    assert_eq!(r.status(), 200, "{}", common::text(&r));
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let n = text_pixels(&snapshot());
        if n > before + 200 {
            break n;
        }
        assert!(Instant::now() < deadline, "the text never showed: {before} → {n} bright pixels");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(after > before);
    // Caps Lock: the target lights its LED, kvmd-hid reads it back from the node.
    let r = common::get(&stack, "/api/hid/events/send_key?key=CapsLock", &["-X", "POST", "-H", &cookie]);
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = common::get(&stack, "/api/hid", &["-H", &cookie]);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        if v["result"]["keyboard"]["leds"]["caps"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "caps LED never came back: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = stack.log_settled("kvmd-vtarget");
    assert!(!log.contains("failed"), "{log}");
}

/// The target's power through `/api/atx` as a user drives it: kvmd-gpio's `vtarget` chip
/// wires the ATX lines to the target's front panel. A soft power-off clicks the button
/// and the target's OS shuts down (the power LED goes dark, the screen loses its
/// signal); `on` boots it (LED and picture back); `off_hard` holds the button until the
/// target's power supply cuts out.
#[test]
fn the_power_button_turns_the_target_off_and_on_and_the_screen_follows() {
    let stack = Stack::start(StackOptions { vtarget: true, ..StackOptions::default() })
        .unwrap_or_else(|e| panic!("cannot start the stack: {e:#}"));
    let cookie = common::cookie(&stack);
    let _viewer = common::stream_viewer(&stack);
    let field = |path: &str, pointer: &str| {
        let r = common::get(&stack, path, &["-H", &cookie]);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        v.pointer(pointer).cloned().unwrap_or_default()
    };
    let until = |what: &str, path: &str, pointer: &str, want: serde_json::Value| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = field(path, pointer);
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {path} {pointer} stayed {got}, not {want}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let led = "/result/leds/power";
    let online = "/result/streamer/source/online";
    until("the target starts on", "/api/atx", led, true.into());
    until("its picture is live", "/api/streamer", online, true.into());
    let post = |path: &str| {
        let r = common::get(&stack, path, &["-X", "POST", "-H", &cookie]);
        assert_eq!(r.status(), 200, "{path}: {}", common::text(&r));
    };
    // `on` while on: nothing to do (kvmd's LED-aware action).
    post("/api/atx/power?action=on&wait=1");
    assert_eq!(field("/api/atx", led), true);
    post("/api/atx/power?action=off");
    until("the OS shuts down", "/api/atx", led, false.into());
    until("the screen loses its signal", "/api/streamer", online, false.into());
    post("/api/atx/power?action=on&wait=1");
    until("the target boots", "/api/atx", led, true.into());
    until("the picture comes back", "/api/streamer", online, true.into());
    post("/api/atx/power?action=off_hard&wait=1");
    assert_eq!(field("/api/atx", led), false, "forced off while the button was held");
    until("and dark", "/api/streamer", online, false.into());
    let log = stack.log_settled("kvmd-vtarget");
    assert!(log.contains("ShuttingDown") && log.contains("Boot"), "{log}");
}
