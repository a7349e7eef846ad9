//! Helpers shared by the end-to-end tests.

use kvmd_testkit::golden::Response;
use kvmd_testkit::{Stack, curl};

/// A request through the front; returns the parsed response.
pub(crate) fn get(stack: &Stack, path: &str, extra: &[&str]) -> Response {
    let mut args: Vec<String> = vec!["-i".into(), "--http1.1".into(), stack.url(path)];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let raw = curl(&args).unwrap_or_else(|e| panic!("{e}"));
    Response::parse(&raw).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&raw)))
}

/// Logs in through the front and returns the session token.
pub(crate) fn login(stack: &Stack, user: &str, passwd: &str) -> String {
    let body = format!("user={user}&passwd={passwd}");
    let r = get(stack, "/api/auth/login", &["-X", "POST", "-d", &body]);
    assert_eq!(r.status(), 200, "login failed: {}", String::from_utf8_lossy(&r.body));
    r.token().unwrap_or_else(|| panic!("no token in {r:?}"))
}

/// curl's headers of a WebSocket upgrade (a fixed key: the handshake's answer is not checked).
pub(crate) const WS_UPGRADE: [&str; 8] = [
    "-H",
    "Connection: Upgrade",
    "-H",
    "Upgrade: websocket",
    "-H",
    "Sec-WebSocket-Version: 13",
    "-H",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
];

/// The body as text.
pub(crate) fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// A stack with default options, or a readable panic.
pub(crate) fn stack() -> Stack {
    Stack::start(kvmd_testkit::StackOptions::default()).unwrap_or_else(|e| panic!("cannot start the stack: {e:#}"))
}

/// A session cookie header for admin.
pub(crate) fn cookie(stack: &Stack) -> String {
    format!("Cookie: auth_token={}", login(stack, "admin", "admin"))
}

/// Each `(path, message)` answers 400 with `message` in its body.
pub(crate) fn expect_400(stack: &Stack, cookie: &str, method: &str, cases: &[(&str, &str)]) {
    for (path, msg) in cases {
        let r = get(stack, path, &["-X", method, "-H", cookie]);
        assert_eq!(r.status(), 400, "{path}: {}", text(&r));
        assert!(text(&r).contains(msg), "{path}: {}", text(&r));
    }
}

/// A stream client of kvmd-streamer, as a `/ws?stream=1` session of kvmd-hid is: the
/// state feed with `stream=1`, held open; returns once capture runs.
pub(crate) fn stream_viewer(stack: &Stack) -> std::os::unix::net::UnixStream {
    use std::io::Write;
    let sock = stack.root.join("run/streamer.sock");
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap_or_else(|e| panic!("{e}"));
    s.write_all(b"GET /streamer/feed?stream=1 HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap_or_else(|e| panic!("{e}"));
    wait_streamer(stack, true);
    s
}

/// Waits (bounded) until kvmd-streamer's capture is running (or stopped).
pub(crate) fn wait_streamer(stack: &Stack, running: bool) {
    let sock = stack.root.join("run/streamer.sock").display().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let raw = curl(&["-s".into(), "--unix-socket".into(), sock.clone(), "http://localhost/streamer".into()])
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&raw);
        if text.contains("\"streamer\": {") == running {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "streamer running={running} never came: {text}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
