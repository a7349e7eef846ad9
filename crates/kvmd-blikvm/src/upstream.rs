//! The suite's services as kvmd-blikvm asks them: over their unix sockets, each call
//! carrying the caller's own token (`Authorization: Bearer <token>`, a session of
//! kvmd-auth's table) and address, so that kvmd-auth decides every call — its user, role
//! and lockout — exactly as it decides the same user's native ones. kvmd-blikvm holds no
//! authority of its own.

use std::time::Duration;

use kvmd_core::authn::{AUTH_REQUEST_PATH, AUTH_SESSION_HEADER, AUTH_USER_HEADER};
use kvmd_core::query::form;
use kvmd_core::role::{NEED_HEADER, ROLE_HEADER, Role};
use serde_json::Value;

use crate::config::Sockets;
use crate::reply::Failed;

/// Which service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Svc {
    /// kvmd-auth.
    Auth,
    /// kvmd-hid.
    Hid,
    /// kvmd-gpio.
    Gpio,
    /// kvmd-msd.
    Msd,
}

impl Svc {
    /// Its unit's name.
    pub fn name(self) -> &'static str {
        match self {
            Svc::Auth => "kvmd-auth",
            Svc::Hid => "kvmd-hid",
            Svc::Gpio => "kvmd-gpio",
            Svc::Msd => "kvmd-msd",
        }
    }
}

/// A caller whose token kvmd-auth accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    token: String,
    /// The client's address (nginx's `X-Real-IP`).
    pub addr: String,
    /// The user.
    pub user: String,
    /// The user's role.
    pub role: Role,
    /// The session's public id.
    pub session: Option<String>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller").field("user", &self.user).field("role", &self.role).finish()
    }
}

/// A request body for a service.
#[derive(Debug, Clone)]
pub enum Send {
    /// None.
    Nothing,
    /// A url-encoded form (passwords go in the body, never the URL).
    Form(Vec<(&'static str, String)>),
    /// Plain text (`/hid/print`).
    Text(String),
}

/// One client per service socket.
#[derive(Debug, Clone)]
pub struct Upstream {
    auth: reqwest::Client,
    hid: reqwest::Client,
    gpio: reqwest::Client,
    msd: reqwest::Client,
    sockets: Sockets,
}

/// `value` for a query string.
pub use kvmd_core::query::encode as q;

impl Upstream {
    /// Clients for `sockets`. A paste can take long (its delays): kvmd-hid's client waits
    /// up to ten minutes.
    pub fn new(sockets: &Sockets) -> Self {
        let client = |p: &std::path::Path, secs: u64| {
            kvmd_core::client::unix(p).timeout(Duration::from_secs(secs)).build().unwrap_or_default()
        };
        Self {
            auth: client(&sockets.auth, 10),
            hid: client(&sockets.hid, 600),
            gpio: client(&sockets.gpio, 10),
            msd: client(&sockets.msd, 30),
            sockets: sockets.clone(),
        }
    }

    /// The sockets.
    pub fn sockets(&self) -> &Sockets {
        &self.sockets
    }

    fn client(&self, svc: Svc) -> &reqwest::Client {
        match svc {
            Svc::Auth => &self.auth,
            Svc::Hid => &self.hid,
            Svc::Gpio => &self.gpio,
            Svc::Msd => &self.msd,
        }
    }

    /// kvmd-auth's verdict on `token` from `addr`: the caller, or 401.
    pub async fn authenticate(&self, token: &str, addr: &str) -> Result<Caller, Failed> {
        let r = self
            .auth
            .get(format!("http://localhost{AUTH_REQUEST_PATH}"))
            .header("Authorization", format!("Bearer {token}"))
            .header("X-Real-IP", addr)
            // Any role may hold a token; each call's own route decides what it may do.
            .header(NEED_HEADER, "*=viewer")
            .send()
            .await
            .map_err(|e| Failed::upstream(format!("kvmd-auth cannot be reached: {e}")))?;
        let h = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
        match r.status().as_u16() {
            200 => Ok(Caller {
                token: token.to_owned(),
                addr: addr.to_owned(),
                user: h(AUTH_USER_HEADER).unwrap_or_default(),
                role: h(ROLE_HEADER).as_deref().and_then(Role::parse).unwrap_or(Role::Viewer),
                session: h(AUTH_SESSION_HEADER).filter(|s| !s.is_empty()),
            }),
            401 | 403 => Err(Failed::unauthorized()),
            s => Err(Failed::upstream(format!("kvmd-auth answered {s} for a token"))),
        }
    }

    /// A new token (a 12-hour session marked `blikvm`) for `user` with `passwd` from
    /// `addr`: kvmd-auth's internal `/auth/token`, which checks the password (TOTP code
    /// appended), the lockout and the user's state as for a PiKVM login. `None`: refused.
    pub async fn login(&self, user: &str, passwd: &str, addr: &str, agent: &str) -> Result<Option<String>, Failed> {
        let body = form(&[
            ("user", user.to_owned()),
            ("passwd", passwd.to_owned()),
            ("expire", crate::TOKEN_LIFETIME.to_string()),
            ("via", "blikvm".into()),
        ]);
        let r = self
            .auth
            .post(format!("http://localhost{}", kvmd_core::authn::AUTH_TOKEN_PATH))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Real-IP", addr)
            .header("User-Agent", agent)
            .body(body)
            .send()
            .await
            .map_err(|e| Failed::upstream(format!("kvmd-auth cannot be reached: {e}")))?;
        let status = r.status().as_u16();
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap_or_default()).unwrap_or(Value::Null);
        match (status, v["result"]["token"].as_str()) {
            (200, Some(t)) => Ok(Some(t.to_owned())),
            (200, None) => Err(Failed::upstream("kvmd-auth gave no token")),
            // Wrong password, locked out, a bad name, the password checks' queue full.
            (400 | 401 | 403 | 503, _) => Ok(None),
            (s, _) => Err(Failed::upstream(format!("kvmd-auth answered {s} to a login"))),
        }
    }

    /// `method path` on `svc` as `caller` with `body`: kvmd's `result`, or the error in
    /// BliKVM's form.
    pub async fn call(&self, svc: Svc, method: &str, path: &str, caller: &Caller, body: Send) -> Result<Value, Failed> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(Failed::upstream)?;
        let mut rb = self
            .client(svc)
            .request(method, format!("http://localhost{path}"))
            .header("Authorization", format!("Bearer {}", caller.token))
            .header("X-Real-IP", &caller.addr);
        rb = match body {
            Send::Nothing => rb,
            Send::Form(f) => rb.header("Content-Type", "application/x-www-form-urlencoded").body(form(&f)),
            Send::Text(t) => rb.header("Content-Type", "text/plain; charset=utf-8").body(t),
        };
        let r = rb.send().await.map_err(|e| Failed::upstream(format!("{} cannot be reached: {e}", svc.name())))?;
        let status = r.status().as_u16();
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap_or_default()).unwrap_or(Value::Null);
        let message = v["result"]["error_msg"].as_str().unwrap_or("failed").to_owned();
        match status {
            200 => Ok(v["result"].clone()),
            400 | 409 => Err(Failed::because(message)),
            401 => Err(Failed::unauthorized()),
            403 => Err(Failed::forbidden()),
            s => Err(Failed::upstream(format!("{} answered {s} to {path}: {message}", svc.name()))),
        }
    }

    /// The headers that make a request `caller`'s (a WebSocket of ours to a service).
    pub fn credentials(&self, caller: &Caller) -> [(&'static str, String); 2] {
        [("Authorization", format!("Bearer {}", caller.token)), ("X-Real-IP", caller.addr.clone())]
    }
}
