//! `/api/ws` input and events, on kvmd-hid's socket with a real WebSocket client
//! (tungstenite): kvmd's frames, JSON and binary input reaching the HID devices, and the
//! release of everything a client held when it goes away. The handshake through nginx is
//! in the golden replay.

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use tungstenite::{Message, client::IntoClientRequest};

use crate::common::{self, login};

pub(crate) type Ws = tungstenite::WebSocket<UnixStream>;

fn connect(stack: &kvmd_testkit::Stack, token: &str) -> Ws {
    connect_with(stack, token, "0")
}

pub(crate) fn connect_with(stack: &kvmd_testkit::Stack, token: &str, stream_arg: &str) -> Ws {
    let stream = UnixStream::connect(stack.root.join("run/hid.sock")).unwrap_or_else(|e| panic!("{e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap_or_else(|e| panic!("{e}"));
    let url = format!("ws://localhost/ws?stream={stream_arg}");
    let mut req = url.into_client_request().unwrap_or_else(|e| panic!("{e}"));
    let cookie = format!("auth_token={token}").parse().unwrap_or_else(|e| panic!("{e}"));
    req.headers_mut().insert("Cookie", cookie);
    let (ws, resp) = tungstenite::client(req, stream).unwrap_or_else(|e| panic!("handshake: {e}"));
    assert_eq!(resp.status(), 101);
    ws
}

fn next_text(ws: &mut Ws) -> String {
    loop {
        match ws.read().unwrap_or_else(|e| panic!("read: {e}")) {
            Message::Text(t) => return t.to_string(),
            Message::Binary(b) => panic!("unexpected binary {b:?}"),
            _ => {}
        }
    }
}

/// Reads until a frame starting with `prefix` arrives (bounded by the read timeout).
pub(crate) fn until(ws: &mut Ws, prefix: &str) -> String {
    until_where(ws, &format!("a frame starting with {prefix}"), |t| t.starts_with(prefix))
}

/// Reads until a frame for which `want` holds arrives (bounded by the read timeout).
pub(crate) fn until_where(ws: &mut Ws, what: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no {what}");
        let t = next_text(ws);
        if want(&t) {
            return t;
        }
    }
}

/// Reads until a `streamer` event that carries the part `key` arrives. One event names
/// every part that changed since the last, so a part may come alone or beside others.
/// Returns the frame as sent (kvmd's key order and spacing).
pub(crate) fn until_streamer_part(ws: &mut Ws, key: &str) -> String {
    until_where(ws, &format!("streamer event with {key}"), |t| {
        let v: serde_json::Value = serde_json::from_str(t).unwrap_or_default();
        v["event_type"] == "streamer" && v["event"].get(key).is_some() && v["event"].get("features").is_none()
    })
}

fn keyboard_hex(stack: &kvmd_testkit::Stack, from: usize) -> Vec<String> {
    stack.hid_written("keyboard")[from..].chunks(8).map(|c| c.iter().map(|b| format!("{b:02x}")).collect()).collect()
}

fn wait_reports(stack: &kvmd_testkit::Stack, from: usize, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while keyboard_hex(stack, from).len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    keyboard_hex(stack, from)
}

#[test]
fn events_input_and_release_on_disconnect() {
    let stack = common::stack();
    let token = login(&stack, "admin", "admin");
    let mut ws = connect(&stack, &token);
    assert_eq!(next_text(&mut ws), r#"{"event_type": "loop", "event": {"version": {"major": 4, "minor": 197}}}"#);
    assert_eq!(next_text(&mut ws), r#"{"event_type": "clients", "event": {"count": 0}}"#);
    // tests/golden/kvmd-4.197/ws/ws_stream0.txt: the hid frame, byte for byte.
    let hid = until(&mut ws, r#"{"event_type": "hid""#);
    assert_eq!(
        hid,
        r#"{"event_type": "hid", "event": {"enabled": true, "online": true, "busy": false, "connected": null, "keyboard": {"online": true, "leds": {"caps": false, "scroll": false, "num": false}, "outputs": {"available": [], "active": ""}}, "mouse": {"outputs": {"available": ["usb", "usb_rel"], "active": "usb"}, "online": true, "absolute": true}, "jiggler": {"enabled": true, "active": false, "interval": 60}}}"#
    );
    // The info part comes from kvmd-info's feed.
    let system = until(&mut ws, r#"{"event_type": "info", "event": {"system""#);
    assert!(system.contains(r#""platform": {"type": "rpi", "base": "Virtual Raspberry Pi""#), "{system}");

    let start = wait_reports(&stack, 0, 1).len() * 8; // the connect-time release
    ws.send(Message::text(r#"{"event_type": "ping", "event": {}}"#)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(until(&mut ws, r#"{"event_type": "pong""#), r#"{"event_type": "pong", "event": {}}"#);
    ws.send(Message::binary(vec![0x00])).unwrap_or_else(|e| panic!("{e}"));
    loop {
        match ws.read().unwrap_or_else(|e| panic!("{e}")) {
            Message::Binary(b) => {
                assert_eq!(b.as_ref(), &[0xFF]);
                break;
            }
            Message::Text(_) => {}
            other => panic!("{other:?}"),
        }
    }
    for m in [
        Message::text(r#"{"event_type": "key", "event": {"key": "KeyB", "state": true}}"#),
        Message::text(r#"{"event_type": "key", "event": {"key": "KeyB", "state": false}}"#),
        Message::binary(vec![0x01, 0x01, b'K', b'e', b'y', b'C']),
        Message::binary(vec![0x01, 0x00, b'K', b'e', b'y', b'C']),
        // Ignored: an unknown event type and an unknown key (ws_stream0.txt), garbage.
        Message::text(r#"{"event_type": "nosuch", "event": {}}"#),
        Message::text(r#"{"event_type": "key", "event": {"key": "NoSuchKey", "state": true}}"#),
        Message::text("not json"),
        Message::binary(vec![0x03, 0x01]),
        // Held when the client leaves.
        Message::binary(vec![0x01, 0x01, b'K', b'e', b'y', b'D']),
    ] {
        ws.send(m).unwrap_or_else(|e| panic!("{e}"));
    }
    let got = wait_reports(&stack, start, 5);
    assert_eq!(
        got,
        ["0000050000000000", "0000000000000000", "0000060000000000", "0000000000000000", "0000070000000000"]
    );
    // A zero-length binary frame ends the session; everything held is released.
    ws.send(Message::binary(Vec::<u8>::new())).unwrap_or_else(|e| panic!("{e}"));
    let got = wait_reports(&stack, start, 6);
    assert_eq!(got.last().map(String::as_str), Some("0000000000000000"), "{got:?}");
}

#[test]
fn bad_stream_argument_and_plain_get() {
    let stack = common::stack();
    let cookie = format!("Cookie: auth_token={}", login(&stack, "admin", "admin"));
    let r = common::get(&stack, "/api/ws?stream=maybe", &["-H", &cookie]);
    assert_eq!(r.status(), 400);
    assert!(common::text(&r).contains("The argument 'maybe' is not a valid bool"));
}

#[test]
fn the_info_part_comes_back_with_kvmd_info() {
    let mut stack = common::stack();
    let token = login(&stack, "admin", "admin");
    stack.stop_service("kvmd-info");
    let mut ws = connect(&stack, &token);
    // Without kvmd-info the session still opens and carries everything else.
    until(&mut ws, r#"{"event_type": "hid""#);
    stack.start_info(&[]).unwrap_or_else(|e| panic!("{e:#}"));
    // The feed is picked up again (kvmd-hid retries every 2 s) and starts with auth.
    let auth = until(&mut ws, r#"{"event_type": "info", "event": {"auth""#);
    assert_eq!(auth, r#"{"event_type": "info", "event": {"auth": {"enabled": true}}}"#);
}

#[test]
fn the_streamer_part_reports_offline_and_comes_back() {
    let mut stack = common::stack();
    let token = login(&stack, "admin", "admin");
    stack.stop_service("kvmd-streamer");
    let mut ws = connect(&stack, &token);
    // kvmd-streamer away: kvmd's "not running" state, nothing saved.
    let off = until(&mut ws, r#"{"event_type": "streamer""#);
    assert!(off.contains(r#""streamer": null, "snapshot": {"saved": null}}}"#), "{off}");
    stack.start_service("streamer", &[]).unwrap_or_else(|e| panic!("{e:#}"));
    // The feed comes back (kvmd-hid retries every 2 s) with kvmd-streamer's full state.
    let full = until(&mut ws, r#"{"event_type": "streamer", "event": {"features""#);
    assert!(full.contains(r#""params": {"desired_fps": 30, "resolution": "1920x1080"}"#), "{full}");
}

#[test]
fn a_new_session_is_announced_to_the_others() {
    let stack = common::stack();
    let token = login(&stack, "admin", "admin");
    let mut a = connect(&stack, &token);
    until(&mut a, r#"{"event_type": "hid""#);
    // A's own burst ends with kvmd's second `clients`.
    assert_eq!(until(&mut a, r#"{"event_type": "clients""#), r#"{"event_type": "clients", "event": {"count": 0}}"#);
    // kvmd-info's categories reach A (`system` only once, on connect).
    until(&mut a, r#"{"event_type": "info", "event": {"system""#);
    // B is a stream client: A hears the new count, then every full state again (kvmd).
    let mut b = connect_with(&stack, &token, "1");
    assert_eq!(next_text(&mut b), r#"{"event_type": "loop", "event": {"version": {"major": 4, "minor": 197}}}"#);
    assert_eq!(next_text(&mut b), r#"{"event_type": "clients", "event": {"count": 1}}"#);
    assert_eq!(until(&mut a, r#"{"event_type": "clients""#), r#"{"event_type": "clients", "event": {"count": 1}}"#);
    until(&mut a, r#"{"event_type": "gpio""#);
    until(&mut a, r#"{"event_type": "hid""#);
    // ... the streamer's and kvmd-info's parts included.
    until(&mut a, r#"{"event_type": "streamer", "event": {"features""#);
    until(&mut a, r#"{"event_type": "info", "event": {"system""#);
    // B leaves: A hears the count drop.
    drop(b);
    assert_eq!(until(&mut a, r#"{"event_type": "clients""#), r#"{"event_type": "clients", "event": {"count": 0}}"#);
}

/// A raw frame: `fin` ends the message; `op` is Text or Continue.
fn frame(payload: &[u8], op: tungstenite::protocol::frame::coding::Data, fin: bool) -> Message {
    use tungstenite::protocol::frame::{Frame, coding::OpCode};
    Message::Frame(Frame::message(payload.to_vec(), OpCode::Data(op), fin))
}

/// A message split across continuation frames is one input event (a fragmented ShiftLeft
/// release used to be dropped, leaving Shift held); one over the cap closes with 1009.
#[test]
fn fragmented_messages_are_reassembled_and_capped() {
    use tungstenite::protocol::frame::coding::Data;
    let stack = common::stack();
    let token = login(&stack, "admin", "admin");
    let mut ws = connect(&stack, &token);
    until(&mut ws, r#"{"event_type": "hid""#);
    let start = wait_reports(&stack, 0, 1).len() * 8;
    let press = r#"{"event_type": "key", "event": {"key": "ShiftLeft", "state": true}}"#;
    ws.send(Message::text(press)).unwrap_or_else(|e| panic!("{e}"));
    let release = r#"{"event_type": "key", "event": {"key": "ShiftLeft", "state": false}}"#.as_bytes();
    let (a, rest) = release.split_at(10);
    let (b, c) = rest.split_at(20);
    for m in [frame(a, Data::Text, false), frame(b, Data::Continue, false), frame(c, Data::Continue, true)] {
        ws.send(m).unwrap_or_else(|e| panic!("{e}"));
    }
    let got = wait_reports(&stack, start, 2);
    assert_eq!(got, ["0200000000000000", "0000000000000000"]);
    // 70 KiB in fragments: over the 64 KiB cap.
    ws.send(frame(&[b' '; 40 * 1024], Data::Text, false)).unwrap_or_else(|e| panic!("{e}"));
    ws.send(frame(&[b' '; 30 * 1024], Data::Continue, true)).unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        assert!(Instant::now() < deadline, "no close");
        match ws.read() {
            Ok(Message::Close(c)) => break c.map(|c| u16::from(c.code)),
            Ok(_) => {}
            Err(e) => panic!("closed without a close frame: {e}"),
        }
    };
    assert_eq!(code, Some(1009));
}
