//! Replays every auth, TOTP and routing capture of kvmd 4.197 against the front and
//! against kvmd-auth's socket, and compares the responses byte for byte after masking
//! (`kvmd_testkit::golden`). The captures ran in index order against one kvmd, with state
//! carried over; so does the replay.

use kvmd_auth::totp;
use kvmd_testkit::golden::{self, Response, Row};
use kvmd_testkit::{Stack, curl};

use crate::common;

const GOLDEN_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// The capture rows whose feature exists in this build.
fn replayed(row: &Row) -> bool {
    const FEATURES: &[&str] = &[
        "auth_",
        "totp_",
        "unknown_path",
        "usc_root_",
        "info",
        "wrong_method_",
        "trailing_slash_info",
        "double_slash_info",
        "prometheus",
        "log_bad_seek",
        "hid",
        "ws_",
        "streamer",
        "redfish",
    ];
    FEATURES.iter().any(|p| row.name.starts_with(p))
}

/// Values the golden README calls volatile, plus the two this suite reports differently by
/// design: its own version and its own streamer (`system.kvmd`, `system.streamer`).
const INFO_MASKS: &[&[&str]] = &[
    &["result", "hw", "health", "cpu", "percent"],
    &["result", "hw", "health", "mem", "available"],
    &["result", "hw", "health", "mem", "percent"],
    &["result", "hw", "health", "mem", "total"],
    &["result", "health", "cpu", "percent"],
    &["result", "health", "mem", "available"],
    &["result", "health", "mem", "percent"],
    &["result", "health", "mem", "total"],
    &["result", "meta", "server", "host"],
    &["result", "node", "host"],
    &["result", "system", "kernel"],
    &["result", "system", "kvmd", "version"],
    &["result", "system", "streamer"],
];

fn compare(kind: &str, row: &Row, expected: &Response, got: &Response) -> Result<(), String> {
    let name = format!("{kind}/{}", row.name);
    let json = expected.header("Content-Type").is_some_and(|c| c.starts_with("application/json"));
    if row.name.starts_with("prometheus") && expected.status() == 200 {
        // kvmd's metrics come first, exactly; the suite's own `kvmd_rs_*` follow them.
        let text = String::from_utf8_lossy(&got.body).into_owned();
        let Some(at) = text.find("\n# TYPE kvmd_rs_") else { return Err(format!("{name}: no kvmd_rs_ metrics")) };
        let kvmd_part = Response { body: text.as_bytes()[..at].to_vec(), ..got.clone() };
        let kvmd_part = Response {
            headers: kvmd_part
                .headers
                .iter()
                .map(|(k, v)| {
                    if k.eq_ignore_ascii_case("content-length") {
                        (k.clone(), at.to_string())
                    } else {
                        (k.clone(), v.clone())
                    }
                })
                .collect(),
            ..kvmd_part
        };
        golden::compare_masked_lines(&name, expected, &kvmd_part, &["pikvm_hw_cpu_percent", "pikvm_hw_mem_"])
    } else if (row.name.starts_with("info") || row.name.starts_with("double_slash")) && json && expected.status() == 200
    {
        golden::compare_json(&name, expected, got, INFO_MASKS)
    } else if row.name == "ws_handshake_raw" {
        compare_ws(&name, expected, got)
    } else if kind == "direct"
        && expected.status() >= 400
        && (row.options.contains("--data-binary") || row.options.contains("Upgrade"))
    {
        // Known difference, direct only: after refusing a request whose body (or upgrade
        // stream) it did not read, actix closes the connection and says so; aiohttp drains
        // and keeps it. Through nginx both are identical.
        let mut g = got.clone();
        g.headers.retain(|(k, v)| !(k.eq_ignore_ascii_case("connection") && v == "close"));
        golden::compare(&name, expected, &g)
    } else if row.name.starts_with("streamer_snapshot") && expected.status() == 200 {
        golden::compare_image(&name, expected, got)
    } else if row.name == "hid_inactivity" {
        golden::compare_json(&name, expected, got, &[&["result", "inactivity"]])
    } else {
        golden::compare(&name, expected, got)
    }
}

struct Replay<'a> {
    stack: &'a Stack,
    token: String,
    logged_out: Option<String>,
    failures: Vec<String>,
    count: usize,
    /// A stream client (what a `/ws?stream=1` session is to kvmd-streamer), held from
    /// `streamer_running` on, as the golden run had one.
    viewer: Option<std::os::unix::net::UnixStream>,
}

impl Replay<'_> {
    fn args(&mut self, row: &Row, kind: &str) -> Vec<String> {
        let stack = self.stack;
        let secret = totp::parse_secret(GOLDEN_SECRET).ok().flatten().unwrap_or_else(|| panic!("secret"));
        let opts = golden::options(
            row,
            &mut golden::Placeholders {
                token: &self.token,
                fresh_login: &mut || common::login(stack, "admin", "admin"),
                logged_out: &mut self.logged_out,
                totp_code: Some(totp::code_at(&secret, kvmd_auth::sessions::unix_now())),
            },
        );
        let mut args = vec!["-i".to_owned(), "--http1.1".to_owned(), "-X".to_owned(), row.method.clone()];
        if kind == "nginx" {
            args.push(self.stack.url(&row.path));
        } else {
            let path = row.path.strip_prefix("/api").unwrap_or(&row.path);
            args.push("--unix-socket".into());
            args.push(self.stack.socket_for(path).display().to_string());
            args.push(format!("http://localhost{path}"));
        }
        args.extend(opts);
        args
    }

    /// What the golden says kvmd wrote to each HID device while serving `kind/row`.
    fn expected_reports(kind: &str, row: &Row) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for dev in ["keyboard", "mouse", "mouse-alt"] {
            let rel = format!("{kind}/{}.hid-{dev}.txt", row.name);
            let text = std::fs::read_to_string(golden::dir().join(&rel)).unwrap_or_default();
            let hex: String = text.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
            out.push((dev, hex));
        }
        out
    }

    /// Compares the bytes the HID devices received during one request with the golden's
    /// report log. Events are queued before the answer, so wait (bounded) for them.
    fn check_reports(&mut self, kind: &str, row: &Row, before: &[Vec<u8>]) {
        let expected = Self::expected_reports(kind, row);
        let written = |i: usize, dev: &str| -> String {
            let now = self.stack.hid_written(dev);
            now[before[i].len().min(now.len())..].iter().map(|b| format!("{b:02x}")).collect()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            let got: Vec<String> = expected.iter().enumerate().map(|(i, (d, _))| written(i, d)).collect();
            let done = expected.iter().zip(&got).all(|((_, e), g)| g.len() >= e.len());
            if done || std::time::Instant::now() > deadline {
                // Nothing expected: give a stray report a moment to show up.
                if expected.iter().all(|(_, e)| e.is_empty()) {
                    std::thread::sleep(std::time::Duration::from_millis(150));
                }
                let got: Vec<String> = expected.iter().enumerate().map(|(i, (d, _))| written(i, d)).collect();
                for ((dev, e), g) in expected.iter().zip(got) {
                    if *e != g {
                        self.failures.push(format!("{kind}/{} on {dev}: expected reports {e:?}, got {g:?}", row.name));
                    }
                }
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    fn run(&mut self, row: &Row) {
        if row.name == "streamer_running" {
            self.viewer = Some(common::stream_viewer(self.stack));
        }
        let totp_on = row.name.starts_with("totp_");
        std::fs::write(self.stack.totp_secret(), if totp_on { GOLDEN_SECRET } else { "" })
            .unwrap_or_else(|e| panic!("{e}"));
        for kind in ["nginx", "direct"] {
            if !golden::exists(format!("{kind}/{}.http", row.name)) {
                continue;
            }
            let expected = golden::load(kind, &row.name).unwrap_or_else(|e| panic!("{e}"));
            let args = self.args(row, kind);
            // The direct captures came from a uid kvmd does not trust (like nginx's workers),
            // except `usc_root_*`, which came from root.
            let unprivileged = kind == "direct" && !row.name.starts_with("usc_root_");
            let before: Vec<Vec<u8>> =
                ["keyboard", "mouse", "mouse-alt"].iter().map(|d| self.stack.hid_written(d)).collect();
            let got = if unprivileged { kvmd_testkit::curl_unprivileged(&args) } else { curl(&args) };
            if row.name.starts_with("hid") {
                self.check_reports(kind, row, &before);
            }
            let got = got.and_then(|raw| Response::parse(&raw));
            self.count += 1;
            match got {
                Ok(got) => {
                    if let Err(report) = compare(kind, row, &expected, &got) {
                        self.failures.push(report);
                    }
                }
                Err(e) => self.failures.push(format!("{kind}/{}: {e}", row.name)),
            }
        }
    }
}

/// The `info` values that move (as in [`INFO_MASKS`]), in a WebSocket frame.
fn mask_ws_frame(text: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(text) else { return text.to_owned() };
    let masked = serde_json::Value::String("<masked>".into());
    let ev = v.get("event_type").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
    let e = &mut v["event"];
    if ev == "info" {
        for path in [
            &["health"][..],
            &["node", "host"],
            &["meta", "server", "host"],
            &["system", "kernel"],
            &["system", "kvmd"],
            &["system", "streamer"],
        ] {
            let mut cur = Some(&mut *e);
            for k in path {
                cur = cur.and_then(|c| c.get_mut(*k));
            }
            if let Some(c) = cur {
                *c = masked.clone();
            }
        }
    }
    kvmd_core::json::to_compact_string(&v)
}

/// A WebSocket handshake capture: the 101 exactly (the fixed key gives a fixed accept),
/// `loop` first, then the same set of frames in any order (kvmd's subsystems answer
/// concurrently; golden README).
fn compare_ws(name: &str, expected: &Response, got: &Response) -> Result<(), String> {
    let head = |r: &Response| Response { body: Vec::new(), ..r.clone() };
    golden::compare(name, &head(expected), &head(got))?;
    let texts = |r: &Response| -> Vec<String> {
        golden::ws_frames(&r.body)
            .into_iter()
            .map(|(op, p)| format!("{op} {}", mask_ws_frame(&String::from_utf8_lossy(&p))))
            .collect()
    };
    let (e, g) = (texts(expected), texts(got));
    let first_ok = e.first() == g.first();
    let (mut es, mut gs) = (e.clone(), g.clone());
    es.sort();
    gs.sort();
    if first_ok && es == gs {
        return Ok(());
    }
    Err(format!("{name}: WebSocket frames differ\n--- expected\n{}\n--- got\n{}\n---", e.join("\n"), g.join("\n")))
}

#[test]
fn auth_info_hid_streamer_and_routing_goldens_replay_identically() {
    // The captures' machine had ATX disabled (its `atx` events and gauges say so).
    let opts = kvmd_testkit::StackOptions {
        gpio_set: vec!["atx.type=\"disabled\"".into()],
        msd_set: vec!["msd.type=\"disabled\"".into()],
        ..Default::default()
    };
    let stack = kvmd_testkit::Stack::start(opts).unwrap_or_else(|e| panic!("cannot start the stack: {e:#}"));
    let token = common::login(&stack, "admin", "admin");
    let mut replay = Replay { stack: &stack, token, logged_out: None, failures: Vec::new(), count: 0, viewer: None };
    let rows: Vec<Row> = golden::index().unwrap_or_else(|e| panic!("{e}")).into_iter().filter(replayed).collect();
    assert!(rows.len() >= 83, "expected every auth, TOTP, info, HID, streamer and routing row, got {}", rows.len());
    for row in &rows {
        replay.run(row);
    }
    assert!(replay.count >= 164, "replayed only {} captures", replay.count);
    assert!(
        replay.failures.is_empty(),
        "{} of {} captures differ:\n{}",
        replay.failures.len(),
        replay.count,
        replay.failures.join("\n")
    );
}

#[test]
fn front_only_goldens_replay_identically() {
    let stack = common::stack();
    // web_root_no_auth: GET / without credentials.
    let got = common::get(&stack, "/", &[]);
    let expected = golden::load("nginx", "web_root_no_auth").unwrap_or_else(|e| panic!("{e}"));
    golden::compare("nginx/web_root_no_auth", &expected, &got).unwrap_or_else(|e| panic!("{e}"));
    // http_8080_redirect: the capture's HTTPS port was 8443; ours is picked per test.
    let raw = curl(&["-i".into(), format!("http://127.0.0.1:{}/api/info", stack.http_port)])
        .unwrap_or_else(|e| panic!("{e}"));
    let got = Response::parse(&raw).unwrap_or_else(|e| panic!("{e}"));
    let mut expected = golden::load("nginx", "http_8080_redirect").unwrap_or_else(|e| panic!("{e}"));
    for (k, v) in &mut expected.headers {
        if k == "Location" {
            *v = v.replace(":8443", &format!(":{}", stack.https_port));
        }
    }
    golden::compare("nginx/http_8080_redirect", &expected, &got).unwrap_or_else(|e| panic!("{e}"));
}
