//! Kasm's sessions ("kasms") are the suite's login sessions (kvmd-auth's `/auth/sessions`):
//! `get_kasms`, `request_kasm` (a session for a user on a target, entered through a one-time
//! login link), `get_kasm_status`, `destroy_kasm` (revoked: its cookie stops working and its
//! WebSocket and video close within a second), and `exec_command_kasm`, which a KVM cannot do.

use actix_web::web;
use kvmd_core::routes::Api;
use serde_json::{Value, json};

use super::{date, empty, kasm};
use crate::call::{Call, id_of, opt_bool};
use crate::config::Config;
use crate::error::KasmError;
use crate::images::{Image, Images};
use crate::upstream::{Svc, Upstream};

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(kasm("/public/get_kasms", "The live sessions (an admin's key)", "application/json"), get_kasms)
        .route(
            kasm(
                "/public/request_kasm",
                "A session for `user_id` on `image_id`, entered through a one-time login link `kasm_url`",
                "application/json",
            ),
            request_kasm,
        )
        .route(
            kasm(
                "/public/get_kasm_status",
                "A session's status: `starting` until a console connects, then `running`",
                "application/json",
            ),
            get_kasm_status,
        )
        .route(
            kasm(
                "/public/destroy_kasm",
                "Ends a session: its cookie, WebSocket and video stop at once",
                "application/json",
            ),
            destroy_kasm,
        )
        .route(
            kasm("/public/exec_command_kasm", "Not supported by a KVM (400)", "application/json"),
            exec_command_kasm,
        );
}

fn user_id_of(users: &[Value], name: &str) -> String {
    users.iter().find(|u| u["username"] == name).and_then(|u| u["user_id"].as_str()).unwrap_or("").to_owned()
}

/// A session in Kasm's shape (spec B.4.3).
fn kasm_of(s: &Value, image: &Image, users: &[Value]) -> Value {
    let user = s["user"].as_str().unwrap_or("");
    let holds = s["holds"].as_object().cloned().unwrap_or_default();
    let transport = if holds.contains_key("webrtc") {
        Value::from("webrtc")
    } else if holds.contains_key("stream") {
        Value::from("mjpeg")
    } else {
        Value::Null
    };
    let role = users.iter().find(|u| u["username"] == user).and_then(|u| u["role"].as_str()).unwrap_or("viewer");
    json!({
        "kasm_id": s["id"],
        "user_id": user_id_of(users, user),
        "username": user,
        "image_id": image.image_id,
        "image": {"image_id": image.image_id, "friendly_name": image.friendly_name},
        "operational_status": if holds.is_empty() { "starting" } else { "running" },
        "share_id": Value::Null,
        "client_ip": s["addr"],
        "user_agent": s["user_agent"],
        "video_transport": transport,
        "control": role != "viewer",
        "created": date(s["since"].as_u64()),
        "expiration_date": date(s["expires"].as_u64()),
    })
}

fn the_image(images: &Images) -> Result<Image, KasmError> {
    images.list().into_iter().next().ok_or_else(|| KasmError::internal("no image"))
}

async fn get_kasms(
    call: Call,
    up: web::Data<Upstream>,
    images: web::Data<Images>,
) -> Result<web::Json<Value>, KasmError> {
    let (users, sessions) = super::users_and_sessions(&up, &call).await?;
    let image = the_image(&images)?;
    let kasms: Vec<Value> = sessions.iter().map(|s| kasm_of(s, &image, &users)).collect();
    Ok(web::Json(json!({ "kasms": kasms })))
}

async fn request_kasm(
    call: Call,
    up: web::Data<Upstream>,
    images: web::Data<Images>,
    config: web::Data<Config>,
) -> Result<web::Json<Value>, KasmError> {
    let image_id = id_of(call.str("image_id")?, "image_id")?;
    let user_id = call
        .opt_str("user_id")?
        .ok_or_else(|| KasmError::bad_request("Missing field: user_id (an API key has no user of its own)"))?;
    let user_id = id_of(user_id, "user_id")?;
    if opt_bool(&call.body, "enable_sharing")? == Some(true) {
        return Err(KasmError::bad_request("enable_sharing is not supported by this device"));
    }
    let image = images.get(&image_id).ok_or_else(|| KasmError::not_found("image not found"))?;
    let users = up.call(Svc::Auth, "GET", "/auth/users", &call.caller).await?;
    let users = users["users"].as_array().cloned().unwrap_or_default();
    let user = users
        .iter()
        .find(|u| u["user_id"] == user_id.as_str())
        .and_then(|u| u["username"].as_str())
        .ok_or_else(|| KasmError::not_found("user not found"))?
        .to_owned();
    let link = up
        .call(
            Svc::Auth,
            "POST",
            &format!("/auth/links?user={}&ttl={}", crate::upstream::q(&user), config.link_ttl),
            &call.caller,
        )
        .await?;
    tracing::info!(key = %call.caller.id, user = %user, image = %image.image_id, "request_kasm: a login link made");
    Ok(web::Json(json!({
        "kasm_id": link["session"],
        "status": "starting",
        "share_id": Value::Null,
        "kasm_url": link["url"],
        "user_id": user_id,
        "username": user,
        "image_id": image.image_id,
        "expiration_date": date(link["expires"].as_u64()),
    })))
}

/// The session `kasm_id` names (and, if given, owned by `user_id`), with the users.
async fn find(call: &Call, up: &Upstream) -> Result<(Value, Vec<Value>), KasmError> {
    let kasm_id = id_of(call.str("kasm_id")?, "kasm_id")?;
    let owner = call.opt_str("user_id")?.map(|u| id_of(u, "user_id")).transpose()?;
    let (users, sessions) = super::users_and_sessions(up, call).await?;
    let s = sessions
        .into_iter()
        .find(|s| s["id"] == kasm_id.as_str())
        .filter(|s| owner.as_ref().is_none_or(|o| user_id_of(&users, s["user"].as_str().unwrap_or("")) == *o))
        .ok_or_else(|| KasmError::not_found("kasm not found"))?;
    Ok((s, users))
}

async fn get_kasm_status(
    call: Call,
    up: web::Data<Upstream>,
    images: web::Data<Images>,
) -> Result<web::Json<Value>, KasmError> {
    let (s, users) = find(&call, &up).await?;
    let kasm = kasm_of(&s, &the_image(&images)?, &users);
    let running = kasm["operational_status"] == "running";
    Ok(web::Json(json!({
        "operational_status": kasm["operational_status"],
        "operational_progress": if running { 100 } else { 0 },
        "operational_message": if running { "A console is connected" } else { "Waiting for the console" },
        "kasm": kasm,
        "kasm_url": "/",
    })))
}

async fn destroy_kasm(call: Call, up: web::Data<Upstream>) -> Result<web::Json<Value>, KasmError> {
    let (s, _) = find(&call, &up).await?;
    let id = s["id"].as_str().unwrap_or("");
    up.call(Svc::Auth, "POST", &format!("/auth/sessions/revoke?id={}", crate::upstream::q(id)), &call.caller).await?;
    Ok(web::Json(empty()))
}

async fn exec_command_kasm(_call: Call) -> Result<web::Json<Value>, KasmError> {
    Err(KasmError::bad_request("exec_command_kasm is not supported by this device"))
}
