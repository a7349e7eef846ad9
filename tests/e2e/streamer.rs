//! kvmd-streamer through the real nginx: uStreamer's `/streamer/*` face (state, MJPEG
//! parts, the `stream_client` cookie and `clients_stat`), kvmd's `/api/streamer*`, the
//! `/api/ws` stream clients that keep capture running, and the errors.

use std::io::Write;
use std::time::{Duration, Instant};

use kvmd_testkit::golden::{self, Response};
use kvmd_testkit::{Stack, StackOptions, curl};

use crate::common::{self, text};

/// A stack whose streamer shows the moving test pattern at 640x480.
fn pattern_stack() -> Stack {
    let set = ["source.type=pattern", "source.motion=true", "params.resolution=640x480", "shutdown_delay=1"];
    Stack::start(StackOptions { streamer_set: set.map(String::from).to_vec(), ..StackOptions::default() })
        .unwrap_or_else(|e| panic!("cannot start the stack: {e:#}"))
}

/// `curl -i` through the front for `secs` seconds (streams are cut there).
fn fetch_for(stack: &Stack, path: &str, cookie: &str, secs: u32) -> Vec<u8> {
    let args: Vec<String> = ["-s", "-i", "-N", "--http1.1", "--max-time", &secs.to_string(), "-H", cookie]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([stack.url(path)])
        .collect();
    curl(&args).unwrap_or_default()
}

fn split_head(raw: &[u8]) -> (String, &[u8]) {
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no head in {raw:?}"));
    (String::from_utf8_lossy(&raw[..at]).into_owned(), &raw[at + 4..])
}

/// The parts of a default/extra-headers MJPEG body: (header lines, data).
fn parts(mut body: &[u8]) -> Vec<(Vec<String>, Vec<u8>)> {
    let sep = b"--boundarydonotcross\r\n";
    assert!(body.starts_with(sep), "the body opens with the boundary");
    body = &body[sep.len()..];
    let mut out = Vec::new();
    while let Some(h) = body.windows(4).position(|w| w == b"\r\n\r\n") {
        let lines: Vec<String> = String::from_utf8_lossy(&body[..h]).split("\r\n").map(str::to_owned).collect();
        let len: usize = lines
            .iter()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Content-Length in {lines:?}"));
        let rest = &body[h + 4..];
        if rest.len() < len + 2 + sep.len() {
            break; // cut by --max-time
        }
        assert_eq!(&rest[len..len + 2 + sep.len()], b"\r\n--boundarydonotcross\r\n");
        out.push((lines, rest[..len].to_vec()));
        body = &rest[len + 2 + sep.len()..];
    }
    out
}

fn state_json(stack: &Stack, cookie: &str) -> serde_json::Value {
    let r = common::get(stack, "/streamer/state", &["-H", cookie]);
    assert_eq!(r.status(), 200);
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", text(&r)))
}

#[test]
fn ustreamer_state_replays_the_golden_while_running_and_answers_while_idle() {
    let stack = common::stack();
    let cookie = common::cookie(&stack);
    // Not capturing: kvmd's nginx would answer 502 here (uStreamer not started,
    // golden ustreamer_state_not_running); kvmd-streamer's face is always up.
    let idle = state_json(&stack, &cookie);
    assert_eq!(idle["result"]["source"]["online"], false);
    assert_eq!(idle["result"]["source"]["captured_fps"], 0);
    let _viewer = common::stream_viewer(&stack);
    let got = common::get(&stack, "/streamer/state", &["-H", &cookie]);
    let expected = golden::load("nginx", "ustreamer_state_running").unwrap_or_else(|e| panic!("{e}"));
    golden::compare("nginx/ustreamer_state_running", &expected, &got).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn mjpeg_parts_cookie_and_clients_stat_through_nginx() {
    let stack = pattern_stack();
    let cookie = common::cookie(&stack);
    let watcher = {
        let (url_stack, c) = (stack.url("/streamer/stream?key=Ab9_-x&extra_headers=1"), cookie.clone());
        std::thread::spawn(move || {
            let args: Vec<String> = ["-s", "-i", "-N", "--http1.1", "--max-time", "3", "-H", &c, &url_stack]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            curl(&args).unwrap_or_default()
        })
    };
    // While it watches, /state lists it with its key and flags.
    let deadline = Instant::now() + Duration::from_secs(3);
    let stat = loop {
        let st = state_json(&stack, &cookie);
        if let Some((id, c)) = st["result"]["stream"]["clients_stat"].as_object().and_then(|m| m.iter().next()) {
            assert_eq!(st["result"]["stream"]["clients"], 1);
            break (id.clone(), c.clone());
        }
        assert!(Instant::now() < deadline, "the client never showed in clients_stat: {st}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let raw = watcher.join().unwrap_or_default();
    let (head, body) = split_head(&raw);
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("\r\nContent-Type: multipart/x-mixed-replace;boundary=boundarydonotcross"), "{head}");
    assert!(head.contains(
        "\r\nCache-Control: no-store, no-cache, must-revalidate, proxy-revalidate, pre-check=0, post-check=0, max-age=0"
    ));
    assert!(head.contains("\r\nPragma: no-cache") && head.contains("\r\nExpires: Mon, 3 Jan 2000 12:34:56 GMT"));
    assert!(!head.to_ascii_lowercase().contains("content-length"), "{head}");
    let set_cookie = head.lines().find_map(|l| l.strip_prefix("Set-Cookie: ")).unwrap_or_else(|| panic!("{head}"));
    let expected_cookie = format!("stream_client=Ab9_-x/{}; path=/; max-age=30", stat.0);
    assert_eq!(set_cookie, expected_cookie);
    assert!(stat.0.len() == 16 && stat.0.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(
        stat.1,
        serde_json::json!({"fps": stat.1["fps"], "extra_headers": true, "advance_headers": false,
            "dual_final_frames": false, "zero_data": false, "key": "Ab9_-x"})
    );
    let parts = parts(body);
    assert!(parts.len() >= 3, "frames of a moving picture: {}", parts.len());
    let names: Vec<&str> = parts[0].0.iter().map(|l| l.split(':').next().unwrap_or_default()).collect();
    assert_eq!(
        names,
        [
            "Content-Type",
            "Content-Length",
            "X-Timestamp",
            "X-UStreamer-Online",
            "X-UStreamer-Dropped",
            "X-UStreamer-Width",
            "X-UStreamer-Height",
            "X-UStreamer-Client-FPS",
            "X-UStreamer-Grab-Begin-Time",
            "X-UStreamer-Grab-End-Time",
            "X-UStreamer-Encode-Begin-Time",
            "X-UStreamer-Encode-End-Time",
            "X-UStreamer-Expose-Begin-Time",
            "X-UStreamer-Expose-Cmp-Time",
            "X-UStreamer-Expose-End-Time",
            "X-UStreamer-Send-Time",
            "X-UStreamer-Latency"
        ]
    );
    for (lines, data) in &parts {
        assert_eq!(lines[0], "Content-Type: image/jpeg");
        assert!(lines.contains(&"X-UStreamer-Online: true".to_owned()), "{lines:?}");
        assert!(lines.contains(&"X-UStreamer-Width: 640".to_owned()), "{lines:?}");
        let ts = lines[2].strip_prefix("X-Timestamp: ").unwrap_or_default();
        assert!(ts.split_once('.').is_some_and(|(_, f)| f.len() == 6), "six decimals: {ts}");
        assert_eq!(golden::jpeg_size(data), Some((640, 480)));
    }
    // The client is gone once the connection is.
    let deadline = Instant::now() + Duration::from_secs(5);
    while state_json(&stack, &cookie)["result"]["stream"]["clients"] != 0 {
        assert!(Instant::now() < deadline, "the client is still listed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn advance_headers_and_zero_data_layouts() {
    let stack = pattern_stack();
    let cookie = common::cookie(&stack);
    let raw = fetch_for(&stack, "/streamer/stream?advance_headers=1&extra_headers=1", &cookie, 2);
    let (head, body) = split_head(&raw);
    assert!(head.contains("stream_client=0/"), "no key: 0 ({head})");
    let adv = b"--boundarydonotcross\r\nContent-Type: image/jpeg\r\nX-Timestamp: ";
    assert!(body.starts_with(adv), "{:?}", String::from_utf8_lossy(&body[..80.min(body.len())]));
    let text = String::from_utf8_lossy(body);
    assert!(!text.contains("Content-Length") && !text.contains("X-UStreamer-"), "advance_headers parts are bare");
    // Each JPEG is followed at once by the next part's headers.
    let after_first = body.windows(2).position(|w| w == [0xFF, 0xD8]).unwrap_or_else(|| panic!("no JPEG"));
    let end = body.windows(2).position(|w| w == [0xFF, 0xD9]).unwrap_or_else(|| panic!("no EOI"));
    assert!(after_first < end);
    assert!(body[end + 2..].starts_with(b"\r\n") && body[end + 4..].starts_with(adv), "next headers follow the frame");

    let raw = fetch_for(&stack, "/streamer/stream?zero_data=1", &cookie, 2);
    let (_, body) = split_head(&raw);
    let parts = parts(body);
    assert!(parts.len() >= 2);
    for (lines, data) in parts {
        assert_eq!(lines[..2], ["Content-Type: image/jpeg".to_owned(), "Content-Length: 0".to_owned()]);
        assert!(data.is_empty());
    }
}

#[test]
fn the_face_needs_credentials_and_checks_its_input() {
    let stack = common::stack();
    let cookie = common::cookie(&stack);
    let r = common::get(&stack, "/streamer/stream", &[]);
    assert_eq!(r.status(), 401);
    assert_eq!(
        text(&r),
        "{\n    \"ok\": false,\n    \"result\": {\n        \"error\": \"UnauthorizedError\",\n        \"error_msg\": \"Unauthorized\"\n    }\n}"
    );
    let r = common::get(&stack, "/streamer/snapshot", &["-H", "X-KVMD-User: admin", "-H", "X-KVMD-Passwd: wrong"]);
    assert_eq!(r.status(), 403);
    let r = common::get(&stack, "/streamer/stream?key=a%22b", &["-H", &cookie]);
    assert_eq!(r.status(), 400, "{}", text(&r));
    let r = common::get(&stack, "/streamer/state", &["-X", "POST", "-H", &cookie]);
    assert_eq!(r.status(), 501);
    let r = common::get(&stack, "/streamer/state", &["-I", "-H", &cookie]);
    assert_eq!(r.status(), 200);
    let r = common::get(&stack, "/streamer/?action=snapshot", &["-H", &cookie]);
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("Content-Type"), Some("image/jpeg"));
    assert_eq!(r.header("X-UStreamer-Online"), Some("false"), "no capture device here");
    assert_eq!(golden::jpeg_size(&r.body), Some((1920, 1080)));
}

#[test]
fn set_params_answer_as_kvmd() {
    let stack = common::stack();
    let cookie = common::cookie(&stack);
    let post = |q: &str| common::get(&stack, &format!("/api/streamer/set_params{q}"), &["-X", "POST", "-H", &cookie]);
    let err = |r: &Response| -> (u16, String, String) {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        (
            r.status(),
            v["result"]["error"].as_str().unwrap_or_default().to_owned(),
            v["result"]["error_msg"].as_str().unwrap_or_default().to_owned(),
        )
    };
    // The golden platform has no quality setting and no H.264.
    let e = err(&post("?quality=50"));
    assert_eq!(
        e,
        (400, "StreamerQualityNotSupported".into(), "This streamer does not support quality settings".into())
    );
    let e = err(&post("?h264_bitrate=100"));
    assert_eq!(e, (400, "StreamerH264NotSupported".into(), "This streamer does not support H264".into()));
    let e = err(&post("?resolution=abc"));
    assert_eq!((e.0, e.1.as_str()), (400, "ValidatorError"));
    let e = err(&post("?desired_fps=500"));
    assert_eq!((e.0, e.1.as_str()), (400, "ValidatorError"));
    assert!(e.2.contains("stream FPS"), "{e:?}");
    let r = post("?resolution=1280x720&desired_fps=");
    assert_eq!((r.status(), text(&r).as_str()), (200, "{\n    \"ok\": true,\n    \"result\": {}\n}"));
    let r = post("?reset=1");
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = common::get(&stack, "/api/streamer", &["-H", &cookie]);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        if v["result"]["params"]["resolution"] == "1280x720" {
            assert_eq!(v["result"]["applied"]["resolution"], "1280x720");
            break;
        }
        assert!(Instant::now() < deadline, "never applied: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Not one of the available resolutions: accepted and ignored, as kvmd does.
    assert_eq!(post("?resolution=1234x567").status(), 200);
    std::thread::sleep(Duration::from_millis(1500));
    let r = common::get(&stack, "/api/streamer", &["-H", &cookie]);
    assert!(text(&r).contains("\"resolution\": \"1280x720\""), "{}", text(&r));
    assert_eq!(common::get(&stack, "/api/streamer/reset", &["-X", "POST", "-H", &cookie]).status(), 200);
}

#[test]
fn ws_stream_clients_run_capture_and_snapshots_save_and_load() {
    let stack = pattern_stack();
    let cookie = common::cookie(&stack);
    let token = cookie.trim_start_matches("Cookie: auth_token=").to_owned();
    // Idle: kvmd's 503 for a snapshot.
    assert_eq!(common::get(&stack, "/api/streamer/snapshot", &["-H", &cookie]).status(), 503);
    let mut ws = crate::ws::connect_with(&stack, &token, "1");
    let full = crate::ws::until(&mut ws, "{\"event_type\": \"streamer\", \"event\": {\"features\"");
    assert!(
        full.contains("\"params\": {\"desired_fps\": 30, \"quality\": 80, \"resolution\": \"640x480\"}")
            || full.contains("\"resolution\": \"640x480\""),
        "{full}"
    );
    // Capture starts: a partial event with uStreamer's state in it.
    let started = crate::ws::until_streamer_part(&mut ws, "streamer");
    assert!(started.contains("\"streamer\": {\"instance_id\": \""), "{started}");
    common::wait_streamer(&stack, true);
    let r = common::get(&stack, "/api/streamer/snapshot?preview=1&preview_max_width=320&save=1", &["-H", &cookie]);
    assert_eq!(r.status(), 200, "{}", text(&r));
    assert_eq!(golden::jpeg_size(&r.body), Some((320, 240)));
    assert_eq!(r.header("X-UStreamer-Width"), Some("640"), "the headers describe the original");
    assert_eq!(r.header("X-UStreamer-Online"), Some("true"));
    // The saved snapshot's part, alone or beside a uStreamer state that changed in the same tick.
    let saved = crate::ws::until_streamer_part(&mut ws, "snapshot");
    assert!(
        saved.contains("\"snapshot\": {\"saved\": {\"online\": true, \"width\": 640, \"height\": 480}}"),
        "{saved}"
    );
    let loaded = common::get(&stack, "/api/streamer/snapshot?load=1", &["-H", &cookie]);
    assert_eq!(loaded.body, r.body);
    let r = common::get(&stack, "/api/streamer/snapshot", &["-X", "DELETE", "-H", &cookie]);
    assert_eq!(r.status(), 200);
    assert_eq!(common::get(&stack, "/api/streamer/snapshot?load=1", &["-H", &cookie]).status(), 503);
    // The session leaves: capture stops after the shutdown delay.
    let _ = ws.close(None);
    drop(ws);
    common::wait_streamer(&stack, false);
}

#[test]
fn a_stalled_client_holds_back_nobody() {
    let stack = pattern_stack();
    let cookie = common::cookie(&stack);
    // A client on the socket that asks for the stream and never reads.
    let mut stalled =
        std::os::unix::net::UnixStream::connect(stack.root.join("run/streamer.sock")).unwrap_or_else(|e| panic!("{e}"));
    stalled.write_all(b"GET /stream HTTP/1.0\r\n\r\n").unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_secs(1));
    let raw = fetch_for(&stack, "/streamer/stream?key=live", &cookie, 3);
    let (_, body) = split_head(&raw);
    let got = parts(body);
    assert!(got.len() >= 5, "the live client gets the moving picture: {} frames", got.len());
    // The live client has gone (its end reaches the streamer a moment later); the stalled
    // one is still there.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let clients = state_json(&stack, &cookie)["result"]["stream"]["clients"].clone();
        if clients == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the stalled one should be the only client left: {clients}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(stalled);
}

#[test]
fn http_1_0_callers_get_close_delimited_bodies_as_from_ustreamer() {
    let stack = pattern_stack();
    let sock = stack.root.join("run/streamer.sock").display().to_string();
    for (path, secs) in [("/state", "2"), ("/stream", "2")] {
        let args: Vec<String> = ["-s", "-i", "--http1.0", "--max-time", secs, "--unix-socket", &sock]
            .iter()
            .map(|s| (*s).to_owned())
            .chain([format!("http://localhost{path}")])
            .collect();
        let raw = curl(&args).unwrap_or_default();
        let (head, body) = split_head(&raw);
        assert!(head.starts_with("HTTP/1.0 200 OK"), "{path}: {head}");
        let lower = head.to_ascii_lowercase();
        assert!(!lower.contains("transfer-encoding") && !lower.contains("content-length"), "{path}: {head}");
        if path == "/state" {
            assert!(body.starts_with(b"{\"ok\": true, \"result\": { \"instance_id\": \"\", "), "{body:?}");
        } else {
            assert!(body.starts_with(b"--boundarydonotcross\r\nContent-Type: image/jpeg\r\n"));
        }
    }
}
