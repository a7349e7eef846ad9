//! `/atx` (A.2.8, A.4.5) and the WebSocket's `{"atx": n}`: `cmd` 128 is a short press of
//! the power button, 192 a long one, 8 the reset button, 7 reads the LEDs — on the
//! suite's ATX (kvmd-gpio's `/atx`, its press durations). Without ATX the answer is
//! `unsupported`; an unknown `cmd` is `failed` (BliKVM's "success" for it is a bug).

use actix_web::{HttpResponse, web};
use kvmd_core::routes::{Api, Role};
use serde_json::Value;

use crate::reply::{self, Failed};
use crate::shim::Shim;
use crate::upstream::{Caller, Send, Svc, Upstream};

/// The group's routes.
pub fn routes(api: &mut Api) {
    super::both(
        api,
        "/atx",
        "Presses the power or reset button (`cmd` 128, 192, 8), or reads the LEDs (7)",
        Role::Operator,
        atx,
    );
}

/// The suite's ATX state, or `unsupported` when it has none.
pub async fn state(up: &Upstream, caller: &Caller) -> Result<Value, Failed> {
    let s = up.call(Svc::Gpio, "GET", "/atx", caller, Send::Nothing).await?;
    if s["enabled"].as_bool() == Some(true) { Ok(s) } else { Err(Failed::unsupported()) }
}

/// Runs `cmd`: BliKVM's answer body.
pub async fn run(up: &Upstream, caller: &Caller, cmd: i64) -> Result<String, Failed> {
    let button = match cmd {
        128 => "power",
        192 => "power_long",
        8 => "reset",
        7 => {
            let s = state(up, caller).await?;
            let led = |n: &str| s["leds"][n].as_bool().unwrap_or(false);
            let leds = [("status", Value::from(1)), ("led_power", led("power").into()), ("led_hdd", led("hdd").into())];
            return Ok(reply::ordered(&leds));
        }
        _ => return Err(Failed::plain()),
    };
    state(up, caller).await?;
    up.call(Svc::Gpio, "POST", &format!("/atx/click?button={button}"), caller, Send::Nothing).await?;
    Ok(reply::ordered(&[("status", Value::from(1)), ("info", "success".into())]))
}

/// `cmd` as BliKVM reads it: an integer, or a string of one.
pub fn cmd_of(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

async fn atx(shim: Shim, up: web::Data<Upstream>) -> Result<HttpResponse, Failed> {
    let cmd = cmd_of(shim.fields.get("cmd")).ok_or_else(Failed::plain)?;
    Ok(reply::raw(run(&up, &shim.caller, cmd).await?))
}
