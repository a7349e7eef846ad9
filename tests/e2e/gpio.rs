//! kvmd-gpio through the real nginx: ATX, GPIO and Redfish as a PiKVM client library
//! calls them on connect (issue #16), with kvmd's bodies, errors and front behaviour.

use crate::common::{self, get, text};

const CREDS: [&str; 4] = ["-H", "X-KVMD-User: admin", "-H", "X-KVMD-Passwd: admin"];

#[test]
fn atx_gpio_and_redfish_answer_through_the_front_as_kvmd() {
    let stack = common::stack();
    // A client's first calls after /api/info.
    let r = get(&stack, "/api/atx", &CREDS);
    assert_eq!(r.status(), 200, "{}", text(&r));
    assert!(text(&r).contains("\"enabled\": true") && text(&r).contains("\"busy\": false"), "{}", text(&r));
    let r = get(&stack, "/api/gpio", &CREDS);
    assert_eq!((r.status(), r.body.len()), (200, 555), "{}", text(&r));
    // Without credentials: kvmd's 401; the Redfish root alone is open (golden).
    assert_eq!(get(&stack, "/api/atx", &[]).status(), 401);
    for path in ["/redfish/v1", "/api/redfish/v1"] {
        let r = get(&stack, path, &[]);
        let golden = kvmd_testkit::golden::load("nginx", "redfish_root_no_auth").unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!((r.status(), &r.body), (200, &golden.body), "{path}: {}", text(&r));
    }
    assert_eq!(get(&stack, "/redfish/v1/Systems", &[]).status(), 401);
    let r = get(&stack, "/redfish/v1/Systems/0", &CREDS);
    assert!(r.status() == 200 && text(&r).contains("\"PowerState\": \"Off\""), "{}", text(&r));
    // A click: 200 at once, a second one kvmd's 409 while the first and its tail run.
    let mut post = vec!["-X", "POST"];
    post.extend(CREDS);
    assert_eq!(get(&stack, "/api/atx/click?button=power", &post).status(), 200);
    let r = get(&stack, "/api/atx/click?button=power", &post);
    assert_eq!(r.status(), 409, "{}", text(&r));
    assert!(text(&r).contains("AtxIsBusyError"), "{}", text(&r));
    // Redfish's reset action: 204 without a body; a bad body is kvmd's 400 envelope.
    let mut reset = post.clone();
    reset.extend(["-H", "Content-Type: application/json", "-d", "{\"ResetType\": \"ForceRestart\"}"]);
    let r = get(&stack, "/redfish/v1/Systems/0/Actions/ComputerSystem.Reset", &reset);
    assert_eq!((r.status(), r.body.len()), (204, 0), "{}", text(&r));
    let mut bad = post.clone();
    bad.extend(["-d", "nope"]);
    let r = get(&stack, "/api/redfish/v1/Systems/0/Actions/ComputerSystem.Reset", &bad);
    assert_eq!(r.status(), 400, "{}", text(&r));
    assert!(text(&r).contains("Missing or invalid ResetType"), "{}", text(&r));
    // kvmd's front behaviour: a wrong method is 405 with Allow, a trailing slash 308.
    let r = get(&stack, "/api/atx", &["-X", "DELETE"]);
    assert_eq!((r.status(), r.header("allow")), (405, Some("GET")), "{}", text(&r));
    let r = get(&stack, "/redfish/v1/Systems/0/", &CREDS);
    assert_eq!((r.status(), r.header("location")), (308, Some("/redfish/v1/Systems/0")), "{}", text(&r));
    assert_eq!(get(&stack, "/redfish/v1/nosuch", &CREDS).status(), 404);
}

/// The `atx` events on `/api/ws` come from kvmd-gpio through kvmd-hid: the full state in
/// the burst, then the full object at a click's start and at the end of its tail, as kvmd
/// sends them (spec `atx-msd-gpio-redfish.md` 1).
#[test]
fn atx_events_reach_the_websocket_as_a_click_runs() {
    use crate::ws::{connect_with, until_where};
    let stack = common::stack();
    let token = common::login(&stack, "admin", "admin");
    let mut ws = connect_with(&stack, &token, "0");
    // In the burst (or, if kvmd-hid met kvmd-gpio after this session began, as soon as it does).
    let idle = r#"{"event_type": "atx", "event": {"enabled": true, "busy": false, "acts": {"power": false, "reset": false}, "leds": {"power": false, "hdd": false}}}"#;
    until_where(&mut ws, "the enabled atx state", |t| t == idle);
    let mut post = vec!["-X", "POST"];
    post.extend(CREDS);
    assert_eq!(get(&stack, "/api/atx/click?button=power", &post).status(), 200);
    let busy = r#"{"event_type": "atx", "event": {"enabled": true, "busy": true, "acts": {"power": true, "reset": false}, "leds": {"power": false, "hdd": false}}}"#;
    until_where(&mut ws, "the click's busy atx state", |t| t == busy);
    until_where(&mut ws, "the atx state after the click's tail", |t| t == idle);
}
