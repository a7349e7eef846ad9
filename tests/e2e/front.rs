//! The nginx front: routing before auth, the web root behind auth_request, and headers a
//! client must never be able to set.

use crate::common::{self, get, text};

#[test]
fn routing_answers_before_auth() {
    let stack = common::stack();
    // Wrong method: the owning service's 405 with Allow, without credentials.
    let r = get(&stack, "/api/auth/check", &["-X", "POST"]);
    assert_eq!((r.status(), r.header("Allow"), text(&r).as_str()), (405, Some("GET"), "405: Method Not Allowed"));
    assert_eq!(r.status_line, "HTTP/1.1 405 Method Not Allowed");
    let r = get(&stack, "/api/auth/check", &["-I"]);
    assert_eq!(r.status(), 405, "HEAD is not GET in kvmd");
    // Trailing slash: kvmd's 308 to the internal path, query kept.
    let r = get(&stack, "/api/auth/check/?a=1", &[]);
    assert_eq!((r.status(), r.header("Location")), (308, Some("/auth/check?a=1")));
    assert_eq!(text(&r), "308: Permanent Redirect");
    // Unknown paths, also right under /api.
    for p in ["/api/nosuch", "/api", "/api/auth", "/api/auth/request", "/api/auth/denied"] {
        let r = get(&stack, p, &[]);
        assert_eq!((r.status(), text(&r).as_str()), (404, "404: Not Found"), "{p}");
        assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"), "{p}");
    }
}

#[test]
fn web_root_is_protected_by_auth_request() {
    let stack = common::stack();
    let token = common::login(&stack, "admin", "admin");
    let cookie = format!("Cookie: auth_token={token}");
    let r = get(&stack, "/", &["-H", &cookie]);
    assert_eq!(r.status(), 200);
    assert!(text(&r).contains("kvmd-rs"));
    assert_eq!(get(&stack, "/", &["-H", "X-KVMD-User: admin", "-H", "X-KVMD-Passwd: admin"]).status(), 200);
    assert_eq!(get(&stack, "/", &["-u", "admin:admin"]).status(), 200);
    // Anything else goes to the login page, never to an nginx 500 (kvmd's nginx answers a
    // malformed cookie on the web UI with 500).
    for extra in [
        vec!["-H", "Cookie: auth_token=xyz"],
        vec!["-u", "admin:wrong"],
        vec!["-H", "Authorization: Basic !!!"],
        vec!["-H", "X-KVMD-User: Admin!"],
        vec![],
    ] {
        let r = get(&stack, "/", &extra);
        assert_eq!((r.status(), r.header("Location")), (302, Some("/login")), "{extra:?}");
    }
    assert_eq!(get(&stack, "/login/", &[]).status(), 200);
    assert_eq!(get(&stack, "/robots.txt", &[]).status(), 200);
}

#[test]
fn a_client_cannot_claim_an_identity() {
    let stack = common::stack();
    // The header nginx uses to pass the accepted user is never taken from a client.
    let r = get(&stack, "/", &["-H", "X-KVMD-Auth-User: admin", "-H", "X-KVMD-Auth-Via: token"]);
    assert_eq!(r.status(), 302);
    let r = get(&stack, "/api/auth/check", &["-H", "X-KVMD-Auth-User: admin"]);
    assert_eq!(r.status(), 401);
    assert_eq!(r.header("WWW-Authenticate"), None, "kvmd never sends a challenge");
}

#[test]
fn a_service_believes_the_identity_header_from_the_fronts_uid_only() {
    let mut stack = common::stack();
    let sock = stack.root.join("run/info.sock").display().to_string();
    let direct = |extra: &[&str]| {
        let mut args: Vec<String> = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", &sock]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args.push("http://localhost/info?fields=meta".into());
        String::from_utf8_lossy(&kvmd_testkit::curl(&args).unwrap_or_default()).into_owned()
    };
    // No peer is trusted by its uid alone here (usc off), and the front is a uid nobody has.
    let untrusted = ["usc.users=[]".to_owned(), "usc.groups=[]".to_owned()];
    let mut set = untrusted.to_vec();
    set.push("front.users=[\"4242424\"]".into());
    stack.start_service("info", &set).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(direct(&["-H", "X-KVMD-Auth-User: admin"]), "401", "a peer that is not the front names a user");
    let via_nginx = get(&stack, "/api/info?fields=meta", &["-u", "admin:admin"]);
    assert_eq!(via_nginx.status(), 401, "nginx is not the front now: its header is ignored too");
    // The front's real uid: the same request through nginx is believed.
    let mut set = untrusted.to_vec();
    set.push(format!("front.users=[{:?}]", kvmd_testkit::front_user()));
    stack.start_service("info", &set).unwrap_or_else(|e| panic!("{e:#}"));
    let r = get(&stack, "/api/info?fields=meta", &["-u", "admin:admin"]);
    assert_eq!(r.status(), 200, "{}", text(&r));
}

#[test]
fn control_bytes_and_header_floods_get_kvmds_answers_not_nginx_500() {
    let stack = common::stack();
    let validator =
        |m: &str| format!("\"error\": \"ValidatorError\",\n        \"error_msg\": \"The argument is not a valid {m}\"");
    let cases: Vec<(&str, Vec<&str>, u16, String)> = vec![
        ("/api/hid", vec!["-H", "X-KVMD-User: adm\x01in"], 400, validator("username characters")),
        ("/api/auth/check", vec!["-H", "X-KVMD-User: adm\x1bin"], 400, validator("username characters")),
        (
            "/api/hid",
            vec!["-H", "X-KVMD-User: admin", "-H", "X-KVMD-Passwd: ad\x7fmin"],
            400,
            validator("passwd characters"),
        ),
        ("/api/hid", vec!["-H", "Cookie: auth_token=\x01abc"], 400, validator("auth token")),
        ("/api/auth/check", vec!["-H", "Cookie: auth_token=\x02"], 400, validator("auth token")),
        ("/api/hid", vec!["-H", "Authorization: Basic \x01YWRtaW46YWRtaW4="], 401, "UnauthorizedError".into()),
        // Not a credential: never forwarded, so the request goes through.
        ("/api/hid", vec!["-u", "admin:admin", "-H", "X-Junk: a\x01b"], 200, "\"ok\": true".into()),
    ];
    for (path, extra, status, body) in &cases {
        let r = get(&stack, path, extra);
        assert_eq!(r.status(), *status, "{path} {extra:?}: {}", text(&r));
        assert!(text(&r).contains(body.as_str()), "{path} {extra:?}: {}", text(&r));
    }
    // The web UI sends a browser with a broken cookie to the login page.
    let r = get(&stack, "/", &["-H", "Cookie: auth_token=\x01"]);
    assert_eq!((r.status(), r.header("Location")), (302, Some("/login")));
    // A hundred headers (the services' parser takes 96): the service gets only the few it reads.
    let flood: Vec<String> = (0..100).flat_map(|i| ["-H".to_owned(), format!("X-Flood-{i}: {i}")]).collect();
    let mut extra: Vec<&str> = flood.iter().map(String::as_str).collect();
    extra.extend(["-u", "admin:admin"]);
    for path in ["/api/hid", "/api/auth/check", "/api/info?fields=meta", "/api/streamer"] {
        let r = get(&stack, path, &extra);
        assert_eq!(r.status(), 200, "{path}: {}", text(&r));
    }
}

#[test]
fn logins_are_throttled_per_address_with_kvmds_503() {
    let stack = common::stack();
    // 60 right logins back to back on one connection: past the burst of 10 (and 2 a second),
    // the front refuses with kvmd's 503 body, and nothing else breaks.
    let url = stack.url("/api/auth/login");
    let mut args: Vec<String> = vec!["-sk".into(), "-w".into(), "\n%{http_code}\n".into()];
    for _ in 0..60 {
        args.extend(["-d".into(), "user=admin&passwd=admin".into(), url.clone()]);
    }
    let out = String::from_utf8_lossy(&kvmd_testkit::curl(&args).unwrap_or_default()).into_owned();
    let codes: Vec<&str> = out.lines().filter(|l| l.len() == 3 && l.bytes().all(|b| b.is_ascii_digit())).collect();
    assert_eq!(codes.len(), 60, "{out}");
    assert!(codes.iter().all(|c| *c == "200" || *c == "503"), "{codes:?}");
    let refused = codes.iter().filter(|c| **c == "503").count();
    assert!(refused >= 10, "{refused} of 60 refused: {codes:?}");
    assert!(out.contains("\"error\": \"UnavailableError\""), "{out}");
    // Other routes are not throttled: password checks there are bounded by the lockout.
    let r = get(&stack, "/api/auth/check", &["-u", "admin:admin"]);
    assert_eq!(r.status(), 200, "{}", text(&r));
}

#[test]
fn oversized_bodies_get_nginx_413_not_500() {
    let stack = common::stack();
    let big = format!("user=admin&passwd=admin&x={}", "a".repeat(8000));
    let r = get(&stack, "/api/auth/login", &["-X", "POST", "-d", &big]);
    assert_eq!(r.status(), 413);
    let r = get(&stack, "/", &["-X", "POST", "-u", "admin:admin", "-d", &big]);
    assert_ne!(r.status(), 500);
}

/// The front exposes exactly the declared routes: under `/streamer/` only uStreamer's public
/// paths reach kvmd-streamer (its internal feed and every service's `/metrics/self` never do).
#[test]
fn only_declared_paths_reach_the_services() {
    let stack = common::stack();
    let auth = ["-u", "admin:admin"];
    for p in
        ["/streamer/metrics/self", "/streamer/streamer/feed", "/streamer/state/", "/streamer/hid", "/streamer/nosuch"]
    {
        let r = get(&stack, p, &auth);
        assert_eq!(r.status(), 404, "{p}");
        assert!(!text(&r).contains("kvmd-rs"), "{p}: {}", text(&r));
    }
    for p in ["/api/metrics/self", "/api/info/feed", "/api/hid/input_latency"] {
        assert_eq!(get(&stack, p, &auth).status(), 404, "{p}");
    }
    // uStreamer's paths are served (and need credentials), `/streamer` alone is its index.
    for p in ["/streamer/state", "/streamer/", "/streamer", "/streamer/favicon.ico"] {
        assert_eq!(get(&stack, p, &auth).status(), 200, "{p}");
        assert_eq!(get(&stack, p, &[]).status(), 401, "{p}");
    }
    // A wrong method on uStreamer's face is uStreamer's 501, behind auth as in kvmd's nginx.
    assert_eq!(get(&stack, "/streamer/state", &["-X", "POST", "-u", "admin:admin"]).status(), 501);
    assert_eq!(get(&stack, "/streamer/state", &["-X", "POST"]).status(), 401);
}

/// `GET /api/openapi.json`: the checked-in document, to a logged-in user only.
#[test]
fn openapi_document_through_the_front() {
    let stack = common::stack();
    let r = get(&stack, "/api/openapi.json", &["-u", "admin:admin"]);
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let file = std::fs::read_to_string(kvmd_testkit::repo_root().join("docs/openapi.json")).unwrap_or_default();
    assert_eq!(text(&r), file);
    let doc: serde_json::Value = serde_json::from_str(&file).unwrap_or_default();
    assert_eq!(doc["paths"]["/api/hid/events/send_key"]["post"]["parameters"][0]["name"], "key");
    let r = get(&stack, "/api/openapi.json", &[]);
    assert_eq!(r.status(), 401);
    assert!(text(&r).contains("UnauthorizedError"));
}

/// TLS as Mozilla's "intermediate" profile: no CBC or non-forward-secret cipher, no session
/// tickets (the defaults offered both).
#[test]
fn tls_is_intermediate_without_tickets() {
    let stack = common::stack();
    let connect = format!("127.0.0.1:{}", stack.https_port);
    let s_client = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(["s_client", "-connect", &connect, "-servername", "localhost"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("openssl: {e}"));
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let ok = s_client(&["-tls1_2"]);
    assert!(ok.contains("Cipher is ECDHE-"), "{ok}");
    assert!(!ok.contains("TLS session ticket:"), "a session ticket was issued:\n{ok}");
    let cbc = s_client(&["-tls1_2", "-cipher", "AES128-SHA"]);
    assert!(!cbc.contains("Cipher is AES128-SHA"), "{cbc}");
    assert!(cbc.contains("handshake failure") || cbc.contains("alert"), "{cbc}");
}

/// Cross-site keystrokes: a request that carries the session cookie, changes state and comes
/// from another site is kvmd's 403, and types nothing; scripts (X-KVMD headers, Basic, no
/// browser headers) and our own pages are unaffected.
#[test]
fn cross_site_requests_with_the_cookie_are_refused() {
    let stack = common::stack();
    let token = common::login(&stack, "admin", "admin");
    let cookie = format!("Cookie: auth_token={token}");
    let ours = format!("Origin: https://127.0.0.1:{}", stack.https_port);
    let print = |extra: &[&str]| {
        let mut args = vec!["-X", "POST", "-H", "Content-Type: text/plain", "--data-binary", "echo pwned"];
        args.extend_from_slice(extra);
        get(&stack, "/api/hid/print", &args)
    };
    let before = stack.hid_written("keyboard").len();
    for foreign in [
        vec!["-H", &cookie, "-H", "Origin: https://evil.example"],
        vec!["-H", &cookie, "-H", "Origin: null"],
        vec!["-H", &cookie, "-H", "Sec-Fetch-Site: cross-site"],
        vec!["-H", &cookie, "-H", "Origin: https://127.0.0.1:1"],
    ] {
        let r = print(&foreign);
        assert_eq!(r.status(), 403, "{foreign:?}: {}", text(&r));
        assert!(text(&r).contains("ForbiddenError"), "{}", text(&r));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(stack.hid_written("keyboard").len(), before, "a refused request typed something");
    // A WebSocket upgrade from another site.
    let mut upgrade = vec!["-H", cookie.as_str(), "-H", "Origin: https://evil.example"];
    upgrade.extend(common::WS_UPGRADE);
    let r = get(&stack, "/api/ws", &upgrade);
    assert_eq!(r.status(), 403, "{}", text(&r));
    // Our own page, and scripts, whatever Origin they send.
    assert_eq!(print(&["-H", &cookie, "-H", &ours, "-H", "Sec-Fetch-Site: same-origin"]).status(), 200);
    assert_eq!(print(&["-H", &cookie]).status(), 200, "no browser headers: a script");
    let r = print(&["-H", "X-KVMD-User: admin", "-H", "X-KVMD-Passwd: admin", "-H", "Origin: https://evil.example"]);
    assert_eq!(r.status(), 200);
    assert_eq!(print(&["-u", "admin:admin", "-H", "Sec-Fetch-Site: cross-site"]).status(), 200);
    // Safe methods are not refused (a cross-site link to the console still opens it).
    let r = get(
        &stack,
        "/api/hid",
        &["-H", &cookie, "-H", "Origin: https://evil.example", "-H", "Sec-Fetch-Site: cross-site"],
    );
    assert_eq!(r.status(), 200);
    // The 302 branch's cookie is HttpOnly and SameSite=Strict too, and the console is never framed.
    let r = get(&stack, "/api/auth/login", &["-X", "POST", "-d", "user=admin&passwd=admin&redirect=/"]);
    assert_eq!(r.status(), 302);
    assert!(
        r.header("Set-Cookie").is_some_and(|c| c.ends_with("; HttpOnly; Path=/; SameSite=Strict; Secure")),
        "{r:?}"
    );
    let r = get(&stack, "/", &["-H", &cookie]);
    assert_eq!(r.header("X-Frame-Options"), Some("DENY"));
    assert_eq!(r.header("Content-Security-Policy"), Some("frame-ancestors 'none'"));
    assert!(get(&stack, "/login/", &[]).header("X-Frame-Options").is_some());
}
