//! `/auth/users`: the users, with their roles and flags, and an admin's changes to them in
//! the users' database (`kvmd_auth::users`). kvmd has none of this: its users are the
//! htpasswd file's, which stays read-only here (its users' passwords change with
//! `kvmd-htpasswd`). Passwords travel in the form body, never in the URL.

use actix_web::{HttpRequest, web};
use kvmd_core::envelope::{self, ApiResponse};
use kvmd_core::error::ApiError;
use kvmd_core::role::Role;
use kvmd_core::routes::{Access, Answer, Api, Body, Param, Route, Ty};
use kvmd_core::valid;

use super::auth::{field, form_fields};
use super::sessions::admin;
use crate::manager::{Manager, UserChange, UserError};
use crate::users::UserRow;

const ROLES: &[&str] = &["viewer", "operator", "admin"];

const CREATE: &[Param] = &[
    Param::req("user", Ty::pattern(128, valid::USER_PATTERN), "The new user's name"),
    Param::req("passwd", Ty::str(512), "Their password (stored as bcrypt)"),
    Param::opt("role", Ty::Enum(ROLES), "Their role (default viewer)"),
    Param::opt("first_name", Ty::str(128), "Profile"),
    Param::opt("last_name", Ty::str(128), "Profile"),
    Param::opt("phone", Ty::str(128), "Profile"),
    Param::opt("organization", Ty::str(128), "Profile"),
];

const UPDATE: &[Param] = &[
    Param::req("user", Ty::pattern(128, valid::USER_PATTERN), "The user"),
    Param::opt("passwd", Ty::str(512), "A new password (not for a user of the htpasswd file)"),
    Param::opt("role", Ty::Enum(ROLES), "A new role"),
    Param::opt("locked", Ty::Bool, "Locked: refused, sessions ended"),
    Param::opt("disabled", Ty::Bool, "Disabled: refused, sessions ended"),
    Param::opt("first_name", Ty::str(128), "Profile"),
    Param::opt("last_name", Ty::str(128), "Profile"),
    Param::opt("phone", Ty::str(128), "Profile"),
    Param::opt("organization", Ty::str(128), "Profile"),
    Param::opt("keep_sessions", Ty::Bool, "Keep the user's sessions through a new password or role"),
];

const DELETE: &[Param] = &[Param::req("user", Ty::pattern(128, valid::USER_PATTERN), "The user (of the database)")];

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get("/auth/users")
            .access(Access::SelfChecked)
            .role(Role::Admin)
            .doc("The users, with their ids, roles, flags, where the password is, and their sessions")
            .answer(Answer::Envelope(
                "`{users: [{user_id, username, role, password_in, locked, disabled, ..., sessions}]}`",
            )),
        list,
    )
    .route(
        Route::post("/auth/users/create")
            .access(Access::SelfChecked)
            .role(Role::Admin)
            .body(Body::Form(CREATE))
            .doc("Makes a user in the users' database")
            .answer(Answer::Envelope("`{user}`")),
        create,
    )
    .route(
        Route::post("/auth/users/update")
            .access(Access::SelfChecked)
            .role(Role::Admin)
            .body(Body::Form(UPDATE))
            .doc("Changes a user's password, role, flags or profile; a new password or role ends their sessions")
            .answer(Answer::Envelope("`{user}`")),
        update,
    )
    .route(
        Route::post("/auth/users/delete")
            .access(Access::SelfChecked)
            .role(Role::Admin)
            .body(Body::Form(DELETE))
            .doc("Deletes a user of the users' database; their sessions end")
            .answer(Answer::Envelope("`{}`")),
        delete,
    );
}

async fn list(m: web::Data<Manager>, req: HttpRequest) -> Result<ApiResponse<serde_json::Value>, ApiError> {
    admin(&m, &req).await?;
    Ok(ApiResponse::new(serde_json::json!({ "users": m.users() })))
}

fn user_error(e: UserError) -> ApiError {
    match e {
        UserError::NoDatabase => ApiError::operation("UsersReadOnlyError", e.to_string()),
        UserError::Exists(_) => ApiError::operation("UserExistsError", e.to_string()),
        UserError::Unknown(_) => ApiError::operation("UnknownUserError", e.to_string()),
        UserError::InFile(_) => ApiError::operation("UserInHtpasswdError", e.to_string()),
        UserError::Failed(d) => ApiError::internal(d),
    }
}

/// The form's fields.
async fn form(req: &HttpRequest, payload: web::Payload) -> actix_web::Result<Vec<(String, String)>> {
    let body = envelope::read_body(payload, envelope::BODY_LIMIT).await?;
    Ok(form_fields(req, body).await)
}

fn role_of(fields: &[(String, String)]) -> Result<Option<Role>, ApiError> {
    field(fields, "role")
        .map(|r| valid::string_in_list(Some(r), "user role", ROLES))
        .transpose()
        .map(|r| r.and_then(|r| Role::parse(&r)))
}

fn flag(fields: &[(String, String)], name: &str) -> Result<Option<bool>, ApiError> {
    field(fields, name).map(|v| valid::boolean(Some(v))).transpose()
}

fn profile(fields: &[(String, String)], name: &str) -> Result<Option<String>, ApiError> {
    match field(fields, name) {
        Some(v) if v.chars().count() > 128 || v.chars().any(char::is_control) => Err(valid::invalid_error(v, name)),
        Some(v) => Ok(Some(v.to_owned())),
        None => Ok(None),
    }
}

async fn create(
    m: web::Data<Manager>,
    req: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<ApiResponse<serde_json::Value>> {
    let who = admin(&m, &req).await?;
    let f = form(&req, payload).await?;
    let name = valid::user(Some(field(&f, "user").unwrap_or("")))?;
    let passwd = valid::passwd(Some(field(&f, "passwd").unwrap_or("")))?;
    let mut row = UserRow::new(&name, role_of(&f)?.unwrap_or(Role::Viewer));
    for (slot, key) in [
        (&mut row.first_name, "first_name"),
        (&mut row.last_name, "last_name"),
        (&mut row.phone, "phone"),
        (&mut row.organization, "organization"),
    ] {
        if let Some(v) = profile(&f, key)? {
            *slot = v;
        }
    }
    let user = m.create_user(row, passwd, &who.user).await.map_err(user_error)?;
    Ok(ApiResponse::new(serde_json::json!({ "user": user })))
}

async fn update(
    m: web::Data<Manager>,
    req: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<ApiResponse<serde_json::Value>> {
    let who = admin(&m, &req).await?;
    let f = form(&req, payload).await?;
    let name = valid::user(Some(field(&f, "user").unwrap_or("")))?;
    let password = field(&f, "passwd").map(|p| valid::passwd(Some(p))).transpose()?;
    let change = UserChange {
        password,
        role: role_of(&f)?,
        locked: flag(&f, "locked")?,
        disabled: flag(&f, "disabled")?,
        profile: [
            profile(&f, "first_name")?,
            profile(&f, "last_name")?,
            profile(&f, "phone")?,
            profile(&f, "organization")?,
        ],
        keep_sessions: flag(&f, "keep_sessions")?.unwrap_or(false),
    };
    let user = m.update_user(&name, change, &who.user).await.map_err(user_error)?;
    Ok(ApiResponse::new(serde_json::json!({ "user": user })))
}

async fn delete(
    m: web::Data<Manager>,
    req: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<ApiResponse<serde_json::Value>> {
    let who = admin(&m, &req).await?;
    let f = form(&req, payload).await?;
    let name = valid::user(Some(field(&f, "user").unwrap_or("")))?;
    m.delete_user(&name, &who.user).map_err(user_error)?;
    Ok(ApiResponse::empty())
}
