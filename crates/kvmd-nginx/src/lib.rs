//! Renders the nginx front from `nginx/nginx.conf.in` and the services' route tables.
//!
//! kvmd routes before it authenticates, and nginx must do the same for kvmd-rs, so the
//! locations are generated from the same [`Route`] lists the services mount: one exact
//! location per path; wrong methods and trailing slashes go to the owning service without
//! auth (it answers kvmd's 405/308); `User` routes are guarded by `auth_request`, and the
//! accepted user reaches the service in `X-KVMD-Auth-User`, which nginx sets itself.

use std::fmt::Write;

use kvmd_core::role::{self, Role};
use kvmd_core::routes::{Access, Expose, Flow, Route, ServiceRoutes};

/// The nginx template, shared by the demo, the tests and `deploy/`.
pub const TEMPLATE: &str = include_str!("../../../nginx/nginx.conf.in");

/// Every service of the suite with its routes, in upstream order.
pub fn services() -> Vec<ServiceRoutes> {
    [
        kvmd_auth::routes(),
        kvmd_hid::routes(),
        kvmd_info::routes(),
        kvmd_streamer::routes(),
        kvmd_gpio::routes(),
        kvmd_msd::routes(),
        kvmd_kasm::routes(),
        kvmd_blikvm::routes(),
        kvmd_webrtc::routes(),
    ]
    .iter()
    .map(|a| a.table())
    .collect()
}

/// The OpenAPI document of the suite, as `docs/openapi.json` holds it.
pub fn openapi() -> String {
    kvmd_core::openapi::to_text(&kvmd_core::openapi::document(&services(), env!("CARGO_PKG_VERSION")))
}

/// What differs between the demo, the tests and an installed system (also the options
/// of `kvmd-nginx render`, whose defaults are an installed system's).
#[derive(Debug, Clone, clap::Args)]
pub struct Params {
    /// `user ...;` line for a root master (`user kvmd-nginx;`), empty for an unprivileged run.
    #[arg(long, default_value = "user kvmd-nginx;")]
    pub user: String,
    /// Directory for the pid file and temp paths.
    #[arg(long, default_value = "/run/kvmd/nginx")]
    pub prefix: String,
    /// Directory holding the service sockets (`<upstream>.sock`).
    #[arg(long, default_value = "/run/kvmd")]
    pub run_dir: String,
    /// The static web root.
    #[arg(long, default_value = "/usr/share/kvmd/web")]
    pub web_root: String,
    /// `listen` of the HTTPS server, e.g. `127.0.0.1:8443` or `443`.
    #[arg(long, default_value = "443")]
    pub https_listen: String,
    /// `listen` of the HTTP redirect server.
    #[arg(long, default_value = "80")]
    pub http_listen: String,
    /// The HTTPS port as clients see it (for the HTTP → HTTPS redirect).
    #[arg(long, default_value_t = 443)]
    pub https_port: u16,
    /// TLS certificate.
    #[arg(long, default_value = "/etc/kvmd/nginx/ssl/server.crt")]
    pub cert: String,
    /// TLS key.
    #[arg(long, default_value = "/etc/kvmd/nginx/ssl/server.key")]
    pub key: String,
    /// nginx's `mime.types`.
    #[arg(long, default_value = "/etc/nginx/mime.types")]
    pub mime_types: String,
    /// `listen` of BliKVM's MJPEG port (`8008`; the demo's `127.0.0.1:8008`): `/stream`,
    /// `/snapshot` and `/state` of kvmd-streamer, behind the same authentication as
    /// everything else. Empty: no such port (a device's default: it is plain HTTP).
    #[arg(long, env = "KVMD_NGINX_BLIKVM_LISTEN", default_value = "")]
    pub blikvm_listen: String,
    /// Serve BliKVM's paths (`/api/login`, `/keyboard`, the `/kme` WebSocket, ...) on the
    /// plain-HTTP port as well, instead of redirecting them to HTTPS as every other path
    /// (BliKVM's clients speak plain HTTP; a redirect loses a GET's body). Off by default:
    /// their tokens and passwords then cross the network in clear.
    #[arg(long, env = "KVMD_NGINX_BLIKVM_PLAIN", default_value_t = false)]
    pub blikvm_plain: bool,
    /// Client networks (comma-separated CIDRs) that may watch BliKVM's MJPEG port without
    /// credentials, as on a real BliKVM (spec A.4.3's opt-in). Empty: nobody.
    #[arg(long, env = "KVMD_NGINX_BLIKVM_OPEN_STREAM", default_value = "")]
    pub blikvm_open_stream: String,
}

fn upstream_name(s: &ServiceRoutes) -> String {
    format!("kvmd_{}", s.upstream)
}

/// The headers every proxied location sets (nginx drops inherited ones as soon as a
/// location sets one). A service gets these and nothing else of the client's
/// (`proxy_pass_request_headers off`): however many headers a client sends, the
/// service's parser sees a handful, and no value with a control byte (the template's
/// `$kvmd_*` maps).
fn proxy_common(out: &mut String, indent: &str, keepalive: bool) {
    if keepalive {
        let _ = writeln!(out, "{indent}proxy_http_version 1.1;");
        let _ = writeln!(out, "{indent}proxy_set_header Connection \"\";");
    }
    for line in [
        "proxy_pass_request_headers off;",
        "proxy_set_header Host $host;",
        "proxy_set_header X-Original-Host $http_host;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header Content-Type $kvmd_content_type;",
        // For the session list (kvmd-auth records it at login) and the access logs.
        "proxy_set_header User-Agent $http_user_agent;",
    ] {
        let _ = writeln!(out, "{indent}{line}");
    }
}

/// The client's credential headers, for kvmd-auth alone (its own routes and nginx's
/// subrequest): each as the client sent it, unless it held a control byte, which
/// `X-KVMD-Auth-Bad` then names (kvmd_core::authn::BAD_BYTES_HEADER).
fn credentials(out: &mut String, indent: &str) {
    for line in [
        "proxy_set_header X-KVMD-User $kvmd_user;",
        "proxy_set_header X-KVMD-Passwd $kvmd_passwd;",
        "proxy_set_header Cookie $kvmd_cookie;",
        "proxy_set_header Authorization $kvmd_authorization;",
        "proxy_set_header X-KVMD-Auth-Bad $kvmd_bad_user$kvmd_bad_passwd$kvmd_bad_cookie$kvmd_bad_authorization;",
    ] {
        let _ = writeln!(out, "{indent}{line}");
    }
}

/// The credentials of a route that checks them itself (kvmd-blikvm's): as
/// [`credentials`], BliKVM's `token` header, and what the cross-site check of a cookie
/// needs.
fn self_checked(out: &mut String, indent: &str) {
    credentials(out, indent);
    for line in [
        "proxy_set_header token $kvmd_token;",
        "proxy_set_header Origin $kvmd_origin;",
        "proxy_set_header Sec-Fetch-Site $kvmd_sec_fetch_site;",
    ] {
        let _ = writeln!(out, "{indent}{line}");
    }
}

fn flow_lines(out: &mut String, indent: &str, flow: Flow) {
    let lines: &[&str] = match flow {
        Flow::Plain => &[],
        // Unbuffered, nginx passes the body on in reads of client_body_buffer_size (16 KiB
        // by default), which cap an upload at a third of the disk's speed (bench-msd).
        Flow::BigPost => &[
            "client_max_body_size 0;",
            "client_body_buffer_size 256k;",
            "proxy_request_buffering off;",
            "proxy_read_timeout 7d;",
        ],
        Flow::Stream => &["proxy_buffering off;", "postpone_output 0;", "proxy_read_timeout 7d;"],
        // Unbuffered, nginx reads the upstream into one buffer of proxy_buffer_size (a page
        // by default) and writes each read to the client: 8 KiB TLS writes cap a download
        // at about a third of what nginx serves statically (bench-msd).
        // (nginx checks the buffers' sizes against each other even when buffering is off.)
        Flow::Download => &[
            "proxy_buffering off;",
            "proxy_buffer_size 256k;",
            "proxy_buffers 4 256k;",
            "proxy_busy_buffers_size 256k;",
            "proxy_read_timeout 7d;",
        ],
        Flow::WebSocket => &[
            "proxy_http_version 1.1;",
            "proxy_set_header Upgrade $kvmd_upgrade;",
            "proxy_set_header Connection $connection_upgrade;",
            "proxy_set_header Sec-WebSocket-Key $http_sec_websocket_key;",
            "proxy_set_header Sec-WebSocket-Version $http_sec_websocket_version;",
            "proxy_set_header Sec-WebSocket-Protocol $http_sec_websocket_protocol;",
            "proxy_set_header Sec-WebSocket-Extensions $http_sec_websocket_extensions;",
            "proxy_read_timeout 7d;",
            "proxy_send_timeout 7d;",
        ],
    };
    for l in lines {
        let _ = writeln!(out, "{indent}{l}");
    }
}

/// The locations of one service.
fn render_service(out: &mut String, s: &ServiceRoutes) {
    let up = upstream_name(s);
    let raw = format!("@{up}_raw");
    // kvmd's paths in declaration order, each once.
    let mut paths: Vec<&str> = Vec::new();
    for r in s.routes.iter().filter(|r| r.expose == Expose::Api) {
        if !paths.contains(&r.path) {
            paths.push(r.path);
        }
    }
    for path in &paths {
        let routes: Vec<&Route> = s.routes.iter().filter(|r| r.path == *path).collect();
        let mut methods: Vec<&str> = routes.iter().map(|r| r.method.as_str()).collect();
        methods.sort_unstable();
        let access = routes[0].access;
        let flow = routes[0].flow;
        let needs: Vec<(kvmd_core::routes::Method, Role)> = routes.iter().map(|r| (r.method, r.role)).collect();
        // A path with parameters (`{sid}`) is a regular-expression location, whose
        // `proxy_pass` cannot name a URI: the rewrite strips `/api` instead.
        let param = path.contains('{');
        if param {
            let _ = writeln!(out, "        location ~ ^/api{}$ {{", regex_of(path));
        } else {
            let _ = writeln!(out, "        location = /api{path} {{");
        }
        let _ = writeln!(out, "            if ($request_method !~ ^({})$) {{ return 405; }}", methods.join("|"));
        let _ = writeln!(out, "            error_page 405 = {raw};");
        match access {
            Access::User => {
                let _ = writeln!(out, "            error_page 401 403 = @auth_denied;");
                let _ = writeln!(out, "            set $kvmd_need \"{}\";", role::need_spec(&needs));
            }
            Access::Public | Access::SelfChecked => {
                let _ = writeln!(out, "            auth_request off;");
            }
        }
        if routes.iter().any(|r| r.throttled) {
            let _ = writeln!(out, "            limit_req zone=kvmd_login burst=10 nodelay;");
            let _ = writeln!(out, "            error_page 503 = @kvmd_throttled;");
        }
        flow_lines(out, "            ", flow);
        if param {
            let _ = writeln!(out, "            rewrite ^/api(/.*)$ $1 break;");
            let _ = writeln!(out, "            proxy_pass http://{up};");
        } else {
            let _ = writeln!(out, "            proxy_pass http://{up}{path};");
        }
        proxy_common(out, "            ", flow != Flow::WebSocket);
        if access == Access::User {
            user_headers(out);
        } else if s.upstream == "auth" {
            // kvmd-auth's own routes, which read the credentials themselves.
            credentials(out, "            ");
        } else if access == Access::SelfChecked {
            self_checked(out, "            ");
        }
        // (Any other service's public route, such as Redfish's root, gets no credential.)
        let _ = writeln!(out, "        }}");
    }
    if !paths.is_empty() {
        // Trailing slashes: the service answers kvmd's 308 to the normalised path.
        let alternation: Vec<String> = paths.iter().map(|p| regex_of(p.trim_start_matches('/'))).collect();
        unauthenticated_pass(out, &format!("~ ^/api/({})/+$", alternation.join("|")), &up);
        // Wrong methods: the service answers kvmd's 405 with Allow:, before any auth.
        unauthenticated_pass(out, &raw, &up);
    }
    let mut mounted: Vec<(&str, &Route)> = Vec::new();
    for r in &s.routes {
        if let Expose::Mount(prefix) = r.expose
            && !mounted.iter().any(|(_, m)| m.path == r.path)
        {
            mounted.push((prefix, r));
        }
    }
    for (_, r) in &mounted {
        render_mounted(out, r, &up);
    }
    render_root(out, s);
    let mut prefixes: Vec<&str> = mounted.iter().map(|(p, _)| *p).collect();
    prefixes.dedup();
    for prefix in prefixes {
        // Anything else under the prefix: uStreamer's 404, never the service.
        let _ = writeln!(out, "        location {prefix}/ {{");
        let _ = writeln!(out, "            auth_request off;");
        let _ = writeln!(out, "            default_type text/html;");
        let _ = writeln!(out, "            return 404 \"<html><body><h1>404 Not Found</h1></body></html>\\n\";");
        let _ = writeln!(out, "        }}");
    }
    out.push('\n');
}

/// The service's paths at the front's root ([`Expose::Root`]): one exact location each,
/// every method to the service (which answers a wrong one in its own form). BliKVM's
/// (`Access::SelfChecked`) have no `auth_request`: the service finds the credentials itself
/// (a token can be in the body) and has kvmd-auth check them. A user route (Janus's
/// `/janus/ws`) is behind `auth_request` like kvmd's, whatever the method.
fn render_root(out: &mut String, s: &ServiceRoutes) {
    let up = upstream_name(s);
    let mut seen: Vec<&str> = Vec::new();
    for r in s.routes.iter().filter(|r| r.expose == Expose::Root) {
        if seen.contains(&r.path) {
            continue;
        }
        seen.push(r.path);
        let _ = writeln!(out, "        location = {} {{", r.path);
        if r.access == Access::User {
            let _ = writeln!(out, "            error_page 401 403 = @auth_denied;");
            let _ = writeln!(out, "            set $kvmd_need \"*={}\";", r.role);
        } else {
            let _ = writeln!(out, "            auth_request off;");
        }
        flow_lines(out, "            ", r.flow);
        let _ = writeln!(out, "            proxy_pass http://{up}{};", r.path);
        proxy_common(out, "            ", r.flow != Flow::WebSocket);
        match r.access {
            Access::SelfChecked => self_checked(out, "            "),
            Access::User => user_headers(out),
            Access::Public => {}
        }
        let _ = writeln!(out, "        }}");
    }
}

/// A server's `auth_request` to kvmd-auth: the variables it sets from kvmd-auth's answer,
/// and the subrequest, which passes the client's credential headers (`Authorization` from
/// the variable `authorization`), the client address, what the route needs and what the
/// cross-site check of a cookie needs, and no body. One for every server that asks.
fn auth_subrequest(authorization: &str) -> String {
    let mut out = String::new();
    for line in [
        "auth_request /_auth;",
        "auth_request_set $auth_user $upstream_http_x_kvmd_auth_user;",
        "auth_request_set $auth_via $upstream_http_x_kvmd_auth_via;",
        "auth_request_set $auth_role $upstream_http_x_kvmd_auth_role;",
        "auth_request_set $auth_session $upstream_http_x_kvmd_auth_session;",
        "auth_request_set $auth_error $upstream_http_x_kvmd_auth_error;",
        "",
        "# The auth_request subrequest: the client's credential headers, no body.",
        "location = /_auth {",
    ] {
        let indent = if line.is_empty() { "" } else { "        " };
        let _ = writeln!(out, "{indent}{line}");
    }
    let rewrite = format!("rewrite ^ {} break;", kvmd_auth::api::auth::REQUEST_PATH);
    for line in [
        "internal;",
        "auth_request off;",
        "client_max_body_size 0;",
        "proxy_method GET;",
        "proxy_pass_request_body off;",
        "# Only what kvmd-auth decides on: the credential headers and the client address.",
        "proxy_pass_request_headers off;",
        &rewrite,
        "proxy_pass http://kvmd_auth;",
        "proxy_http_version 1.1;",
        "proxy_set_header Connection \"\";",
    ] {
        let _ = writeln!(out, "            {line}");
    }
    let mut creds = String::new();
    credentials(&mut creds, "            ");
    out.push_str(&creds.replace("Authorization $kvmd_authorization", &format!("Authorization {authorization}")));
    for line in [
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Original-URI $request_uri;",
        "proxy_set_header X-Original-Method $request_method;",
        "proxy_set_header X-KVMD-Need-Role $kvmd_need;",
        "# For the cross-site check of cookie-carrying requests.",
        "proxy_set_header X-Original-Host $http_host;",
        "proxy_set_header X-Original-Upgrade $kvmd_upgrade;",
        "proxy_set_header Origin $kvmd_origin;",
        "proxy_set_header Sec-Fetch-Site $kvmd_sec_fetch_site;",
    ] {
        let _ = writeln!(out, "            {line}");
    }
    let _ = writeln!(out, "        }}");
    out
}

/// BliKVM's MJPEG port ([`Params::blikvm_listen`]): kvmd-streamer's `/stream`, `/snapshot`
/// and `/state` (its uStreamer face), each behind `auth_request` as `/streamer/*` is, where
/// BliKVM's token also counts (`?token=` or a `token` header, handed to kvmd-auth as a
/// bearer). A refusal is uStreamer's own for a wrong password: `401` with
/// `WWW-Authenticate: Basic realm="Restricted area"`, so MJPEG clients that can only do Basic
/// (NVRs, Home Assistant) ask for it. Networks in [`Params::blikvm_open_stream`] watch
/// without credentials (`satisfy any`).
fn render_blikvm_stream(p: &Params, services: &[ServiceRoutes]) -> String {
    let Some(streamer) = services.iter().find(|s| s.upstream == "streamer") else { return String::new() };
    if p.blikvm_listen.trim().is_empty() {
        return String::new();
    }
    let up = upstream_name(streamer);
    let mut out = String::new();
    let _ = writeln!(out, "    # BliKVM's MJPEG port: the streamer's uStreamer face, authenticated.");
    let _ = writeln!(out, "    server {{");
    let _ = writeln!(out, "        listen {};", p.blikvm_listen.trim());
    let _ = writeln!(out, "        server_name localhost;");
    let _ = writeln!(out, "        absolute_redirect off;");
    let _ = writeln!(out, "        error_page 401 403 = @blikvm_denied;");
    let open: Vec<&str> = p.blikvm_open_stream.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
    if !open.is_empty() {
        let _ = writeln!(out, "        satisfy any;");
        for net in open {
            let _ = writeln!(out, "        allow {net};");
        }
        let _ = writeln!(out, "        deny all;");
    }
    // BliKVM's token, where its clients put it, as a bearer; else the client's own.
    out.push_str(&auth_subrequest("$blikvm_auth"));
    let _ = writeln!(out, "        location @blikvm_denied {{");
    let _ = writeln!(out, "            auth_request off;");
    let _ = writeln!(out, "            default_type text/plain;");
    let _ = writeln!(out, "            add_header WWW-Authenticate 'Basic realm=\"Restricted area\"' always;");
    let _ = writeln!(out, "            return 401 \"401: Unauthorized\";");
    let _ = writeln!(out, "        }}");
    let mut seen: Vec<&str> = Vec::new();
    for r in streamer.routes.iter().filter(|r| matches!(r.expose, Expose::Mount(_))) {
        if !["/stream", "/snapshot", "/state"].contains(&r.path) || seen.contains(&r.path) {
            continue;
        }
        seen.push(r.path);
        let _ = writeln!(out, "        location = {} {{", r.path);
        let _ = writeln!(out, "            set $kvmd_need \"*={}\";", r.role);
        // Read here, in the request whose query it is (the subrequest's own is empty); a
        // subrequest shares the request's variables.
        let _ = writeln!(out, "            set $blikvm_auth $blikvm_authorization;");
        flow_lines(&mut out, "            ", Flow::Stream);
        let _ = writeln!(out, "            proxy_ignore_headers X-Accel-Buffering;");
        let _ = writeln!(out, "            proxy_pass http://{up}{};", r.path);
        proxy_common(&mut out, "            ", true);
        user_headers(&mut out);
        let _ = writeln!(out, "        }}");
    }
    let _ = writeln!(out, "        location / {{");
    let _ = writeln!(out, "            auth_request off;");
    let _ = writeln!(out, "            default_type text/html;");
    let _ = writeln!(out, "            return 404 \"<html><body><h1>404 Not Found</h1></body></html>\\n\";");
    let _ = writeln!(out, "        }}");
    let _ = writeln!(out, "    }}");
    out
}

/// A declared path as a regular expression: dots escaped, each `{name}` one segment.
pub fn regex_of(path: &str) -> String {
    path.split('/')
        .map(
            |seg| {
                if kvmd_core::routes::path_param(seg).is_some() { "[^/]+".to_owned() } else { seg.replace('.', "\\.") }
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// The headers of a location whose user kvmd-auth accepted: the identity nginx sets, and
/// none of the client's credentials ([`proxy_common`] passes none: only kvmd-auth ever
/// sees a password or a cookie).
fn user_headers(out: &mut String) {
    let _ = writeln!(out, "            proxy_set_header X-KVMD-Auth-User $auth_user;");
    let _ = writeln!(out, "            proxy_set_header X-KVMD-Auth-Via $auth_via;");
    let _ = writeln!(out, "            proxy_set_header {} $auth_role;", role::ROLE_HEADER);
    let _ = writeln!(out, "            proxy_set_header {} $auth_session;", kvmd_core::authn::AUTH_SESSION_HEADER);
}

/// The headers that carry a client's credentials.
pub const CREDENTIAL_HEADERS: &[&str] = &["X-KVMD-User", "X-KVMD-Passwd", "Authorization", "Cookie"];

/// A path of a mounted face (uStreamer's, under `/streamer`), as kvmd's nginx serves it:
/// guarded by `auth_request` whatever the method (the service answers wrong methods with
/// uStreamer's 501), no buffering, at each of its front paths. Upstream
/// HTTP/1.1 with keep-alive like every other location (kvmd's nginx speaks HTTP/1.0 here;
/// actix refuses an HTTP/1.0 POST without `Content-Length`, and the client-side framing
/// is the same either way).
fn render_mounted(out: &mut String, r: &Route, up: &str) {
    let path = r.path;
    for front in r.front_paths() {
        let _ = writeln!(out, "        location = {front} {{");
        let _ = writeln!(out, "            error_page 401 403 = @auth_denied;");
        // Every method is authenticated, and needs the route's role (the service answers a
        // wrong one with uStreamer's 501).
        let _ = writeln!(out, "            set $kvmd_need \"*={}\";", r.role);
        flow_lines(out, "            ", Flow::Stream);
        let _ = writeln!(out, "            proxy_ignore_headers X-Accel-Buffering;");
        let _ = writeln!(out, "            proxy_pass http://{up}{path};");
        proxy_common(out, "            ", true);
        user_headers(out);
        let _ = writeln!(out, "        }}");
    }
}

/// A location that hands the request, `/api` stripped and without auth, to upstream `up`.
fn unauthenticated_pass(out: &mut String, location: &str, up: &str) {
    let _ = writeln!(out, "        location {location} {{");
    let _ = writeln!(out, "            auth_request off;");
    let _ = writeln!(out, "            rewrite ^/api(/.*)$ $1 break;");
    let _ = writeln!(out, "            proxy_pass http://{up};");
    // The service answers without looking at credentials: it gets none.
    proxy_common(out, "            ", true);
    let _ = writeln!(out, "        }}");
}

/// The rendered nginx.conf.
pub fn render(p: &Params, services: &[ServiceRoutes]) -> String {
    let mut upstreams = String::new();
    for s in services {
        let _ = writeln!(upstreams, "    upstream {} {{", upstream_name(s));
        let _ =
            writeln!(upstreams, "        server unix:{}/{}.sock fail_timeout=0s max_fails=0;", p.run_dir, s.upstream);
        let _ = writeln!(upstreams, "        keepalive 64;");
        // The services keep idle connections longer, so nginx is the one that closes them
        // (kvmd_core::service::serve): never a POST on a connection the service closed.
        let _ = writeln!(upstreams, "        keepalive_timeout {}s;", kvmd_core::service::UPSTREAM_IDLE_SECS);
        let _ = writeln!(upstreams, "    }}");
    }
    let mut locations = String::new();
    for s in services {
        render_service(&mut locations, s);
    }
    let port_suffix = if p.https_port == 443 { String::new() } else { format!(":{}", p.https_port) };
    // BliKVM's paths on the plain-HTTP port too, when told (Params::blikvm_plain).
    let mut http_locations = String::new();
    if p.blikvm_plain {
        for s in services {
            render_root(&mut http_locations, s);
        }
    }
    let blikvm_stream = render_blikvm_stream(p, services);
    TEMPLATE
        .replace("@@USER@@", &p.user)
        .replace("@@PREFIX@@", &p.prefix)
        .replace("@@MIME_TYPES@@", &p.mime_types)
        .replace("@@UPSTREAMS@@", &upstreams)
        .replace("@@LOCATIONS@@", &locations)
        .replace("@@HTTP_LISTEN@@", &p.http_listen)
        .replace("@@HTTPS_LISTEN@@", &p.https_listen)
        .replace("@@HTTPS_PORT_SUFFIX@@", &port_suffix)
        .replace("@@WEB_ROOT@@", &p.web_root)
        .replace("@@CERT@@", &p.cert)
        .replace("@@KEY@@", &p.key)
        .replace("@@AUTH@@", &auth_subrequest("$kvmd_authorization"))
        .replace("@@HTTP_LOCATIONS@@", http_locations.trim_end())
        .replace("@@BLIKVM_STREAM@@", &blikvm_stream)
        .replace("@@AUTH_DENIED_PATH@@", kvmd_auth::api::auth::DENIED_PATH)
        .replace("@@THROTTLED_DENIAL@@", &kvmd_core::authn::encode_denial(&kvmd_core::ApiError::unavailable()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params {
            user: String::new(),
            prefix: "/p".into(),
            run_dir: "/run/kvmd".into(),
            web_root: "/w".into(),
            https_listen: "443".into(),
            http_listen: "80".into(),
            https_port: 443,
            cert: "/c".into(),
            key: "/k".into(),
            mime_types: "/etc/nginx/mime.types".into(),
            blikvm_listen: String::new(),
            blikvm_plain: false,
            blikvm_open_stream: String::new(),
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        let conf = render(&params(), &services());
        assert!(!conf.contains("@@"), "{conf}");
        assert!(conf.contains("location = /api/auth/login {"));
        assert!(conf.contains("return 301 https://$host$request_uri;"));
    }

    #[test]
    fn protected_routes_get_auth_request_and_an_overwritten_user_header() {
        let routes = vec![
            Route::get("/info"),
            Route::delete("/streamer/snapshot"),
            Route::get("/streamer/snapshot"),
            Route::get("/ws").flow(Flow::WebSocket),
        ];
        let s = ServiceRoutes { service: "t", upstream: "t", routes, errors: Default::default() };
        let conf = render(&params(), &[s]);
        let info =
            conf.split("location = /api/info {").nth(1).and_then(|s| s.split("        }").next()).unwrap_or_default();
        assert!(!info.contains("auth_request off"), "{info}");
        assert!(info.contains("error_page 401 403 = @auth_denied;"));
        assert!(info.contains("proxy_set_header X-KVMD-Auth-User $auth_user;"));
        assert!(info.contains("proxy_pass http://kvmd_t/info;"));
        // What the route needs goes to kvmd-auth, and the role it found to the service.
        assert!(info.contains("set $kvmd_need \"GET=viewer\";"), "{info}");
        assert!(info.contains("proxy_set_header X-KVMD-Auth-Role $auth_role;"));
        assert!(info.contains("proxy_set_header X-KVMD-Auth-Session $auth_session;"));
        assert!(conf.contains("set $kvmd_need \"DELETE=operator,GET=viewer\";"), "{conf}");
        assert!(conf.contains("if ($request_method !~ ^(DELETE|GET)$) { return 405; }"));
        assert!(conf.contains("location ~ ^/api/(info|streamer/snapshot|ws)/+$ {"));
        let ws =
            conf.split("location = /api/ws {").nth(1).and_then(|s| s.split("        }").next()).unwrap_or_default();
        assert!(ws.contains("proxy_set_header Connection $connection_upgrade;"));
        assert!(!ws.contains("proxy_set_header Connection \"\";"), "{ws}");
    }

    /// BliKVM's paths: exact, unauthenticated at the front (kvmd-blikvm checks the token),
    /// with the credentials; on the plain-HTTP port and the MJPEG port only when told.
    #[test]
    fn blikvm_is_served_at_the_root_and_its_plain_ports_only_when_told() {
        let block = |conf: &str, at: &str| {
            conf.split(at).nth(1).and_then(|s| s.split("\n        }").next()).unwrap_or_default().to_owned()
        };
        let conf = render(&params(), &services());
        let kb = block(&conf, "location = /keyboard {");
        assert!(kb.contains("auth_request off;") && kb.contains("proxy_pass http://kvmd_blikvm/keyboard;"), "{kb}");
        assert!(kb.contains("proxy_set_header token $kvmd_token;") && kb.contains("proxy_set_header Origin"), "{kb}");
        let kme = block(&conf, "location = /kme {");
        assert!(kme.contains("proxy_set_header Upgrade $kvmd_upgrade;"), "{kme}");
        // By default: once (HTTPS), no MJPEG port, no open stream.
        assert_eq!(conf.matches("location = /keyboard {").count(), 1);
        assert!(!conf.contains("@blikvm_denied") && !conf.contains("satisfy any"));

        let p = Params {
            blikvm_plain: true,
            blikvm_listen: "8008".into(),
            blikvm_open_stream: "10.0.0.0/8, 192.168.1.0/24".into(),
            ..params()
        };
        let conf = render(&p, &services());
        assert_eq!(conf.matches("location = /keyboard {").count(), 2);
        let http = conf.split("listen 80;").nth(1).and_then(|s| s.split("listen 443").next()).unwrap_or_default();
        assert!(http.contains("location = /keyboard {") && http.contains("location = /api/login {"), "{http}");
        let mjpeg = conf.split("listen 8008;").nth(1).and_then(|s| s.split("\n    }").next()).unwrap_or_default();
        for path in ["/stream", "/snapshot", "/state"] {
            let b = block(mjpeg, &format!("location = {path} {{"));
            assert!(b.contains(&format!("proxy_pass http://kvmd_streamer{path};")), "{b}");
            assert!(b.contains("set $blikvm_auth $blikvm_authorization;") && b.contains("$auth_user"), "{b}");
            assert_eq!(mjpeg.matches(&format!("location = {path} {{")).count(), 1);
        }
        assert!(mjpeg.contains("proxy_set_header Authorization $blikvm_auth;"), "{mjpeg}");
        assert!(mjpeg.contains("add_header WWW-Authenticate 'Basic realm=\"Restricted area\"' always;"));
        assert!(
            mjpeg.contains("satisfy any;\n        allow 10.0.0.0/8;\n        allow 192.168.1.0/24;\n        deny all;")
        );
        assert!(!mjpeg.contains("kvmd_hid") && !mjpeg.contains("/feed"), "{mjpeg}");
    }

    #[test]
    fn every_service_declares_each_route_once() {
        for s in services() {
            assert_eq!(s.check(), Ok(()));
        }
    }

    /// The front serves exactly the declared routes: one exact location per exposed path,
    /// and under `/api/` and `/streamer/` nothing else but the fallbacks (kvmd's 404, the
    /// trailing-slash and wrong-method hand-offs, uStreamer's 404).
    #[test]
    fn one_location_per_declared_route_and_nothing_else() {
        let conf = render(&params(), &services());
        let mut exact: Vec<String> = Vec::new();
        let mut other: Vec<String> = Vec::new();
        for line in conf.lines().map(str::trim).filter(|l| l.starts_with("location ")) {
            let spec = line.trim_start_matches("location ").trim_end_matches(" {").to_owned();
            match spec.strip_prefix("= ") {
                Some(path) => exact.push(path.to_owned()),
                None => other.push(spec),
            }
        }
        let mut want: Vec<String> = Vec::new();
        let mut want_regex: Vec<String> = Vec::new();
        for s in services() {
            for front in s.exposed().flat_map(Route::front_paths) {
                if front.contains('{') {
                    let re = format!("~ ^{}$", regex_of(&front));
                    if !want_regex.contains(&re) {
                        want_regex.push(re);
                    }
                } else if !want.contains(&front) {
                    want.push(front);
                }
            }
        }
        for re in &want_regex {
            assert!(other.contains(re), "{re} not in {other:?}");
        }
        let front_of_ours = |p: &str| p.starts_with("/api") || p.starts_with("/streamer");
        // `= /api` is the template's 404, like `/api/`.
        let mut got: Vec<String> = exact.iter().filter(|p| front_of_ours(p) && *p != "/api").cloned().collect();
        // BliKVM's paths at the root: each exactly once.
        let root: Vec<String> = want.iter().filter(|p| !front_of_ours(p)).cloned().collect();
        for p in &root {
            assert_eq!(exact.iter().filter(|e| *e == p).count(), 1, "{p}");
        }
        want.retain(|p| front_of_ours(p));
        got.sort();
        want.sort();
        assert_eq!(got, want);
        assert!(!exact.iter().any(|p| p.contains("/metrics/self") || p.ends_with("/feed")), "{exact:?}");
        // The non-exact locations under our prefixes: the 404s and one slash hand-off per service.
        let ours: Vec<&String> = other.iter().filter(|l| l.contains("/api") || l.contains("/streamer")).collect();
        let slash: Vec<&&String> = ours.iter().filter(|l| l.starts_with("~ ^/api/(")).collect();
        let with_api = services().iter().filter(|s| s.routes.iter().any(|r| r.expose == Expose::Api)).count();
        assert_eq!(slash.len(), with_api, "{ours:?}");
        for l in &ours {
            assert!(
                l.starts_with("~ ^/api/(") || *l == "/api/" || *l == "/streamer/" || want_regex.contains(l),
                "unexpected location {l}"
            );
        }
        // Each slash hand-off names exactly its service's /api paths.
        for s in services().into_iter().filter(|s| s.routes.iter().any(|r| r.expose == Expose::Api)) {
            let mut paths: Vec<String> = Vec::new();
            for r in s.routes.iter().filter(|r| r.expose == Expose::Api) {
                let p = regex_of(r.path.trim_start_matches('/'));
                if !paths.contains(&p) {
                    paths.push(p);
                }
            }
            let want = format!("~ ^/api/({})/+$", paths.join("|"));
            assert!(slash.iter().any(|l| ***l == want), "{want} not in {slash:?}");
        }
        // The catch-all of uStreamer's face answers itself; it never reaches a service.
        let catch = conf.split("location /streamer/ {").nth(1).and_then(|s| s.split('}').next()).unwrap_or_default();
        assert!(catch.contains("return 404") && !catch.contains("proxy_pass"), "{catch}");
    }

    #[test]
    fn the_checked_in_openapi_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let file = std::fs::read_to_string(path).unwrap_or_default();
        assert!(file == openapi(), "docs/openapi.json is stale: run `just openapi`");
    }

    /// Every location that proxies to a service other than kvmd-auth's own routes passes
    /// no client credential (before, Authorization, Cookie and X-KVMD-User reached every
    /// service).
    #[test]
    fn only_kvmd_auth_sees_credentials() {
        let conf = render(&params(), &services());
        let mut checked = 0;
        for block in conf.split("        location ").skip(1) {
            let block = block.split("\n        }").next().unwrap_or_default();
            let Some(up) = block.lines().find_map(|l| l.trim().strip_prefix("proxy_pass http://")) else { continue };
            // kvmd-auth's own routes, and kvmd-blikvm's, which hand them to kvmd-auth.
            let own_auth_route = up.starts_with("kvmd_auth/auth/")
                || up.starts_with("kvmd_blikvm/")
                || block.starts_with("= /_auth")
                || block.starts_with("@auth_denied");
            // No client header reaches a service unless the location names it.
            assert!(block.contains("proxy_pass_request_headers off;"), "{up} gets every client header:\n{block}");
            for h in CREDENTIAL_HEADERS {
                let set = format!("proxy_set_header {h} ");
                if own_auth_route && !block.starts_with("@auth_denied") {
                    assert!(block.contains(&format!("{set}$kvmd_")), "{h} does not reach {up}:\n{block}");
                } else {
                    assert!(!block.contains(&set), "{h} reaches {up}:\n{block}");
                }
            }
            checked += 1;
        }
        assert!(checked > 30, "{checked}");
    }
}
