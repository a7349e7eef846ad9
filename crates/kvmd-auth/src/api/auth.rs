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
    self, AUTH_ERROR_HEADER, AUTH_USER_HEADER, AUTH_VIA_HEADER, Credentials, decode_denial, encode_denial,
};
use kvmd_core::envelope::{self, ApiResponse};
use kvmd_core::error::ApiError;
use kvmd_core::routes::{Access, Api, Body, Param, Route, Ty};
use kvmd_core::service::{AccessQuiet, AccessUser};
use kvmd_core::valid;

use crate::manager::{Busy, Manager};

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
    .route(Route::get(REQUEST_PATH).access(Access::Public).internal().doc("nginx's auth_request decision"), request)
    .route(Route::get(DENIED_PATH).access(Access::Public).internal().doc("nginx's denial renderer"), denied);
}

/// nginx's `auth_request` target (also asked by the other services for direct callers).
pub const REQUEST_PATH: &str = authn::AUTH_REQUEST_PATH;
/// nginx's `error_page` target for denials.
pub const DENIED_PATH: &str = authn::AUTH_DENIED_PATH;

/// The client address nginx saw, for the lockout; direct callers share one bucket.
fn client_addr(req: &HttpRequest) -> String {
    req.headers().get("X-Real-IP").and_then(|v| v.to_str().ok()).unwrap_or("unix").to_owned()
}

fn note_user(req: &HttpRequest, who: String) {
    req.extensions_mut().insert(AccessUser(who));
}

/// kvmd's `check_request_auth` without peer credentials: the user and the method.
async fn check_request(m: &Manager, req: &HttpRequest) -> Result<(String, &'static str), ApiError> {
    if !m.config().enabled {
        return Ok(("-".into(), "disabled"));
    }
    let creds = authn::parse_credentials(req)?;
    let via = creds.via();
    match creds {
        Credentials::XHeaders { user, passwd } | Credentials::Basic { user, passwd } => {
            note_user(req, format!("{user} ({via})"));
            match m.authorize(&user, &passwd, &client_addr(req)).await {
                Ok(true) => Ok((user, via)),
                Ok(false) => Err(ApiError::forbidden()),
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
            let user = m.sessions.check(&token).filter(|u| m.user_exists(u)).ok_or_else(|| {
                note_user(req, "- (token)".into());
                ApiError::forbidden()
            })?;
            note_user(req, format!("{user} (token)"));
            Ok((user, via))
        }
        Credentials::None => Err(ApiError::unauthorized()),
    }
}

/// Form fields of the login body, as aiohttp's `request.post()` reads them: url-encoded or
/// `multipart/form-data` (text parts only); any other content type gives no fields. The
/// first of duplicate fields wins.
async fn form_fields(req: &HttpRequest, body: Vec<u8>) -> Vec<(String, String)> {
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

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
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
    let user = valid::user(Some(field(&fields, "user").unwrap_or("")))?;
    let passwd = valid::passwd(Some(field(&fields, "passwd").unwrap_or("")))?;
    let expire = valid::int(Some(field(&fields, "expire").unwrap_or("0")), "expiration time", Some(0), None)?;
    let expire = u64::try_from(expire).unwrap_or(0);
    note_user(&req, format!("{user} (login)"));
    match m.authorize(&user, &passwd, &client_addr(&req)).await {
        Ok(true) => {}
        Ok(false) => return Err(ApiError::forbidden().into()),
        Err(Busy) => return Err(ApiError::unavailable().into()),
    }
    let token = m.sessions.create(&user, expire);
    let shown = if expire == 0 { "INF".to_owned() } else { format!("[{}]", timedelta(expire)) };
    tracing::info!("Logged in user '{user}'; expire={shown}, sessions_now={}", m.sessions.len());
    // One cookie for both branches: kvmd's 302 branch (auth_login_redirect.http) leaves out
    // HttpOnly and SameSite, which let a hostile page read the cookie or make the browser
    // send it with a cross-site form; kvmd-rs sets them there too, and Secure when the
    // front got the login over HTTPS, so the browser never sends it in clear
    // (docs/SECURITY.md).
    let secure = if over_https(&req) { "; Secure" } else { "" };
    let cookie = HeaderValue::from_str(&format!("auth_token={token}; HttpOnly; Path=/; SameSite=Strict{secure}"))
        .map_err(ApiError::internal)?;
    if !redirect.is_empty() {
        return Ok(envelope::found(&redirect).insert_header((header::SET_COOKIE, cookie)).body("302: Found"));
    }
    let mut b = envelope::json_builder(StatusCode::OK);
    b.insert_header((header::SET_COOKIE, cookie));
    Ok(envelope::json_body(b, StatusCode::OK, &serde_json::json!({})))
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
        if let Some(user) = m.sessions.logout(&token) {
            tracing::info!("Logged out user '{user}'; sessions_now={}", m.sessions.len());
        }
    }
    Ok(ApiResponse::empty())
}

async fn check(m: web::Data<Manager>, req: HttpRequest) -> Result<ApiResponse<serde_json::Value>, ApiError> {
    check_request(&m, &req).await?;
    Ok(ApiResponse::empty())
}

async fn request(m: web::Data<Manager>, req: HttpRequest) -> HttpResponse {
    req.extensions_mut().insert(AccessQuiet);
    match check_request(&m, &req).await {
        Ok((user, via)) => {
            let mut b = HttpResponse::Ok();
            if let (Ok(u), Ok(v)) = (HeaderValue::from_str(&user), HeaderValue::from_str(via)) {
                b.insert_header((AUTH_USER_HEADER, u)).insert_header((AUTH_VIA_HEADER, v));
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
