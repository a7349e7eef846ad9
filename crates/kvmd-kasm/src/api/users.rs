//! Kasm's users are the suite's, with their roles (kvmd-auth's `/auth/users`): `get_users`,
//! `get_user`, `create_user`, `update_user`, `delete_user`, `logout_user`, on both prefixes
//! (the reference puts them under `/api/admin/`, pykasm under `/api/public/`), always with an
//! admin key.

use actix_web::web;
use kvmd_core::routes::Api;
use serde_json::{Value, json};

use super::{date, empty, kasm};
use crate::call::{Call, id_of, opt_bool, opt_str};
use crate::error::KasmError;
use crate::upstream::{Svc, Upstream};

/// The group's routes.
pub fn routes(api: &mut Api) {
    for p in ["public", "admin"] {
        let at = |name: &str| -> &'static str { Box::leak(format!("/{p}/{name}").into_boxed_str()) };
        api.route(kasm(at("get_users"), "The users, with their roles (an admin key)", "application/json"), get_users)
            .route(
                kasm(at("get_user"), "One user, by `target_user.user_id` or `.username`", "application/json"),
                get_user,
            )
            .route(
                kasm(
                    at("create_user"),
                    "Makes a user: `target_user{username, password, role, ...}`",
                    "application/json",
                ),
                create_user,
            )
            .route(
                kasm(
                    at("update_user"),
                    "Changes a user: password, role, locked, disabled, profile",
                    "application/json",
                ),
                update_user,
            )
            .route(
                kasm(at("delete_user"), "Deletes a user made here (`force`: with live sessions)", "application/json"),
                delete_user,
            )
            .route(kasm(at("logout_user"), "Ends every session of `target_user`", "application/json"), logout_user);
    }
}

/// The role pseudo-groups' ids: stable, one per role.
fn group_id(role: &str) -> String {
    format!("{:0>32}", hex::encode(role.as_bytes()))
}

/// A user in Kasm's shape (spec B.4.3); `sessions` are the live ones.
fn user_of(u: &Value, sessions: &[Value]) -> Value {
    let name = u["username"].as_str().unwrap_or("");
    let role = u["role"].as_str().unwrap_or("viewer");
    let mine: Vec<&Value> = sessions.iter().filter(|s| s["user"] == name).collect();
    let last = mine.iter().filter_map(|s| s["last_seen"].as_u64()).max();
    let text = |k: &str| u[k].as_str().unwrap_or("").to_owned();
    json!({
        "user_id": u["user_id"],
        "username": name,
        "first_name": text("first_name"),
        "last_name": text("last_name"),
        "phone": text("phone"),
        "organization": text("organization"),
        "locked": u["locked"].as_bool().unwrap_or(false),
        "disabled": u["disabled"].as_bool().unwrap_or(false),
        "realm": "local",
        "role": role,
        "groups": [{"group_id": group_id(role), "name": role}],
        "kasms": mine.iter().map(|s| json!({"kasm_id": s["id"]})).collect::<Vec<_>>(),
        "created": date(u["created"].as_u64()),
        "last_session": date(last),
    })
}

async fn all(call: &Call, up: &Upstream) -> Result<(Vec<Value>, Vec<Value>), KasmError> {
    call.need_admin_scope()?;
    super::users_and_sessions(up, call).await
}

async fn get_users(call: Call, up: web::Data<Upstream>) -> Result<web::Json<Value>, KasmError> {
    let (users, sessions) = all(&call, &up).await?;
    let users: Vec<Value> = users.iter().map(|u| user_of(u, &sessions)).collect();
    Ok(web::Json(json!({ "users": users })))
}

/// The user `target_user` names (by `user_id`, else `username`).
async fn target(call: &Call, up: &Upstream) -> Result<(Value, Vec<Value>), KasmError> {
    let (users, sessions) = all(call, up).await?;
    let t = call.object("target_user")?;
    let by_id = opt_str(t, "user_id")?.map(|i| id_of(i, "target_user.user_id")).transpose()?;
    let by_name = opt_str(t, "username")?;
    let found = match (by_id, by_name) {
        (Some(id), _) => users.iter().find(|u| u["user_id"] == id.as_str()),
        (None, Some(name)) => users.iter().find(|u| u["username"] == name),
        (None, None) => return Err(KasmError::bad_request("target_user needs user_id or username")),
    };
    let u = found.cloned().ok_or_else(|| KasmError::not_found("user not found"))?;
    Ok((u, sessions))
}

async fn get_user(call: Call, up: web::Data<Upstream>) -> Result<web::Json<Value>, KasmError> {
    let (u, sessions) = target(&call, &up).await?;
    Ok(web::Json(json!({ "user": user_of(&u, &sessions) })))
}

async fn logout_user(call: Call, up: web::Data<Upstream>) -> Result<web::Json<Value>, KasmError> {
    let (u, _) = target(&call, &up).await?;
    let name = u["username"].as_str().unwrap_or("");
    up.call(Svc::Auth, "POST", &format!("/auth/sessions/revoke?user={}", crate::upstream::q(name)), &call.caller)
        .await?;
    Ok(web::Json(empty()))
}

/// The form fields of `target_user` for kvmd-auth (`passwd`, `role`, the flags and the
/// profile), each checked for its type.
fn fields(t: &serde_json::Map<String, Value>) -> Result<Vec<(&'static str, String)>, KasmError> {
    let mut out = Vec::new();
    if let Some(p) = opt_str(t, "password")? {
        out.push(("passwd", p.to_owned()));
    }
    if let Some(r) = opt_str(t, "role")? {
        if !["viewer", "operator", "admin"].contains(&r) {
            return Err(KasmError::bad_request("role must be viewer, operator or admin"));
        }
        out.push(("role", r.to_owned()));
    }
    for flag in ["locked", "disabled"] {
        if let Some(b) = opt_bool(t, flag)? {
            out.push((flag, b.to_string()));
        }
    }
    for key in ["first_name", "last_name", "phone", "organization"] {
        if let Some(v) = opt_str(t, key)? {
            out.push((key, v.to_owned()));
        }
    }
    Ok(out)
}

/// kvmd-auth's 400 for a bad field, Kasm's 404 for an unknown user, its 400 otherwise.
fn refused(e: KasmError) -> KasmError {
    if e.message.starts_with("no user ") { KasmError::not_found("user not found") } else { e }
}

async fn create_user(call: Call, up: web::Data<Upstream>) -> Result<web::Json<Value>, KasmError> {
    call.need_admin_scope()?;
    let t = call.object("target_user")?;
    let name = opt_str(t, "username")?.ok_or_else(|| KasmError::bad_request("Missing field: target_user.username"))?;
    if opt_str(t, "password")?.is_none() {
        return Err(KasmError::bad_request("Missing field: target_user.password"));
    }
    let mut form = vec![("user", name.to_owned())];
    form.extend(fields(t)?);
    if !form.iter().any(|(k, _)| *k == "role") {
        form.push(("role", "viewer".into()));
    }
    up.post_form(Svc::Auth, "/auth/users/create", &form, &call.caller).await?;
    let (users, sessions) = all(&call, &up).await?;
    let u =
        users.iter().find(|u| u["username"] == name).ok_or_else(|| KasmError::internal("a made user is not listed"))?;
    Ok(web::Json(json!({ "user": user_of(u, &sessions) })))
}

async fn update_user(call: Call, up: web::Data<Upstream>) -> Result<web::Json<Value>, KasmError> {
    let (u, _) = target(&call, &up).await?;
    let name = u["username"].as_str().unwrap_or("").to_owned();
    let mut form = vec![("user", name.clone())];
    form.extend(fields(call.object("target_user")?)?);
    up.post_form(Svc::Auth, "/auth/users/update", &form, &call.caller).await.map_err(refused)?;
    let (users, sessions) = all(&call, &up).await?;
    let u =
        users.iter().find(|u| u["username"] == name.as_str()).ok_or_else(|| KasmError::not_found("user not found"))?;
    Ok(web::Json(json!({ "user": user_of(u, &sessions) })))
}

async fn delete_user(call: Call, up: web::Data<Upstream>) -> Result<web::Json<Value>, KasmError> {
    let (u, _) = target(&call, &up).await?;
    let name = u["username"].as_str().unwrap_or("").to_owned();
    let force = opt_bool(&call.body, "force")?.unwrap_or(false);
    if u["sessions"].as_u64().unwrap_or(0) > 0 {
        if !force {
            return Err(KasmError::bad_request("The user has live sessions: give \"force\": true to end them"));
        }
        up.call(Svc::Auth, "POST", &format!("/auth/sessions/revoke?user={}", crate::upstream::q(&name)), &call.caller)
            .await?;
    }
    up.post_form(Svc::Auth, "/auth/users/delete", &[("user", name)], &call.caller).await.map_err(refused)?;
    Ok(web::Json(empty()))
}
