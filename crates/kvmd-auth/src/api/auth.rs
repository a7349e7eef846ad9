//! `/auth`: login, logout, check, and nginx's `auth_request` decision.
//!
//! Reproduces kvmd `kvmd/apps/kvmd/api/auth.py`; spec `auth.md` sections 2–5. Two
//! internal routes serve nginx only (declared [`kvmd_core::routes::Expose::Internal`], so the front never
//! exposes them): [`REQUEST_PATH`] decides an `auth_request` subrequest and answers 200 with the
//! user, or 401/403 with the reason in `X-KVMD-Auth-Error`; [`DENIED_PATH`] renders that
//! reason as kvmd's exact status and JSON body, which nginx then sends to the client
//! (`error_page 401 403 = @auth_denied`). nginx turns any other subrequest status into a
//! 500, which is why a 400 (malformed cookie) travels as a 403 with its reason.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use kvmd_core::authn::{
    self, AUTH_ERROR_HEADER, AUTH_SESSION_HEADER, AUTH_USER_HEADER, AUTH_VIA_HEADER, Credentials, decode_denial,
    encode_denial,
};
use kvmd_core::envelope::{self, ApiResponse};
use kvmd_core::error::ApiError;
use kvmd_core::role::{self, Role};
use kvmd_core::routes::{Access, Api, Body, Param, Route, Ty};
use kvmd_core::service::{AccessQuiet, AccessUser};
use kvmd_core::valid;

use crate::manager::{Busy, Manager};
use crate::sessions::Origin;

const LOGIN_FORM: &[Param] = &[
    Param::req("user", Ty::pattern(128, valid::USER_PATTERN), "The user name"),
    Param::req("passwd", Ty::str(512), "The password; with two-factor codes on, the current TOTP code appended"),
    Param::opt("expire", Ty::at_least(0), "Session lifetime in seconds; 0 = no expiry"),
    Param::opt(
        "redirect",
        Ty::Str { max_len: None, pattern: None },
        "Answer 302 to this path instead of 200 (one of `allow_redirects`)",
    ),
];

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(
        Route::post("/auth/login")
            .access(Access::Public)
            .doc("Logs in: checks the password (and TOTP code) and sets the `auth_token` session cookie")
            .body(Body::Form(LOGIN_FORM))
            .throttled(),
        login,
    )
    .route(
        Route::post("/auth/logout").access(Access::SelfChecked).doc("Ends the session of the `auth_token` cookie"),
        logout,
    )
    .route(Route::get("/auth/check").access(Access::SelfChecked).doc("Checks the request's credentials"), check)
    .route(
        Route::post(TOKEN_PATH)
            .access(Access::Public)
            .internal()
            .doc("A login for the other services: a session token in the envelope, no cookie (kvmd-blikvm)")
            .body(Body::Form(TOKEN_FORM)),
        token,
    )
    .route(Route::get(REQUEST_PATH).access(Access::Public).internal().doc("nginx's auth_request decision"), request)
    .route(Route::get(DENIED_PATH).access(Access::Public).internal().doc("nginx's denial renderer"), denied);
}

/// nginx's `auth_request` target (also asked by the other services for direct callers).
pub const REQUEST_PATH: &str = authn::AUTH_REQUEST_PATH;
/// nginx's `error_page` target for denials.
pub const DENIED_PATH: &str = authn::AUTH_DENIED_PATH;
/// The other services' login (kvmd-blikvm's `/api/login`).
pub const TOKEN_PATH: &str = authn::AUTH_TOKEN_PATH;

/// What a session opened by another service may be marked as in the session list.
const TOKEN_VIAS: &[&str] = &["blikvm"];

const TOKEN_FORM: &[Param] = &[
    Param::req("user", Ty::pattern(128, valid::USER_PATTERN), "The user name"),
    Param::req("passwd", Ty::str(512), "The password; with two-factor codes on, the current TOTP code appended"),
    Param::opt("expire", Ty::at_least(0), "Session lifetime in seconds; 0 = the default"),
    Param::opt("via", Ty::Enum(TOKEN_VIAS), "What the session list calls it"),
];

pub(crate) use kvmd_core::authn::client_addr;

fn note_user(req: &HttpRequest, who: String) {
    req.extensions_mut().insert(AccessUser(who));
}

/// Who a request is, as [`check_request`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Who {
    pub(crate) user: String,
    pub(crate) via: &'static str,
    /// The role the credentials carry themselves (an API key's); else the user's.
    pub(crate) own: Option<Role>,
    /// The session of a cookie.
    pub(crate) session: Option<String>,
    /// An API key's scope.
    pub(crate) scope: Option<&'static str>,
}

impl Who {
    fn new(user: String, via: &'static str) -> Self {
        Self { user, via, own: None, session: None, scope: None }
    }

    /// The caller's role (with auth disabled, an admin's).
    pub(crate) fn role(&self, m: &Manager) -> Role {
        if !m.config().enabled { Role::Admin } else { self.own.unwrap_or_else(|| m.role(&self.user)) }
    }
}

/// kvmd's `check_request_auth` without peer credentials: the user, the method, the role
/// when the credentials carry their own (an API key's), the session of a cookie.
pub(crate) async fn check_request(m: &Manager, req: &HttpRequest) -> Result<Who, ApiError> {
    if !m.config().enabled {
        return Ok(Who::new("-".into(), "disabled"));
    }
    let creds = authn::parse_credentials(req)?;
    let via = creds.via();
    match creds {
        Credentials::XHeaders { user, passwd } | Credentials::Basic { user, passwd } => {
            note_user(req, format!("{user} ({via})"));
            match m.authorize(&user, &passwd, &client_addr(req)).await {
                Ok(true) => Ok(Who::new(user, via)),
                Ok(false) => {
                    crate::audit!(event = "auth_refused", user = ?user, via, addr = ?client_addr(req), "credentials refused");
                    Err(ApiError::forbidden())
                }
                Err(Busy) => Err(ApiError::unavailable()),
            }
        }
        Credentials::Token(token) => {
            // A browser sends the cookie by itself: not for another site's page.
            if authn::cross_site(req) {
                note_user(req, "- (token, cross-site)".into());
                tracing::warn!("refused a cross-site request carrying the session cookie");
                return Err(ApiError::forbidden());
            }
            session_of(m, req, &token, via).ok_or_else(ApiError::forbidden)
        }
        // A session token a client adds itself (BliKVM's): no cookie, no cross-site
        // question; an unknown one is no credential (401), as a missing one.
        Credentials::Bearer(token) => session_of(m, req, &token, via).ok_or_else(ApiError::unauthorized),
        Credentials::Key { id, secret } => {
            // A key acts as itself: `key:<id>` in every service's log.
            let user = format!("key:{id}");
            note_user(req, format!("{user} (key)"));
            let key = m.authorize_key(&id, &secret, &client_addr(req)).map_err(|_| ApiError::forbidden())?;
            Ok(Who { own: Some(key.role), scope: Some(key.scope.as_str()), ..Who::new(user, via) })
        }
        Credentials::None => Err(ApiError::unauthorized()),
    }
}

/// The live session of `token`, noted for the access log (`via`: how it came).
fn session_of(m: &Manager, req: &HttpRequest, token: &str, via: &'static str) -> Option<Who> {
    let Some(found) = m.session(token) else {
        note_user(req, format!("- ({via})"));
        return None;
    };
    note_user(req, format!("{} ({via})", found.user));
    Some(Who { session: Some(found.id), ..Who::new(found.user, via) })
}

/// Form fields of the login body, as aiohttp's `request.post()` reads them: url-encoded or
/// `multipart/form-data` (text parts only); any other content type gives no fields. The
/// first of duplicate fields wins.
pub(crate) async fn form_fields(req: &HttpRequest, body: Vec<u8>) -> Vec<(String, String)> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let lower = ct.trim_start().to_ascii_lowercase();
    if lower.starts_with("application/x-www-form-urlencoded") {
        return form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    }
    if !lower.starts_with("multipart/form-data") {
        return Vec::new();
    }
    let Ok(boundary) = multer::parse_boundary(ct) else { return Vec::new() };
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(bytes::Bytes::from(body)) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut fields = Vec::new();
    // A malformed body ends the list: what was read so far counts, like a truncated form.
    while let Ok(Some(part)) = parts.next_field().await {
        let name = part.name().map(str::to_owned);
        let is_file = part.file_name().is_some();
        let Ok(text) = part.text().await else { break };
        if let (Some(name), false) = (name, is_file) {
            fields.push((name, text));
        }
    }
    fields
}

pub(crate) fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Python's `str(timedelta(seconds=n))`, as kvmd logs session lifetimes.
fn timedelta(n: u64) -> String {
    let (d, rest) = (n / 86400, n % 86400);
    let hms = format!("{}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    match d {
        0 => hms,
        1 => format!("1 day, {hms}"),
        _ => format!("{d} days, {hms}"),
    }
}

async fn login(m: web::Data<Manager>, req: HttpRequest, payload: web::Payload) -> actix_web::Result<HttpResponse> {
    if !m.config().enabled {
        return Ok(envelope::json_response(StatusCode::OK, &serde_json::json!({})));
    }
    let body = envelope::read_body(payload, envelope::BODY_LIMIT).await?;
    let fields = form_fields(&req, body).await;
    let mut allowed: Vec<&str> = m.config().allow_redirects.iter().map(String::as_str).collect();
    allowed.push("");
    let redirect = valid::string_in_list(Some(field(&fields, "redirect").unwrap_or("")), "login redirect", &allowed)?;
    let (user, passwd, expire) = login_fields(&fields)?;
    let token = open_session(&m, &req, &user, &passwd, expire, "login").await?;
    // One cookie for both branches: kvmd's 302 branch (auth_login_redirect.http) leaves out
    // HttpOnly and SameSite, which let a hostile page read the cookie or make the browser
    // send it with a cross-site form; kvmd-rs sets them there too, and Secure when the
    // front got the login over HTTPS, so the browser never sends it in clear
    // (docs/SECURITY.md).
    let cookie = session_cookie(&req, &token)?;
    if !redirect.is_empty() {
        return Ok(envelope::found(&redirect).insert_header((header::SET_COOKIE, cookie)).body("302: Found"));
    }
    let mut b = envelope::json_builder(StatusCode::OK);
    b.insert_header((header::SET_COOKIE, cookie));
    Ok(envelope::json_body(b, StatusCode::OK, &serde_json::json!({})))
}

/// A login's `user`, `passwd` and `expire` (0 when absent), with kvmd's validators in kvmd's
/// order.
fn login_fields(fields: &[(String, String)]) -> Result<(String, String, u64), ApiError> {
    let user = valid::user(Some(field(fields, "user").unwrap_or("")))?;
    let passwd = valid::passwd(Some(field(fields, "passwd").unwrap_or("")))?;
    let expire = valid::int(Some(field(fields, "expire").unwrap_or("0")), "expiration time", Some(0), None)?;
    Ok((user, passwd, u64::try_from(expire).unwrap_or(0)))
}

/// Checks `user`'s password (the lockout, TOTP, the user's state) and opens a session
/// marked `via`: its token, or kvmd's 403 (503 when the password checks' queue is full).
async fn open_session(
    m: &Manager,
    req: &HttpRequest,
    user: &str,
    passwd: &str,
    expire: u64,
    via: &str,
) -> Result<String, ApiError> {
    note_user(req, format!("{user} ({via})"));
    let addr = client_addr(req);
    match m.authorize(user, passwd, &addr).await {
        Ok(true) => {}
        Ok(false) => {
            crate::audit!(event = "login_refused", user = ?user, addr = ?addr, via, "login refused");
            return Err(ApiError::forbidden());
        }
        Err(Busy) => return Err(ApiError::unavailable()),
    }
    let agent = req.headers().get(header::USER_AGENT).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let origin = Origin {
        addr: addr.clone(),
        agent: agent.unwrap_or_default().chars().take(256).collect(),
        via: via.into(),
        cred: m.cred_of(user),
    };
    let (token, id) = m.sessions.create(user, expire, origin);
    let shown = if expire == 0 { "INF".to_owned() } else { format!("[{}]", timedelta(expire)) };
    tracing::info!("Logged in user '{user}'; expire={shown}, sessions_now={}", m.sessions.len());
    crate::audit!(event = "login", user = ?user, addr = ?addr, via, session = ?id, "logged in");
    Ok(token)
}

/// [`TOKEN_PATH`]: a login whose token comes in the envelope, `{"token": ...}`, for a
/// service that hands it to its client in its own form (kvmd-blikvm). The same checks and
/// the same session table as `/auth/login`; reachable only on kvmd-auth's socket.
async fn token(m: web::Data<Manager>, req: HttpRequest, payload: web::Payload) -> actix_web::Result<HttpResponse> {
    let body = envelope::read_body(payload, envelope::BODY_LIMIT).await?;
    let fields = form_fields(&req, body).await;
    let (user, passwd, expire) = login_fields(&fields)?;
    let via = valid::string_in_list(Some(field(&fields, "via").unwrap_or("blikvm")), "session origin", TOKEN_VIAS)?;
    if !m.config().enabled {
        return Err(ApiError::forbidden().into());
    }
    let token = open_session(&m, &req, &user, &passwd, expire, &via).await?;
    Ok(envelope::json_response(StatusCode::OK, &serde_json::json!({ "token": token })))
}

/// The session cookie of `token`: HttpOnly, SameSite=Strict, Secure over HTTPS.
pub(crate) fn session_cookie(req: &HttpRequest, token: &str) -> Result<HeaderValue, ApiError> {
    let secure = if over_https(req) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("auth_token={token}; HttpOnly; Path=/; SameSite=Strict{secure}"))
        .map_err(ApiError::internal)
}

/// Whether the front received the request over HTTPS (nginx's `X-Forwarded-Proto`).
fn over_https(req: &HttpRequest) -> bool {
    req.headers().get("X-Forwarded-Proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

async fn logout(m: web::Data<Manager>, req: HttpRequest) -> Result<ApiResponse<serde_json::Value>, ApiError> {
    check_request(&m, &req).await?;
    if m.config().enabled {
        // kvmd reads the cookie with "" as default, hence the hidden-value message.
        let token = valid::auth_token(Some(authn::token_cookie(&req).as_deref().unwrap_or("")))?;
        if let Some((user, n)) = m.sessions.logout(&token) {
            tracing::info!("Logged out user '{user}'; sessions_now={}", m.sessions.len());
            crate::audit!(event = "logout", user = ?user, sessions = n, "logged out");
        }
    }
    Ok(ApiResponse::empty())
}

async fn check(m: web::Data<Manager>, req: HttpRequest) -> Result<ApiResponse<serde_json::Value>, ApiError> {
    check_request(&m, &req).await?;
    Ok(ApiResponse::empty())
}

/// The user's role against what the front says the route needs ([`role::NEED_HEADER`],
/// by the original method): the user's role, or kvmd's 403.
fn decide_role(m: &Manager, req: &HttpRequest, who: &Who) -> Result<Role, ApiError> {
    let role = who.role(m);
    let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let need = role::needed(h(role::NEED_HEADER), h(authn::ORIGINAL_METHOD_HEADER));
    if role < need {
        crate::audit!(
            event = "role_denied",
            user = ?who.user,
            role = %role,
            needs = %need,
            method = h(authn::ORIGINAL_METHOD_HEADER),
            uri = h("X-Original-URI"),
            "Denied: the route needs a higher role"
        );
        return Err(ApiError::forbidden());
    }
    Ok(role)
}

async fn request(m: web::Data<Manager>, req: HttpRequest) -> HttpResponse {
    req.extensions_mut().insert(AccessQuiet);
    match check_request(&m, &req).await.and_then(|who| Ok((decide_role(&m, &req, &who)?, who))) {
        Ok((role, who)) => {
            let mut b = HttpResponse::Ok();
            if let (Ok(u), Ok(v)) = (HeaderValue::from_str(&who.user), HeaderValue::from_str(who.via)) {
                b.insert_header((AUTH_USER_HEADER, u)).insert_header((AUTH_VIA_HEADER, v));
            }
            b.insert_header((role::ROLE_HEADER, role.as_str()));
            // The services that keep a connection open for the session hold it by this id.
            if let Some(id) = who.session.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
                b.insert_header((AUTH_SESSION_HEADER, id));
            }
            if let Some(scope) = who.scope {
                b.insert_header((authn::AUTH_SCOPE_HEADER, scope));
            }
            b.finish()
        }
        Err(e) => {
            let status =
                if e.status() == StatusCode::UNAUTHORIZED { StatusCode::UNAUTHORIZED } else { StatusCode::FORBIDDEN };
            let mut b = HttpResponse::build(status);
            if let Ok(v) = HeaderValue::from_str(&encode_denial(&e)) {
                b.insert_header((AUTH_ERROR_HEADER, v));
            }
            b.finish()
        }
    }
}

async fn denied(req: HttpRequest) -> HttpResponse {
    req.extensions_mut().insert(AccessQuiet);
    let err = req
        .headers()
        .get(AUTH_ERROR_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(decode_denial)
        .unwrap_or_else(ApiError::unauthorized);
    envelope::error_response(&err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timedelta_like_python() {
        assert_eq!(timedelta(3600), "1:00:00");
        assert_eq!(timedelta(43200), "12:00:00");
        assert_eq!(timedelta(90061), "1 day, 1:01:01");
        assert_eq!(timedelta(3 * 86400), "3 days, 0:00:00");
    }
}
