//! The route table: what each service serves, declared once, as data.
//!
//! kvmd routes before it authenticates: an unknown path is `404: Not Found`, a known path
//! with the wrong method is `405: Method Not Allowed` with `Allow:`, and a path that only
//! matches after removing a trailing slash or merging `//` is a `308` to the normalised
//! kvmd path — all without credentials (spec `http.md` section 2). In kvmd-rs the nginx
//! front is rendered from these tables (`kvmd-nginx`), so nginx answers unknown paths
//! itself and sends wrong methods and odd slashes to the owning service, whose actix app
//! answers them through [`resource`] and [`default_service`] below, reading the same table.

use actix_web::{HttpRequest, HttpResponse, Resource, web};

use crate::envelope;

/// An HTTP method a route may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    /// DELETE
    Delete,
    /// GET
    Get,
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
            Method::Patch => "PATCH",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// Who may call a route, and who checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials needed (kvmd `auth_required=False`, e.g. `POST /auth/login`).
    Public,
    /// Credentials required. nginx enforces them with `auth_request` to kvmd-auth and
    /// passes the user on; on the service socket, local root (peer credentials) is also
    /// accepted, as kvmd does.
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
    /// A WebSocket upgrade.
    WebSocket,
}

/// One route of a service, with the kvmd path (without nginx's `/api` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The method.
    pub method: Method,
    /// The kvmd path, e.g. `/auth/check`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// How nginx proxies it.
    pub flow: Flow,
}

impl Route {
    /// A GET route needing credentials.
    pub const fn get(path: &'static str, access: Access) -> Self {
        Self { method: Method::Get, path, access, flow: Flow::Plain }
    }

    /// A POST route.
    pub const fn post(path: &'static str, access: Access) -> Self {
        Self { method: Method::Post, path, access, flow: Flow::Plain }
    }

    /// The same route with another proxy flow.
    pub const fn flow(self, flow: Flow) -> Self {
        Self { flow, ..self }
    }
}

/// The routes of one service, and the socket nginx reaches it on.
#[derive(Debug, Clone, Copy)]
pub struct ServiceRoutes {
    /// The service name, e.g. `kvmd-auth`.
    pub service: &'static str,
    /// The name of its upstream in nginx and of its socket file (`auth` → `auth.sock`).
    pub upstream: &'static str,
    /// Its routes.
    pub routes: &'static [Route],
    /// Prefixes outside `/api` that nginx hands to it whole (authenticated, streamed,
    /// unbuffered), such as uStreamer's `/streamer/`.
    pub mounts: &'static [Mount],
}

/// A client-path prefix mapped onto the service (`/streamer/state` → `/state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mount {
    /// The client prefix, with its trailing slash.
    pub prefix: &'static str,
    /// What replaces it upstream.
    pub upstream_prefix: &'static str,
}

/// The route table of the running service, stored in the actix app data.
#[derive(Debug, Clone, Copy)]
pub struct RouteTable(pub &'static [Route]);

impl RouteTable {
    /// `Allow:` for `path`: its methods sorted and comma-joined, as aiohttp prints them.
    pub fn allow(&self, path: &str) -> Option<String> {
        let mut methods: Vec<&str> = self.0.iter().filter(|r| r.path == path).map(|r| r.method.as_str()).collect();
        if methods.is_empty() {
            return None;
        }
        methods.sort_unstable();
        methods.dedup();
        Some(methods.join(","))
    }

    /// Whether `method path` is a route.
    pub fn has(&self, method: &str, path: &str) -> bool {
        self.0.iter().any(|r| r.path == path && r.method.as_str() == method)
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
pub fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let allow = req.app_data::<RouteTable>().and_then(|t| t.allow(req.path())).unwrap_or_default();
    envelope::method_not_allowed(&allow)
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
    envelope::not_found()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &[Route] = &[
        Route::get("/info", Access::User),
        Route::post("/hid/x", Access::User),
        Route { method: Method::Delete, path: "/streamer/snapshot", access: Access::User, flow: Flow::Plain },
        Route::get("/streamer/snapshot", Access::User),
    ];

    #[test]
    fn allow_is_sorted_and_comma_joined() {
        assert_eq!(RouteTable(T).allow("/streamer/snapshot").as_deref(), Some("DELETE,GET"));
        assert_eq!(RouteTable(T).allow("/info").as_deref(), Some("GET"));
        assert_eq!(RouteTable(T).allow("/nope"), None);
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalize_path("/info/"), "/info");
        assert_eq!(normalize_path("//info//"), "/info");
        assert_eq!(normalize_path("/a//b"), "/a/b");
        assert_eq!(normalize_path("/"), "/");
    }
}
