//! Live sessions through the front (issue #18): an admin lists who is logged in and what
//! each session holds open (a WebSocket, a video stream), revokes one, a user's, or all;
//! a revoked session's WebSocket and MJPEG stream close within a second and its cookie
//! stops working; a new password ends the user's sessions; the audit log says so, in
//! `/api/log`, without a secret.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kvmd_core::role::Role;
use kvmd_testkit::Stack;
use tungstenite::Message;

use crate::common::{self, login, text};
use crate::ws;

const ADMIN: [&str; 4] = ["-H", "X-KVMD-User: admin", "-H", "X-KVMD-Passwd: admin"];

/// admin, `bob` (an operator) and `vic` (a viewer).
fn stack() -> Stack {
    let mut opts = kvmd_testkit::StackOptions::default();
    for (name, role) in [("bob", Role::Operator), ("vic", Role::Viewer)] {
        opts.htpasswd.push(format!("{name}:{}", kvmd_auth::hash::make_ssha512(name)));
        opts.auth_set.push(format!("roles.{name}=\"{}\"", role.as_str()));
    }
    Stack::start(opts).unwrap_or_else(|e| panic!("cannot start the stack: {e:#}"))
}

fn sessions(stack: &Stack) -> Vec<serde_json::Value> {
    let r = common::get(stack, "/api/auth/sessions", &ADMIN);
    assert_eq!(r.status(), 200, "{}", text(&r));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    v["result"]["sessions"].as_array().cloned().unwrap_or_default()
}

/// The sessions of `user`, once `want` holds of them (bounded).
fn sessions_of(stack: &Stack, user: &str, want: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mine: Vec<_> = sessions(stack).into_iter().filter(|s| s["user"] == user).collect();
        if want(&mine) {
            return mine;
        }
        assert!(Instant::now() < deadline, "never came: {mine:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn revoke(stack: &Stack, query: &str) -> (u16, String) {
    let r = common::get(stack, &format!("/api/auth/sessions/revoke{query}"), &[&ADMIN[..], &["-X", "POST"]].concat());
    (r.status(), text(&r))
}

/// An MJPEG viewer through the front with `token`'s cookie.
fn mjpeg(stack: &Stack, token: &str) -> Child {
    Command::new("curl")
        .args(["-sk", "-N", "--http1.1", "--max-time", "60", "-o", "/dev/null", "-H"])
        .arg(format!("Cookie: auth_token={token}"))
        .arg(stack.url("/streamer/stream"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("curl: {e}"))
}

/// How long until `ws` is closed (a close frame or the end of the connection).
fn closed_after(ws: &mut ws::Ws, from: Instant, limit: Duration) -> Option<(Duration, Option<u16>)> {
    loop {
        if from.elapsed() > limit {
            return None;
        }
        match ws.read() {
            Ok(Message::Close(frame)) => return Some((from.elapsed(), frame.map(|f| u16::from(f.code)))),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some((from.elapsed(), None)),
        }
    }
}

/// How long until `child` exits (bounded by `limit`).
fn exited_after(child: &mut Child, from: Instant, limit: Duration) -> Option<Duration> {
    while from.elapsed() <= limit {
        if let Ok(Some(_)) = child.try_wait() {
            return Some(from.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn a_revoked_sessions_websocket_and_stream_close_within_a_second() {
    let stack = stack();
    let bob = login(&stack, "bob", "bob");
    let other = login(&stack, "bob", "bob");
    let mut socket = ws::connect_with(&stack, &bob, "0");
    ws::until(&mut socket, "{\"event_type\": \"hid\"");
    let mut viewer = mjpeg(&stack, &bob);
    // The list: both of bob's sessions, the first holding a WebSocket and a stream.
    let mine = sessions_of(&stack, "bob", |s| {
        s.iter().any(|x| x["holds"]["ws"] == 1 && x["holds"]["stream"] == 1) && s.len() == 2
    });
    let held = mine.iter().find(|x| x["holds"]["ws"] == 1).cloned().unwrap_or_default();
    let id = held["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(id.len(), 32, "{held}");
    assert!(!bob.contains(&id), "the id is not a part of the token");
    assert_eq!((held["addr"].as_str(), held["via"].as_str()), (Some("127.0.0.1"), Some("login")), "{held}");
    assert!(held["user_agent"].as_str().unwrap_or_default().starts_with("curl/"), "{held}");
    assert!(held["since"].as_u64().unwrap_or(0) > 1_700_000_000, "{held}");
    let listed = text(&common::get(&stack, "/api/auth/sessions", &ADMIN));
    assert!(!listed.contains(&bob) && !listed.contains(&other), "no token in the list: {listed}");

    // Revoked: the WebSocket and the stream close at once, the cookie is refused; bob's
    // other session lives on.
    socket.get_ref().set_read_timeout(Some(Duration::from_millis(50))).unwrap_or_else(|e| panic!("{e}"));
    let t0 = Instant::now();
    let (status, body) = revoke(&stack, &format!("?id={id}"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"revoked\": 1"), "{body}");
    let closed = closed_after(&mut socket, t0, Duration::from_secs(5));
    let stopped = exited_after(&mut viewer, t0, Duration::from_secs(5));
    let _ = viewer.kill();
    println!("from the revocation's request: WebSocket closed in {closed:?}, MJPEG stream ended in {stopped:?}");
    let (after, code) = closed.unwrap_or_else(|| panic!("the WebSocket was not closed"));
    assert!(after <= Duration::from_secs(1), "the WebSocket closed after {after:?}");
    assert_eq!(code, Some(1008), "policy violation: the session ended");
    let after = stopped.unwrap_or_else(|| panic!("the MJPEG stream went on"));
    assert!(after <= Duration::from_secs(1), "the stream ended after {after:?}");
    let check =
        |token: &str| common::get(&stack, "/api/auth/check", &["-H", &format!("Cookie: auth_token={token}")]).status();
    assert_eq!(check(&bob), 403);
    assert_eq!(check(&other), 200);
    // Unknown now: nothing more to revoke.
    assert!(revoke(&stack, &format!("?id={id}")).1.contains("\"revoked\": 0"));
    // A user's sessions, then all.
    let third = login(&stack, "vic", "vic");
    let (status, body) = revoke(&stack, "?user=bob");
    assert_eq!((status, body.contains("\"revoked\": 1")), (200, true), "{body}");
    assert_eq!(check(&other), 403);
    assert_eq!(check(&third), 200);
    let (status, body) = revoke(&stack, "?all=1");
    assert_eq!((status, body.contains("\"revoked\": 1")), (200, true), "{body}");
    assert_eq!(check(&third), 403);
    assert!(stack.log_has("kvmd-auth", "event=\"session_ended\""), "{}", stack.log("kvmd-auth"));
}

#[test]
fn only_an_admin_lists_or_revokes_and_bad_arguments_are_kvmds_400() {
    let stack = stack();
    let vic = format!("Cookie: auth_token={}", login(&stack, "vic", "vic"));
    let bob = format!("Cookie: auth_token={}", login(&stack, "bob", "bob"));
    for cookie in [&vic, &bob] {
        let r = common::get(&stack, "/api/auth/sessions", &["-H", cookie]);
        assert_eq!(r.status(), 403, "{}", text(&r));
        assert!(text(&r).contains("\"ForbiddenError\""), "{}", text(&r));
        let r = common::get(&stack, "/api/auth/sessions/revoke?all=1", &["-X", "POST", "-H", cookie]);
        assert_eq!(r.status(), 403, "{}", text(&r));
        // The users' routes too (issue #18's users).
        assert_eq!(common::get(&stack, "/api/auth/users", &["-H", cookie]).status(), 403);
        for path in
            ["/api/auth/users/create", "/api/auth/users/update", "/api/auth/users/delete", "/api/auth/links?user=bob"]
        {
            let r = common::get(&stack, path, &["-X", "POST", "-H", cookie, "-d", "user=mallory&passwd=x&role=admin"]);
            assert_eq!(r.status(), 403, "{path}: {}", text(&r));
        }
    }
    assert_eq!(common::get(&stack, "/api/auth/sessions", &[]).status(), 401);
    assert_eq!(common::get(&stack, "/api/auth/sessions", &["-X", "POST"]).status(), 405);
    for bad in ["", "?id=zz", "?id=1&user=bob", "?user=b%20b", "?all=maybe", "?all=0"] {
        let (status, body) = revoke(&stack, bad);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("\"ValidatorError\""), "{bad}: {body}");
    }
    // Nothing was revoked by any of it.
    assert_eq!(common::get(&stack, "/api/auth/check", &["-H", &bob]).status(), 200);
}

#[test]
fn a_new_password_ends_the_users_sessions_and_the_audit_log_says_so_without_a_secret() {
    let stack = stack();
    let bob = login(&stack, "bob", "bob");
    let mut socket = ws::connect_with(&stack, &bob, "0");
    ws::until(&mut socket, "{\"event_type\": \"hid\"");
    assert_eq!(
        common::get(&stack, "/api/auth/login", &["-X", "POST", "-d", "user=bob&passwd=wrong-Pa55"]).status(),
        403
    );
    // The password changes in the file, as kvmd-htpasswd set does.
    let text_of = std::fs::read_to_string(stack.htpasswd()).unwrap_or_default();
    let changed: Vec<String> = text_of
        .lines()
        .map(|l| {
            if l.starts_with("bob:") {
                format!("bob:{}", kvmd_auth::hash::make_ssha512("n3w-Secret"))
            } else {
                l.into()
            }
        })
        .collect();
    std::fs::write(stack.htpasswd(), changed.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
    // The next check reads the file again, and ends bob's sessions: the WebSocket closes.
    let t0 = Instant::now();
    let check = common::get(&stack, "/api/auth/check", &["-H", &format!("Cookie: auth_token={bob}")]);
    assert_eq!(check.status(), 403);
    socket.get_ref().set_read_timeout(Some(Duration::from_millis(50))).unwrap_or_else(|e| panic!("{e}"));
    let closed = closed_after(&mut socket, t0, Duration::from_secs(5));
    assert!(closed.is_some_and(|(t, _)| t <= Duration::from_secs(1)), "{closed:?}");
    let fresh = login(&stack, "bob", "n3w-Secret");
    assert_eq!(common::get(&stack, "/api/auth/check", &["-H", &format!("Cookie: auth_token={fresh}")]).status(), 200);

    // The audit trail, in kvmd-auth's log and in /api/log: each event, no secret.
    let admin = format!("Cookie: auth_token={}", login(&stack, "admin", "admin"));
    let want =
        ["event=\"login\"", "event=\"login_refused\"", "event=\"password_changed\"", "reason=\"credentials changed\""];
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let r = common::get(&stack, "/api/log?seek=3600", &["-H", &admin]);
        let body = text(&r);
        if want.iter().all(|w| body.lines().any(|l| l.contains("kvmd_audit") && l.contains(w))) {
            break body;
        }
        assert!(Instant::now() < deadline, "not all of {want:?} in /api/log: {body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    for secret in ["wrong-Pa55", "n3w-Secret", &bob, &fresh] {
        assert!(!log.contains(secret), "a secret in the log: {secret}");
        assert!(!stack.log("kvmd-auth").contains(secret), "a secret in kvmd-auth's log: {secret}");
    }
}
