//! `/auth/sessions`: who is logged in and what they hold open, and revoking them (an
//! admin's); and the internal `/auth/hold`, on which a service holds a session for as long
//! as it keeps a connection open for it.
//!
//! kvmd has neither: its sessions live until they expire or their user logs out, and an
//! open WebSocket outlives its session. Here a revoked (or expired, or logged-out) session
//! ends every hold at once, and each service closes the connection its hold was for.

use std::time::Duration;

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use kvmd_core::authn::{AUTH_HOLD_PATH, HOLD_ENDED};
use kvmd_core::envelope::ApiResponse;
use kvmd_core::error::ApiError;
use kvmd_core::query::Query;
use kvmd_core::role::Role;
use kvmd_core::routes::{Access, Answer, Api, Param, Route, Ty};
use kvmd_core::service::AccessQuiet;
use kvmd_core::valid;

use super::auth::check_request;
use crate::manager::Manager;
use crate::sessions::{HOLD_KINDS, Hold};

const ID_PATTERN: &str = "^[0-9a-f]{32}$";

const REVOKE: &[Param] = &[
    Param::opt("id", Ty::pattern(32, ID_PATTERN), "The session to end (its `id` in the list)"),
    Param::opt("user", Ty::pattern(128, valid::USER_PATTERN), "End every session of this user"),
    Param::opt("all", Ty::Bool, "End every session (the caller's too)"),
];

const LINK: &[Param] = &[
    Param::req("user", Ty::pattern(128, valid::USER_PATTERN), "Whose session the link opens"),
    Param::opt("ttl", Ty::int(10, 86400), "How long the link may be followed, in seconds (default 300)"),
];

const FOLLOW: &[Param] = &[Param::req("token", Ty::pattern(64, "^[0-9a-f]{64}$"), "The link's token")];

const HOLD: &[Param] = &[
    Param::req("session", Ty::pattern(32, ID_PATTERN), "The session's id"),
    Param::req("kind", Ty::Enum(HOLD_KINDS), "What the connection is"),
];

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get("/auth/sessions")
            .access(Access::SelfChecked)
            .role(Role::Admin)
            .doc("The live sessions: user, address, user agent, since, last use, expiry, and what each holds open")
            .answer(Answer::Envelope(
                "`{sessions: [{id, user, via, addr, user_agent, since, last_seen, expires, holds}]}`",
            )),
        list,
    )
    .route(
        Route::post("/auth/sessions/revoke")
            .access(Access::SelfChecked)
            .role(Role::Admin)
            .params(REVOKE)
            .doc("Ends one session, a user's, or all; their WebSockets and video streams close within a second")
            .answer(Answer::Envelope("`{revoked: <count>}`")),
        revoke,
    )
    .route(
        Route::post("/auth/links")
            .access(Access::SelfChecked)
            .role(Role::Admin)
            .params(LINK)
            .doc("A one-time login link for a user: followed once within its time, it logs the browser in")
            .answer(Answer::Envelope("`{url, session, expires}`")),
        make_link,
    )
    .route(
        Route::get("/auth/link")
            .access(Access::Public)
            .params(FOLLOW)
            .doc("Follows a one-time login link: sets the session cookie and redirects to the web UI")
            .answer(Answer::Media("text/html")),
        follow_link,
    )
    .route(
        Route::get(AUTH_HOLD_PATH)
            .access(Access::Public)
            .internal()
            .params(HOLD)
            .doc("A service holds a session while a connection of it is open; `ended` comes when the session ends")
            .answer(Answer::Stream("text/plain")),
        hold,
    );
}

/// The caller, if an admin; else kvmd's 401 or 403.
pub(crate) async fn admin(m: &Manager, req: &HttpRequest) -> Result<super::auth::Who, ApiError> {
    let who = check_request(m, req).await?;
    if who.role(m) < Role::Admin {
        crate::audit!(event = "role_denied", user = ?who.user, needs = "admin", uri = ?req.path(), "denied");
        return Err(ApiError::forbidden());
    }
    Ok(who)
}

async fn list(m: web::Data<Manager>, req: HttpRequest) -> Result<ApiResponse<serde_json::Value>, ApiError> {
    admin(&m, &req).await?;
    Ok(ApiResponse::new(serde_json::json!({ "sessions": m.sessions.list() })))
}

async fn revoke(m: web::Data<Manager>, req: HttpRequest) -> Result<ApiResponse<serde_json::Value>, ApiError> {
    let who = admin(&m, &req).await?;
    let q = Query::of(&req);
    let all = q.get("all").map(|v| valid::boolean(Some(v))).transpose()?.unwrap_or(false);
    let ended = match (q.get("id"), q.get("user"), all) {
        (Some(id), None, false) => {
            let id = valid_id(id)?;
            m.sessions.end_where(|s| s.id == id)
        }
        (None, Some(user), false) => {
            let user = valid::user(Some(user))?;
            m.sessions.end_where(|s| s.user == user)
        }
        (None, None, true) => m.sessions.end_where(|_| true),
        _ => return Err(ApiError::validator("Give exactly one of id, user or all=1")),
    };
    for (id, user) in &ended {
        crate::audit!(event = "session_ended", session = ?id, user = ?user, reason = "revoked", by = ?who.user, "session ended");
    }
    Ok(ApiResponse::new(serde_json::json!({ "revoked": ended.len() })))
}

const LINK_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" \
    content=\"0; url=/\"><title>Logged in</title></head><body><p>Logged in. <a href=\"/\">Open the console</a>.</p></body></html>\n";

/// The front path a login link is followed on.
pub const LINK_PATH: &str = "/api/auth/link";

async fn make_link(m: web::Data<Manager>, req: HttpRequest) -> Result<ApiResponse<serde_json::Value>, ApiError> {
    let who = admin(&m, &req).await?;
    let q = Query::of(&req);
    let user = valid::user(q.get("user"))?;
    let ttl = valid::int(Some(q.get("ttl").unwrap_or("300")), "link lifetime", Some(10), Some(86400))?;
    let ttl = u64::try_from(ttl).unwrap_or(300);
    let (link, session) = m
        .make_link(&user, Duration::from_secs(ttl), &who.user)
        .ok_or_else(|| ApiError::operation("UnknownUserError", format!("No such user: {user}")))?;
    let expires = crate::sessions::unix_now() + ttl;
    Ok(ApiResponse::new(serde_json::json!({
        "url": format!("{LINK_PATH}?token={link}"),
        "session": session,
        "expires": expires,
    })))
}

async fn follow_link(m: web::Data<Manager>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = Query::of(&req);
    let link = q.get("token").unwrap_or("").trim().to_owned();
    let well_formed = link.len() == 64 && link.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    let agent = req.headers().get("User-Agent").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let token = well_formed
        .then(|| m.follow_link(&link, &super::auth::client_addr(&req), agent.as_deref().unwrap_or("")))
        .flatten()
        .ok_or_else(|| {
            crate::audit!(event = "link_refused", addr = ?super::auth::client_addr(&req), "login link refused");
            ApiError::forbidden()
        })?;
    let cookie = super::auth::session_cookie(&req, &token)?;
    // A page that moves on by itself rather than a 302: the link is usually followed from
    // another site, and a browser does not send a SameSite=Strict cookie on the redirect
    // of a cross-site navigation, but does on the page's own.
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::SET_COOKIE, cookie))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .content_type("text/html; charset=utf-8")
        .body(LINK_PAGE))
}

fn valid_id(arg: &str) -> Result<String, ApiError> {
    let v = arg.trim();
    if v.len() == 32 && v.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        Ok(v.to_owned())
    } else {
        Err(valid::invalid_error(arg, "session id"))
    }
}

/// How often a hold writes a newline, so that a gone service is noticed.
const KEEPALIVE: Duration = Duration::from_secs(15);

async fn hold(m: web::Data<Manager>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    // Not access-logged: one per open connection, ending whenever it ends.
    req.extensions_mut().insert(AccessQuiet);
    let q = Query::of(&req);
    let id = valid_id(q.get("session").unwrap_or(""))?;
    let kind = valid::string_in_list(q.get("kind"), "hold kind", HOLD_KINDS)?;
    let Some(hold) = m.sessions.hold(&id, &kind) else {
        return Ok(HttpResponse::NotFound().content_type("text/plain").body(HOLD_ENDED));
    };
    let body = futures_util::stream::unfold(Some((hold, m.clone(), true)), |state| async move {
        let (mut hold, m, first) = state?;
        if first {
            return Some((
                Ok::<_, std::convert::Infallible>(bytes::Bytes::from_static(b"held\n")),
                Some((hold, m, false)),
            ));
        }
        match next(&mut hold, &m).await {
            Next::Alive => Some((Ok(bytes::Bytes::from_static(b"\n")), Some((hold, m, false)))),
            Next::Ended => Some((Ok(bytes::Bytes::from_static(HOLD_ENDED)), None)),
            Next::Closing => None,
        }
    });
    Ok(HttpResponse::Ok().content_type("text/plain").insert_header(("X-Accel-Buffering", "no")).streaming(body))
}

enum Next {
    /// Time for a keep-alive.
    Alive,
    /// The session ended.
    Ended,
    /// kvmd-auth is stopping: the hold ends without an end of the session (the service
    /// holds it again on the next process).
    Closing,
}

async fn next(hold: &mut Hold, m: &Manager) -> Next {
    let deadline = tokio::time::sleep(KEEPALIVE);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => return Next::Alive,
            e = hold.ended.recv() => match e {
                Ok(id) if id == hold.id() => return Next::Ended,
                Ok(id) if id == crate::sessions::CLOSING => return Next::Closing,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if !m.sessions.contains_id(hold.id()) {
                        return Next::Ended;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return Next::Closing,
            },
        }
    }
}
