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
