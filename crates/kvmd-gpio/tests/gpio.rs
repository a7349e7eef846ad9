//! `/gpio` in-process: kvmd's model, view and state built from a configuration, switch
//! and pulse on the virtual chip, and kvmd's errors (spec `atx-msd-gpio-redfish.md` 2).

use std::sync::Arc;
use std::time::Duration;

mod common;

use actix_web::dev::{Service, ServiceResponse};
use common::{call, error};
use kvmd_gpio::chip::{Chip, VirtualChip};
use kvmd_gpio::config::Config;
use serde_json::{Value, json};

const SCHEME: &str = r##"
[gpio.drivers.nothing]
type = "noop"

[gpio.scheme.b1]
pin = 5
mode = "output"

[gpio.scheme.relay]
pin = 6
mode = "output"
inverted = true
initial = true
pulse = false

[gpio.scheme.const1]
pin = 7
mode = "output"
switch = false
pulse = false

[gpio.scheme.led]
pin = 8
mode = "input"

[gpio.scheme.n]
driver = "nothing"
pin = 0
mode = "output"
switch = false
pulse = { delay = 2.0, max_delay = 1.0 }

[gpio.view.header]
title = ["#Title", "led|red", "b1"]

[gpio.view]
table = [["#Row ", "b1|confirm,hide|Press"], [], ["led|nocolor", "relay|Go", "nosuch", "const1"]]
"##;

async fn rig(
    toml: &str,
) -> (impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>, Arc<VirtualChip>) {
    let cfg: Config = toml::from_str(toml).unwrap_or_else(|e| panic!("{e}"));
    let chip = Arc::new(VirtualChip::new(32));
    let (app, _) = common::app(cfg, chip.clone()).await;
    (app, chip)
}

fn result(body: &str) -> Value {
    serde_json::from_str::<Value>(body).unwrap_or_else(|e| panic!("{e}: {body}"))["result"].clone()
}

#[actix_web::test]
async fn no_channels_is_kvmds_empty_model() {
    let (app, _) = rig("").await;
    let (status, body) = call(&app, "GET", "/gpio").await;
    assert_eq!(status, 200);
    assert_eq!(body.len(), 555, "{body}");
    assert_eq!(
        result(&body),
        json!({"model": {"scheme": {"inputs": {}, "outputs": {}}, "view": {"header": {"title": [{"type": "label", "text": "GPIO"}]}, "table": []}}, "state": {"inputs": {}, "outputs": {}}})
    );
    let (status, body) = call(&app, "POST", "/gpio/switch?channel=x&state=1").await;
    assert!(status == 400 && body.contains("GpioChannelNotFoundError"), "{status} {body}");
}

#[actix_web::test]
async fn the_model_and_view_are_built_as_kvmd_builds_them() {
    let (app, chip) = rig(SCHEME).await;
    let r = result(&call(&app, "GET", "/gpio").await.1);
    let hw = |d: &str, p: &str| json!({"driver": d, "pin": p});
    assert_eq!(
        r["model"]["scheme"],
        json!({
            "inputs": {"led": {"hw": hw("__gpio__", "8")}},
            "outputs": {
                "b1": {"switch": true, "pulse": {"delay": 0.1, "min_delay": 0.1, "max_delay": 0.1}, "hw": hw("__gpio__", "5")},
                "n": {"switch": false, "pulse": {"delay": 1.0, "min_delay": 0.1, "max_delay": 1.0}, "hw": hw("nothing", "0")},
                "relay": {"switch": true, "pulse": {"delay": 0.0, "min_delay": 0.0, "max_delay": 0.0}, "hw": hw("__gpio__", "6")},
            },
        }),
        "the constant const1 is left out"
    );
    assert_eq!(
        r["model"]["view"],
        json!({
            "header": {"title": [{"type": "label", "text": "Title"}, {"type": "input", "channel": "led", "color": "red"}]},
            "table": [
                [{"type": "label", "text": "Row"}, {"type": "output", "channel": "b1", "confirm": true, "hide": true, "text": "Press"}],
                null,
                [
                    {"type": "input", "channel": "led", "color": "green"},
                    {"type": "output", "channel": "relay", "confirm": false, "hide": false, "text": "Go"},
                    {"type": "output", "channel": "const1", "confirm": false, "hide": false, "text": "Click"},
                ],
            ],
        })
    );
    // relay: initial true, inverted: driven low, reads true.
    assert_eq!(chip.get(6).ok(), Some(false));
    assert_eq!(
        r["state"],
        json!({
            "inputs": {"led": {"online": true, "state": false}},
            "outputs": {
                "b1": {"online": true, "state": false, "busy": false},
                "n": {"online": true, "state": false, "busy": false},
                "relay": {"online": true, "state": true, "busy": false},
            },
        })
    );
    assert!(chip.drive(8, true).is_ok());
    assert_eq!(result(&call(&app, "GET", "/gpio").await.1)["state"]["inputs"]["led"]["state"], true);
}

#[actix_web::test]
async fn switch_and_pulse_drive_the_lines_inside_busy_regions() {
    let (app, chip) = rig(SCHEME).await;
    assert_eq!(call(&app, "POST", "/gpio/switch?channel=relay&state=0&wait=1").await.0, 200);
    assert_eq!(chip.get(6).ok(), Some(true), "inverted");
    assert_eq!(call(&app, "POST", "/gpio/pulse?channel=b1").await.0, 200);
    let (status, body) = call(&app, "POST", "/gpio/pulse?channel=b1").await;
    assert_eq!((status, body.contains("GpioChannelIsBusyError")), (409, true), "{body}");
    let busy = result(&call(&app, "GET", "/gpio").await.1)["state"]["outputs"]["b1"].clone();
    assert_eq!(busy, json!({"online": true, "state": false, "busy": true}));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let presses: Vec<(u32, bool)> = chip.writes().iter().filter(|w| w.0 == 5).map(|w| (w.0, w.1)).collect();
    assert_eq!(presses, [(5, false), (5, true), (5, false)], "initial low, then one pulse");
    let e = |s: u16, name: &str, msg: &str| (s, error(name, msg));
    assert_eq!(
        call(&app, "POST", "/gpio/switch?channel=led&state=1").await,
        e(400, "GpioChannelNotFoundError", "GPIO channel is not found")
    );
    assert_eq!(
        call(&app, "POST", "/gpio/switch?channel=const1&state=1").await,
        e(400, "GpioSwitchNotSupported", "This GPIO channel does not support switching")
    );
    assert_eq!(
        call(&app, "POST", "/gpio/pulse?channel=relay").await,
        e(400, "GpioPulseNotSupported", "This GPIO channel does not support pulsing")
    );
    assert_eq!(
        call(&app, "POST", "/gpio/pulse?channel=b1&delay=-1").await,
        e(400, "ValidatorError", "The argument '-1.0' must be float and greater or equial than 0")
    );
    assert_eq!(
        call(&app, "POST", "/gpio/switch?channel=1x&state=1").await,
        e(400, "ValidatorError", "The argument '1x' is not a valid GPIO channel")
    );
    assert_eq!(
        call(&app, "POST", "/gpio/switch?channel=b1").await,
        e(400, "ValidatorError", "None argument is not a valid bool (['1', 'true', 'yes'] or ['0', 'false', 'no'])")
    );
}
