//! kvmd-hid beyond the goldens, through nginx: a device that stops taking reports (a FIFO
//! nobody reads behaves like `f_hid` without a host) turns `online` off and the last report
//! is delivered once it reads again; kvmd's validation messages; shortcut order.

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{self, get, login, text};

fn hid_state(stack: &kvmd_testkit::Stack, cookie: &str) -> serde_json::Value {
    let r = get(stack, "/api/hid", &["-H", cookie]);
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", text(&r)))
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_device_without_a_reader_goes_offline_and_catches_up() {
    let mut stack = common::stack();
    let cookie = format!("Cookie: auth_token={}", login(&stack, "admin", "admin"));
    // The mouse is opened write-only, like a gadget node: with a FIFO, no reader = no host.
    let dev = stack.root.join("dev/kvmd-hid-mouse");
    stack.stop_service("kvmd-hid");
    std::fs::remove_file(&dev).unwrap_or_else(|e| panic!("{e}"));
    assert!(Command::new("mkfifo").arg(&dev).status().is_ok_and(|s| s.success()));
    stack.start_service("hid", &[]).unwrap_or_else(|e| panic!("{e:#}"));
    // Nobody reads the mouse: the write fails and the flag goes off (still 200).
    let r = get(&stack, "/api/hid/events/send_mouse_move?to_x=100&to_y=-100", &["-X", "POST", "-H", &cookie]);
    assert_eq!(r.status(), 200);
    wait_for("mouse.online = false", || hid_state(&stack, &cookie)["result"]["mouse"]["online"] == false);
    assert_eq!(hid_state(&stack, &cookie)["result"]["keyboard"]["online"], true);
    // A reader appears: the pending report is retried and arrives; the flag comes back.
    let dev2 = dev.clone();
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::open(&dev2).unwrap_or_else(|e| panic!("{e}"));
        let mut buf = [0u8; 7];
        f.read_exact(&mut buf).map(|()| buf).unwrap_or_default()
    });
    wait_for("mouse.online = true", || hid_state(&stack, &cookie)["result"]["mouse"]["online"] == true);
    let report = reader.join().unwrap_or_default();
    assert_eq!(report, [0x00, 0x31, 0x40, 0xCD, 0x3F, 0x00, 0x00], "the move, delivered late");
}

#[test]
fn validation_is_kvmds() {
    let stack = common::stack();
    let cookie = common::cookie(&stack);
    common::expect_400(
        &stack,
        &cookie,
        "POST",
        &[
            ("/api/hid/events/send_mouse_move?to_x=abc&to_y=0", "The argument 'abc' is not a valid Mouse move"),
            ("/api/hid/events/send_mouse_move?to_x=123456789&to_y=0", "RAW limit exceed"),
            ("/api/hid/events/send_mouse_relative?delta_x=1", "None argument is not a valid Mouse delta"),
            ("/api/hid/events/send_mouse_button?button=side", "The argument 'side' is not a valid Mouse button"),
            ("/api/hid/set_params?mouse_output=serial", "The argument 'serial' is not a valid Mouse output"),
            ("/api/hid/set_params?jiggler=sometimes", "The argument 'sometimes' is not a valid bool"),
            ("/api/hid/set_connected", "None argument is not a valid bool"),
            ("/api/hid/events/send_shortcut", "None argument is not a valid string list"),
            (
                "/api/hid/events/send_shortcut?keys=KeyA,Nope",
                "Failed sub-validator on one of the item of ['KeyA', 'Nope']",
            ),
        ],
    );
    // Out-of-range numbers are clamped, not refused.
    let before = stack.hid_written("mouse").len();
    let r = get(&stack, "/api/hid/events/send_mouse_move?to_x=99999&to_y=-99999", &["-X", "POST", "-H", &cookie]);
    assert_eq!(r.status(), 200);
    wait_for("the move report", || stack.hid_written("mouse").len() >= before + 7);
    assert_eq!(&stack.hid_written("mouse")[before..before + 7], &[0x00, 0xFF, 0x7F, 0x00, 0x00, 0x00, 0x00]);
    // The jiggler switch shows in the state.
    get(&stack, "/api/hid/set_params?jiggler=1", &["-X", "POST", "-H", &cookie]);
    assert_eq!(hid_state(&stack, &cookie)["result"]["jiggler"]["active"], true);
}

fn keyboard_reports(stack: &kvmd_testkit::Stack, from: usize) -> Vec<String> {
    stack.hid_written("keyboard")[from..].chunks(8).map(|c| c.iter().map(|b| format!("{b:02x}")).collect()).collect()
}

#[test]
fn print_types_with_other_layouts_and_never_leaves_a_modifier() {
    let stack = common::stack();
    let cookie = format!("Cookie: auth_token={}", login(&stack, "admin", "admin"));
    let start = stack.hid_written("keyboard").len();
    let r = get(&stack, "/api/hid/print?keymap=de", &["-X", "POST", "-H", &cookie, "--data-binary", "zZ@é"]);
    assert_eq!(r.status(), 200, "{}", text(&r));
    // QWERTZ z, Shift+z, AltGr+q for @, and é composed: dead acute (the key right of ß), e.
    let want = [
        "00001c0000000000",
        "0000000000000000", // z
        "0200000000000000",
        "02001c0000000000",
        "0200000000000000", // Shift, Z
        "0000000000000000",
        "4000000000000000",
        "4000140000000000",
        "4000000000000000", // AltGr, @
        "0000000000000000", // AltGr released for é
        "00002e0000000000",
        "0000000000000000", // dead acute
        "0000080000000000",
        "0000000000000000", // e
    ];
    wait_for("the typed reports", || keyboard_reports(&stack, start).len() >= want.len());
    assert_eq!(keyboard_reports(&stack, start), want);
    // kvmd's errors.
    let r = get(&stack, "/api/hid/print?keymap=nosuch", &["-X", "POST", "-H", &cookie, "--data-binary", "x"]);
    assert!(text(&r).contains("The argument 'nosuch' is not a valid keymap"));
    let r = get(&stack, "/api/hid/print?delay=9", &["-X", "POST", "-H", &cookie, "--data-binary", "x"]);
    assert!(text(&r).contains("must be keys delay and lesser or equal then 5.0"), "{}", text(&r));
    let r = get(
        &stack,
        "/api/hid/print",
        &["-X", "POST", "-H", &cookie, "--data-binary", "@-", "-H", "Content-Type: text/plain"],
    );
    assert_eq!(r.status(), 200);
}

#[test]
fn a_long_paste_does_not_hold_up_other_requests() {
    let stack = common::stack();
    let cookie = format!("Cookie: auth_token={}", login(&stack, "admin", "admin"));
    // 300 capitals with 10 ms between events: several seconds of Shift held.
    let text300 = "A".repeat(300);
    let mut paste = Command::new("curl")
        .args(["-sS", "-k", "-o", "/dev/null", "-X", "POST", "-H", &cookie, "--data-binary", &text300])
        .arg(stack.url("/api/hid/print?limit=0&delay=0.01"))
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(300));
    let r = get(&stack, "/api/hid/events/send_mouse_move?to_x=1&to_y=1", &["-X", "POST", "-H", &cookie]);
    assert_eq!(r.status(), 200);
    assert!(paste.try_wait().ok().flatten().is_none(), "the other request was answered while the paste still ran");
    let _ = paste.kill();
    let _ = paste.wait();
    // However the paste ends, no modifier stays pressed (bounded wait for the end).
    wait_for("the paste's final release", || {
        let all = stack.hid_written("keyboard");
        all.len() >= 8 && all[all.len() - 8..] == [0u8; 8] && {
            std::thread::sleep(Duration::from_millis(300));
            let again = stack.hid_written("keyboard");
            again.len() == all.len()
        }
    });
}

#[test]
fn the_jiggler_moves_around_the_last_position() {
    let stack = common::stack();
    let cookie = common::cookie(&stack);
    get(&stack, "/api/hid/events/send_mouse_move?to_x=100&to_y=-100", &["-X", "POST", "-H", &cookie]);
    wait_for("the move", || stack.hid_written("mouse").len() >= 7);
    let start = stack.hid_written("mouse").len();
    get(&stack, "/api/hid/set_params?jiggler=1", &["-X", "POST", "-H", &cookie]);
    // The first interval is 0: it moves at its next check, 11 moves 100 ms apart.
    wait_for("11 jiggler moves", || stack.hid_written("mouse").len() >= start + 11 * 7);
    get(&stack, "/api/hid/set_params?jiggler=0", &["-X", "POST", "-H", &cookie]);
    let all = stack.hid_written("mouse");
    let moves: Vec<(u16, u16)> = all[start..start + 11 * 7]
        .chunks(7)
        .map(|r| (u16::from_le_bytes([r[1], r[2]]), u16::from_le_bytes([r[3], r[4]])))
        .collect();
    let (x, y) = (kvmd_hid::report::to_device(100), kvmd_hid::report::to_device(-100));
    assert_eq!(moves[0], (kvmd_hid::report::to_device(200), kvmd_hid::report::to_device(0)));
    assert_eq!(moves[1], (kvmd_hid::report::to_device(0), kvmd_hid::report::to_device(-200)));
    assert_eq!(moves[10], (x, y), "it ends where the mouse was");
}

/// Waits until the keyboard is quiet (nothing written for 300 ms) and released; returns the
/// length of what was written.
fn keyboard_settled(stack: &kvmd_testkit::Stack) -> usize {
    let mut len = 0;
    wait_for("the keyboard to stop, released", || {
        let all = stack.hid_written("keyboard");
        std::thread::sleep(Duration::from_millis(300));
        len = stack.hid_written("keyboard").len();
        len == all.len() && all.len() >= 8 && all[all.len() - 8..] == [0u8; 8]
    });
    len
}

/// A paste stops, releasing its keys, when its client goes away and when `/hid/reset` is
/// posted (it used to type on for its whole length, Shift held, after both).
#[test]
fn a_paste_stops_when_its_client_leaves_and_on_reset() {
    let stack = common::stack();
    let cookie = common::cookie(&stack);
    // 200 capitals, 20 ms between events: 16 s of typing.
    let text200 = "A".repeat(200);
    let paste = || {
        Command::new("curl")
            .args(["-sS", "-k", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", &cookie])
            .args(["--data-binary", &text200])
            .arg(stack.url("/api/hid/print?limit=0&delay=0.02"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    // The whole paste is 402 reports (Shift, 200 x press and release, Shift) of 8 bytes.
    let whole = 402 * 8;
    let start = stack.hid_written("keyboard").len();
    let mut client = paste();
    std::thread::sleep(Duration::from_millis(600));
    let _ = client.kill();
    let _ = client.wait();
    let stopped = keyboard_settled(&stack);
    assert!(stopped - start < whole / 2, "the paste went on: {} of {whole} bytes", stopped - start);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(stack.hid_written("keyboard").len(), stopped, "the paste went on after its client left");

    let start = stack.hid_written("keyboard").len();
    let client = paste();
    std::thread::sleep(Duration::from_millis(600));
    let r = get(&stack, "/api/hid/reset", &["-X", "POST", "-H", &cookie]);
    assert_eq!(r.status(), 200);
    let stopped = keyboard_settled(&stack);
    assert!(stopped - start < whole / 2, "the paste went on: {} of {whole} bytes", stopped - start);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(stack.hid_written("keyboard").len(), stopped, "the paste went on after a reset");
    let out = client.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "the cancelled paste is still answered");
}
