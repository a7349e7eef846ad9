//! The admin CLIs against a real file: kvmd's verbs, messages and file formats.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(bin: &str, cfg: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(cfg)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.as_bytes());
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cfg = dir.path().join("auth.toml");
    let text = format!(
        "htpasswd = {:?}\ntotp_secret = {:?}\nbcrypt_cost = 4\n",
        dir.path().join("htpasswd"),
        dir.path().join("totp.secret")
    );
    std::fs::write(&cfg, text).unwrap_or_else(|e| panic!("{e}"));
    (dir, cfg)
}

const HTPASSWD: &str = env!("CARGO_BIN_EXE_kvmd-htpasswd");
const TOTP: &str = env!("CARGO_BIN_EXE_kvmd-totp");

#[test]
fn htpasswd_verbs() {
    let (dir, cfg) = setup();
    let file = dir.path().join("htpasswd");
    assert!(run(HTPASSWD, &cfg, &["add", "admin", "-i"], "s3cret\n").status.success());
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let hash = text.trim().strip_prefix("admin:").unwrap_or_default().to_owned();
    assert!(hash.starts_with("$2b$"), "bcrypt by default: {text}");
    assert!(kvmd_auth::hash::verify(&hash, "s3cret"));
    let out = run(HTPASSWD, &cfg, &["add", "admin", "-i"], "x\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "Error: The user 'admin' is already exists\n");
    assert!(run(HTPASSWD, &cfg, &["add", "bob", "-i", "--ssha512"], "pw\n").status.success());
    assert_eq!(String::from_utf8_lossy(&run(HTPASSWD, &cfg, &["list"], "").stdout), "admin\nbob\n");
    assert!(run(HTPASSWD, &cfg, &["set", "bob", "-i", "-q"], "new\n").status.success());
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let bob = text.lines().find_map(|l| l.strip_prefix("bob:")).unwrap_or_default().to_owned();
    assert!(kvmd_auth::hash::verify(&bob, "new"));
    let out = run(HTPASSWD, &cfg, &["set", "carol", "-i"], "x\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "Error: The user 'carol' is not exist\n");
    assert!(run(HTPASSWD, &cfg, &["del", "bob", "-q"], "").status.success());
    assert_eq!(String::from_utf8_lossy(&run(HTPASSWD, &cfg, &["list"], "").stdout), "admin\n");
    let out = run(HTPASSWD, &cfg, &["add", "Bad!", "-i"], "x\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "Error: The argument 'Bad!' is not a valid username characters\n");
    let out = run(HTPASSWD, &cfg, &["add", "eve", "-i"], "pä\n");
    assert!(!out.status.success(), "non-ASCII passwords are refused as by kvmd");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
    assert_eq!(mode, 0o600);
}

#[test]
fn totp_verbs() {
    let (dir, cfg) = setup();
    let out = run(TOTP, &cfg, &["show"], "");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "Error: TOTP is not configured\n");
    let out = run(TOTP, &cfg, &["init", "-n", "kvm"], "");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let secret = std::fs::read_to_string(dir.path().join("totp.secret")).unwrap_or_default();
    assert_eq!(secret.len(), 32);
    assert!(
        stdout.starts_with(&format!("Secret: {secret}\nURI: otpauth://totp/PiKVM:kvm?secret={secret}&issuer=PiKVM\n"))
    );
    assert!(stdout.contains('█') || stdout.contains('▀'), "a QR code follows");
    assert!(!run(TOTP, &cfg, &["init"], "").status.success(), "refuses to replace without --force");
    assert!(run(TOTP, &cfg, &["init", "--force"], "").status.success());
    let out = run(TOTP, &cfg, &["del"], "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "TOTP is disabled now\n");
    assert_eq!(std::fs::read_to_string(dir.path().join("totp.secret")).unwrap_or_default(), "");
    let out = Command::new(TOTP).arg("--config").arg(&cfg).args(["--set", "totp_secret=", "show"]).output();
    let out = out.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "Error: TOTP file path is empty (i.e. it was disabled)\n");
}
