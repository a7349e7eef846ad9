//! `/api/login` (the document's, A.1.1) and `/login_api` (what the real v1.4.0 serves,
//! A.2.2): a username and password give a token, a new 12-hour session of that user in
//! kvmd-auth's table (shown in the session list as `blikvm`, revocable, subject to roles,
//! TOTP and the lockout as a PiKVM login). Any failure is BliKVM's `failed`, HTTP 200.
//!
//! `/change_user` (A.2.3, A.4.6): the token's user sets a new password (at least 8
//! characters), at once (BliKVM needs a restart), and every session of the user ends, its
//! tokens with them. It is kvmd-auth's `/auth/users/update` asked with the token, so it
//! takes an admin's token and a user of the users' database (an htpasswd user's password is
//! changed with `kvmd-htpasswd`); a `username` other than the token's user would be a
//! rename, which the user store does not do: `failed`.

use actix_web::{HttpRequest, HttpResponse, web};
use kvmd_core::routes::{Api, Role};

use crate::body::Fields;
use crate::reply::{self, Failed};
use crate::shim::{Shim, client_addr};
use crate::upstream::{Send, Svc, Upstream};

/// The group's routes.
pub fn routes(api: &mut Api) {
    for path in ["/api/login", "/login_api"] {
        super::both(api, path, "Logs in: `{username, password}` → `data.token` (12 hours)", Role::Viewer, login);
    }
    super::both(api, "/change_user", "Sets the token's user's password; their sessions end", Role::Admin, change_user);
}

async fn change_user(shim: Shim, up: web::Data<Upstream>) -> Result<HttpResponse, Failed> {
    let (Some(user), Some(passwd)) = (shim.fields.str("username"), shim.fields.str("password")) else {
        return Err(Failed::plain());
    };
    if user.is_empty() || passwd.chars().count() < 8 || user != shim.caller.user {
        return Err(Failed::plain());
    }
    let form = Send::Form(vec![("user", user), ("passwd", passwd)]);
    match up.call(Svc::Auth, "POST", "/auth/users/update", &shim.caller, form).await {
        Ok(_) => Ok(reply::ok("success", serde_json::Value::Null)),
        // No token, not an admin's, a service away: as such; a refusal of the change: `failed`.
        Err(e) if e.http != actix_web::http::StatusCode::OK => Err(e),
        Err(_) => Err(Failed::plain()),
    }
}

async fn login(req: HttpRequest, body: web::Bytes, up: web::Data<Upstream>) -> Result<HttpResponse, Failed> {
    // Whatever is wrong with the body, the answer is BliKVM's `failed`.
    let ct = req.headers().get("Content-Type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let fields = Fields::parse(ct, &body).map_err(|_| Failed::plain())?;
    let (Some(user), Some(passwd)) = (fields.str("username"), fields.str("password")) else {
        return Err(Failed::plain());
    };
    // kvmd's own checks of the name and password (a name kvmd would refuse is no user).
    let (Ok(user), Ok(passwd)) = (kvmd_core::valid::user(Some(&user)), kvmd_core::valid::passwd(Some(&passwd))) else {
        return Err(Failed::plain());
    };
    let agent = req.headers().get("User-Agent").and_then(|v| v.to_str().ok()).unwrap_or("");
    match up.login(&user, &passwd, &client_addr(&req), agent).await? {
        Some(token) => Ok(reply::ok("login success", serde_json::json!({ "token": token }))),
        None => Err(Failed::plain()),
    }
}
