//! The Kasm-style API through the front (issue #18; spec `compat-blikvm-kasm.md` Part B):
//! the reference's calls with the bodies as it gives them, a session requested for a user
//! and entered through its one-time link, then destroyed (its WebSocket closes), and every
//! error in Kasm's form with its real status.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kvmd_testkit::Stack;
use serde_json::{Value, json};

use crate::common::{self, text};
use crate::ws;

/// Makes key `id` with secret `secret` (as the demo's `demo` / `demo`).
fn key(stack: &Stack, id: &str, secret: &str, scope: &str, role: &str) {
    let mut child = Command::new(kvmd_testkit::bin_dir().join("kvmd-apikey"))
        .arg("--config")
        .arg(stack.root.join("etc/auth.toml"))
        .args(["add", "--id", id, "--scope", scope, "--role", role, "--secret-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("kvmd-apikey: {e}"));
    if let Some(mut i) = child.stdin.take() {
        let _ = writeln!(i, "{secret}");
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `POST path` with `body` as raw text, as the reference's curl lines send it.
fn post_raw(stack: &Stack, path: &str, body: &str) -> (u16, Value, kvmd_testkit::golden::Response) {
    let r = common::get(stack, path, &["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", body]);
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status(), v, r)
}

fn post(stack: &Stack, path: &str, body: &Value) -> (u16, Value) {
    let (s, v, _) = post_raw(stack, path, &body.to_string());
    (s, v)
}

/// `fields` with the credentials of key `id` / `secret` merged in, as pykasm sends them.
fn with_key(id: &str, secret: &str, fields: Value) -> Value {
    let mut v = json!({"api_key": id, "api_key_secret": secret});
    if let (Some(o), Some(f)) = (v.as_object_mut(), fields.as_object()) {
        o.extend(f.clone());
    }
    v
}

fn demo(fields: Value) -> Value {
    with_key("demo", "demo", fields)
}

/// A Kasm error: the status, exactly the two keys, JSON.
fn assert_error(stack: &Stack, path: &str, body: &str, status: u16, message_part: &str) {
    let (s, v, r) = post_raw(stack, path, body);
    assert_eq!(s, status, "{path} {body}: {}", text(&r));
    assert_eq!(r.header("Content-Type"), Some("application/json"), "{path}");
    let keys: Vec<&String> = v.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    assert_eq!(keys, ["error_message", "status"], "{path}: {v}");
    assert_eq!(v["status"], "error");
    assert!(v["error_message"].as_str().unwrap_or("").contains(message_part), "{path}: {v}");
}

#[test]
fn the_references_calls_work_and_a_requested_session_is_entered_once_and_destroyed() {
    let stack = common::stack();
    key(&stack, "demo", "demo", "admin", "admin");
    // get_images, with the body the reference shows.
    let (s, v, _) = post_raw(&stack, "/api/public/get_images", r#"{"api_key": "demo", "api_key_secret": "demo"}"#);
    assert_eq!(s, 200, "{v}");
    let image = &v["images"][0];
    let image_id = image["image_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(image_id.len(), 32, "{v}");
    assert_eq!((image["kvm_port"].as_u64(), image["enabled"].as_bool()), (Some(1), Some(true)), "{v}");
    assert!(image["hid"]["online"].is_boolean() && image["atx"]["enabled"].is_boolean(), "its state: {v}");
    assert!(image["video"].is_object(), "{v}");
    // update_image, the reference's full example.
    let body = format!(
        r#"{{"api_key": "demo", "api_key_secret": "demo", "target_image": {{"image_id": "{image_id}", "friendly_name": "Updated Name", "cores": 2, "memory": 2768000000}}}}"#
    );
    let (s, v, _) = post_raw(&stack, "/api/admin/update_image", &body);
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["image"]["friendly_name"], &v["image"]["cores"], &v["image"]["memory"]),
        (&json!("Updated Name"), &json!(2), &json!(2_768_000_000_u64)),
        "{v}"
    );
    let (_, v) = post(&stack, "/api/public/get_images", &demo(json!({})));
    assert_eq!(v["images"][0]["friendly_name"], "Updated Name", "kept: {v}");
    // ... and the stream's frame rate, through kvmd-streamer's params.
    let target = json!({"target_image": {"image_id": image_id, "desired_fps": 12}});
    let (s, v) = post(&stack, "/api/admin/update_image", &demo(target));
    assert_eq!(s, 200, "{v}");
    // kvmd-streamer applies params after a quiet second.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = post(&stack, "/api/public/get_images", &demo(json!({})));
        if v["images"][0]["video"]["desired_fps"] == 12 {
            break;
        }
        assert!(Instant::now() < deadline, "the fps never came: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A quality this streamer (a USB dongle's, as the golden machine's) cannot set: its 400.
    let target = json!({"target_image": {"image_id": image_id, "quality": 50, "friendly_name": "Not this"}});
    let (s, v) = post(&stack, "/api/admin/update_image", &demo(target));
    assert_eq!((s, v["error_message"].as_str()), (400, Some("This streamer does not support quality settings")), "{v}");
    let (_, v) = post(&stack, "/api/public/get_images", &demo(json!({})));
    assert_eq!(v["images"][0]["friendly_name"], "Updated Name", "nothing changed: {v}");
    // system_info: every service up.
    let (s, v) = post(&stack, "/api/admin/system_info", &demo(json!({})));
    assert_eq!(s, 200, "{v}");
    let info = &v["system_info"];
    assert_eq!((info["product"].as_str(), info["targets"].as_u64()), (Some("kvmd-rs"), Some(1)), "{v}");
    for svc in ["kvmd-auth", "kvmd-hid", "kvmd-streamer", "kvmd-gpio", "kvmd-msd", "kvmd-info"] {
        assert_eq!(info["services"][svc], "up", "{svc}: {v}");
    }
    // get_users on both prefixes.
    let (s, users) = post(&stack, "/api/admin/get_users", &demo(json!({})));
    assert_eq!(s, 200, "{users}");
    assert_eq!(post(&stack, "/api/public/get_users", &demo(json!({}))).1, users);
    let admin = users["users"].as_array().and_then(|u| u.iter().find(|u| u["username"] == "admin")).cloned();
    let admin = admin.unwrap_or_else(|| panic!("no admin in {users}"));
    let user_id = admin["user_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!((user_id.len(), admin["role"].as_str()), (32, Some("admin")), "{admin}");
    assert!(admin.get("password").is_none());
    let (s, v) = post(&stack, "/api/public/get_user", &demo(json!({"target_user": {"username": "admin"}})));
    assert_eq!((s, &v["user"]["user_id"]), (200, &json!(user_id)), "{v}");

    // request_kasm, the reference's body: a session for the user, "starting".
    let body =
        format!(r#"{{"api_key": "demo", "api_key_secret": "demo", "user_id": "{user_id}", "image_id": "{image_id}"}}"#);
    let (s, v, _) = post_raw(&stack, "/api/public/request_kasm", &body);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "starting", "{v}");
    let kasm_id = v["kasm_id"].as_str().unwrap_or_default().to_owned();
    let url = v["kasm_url"].as_str().unwrap_or_default().to_owned();
    assert!(kasm_id.len() == 32 && url.starts_with("/api/auth/link?token="), "{v}");
    let status = |stack: &Stack| post(stack, "/api/public/get_kasm_status", &demo(json!({"kasm_id": kasm_id})));
    assert_eq!(status(&stack).1["operational_status"], "starting");
    // The link logs a browser in, once.
    let r = common::get(&stack, &url, &[]);
    assert_eq!(r.status(), 200, "{}", text(&r));
    let token = r.token().unwrap_or_else(|| panic!("no cookie: {r:?}"));
    assert!(r.header("Set-Cookie").is_some_and(|c| c.contains("HttpOnly") && c.contains("SameSite=Strict")));
    assert_eq!(common::get(&stack, &url, &[]).status(), 403, "a second use");
    let cookie = format!("Cookie: auth_token={token}");
    assert_eq!(common::get(&stack, "/api/auth/check", &["-H", &cookie]).status(), 200);
    // A console connects: "running", listed with its address.
    let mut socket = ws::connect_with(&stack, &token, "0");
    ws::until(&mut socket, "{\"event_type\": \"hid\"");
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&stack).1["operational_status"] != "running" {
        assert!(Instant::now() < deadline, "never running: {}", status(&stack).1);
        std::thread::sleep(Duration::from_millis(50));
    }
    let (s, v) = post(&stack, "/api/public/get_kasms", &demo(json!({})));
    let listed = v["kasms"].as_array().and_then(|k| k.iter().find(|k| k["kasm_id"] == kasm_id.as_str())).cloned();
    let listed = listed.unwrap_or_else(|| panic!("not listed: {v}"));
    assert_eq!((s, &listed["user_id"], &listed["image_id"]), (200, &json!(user_id), &json!(image_id)), "{listed}");
    assert_eq!(listed["client_ip"], "127.0.0.1", "{listed}");
    // destroy_kasm: the cookie stops, the WebSocket closes; a second time it is unknown.
    socket.get_ref().set_read_timeout(Some(Duration::from_secs(1))).unwrap_or_else(|e| panic!("{e}"));
    let (s, v) = post(&stack, "/api/public/destroy_kasm", &demo(json!({"kasm_id": kasm_id, "user_id": user_id})));
    assert_eq!((s, v), (200, json!({})));
    let closed = loop {
        match socket.read() {
            Ok(tungstenite::Message::Close(f)) => break f.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(e) => panic!("no close frame within a second: {e}"),
        }
    };
    assert_eq!(closed, Some(1008));
    assert_eq!(common::get(&stack, "/api/auth/check", &["-H", &cookie]).status(), 403);
    let (s, v) = post(&stack, "/api/public/destroy_kasm", &demo(json!({"kasm_id": kasm_id})));
    assert_eq!((s, v["error_message"].as_str()), (404, Some("kasm not found")), "{v}");
}

#[test]
fn every_error_is_kasms_with_its_status() {
    let stack = common::stack();
    key(&stack, "demo", "demo", "admin", "admin");
    key(&stack, "pub", "pub-secret", "public", "admin");
    key(&stack, "view", "view-secret", "public", "viewer");
    let creds = r#""api_key": "demo", "api_key_secret": "demo""#;
    // Malformed bodies: 400; missing or wrong credentials: 401.
    for bad in ["", "not json", "[1, 2]", "\"x\"", "{\"api_key\": "] {
        assert_error(&stack, "/api/public/get_images", bad, 400, "JSON object");
    }
    for bad in [
        "{}".to_owned(),
        r#"{"api_key": "demo"}"#.to_owned(),
        r#"{"api_key": "demo", "api_key_secret": 5}"#.to_owned(),
        r#"{"api_key": "demo", "api_key_secret": "wrong"}"#.to_owned(),
        r#"{"api_key": "nosuch", "api_key_secret": "demo"}"#.to_owned(),
        r#"{"api_key": "de mo", "api_key_secret": "demo"}"#.to_owned(),
    ] {
        assert_error(&stack, "/api/public/get_images", &bad, 401, "Invalid API key or secret");
    }
    // A public key: no admin route, no users; a viewer's key: no sessions.
    let public = r#"{"api_key": "pub", "api_key_secret": "pub-secret"}"#;
    assert_error(&stack, "/api/admin/system_info", public, 403, "admin API key");
    assert_error(&stack, "/api/public/get_users", public, 403, "admin API key");
    assert_eq!(post_raw(&stack, "/api/public/get_kasms", public).0, 200, "an admin role with public scope");
    let viewer = r#"{"api_key": "view", "api_key_secret": "view-secret"}"#;
    assert_eq!(post_raw(&stack, "/api/public/get_images", viewer).0, 200);
    assert_error(&stack, "/api/public/get_kasms", viewer, 403, "viewer");
    // Wrong types, missing fields, unknown ids.
    for (path, fields, status, part) in [
        ("/api/public/request_kasm", r#""image_id": 5"#, 400, "image_id must be a string"),
        ("/api/public/request_kasm", r#""image_id": "nothex""#, 400, "32 hex"),
        ("/api/public/request_kasm", r#""image_id": "00000000000000000000000000000000""#, 400, "user_id"),
        (
            "/api/public/request_kasm",
            r#""image_id": "00000000000000000000000000000000", "user_id": "00000000000000000000000000000000""#,
            404,
            "image not found",
        ),
        ("/api/public/destroy_kasm", r#""kasm_id": "00000000000000000000000000000000""#, 404, "kasm not found"),
        ("/api/public/destroy_kasm", r#""kasm_id": []"#, 400, "kasm_id must be a string"),
        ("/api/public/get_kasm_status", "\"x\": 1", 400, "Missing field: kasm_id"),
        ("/api/admin/update_image", r#""target_image": "x""#, 400, "target_image must be an object"),
        (
            "/api/admin/update_image",
            r#""target_image": {"image_id": "00000000000000000000000000000000"}"#,
            404,
            "image not found",
        ),
        ("/api/admin/get_user", r#""target_user": {"username": "nobody"}"#, 404, "user not found"),
        ("/api/admin/get_user", r#""target_user": {}"#, 400, "user_id or username"),
        (
            "/api/public/exec_command_kasm",
            r#""kasm_id": "x""#,
            400,
            "exec_command_kasm is not supported by this device",
        ),
    ] {
        assert_error(&stack, path, &format!("{{{creds}, {fields}}}"), status, part);
    }
    // A range checked before anything changes.
    let (_, v) = post(&stack, "/api/public/get_images", &demo(json!({})));
    let image_id = v["images"][0]["image_id"].clone();
    let fields = format!(r#""target_image": {{"image_id": {image_id}, "desired_fps": 1000, "friendly_name": "X"}}"#);
    assert_error(&stack, "/api/admin/update_image", &format!("{{{creds}, {fields}}}"), 400, "desired_fps");
    let (_, v) = post(&stack, "/api/public/get_images", &demo(json!({})));
    assert_ne!(v["images"][0]["friendly_name"], "X", "nothing changed");
    // Other methods than POST: Kasm's 405, with Allow.
    let r = common::get(&stack, "/api/public/get_images", &[]);
    assert_eq!((r.status(), r.header("Allow")), (405, Some("POST")), "{}", text(&r));
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    assert_eq!(v["status"], "error", "{v}");
    // The secret never reaches a log.
    assert!(!stack.log_settled("kvmd-kasm").contains("pub-secret"));
    assert!(!stack.log("kvmd-auth").contains("pub-secret"));
}

#[test]
fn users_are_made_changed_locked_and_deleted_and_their_sessions_end_with_them() {
    let stack = common::stack();
    key(&stack, "demo", "demo", "admin", "admin");
    let login = |user: &str, pw: &str| {
        let r = common::get(&stack, "/api/auth/login", &["-X", "POST", "-d", &format!("user={user}&passwd={pw}")]);
        (r.status(), r.token())
    };
    let reset = |token: &str| {
        common::get(&stack, "/api/hid/reset", &["-X", "POST", "-H", &format!("Cookie: auth_token={token}")]).status()
    };
    let target = |fields: Value| demo(json!({ "target_user": fields }));
    // Made: an operator who logs in and controls.
    let body = target(json!({"username": "alice", "password": "Al1ce-pw", "role": "operator", "first_name": "Alice"}));
    let (s, v) = post(&stack, "/api/admin/create_user", &body);
    assert_eq!(s, 200, "{v}");
    let user = &v["user"];
    assert_eq!(
        (user["username"].as_str(), user["role"].as_str(), user["first_name"].as_str()),
        (Some("alice"), Some("operator"), Some("Alice")),
        "{v}"
    );
    assert!(user.get("password").is_none() && !v.to_string().contains("Al1ce-pw"), "{v}");
    assert_eq!(user["created"].as_str().map(|d| d.ends_with('Z')), Some(true), "{v}");
    let (s, token) = login("alice", "Al1ce-pw");
    let token = token.unwrap_or_else(|| panic!("alice cannot log in: {s}"));
    assert_eq!(reset(&token), 200);
    let (s, v) = post(&stack, "/api/admin/create_user", &body);
    assert_eq!((s, v["error_message"].as_str()), (400, Some("user alice exists")), "{v}");
    // A new role ends her sessions; as a viewer she no longer controls.
    let (s, v) = post(&stack, "/api/public/update_user", &target(json!({"username": "alice", "role": "viewer"})));
    assert_eq!((s, v["user"]["role"].as_str()), (200, Some("viewer")), "{v}");
    assert_eq!(reset(&token), 403, "the old session ended");
    let (_, token) = login("alice", "Al1ce-pw");
    assert_eq!(reset(&token.unwrap_or_default()), 403, "a viewer");
    // A new password: the old one is refused.
    let (s, _) = post(&stack, "/api/admin/update_user", &target(json!({"username": "alice", "password": "n3w-Al1ce"})));
    assert_eq!(s, 200);
    assert_eq!(login("alice", "Al1ce-pw").0, 403);
    assert_eq!(login("alice", "n3w-Al1ce").0, 200);
    // Locked: refused, and listed so.
    let (s, v) = post(&stack, "/api/admin/update_user", &target(json!({"username": "alice", "locked": true})));
    assert_eq!((s, &v["user"]["locked"]), (200, &json!(true)), "{v}");
    assert_eq!(login("alice", "n3w-Al1ce").0, 403);
    let (s, v) = post(&stack, "/api/admin/update_user", &target(json!({"username": "alice", "locked": false})));
    assert_eq!((s, &v["user"]["locked"]), (200, &json!(false)), "{v}");
    // The htpasswd file's users keep their passwords there.
    let (s, v) = post(&stack, "/api/admin/update_user", &target(json!({"username": "admin", "password": "x"})));
    assert_eq!(s, 400, "{v}");
    assert!(v["error_message"].as_str().unwrap_or("").contains("kvmd-htpasswd"), "{v}");
    assert_eq!(login("admin", "admin").0, 200);
    // Wrong types, unknown users.
    for (fields, status, part) in [
        (json!({"username": "alice", "role": "root"}), 400, "role must be"),
        (json!({"username": "alice", "locked": "yes"}), 400, "locked must be true or false"),
        (json!({"username": "nobody", "role": "viewer"}), 404, "user not found"),
    ] {
        let (s, v) = post(&stack, "/api/admin/update_user", &target(fields));
        assert_eq!(s, status, "{v}");
        assert!(v["error_message"].as_str().unwrap_or("").contains(part), "{v}");
    }
    let (s, v) = post(&stack, "/api/admin/create_user", &target(json!({"username": "b b", "password": "x"})));
    assert_eq!(s, 400, "a name the login would refuse: {v}");
    // Deleted: with a live session only by force; then gone.
    let (_, token) = login("alice", "n3w-Al1ce");
    let token = token.unwrap_or_default();
    let (s, v) = post(&stack, "/api/admin/delete_user", &target(json!({"username": "alice"})));
    assert_eq!(s, 400, "{v}");
    assert!(v["error_message"].as_str().unwrap_or("").contains("force"), "{v}");
    let (s, v) =
        post(&stack, "/api/admin/delete_user", &demo(json!({"target_user": {"username": "alice"}, "force": true})));
    assert_eq!((s, v), (200, json!({})));
    assert_eq!(common::get(&stack, "/api/auth/check", &["-H", &format!("Cookie: auth_token={token}")]).status(), 403);
    assert_eq!(login("alice", "n3w-Al1ce").0, 403);
    let (s, _) = post(&stack, "/api/admin/get_user", &target(json!({"username": "alice"})));
    assert_eq!(s, 404);
    // The native list shows no password or hash.
    let admin = format!("Cookie: auth_token={}", common::login(&stack, "admin", "admin"));
    let r = common::get(&stack, "/api/auth/users", &["-H", &admin]);
    assert_eq!(r.status(), 200, "{}", text(&r));
    assert!(!text(&r).contains("n3w-Al1ce") && !text(&r).contains("$2b$"), "no password or hash: {}", text(&r));
    assert!(!stack.log_settled("kvmd-auth").contains("n3w-Al1ce"), "no password in the log");
    assert!(stack.log_has("kvmd-auth", "event=\"user_created\""));
    assert!(stack.log_has("kvmd-auth", "event=\"user_deleted\""));
}

/// B.4.2's storage providers: the reference's `create_storage_provider` body as given, a
/// directory of the device as a provider, the list; refusals in Kasm's form; and an image
/// taken from a provider by PiKVM's `write_remote` (`provider=<id>&url=<file>`), which can
/// never leave it.
#[test]
fn storage_providers_are_made_listed_and_feed_write_remote() {
    let stack = common::stack();
    key(&stack, "demo", "demo", "admin", "admin");
    key(&stack, "pub", "pubsecret", "public", "operator");
    let body = r#"{"api_key": "demo", "api_key_secret": "demo", "target_storage_provider": {"storage_provider_type": "nextcloud", "enabled": true, "nextcloud_url": "https://nextcloud.example.com"}}"#;
    let (s, v, _) = post_raw(&stack, "/api/admin/create_storage_provider", body);
    assert_eq!(s, 200, "{v}");
    let cloud = &v["storage_provider"];
    assert_eq!(cloud["storage_provider_id"].as_str().map(str::len), Some(32), "{v}");
    assert_eq!(
        (&cloud["storage_provider_type"], &cloud["enabled"], &cloud["nextcloud_url"]),
        (&json!("nextcloud"), &json!(true), &json!("https://nextcloud.example.com/")),
        "{v}"
    );
    let isos = stack.root.join("isos");
    std::fs::create_dir_all(&isos).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(isos.join("tiny.img"), vec![7u8; 1 << 20]).unwrap_or_else(|e| panic!("{e}"));
    let target = json!({"target_storage_provider": {"storage_provider_type": "local", "name": "ISOs", "path": isos}});
    let (s, v) = post(&stack, "/api/admin/create_storage_provider", &demo(target));
    assert_eq!(s, 200, "{v}");
    let local_id = v["storage_provider"]["storage_provider_id"].as_str().unwrap_or_default().to_owned();
    let (s, v) = post(&stack, "/api/admin/get_storage_providers", &demo(json!({})));
    assert_eq!(s, 200, "{v}");
    let names: Vec<&Value> =
        v["storage_providers"].as_array().map(|a| a.iter().map(|p| &p["name"]).collect()).unwrap_or_default();
    assert_eq!(names, [&json!("https://nextcloud.example.com"), &json!("ISOs")], "{v}");

    let create = "/api/admin/create_storage_provider";
    let with = |t: Value| demo(json!({ "target_storage_provider": t })).to_string();
    assert_error(
        &stack,
        create,
        &with(json!({"storage_provider_type": "smb", "path": "//x/y"})),
        400,
        "Unsupported storage_provider_type",
    );
    assert_error(&stack, create, &with(json!({"storage_provider_type": "http"})), 400, "Missing field: url");
    assert_error(
        &stack,
        create,
        &with(json!({"storage_provider_type": "http", "url": "ftp://x"})),
        400,
        "HTTP|HTTPS URL",
    );
    let inside = stack.root.join("var/msd");
    assert_error(
        &stack,
        create,
        &with(json!({"storage_provider_type": "local", "path": inside})),
        400,
        "outside the image storage",
    );
    let public = with_key("pub", "pubsecret", json!({})).to_string();
    assert_error(&stack, "/api/admin/get_storage_providers", &public, 403, "admin API key");

    // PiKVM's write_remote takes the provider's file; nothing outside it.
    let admin = ["-X", "POST", "-H", "X-KVMD-User: admin", "-H", "X-KVMD-Passwd: admin"];
    let r = common::get(&stack, &format!("/api/msd/write_remote?provider={local_id}&url=tiny.img"), &admin);
    assert_eq!(r.status(), 200, "{}", text(&r));
    let last = text(&r).lines().last().unwrap_or_default().to_owned();
    let line: Value = serde_json::from_str(&last).unwrap_or_default();
    assert_eq!((&line["ok"], &line["result"]["image"]["written"]), (&json!(true), &json!(1 << 20)), "{last}");
    let r = common::get(&stack, "/api/msd", &admin[2..]);
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    let image = &v["result"]["storage"]["images"]["tiny.img"];
    assert_eq!((&image["complete"], &image["size"]), (&json!(true), &json!(1 << 20)), "{v}");
    for bad in ["../etc/passwd", "/etc/passwd", "missing.img"] {
        let r = common::get(&stack, &format!("/api/msd/write_remote?provider={local_id}&url={bad}"), &admin);
        assert_eq!(r.status(), 400, "{bad}: {}", text(&r));
    }
    let r = common::get(&stack, "/api/msd/write_remote?provider=0123&url=tiny.img", &admin);
    assert_eq!(r.status(), 400, "{}", text(&r));
}
