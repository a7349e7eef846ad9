//! Kasm's images are the targets this KVM controls (one: the machine behind it), each with
//! its live video, HID and ATX state: `get_images`, and `update_image` (its name and
//! description, and the stream's quality and frame rate through kvmd-streamer's params).

use actix_web::web;
use kvmd_core::routes::Api;
use serde_json::{Value, json};

use super::kasm;
use crate::call::{Call, id_of, opt_bool, opt_str, opt_uint};
use crate::error::KasmError;
use crate::images::{Image, Images};
use crate::upstream::{Svc, Upstream};

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(
        kasm("/public/get_images", "The targets, with their video, HID and ATX state", "application/json"),
        get_images,
    )
    .route(
        kasm(
            "/admin/update_image",
            "Changes a target's name and description, and the stream's quality and fps",
            "application/json",
        ),
        update_image,
    );
}

/// The live state of the target, as the caller may see it (a part it may not see, or whose
/// service is away, is `null`).
async fn state(up: &Upstream, call: &Call) -> Value {
    let (hid, streamer, atx) = tokio::join!(
        up.call(Svc::Hid, "GET", "/hid", &call.caller),
        up.call(Svc::Streamer, "GET", "/streamer", &call.caller),
        up.call(Svc::Gpio, "GET", "/atx", &call.caller),
    );
    let hid = hid.map(|h| json!({"online": h["online"], "keyboard": {"online": h["keyboard"]["online"]}, "mouse": {"online": h["mouse"]["online"]}}));
    let video = streamer.map(|s| {
        let src = &s["streamer"]["source"];
        let res = &src["resolution"];
        json!({
            "online": src["online"].as_bool().unwrap_or(false),
            "resolution": if res["width"].is_u64() { Value::from(format!("{}x{}", res["width"], res["height"])) } else { Value::Null },
            "quality": s["params"]["quality"],
            "desired_fps": s["params"]["desired_fps"],
        })
    });
    let atx = atx.map(|a| json!({"enabled": a["enabled"], "power": a["leds"]["power"]}));
    json!({"video": video.ok(), "hid": hid.ok(), "atx": atx.ok()})
}

fn with_state(image: &Image, state: &Value) -> Value {
    let mut v = serde_json::to_value(image).unwrap_or_default();
    if let (Some(o), Some(s)) = (v.as_object_mut(), state.as_object()) {
        o.extend(s.clone());
    }
    v
}

async fn get_images(
    call: Call,
    up: web::Data<Upstream>,
    images: web::Data<Images>,
) -> Result<web::Json<Value>, KasmError> {
    let state = state(&up, &call).await;
    let images: Vec<Value> = images.list().iter().filter(|i| i.enabled).map(|i| with_state(i, &state)).collect();
    Ok(web::Json(json!({ "images": images })))
}

async fn update_image(
    call: Call,
    up: web::Data<Upstream>,
    images: web::Data<Images>,
) -> Result<web::Json<Value>, KasmError> {
    let t = call.object("target_image")?;
    let id = id_of(
        opt_str(t, "image_id")?.ok_or_else(|| KasmError::bad_request("Missing field: target_image.image_id"))?,
        "target_image.image_id",
    )?;
    let text = |name: &str, max: usize| -> Result<Option<String>, KasmError> {
        match opt_str(t, name)? {
            Some(s) if s.chars().count() > max => {
                Err(KasmError::bad_request(format!("{name} is longer than {max} characters")))
            }
            Some(s) if s.chars().any(char::is_control) => {
                Err(KasmError::bad_request(format!("{name} has a control character")))
            }
            other => Ok(other.map(str::to_owned)),
        }
    };
    let (name, description) = (text("friendly_name", 128)?, text("description", 1024)?);
    let enabled = opt_bool(t, "enabled")?;
    let (cores, memory) = (opt_uint(t, "cores", 1 << 20)?, opt_uint(t, "memory", u64::MAX)?);
    let quality = match opt_uint(t, "quality", 100)? {
        Some(0) => return Err(KasmError::bad_request("quality must be an integer from 1 to 100")),
        q => q,
    };
    let fps = opt_uint(t, "desired_fps", 120)?;
    if images.get(&id).is_none() {
        return Err(KasmError::not_found("image not found"));
    }
    // The stream first: a key that may not change it changes nothing.
    let mut params = Vec::new();
    if let Some(q) = quality {
        params.push(format!("quality={q}"));
    }
    if let Some(f) = fps {
        params.push(format!("desired_fps={f}"));
    }
    if !params.is_empty() {
        up.call(Svc::Streamer, "POST", &format!("/streamer/set_params?{}", params.join("&")), &call.caller).await?;
    }
    let image = images
        .update(&id, |i| {
            if let Some(n) = name {
                i.friendly_name = n;
            }
            if let Some(d) = description {
                i.description = d;
            }
            if let Some(e) = enabled {
                i.enabled = e;
            }
            if let Some(c) = cores {
                i.cores = c;
            }
            if let Some(m) = memory {
                i.memory = m;
            }
        })
        .ok_or_else(|| KasmError::not_found("image not found"))?;
    let state = state(&up, &call).await;
    Ok(web::Json(json!({ "image": with_state(&image, &state) })))
}
