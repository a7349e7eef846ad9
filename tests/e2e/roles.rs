//! Roles through the front (issue #18): every declared route of every service, called by a
//! viewer, an operator and an admin, is refused with kvmd's 403 exactly when the user's
//! role is below the route's declared one (`kvmd_core::role`), and served otherwise; a
//! viewer's WebSocket input never reaches the target, and its session releases nothing.

use std::time::Duration;

use kvmd_core::role::Role;
use kvmd_core::routes::{Access, Answer, Flow, Route, ServiceRoutes};
use kvmd_testkit::Stack;
use tungstenite::Message;

use crate::common::{self, login};
use crate::ws;

/// One user per role (the name is the role, and so is the password).
fn stack() -> Stack {
    let mut opts = kvmd_testkit::StackOptions::default();
    for role in [Role::Viewer, Role::Operator] {
        let name = role.as_str();
        opts.htpasswd.push(format!("{name}:{}", kvmd_auth::hash::make_ssha512(name)));
        opts.auth_set.push(format!("roles.{name}=\"{name}\""));
    }
    Stack::start(opts).unwrap_or_else(|e| panic!("cannot start the stack: {e:#}"))
}

fn user_of(role: Role) -> (&'static str, &'static str) {
    match role {
        Role::Admin => ("admin", "admin"),
        r => (r.as_str(), r.as_str()),
    }
}

/// Every route the front exposes that needs a user.
fn routes() -> Vec<Route> {
    let tables: Vec<ServiceRoutes> = kvmd_nginx::services();
    tables
        .into_iter()
        .flat_map(|t| t.routes)
        .filter(|r| r.access == Access::User && !r.front_paths().is_empty())
        .collect()
}

#[test]
fn every_route_refuses_exactly_the_roles_below_its_own() {
    let stack = stack();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let routes = routes();
    let forbidden = serde_json::json!({"ok": false, "result": {"error": "ForbiddenError", "error_msg": "Forbidden"}});
    let mut errors = Vec::new();
    let mut calls = 0;
    for role in Role::ALL {
        let (user, passwd) = user_of(role);
        // One curl for all the routes (`--next` between them), each body to its own file.
        let mut args: Vec<String> = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            if i > 0 {
                args.push("--next".into());
            }
            let front = kvmd_testkit::service::instance(&r.front_paths()[0]);
            let streams = matches!(r.answer, Answer::Stream(_)) || r.flow == Flow::WebSocket;
            let verb = if r.method.as_str() == "HEAD" {
                vec!["-I".to_owned()]
            } else {
                vec!["-X".into(), r.method.as_str().into()]
            };
            args.extend(verb);
            args.extend(
                [
                    "-sk",
                    "-g",
                    "--http1.1",
                    "-m",
                    if streams { "2" } else { "10" },
                    "-H",
                    &format!("X-KVMD-User: {user}"),
                    "-H",
                    &format!("X-KVMD-Passwd: {passwd}"),
                    "-o",
                    &dir.path().join(i.to_string()).display().to_string(),
                    "-w",
                    "%{http_code}\\n",
                ]
                .map(String::from),
            );
            args.push(stack.url(&front));
        }
        let out = std::process::Command::new("curl").args(&args).output().unwrap_or_else(|e| panic!("curl: {e}"));
        let codes: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
        assert_eq!(codes.len(), routes.len(), "one status per route as {role}");
        for (i, (r, code)) in routes.iter().zip(&codes).enumerate() {
            calls += 1;
            let body = std::fs::read_to_string(dir.path().join(i.to_string())).unwrap_or_default();
            let refused =
                code == "403" && serde_json::from_str::<serde_json::Value>(&body).ok() == Some(forbidden.clone());
            let front = &r.front_paths()[0];
            if refused != (role < r.role) {
                errors.push(format!("{} {front} as {role} (needs {}): {code} {body:.200}", r.method.as_str(), r.role));
            }
        }
    }
    assert!(errors.is_empty(), "{} of {calls} calls:\n{}", errors.len(), errors.join("\n"));
    // The table has each kind: a viewer's route, an operator's, and one the default moved.
    assert!(routes.iter().any(|r| r.role == Role::Viewer) && routes.iter().any(|r| r.role == Role::Operator));
    assert!(routes.iter().any(|r| r.path == "/msd/read" && r.role == Role::Operator));
}

/// A cookie of `role`'s user cannot be upgraded by a header of its own: the front
/// overwrites the role header with kvmd-auth's answer.
#[test]
fn a_client_cannot_name_its_own_role() {
    let stack = stack();
    let token = login(&stack, "viewer", "viewer");
    let cookie = format!("Cookie: auth_token={token}");
    let r = common::get(
        &stack,
        "/api/hid/reset",
        &["-X", "POST", "-H", &cookie, "-H", "X-KVMD-Auth-Role: admin", "-H", "X-KVMD-Need-Role: *=viewer"],
    );
    assert_eq!(r.status(), 403, "{}", common::text(&r));
    let r = common::get(&stack, "/api/hid", &["-H", &cookie]);
    assert_eq!(r.status(), 200, "{}", common::text(&r));
}

#[test]
fn a_viewers_websocket_input_is_dropped_and_its_session_releases_nothing() {
    let stack = stack();
    let operator = login(&stack, "operator", "operator");
    let viewer = login(&stack, "viewer", "viewer");
    let mut op = ws::connect_with(&stack, &operator, "0");
    ws::until(&mut op, r#"{"event_type": "hid""#);
    let reports = |stack: &Stack| stack.hid_written("keyboard").len() / 8;
    let settle = || std::thread::sleep(Duration::from_millis(500));
    settle();
    // The operator holds a key.
    op.send(Message::text(r#"{"event_type": "key", "event": {"key": "KeyA", "state": true}}"#))
        .unwrap_or_else(|e| panic!("{e}"));
    settle();
    let held = reports(&stack);
    assert_eq!(stack.hid_written("keyboard")[(held - 1) * 8..held * 8], [0, 0, 4, 0, 0, 0, 0, 0]);
    // A viewer comes, pings (answered), types (dropped), and goes.
    let mut v = ws::connect_with(&stack, &viewer, "0");
    ws::until(&mut v, r#"{"event_type": "hid""#);
    v.send(Message::text(r#"{"event_type": "ping", "event": {}}"#)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ws::until(&mut v, r#"{"event_type": "pong""#), r#"{"event_type": "pong", "event": {}}"#);
    for m in [
        Message::text(r#"{"event_type": "key", "event": {"key": "KeyB", "state": true}}"#),
        Message::binary(vec![0x01, 0x01, b'K', b'e', b'y', b'C']),
        Message::text(r#"{"event_type": "mouse_button", "event": {"button": "left", "state": true}}"#),
    ] {
        v.send(m).unwrap_or_else(|e| panic!("{e}"));
    }
    let _ = v.close(None);
    drop(v);
    settle();
    assert_eq!(reports(&stack), held, "a viewer's session wrote to the keyboard: {:?}", stack.hid_written("keyboard"));
    assert!(stack.hid_written("mouse").iter().all(|b| *b == 0), "a viewer's button: {:?}", stack.hid_written("mouse"));
    // The operator's key is still held, and their input still goes through.
    op.send(Message::text(r#"{"event_type": "key", "event": {"key": "KeyA", "state": false}}"#))
        .unwrap_or_else(|e| panic!("{e}"));
    settle();
    assert_eq!(reports(&stack), held + 1);
}

/// kvmd-auth's own decision (the front's `auth_request`), apart from the services' check:
/// the need nginx passes for the original method, against the user's role.
#[test]
fn kvmd_auth_decides_from_the_need_the_front_passes() {
    let stack = stack();
    let sock = stack.root.join("run/auth.sock").display().to_string();
    let ask = |user: &str, method: &str, need: &str| -> (String, String) {
        let args: Vec<String> = [
            "-s",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "--unix-socket",
            &sock,
            "-H",
            &format!("X-KVMD-User: {user}"),
            "-H",
            &format!("X-KVMD-Passwd: {user}"),
            "-H",
            &format!("X-Original-Method: {method}"),
            "-H",
            &format!("X-KVMD-Need-Role: {need}"),
            &format!("http://localhost{}", kvmd_auth::api::auth::REQUEST_PATH),
        ]
        .map(String::from)
        .to_vec();
        let head = String::from_utf8_lossy(&kvmd_testkit::curl(&args).unwrap_or_default()).into_owned();
        let status = head.split_whitespace().nth(1).unwrap_or("").to_owned();
        let role = head
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("X-KVMD-Auth-Role")))
            .map_or("", |(_, v)| v)
            .trim()
            .to_owned();
        (status, role)
    };
    let need = "GET=viewer,POST=operator";
    assert_eq!(ask("viewer", "GET", need), ("200".into(), "viewer".into()));
    assert_eq!(ask("viewer", "POST", need).0, "403");
    assert_eq!(ask("operator", "POST", need), ("200".into(), "operator".into()));
    // A method the location does not name needs an admin; no need at all, a viewer.
    assert_eq!(ask("operator", "DELETE", need).0, "403");
    assert_eq!(ask("viewer", "DELETE", ""), ("200".into(), "viewer".into()));
    // admin has no role in the config: an admin, as every kvmd user.
    assert_eq!(ask("admin", "DELETE", need), ("200".into(), "admin".into()));
}
