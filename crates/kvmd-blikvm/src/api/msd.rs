//! BliKVM's mass-storage routes (A.2.11, A.4.5) on the suite's virtual media (kvmd-msd):
//! `/msd_extra` (the drive's state), `/msd_api` (`mount` / `unmount` connect and eject the
//! selected image, `delete` removes an image) and `/os_img` (`read`: the storage's size,
//! free space and images). BliKVM builds a Ventoy drive from its ISOs (`make`, `clean`) and
//! has its own file manager and chunked uploads (`/read_dir`, `/mkdir`, `/upload_file`,
//! `/big_file`); the suite has neither — it serves the ISO itself, uploaded with kvmd's
//! `/api/msd/write` — so those answer `unsupported`. Without virtual media every route is
//! `unsupported`.

use actix_web::{HttpResponse, web};
use kvmd_core::routes::{Api, Role};
use serde_json::Value;

use crate::reply::{self, Failed};
use crate::shim::Shim;
use crate::upstream::{Caller, Send, Svc, Upstream, q};

/// The group's routes.
pub fn routes(api: &mut Api) {
    super::both(api, "/msd_extra", "The drive's state: connected, an image selected", Role::Viewer, extra);
    super::both(api, "/msd_api", "`action`: mount, unmount, delete (`delete_image`)", Role::Operator, action);
    super::both(api, "/os_img", "`action` read: the storage's size, free space and images", Role::Viewer, os_img);
    for path in ["/read_dir", "/mkdir", "/upload_file", "/big_file"] {
        super::both(api, path, "BliKVM's file manager (not in the suite: `unsupported`)", Role::Operator, unsupported);
    }
}

/// kvmd-msd's state, or `unsupported` without virtual media.
async fn state(up: &Upstream, caller: &Caller) -> Result<Value, Failed> {
    let s = up.call(Svc::Msd, "GET", "/msd", caller, Send::Nothing).await?;
    if s["enabled"].as_bool() == Some(true) { Ok(s) } else { Err(Failed::unsupported()) }
}

async fn extra(shim: Shim, up: web::Data<Upstream>) -> Result<HttpResponse, Failed> {
    let s = state(&up, &shim.caller).await?;
    let connected = s["drive"]["connected"].as_bool() == Some(true);
    let selected = s["drive"]["image"].is_object();
    let data = reply::ordered(&[
        ("msd_status", (if connected { "connected" } else { "not_connected" }).into()),
        ("msd_img_created", (if selected { "created" } else { "not_created" }).into()),
    ]);
    Ok(reply::ok_ordered("success", data))
}

async fn action(shim: Shim, up: web::Data<Upstream>) -> Result<HttpResponse, Failed> {
    let (up, caller) = (&up, &shim.caller);
    let path = match shim.fields.str("action").as_deref() {
        Some("mount") => "/msd/set_connected?connected=1".to_owned(),
        Some("unmount") => "/msd/set_connected?connected=0".to_owned(),
        Some("delete") => match shim.fields.str("delete_image").filter(|n| !n.is_empty()) {
            // kvmd-msd's own name checks confine it to the storage.
            Some(name) => format!("/msd/remove?image={}", q(&name)),
            None => return Err(Failed::because("delete_image is missing")),
        },
        Some("make" | "clean") => return Err(Failed::unsupported()),
        _ => return Err(Failed::because("unknown action")),
    };
    state(up, caller).await?;
    up.call(Svc::Msd, "POST", &path, caller, Send::Nothing).await?;
    Ok(reply::raw(reply::ordered(&[("status", Value::from(1)), ("info", "exec success".into())])))
}

/// Bytes as BliKVM's GB figures (two decimals).
fn gb(bytes: &Value) -> f64 {
    (bytes.as_f64().unwrap_or(0.0) / 1e7 / 1.073_741_824).round() / 100.0
}

async fn os_img(shim: Shim, up: web::Data<Upstream>) -> Result<HttpResponse, Failed> {
    if shim.fields.str("action").as_deref() != Some("read") {
        return Err(Failed::unsupported());
    }
    let s = state(&up, &shim.caller).await?;
    let part = &s["storage"]["parts"][""];
    let images: Vec<Value> = s["storage"]["images"]
        .as_object()
        .map(|o| o.keys().map(|k| Value::from(k.as_str())).collect())
        .unwrap_or_default();
    let body =
        [("disk_t", gb(&part["size"]).into()), ("disk_f", gb(&part["free"]).into()), ("images", Value::Array(images))];
    Ok(reply::raw(reply::ordered(&body)))
}

async fn unsupported(_: Shim) -> Result<HttpResponse, Failed> {
    Err(Failed::unsupported())
}

#[cfg(test)]
mod tests {
    #[test]
    fn gigabytes() {
        assert_eq!(super::gb(&serde_json::json!(30_938_722_304_u64)), 28.81);
        assert_eq!(super::gb(&serde_json::Value::Null), 0.0);
    }
}
