//! The suite's services as kvmd-kasm asks them: over their unix sockets, each call carrying
//! the caller's own key (`Authorization: Bearer <id>:<secret>`) and address (`X-Real-IP`),
//! so that kvmd-auth decides every call exactly as it decides the key's native ones.
//! kvmd-kasm holds no authority of its own.

use std::time::Duration;

use kvmd_core::authn::{AUTH_REQUEST_PATH, AUTH_SCOPE_HEADER, AUTH_USER_HEADER};
use kvmd_core::role::{ROLE_HEADER, Role};
use serde_json::Value;

use crate::config::Sockets;
use crate::error::KasmError;

/// Which service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Svc {
    /// kvmd-auth.
    Auth,
    /// kvmd-hid.
    Hid,
    /// kvmd-streamer.
    Streamer,
    /// kvmd-gpio.
    Gpio,
    /// kvmd-msd.
    Msd,
    /// kvmd-info.
    Info,
}

impl Svc {
    /// Every service, for the health of `system_info`.
    pub const ALL: [Svc; 6] = [Svc::Auth, Svc::Hid, Svc::Streamer, Svc::Gpio, Svc::Msd, Svc::Info];

    /// Its unit's name.
    pub fn name(self) -> &'static str {
        match self {
            Svc::Auth => "kvmd-auth",
            Svc::Hid => "kvmd-hid",
            Svc::Streamer => "kvmd-streamer",
            Svc::Gpio => "kvmd-gpio",
            Svc::Msd => "kvmd-msd",
            Svc::Info => "kvmd-info",
        }
    }
}

/// A caller whose key kvmd-auth accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's id.
    pub id: String,
    secret: String,
    /// The client's address (nginx's `X-Real-IP`).
    pub addr: String,
    /// The key's role.
    pub role: Role,
    /// The key's scope: `public` or `admin`.
    pub scope: String,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller").field("id", &self.id).field("role", &self.role).field("scope", &self.scope).finish()
    }
}

/// One client per service socket.
#[derive(Debug, Clone)]
pub struct Upstream {
    clients: Vec<(Svc, reqwest::Client)>,
}

/// `value` for a query string (names come from kvmd-auth's list, but a query is built from
/// them only encoded).
pub use kvmd_core::query::encode as q;

fn bearer(id: &str, secret: &str) -> String {
    format!("Bearer {id}:{secret}")
}

impl Upstream {
    /// Clients for `sockets`.
    pub fn new(sockets: &Sockets) -> Self {
        let client = |p: &std::path::Path| {
            kvmd_core::client::unix(p).timeout(Duration::from_secs(10)).build().unwrap_or_default()
        };
        let clients = vec![
            (Svc::Auth, client(&sockets.auth)),
            (Svc::Hid, client(&sockets.hid)),
            (Svc::Streamer, client(&sockets.streamer)),
            (Svc::Gpio, client(&sockets.gpio)),
            (Svc::Msd, client(&sockets.msd)),
            (Svc::Info, client(&sockets.info)),
        ];
        Self { clients }
    }

    fn client(&self, svc: Svc) -> &reqwest::Client {
        // Every service has one (made in `new`).
        self.clients.iter().find(|(s, _)| *s == svc).map_or(&self.clients[0].1, |(_, c)| c)
    }

    /// kvmd-auth's verdict on key `id` with `secret` from `addr`: the caller, or 401 (a
    /// refusal is counted in the key's lockout, as on every other route).
    pub async fn authenticate(&self, id: &str, secret: &str, addr: &str) -> Result<Caller, KasmError> {
        let r = self
            .client(Svc::Auth)
            .get(format!("http://localhost{AUTH_REQUEST_PATH}"))
            .header("Authorization", bearer(id, secret))
            .header("X-Real-IP", addr)
            .send()
            .await
            .map_err(|e| KasmError::internal(format!("kvmd-auth cannot be reached: {e}")))?;
        let h = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        match r.status().as_u16() {
            // Only a key: the user kvmd-auth names is `key:<id>`.
            200 if h(AUTH_USER_HEADER) == format!("key:{id}") => Ok(Caller {
                id: id.to_owned(),
                secret: secret.to_owned(),
                addr: addr.to_owned(),
                role: Role::parse(&h(ROLE_HEADER)).unwrap_or(Role::Viewer),
                scope: h(AUTH_SCOPE_HEADER),
            }),
            200 | 401 | 403 => Err(KasmError::unauthorized()),
            s => Err(KasmError::internal(format!("kvmd-auth answered {s} for a key"))),
        }
    }

    /// `method path` on `svc` as `caller`: kvmd's `result`, or the error in Kasm's form.
    pub async fn call(&self, svc: Svc, method: &str, path: &str, caller: &Caller) -> Result<Value, KasmError> {
        self.send(svc, method, path, None, caller).await
    }

    /// `POST path` on `svc` as `caller` with the form `fields` (url-encoded: passwords go in
    /// the body, never the URL).
    pub async fn post_form(
        &self,
        svc: Svc,
        path: &str,
        fields: &[(&str, String)],
        caller: &Caller,
    ) -> Result<Value, KasmError> {
        self.send(svc, "POST", path, Some(kvmd_core::query::form(fields)), caller).await
    }

    async fn send(
        &self,
        svc: Svc,
        method: &str,
        path: &str,
        form: Option<String>,
        caller: &Caller,
    ) -> Result<Value, KasmError> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(KasmError::internal)?;
        let mut rb = self
            .client(svc)
            .request(method, format!("http://localhost{path}"))
            .header("Authorization", bearer(&caller.id, &caller.secret))
            .header("X-Real-IP", &caller.addr);
        if let Some(body) = form {
            rb = rb.header("Content-Type", "application/x-www-form-urlencoded").body(body);
        }
        let r = rb.send().await.map_err(|e| KasmError::internal(format!("{} cannot be reached: {e}", svc.name())))?;
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let message = body["result"]["error_msg"].as_str().unwrap_or("").to_owned();
        match status {
            200 => Ok(body["result"].clone()),
            400 => Err(KasmError::bad_request(message)),
            401 => Err(KasmError::unauthorized()),
            403 => Err(KasmError::forbidden(format!("The key's role ({}) may not do this", caller.role))),
            404 => Err(KasmError::not_found(if message.is_empty() { "Not found".into() } else { message })),
            s => Err(KasmError::internal(format!("{} answered {s} to {path}: {message}", svc.name()))),
        }
    }

    /// Whether `svc` answers on its socket (any HTTP answer counts).
    pub async fn up(&self, svc: Svc) -> bool {
        let path = match svc {
            Svc::Auth => "/auth/check",
            Svc::Hid => "/hid",
            Svc::Streamer => "/streamer",
            Svc::Gpio => "/atx",
            Svc::Msd => "/msd",
            Svc::Info => "/info",
        };
        self.client(svc).get(format!("http://localhost{path}")).send().await.is_ok()
    }
}
