//! kvmd-gpio's routes in-process, against the bodies of spec `atx-msd-gpio-redfish.md`
//! (sections 1 and 4) and the golden `redfish_root_no_auth`.

use std::sync::Arc;
use std::time::Duration;

mod common;

use actix_web::dev::{Service, ServiceResponse};
use common::{error, send};
use kvmd_gpio::atx::Atx;
use kvmd_gpio::chip::VirtualChip;
use kvmd_gpio::config::{AtxKind, Config};

struct Rig<S> {
    app: S,
    chip: Arc<VirtualChip>,
    atx: Arc<Atx>,
    _shutdown: kvmd_core::service::CancellationToken,
}

async fn rig(
    kind: AtxKind,
) -> Rig<impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>> {
    let mut cfg = Config::default();
    cfg.atx.kind = kind;
    cfg.meta = std::path::PathBuf::from("/nonexistent/meta.yaml");
    let chip = Arc::new(VirtualChip::new(32));
    let (app, atx) = common::app(cfg, chip.clone()).await;
    let shutdown = kvmd_core::service::CancellationToken::new();
    actix_web::rt::spawn(atx.clone().run_leds(shutdown.clone()));
    Rig { app, chip, atx, _shutdown: shutdown }
}

/// Waits (bounded) until `cond` holds for the ATX state.
async fn until(atx: &Atx, cond: impl Fn(&kvmd_gpio::atx::AtxState) -> bool) {
    let mut rx = atx.subscribe();
    let r = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| cond(s))).await;
    assert!(matches!(r, Ok(Ok(_))), "the state never came: {:?}", atx.state());
}

const IDLE: &str = "{\n    \"ok\": true,\n    \"result\": {\n        \"acts\": {\n            \"power\": false,\n            \"reset\": false\n        },\n        \"busy\": false,\n        \"enabled\": ENABLED,\n        \"leds\": {\n            \"hdd\": false,\n            \"power\": false\n        }\n    }\n}";

#[actix_web::test]
async fn the_state_is_kvmds_enabled_and_disabled() {
    let r = rig(AtxKind::Gpio).await;
    assert_eq!(send(&r.app, "GET", "/atx", "").await.2, IDLE.replace("ENABLED", "true"));
    let d = rig(AtxKind::Disabled).await;
    let body = send(&d.app, "GET", "/atx", "").await.2;
    assert_eq!(body, IDLE.replace("ENABLED", "false"));
    assert_eq!(body.len(), 255, "the spec's 255 bytes");
    for (path, _) in [("/atx/power?action=on", ()), ("/atx/click?button=reset", ())] {
        assert_eq!(
            send(&d.app, "POST", path, "").await,
            (400, Some(kvmd_core::envelope::JSON_CONTENT_TYPE.into()), error("AtxDisabledError", "ATX is disabled"))
        );
    }
}

#[actix_web::test]
async fn arguments_go_through_kvmds_validators() {
    let r = rig(AtxKind::Gpio).await;
    let bad = |m: &str| (400u16, error("ValidatorError", m));
    let strip = |(s, _, b): (u16, Option<String>, String)| (s, b);
    assert_eq!(
        strip(send(&r.app, "POST", "/atx/power", "").await),
        bad("None argument is not a valid ATX power action")
    );
    assert_eq!(
        strip(send(&r.app, "POST", "/atx/power?action=boot", "").await),
        bad("The argument 'boot' is not a valid ATX power action")
    );
    assert_eq!(
        strip(send(&r.app, "POST", "/atx/click?button=x", "").await),
        bad("The argument 'x' is not a valid ATX button")
    );
    assert_eq!(strip(send(&r.app, "POST", "/atx/click?button=aaaaaaaaaaaaaaaaa", "").await), bad("RAW limit exceed"));
    // The action before `wait`; then `wait` through the bool validator.
    assert_eq!(
        strip(send(&r.app, "POST", "/atx/power?action=boot&wait=x", "").await).1,
        bad("The argument 'boot' is not a valid ATX power action").1
    );
    assert_eq!(send(&r.app, "POST", "/atx/power?action=on&wait=x", "").await.0, 400);
    assert!(r.chip.writes().iter().all(|w| !w.1), "nothing pressed: {:?}", r.chip.writes());
}

#[actix_web::test]
async fn a_click_holds_its_region_and_reset_has_its_own() {
    let r = rig(AtxKind::Gpio).await;
    assert_eq!(send(&r.app, "POST", "/atx/click?button=power", "").await.0, 200);
    let busy = error("AtxIsBusyError", "Performing another ATX operation, please try again later");
    assert_eq!(send(&r.app, "POST", "/atx/click?button=power_long", "").await.2, busy);
    assert_eq!(send(&r.app, "POST", "/atx/click?button=reset", "").await.0, 200, "reset: its own region");
    let s = r.atx.state();
    assert!(s.busy && s.acts.power && s.acts.reset, "{s:?}");
    assert_eq!(send(&r.app, "POST", "/atx/click?button=reset", "").await.2, busy);
    until(&r.atx, |s| !s.busy).await;
    // Each line went high once and low again: 23 power, 27 reset (kvmd's default pins).
    let writes: Vec<(u32, bool)> = r.chip.writes().iter().map(|w| (w.0, w.1)).collect();
    let presses: Vec<_> = writes.iter().skip(2).copied().collect();
    assert_eq!(writes[..2], [(23, false), (27, false)], "driven low at start");
    for pin in [23, 27] {
        assert_eq!(presses.iter().filter(|w| w.0 == pin).copied().collect::<Vec<_>>(), [(pin, true), (pin, false)]);
    }
    // `wait=1`: the answer comes once the click and its tail are over.
    assert_eq!(send(&r.app, "POST", "/atx/click?button=reset&wait=1", "").await.0, 200);
    assert!(!r.atx.state().busy);
}

#[actix_web::test]
async fn power_actions_look_at_the_power_led() {
    let r = rig(AtxKind::Gpio).await;
    let pressed = |chip: &VirtualChip, pin: u32| chip.writes().iter().filter(|w| w.0 == pin && w.1).count();
    // LED off: `off`, `off_hard`, `reset_hard` do nothing, `on` clicks power.
    for a in ["off", "off_hard", "reset_hard"] {
        assert_eq!(send(&r.app, "POST", &format!("/atx/power?action={a}&wait=1"), "").await.0, 200);
    }
    assert_eq!((pressed(&r.chip, 23), pressed(&r.chip, 27)), (0, 0));
    assert_eq!(send(&r.app, "POST", "/atx/power?action=on&wait=1", "").await.0, 200);
    assert_eq!(pressed(&r.chip, 23), 1);
    // The host comes up: its power LED (line 24) lights, debounced into the state.
    assert!(r.chip.drive(24, true).is_ok());
    until(&r.atx, |s| s.leds.power).await;
    let body = send(&r.app, "GET", "/atx", "").await.2;
    assert!(body.contains("\"leds\": {\n            \"hdd\": false,\n            \"power\": true"), "{body}");
    assert_eq!(send(&r.app, "POST", "/atx/power?action=on&wait=1", "").await.0, 200, "already on: nothing");
    assert_eq!(pressed(&r.chip, 23), 1);
    assert_eq!(send(&r.app, "POST", "/atx/power?action=reset_hard&wait=1", "").await.0, 200);
    assert_eq!(pressed(&r.chip, 27), 1);
    // No click needed: 200 even while busy.
    assert_eq!(send(&r.app, "POST", "/atx/click?button=power", "").await.0, 200);
    assert_eq!(send(&r.app, "POST", "/atx/power?action=on", "").await.0, 200);
    assert_eq!(send(&r.app, "POST", "/atx/power?action=off", "").await.0, 409);
}

#[actix_web::test]
async fn redfish_documents_are_kvmds() {
    let r = rig(AtxKind::Gpio).await;
    let golden = include_str!("../../../tests/golden/kvmd-4.197/direct/redfish_root_no_auth.http");
    let root = send(&r.app, "GET", "/redfish/v1", "").await;
    let golden_body = golden.split_once("\r\n\r\n").or_else(|| golden.split_once("\n\n")).map(|(_, b)| b);
    assert_eq!(Some(root.2.as_str()), golden_body);
    assert_eq!(root.1.as_deref(), Some("application/json; charset=utf-8"));
    assert_eq!(send(&r.app, "GET", "/redfish/v1/Systems", "").await.2.len(), 280);
    let d = rig(AtxKind::Disabled).await;
    assert_eq!(send(&d.app, "GET", "/redfish/v1/Systems", "").await.2.len(), 206);
    assert_eq!(send(&r.app, "GET", "/redfish/v1/Managers", "").await.2.len(), 262);
    assert_eq!(send(&r.app, "GET", "/redfish/v1/Managers/BMC", "").await.2.len(), 316);
    let sys = send(&r.app, "GET", "/redfish/v1/Systems/%200%20", "").await.2;
    assert!(sys.contains("\"PowerState\": \"Off\"") && sys.contains("\"Id\": \"0\""), "{sys}");
    assert!(
        sys.contains(
            "\"ResetType@Redfish.AllowableValues\": [\n                \"On\",\n                \"ForceOff\","
        ),
        "{sys}"
    );
    let e = |m| (400u16, Some("application/json; charset=utf-8".to_owned()), error("HttpError", m));
    assert_eq!(send(&r.app, "GET", "/redfish/v1/Systems/1", "").await, e("Missing or invalid Server ID"));
    assert_eq!(send(&r.app, "GET", "/redfish/v1/Systems/SwitchPort007", "").await, e("Non-existent Switch Port ID"));
    assert_eq!(send(&r.app, "PATCH", "/redfish/v1/Systems/0", "{whatever").await, (204, None, String::new()));
}

#[actix_web::test]
async fn redfish_reset_maps_onto_the_atx_actions() {
    let r = rig(AtxKind::Gpio).await;
    let path = "/redfish/v1/Systems/0/Actions/ComputerSystem.Reset";
    let bad = (
        400u16,
        Some("application/json; charset=utf-8".to_owned()),
        error("HttpError", "Missing or invalid ResetType"),
    );
    for body in ["", "nope", "[]", "{}", r#"{"ResetType": "on"}"#, r#"{"ResetType": 1}"#] {
        assert_eq!(send(&r.app, "POST", path, body).await, bad, "{body:?}");
    }
    assert!(r.chip.drive(24, true).is_ok());
    until(&r.atx, |s| s.leds.power).await;
    assert_eq!(send(&r.app, "POST", path, r#"{"ResetType": " ForceRestart "}"#).await, (204, None, String::new()));
    until(&r.atx, |s| s.acts.reset).await;
    until(&r.atx, |s| !s.busy).await;
    assert_eq!(r.chip.writes().iter().filter(|w| w.0 == 27 && w.1).count(), 1, "reset pressed once");
    assert_eq!(send(&r.app, "POST", path, r#"{"ResetType": "On"}"#).await.0, 204);
    assert_eq!(r.chip.writes().iter().filter(|w| w.0 == 23 && w.1).count(), 0, "on and already on: nothing");
    let d = rig(AtxKind::Disabled).await;
    assert_eq!(send(&d.app, "POST", path, r#"{"ResetType": "ForceOff"}"#).await.0, 204, "disabled: nothing, 204");
}
