//! The caps on what clients hold open or in flight (issue #15): `/api/log` followers, `/api/ws`
//! sessions, MJPEG clients and `/api/hid/print` requests of one user. Each service is
//! restarted with a cap of 1: one holder, then a second gets kvmd's 503 (uStreamer's HTML
//! on its face), and the place comes back when the holder goes.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::common::{self, get, text};

const CREDS: &str = "X-KVMD-User: admin\r\nX-KVMD-Passwd: admin\r\n";

/// A request held open on a service socket, once its response head has come.
fn hold(stack: &kvmd_testkit::Stack, sock: &str, request: &str) -> UnixStream {
    let mut s = UnixStream::connect(stack.root.join("run").join(sock)).unwrap_or_else(|e| panic!("{e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap_or_else(|e| panic!("{e}"));
    s.write_all(request.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

fn set(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn a_second_log_follower_websocket_and_stream_client_get_503_until_the_first_goes() {
    let mut stack = common::stack();
    stack.start_service("info", &set(&["log.max_followers=1"])).unwrap_or_else(|e| panic!("{e:#}"));
    stack.start_service("hid", &set(&["limits.ws_sessions=1"])).unwrap_or_else(|e| panic!("{e:#}"));
    stack.start_service("streamer", &set(&["max_clients=1"])).unwrap_or_else(|e| panic!("{e:#}"));
    let auth = ["-u", "admin:admin", "-m", "3"];
    let mut ws = common::WS_UPGRADE.to_vec();
    ws.extend(auth);

    let follower = hold(&stack, "info.sock", &format!("GET /log?follow=1 HTTP/1.1\r\nHost: x\r\n{CREDS}\r\n"));
    let r = get(&stack, "/api/log?follow=1", &auth);
    assert_eq!(r.status(), 503, "{}", text(&r));
    assert!(text(&r).contains("\"error\": \"UnavailableError\""), "{}", text(&r));
    assert_eq!(get(&stack, "/api/log?seek=1", &auth).status(), 200, "a plain read is no follower");

    let session = hold(
        &stack,
        "hid.sock",
        &format!(
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{CREDS}\r\n"
        ),
    );
    let r = get(&stack, "/api/ws", &ws);
    assert_eq!(r.status(), 503, "{}", text(&r));
    assert!(text(&r).contains("\"error\": \"UnavailableError\""), "{}", text(&r));

    let viewer = hold(&stack, "streamer.sock", &format!("GET /stream HTTP/1.1\r\nHost: x\r\n{CREDS}\r\n"));
    let r = get(&stack, "/streamer/stream", &auth);
    assert_eq!(r.status(), 503, "{}", text(&r));
    assert!(text(&r).contains("Too many stream clients"), "{}", text(&r));

    // The holders go: each place comes back (seen within a few seconds, polled).
    drop((follower, session, viewer));
    for (path, extra) in [("/api/log?follow=1", &auth[..]), ("/api/ws", &ws[..]), ("/streamer/stream", &auth[..])] {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let status = get(&stack, path, extra).status();
            if status != 503 {
                assert!(status == 200 || status == 101, "{path}: {status}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{path}: its place never came back");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn one_user_cannot_hold_every_print() {
    let mut stack = common::stack();
    stack
        .start_service("hid", &set(&["limits.prints=2", "limits.prints_per_user=1"]))
        .unwrap_or_else(|e| panic!("{e:#}"));
    // A slow print of admin's (200 characters, 20 ms between events: 8 s), in flight...
    let start = stack.hid_written("keyboard").len();
    let typing = std::process::Command::new("curl")
        .args(["-sS", "-k", "-o", "/dev/null", "-w", "%{http_code}", "-u", "admin:admin", "-X", "POST"])
        .args(["--data-binary", &"a".repeat(200)])
        .arg(stack.url("/api/hid/print?delay=0.02"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stack.hid_written("keyboard").len() == start {
        assert!(std::time::Instant::now() < deadline, "the first print never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // ... so admin's second is refused, with kvmd's body ...
    let r = get(&stack, "/api/hid/print", &["-u", "admin:admin", "-X", "POST", "--data-binary", "b"]);
    assert_eq!(r.status(), 503, "{}", text(&r));
    assert!(text(&r).contains("\"error\": \"UnavailableError\""), "{}", text(&r));
    // ... and a reset ends the first, which gives the place back.
    assert_eq!(get(&stack, "/api/hid/reset", &["-u", "admin:admin", "-X", "POST"]).status(), 200);
    let out = typing.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "the cancelled print is still answered");
    let r = get(&stack, "/api/hid/print", &["-u", "admin:admin", "-X", "POST", "--data-binary", "b"]);
    assert_eq!(r.status(), 200, "{}", text(&r));
}
