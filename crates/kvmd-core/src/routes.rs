//! The routes: what each service serves, each route declared once ([`Route`] with its
//! handler, collected in an [`Api`]). The service's actix app ([`crate::service::app`]),
//! the nginx front (`kvmd-nginx render`), the OpenAPI document ([`crate::openapi`]) and
//! the route tests (kvmd-testkit) are all made from these declarations.
//!
//! kvmd routes before it authenticates: an unknown path is `404: Not Found`, a known path
//! with the wrong method is `405: Method Not Allowed` with `Allow:`, and a path that only
//! matches after removing a trailing slash or merging `//` is a `308` to the normalised
//! kvmd path — all without credentials (spec `http.md` section 2). nginx answers unknown
//! paths itself and sends wrong methods and odd slashes to the owning service, whose actix
//! app answers them from the same table (each path's resource and [`default_service`]).
//! An `Access::User` route authenticates in [`require_user`] before its handler runs.
use std::sync::Arc;

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{FromRequest, Handler, HttpMessage, HttpRequest, HttpResponse, Resource, Responder, web};

use crate::envelope;
pub use crate::role::Role;

/// An HTTP method a route may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    /// DELETE
    Delete,
    /// GET
    Get,
    /// HEAD
    Head,
    /// OPTIONS
    Options,
    /// PATCH
    Patch,
    /// POST
    Post,
    /// PUT
    Put,
}

impl Method {
    /// The method's name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Delete => "DELETE",
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }

    fn http(self) -> actix_web::http::Method {
        use actix_web::http::Method as M;
        match self {
            Method::Delete => M::DELETE,
            Method::Get => M::GET,
            Method::Head => M::HEAD,
            Method::Options => M::OPTIONS,
            Method::Patch => M::PATCH,
            Method::Post => M::POST,
            Method::Put => M::PUT,
        }
    }
}

/// Who may call a route, and who checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials needed (kvmd `auth_required=False`, e.g. `POST /auth/login`).
    Public,
    /// Credentials required. nginx enforces them with `auth_request` to kvmd-auth and
    /// passes the user on; the service enforces them again before the handler runs (the
    /// user nginx passed, a direct caller's credentials checked by kvmd-auth, or local
    /// root by peer credentials, as kvmd does), so a handler never checks access itself.
    User,
    /// The service checks the credentials itself and never accepts peer credentials
    /// (kvmd-auth's own `/auth/logout` and `/auth/check`).
    SelfChecked,
}

/// How nginx must proxy a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// An ordinary request with a small body (nginx limit 4 KiB, as kvmd's nginx).
    Plain,
    /// An unlimited, unbuffered request body (kvmd's "bigpost" locations).
    BigPost,
    /// A long, unbuffered response (`/log`, MJPEG).
    Stream,
    /// A long, unbuffered response of bulk bytes (an image download): as [`Flow::Stream`],
    /// with a large buffer, so that nginx moves it in large writes.
    Download,
    /// A WebSocket upgrade.
    WebSocket,
}

/// Where the front exposes a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expose {
    /// kvmd's API: the front's `/api{path}`. A wrong method is kvmd's 405 with `Allow:`.
    Api,
    /// Under another client prefix that the front strips (uStreamer's face: the front's
    /// `/streamer/state` is the service's `/state`). As uStreamer, a wrong method is a
    /// `501 Not Implemented`, and the front guards every method with `auth_request`.
    Mount(&'static str),
    /// At the front's root, at the service path itself (BliKVM's `/keyboard`), every
    /// method to the service, which answers a wrong one in its own form. Exact, like a
    /// mount: no trailing-slash redirect.
    Root,
    /// Not routed by the front: between services, or nginx's internal subrequests.
    Internal,
}

/// The type and range of a parameter: what its validator accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ty {
    /// kvmd's `valid_bool`: `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off` (any case).
    Bool,
    /// An integer within `min..=max`; outside it is an error, or clamped when `clamp`.
    Int {
        /// Lowest accepted.
        min: Option<i64>,
        /// Highest accepted.
        max: Option<i64>,
        /// Out-of-range values are clamped rather than refused.
        clamp: bool,
    },
    /// A finite number within `min..=max` (refused outside).
    Float {
        /// Lowest accepted.
        min: Option<f64>,
        /// Highest accepted.
        max: Option<f64>,
    },
    /// A string of at most `max_len` characters (kvmd's raw-length limit), matching
    /// `pattern` (after kvmd strips it) where one is given.
    Str {
        /// The limit, if any.
        max_len: Option<u32>,
        /// An ECMA-262 regular expression the value matches, if any.
        pattern: Option<&'static str>,
    },
    /// One of these strings.
    Enum(&'static [&'static str]),
    /// A comma-separated list of these strings (or of anything, when empty).
    List(&'static [&'static str]),
}

impl Ty {
    /// An integer refused outside `min..=max`.
    pub const fn int(min: i64, max: i64) -> Self {
        Ty::Int { min: Some(min), max: Some(max), clamp: false }
    }

    /// An integer of at least `min`.
    pub const fn at_least(min: i64) -> Self {
        Ty::Int { min: Some(min), max: None, clamp: false }
    }

    /// An integer clamped to `min..=max`.
    pub const fn clamped(min: i64, max: i64) -> Self {
        Ty::Int { min: Some(min), max: Some(max), clamp: true }
    }

    /// A string of at most `n` characters.
    pub const fn str(n: u32) -> Self {
        Ty::Str { max_len: Some(n), pattern: None }
    }

    /// A string of at most `n` characters matching `pattern`.
    pub const fn pattern(n: u32, pattern: &'static str) -> Self {
        Ty::Str { max_len: Some(n), pattern: Some(pattern) }
    }
}

/// A query-string parameter of a route.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Param {
    /// Its name.
    pub name: &'static str,
    /// What its validator accepts.
    pub ty: Ty,
    /// Whether a request without it is refused.
    pub required: bool,
    /// What it does.
    pub doc: &'static str,
}

impl Param {
    /// An optional parameter.
    pub const fn opt(name: &'static str, ty: Ty, doc: &'static str) -> Self {
        Self { name, ty, required: false, doc }
    }

    /// A required parameter.
    pub const fn req(name: &'static str, ty: Ty, doc: &'static str) -> Self {
        Self { name, ty, required: true, doc }
    }
}

/// A route's request body.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Body {
    /// None (anything sent is ignored).
    None,
    /// Raw bytes of this media type, e.g. the text `/hid/print` types.
    Raw(&'static str),
    /// An `application/x-www-form-urlencoded` form (query parameters are accepted too).
    Form(&'static [Param]),
}

/// What a successful answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// kvmd's JSON envelope `{"ok": true, "result": ...}`; the text says what `result` holds.
    Envelope(&'static str),
    /// A body of this media type, outside the envelope.
    Media(&'static str),
    /// A stream of this media type (MJPEG, NDJSON, log lines).
    Stream(&'static str),
    /// A WebSocket (`101 Switching Protocols`).
    WebSocket,
}

/// One route of a service: the single declaration from which the service's actix app, the
/// nginx front, the route tests and the OpenAPI document are made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Route {
    /// The method.
    pub method: Method,
    /// The service path, e.g. `/auth/check` (the front adds `/api`, see [`Expose`]).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// How nginx proxies it.
    pub flow: Flow,
    /// Where the front exposes it.
    pub expose: Expose,
    /// One line on what it does.
    pub summary: &'static str,
    /// Its query parameters.
    pub params: &'static [Param],
    /// Its request body.
    pub body: Body,
    /// Its answer on success.
    pub answer: Answer,
    /// The front limits its rate per client address (a password check: guessing).
    pub throttled: bool,
    /// The role an `Access::User` call needs ([`crate::role`]).
    pub role: Role,
}

impl Route {
    /// A route needing credentials, exposed under `/api`, plain proxying, an empty
    /// envelope as its answer.
    pub const fn new(method: Method, path: &'static str) -> Self {
        Self {
            method,
            path,
            access: Access::User,
            flow: Flow::Plain,
            expose: Expose::Api,
            summary: "",
            params: &[],
            body: Body::None,
            answer: Answer::Envelope("{}"),
            throttled: false,
            role: Role::default_for(method),
        }
    }

    /// `GET path`, needing credentials.
    pub const fn get(path: &'static str) -> Self {
        Self::new(Method::Get, path)
    }

    /// `POST path`, needing credentials.
    pub const fn post(path: &'static str) -> Self {
        Self::new(Method::Post, path)
    }

    /// `DELETE path`, needing credentials.
    pub const fn delete(path: &'static str) -> Self {
        Self::new(Method::Delete, path)
    }

    /// With another access.
    pub const fn access(self, access: Access) -> Self {
        Self { access, ..self }
    }

    /// With another proxy flow.
    pub const fn flow(self, flow: Flow) -> Self {
        Self { flow, ..self }
    }

    /// Exposed elsewhere (or not at all).
    pub const fn expose(self, expose: Expose) -> Self {
        Self { expose, ..self }
    }

    /// Not routed by the front.
    pub const fn internal(self) -> Self {
        self.expose(Expose::Internal)
    }

    /// With its one-line summary.
    pub const fn doc(self, summary: &'static str) -> Self {
        Self { summary, ..self }
    }

    /// With its query parameters.
    pub const fn params(self, params: &'static [Param]) -> Self {
        Self { params, ..self }
    }

    /// With a request body.
    pub const fn body(self, body: Body) -> Self {
        Self { body, ..self }
    }

    /// With its answer.
    pub const fn answer(self, answer: Answer) -> Self {
        Self { answer, ..self }
    }

    /// Needing `role` rather than its method's default ([`Role::default_for`]).
    pub const fn role(self, role: Role) -> Self {
        Self { role, ..self }
    }

    /// Rate-limited by the front per client address.
    pub const fn throttled(self) -> Self {
        Self { throttled: true, ..self }
    }

    /// The paths clients use on the front (`/api/info`, `/streamer/state`); none when not
    /// exposed. A mounted face's `/` is served at the bare prefix too (`/streamer/` and
    /// `/streamer`, as kvmd's nginx does).
    pub fn front_paths(&self) -> Vec<String> {
        match self.expose {
            Expose::Api => vec![format!("/api{}", self.path)],
            Expose::Mount(prefix) if self.path == "/" => vec![format!("{prefix}/"), prefix.to_owned()],
            Expose::Mount(prefix) => vec![format!("{prefix}{}", self.path)],
            Expose::Root => vec![self.path.to_owned()],
            Expose::Internal => Vec::new(),
        }
    }
}

type Register = Box<dyn FnOnce(actix_web::Route) -> actix_web::Route>;

/// A service's routes with their handlers: built by each API group's `routes` function,
/// read by the nginx renderer and the OpenAPI generator ([`Api::table`]) and turned into
/// the actix app by [`crate::service::app`].
pub struct Api {
    /// The service name, e.g. `kvmd-auth`.
    pub service: &'static str,
    /// The name of its upstream in nginx and of its socket file (`auth` → `auth.sock`).
    pub upstream: &'static str,
    endpoints: Vec<(Route, Register)>,
    errors: ErrorStyle,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("service", &self.service).field("routes", &self.table().routes).finish()
    }
}

impl Api {
    /// No routes yet.
    pub fn new(service: &'static str, upstream: &'static str) -> Self {
        Self { service, upstream, endpoints: Vec::new(), errors: ErrorStyle::Kvmd }
    }

    /// Answers 404s and 405s in `style`'s form (kvmd's by default).
    pub fn errors(&mut self, style: ErrorStyle) -> &mut Self {
        self.errors = style;
        self
    }

    /// Declares `route`, answered by `handler`. A second declaration of the same method and
    /// path is a bug, caught by [`ServiceRoutes::check`] (and every service's route test).
    pub fn route<F, Args>(&mut self, route: Route, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.endpoints.push((route, Box::new(move |r: actix_web::Route| r.to(handler))));
        self
    }

    /// Adds another group's routes (each group's `routes(&mut Api)`).
    pub fn group(&mut self, add: impl FnOnce(&mut Api)) -> &mut Self {
        add(self);
        self
    }

    /// The declarations alone.
    pub fn table(&self) -> ServiceRoutes {
        ServiceRoutes {
            service: self.service,
            upstream: self.upstream,
            routes: self.endpoints.iter().map(|(r, _)| *r).collect(),
            errors: self.errors,
        }
    }

    /// Registers every route on the app: one resource per path, whose wrong methods get
    /// kvmd's 405 (uStreamer's 501 on a mount), and `Access::User` routes behind
    /// [`require_user`].
    pub fn configure(self, cfg: &mut web::ServiceConfig) {
        type Endpoints = Vec<(Route, Register)>;
        let mut by_path: Vec<(&'static str, Expose, Endpoints)> = Vec::new();
        for (route, register) in self.endpoints {
            match by_path.iter_mut().find(|(p, _, _)| *p == route.path) {
                Some((_, _, v)) => v.push((route, register)),
                None => by_path.push((route.path, route.expose, vec![(route, register)])),
            }
        }
        for (path, expose, endpoints) in by_path {
            let mut res = match expose {
                Expose::Mount(_) => web::resource(path).default_service(web::to(not_implemented)),
                Expose::Api | Expose::Root | Expose::Internal => resource(path),
            };
            for (route, register) in endpoints {
                let r = register(web::method(route.method.http()));
                let role = route.role;
                res = res.route(match route.access {
                    Access::User => {
                        r.wrap(actix_web::middleware::from_fn(move |req, next| require_user(role, req, next)))
                    }
                    Access::Public | Access::SelfChecked => r,
                });
            }
            cfg.service(res);
        }
    }
}

/// The middleware in front of every `Access::User` handler: authenticates (see
/// [`crate::authn::Authed`]), notes the user for the access log and the handler, or answers
/// kvmd's 401/403/400 without calling the handler; a user whose role is below the route's
/// `role` gets kvmd's 403.
pub async fn require_user(
    role: Role,
    req: ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    match crate::authn::authenticate(req.request()).await {
        Ok(a) if a.role < role => {
            req.extensions_mut().insert(crate::service::AccessUser(a.access()));
            tracing::warn!(user = %a.user, has = %a.role, needs = %role, "refused: the route needs a higher role");
            use actix_web::ResponseError;
            let res = crate::ApiError::forbidden().error_response();
            Ok(req.into_response(res))
        }
        Ok(a) => {
            req.extensions_mut().insert(crate::service::AccessUser(a.access()));
            req.extensions_mut().insert(a);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(e) => {
            use actix_web::ResponseError;
            let res = e.error_response();
            Ok(req.into_response(res))
        }
    }
}

async fn not_implemented() -> HttpResponse {
    HttpResponse::NotImplemented().content_type("text/plain").body("501: Not Implemented")
}

/// The routes of one service, and the socket nginx reaches it on.
#[derive(Debug, Clone)]
pub struct ServiceRoutes {
    /// The service name, e.g. `kvmd-auth`.
    pub service: &'static str,
    /// The name of its upstream in nginx and of its socket file (`auth` → `auth.sock`).
    pub upstream: &'static str,
    /// Its routes, in declaration order.
    pub routes: Vec<Route>,
    /// The API whose form its 404s and 405s take.
    pub errors: ErrorStyle,
}

/// Whose form a service's 404 and 405 answers take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ErrorStyle {
    /// kvmd's (aiohttp's plain text).
    #[default]
    Kvmd,
    /// Kasm's JSON, `{"error_message": ..., "status": "error"}` (kvmd-kasm).
    Kasm,
    /// BliKVM's envelope, `{"status": 0 or -1, "info": ..., "data": []}` (kvmd-blikvm).
    Blikvm,
}

impl ErrorStyle {
    /// The 405 for a route allowing `allow`.
    pub fn method_not_allowed(self, allow: &str) -> HttpResponse {
        match self {
            ErrorStyle::Kvmd => envelope::method_not_allowed(allow),
            ErrorStyle::Kasm | ErrorStyle::Blikvm => {
                let mut r = match self {
                    ErrorStyle::Kasm => {
                        kasm_error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed: every call is a POST")
                    }
                    _ => blikvm_error(StatusCode::METHOD_NOT_ALLOWED, 0, "method not allowed"),
                };
                if let Ok(v) = actix_web::http::header::HeaderValue::from_str(allow) {
                    r.headers_mut().insert(actix_web::http::header::ALLOW, v);
                }
                r
            }
        }
    }

    /// The 404 of a path that is no route.
    pub fn not_found(self) -> HttpResponse {
        match self {
            ErrorStyle::Kvmd => envelope::not_found(),
            ErrorStyle::Kasm => kasm_error(StatusCode::NOT_FOUND, "Unknown endpoint"),
            ErrorStyle::Blikvm => blikvm_error(StatusCode::NOT_FOUND, -1, "path error"),
        }
    }
}

/// BliKVM's envelope for a failure: `status` (0, or -1 for a path error), `info`, `data` `[]`.
pub fn blikvm_error(http: StatusCode, status: i32, info: &str) -> HttpResponse {
    blikvm_envelope(http, status, info, "[]")
}

/// BliKVM's envelope, compact, in its key order: `{"status", "info", "data"}`, `data` the
/// JSON text given (kvmd-blikvm's answers and errors, and the 404s and 405s here).
pub fn blikvm_envelope(http: StatusCode, status: i32, info: &str, data: &str) -> HttpResponse {
    let body = format!("{{\"status\":{status},\"info\":{},\"data\":{data}}}", serde_json::Value::from(info));
    HttpResponse::build(http).content_type("application/json").body(body)
}

/// Kasm's error body with `status`.
pub fn kasm_error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(serde_json::json!({ "error_message": message, "status": "error" }).to_string())
}

impl ServiceRoutes {
    /// The routes the front exposes.
    pub fn exposed(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().filter(|r| r.expose != Expose::Internal)
    }

    /// The declaration mistakes no test should have to find: a method and path declared
    /// twice, and one path with different access, flow or exposure (one nginx location
    /// serves all methods of a path).
    pub fn check(&self) -> Result<(), String> {
        let t = self;
        for (i, a) in t.routes.iter().enumerate() {
            for b in &t.routes[..i] {
                if a.path != b.path {
                    continue;
                }
                if a.method == b.method {
                    return Err(format!("{}: {} {} declared twice", t.service, a.method.as_str(), a.path));
                }
                let same = a.expose == b.expose
                    && (matches!(a.expose, Expose::Mount(_)) || (a.access == b.access && a.flow == b.flow));
                if !same {
                    return Err(format!(
                        "{}: {} has methods with different access, flow or exposure",
                        t.service, a.path
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The route table of the running service, stored in the actix app data.
#[derive(Debug, Clone)]
pub struct RouteTable(pub Arc<[Route]>);

impl RouteTable {
    /// `Allow:` for `path`: its methods sorted and comma-joined, as aiohttp prints them.
    pub fn allow(&self, path: &str) -> Option<String> {
        let mut methods: Vec<&str> =
            self.0.iter().filter(|r| path_matches(r.path, path)).map(|r| r.method.as_str()).collect();
        if methods.is_empty() {
            return None;
        }
        methods.sort_unstable();
        methods.dedup();
        Some(methods.join(","))
    }

    /// Whether `method path` is one of kvmd's routes (a mounted face's paths match exactly,
    /// as uStreamer's do, so they are never the target of a 308).
    pub fn has(&self, method: &str, path: &str) -> bool {
        self.0.iter().any(|r| {
            path_matches(r.path, path)
                && r.method.as_str() == method
                && !matches!(r.expose, Expose::Mount(_) | Expose::Root)
        })
    }
}

/// The name of a path parameter segment (`{sid}` → `sid`), actix's syntax.
pub fn path_param(segment: &str) -> Option<&str> {
    segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'))
}

/// Whether `path` is an instance of the declared `pattern`, whose `{name}` segments stand
/// for any one non-empty segment (actix's syntax: `/redfish/v1/Systems/{sid}`).
pub fn path_matches(pattern: &str, path: &str) -> bool {
    if !pattern.contains('{') {
        return pattern == path;
    }
    let (mut want, mut got) = (pattern.split('/'), path.split('/'));
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if path_param(w).is_some() => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

/// aiohttp's `normalize_path_middleware(remove_slash=True, merge_slashes=True)`: `//`
/// merged and trailing slashes removed.
pub fn normalize_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for ch in path.chars() {
        if ch == '/' && out.ends_with('/') {
            continue;
        }
        out.push(ch);
    }
    while out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    out
}

/// A resource whose wrong methods get kvmd's 405 with `Allow:` from the route table.
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let allow = req.app_data::<RouteTable>().and_then(|t| t.allow(req.path())).unwrap_or_default();
    req.app_data::<ErrorStyle>().copied().unwrap_or_default().method_not_allowed(&allow)
}

/// The app's default service: a 308 to the normalised path when that is a route for this
/// method (query string kept, `Location` without `/api`, as kvmd), otherwise `404`.
pub fn default_service() -> actix_web::Route {
    web::to(not_found_or_redirect)
}

async fn not_found_or_redirect(req: HttpRequest) -> HttpResponse {
    let normal = normalize_path(req.path());
    let routed = req.app_data::<RouteTable>().is_some_and(|t| t.has(req.method().as_str(), &normal));
    if normal != req.path() && routed {
        let location = match req.query_string() {
            "" => normal,
            q => format!("{normal}?{q}"),
        };
        return envelope::permanent_redirect(&location);
    }
    req.app_data::<ErrorStyle>().copied().unwrap_or_default().not_found()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> RouteTable {
        RouteTable(
            vec![
                Route::get("/info"),
                Route::post("/hid/x"),
                Route::delete("/streamer/snapshot"),
                Route::get("/streamer/snapshot"),
            ]
            .into(),
        )
    }

    #[test]
    fn allow_is_sorted_and_comma_joined() {
        assert_eq!(t().allow("/streamer/snapshot").as_deref(), Some("DELETE,GET"));
        assert_eq!(t().allow("/info").as_deref(), Some("GET"));
        assert_eq!(t().allow("/nope"), None);
    }

    #[test]
    fn path_parameters_match_one_segment() {
        let p = "/redfish/v1/Systems/{sid}";
        assert!(path_matches(p, "/redfish/v1/Systems/0"));
        assert!(path_matches(p, "/redfish/v1/Systems/SwitchPort7"));
        assert!(!path_matches(p, "/redfish/v1/Systems/"));
        assert!(!path_matches(p, "/redfish/v1/Systems/0/x"));
        assert!(!path_matches(p, "/redfish/v1/Systems"));
        assert!(path_matches("/info", "/info") && !path_matches("/info", "/info/"));
        let t = RouteTable(vec![Route::get(p), Route::post("/redfish/v1/Systems/{sid}/Actions/Reset")].into());
        assert_eq!(t.allow("/redfish/v1/Systems/0").as_deref(), Some("GET"));
        assert!(t.has("POST", "/redfish/v1/Systems/0/Actions/Reset"));
        assert!(!t.has("GET", "/redfish/v1/Systems/0/Actions/Reset"));
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalize_path("/info/"), "/info");
        assert_eq!(normalize_path("//info//"), "/info");
        assert_eq!(normalize_path("/a//b"), "/a/b");
        assert_eq!(normalize_path("/"), "/");
    }
}
