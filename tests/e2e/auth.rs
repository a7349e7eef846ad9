//! kvmd-auth beyond the goldens: restarts, file changes, bcrypt, the lockout, broken files.

use std::time::Duration;

use kvmd_testkit::{Stack, StackOptions, curl};

use crate::common::{self, get, login, text};

fn check_xhdr(stack: &Stack, user: &str, passwd: &str) -> u16 {
    get(stack, "/api/auth/check", &["-H", &format!("X-KVMD-User: {user}"), "-H", &format!("X-KVMD-Passwd: {passwd}")])
        .status()
}

fn check_cookie(stack: &Stack, token: &str) -> u16 {
    get(stack, "/api/auth/check", &["-H", &format!("Cookie: auth_token={token}")]).status()
}

#[test]
fn sessions_survive_a_restart_and_logout_ends_them_all() {
    let mut stack = common::stack();
    let a = login(&stack, "admin", "admin");
    let b = login(&stack, "admin", "admin");
    stack.stop_service("kvmd-auth");
    stack.start_auth(&[]).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(check_cookie(&stack, &a), 200, "a session survives a restart");
    let r = get(&stack, "/api/auth/logout", &["-X", "POST", "-H", &format!("Cookie: auth_token={a}")]);
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("Set-Cookie"), None, "kvmd does not clear the cookie");
    assert_eq!(check_cookie(&stack, &a), 403);
    assert_eq!(check_cookie(&stack, &b), 403, "logout ends every session of the user");
    // Deleting a user refuses their sessions at once.
    let c = login(&stack, "admin", "admin");
    assert_eq!(check_cookie(&stack, &c), 200);
    kvmd_auth::htpasswd::write_atomic(&stack.htpasswd(), b"# nobody\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check_cookie(&stack, &c), 403);
    let line = format!("admin:{}\n", kvmd_auth::hash::make_ssha512("admin"));
    kvmd_auth::htpasswd::write_atomic(&stack.htpasswd(), line.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    // Logout without the cookie: kvmd's 400.
    let r = get(&stack, "/api/auth/logout", &["-X", "POST", "-u", "admin:admin"]);
    assert_eq!((r.status(), text(&r).contains("The argument is not a valid auth token")), (400, true));
}

#[test]
fn bcrypt_users_and_file_changes_apply_without_restart() {
    let opts = StackOptions {
        htpasswd: vec![format!("bc:{}", kvmd_auth::hash::make_bcrypt("secret", 10).unwrap_or_default())],
        ..StackOptions::default()
    };
    let stack = Stack::start(opts).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(check_xhdr(&stack, "bc", "secret"), 200);
    assert_eq!(check_xhdr(&stack, "bc", "secret"), 200, "cached");
    assert_eq!(get(&stack, "/api/auth/check", &["-u", "bc:secret"]).status(), 200);
    assert_eq!(check_xhdr(&stack, "bc", "wrong"), 403);
    // A password change takes effect at once, and the cache does not keep the old one.
    let line = format!("bc:{}\n", kvmd_auth::hash::make_ssha512("changed"));
    kvmd_auth::htpasswd::write_atomic(&stack.htpasswd(), line.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check_xhdr(&stack, "bc", "secret"), 403);
    assert_eq!(check_xhdr(&stack, "bc", "changed"), 200);
    // A corrupt file keeps the last good users: never a 500.
    std::fs::write(stack.htpasswd(), "bc:x:y\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check_xhdr(&stack, "bc", "changed"), 200);
    assert!(stack.log_has("kvmd-auth", "invalid htpasswd file"), "{}", stack.log("kvmd-auth"));
}

#[test]
fn repeated_failures_lock_out_the_pair_only() {
    let stack = common::stack();
    for _ in 0..10 {
        assert_eq!(check_xhdr(&stack, "admin", "guess"), 403);
    }
    assert_eq!(check_xhdr(&stack, "admin", "admin"), 403, "locked: even the right password fails");
    let r = get(&stack, "/api/auth/login", &["-X", "POST", "-d", "user=admin&passwd=admin"]);
    assert_eq!(r.status(), 403);
    assert!(stack.log_has("kvmd-auth", "locked out"), "{}", stack.log("kvmd-auth"));
    // Another client address (kvmd-auth's own socket) is not locked.
    let raw = curl(&[
        "-i".into(),
        "--unix-socket".into(),
        stack.auth_socket().display().to_string(),
        "-u".into(),
        "admin:admin".into(),
        "http://localhost/auth/check".into(),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&raw));
}

#[test]
fn no_users_and_broken_totp_refuse_without_500() {
    let opts = StackOptions { htpasswd: vec![], ..StackOptions::default() };
    let stack = Stack::start(opts).unwrap_or_else(|e| panic!("{e:#}"));
    let r = get(&stack, "/api/auth/login", &["-X", "POST", "-d", "user=admin&passwd=admin"]);
    assert_eq!(r.status(), 403);
    assert!(stack.log_has("kvmd-auth", "kvmd-htpasswd add admin"), "{}", stack.log("kvmd-auth"));
    // As the install tells: the admin made with kvmd-htpasswd logs in at once.
    let mut child = std::process::Command::new(kvmd_testkit::bin_dir().join("kvmd-htpasswd"))
        .arg("--config")
        .arg(stack.root.join("etc/auth.toml"))
        .args(["add", "-i", "admin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("kvmd-htpasswd: {e}"));
    if let Some(mut i) = child.stdin.take() {
        use std::io::Write;
        let _ = writeln!(i, "admin");
    }
    assert!(child.wait().is_ok_and(|s| s.success()));
    let r = get(&stack, "/api/auth/login", &["-X", "POST", "-d", "user=admin&passwd=admin"]);
    assert_eq!(r.status(), 200, "{}\n{}", text(&r), stack.log("kvmd-auth"));
    // A configured TOTP secret that is gone: every password is refused (kvmd: 500).
    let stack = common::stack();
    std::fs::remove_file(stack.totp_secret()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check_xhdr(&stack, "admin", "admin"), 403);
    std::fs::write(stack.totp_secret(), "not base32 at all!").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check_xhdr(&stack, "admin", "admin"), 403);
    std::fs::write(stack.totp_secret(), "").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check_xhdr(&stack, "admin", "admin"), 200);
}

#[test]
fn login_with_redirect_and_expiry() {
    let stack = common::stack();
    let r = get(&stack, "/api/auth/login", &["-X", "POST", "-d", "user=admin&passwd=admin&redirect=/KVM"]);
    assert_eq!((r.status(), r.header("Location")), (302, Some("/kvm")));
    // A session with a lifetime expires (2 s, whole seconds; the check waits for it, bounded).
    let r = get(&stack, "/api/auth/login", &["-X", "POST", "-d", "user=admin&passwd=admin&expire=2"]);
    let token = r.token().unwrap_or_default();
    assert_eq!(check_cookie(&stack, &token), 200);
    let mut status = 200;
    for _ in 0..60 {
        std::thread::sleep(Duration::from_millis(100));
        status = check_cookie(&stack, &token);
        if status == 403 {
            break;
        }
    }
    assert_eq!(status, 403, "an expired session is refused");
}

#[test]
fn login_accepts_multipart_forms_and_ignores_other_bodies() {
    let stack = common::stack();
    let r = get(&stack, "/api/auth/login", &["-F", "user=admin", "-F", "passwd=admin"]);
    assert_eq!(r.status(), 200, "{}", text(&r));
    assert!(r.token().is_some());
    // JSON is not a form: no fields, so an empty user (auth_login_no_fields.http).
    let r = get(
        &stack,
        "/api/auth/login",
        &["-H", "Content-Type: application/json", "-d", r#"{"user":"admin","passwd":"admin"}"#],
    );
    assert_eq!(r.status(), 400);
    assert!(text(&r).contains("The argument '' is not a valid username characters"));
}
