//! Kasm's storage providers are the sources of images for the virtual drive (spec B.4.2):
//! `create_storage_provider` and `get_storage_providers`, kvmd-msd's `/msd/providers`
//! asked with the caller's key (adding one takes an admin's role; its images are then
//! fetched with `/api/msd/write_remote?provider=<id>&url=<file>`). Kinds: `http`, `webdav`
//! and `nextcloud` (a base URL, in `url`, `webdav_url` or `nextcloud_url`), and `local` (a
//! directory of the device, in `path`); any other kind is a 400.

use actix_web::web;
use kvmd_core::routes::Api;
use serde_json::{Value, json};

use super::kasm;
use crate::call::{Call, opt_bool, opt_str};
use crate::error::KasmError;
use crate::upstream::{Svc, Upstream, q};

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(
        kasm("/admin/create_storage_provider", "Adds a source of images for the virtual drive", "application/json"),
        create,
    )
    .route(
        kasm("/admin/get_storage_providers", "The sources of images for the virtual drive", "application/json"),
        list,
    );
}

/// The key of a kind's location in Kasm's object.
fn location_key(kind: &str) -> Option<&'static str> {
    match kind {
        "http" => Some("url"),
        "webdav" => Some("webdav_url"),
        "nextcloud" => Some("nextcloud_url"),
        "local" => Some("path"),
        _ => None,
    }
}

/// kvmd-msd's provider as Kasm shows it.
fn kasm_provider(p: &Value) -> Value {
    let kind = p["type"].as_str().unwrap_or("");
    let mut v = json!({
        "storage_provider_id": p["id"],
        "storage_provider_type": kind,
        "name": p["name"],
        "enabled": p["enabled"],
    });
    if let (Some(k), Some(o)) = (location_key(kind), v.as_object_mut()) {
        o.insert(k.into(), if kind == "local" { p["path"].clone() } else { p["url"].clone() });
    }
    v
}

async fn create(call: Call, up: web::Data<Upstream>) -> Result<web::Json<Value>, KasmError> {
    let t = call.object("target_storage_provider")?;
    let kind = opt_str(t, "storage_provider_type")?
        .ok_or_else(|| KasmError::bad_request("Missing field: target_storage_provider.storage_provider_type"))?;
    let key = location_key(kind).ok_or_else(|| {
        KasmError::bad_request(format!("Unsupported storage_provider_type: {kind} (http, webdav, nextcloud or local)"))
    })?;
    let location = opt_str(t, key)?.ok_or_else(|| KasmError::bad_request(format!("Missing field: {key}")))?;
    let mut path =
        format!("/msd/providers/create?type={kind}&{}={}", if kind == "local" { "path" } else { "url" }, q(location));
    if let Some(name) = opt_str(t, "name")? {
        path.push_str(&format!("&name={}", q(name)));
    }
    if let Some(enabled) = opt_bool(t, "enabled")? {
        path.push_str(&format!("&enabled={}", u8::from(enabled)));
    }
    let r = up.call(Svc::Msd, "POST", &path, &call.caller).await?;
    Ok(web::Json(json!({ "storage_provider": kasm_provider(&r["provider"]) })))
}

async fn list(call: Call, up: web::Data<Upstream>) -> Result<web::Json<Value>, KasmError> {
    let r = up.call(Svc::Msd, "GET", "/msd/providers", &call.caller).await?;
    let list: Vec<Value> = r["providers"].as_array().map(|a| a.iter().map(kasm_provider).collect()).unwrap_or_default();
    Ok(web::Json(json!({ "storage_providers": list })))
}
