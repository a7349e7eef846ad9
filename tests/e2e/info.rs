//! `/api/info` beyond the goldens: broken files answer `null` for their part and the service
//! keeps working; `meta.yaml` is re-read when it changes; the state feed for `/api/ws`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::{self, get, login, text};

fn info(stack: &kvmd_testkit::Stack, cookie: &str, q: &str) -> serde_json::Value {
    let r = get(stack, &format!("/api/info{q}"), &["-H", cookie]);
    assert_eq!(r.status(), 200, "{}", text(&r));
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", text(&r)))
}

#[test]
fn broken_files_give_null_parts_and_changes_are_picked_up() {
    let stack = common::stack();
    let cookie = format!("Cookie: auth_token={}", login(&stack, "admin", "admin"));
    let meta = stack.root.join("fake/etc/kvmd/meta.yaml");
    assert_eq!(
        info(&stack, &cookie, "?fields=meta")["result"]["meta"]["server"]["host"],
        serde_json::json!(hostname())
    );
    std::fs::write(&meta, "server: [unclosed\n").unwrap_or_else(|e| panic!("{e}"));
    let v = info(&stack, &cookie, "?fields=meta,auth");
    assert_eq!(v["result"]["meta"], serde_json::Value::Null, "kvmd answers null for a corrupt meta.yaml");
    assert_eq!(v["result"]["auth"]["enabled"], serde_json::json!(true));
    std::fs::write(&meta, "server:\n  host: kvm.example\ntips:\n  left: hi\n").unwrap_or_else(|e| panic!("{e}"));
    let v = info(&stack, &cookie, "?fields=meta");
    assert_eq!(v["result"]["meta"], serde_json::json!({"server": {"host": "kvm.example"}, "tips": {"left": "hi"}}));
    // A broken extras manifest: extras is null, the rest stays.
    let manifest = stack.root.join("fake/usr/share/kvmd/extras/vnc/manifest.yaml");
    std::fs::write(&manifest, "- not: [a mapping\n").unwrap_or_else(|e| panic!("{e}"));
    let mut stack = stack;
    stack.stop_service("kvmd-info"); // the extras cache lives 10 s: start afresh
    stack.start_info(&[]).unwrap_or_else(|e| panic!("{e:#}"));
    let v = info(&stack, &cookie, "?legacy=0");
    assert_eq!(v["result"]["extras"], serde_json::Value::Null);
    assert_eq!(v["result"]["uptime"]["total"], serde_json::json!(65425));
    assert!(v["result"]["health"]["temp"]["cpu"].is_f64());
}

fn hostname() -> String {
    String::from_utf8_lossy(&Command::new("hostname").output().map(|o| o.stdout).unwrap_or_default()).trim().to_owned()
}

#[test]
fn field_errors_are_kvmds() {
    let stack = common::stack();
    let cookie = common::cookie(&stack);
    common::expect_400(
        &stack,
        &cookie,
        "GET",
        &[
            ("/api/info?fields=hw&legacy=0", "Failed sub-validator on one of the item of ['hw']"),
            ("/api/info?fields=meta,nosuch", "Failed sub-validator on one of the item of ['meta', 'nosuch']"),
            (
                "/api/info?legacy=perhaps",
                "The argument 'perhaps' is not a valid bool (['1', 'true', 'yes'] or ['0', 'false', 'no'])",
            ),
        ],
    );
    // `fields=` empty in legacy mode: everything allowed, hw included, no top-level health.
    let v = info(&stack, &cookie, "?fields=");
    let keys: Vec<&str> = v["result"].as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    assert_eq!(keys, ["auth", "extras", "fan", "hw", "meta", "node", "system", "uptime"]);
    assert!(v["result"]["system"].get("platform").is_none());
}

#[test]
fn the_state_feed_sends_every_category_in_kvmds_order() {
    let stack = common::stack();
    let mut child = Command::new("curl")
        .args(["-sS", "-N", "--unix-socket"])
        .arg(stack.info_socket())
        .arg("http://localhost/info/feed")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let out = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let lines: Vec<String> = BufReader::new(out).lines().take(8).map_while(Result::ok).collect();
    let _ = child.kill();
    let _ = child.wait();
    let names: Vec<String> =
        lines.iter().map(|l| l.trim_start_matches("{\"").split('"').next().unwrap_or_default().to_owned()).collect();
    assert_eq!(names, ["auth", "fan", "node", "meta", "extras", "uptime", "health", "system"]);
    // Compact JSON in kvmd's insertion order (ws.md: the info events).
    assert_eq!(lines[0], r#"{"auth": {"enabled": true}}"#);
    assert_eq!(lines[1], r#"{"fan": {"monitored": false, "state": null}}"#);
    assert_eq!(
        lines[5],
        r#"{"uptime": {"total": 65425, "parts": {"days": 0, "hours": 18, "minutes": 10, "seconds": 25}}}"#
    );
    // tests/golden/kvmd-4.197/ws/ws_stream0.txt: the extras message, byte for byte.
    assert_eq!(
        lines[4],
        r#"{"extras": {"vnc": {"name": "VNC", "description": "Show VNC information", "icon": "share/svg/vnc.svg", "path": "vnc", "daemon": "kvmd-vnc", "port": 5900, "place": 20, "enabled": false, "started": false}, "ipmi": {"name": "IPMI", "description": "Show IPMI information", "icon": "share/svg/ipmi.svg", "path": "ipmi", "daemon": "kvmd-ipmi", "port": 623, "place": 21, "enabled": false, "started": false}}}"#
    );
    assert!(lines[7].contains(r#""platform": {"type": "rpi", "base": "Virtual Raspberry Pi", "serial": "0000000000000000", "model": "v2", "video": "hdmiusb", "board": "rpi4"}"#), "{}", lines[7]);
}

#[test]
fn prometheus_adds_the_suites_own_metrics_after_kvmds() {
    let stack = common::stack();
    for _ in 0..3 {
        assert_eq!(get(&stack, "/api/auth/check", &["-u", "admin:admin"]).status(), 200);
    }
    let r = get(&stack, "/api/export/prometheus/metrics", &["-u", "admin:admin"]);
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    let body = text(&r);
    // kvmd-gpio's ATX (enabled on the stack's virtual chip, the power LED off).
    assert!(
        body.starts_with(
            "# TYPE pikvm_atx_enabled gauge\npikvm_atx_enabled 1\n\n# TYPE pikvm_atx_power gauge\npikvm_atx_power 0\n"
        ),
        "{body}"
    );
    let kvmd_end = body.find("# TYPE kvmd_rs_up gauge").unwrap_or(0);
    assert!(kvmd_end > 0 && body[..kvmd_end].ends_with("pikvm_fan_monitored 0\n\n"), "{body}");
    for line in [
        "kvmd_rs_up{service=\"kvmd-auth\"} 1",
        "kvmd_rs_up{service=\"kvmd-info\"} 1",
        "kvmd_rs_up{service=\"kvmd-gpio\"} 1",
        "kvmd_rs_http_requests_total{service=\"kvmd-auth\",route=\"/auth/check\",status=\"200\"} 3",
        "# TYPE kvmd_rs_http_request_duration_seconds summary",
    ] {
        assert!(body.lines().any(|l| l == line), "missing {line:?} in\n{body}");
    }
    let rss =
        body.lines().find_map(|l| l.strip_prefix("kvmd_rs_process_resident_memory_bytes{service=\"kvmd-auth\"} "));
    assert!(rss.and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v > 1_000_000), "{body}");
    assert_eq!(get(&stack, "/api/export/prometheus/metrics", &[]).status(), 401);
}
