//! API keys through the front (issue #18): made with `kvmd-apikey`, shown once, accepted as
//! `Authorization: Bearer <id>:<secret>` on kvmd's routes with the key's role, refused when
//! wrong, expired, from another network or revoked (at once), and locked out when guessed.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common;

fn apikey(stack: &kvmd_testkit::Stack, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(kvmd_testkit::bin_dir().join("kvmd-apikey"))
        .arg("--config")
        .arg(stack.root.join("etc/auth.toml"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("kvmd-apikey: {e}"));
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn status(stack: &kvmd_testkit::Stack, method: &str, path: &str, bearer: &str) -> u16 {
    let auth = format!("Authorization: Bearer {bearer}");
    common::get(stack, path, &["-X", method, "-H", &auth]).status()
}

#[test]
fn a_key_works_with_its_role_until_revoked() {
    let stack = common::stack();
    let (ok, out) = apikey(&stack, &["add", "--role", "viewer", "--name", "dashboard"], "");
    assert!(ok, "{out}");
    let id = out.lines().find_map(|l| l.strip_prefix("api_key: ")).unwrap_or_default().to_owned();
    let secret = out.lines().find_map(|l| l.strip_prefix("api_key_secret: ")).unwrap_or_default().to_owned();
    assert_eq!((id.len(), secret.len()), (12, 43), "{out}");
    let bearer = format!("{id}:{secret}");
    // A viewer's key reads, and is refused control with kvmd's 403.
    assert_eq!(status(&stack, "GET", "/api/info", &bearer), 200);
    let r = common::get(&stack, "/api/hid/reset", &["-X", "POST", "-H", &format!("Authorization: Bearer {bearer}")]);
    assert_eq!(r.status(), 403);
    assert!(common::text(&r).contains("\"ForbiddenError\""), "{}", common::text(&r));
    // The list never shows a secret.
    let (ok, list) = apikey(&stack, &["list"], "");
    assert!(ok && list.contains(&id) && list.contains("dashboard") && !list.contains(&secret), "{list}");
    // A wrong secret, and an unknown id, are refused.
    assert_eq!(status(&stack, "GET", "/api/info", &format!("{id}:{secret}x")), 403);
    assert_eq!(status(&stack, "GET", "/api/info", &format!("nosuch:{secret}")), 403);
    // Revoked: refused from the next request.
    let (ok, out) = apikey(&stack, &["revoke", &id], "");
    assert!(ok, "{out}");
    assert_eq!(status(&stack, "GET", "/api/info", &bearer), 403);
    let (ok, out) = apikey(&stack, &["revoke", &id], "");
    assert!(!ok && out.contains("no key"), "{out}");
    // The audit log: made, used, refused, revoked; never the secret.
    for event in ["key_created", "key_used", "key_refused", "key_revoked"] {
        let line = format!("event=\"{event}\" key=\"{id}\"");
        assert!(stack.log_has("kvmd-auth", &line), "no {line}: {}", stack.log("kvmd-auth"));
    }
    assert!(!stack.log_settled("kvmd-auth").contains(&secret), "the secret in the log");
}

#[test]
fn an_operators_key_controls_and_expired_or_foreign_keys_are_refused() {
    let stack = common::stack();
    let add = |args: &[&str]| {
        let (ok, out) = apikey(&stack, args, "s3cret-value\n");
        assert!(ok, "{out}");
    };
    add(&["add", "--id", "op", "--role", "operator", "--secret-stdin"]);
    add(&["add", "--id", "old", "--role", "admin", "--expires-days", "0", "--secret-stdin"]);
    add(&["add", "--id", "far", "--role", "admin", "--network", "192.0.2.0/24", "--secret-stdin"]);
    add(&["add", "--id", "near", "--role", "admin", "--network", "127.0.0.0/8", "--secret-stdin"]);
    assert_eq!(status(&stack, "POST", "/api/hid/reset", "op:s3cret-value"), 200);
    assert_eq!(status(&stack, "GET", "/api/info", "old:s3cret-value"), 403);
    assert_eq!(status(&stack, "GET", "/api/info", "far:s3cret-value"), 403);
    assert_eq!(status(&stack, "GET", "/api/info", "near:s3cret-value"), 200);
    // An id made twice, and bad arguments, are the CLI's errors.
    let (ok, out) = apikey(&stack, &["add", "--id", "op", "--secret-stdin"], "x\n");
    assert!(!ok && out.contains("exists"), "{out}");
    let (ok, out) = apikey(&stack, &["add", "--role", "root"], "");
    assert!(!ok && out.contains("role"), "{out}");
    let (ok, out) = apikey(&stack, &["add", "--network", "10.0.0.0/33"], "");
    assert!(!ok && out.contains("network"), "{out}");
    // A bearer of another form is ignored, as kvmd ignores every bearer: 401.
    assert_eq!(status(&stack, "GET", "/api/info", "just-a-token"), 401);
}

#[test]
fn guessing_a_keys_secret_is_locked_out() {
    let stack = kvmd_testkit::Stack::start(kvmd_testkit::StackOptions {
        auth_set: vec!["lockout.failures=3".into()],
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
    let (ok, out) = apikey(&stack, &["add", "--id", "k", "--role", "viewer", "--secret-stdin"], "right\n");
    assert!(ok, "{out}");
    for _ in 0..3 {
        assert_eq!(status(&stack, "GET", "/api/info", "k:wrong"), 403);
    }
    // Locked: the right secret is refused too, for the lockout's time.
    assert_eq!(status(&stack, "GET", "/api/info", "k:right"), 403);
    assert!(stack.log_has("kvmd-auth", "locked out"), "{}", stack.log("kvmd-auth"));
}
