//! Credentials: header and cookie names, kvmd's checking order, and the extractor that
//! services put in their handler signatures.
//!
//! kvmd tries, in order, and the first that applies decides (spec `auth.md` section 2):
//! 1. `X-KVMD-User` (non-empty) with `X-KVMD-Passwd` (missing = empty);
//! 2. the `auth_token` cookie (non-empty; the last of duplicates wins; malformed = 400);
//! 3. `Authorization: Basic` (undecodable or not exactly `user:passwd` = 401);
//! 4. unix-socket peer credentials, where the route allows them;
//! 5. nothing: 401.
//!
//! In kvmd-rs, kvmd-auth runs steps 1–3 for nginx (`auth_request`) and answers with the
//! user in [`AUTH_USER_HEADER`], which nginx always overwrites before proxying, so a
//! client can never set it. Services read it through [`Authed`], and only from the front:
//! a peer on the socket whose uid is not the front's ([`crate::net::FrontTrust`]) is
//! authenticated by its own credentials, whatever that header says.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use base64::Engine;

use crate::error::ApiError;
use crate::net::{FromFront, FrontTrust, PeerCred, UscConfig};
use crate::role::{ROLE_HEADER, Role};
use crate::valid;

/// kvmd's credential header for the user name.
pub const XHDR_USER: &str = "X-KVMD-User";
/// kvmd's credential header for the password (+ TOTP code).
pub const XHDR_PASSWD: &str = "X-KVMD-Passwd";
/// kvmd's session cookie.
pub const COOKIE_TOKEN: &str = "auth_token";
/// The user that kvmd-auth accepted, set by nginx from the `auth_request` answer.
pub const AUTH_USER_HEADER: &str = "X-KVMD-Auth-User";
/// How that user was authenticated (`token`, `xhdr`, `basic`), for access logs.
pub const AUTH_VIA_HEADER: &str = "X-KVMD-Auth-Via";
/// The public id of the cookie session kvmd-auth accepted (nginx sets it from the
/// `auth_request` answer, like the user): what a service holds while it keeps a connection
/// open for the session ([`AuthClient::hold`]).
pub const AUTH_SESSION_HEADER: &str = "X-KVMD-Auth-Session";
/// An API key's scope (`public` or `admin`), in kvmd-auth's answer for a key.
pub const AUTH_SCOPE_HEADER: &str = "X-KVMD-Auth-Scope";
/// kvmd-auth's internal route a service holds a session on: `?session=<id>&kind=<kind>`.
pub const AUTH_HOLD_PATH: &str = "/auth/hold";
/// Why kvmd-auth denied a request, carried by nginx to kvmd-auth's denial renderer.
pub const AUTH_ERROR_HEADER: &str = "X-KVMD-Auth-Error";
/// Which credential headers the client sent with a control byte, which no header value
/// may hold (`u` X-KVMD-User, `p` X-KVMD-Passwd, `c` Cookie, `a` Authorization): nginx
/// passes such a header empty and names it here, so the answer is kvmd's error for it
/// instead of a parser's bare 400 (which `auth_request` would turn into a 500).
pub const BAD_BYTES_HEADER: &str = "X-KVMD-Auth-Bad";

/// The credentials a request carries, after kvmd's validators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `X-KVMD-User` / `X-KVMD-Passwd`.
    XHeaders {
        /// The validated user name.
        user: String,
        /// The validated password (with a TOTP code at the end when 2FA is on).
        passwd: String,
    },
    /// The `auth_token` cookie.
    Token(String),
    /// HTTP Basic.
    Basic {
        /// The validated user name.
        user: String,
        /// The validated password.
        passwd: String,
    },
    /// An API key: `Authorization: Bearer <id>:<secret>` (kvmd-rs's own; kvmd ignores a
    /// bearer, and so does kvmd-rs one of another form).
    Key {
        /// The key id.
        id: String,
        /// Its secret.
        secret: String,
    },
    /// A session token as a bearer: `Authorization: Bearer <64 hex>` (BliKVM's tokens,
    /// which are sessions; kvmd ignores a bearer).
    Bearer(String),
    /// Nothing that applies.
    None,
}

impl Credentials {
    /// kvmd's name for the method in access logs.
    pub fn via(&self) -> &'static str {
        match self {
            Credentials::XHeaders { .. } => "xhdr",
            Credentials::Token(_) => "token",
            Credentials::Basic { .. } => "basic",
            Credentials::Key { .. } => "key",
            Credentials::Bearer(_) => "bearer",
            Credentials::None => "-",
        }
    }
}

/// A header as text; non-UTF-8 bytes become U+FFFD, which every validator rejects.
fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    req.headers().get(name).map(|v| String::from_utf8_lossy(v.as_bytes()))
}

/// The value of the last `auth_token` cookie, as aiohttp's cookie parsing gives it.
pub fn token_cookie(req: &HttpRequest) -> Option<String> {
    let mut found = None;
    for value in req.headers().get_all(actix_web::http::header::COOKIE) {
        let text = String::from_utf8_lossy(value.as_bytes());
        for pair in text.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k.trim() == COOKIE_TOKEN
            {
                found = Some(v.trim().trim_matches('"').to_owned());
            }
        }
    }
    found
}

/// Python `base64.b64decode(s)` without `validate`: characters outside the alphabet are
/// dropped, then the padding must be right.
fn lenient_b64(s: &str) -> Option<Vec<u8>> {
    let kept: String = s.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')).collect();
    base64::engine::general_purpose::STANDARD.decode(kept).ok()
}

/// Reads the credentials of `req` in kvmd's order (steps 1–3; peer credentials are the
/// caller's business). Validation failures are kvmd's 400s; undecodable Basic is 401.
pub fn parse_credentials(req: &HttpRequest) -> Result<Credentials, ApiError> {
    // Control bytes in a header (named by nginx): kvmd's validator error for that header,
    // in kvmd's order; the value is never echoed (nginx passed none).
    let bad = header(req, BAD_BYTES_HEADER).unwrap_or_default();
    if bad.contains('u') {
        return Err(valid::hidden_error("username characters"));
    }
    if let Some(user) = header(req, XHDR_USER).filter(|u| !u.is_empty()) {
        let user = valid::user(Some(&user))?;
        if bad.contains('p') {
            return Err(valid::hidden_error("passwd characters"));
        }
        let passwd = header(req, XHDR_PASSWD).unwrap_or_default();
        let passwd = valid::passwd(Some(&passwd))?;
        return Ok(Credentials::XHeaders { user, passwd });
    }
    if bad.contains('c') {
        return Err(valid::hidden_error("auth token"));
    }
    if let Some(token) = token_cookie(req).filter(|t| !t.is_empty()) {
        return Ok(Credentials::Token(valid::auth_token(Some(&token))?));
    }
    if bad.contains('a') {
        return Err(ApiError::unauthorized());
    }
    if let Some(auth) = header(req, "Authorization")
        && auth.len() >= 6
        && auth.is_char_boundary(6)
        && auth[..6].eq_ignore_ascii_case("basic ")
    {
        let decoded = lenient_b64(&auth[6..]).ok_or_else(ApiError::unauthorized)?;
        let text = String::from_utf8(decoded).map_err(|_| ApiError::unauthorized())?;
        let parts: Vec<&str> = text.split(':').collect();
        let [user, passwd] = parts[..] else {
            return Err(ApiError::unauthorized());
        };
        let user = valid::user(Some(user))?;
        let passwd = valid::passwd(Some(passwd))?;
        return Ok(Credentials::Basic { user, passwd });
    }
    if let Some(auth) = header(req, "Authorization")
        && let Some((id, secret)) = bearer_key(&auth)
    {
        return Ok(Credentials::Key { id: id.to_owned(), secret: secret.to_owned() });
    }
    if let Some(auth) = header(req, "Authorization")
        && let Some(token) = bearer_token(&auth)
    {
        return Ok(Credentials::Bearer(token.to_owned()));
    }
    Ok(Credentials::None)
}

/// The key id and secret of `Authorization: Bearer <id>:<secret>`: an id of 1 to 64
/// letters, digits, `-` or `_`, and a secret of 1 to 512 printable ASCII characters.
pub fn bearer_key(auth: &str) -> Option<(&str, &str)> {
    let rest = auth.get(..7).filter(|s| s.eq_ignore_ascii_case("bearer ")).map(|_| auth[7..].trim())?;
    let (id, secret) = rest.split_once(':')?;
    let id_ok = (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let secret_ok = (1..=512).contains(&secret.len()) && secret.bytes().all(|b| b.is_ascii_graphic());
    (id_ok && secret_ok).then_some((id, secret))
}

/// The session token of `Authorization: Bearer <token>`: 64 lowercase hex digits, the
/// form of every session token (any other bearer without a `:` is ignored, as kvmd does).
pub fn bearer_token(auth: &str) -> Option<&str> {
    let rest = auth.get(..7).filter(|s| s.eq_ignore_ascii_case("bearer ")).map(|_| auth[7..].trim())?;
    valid::auth_token(Some(rest)).is_ok().then_some(rest)
}

/// `X-KVMD-Auth-Error` of a denial: `<status>:<b64 name>:<b64 message>`. A 400 (such as a
/// malformed cookie) or a 503 (the password checks' queue is full) travels inside a 403,
/// because nginx turns any `auth_request` status but 2xx, 401 and 403 into a 500; the
/// renderer restores it.
pub fn encode_denial(e: &ApiError) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    format!("{}:{}:{}", e.status().as_u16(), B64.encode(e.name.as_bytes()), B64.encode(e.message.as_bytes()))
}

/// The error encoded by [`encode_denial`].
pub fn decode_denial(text: &str) -> Option<ApiError> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let mut it = text.splitn(3, ':');
    let status: u16 = it.next()?.parse().ok()?;
    let name = String::from_utf8(B64.decode(it.next()?).ok()?).ok()?;
    let message = String::from_utf8(B64.decode(it.next()?).ok()?).ok()?;
    let code = match status {
        400 => crate::error::Code::Validator,
        401 => crate::error::Code::Unauthorized,
        503 => crate::error::Code::Unavailable,
        _ => crate::error::Code::Forbidden,
    };
    Some(ApiError { code, name: name.into(), message: message.into() })
}

/// The method of the request an `auth_request` subrequest is about (nginx sets it).
pub const ORIGINAL_METHOD_HEADER: &str = "X-Original-Method";
/// Its `Host` as the client sent it, port included (nginx sets it).
pub const ORIGINAL_HOST_HEADER: &str = "X-Original-Host";
/// Its `Upgrade` (nginx sets it): a WebSocket upgrade is a state-changing request.
pub const ORIGINAL_UPGRADE_HEADER: &str = "X-Original-Upgrade";

/// Whether a request that a browser may have sent on its own (it carries the session
/// cookie) came from another site and changes state: a method other than GET, HEAD and
/// OPTIONS, or a WebSocket upgrade, whose `Sec-Fetch-Site` is neither `same-origin` nor
/// `none`, or whose `Origin` is not this host. Such a request is refused (kvmd's 403): a
/// hostile page the admin opens must not type on the target. Requests with the X-KVMD
/// headers or Basic carry credentials a page cannot add, and requests without any
/// `Origin` or `Sec-Fetch-Site` are not a browser's, so scripts are unaffected.
pub fn cross_site(req: &HttpRequest) -> bool {
    let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
    let method = h(ORIGINAL_METHOD_HEADER).unwrap_or(req.method().as_str());
    let upgrade = h(ORIGINAL_UPGRADE_HEADER).or(h("Upgrade")).is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    if matches!(method, "GET" | "HEAD" | "OPTIONS") && !upgrade {
        return false;
    }
    if h("Sec-Fetch-Site").is_some_and(|site| !matches!(site, "same-origin" | "none")) {
        return true;
    }
    match h("Origin") {
        None => false,
        Some(origin) => {
            let host = h(ORIGINAL_HOST_HEADER).or(h("Host")).unwrap_or_default();
            let origin_host = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
            origin_host.is_none_or(|o| !o.eq_ignore_ascii_case(host))
        }
    }
}

/// The client address nginx saw (its `X-Real-IP`), for the lockout and the logs; direct
/// callers on a socket share `unix`.
pub fn client_addr(req: &HttpRequest) -> String {
    req.headers().get("X-Real-IP").and_then(|v| v.to_str().ok()).unwrap_or("unix").to_owned()
}

/// kvmd-auth's internal decision path (nginx's `auth_request` target).
pub const AUTH_REQUEST_PATH: &str = "/auth/request";
/// kvmd-auth's denial renderer (nginx's `error_page` target).
pub const AUTH_DENIED_PATH: &str = "/auth/denied";
/// kvmd-auth's internal login for the other services: a password gives a session token
/// (kvmd-blikvm's `/api/login`).
pub const AUTH_TOKEN_PATH: &str = "/auth/token";

/// What kvmd-auth writes on a hold when its session ended (before it closes the hold).
pub const HOLD_ENDED: &[u8] = b"ended\n";

/// Asks kvmd-auth, over its unix socket, about the credentials of a request that reached
/// a service directly (not through nginx), so that every service socket answers like
/// kvmd's: 200 with good credentials, kvmd's 400/401/403 otherwise.
#[derive(Debug, Clone)]
pub struct AuthClient {
    client: reqwest::Client,
    /// For holds, which last as long as their connection: no overall timeout.
    long: reqwest::Client,
}

impl AuthClient {
    /// A client for kvmd-auth's socket at `socket`.
    pub fn new(socket: &std::path::Path) -> Self {
        let client =
            crate::client::unix(socket).timeout(std::time::Duration::from_secs(10)).build().unwrap_or_default();
        let long =
            crate::client::unix(socket).connect_timeout(std::time::Duration::from_secs(5)).build().unwrap_or_default();
        Self { client, long }
    }

    /// Holds cookie session `session` for a connection of `kind` (`ws`, `stream`, …) and
    /// returns when the session ends (revoked, logged out, expired, its user's password
    /// changed) — the caller then closes the connection. kvmd-auth going away (a restart)
    /// is not an end: the hold is taken again, with a growing pause, until it answers.
    pub async fn hold(&self, session: &str, kind: &str) {
        let url = format!("http://localhost{AUTH_HOLD_PATH}?session={session}&kind={kind}");
        let mut pause = std::time::Duration::from_millis(100);
        loop {
            match self.long.get(&url).send().await {
                Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => return,
                Ok(mut r) if r.status().is_success() => {
                    pause = std::time::Duration::from_millis(100);
                    let mut seen = Vec::new();
                    while let Ok(Some(chunk)) = r.chunk().await {
                        seen.extend_from_slice(&chunk);
                        if seen.windows(HOLD_ENDED.len()).any(|w| w == HOLD_ENDED) {
                            return;
                        }
                        // Only the keep-alive newlines and "held" come otherwise.
                        if seen.len() > 64 {
                            seen.drain(..seen.len() - 16);
                        }
                    }
                }
                Ok(r) => tracing::warn!(status = %r.status(), "kvmd-auth refused a session hold"),
                Err(e) => tracing::debug!(error = %e, "kvmd-auth cannot be reached for a session hold"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(5));
        }
    }

    /// kvmd-auth's verdict on the credential headers of `req`: the caller, or the error.
    pub async fn check(&self, req: &HttpRequest) -> Result<Authed, ApiError> {
        let mut r = self.client.get(format!("http://localhost{AUTH_REQUEST_PATH}"));
        for name in [XHDR_USER, XHDR_PASSWD, "Cookie", "Authorization", "X-Real-IP", "Origin", "Sec-Fetch-Site"] {
            for v in req.headers().get_all(name) {
                r = r.header(name, v.as_bytes());
            }
        }
        // What the cross-site check needs to know about the request itself.
        r = r.header(ORIGINAL_METHOD_HEADER, req.method().as_str());
        if let Some(host) = req.headers().get("Host") {
            r = r.header(ORIGINAL_HOST_HEADER, host.as_bytes());
        }
        if let Some(up) = req.headers().get("Upgrade") {
            r = r.header(ORIGINAL_UPGRADE_HEADER, up.as_bytes());
        }
        let resp = r.send().await.map_err(|e| {
            tracing::error!(error = %e, "kvmd-auth cannot be reached");
            ApiError::unavailable()
        })?;
        let h = |n: &str| resp.headers().get(n).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if resp.status().is_success() {
            let role = h(ROLE_HEADER).as_deref().and_then(Role::parse).unwrap_or(Role::Viewer);
            return Ok(Authed {
                user: h(AUTH_USER_HEADER).unwrap_or_default(),
                via: h(AUTH_VIA_HEADER).unwrap_or_default(),
                role,
                session: h(AUTH_SESSION_HEADER),
            });
        }
        Err(h(AUTH_ERROR_HEADER).as_deref().and_then(decode_denial).unwrap_or_else(ApiError::forbidden))
    }
}

/// An authenticated caller, for the handlers of services behind nginx. A handler of an
/// `Access::User` route that wants the user takes it as an argument: the route's
/// [`crate::routes::require_user`] has already authenticated the request, so this only reads
/// what it found. Elsewhere it authenticates the request itself.
///
/// In kvmd's order: the user nginx passes in [`AUTH_USER_HEADER`] (kvmd-auth verified it;
/// nginx always overwrites that header), believed only from the front's uid; else the credentials the request carries, checked
/// by kvmd-auth through the [`AuthClient`] in the app data (a direct caller on the socket);
/// else a trusted local process by peer credentials (kvmd's "usc"); else 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authed {
    /// The user name (for peer credentials, `name[uid]`).
    pub user: String,
    /// How: `token`, `xhdr`, `basic` or `unix`.
    pub via: String,
    /// What the user may do (kvmd-auth's answer; a trusted local process is an admin).
    pub role: Role,
    /// The public id of the cookie session it came with (none for other credentials).
    pub session: Option<String>,
}

impl Authed {
    /// kvmd's access-log form, `admin (token)`.
    pub fn access(&self) -> String {
        format!("{} ({})", self.user, self.via)
    }
}

impl FromRequest for Authed {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(a) = actix_web::HttpMessage::extensions(req).get::<Authed>().cloned() {
            return Box::pin(std::future::ready(Ok(a)));
        }
        let req = req.clone();
        Box::pin(async move {
            let a = authenticate(&req).await?;
            actix_web::HttpMessage::extensions_mut(&req).insert(crate::service::AccessUser(a.access()));
            Ok(a)
        })
    }
}

/// Authenticates `req` as [`Authed`] describes.
pub async fn authenticate(req: &HttpRequest) -> Result<Authed, ApiError> {
    if let Some(user) = header(req, AUTH_USER_HEADER).filter(|u| !u.is_empty())
        && from_front(req)
    {
        let via = header(req, AUTH_VIA_HEADER).map(|v| v.into_owned()).unwrap_or_else(|| "-".into());
        // The front always sets the role kvmd-auth found; none (or a name not known) is
        // the lowest.
        let role = header(req, ROLE_HEADER).as_deref().and_then(Role::parse).unwrap_or(Role::Viewer);
        let session = header(req, AUTH_SESSION_HEADER).filter(|s| !s.is_empty()).map(|s| s.into_owned());
        return Ok(Authed { user: user.into_owned(), via, role, session });
    }
    if header(req, AUTH_USER_HEADER).is_some_and(|u| !u.is_empty()) {
        let uid = req.conn_data::<PeerCred>().map(|p| p.uid);
        tracing::warn!(?uid, "{AUTH_USER_HEADER} from a peer that is not the front (front.users): ignored");
    }
    if parse_credentials(req)? != Credentials::None {
        let client = req.app_data::<AuthClient>().ok_or_else(ApiError::unauthorized)?;
        return client.check(req).await;
    }
    if let Some(peer) = req.conn_data::<PeerCred>() {
        let usc = req.app_data::<UscConfig>().cloned().unwrap_or_default();
        if let Some(user) = usc.trusted(peer) {
            let user = format!("{user}[{}]", peer.uid);
            return Ok(Authed { user, via: "unix".into(), role: Role::Admin, session: None });
        }
    }
    Err(ApiError::unauthorized())
}

/// Whether `req` came from the front: a peer with the front's uid, or an in-process
/// caller that marked it [`FromFront`].
pub fn from_front(req: &HttpRequest) -> bool {
    if actix_web::HttpMessage::extensions(req).contains::<FromFront>() {
        return true;
    }
    match (req.conn_data::<PeerCred>(), req.app_data::<FrontTrust>()) {
        (Some(peer), Some(front)) => front.is_front(peer),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn creds(headers: &[(&str, &str)]) -> Result<Credentials, ApiError> {
        let mut r = TestRequest::default();
        for (k, v) in headers {
            r = r.insert_header((*k, *v));
        }
        parse_credentials(&r.to_http_request())
    }

    const TOKEN: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn order_and_outcomes() {
        assert_eq!(creds(&[]).ok(), Some(Credentials::None));
        // X-headers win over a cookie (auth_check_xhdr_and_bad_cookie.http).
        let c = creds(&[("X-KVMD-User", "admin"), ("X-KVMD-Passwd", "admin"), ("Cookie", "auth_token=xyz")]);
        assert_eq!(c.ok(), Some(Credentials::XHeaders { user: "admin".into(), passwd: "admin".into() }));
        // Missing password = empty (auth_check_xhdr_no_passwd.http).
        let c = creds(&[("X-KVMD-User", "admin")]);
        assert_eq!(c.ok(), Some(Credentials::XHeaders { user: "admin".into(), passwd: String::new() }));
        // Malformed cookie = 400 (auth_check_malformed_token.http).
        let e = creds(&[("Cookie", "auth_token=xyz")]).err().map(|e| (e.status(), e.message));
        assert_eq!(
            e,
            Some((actix_web::http::StatusCode::BAD_REQUEST, "The argument is not a valid auth token".into()))
        );
        // Last duplicate cookie wins.
        let c = creds(&[("Cookie", &format!("auth_token=xyz; a=b; auth_token={TOKEN}"))]);
        assert_eq!(c.ok(), Some(Credentials::Token(TOKEN.into())));
        // Basic, case-insensitive scheme.
        let c = creds(&[("Authorization", "bAsIc YWRtaW46YWRtaW4=")]);
        assert_eq!(c.ok(), Some(Credentials::Basic { user: "admin".into(), passwd: "admin".into() }));
        // Garbage Basic = 401 (auth_check_basic_garbage.http); Bearer is ignored.
        assert_eq!(
            creds(&[("Authorization", "Basic !!!notbase64")]).err().map(|e| e.status()),
            Some(actix_web::http::StatusCode::UNAUTHORIZED)
        );
        assert_eq!(creds(&[("Authorization", "Bearer abc")]).ok(), Some(Credentials::None));
        // A session token as a bearer (BliKVM's), only in the tokens' exact form.
        let c = creds(&[("Authorization", &format!("Bearer {TOKEN}"))]);
        assert_eq!(c.ok(), Some(Credentials::Bearer(TOKEN.into())));
        let upper = TOKEN.replace('0', "A");
        assert_eq!(creds(&[("Authorization", &format!("Bearer {upper}"))]).ok(), Some(Credentials::None));
        // An API key is a bearer of `id:secret`.
        let c = creds(&[("Authorization", "bearer demo:s3cret")]);
        assert_eq!(c.ok(), Some(Credentials::Key { id: "demo".into(), secret: "s3cret".into() }));
        for odd in ["Bearer :x", "Bearer a b:x", "Bearer id:", "Bearer id:a b", "Bearerid:x"] {
            assert_eq!(creds(&[("Authorization", odd)]).ok(), Some(Credentials::None), "{odd}");
        }
        // A password with ':' cannot be used over Basic.
        let three = base64::engine::general_purpose::STANDARD.encode("admin:a:b");
        assert!(creds(&[("Authorization", &format!("Basic {three}"))]).is_err());
        // Bad user in Basic = 400.
        let bad = base64::engine::general_purpose::STANDARD.encode("Admin!:x");
        assert_eq!(
            creds(&[("Authorization", &format!("Basic {bad}"))]).err().map(|e| e.status()),
            Some(actix_web::http::StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn control_bytes_nginx_named_are_kvmds_errors_in_kvmds_order() {
        let e = |h: &[(&str, &str)]| creds(h).err().map(|e| (e.status().as_u16(), e.message.into_owned()));
        let msg = |m: &str| Some((400, format!("The argument is not a valid {m}")));
        assert_eq!(e(&[(BAD_BYTES_HEADER, "u")]), msg("username characters"));
        assert_eq!(
            e(&[(BAD_BYTES_HEADER, "up"), ("Cookie", &format!("auth_token={TOKEN}"))]),
            msg("username characters")
        );
        assert_eq!(e(&[(BAD_BYTES_HEADER, "p"), ("X-KVMD-User", "admin")]), msg("passwd characters"));
        // A password without a user is never looked at, as in kvmd.
        assert_eq!(creds(&[(BAD_BYTES_HEADER, "p")]).ok(), Some(Credentials::None));
        assert_eq!(e(&[(BAD_BYTES_HEADER, "c")]), msg("auth token"));
        // X-headers come first, as in kvmd: a bad cookie beside them does not matter.
        let c = creds(&[(BAD_BYTES_HEADER, "c"), ("X-KVMD-User", "admin"), ("X-KVMD-Passwd", "x")]);
        assert_eq!(c.ok(), Some(Credentials::XHeaders { user: "admin".into(), passwd: "x".into() }));
        assert_eq!(e(&[(BAD_BYTES_HEADER, "a")]).map(|(s, _)| s), Some(401));
        let c = creds(&[(BAD_BYTES_HEADER, "a"), ("Cookie", &format!("auth_token={TOKEN}"))]);
        assert_eq!(c.ok(), Some(Credentials::Token(TOKEN.into())));
    }

    #[actix_web::test]
    async fn authed_takes_the_nginx_header_from_the_front_only_and_never_checks_passwords_itself() {
        let r = TestRequest::default()
            .insert_header((AUTH_USER_HEADER, "admin"))
            .insert_header((AUTH_VIA_HEADER, "token"))
            .insert_header((ROLE_HEADER, "operator"));
        let front = r.to_http_request();
        actix_web::HttpMessage::extensions_mut(&front).insert(FromFront);
        let operator = Authed { user: "admin".into(), via: "token".into(), role: Role::Operator, session: None };
        assert_eq!(authenticate(&front).await.ok(), Some(operator));
        // The cookie session's id comes the same way.
        let r = TestRequest::default()
            .insert_header((AUTH_USER_HEADER, "admin"))
            .insert_header((AUTH_SESSION_HEADER, "ab12"));
        let front = r.to_http_request();
        actix_web::HttpMessage::extensions_mut(&front).insert(FromFront);
        assert_eq!(authenticate(&front).await.ok().and_then(|a| a.session).as_deref(), Some("ab12"));
        // Without the role (or with one not known) the front's user is a viewer.
        for role in [None, Some("root")] {
            let mut r = TestRequest::default().insert_header((AUTH_USER_HEADER, "v"));
            if let Some(role) = role {
                r = r.insert_header((ROLE_HEADER, role));
            }
            let front = r.to_http_request();
            actix_web::HttpMessage::extensions_mut(&front).insert(FromFront);
            assert_eq!(authenticate(&front).await.ok().map(|a| a.role), Some(Role::Viewer));
        }
        // The same header from anyone else (here: no peer credentials, no front mark) is ignored.
        let r =
            TestRequest::default().insert_header((AUTH_USER_HEADER, "admin")).insert_header((AUTH_VIA_HEADER, "token"));
        let status = authenticate(&r.to_http_request()).await.err().map(|e| e.status());
        assert_eq!(status, Some(actix_web::http::StatusCode::UNAUTHORIZED));
        // Credentials without an AuthClient (no kvmd-auth to ask) are refused.
        let r = TestRequest::default().insert_header(("X-KVMD-User", "admin"));
        let status = authenticate(&r.to_http_request()).await.err().map(|e| e.status());
        assert_eq!(status, Some(actix_web::http::StatusCode::UNAUTHORIZED));
        // Malformed credentials are kvmd's 400 before anything else.
        let r = TestRequest::default().insert_header(("Cookie", "auth_token=xyz"));
        let status = authenticate(&r.to_http_request()).await.err().map(|e| e.status());
        assert_eq!(status, Some(actix_web::http::StatusCode::BAD_REQUEST));
    }

    #[test]
    fn cross_site_requests_are_told_apart() {
        let req = |method: &str, headers: &[(&str, &str)]| {
            let mut r = TestRequest::default()
                .method(actix_web::http::Method::from_bytes(method.as_bytes()).unwrap_or_default());
            for (k, v) in headers {
                r = r.insert_header((*k, *v));
            }
            cross_site(&r.to_http_request())
        };
        let host = ("Host", "kvm.local:8443");
        // A hostile page's auto-submitted form: foreign Origin, cross-site fetch.
        assert!(req("POST", &[host, ("Origin", "https://evil.example"), ("Sec-Fetch-Site", "cross-site")]));
        assert!(req("POST", &[host, ("Origin", "https://evil.example")]));
        assert!(req("POST", &[host, ("Origin", "null")]));
        assert!(req("POST", &[host, ("Sec-Fetch-Site", "same-site")]), "another port or subdomain is another origin");
        assert!(req("GET", &[host, ("Upgrade", "websocket"), ("Origin", "https://evil.example")]));
        // nginx's subrequest: the original method, host and upgrade in X-Original-*.
        let sub = [("X-Original-Method", "POST"), ("X-Original-Host", "kvm.local:8443"), ("Host", "localhost")];
        assert!(!req("GET", &[sub[0], sub[1], sub[2], ("Origin", "https://kvm.local:8443")]));
        assert!(req("GET", &[sub[0], sub[1], sub[2], ("Origin", "https://kvm.local:9999")]));
        // Our own page, a typed URL, safe methods, and scripts without browser headers.
        assert!(!req("POST", &[host, ("Origin", "https://kvm.local:8443"), ("Sec-Fetch-Site", "same-origin")]));
        assert!(!req("POST", &[host, ("Sec-Fetch-Site", "none")]));
        assert!(!req("GET", &[host, ("Origin", "https://evil.example"), ("Sec-Fetch-Site", "cross-site")]));
        assert!(!req("POST", &[host]));
    }

    #[test]
    fn denials_round_trip() {
        for e in [
            ApiError::unauthorized(),
            ApiError::forbidden(),
            ApiError::validator("The argument 'Admin!' is not a valid username characters"),
            ApiError::unavailable(),
        ] {
            assert_eq!(decode_denial(&encode_denial(&e)), Some(e));
        }
        assert_eq!(decode_denial("garbage"), None);
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(user in ".{0,200}", pw in ".{0,200}", cookie in ".{0,200}", basic in ".{0,300}") {
            let mut r = TestRequest::default();
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&cookie) { r = r.insert_header(("Cookie", v)); }
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&format!("Basic {basic}")) { r = r.insert_header(("Authorization", v)); }
            let _ = parse_credentials(&r.to_http_request());
            let mut r = TestRequest::default();
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&user) { r = r.insert_header((XHDR_USER, v)); }
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&pw) { r = r.insert_header((XHDR_PASSWD, v)); }
            let _ = parse_credentials(&r.to_http_request());
        }
    }
}
