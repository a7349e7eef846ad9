//! `system_info`: the suite's health and versions, the facts of the native info API (spec
//! B.4.3): the product and version, the device's uptime, HID, video, mass storage and ATX,
//! the number of targets, and each service up or down.

use actix_web::web;
use kvmd_core::routes::Api;
use serde_json::{Value, json};

use super::kasm;
use crate::call::Call;
use crate::error::KasmError;
use crate::images::Images;
use crate::upstream::{Svc, Upstream};

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(
        kasm("/admin/system_info", "Versions, uptime, health, and each service up or down", "application/json"),
        system_info,
    );
}

fn uptime() -> Option<f64> {
    std::fs::read_to_string("/proc/uptime").ok()?.split_whitespace().next()?.parse().ok()
}

async fn system_info(
    call: Call,
    up: web::Data<Upstream>,
    images: web::Data<Images>,
) -> Result<web::Json<Value>, KasmError> {
    let (hid, streamer, msd, atx) = tokio::join!(
        up.call(Svc::Hid, "GET", "/hid", &call.caller),
        up.call(Svc::Streamer, "GET", "/streamer", &call.caller),
        up.call(Svc::Msd, "GET", "/msd", &call.caller),
        up.call(Svc::Gpio, "GET", "/atx", &call.caller),
    );
    let mut services = serde_json::Map::new();
    for svc in Svc::ALL {
        let state = if up.up(svc).await { "up" } else { "down" };
        services.insert(svc.name().to_owned(), Value::from(state));
    }
    let source = streamer.as_ref().ok().map(|s| s["streamer"]["source"].clone()).unwrap_or_default();
    let res = &source["resolution"];
    Ok(web::Json(json!({"system_info": {
        "product": "kvmd-rs",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": uptime(),
        "hid": {"online": hid.as_ref().ok().and_then(|h| h["online"].as_bool()).unwrap_or(false)},
        "streamer": {
            "online": source["online"].as_bool().unwrap_or(false),
            "resolution": if res["width"].is_u64() { Value::from(format!("{}x{}", res["width"], res["height"])) } else { Value::Null },
        },
        "msd": {"enabled": msd.as_ref().ok().and_then(|m| m["enabled"].as_bool()).unwrap_or(false)},
        "atx": {"enabled": atx.as_ref().ok().and_then(|a| a["enabled"].as_bool()).unwrap_or(false)},
        "targets": images.list().iter().filter(|i| i.enabled).count(),
        "services": services,
    }})))
}
