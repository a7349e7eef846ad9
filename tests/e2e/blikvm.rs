//! BliKVM v1.4 through the real front (issue #19; spec `compat-blikvm-kasm.md` Part A): the
//! document's requests as it writes them (the login's JSON body, `GET /keyboard` with a JSON
//! body) on HTTPS and on the plain-HTTP port, and its exact answers; the token where BliKVM
//! clients put it, refused without it, dead once revoked, bound to its user's role; the
//! reports kvmd-hid writes for the keys; paste, ATX, the `/kme` WebSocket, and the MJPEG
//! port 8008, which needs the token (or a PiKVM credential) and answers uStreamer's 401
//! otherwise; and on the virtual target, `/keyboard` with `["Digit1"]` puts a `1` on its
//! screen.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use kvmd_core::role::Role;
use kvmd_testkit::golden::Response;
use kvmd_testkit::{Stack, StackOptions, curl};
use serde_json::Value;
use tungstenite::{Message, client::IntoClientRequest};

use crate::common::text;

const ADMIN: [&str; 4] = ["-H", "X-KVMD-User: admin", "-H", "X-KVMD-Passwd: admin"];
const JSON: [&str; 2] = ["-H", "Content-Type: application/json"];

/// admin, and `vic`, a viewer.
fn stack(vtarget: bool) -> Stack {
    let mut opts = StackOptions { vtarget, ..StackOptions::default() };
    opts.htpasswd.push(format!("vic:{}", kvmd_auth::hash::make_ssha512("vicpass")));
    opts.auth_set.push(format!("roles.vic=\"{}\"", Role::Viewer.as_str()));
    Stack::start(opts).unwrap_or_else(|e| panic!("cannot start the stack: {e:#}"))
}

/// `method url` with `extra` (curl's arguments), parsed.
fn at(url: String, method: &str, extra: &[&str]) -> Response {
    let mut args: Vec<String> = vec!["-i".into(), "--http1.1".into(), "-X".into(), method.into(), url];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let raw = curl(&args).unwrap_or_else(|e| panic!("{e}"));
    Response::parse(&raw).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&raw)))
}

fn https(stack: &Stack, method: &str, path: &str, extra: &[&str]) -> Response {
    at(stack.url(path), method, extra)
}

fn plain(stack: &Stack, method: &str, path: &str, extra: &[&str]) -> Response {
    at(format!("http://127.0.0.1:{}{path}", stack.http_port), method, extra)
}

/// The document's login (A.1.1): its body as written; the token.
fn login(stack: &Stack, user: &str, passwd: &str) -> String {
    let body = format!("{{\n    \"username\": \"{user}\",\n    \"password\": \"{passwd}\"\n}}");
    let r = https(stack, "POST", "/api/login", &[&JSON[..], &["--data-binary", &body]].concat());
    assert_eq!(r.status(), 200, "{}", text(&r));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    let token = v["data"]["token"].as_str().unwrap_or_default().to_owned();
    assert_eq!(text(&r), format!(r#"{{"status":1,"info":"login success","data":{{"token":"{token}"}}}}"#));
    assert!(token.len() == 64 && token.bytes().all(|c| c.is_ascii_hexdigit()), "{token}");
    token
}

fn keyboard_hex(stack: &Stack, from: usize) -> Vec<String> {
    stack.hid_written("keyboard")[from..].chunks(8).map(|c| c.iter().map(|b| format!("{b:02x}")).collect()).collect()
}

fn wait_reports(stack: &Stack, from: usize, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while keyboard_hex(stack, from).len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    keyboard_hex(stack, from)
}

/// BliKVM's envelope for a logical failure.
fn failed(info: &str) -> String {
    format!(r#"{{"status":0,"info":"{info}","data":[]}}"#)
}

const KEY_OK: &str = r#"{"status":1,"info":"key input success","data":[]}"#;
const UNAUTHORIZED: &str = r#"{"status":0,"info":"unauthorized","data":[]}"#;

#[test]
fn the_documents_requests_get_its_answers_and_the_token_is_a_session() {
    let stack = stack(false);
    let token = login(&stack, "admin", "admin");
    let bearer = format!("Authorization: Bearer {token}");

    // A.1.3 as written: GET with a JSON body; the reports are kvmd-hid's for the key.
    let from = stack.hid_written("keyboard").len();
    let body = "{\n    \"keycodes\": [\"Digit1\"]\n}";
    let r = https(&stack, "GET", "/keyboard", &[&JSON[..], &["-H", &bearer, "--data-binary", body]].concat());
    assert_eq!((r.status(), text(&r).as_str()), (200, KEY_OK));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(wait_reports(&stack, from, 2), ["00001e0000000000", "0000000000000000"]);
    // A chord (A.2.4's example), in kvmd-hid's bytes for send_shortcut (hid.md).
    let from = stack.hid_written("keyboard").len();
    let body = r#"{"keycodes":["ControlLeft","AltLeft","Delete"]}"#;
    let r = https(&stack, "POST", "/keyboard", &[&JSON[..], &["-H", &bearer, "-d", body]].concat());
    assert_eq!((r.status(), text(&r).as_str()), (200, KEY_OK));
    assert_eq!(
        wait_reports(&stack, from, 6),
        [
            "0100000000000000",
            "0500000000000000",
            "05004c0000000000",
            "0500000000000000",
            "0100000000000000",
            "0000000000000000"
        ]
    );

    // The token where BliKVM's clients put it (A.4.2): a `token` header, the body, the query,
    // and the plain-HTTP port serves the paths as a BliKVM does (A.3, "scheme").
    let one = r#"{"keycodes":["KeyA"]}"#;
    for (how, r) in [
        ("header", https(&stack, "POST", "/keyboard", &["-H", &format!("token: {token}"), "-d", one])),
        ("body", https(&stack, "POST", "/keyboard", &["-d", &format!(r#"{{"keycodes":["KeyA"],"token":"{token}"}}"#)])),
        ("query", https(&stack, "POST", &format!("/keyboard?token={token}"), &["-d", one])),
        ("plain HTTP", plain(&stack, "GET", "/keyboard", &[&JSON[..], &["-H", &bearer, "-d", one]].concat())),
    ] {
        assert_eq!((r.status(), text(&r)), (200, KEY_OK.to_owned()), "{how}");
    }
    // kvmd-auth's login for the services is no route of the front's.
    assert_eq!(https(&stack, "POST", "/api/auth/token", &["-d", "user=admin&passwd=admin"]).status(), 404);
    // A.2.2's login path, on plain HTTP, form-encoded too.
    let r = plain(&stack, "POST", "/login_api", &["-d", "username=admin&password=admin"]);
    assert!(text(&r).starts_with(r#"{"status":1,"info":"login success","data":{"token":""#), "{}", text(&r));

    // Without a token, or with a wrong one: 401 in BliKVM's envelope, and nothing typed.
    let from = stack.hid_written("keyboard").len();
    for extra in [
        vec!["-d", one],
        vec!["-d", one, "-H", "Authorization: Bearer 0000000000000000000000000000000000000000000000000000000000000000"],
        vec!["-d", one, "-H", "token: nonsense"],
    ] {
        let r = https(&stack, "POST", "/keyboard", &extra);
        assert_eq!((r.status(), text(&r)), (401, UNAUTHORIZED.to_owned()), "{extra:?}");
    }
    // Bad input: BliKVM's envelope with status 0 and a reason, HTTP 200, nothing pressed.
    for (body, info) in [
        ("{nope", "the body is not a JSON object"),
        ("[1]", "the body is not a JSON object"),
        ("{}", "keycodes is missing"),
        (r#"{"keycodes":"Digit1"}"#, "keycodes must be a list of key names"),
        (r#"{"keycodes":[{"k":1}]}"#, "keycodes must be a list of key names"),
        (r#"{"keycodes":["Nope"]}"#, "unknown key: Nope"),
        (
            r#"{"keycodes":["KeyA","KeyB","KeyC","KeyD","KeyE","KeyF","KeyG"]}"#,
            "too many keys: at most 6 besides the modifiers",
        ),
    ] {
        let r = https(&stack, "POST", "/keyboard", &[&JSON[..], &["-H", &bearer, "--data-binary", body]].concat());
        assert_eq!((r.status(), text(&r)), (200, failed(info)), "{body}");
    }
    let hundred = format!(r#"{{"keycodes":[{}]}}"#, vec!["\"KeyA\""; 100].join(","));
    let r = https(&stack, "POST", "/keyboard", &[&JSON[..], &["-H", &bearer, "--data-binary", &hundred]].concat());
    assert_eq!((r.status(), text(&r)), (200, failed("too many keys: at most 6 besides the modifiers")));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(keyboard_hex(&stack, from), Vec::<String>::new(), "a refused call typed something");

    // Login failures: the observed body, HTTP 200 (A.2.2).
    for body in [
        r#"{"username":"admin","password":"wrong"}"#,
        r#"{"username":"admin"}"#,
        "{nope",
        r#"{"username":"Bad!","password":"x"}"#,
    ] {
        let r = https(&stack, "POST", "/api/login", &[&JSON[..], &["--data-binary", body]].concat());
        assert_eq!((r.status(), text(&r)), (200, failed("failed")), "{body}");
    }

    // Paste, ATX, WoL and mass storage in the same envelope.
    let from = stack.hid_written("keyboard").len();
    let r = https(&stack, "POST", "/paste", &[&JSON[..], &["-H", &bearer, "-d", r#"{"text":"aB"}"#]].concat());
    assert_eq!(text(&r), r#"{"status":1,"info":"char sent","data":[]}"#);
    let typed = wait_reports(&stack, from, 4);
    assert!(
        typed.contains(&"0000040000000000".to_owned()) && typed.contains(&"0200050000000000".to_owned()),
        "{typed:?}"
    );
    let atx = |body: &str| text(&https(&stack, "POST", "/atx", &[&JSON[..], &["-H", &bearer, "-d", body]].concat()));
    assert_eq!(atx(r#"{"cmd":7}"#), r#"{"status":1,"led_power":false,"led_hdd":false}"#);
    assert_eq!(atx(r#"{"cmd":5}"#), failed("failed"));
    assert_eq!(atx(r#"{"cmd":"8"}"#), r#"{"status":1,"info":"success"}"#);
    let wol =
        |mac: &str| text(&https(&stack, "POST", "/wol", &["-H", &bearer, "-d", &format!(r#"{{"mac":"{mac}"}}"#)]));
    assert_eq!(wol("aa:bb:cc:dd:ee:ff"), failed("unsupported"));
    assert_eq!(wol("aa:bb"), failed("failed"));
    let r = https(&stack, "POST", "/msd_extra", &["-H", &bearer]);
    assert_eq!(
        text(&r),
        r#"{"status":1,"info":"success","data":{"msd_status":"not_connected","msd_img_created":"not_created"}}"#
    );
    let r = https(&stack, "POST", "/msd_api", &["-H", &bearer, "-d", r#"{"action":"make","make_name":"x.iso"}"#]);
    assert_eq!(text(&r), failed("unsupported"));

    // The token is a session of the suite: listed as BliKVM's, 12 hours, good on PiKVM's
    // routes as a bearer; revoked, it is dead everywhere at once.
    let r = https(&stack, "GET", "/api/auth/sessions", &ADMIN);
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    let list = v["result"]["sessions"].as_array().cloned().unwrap_or_default();
    let mine: Vec<&Value> = list.iter().filter(|s| s["via"] == "blikvm").collect();
    assert_eq!(mine.len(), 2, "{list:?}");
    for s in &mine {
        let (since, expires) = (s["since"].as_u64().unwrap_or(0), s["expires"].as_u64().unwrap_or(0));
        assert!((43_199..=43_201).contains(&(expires - since)), "{s}");
    }
    assert_eq!(https(&stack, "GET", "/api/hid", &["-H", &bearer]).status(), 200);
    let r = https(&stack, "POST", "/api/auth/sessions/revoke?user=admin", &ADMIN);
    assert_eq!(r.status(), 200, "{}", text(&r));
    let r = https(&stack, "POST", "/keyboard", &["-H", &bearer, "-d", one]);
    assert_eq!((r.status(), text(&r)), (401, UNAUTHORIZED.to_owned()));
    assert_eq!(https(&stack, "GET", "/api/hid", &["-H", &bearer]).status(), 401);

    // A viewer's token: it may look, not type (403 in the envelope), and TOTP-less login
    // of another user works the same.
    let vic = login(&stack, "vic", "vicpass");
    let r = https(&stack, "POST", "/keyboard", &["-H", &format!("Authorization: Bearer {vic}"), "-d", one]);
    assert_eq!((r.status(), text(&r)), (403, failed("forbidden")));
    let r = https(&stack, "POST", "/msd_extra", &["-H", &format!("Authorization: Bearer {vic}")]);
    assert_eq!(r.status(), 200, "{}", text(&r));
}

type Ws = tungstenite::WebSocket<TcpStream>;

/// BliKVM's WebSocket through the front's plain-HTTP port, as its client opens it; a
/// refused upgrade gives its HTTP status.
fn kme(stack: &Stack, token: &str) -> Result<Ws, u16> {
    let stream = TcpStream::connect(("127.0.0.1", stack.http_port)).unwrap_or_else(|e| panic!("{e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap_or_else(|e| panic!("{e}"));
    let req = format!("ws://127.0.0.1:{}/kme?token={token}", stack.http_port)
        .into_client_request()
        .unwrap_or_else(|e| panic!("{e}"));
    match tungstenite::client(req, stream) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => Err(r.status().as_u16()),
        Err(e) => panic!("handshake: {e}"),
    }
}

fn next_text(ws: &mut Ws) -> String {
    loop {
        match ws.read().unwrap_or_else(|e| panic!("read: {e}")) {
            Message::Text(t) => return t.to_string(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

#[test]
fn the_websocket_types_points_and_lets_go_and_closes_with_its_session() {
    let stack = stack(false);
    let refused = kme(&stack, "0000000000000000000000000000000000000000000000000000000000000000").err();
    assert_eq!(refused, Some(401), "a bad token was let in");
    let token = login(&stack, "admin", "admin");
    let mut ws = kme(&stack, &token).unwrap_or_else(|s| panic!("refused: {s}"));
    assert_eq!(next_text(&mut ws), r#"{"welcome":"welcome to kvm"}"#);
    let send = |ws: &mut Ws, t: &str| ws.send(Message::text(t)).unwrap_or_else(|e| panic!("{e}"));
    send(&mut ws, r#"{"ping":1733000000}"#);
    assert_eq!(next_text(&mut ws), r#"{"pong":1733000000}"#);
    send(&mut ws, r#"{"ext":1}"#);
    assert_eq!(next_text(&mut ws), r#"{"fan_running":false,"fan_speed":0,"hdd_led":false,"power_led":false}"#);

    // Keys as state (A.2.5): Shift+A held, then A let go, then everything.
    let from = stack.hid_written("keyboard").len();
    send(&mut ws, r#"{"k":["ShiftLeft","KeyA"]}"#);
    send(&mut ws, r#"{"k":["ShiftLeft"]}"#);
    send(&mut ws, r#"{"k":[]}"#);
    assert_eq!(
        wait_reports(&stack, from, 4),
        ["0200000000000000", "0200040000000000", "0200000000000000", "0000000000000000"]
    );
    // The pointer (A.2.6): the middle of the picture, the left button, a wheel notch down.
    let mouse_from = stack.hid_written("mouse").len();
    send(
        &mut ws,
        r#"{"m":{"buttons":1,"relativeX":0.5,"relativeY":0.5,"verticalWheelDelta":1,"horizontalWheelDelta":0}}"#,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while stack.hid_written("mouse").len() < mouse_from + 3 * 7 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mouse: Vec<String> = stack.hid_written("mouse")[mouse_from..]
        .chunks(7)
        .map(|c| c.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    // kvmd-hid's own reports: the move, the button, the wheel (negated: BliKVM's delta is
    // the browser's, down positive).
    assert_eq!(mouse, ["00ff3fff3f0000", "01ff3fff3f0000", "01ff3fff3fff00"]);
    // Held when the socket goes: released.
    let from = stack.hid_written("keyboard").len();
    send(&mut ws, r#"{"k":["KeyB"]}"#);
    assert_eq!(wait_reports(&stack, from, 1), ["0000050000000000"]);
    drop(ws);
    assert_eq!(wait_reports(&stack, from, 2), ["0000050000000000", "0000000000000000"]);

    // Revoked, the token's socket closes (within a second), and what it held is let go
    // though the token is dead.
    let mut ws = kme(&stack, &token).unwrap_or_else(|s| panic!("refused: {s}"));
    assert_eq!(next_text(&mut ws), r#"{"welcome":"welcome to kvm"}"#);
    let from = stack.hid_written("keyboard").len();
    send(&mut ws, r#"{"k":["KeyC"]}"#);
    assert_eq!(wait_reports(&stack, from, 1), ["0000060000000000"]);
    let r = https(&stack, "POST", "/api/auth/sessions/revoke?all=1", &ADMIN);
    assert_eq!(r.status(), 200, "{}", text(&r));
    let revoked = Instant::now();
    loop {
        match ws.read() {
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    assert!(revoked.elapsed() < Duration::from_secs(1), "{:?}", revoked.elapsed());
    assert_eq!(wait_reports(&stack, from, 2), ["0000060000000000", "0000000000000000"]);
    // A viewer's keys never reach the target.
    let vic = login(&stack, "vic", "vicpass");
    let mut ws = kme(&stack, &vic).unwrap_or_else(|s| panic!("refused: {s}"));
    assert_eq!(next_text(&mut ws), r#"{"welcome":"welcome to kvm"}"#);
    let from = stack.hid_written("keyboard").len();
    send(&mut ws, r#"{"k":["KeyD"]}"#);
    send(&mut ws, r#"{"ping":2}"#);
    assert_eq!(next_text(&mut ws), r#"{"pong":2}"#);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(keyboard_hex(&stack, from), Vec::<String>::new(), "a viewer typed");
}

#[test]
fn port_8008_shows_the_target_to_a_token_only_and_digit1_types_a_1() {
    let stack = stack(true);
    let token = login(&stack, "admin", "admin");
    let port = stack.blikvm_port;
    let mjpeg = |path: &str, extra: &[&str]| at(format!("http://127.0.0.1:{port}{path}"), "GET", extra);

    // Without credentials: uStreamer's 401, no picture.
    for path in ["/snapshot", "/stream", "/state"] {
        let r = mjpeg(path, &[]);
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(r.header("WWW-Authenticate"), Some("Basic realm=\"Restricted area\""), "{path}");
        assert!(!r.body.starts_with(&[0xff, 0xd8]), "{path}");
    }
    let bad = mjpeg("/snapshot?token=0000000000000000000000000000000000000000000000000000000000000000", &[]);
    assert_eq!(bad.status(), 401);
    // With the token (query, header, bearer) or a PiKVM credential: the target's picture.
    let snapshot = |extra: &[&str], q: &str| {
        let r = mjpeg(&format!("/snapshot{q}"), extra);
        assert_eq!(r.status(), 200, "{extra:?} {q}: {}", text(&r));
        assert_eq!(r.header("Content-Type"), Some("image/jpeg"));
        assert!(r.body.starts_with(&[0xff, 0xd8]));
        r.body
    };
    let query = format!("?token={token}");
    snapshot(&[], &query);
    snapshot(&["-H", &format!("token: {token}")], "");
    snapshot(&["-H", &format!("Authorization: Bearer {token}")], "");
    snapshot(&["-u", "admin:admin"], "");
    snapshot(&ADMIN, "");
    snapshot(&["-H", &format!("Cookie: auth_token={token}")], "");
    let r = mjpeg(&format!("/state{query}"), &[]);
    let state: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    assert_eq!(state["ok"], true, "{}", text(&r));
    let r = at(format!("http://127.0.0.1:{port}/stream{query}"), "GET", &["--max-time", "3", "-o", "-", "--no-buffer"]);
    assert_eq!(r.status(), 200);
    assert!(r.header("Content-Type").is_some_and(|c| c.starts_with("multipart/x-mixed-replace")));
    // Anything else on the port is nobody's.
    assert_eq!(mjpeg(&format!("/streamer/feed{query}"), &[]).status(), 404);

    // `/keyboard` with the document's body makes a `1` appear on the target's screen.
    let before = crate::vtarget::text_pixels(&snapshot(&[], &query));
    let body = "{\n    \"keycodes\": [\"Digit1\"]\n}";
    let r = https(
        &stack,
        "GET",
        "/keyboard",
        &[&JSON[..], &["-H", &format!("Authorization: Bearer {token}"), "--data-binary", body]].concat(),
    );
    assert_eq!(text(&r), KEY_OK);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = crate::vtarget::text_pixels(&snapshot(&[], &query));
        // One 8×16 glyph: a `1` lights a few dozen pixels of its cell.
        if n > before + 20 {
            break;
        }
        assert!(Instant::now() < deadline, "no 1 on the screen: {before} → {n} bright pixels");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A.4.2: the code of a user with TOTP on is appended to `password`, as PiKVM's convention
/// is; wrong passwords lock the login out as PiKVM's own (the same lockout: afterwards a
/// PiKVM login from the same address is refused too).
#[test]
fn the_login_takes_a_totp_code_and_is_locked_out_as_pikvms() {
    let stack = stack(false);
    let text_secret = kvmd_auth::totp::generate_secret();
    std::fs::write(stack.totp_secret(), &text_secret).unwrap_or_else(|e| panic!("{e}"));
    let secret = kvmd_auth::totp::parse_secret(&text_secret).ok().flatten().unwrap_or_else(|| panic!("secret"));
    let try_login = |password: &str| {
        let body = format!(r#"{{"username":"admin","password":"{password}"}}"#);
        text(&https(&stack, "POST", "/api/login", &[&JSON[..], &["-d", &body]].concat()))
    };
    // kvmd-auth picks up the new secret on its next check.
    let deadline = Instant::now() + Duration::from_secs(10);
    while try_login("admin") != failed("failed") {
        assert!(Instant::now() < deadline, "the TOTP secret was never read");
        std::thread::sleep(Duration::from_millis(100));
    }
    let code = kvmd_auth::totp::code_at(&secret, kvmd_auth::sessions::unix_now());
    assert!(try_login(&format!("admin{code}")).starts_with(r#"{"status":1,"info":"login success""#));
    std::fs::write(stack.totp_secret(), "").unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !try_login("admin").starts_with(r#"{"status":1"#) {
        assert!(Instant::now() < deadline, "the TOTP secret was never dropped");
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..10 {
        assert_eq!(try_login("guess"), failed("failed"));
    }
    assert_eq!(try_login("admin"), failed("failed"), "locked: even the right password fails");
    let r = https(&stack, "POST", "/api/auth/login", &["-d", "user=admin&passwd=admin"]);
    assert_eq!(r.status(), 403, "{}", text(&r));
}

/// A.4.6: `/change_user` with the token in the body (as BliKVM's client sends it) changes
/// the password at once and ends the user's tokens; BliKVM's rules and replies otherwise.
#[test]
fn change_user_sets_the_password_at_once_and_ends_the_users_tokens() {
    let stack = stack(false);
    let r = https(
        &stack,
        "POST",
        "/api/auth/users/create",
        &[&ADMIN[..], &["-d", "user=dana&passwd=first-pw&role=admin"]].concat(),
    );
    assert_eq!(r.status(), 200, "{}", text(&r));
    let token = login(&stack, "dana", "first-pw");
    let change = |body: String| text(&https(&stack, "POST", "/change_user", &[&JSON[..], &["-d", &body]].concat()));
    for (user, passwd) in [("dana", "short"), ("", "long-enough"), ("admin", "long-enough")] {
        let body = format!(r#"{{"token":"{token}","username":"{user}","password":"{passwd}"}}"#);
        assert_eq!(change(body), failed("failed"), "{user} {passwd}");
    }
    let body = format!(r#"{{"token":"{token}","username":"dana","password":"second-pw"}}"#);
    assert_eq!(change(body), r#"{"status":1,"info":"success","data":[]}"#);
    let r = https(&stack, "POST", "/keyboard", &["-H", &format!("token: {token}"), "-d", r#"{"keycodes":[]}"#]);
    assert_eq!((r.status(), text(&r)), (401, UNAUTHORIZED.to_owned()), "the old token lives on");
    login(&stack, "dana", "second-pw");
    let body = r#"{"username":"dana","password":"first-pw"}"#;
    assert_eq!(text(&https(&stack, "POST", "/api/login", &[&JSON[..], &["-d", body]].concat())), failed("failed"));
    // A viewer may not (the users' database is an admin's).
    let vic = login(&stack, "vic", "vicpass");
    let body = format!(r#"{{"token":"{vic}","username":"vic","password":"long-enough"}}"#);
    let r = https(&stack, "POST", "/change_user", &[&JSON[..], &["-d", &body]].concat());
    assert_eq!((r.status(), text(&r)), (403, failed("forbidden")));
}
