//! [`TestService`]: one service's real actix app, driven in-process (no socket, no nginx),
//! with the state it needs in a private directory; and [`check_routes`], the table-driven
//! walk over every route the service declares. Milliseconds a service: the suite's fast
//! layer.

use std::path::PathBuf;

use actix_web::body::{BoxBody, MessageBody as _};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use actix_web::web;
use kvmd_core::routes::{Access, Expose, Route, ServiceRoutes};

/// What nginx sets for a user kvmd-auth accepted (the in-process stand-in for a login).
const USER: (&str, &str) = (kvmd_core::authn::AUTH_USER_HEADER, "admin");

use kvmd_core::role::Role;

/// What `actix_web::test::init_service` gives for a service's app.
pub trait App: Service<actix_http::Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error> {}

impl<S> App for S where S: Service<actix_http::Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error> {}

/// A service's app with its state, in-process.
pub struct TestService<S> {
    app: S,
    /// The service's declared routes.
    pub table: ServiceRoutes,
    _dir: tempfile::TempDir,
    _shutdown: kvmd_core::service::CancellationToken,
}

/// The answer to one in-process request: status, headers and the body when it is short.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// `Allow:`.
    pub allow: Option<String>,
    /// `Location:`.
    pub location: Option<String>,
    /// The body, unless it is a stream (then empty).
    pub body: String,
}

impl<S: App> TestService<S> {
    /// Sends `method path` (`path` may carry a query), logged in or not, and reads the body
    /// unless the route streams.
    pub async fn call(&self, method: &str, path: &str, logged_in: bool) -> Answer {
        self.send(method, path, logged_in, None, Vec::new()).await
    }

    /// [`call`](Self::call) with a body and its `Content-Type`.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        logged_in: bool,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        self.send_as(method, path, logged_in.then_some(Role::Admin), content_type, body).await
    }

    /// [`send`](Self::send) as a user of `role` (as the front passes it), or logged out.
    pub async fn send_as(
        &self,
        method: &str,
        path: &str,
        role: Option<Role>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        let mut req = TestRequest::default().method(method).uri(path);
        if let Some(role) = role {
            req = req.insert_header(USER).insert_header((kvmd_core::role::ROLE_HEADER, role.as_str()));
        }
        if let Some(ct) = content_type {
            req = req.insert_header((actix_web::http::header::CONTENT_TYPE, ct));
        }
        let req = req.set_payload(body).to_request();
        // The caller stands in for the front (nginx), whose identity header is believed.
        actix_web::HttpMessage::extensions_mut(&req).insert(kvmd_core::net::FromFront);
        let res = match self.app.call(req).await {
            Ok(r) => r,
            Err(e) => {
                let r = e.error_response();
                return Answer { status: r.status(), allow: None, location: None, body: e.to_string() };
            }
        };
        let h = |n| res.headers().get(n).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let (status, allow, location) =
            (res.status(), h(actix_web::http::header::ALLOW), h(actix_web::http::header::LOCATION));
        let streams = matches!(res.response().body().size(), actix_web::body::BodySize::Stream);
        let body =
            if streams { String::new() } else { String::from_utf8_lossy(&test::read_body(res).await).into_owned() };
        Answer { status, allow, location, body }
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"))
}

/// kvmd-auth with one user, `admin` / `admin`.
pub async fn auth() -> TestService<impl App> {
    let dir = tmp();
    let htpasswd = dir.path().join("htpasswd");
    let _ = std::fs::write(&htpasswd, format!("admin:{}\n", kvmd_auth::hash::make_ssha512("admin")));
    let cfg = kvmd_auth::Config {
        htpasswd,
        totp_secret: dir.path().join("totp.secret"),
        sessions: dir.path().join("sessions.json"),
        keys: dir.path().join("keys.db"),
        users: dir.path().join("users.db"),
        ..kvmd_auth::Config::default()
    };
    let app = test::init_service(kvmd_auth::create_app(web::Data::new(kvmd_auth::Manager::new(cfg)))).await;
    let table = kvmd_auth::routes().table();
    TestService { app, table, _dir: dir, _shutdown: Default::default() }
}

/// kvmd-hid on the virtual output (reports kept in memory).
pub async fn hid() -> TestService<impl App> {
    let dir = tmp();
    let shutdown = kvmd_core::service::CancellationToken::new();
    let output: std::sync::Arc<dyn kvmd_hid::backend::HidOutput> =
        std::sync::Arc::new(kvmd_hid::backend::vtarget::Vtarget::default());
    let hid = kvmd_hid::hid::Hid::start(output, Default::default()).unwrap_or_else(|e| panic!("HID thread: {e}"));
    let hid = web::Data::new(hid);
    let missing = |n: &str| dir.path().join(n);
    let feeds = kvmd_hid::ws::Feeds {
        info: missing("info.sock"),
        streamer: missing("streamer.sock"),
        gpio: missing("gpio.sock"),
        msd: missing("msd.sock"),
    };
    let ws = web::Data::new(kvmd_hid::ws::WsShared::new(feeds, shutdown.clone()));
    let layouts = web::Data::new(kvmd_hid::layout::Layouts::default());
    let app = test::init_service(kvmd_hid::create_app(
        hid,
        ws,
        layouts,
        missing("auth.sock"),
        Default::default(),
        Default::default(),
        web::Data::new(kvmd_hid::Limits::new(&Default::default())),
    ))
    .await;
    let table = kvmd_hid::routes().table();
    TestService { app, table, _dir: dir, _shutdown: shutdown }
}

/// kvmd-gpio with ATX on a virtual chip and no GPIO channels.
pub async fn gpio() -> TestService<impl App> {
    let dir = tmp();
    let mut cfg = kvmd_gpio::Config {
        auth_socket: dir.path().join("auth.sock"),
        meta: dir.path().join("meta.yaml"),
        ..kvmd_gpio::Config::default()
    };
    cfg.chip.kind = kvmd_gpio::config::ChipKind::Virtual;
    let chip = kvmd_gpio::open_chip(&mut cfg).unwrap_or_else(|e| panic!("kvmd-gpio's chip: {e:#}"));
    let shutdown = kvmd_core::service::CancellationToken::new();
    let parts = kvmd_gpio::Parts::new(cfg, chip, shutdown.clone()).unwrap_or_else(|e| panic!("kvmd-gpio: {e:#}"));
    actix_web::rt::spawn(parts.atx.clone().into_inner().run_leds(shutdown.clone()));
    let app = test::init_service(parts.app()).await;
    let table = kvmd_gpio::routes().table();
    TestService { app, table, _dir: dir, _shutdown: shutdown }
}

/// kvmd-msd on an empty storage with the virtual drive.
pub async fn msd() -> TestService<impl App> {
    let dir = tmp();
    let storage = dir.path().join("msd");
    std::fs::create_dir_all(&storage).unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = kvmd_msd::Config { auth_socket: dir.path().join("auth.sock"), ..kvmd_msd::Config::default() };
    cfg.msd.storage = storage;
    cfg.drive.kind = kvmd_msd::config::DriveKind::Virtual;
    let shutdown = kvmd_core::service::CancellationToken::new();
    let drive = kvmd_msd::open_drive(&cfg);
    let parts = kvmd_msd::Parts::new(cfg, drive, shutdown.clone()).unwrap_or_else(|e| panic!("kvmd-msd: {e:#}"));
    let app = test::init_service(parts.app()).await;
    let table = kvmd_msd::routes().table();
    TestService { app, table, _dir: dir, _shutdown: shutdown }
}

/// kvmd-kasm with no service to ask (every key check fails: Kasm's 500).
pub async fn kasm() -> TestService<impl App> {
    let dir = tmp();
    let at = |n: &str| dir.path().join(n);
    let sockets = kvmd_kasm::config::Sockets {
        auth: at("auth.sock"),
        hid: at("hid.sock"),
        streamer: at("streamer.sock"),
        gpio: at("gpio.sock"),
        msd: at("msd.sock"),
        info: at("info.sock"),
    };
    let cfg = kvmd_kasm::Config { images: at("images.json"), sockets, ..kvmd_kasm::Config::default() };
    let up = web::Data::new(kvmd_kasm::upstream::Upstream::new(&cfg.sockets));
    let images = web::Data::new(kvmd_kasm::images::Images::open(cfg.images.clone()));
    let app = test::init_service(kvmd_kasm::create_app(web::Data::new(cfg), up, images)).await;
    let table = kvmd_kasm::routes().table();
    TestService { app, table, _dir: dir, _shutdown: Default::default() }
}

/// kvmd-blikvm with no service to ask (every token check fails: BliKVM's 502).
pub async fn blikvm() -> TestService<impl App> {
    let dir = tmp();
    let at = |n: &str| dir.path().join(n);
    let sockets = kvmd_blikvm::config::Sockets {
        auth: at("auth.sock"),
        hid: at("hid.sock"),
        gpio: at("gpio.sock"),
        msd: at("msd.sock"),
    };
    let cfg = kvmd_blikvm::Config { sockets, ..kvmd_blikvm::Config::default() };
    let up = web::Data::new(kvmd_blikvm::upstream::Upstream::new(&cfg.sockets));
    let app = test::init_service(kvmd_blikvm::create_app(web::Data::new(cfg), up)).await;
    let table = kvmd_blikvm::routes().table();
    TestService { app, table, _dir: dir, _shutdown: Default::default() }
}

/// kvmd-webrtc with no kvmd-streamer or kvmd-auth to ask.
pub async fn webrtc() -> TestService<impl App> {
    let dir = tmp();
    let at = |n: &str| dir.path().join(n);
    let cfg = kvmd_webrtc::Config {
        auth_socket: at("auth.sock"),
        streamer_socket: at("streamer.sock"),
        ..kvmd_webrtc::Config::default()
    };
    let shutdown = kvmd_core::service::CancellationToken::new();
    let shared = kvmd_webrtc::shared(&cfg, shutdown.clone()).unwrap_or_else(|e| panic!("{e}"));
    let app = test::init_service(kvmd_webrtc::create_app(&cfg, web::Data::new(shared))).await;
    let table = kvmd_webrtc::routes().table();
    TestService { app, table, _dir: dir, _shutdown: shutdown }
}

/// kvmd-info on the golden captures' fake tree, logs off.
pub async fn info() -> TestService<impl App> {
    let dir = tmp();
    let root = dir.path().join("root");
    let _ = crate::fake_tree(&root);
    let mut cfg = kvmd_info::Config { auth_socket: dir.path().join("auth.sock"), ..kvmd_info::Config::default() };
    cfg.root = root;
    cfg.log.source = kvmd_info::config::LogSourceKind::Disabled;
    cfg.services.clear();
    let shutdown = kvmd_core::service::CancellationToken::new();
    let app = test::init_service(kvmd_info::create_app(
        web::Data::new(kvmd_info::Info::new(cfg)),
        web::Data::new(shutdown.clone()),
        web::Data::new(kvmd_info::logs::FileTail::default()),
        web::Data::new(kvmd_info::logs::Followers::new(&kvmd_info::config::LogConfig::default())),
    ))
    .await;
    let table = kvmd_info::routes().table();
    TestService { app, table, _dir: dir, _shutdown: shutdown }
}

/// kvmd-streamer on the test pattern, its controller running.
pub async fn streamer() -> TestService<impl App> {
    let dir = tmp();
    let mut cfg =
        kvmd_streamer::Config { auth_socket: dir.path().join("auth.sock"), ..kvmd_streamer::Config::default() };
    cfg.source.kind = kvmd_streamer::config::SourceKind::Pattern;
    cfg.workers = 1;
    let shutdown = kvmd_core::service::CancellationToken::new();
    let s = kvmd_streamer::Streamer::new(cfg);
    actix_web::rt::spawn(s.clone().run(shutdown.clone()));
    let app = test::init_service(kvmd_streamer::create_app(web::Data::new(s), web::Data::new(shutdown.clone()))).await;
    let table = kvmd_streamer::routes().table();
    TestService { app, table, _dir: dir, _shutdown: shutdown }
}

impl<S> Drop for TestService<S> {
    fn drop(&mut self) {
        self._shutdown.cancel();
    }
}

/// Every method a wrong-method probe may use.
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH"];

/// The route walk: for every declared route, the right method is routed (not 404/405/501);
/// a method the path does not have gets kvmd's 405 with `Allow:` listing exactly the
/// declared ones (uStreamer's 501 on its mounted face); a trailing slash gets kvmd's 308 to
/// the path (a 404 on the mounted face, whose matching is exact); an `Access::User` route
/// without credentials gets kvmd's 401 body, and as each role kvmd's 403 exactly when the role is
/// below the route's. Also every `spec` route (method, front path)
/// is declared and exposed. Returns every failure, one line each.
pub async fn check_routes<S: App>(svc: &TestService<S>, spec: &[(&str, &str)]) -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(e) = svc.table.check() {
        errors.push(e);
    }
    let routes: &[Route] = &svc.table.routes;
    for (method, front) in spec {
        let found = routes.iter().any(|r| r.method.as_str() == *method && r.front_paths().iter().any(|f| f == front));
        if !found {
            errors.push(format!("{method} {front}: in the spec, not declared"));
        }
    }
    for r in routes {
        // A path with parameters is called with `0` for each (`/redfish/v1/Systems/0`).
        let instance = instance(r.path);
        let (m, p) = (r.method.as_str(), instance.as_str());
        let a = svc.call(m, p, true).await;
        if matches!(a.status.as_u16(), 404 | 405 | 501) {
            errors.push(format!("{m} {p}: {} with the declared method", a.status));
        }
        let declared: Vec<&str> = routes.iter().filter(|o| o.path == r.path).map(|o| o.method.as_str()).collect();
        if let Some(wrong) = METHODS.iter().find(|w| !declared.contains(w)) {
            let a = svc.call(wrong, p, false).await;
            match r.expose {
                Expose::Mount(_) => {
                    if a.status != StatusCode::NOT_IMPLEMENTED {
                        errors.push(format!("{wrong} {p}: {} instead of uStreamer's 501", a.status));
                    }
                }
                Expose::Api | Expose::Root | Expose::Internal => {
                    let mut allow = declared.clone();
                    allow.sort_unstable();
                    allow.dedup();
                    let body = match svc.table.errors {
                        kvmd_core::routes::ErrorStyle::Kvmd => "405: Method Not Allowed".to_owned(),
                        kvmd_core::routes::ErrorStyle::Kasm => serde_json::json!({
                            "error_message": "Method not allowed: every call is a POST", "status": "error"
                        })
                        .to_string(),
                        kvmd_core::routes::ErrorStyle::Blikvm => {
                            r#"{"status":0,"info":"method not allowed","data":[]}"#.to_owned()
                        }
                    };
                    if a.status != StatusCode::METHOD_NOT_ALLOWED
                        || a.allow.as_deref() != Some(allow.join(",").as_str())
                        || a.body != body
                    {
                        errors.push(format!(
                            "{wrong} {p}: {} Allow {:?} {:?}, not kvmd's 405",
                            a.status, a.allow, a.body
                        ));
                    }
                }
            }
        }
        if p != "/" {
            let a = svc.call(m, &format!("{p}/?x=1"), true).await;
            match r.expose {
                Expose::Mount(_) => {
                    if a.status != StatusCode::NOT_FOUND {
                        errors.push(format!("{m} {p}/: {} instead of uStreamer's 404", a.status));
                    }
                }
                // At the root, matched exactly (BliKVM's 404 in its own envelope; Janus's
                // `/janus/ws` with kvmd's).
                Expose::Root => {
                    let blikvm = svc.table.errors == kvmd_core::routes::ErrorStyle::Blikvm;
                    if a.status != StatusCode::NOT_FOUND
                        || (blikvm && a.body != r#"{"status":-1,"info":"path error","data":[]}"#)
                    {
                        errors.push(format!("{m} {p}/: {} {:?} instead of BliKVM's path error", a.status, a.body));
                    }
                }
                Expose::Api | Expose::Internal => {
                    let want = format!("{p}?x=1");
                    if a.status != StatusCode::PERMANENT_REDIRECT || a.location.as_deref() != Some(want.as_str()) {
                        errors.push(format!("{m} {p}/: {} to {:?}, not kvmd's 308 to {want}", a.status, a.location));
                    }
                }
            }
        }
        if r.access == Access::User {
            let a = svc.call(m, p, false).await;
            let unauthorized = kvmd_core::envelope::envelope_body(
                StatusCode::UNAUTHORIZED,
                &serde_json::json!({"error": "UnauthorizedError", "error_msg": "Unauthorized"}),
            );
            if a.status != StatusCode::UNAUTHORIZED || a.body != unauthorized {
                errors.push(format!("{m} {p} without credentials: {} {:?}", a.status, a.body));
            }
            // Each role: refused with kvmd's 403 below the route's role, served from it up.
            let forbidden = kvmd_core::envelope::envelope_body(
                StatusCode::FORBIDDEN,
                &serde_json::json!({"error": "ForbiddenError", "error_msg": "Forbidden"}),
            );
            for role in Role::ALL {
                let a = svc.send_as(m, p, Some(role), None, Vec::new()).await;
                let refused = a.status == StatusCode::FORBIDDEN && a.body == forbidden;
                if refused != (role < r.role) {
                    errors.push(format!("{m} {p} as {role} (needs {}): {} {:?}", r.role, a.status, a.body));
                }
            }
        }
    }
    errors
}

/// `path` with `0` for each `{name}` segment.
pub fn instance(path: &str) -> String {
    path.split('/')
        .map(|seg| if kvmd_core::routes::path_param(seg).is_some() { "0" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// The (method, front path) pairs that the OpenAPI document `doc` lists for `service`.
pub fn documented(doc: &serde_json::Value, service: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            if op["x-kvmd-service"] == service {
                out.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out.sort();
    out
}

/// The (method, front path) pairs that `table` exposes.
pub fn exposed(table: &ServiceRoutes) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for r in table.exposed() {
        out.extend(r.front_paths().into_iter().map(|f| (r.method.as_str().to_owned(), f)));
    }
    out.sort();
    out
}

/// The checked-in OpenAPI document (what kvmd-info serves).
pub fn openapi_file() -> PathBuf {
    crate::repo_root().join("docs/openapi.json")
}
