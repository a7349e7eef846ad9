//! The whole chain with the virtual target as the host: HID requests through nginx →
//! kvmd-hid's real OTG backend → the target's HID nodes (pseudo-terminals) → its screen
//! → kvmd-streamer → the picture a client gets; and the Caps Lock LED the target sends
//! back, in `/api/hid`.

use std::time::{Duration, Instant};

use kvmd_testkit::{Stack, StackOptions};

use crate::common;

/// Bright pixels in the first text line of the target's screen (rows 40..56).
fn text_pixels(jpeg: &[u8]) -> usize {
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
