//! `/api/log` end to end through nginx: the file source (the demo's), the journal source (a
//! real journal file written by systemd-journal-remote, read by a real journalctl), no
//! source at all (kvmd's empty answers, byte for byte), and `follow=1` streaming live.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kvmd_testkit::golden::{self, Response};
use kvmd_testkit::{Stack, StackOptions, curl, curl_unprivileged};

use crate::common::{self, get, login, text};

/// `[YYYY-MM-DD HH:MM:SS <kvmd unit>] --- <message>` (kvmd's line, without the CRLF).
fn is_log_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('[') else { return false };
    let (stamp, rest) = rest.split_at(rest.len().min(19));
    let stamp_ok = stamp.len() == 19
        && stamp.bytes().enumerate().all(|(i, c)| match i {
            4 | 7 => c == b'-',
            10 => c == b' ',
            13 | 16 => c == b':',
            _ => c.is_ascii_digit(),
        });
    let Some((unit, _msg)) = rest.strip_prefix(' ').and_then(|r| r.split_once("] --- ")) else { return false };
    stamp_ok && kvmd_info::logs::is_kvmd_unit(unit)
}

fn lines(body: &str) -> Vec<&str> {
    assert!(body.is_empty() || body.ends_with("\r\n"), "every line ends with CRLF: {body:?}");
    body.split("\r\n").filter(|l| !l.is_empty()).collect()
}

/// A `follow=1` request in the background; its output arrives on a channel.
struct Follow {
    child: Child,
    rx: mpsc::Receiver<Vec<u8>>,
    seen: String,
}

impl Follow {
    fn start(stack: &Stack, token: &str) -> Self {
        let mut child = Command::new("curl")
            .args(["-sS", "-k", "-N", "--http1.1", "-H", &format!("Cookie: auth_token={token}")])
            .arg(stack.url("/api/log?seek=0&follow=1"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("curl: {e}"));
        let mut out = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Self { child, rx, seen: String::new() }
    }

    /// Waits (bounded) until `needle` has arrived.
    fn wait_for(&mut self, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !self.seen.contains(needle) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(chunk) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => return false,
            }
        }
        true
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn file_source_lists_and_follows_the_services_lines() {
    let stack = common::stack();
    let token = login(&stack, "admin", "admin");
    let cookie = format!("Cookie: auth_token={token}");
    // The login's line is in the file (services write their lines every 20 ms).
    assert!(stack.log_has("kvmd-auth", "Logged in user 'admin'"), "{}", stack.log("kvmd-auth"));
    let r = get(&stack, "/api/log?seek=3600", &["-H", &cookie]);
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
    let body = text(&r);
    let all = lines(&body);
    assert!(all.iter().all(|l| is_log_line(l)), "{body}");
    assert!(
        all.iter().any(|l| l.contains(" kvmd-auth.service] --- ") && l.contains("Logged in user 'admin'")),
        "{body}"
    );
    assert!(all.iter().any(|l| l.contains(" kvmd-info.service] --- ")), "{body}");

    // follow=1: a line logged after the request started arrives while it is open, so nginx
    // does not buffer it.
    let mut follow = Follow::start(&stack, &token);
    assert!(follow.wait_for("Logged in user 'admin'"), "the existing lines come first: {}", follow.seen);
    assert_eq!(get(&stack, "/api/auth/login", &["-X", "POST", "-d", "user=admin&passwd=nope"]).status(), 403);
    assert!(follow.wait_for("Got access denied for user 'admin'"), "the new line arrives live: {}", follow.seen);
    drop(follow);
    // The service is unharmed by the client going away.
    assert_eq!(get(&stack, "/api/log?seek=1", &["-H", &cookie]).status(), 200);
}

#[test]
fn bad_arguments_get_kvmds_errors() {
    let stack = common::stack();
    let cookie = common::cookie(&stack);
    common::expect_400(
        &stack,
        &cookie,
        "GET",
        &[
            ("/api/log?seek=abc", "The argument 'abc' is not a valid log seek"),
            ("/api/log?seek=-5", "The argument '-5' must be log seek and greater or equial than 0"),
            ("/api/log?seek=12345678901234567", "RAW limit exceed"),
            (
                "/api/log?follow=maybe",
                "The argument 'maybe' is not a valid bool (['1', 'true', 'yes'] or ['0', 'false', 'no'])",
            ),
        ],
    );
    // kvmd's log_reader.enabled = false.
    let mut stack = stack;
    stack.stop_service("kvmd-info");
    stack.start_info(&["log.source=\"disabled\"".into()]).unwrap_or_else(|e| panic!("{e:#}"));
    let r = get(&stack, "/api/log", &["-H", &cookie]);
    assert_eq!(r.status(), 400);
    assert!(text(&r).contains("\"error\": \"LogReaderDisabledError\""));
    assert!(text(&r).contains("\"error_msg\": \"LogReader is disabled\""));
}

#[test]
fn no_source_answers_like_kvmd_without_a_journal() {
    let opts = StackOptions { info_set: vec!["log.dir=/nonexistent".into()], ..StackOptions::default() };
    let stack = Stack::start(opts).unwrap_or_else(|e| panic!("{e:#}"));
    let token = login(&stack, "admin", "admin");
    let cookie = format!("Cookie: auth_token={token}");
    // log_nojournal_seek60: 200, chunked, empty body; through nginx and on the socket.
    let raw = curl(&[
        "-i".into(),
        "--http1.1".into(),
        "--raw".into(),
        "-H".into(),
        cookie.clone(),
        stack.url("/api/log?seek=60"),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let got = Response::parse(&raw).unwrap_or_else(|e| panic!("{e}"));
    let expected = golden::load("nginx", "log_nojournal_seek60").unwrap_or_else(|e| panic!("{e}"));
    golden::compare("nginx/log_nojournal_seek60", &expected, &got).unwrap_or_else(|e| panic!("{e}"));
    let direct = [
        "-i".into(),
        "--raw".into(),
        "-H".into(),
        cookie.clone(),
        "--unix-socket".into(),
        stack.info_socket().display().to_string(),
    ];
    let mut args: Vec<String> = direct.to_vec();
    args.push("http://localhost/log?seek=60".into());
    let got =
        Response::parse(&curl_unprivileged(&args).unwrap_or_else(|e| panic!("{e}"))).unwrap_or_else(|e| panic!("{e}"));
    let expected = golden::load("direct", "log_nojournal_seek60").unwrap_or_else(|e| panic!("{e}"));
    golden::compare("direct/log_nojournal_seek60", &expected, &got).unwrap_or_else(|e| panic!("{e}"));
    // log_nojournal_seek60_follow: the headers, then nothing until the client gives up.
    let mut args: Vec<String> = direct.to_vec();
    args.extend(["--max-time".into(), "2".into(), "http://localhost/log?seek=60&follow=1".into()]);
    let got =
        Response::parse(&curl_unprivileged(&args).unwrap_or_else(|e| panic!("{e}"))).unwrap_or_else(|e| panic!("{e}"));
    let expected = golden::load("direct", "log_nojournal_seek60_follow").unwrap_or_else(|e| panic!("{e}"));
    golden::compare("direct/log_nojournal_seek60_follow", &expected, &got).unwrap_or_else(|e| panic!("{e}"));
}

fn journal_remote() -> &'static str {
    ["/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!("systemd-journal-remote is needed (package systemd-journal-remote; ./dev setup installs it)")
        })
}

/// Appends entries (Journal Export Format) to a real journal file.
fn journal_append(file: &std::path::Path, entries: &[(&str, &str)]) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
    // Entries of the current boot, as journald would write them (`journalctl --follow`
    // only follows the current boot).
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim().replace('-', "");
    let mut export = String::new();
    for (unit, msg) in entries {
        export
            .push_str(&format!("__REALTIME_TIMESTAMP={now}\n_BOOT_ID={boot}\n_SYSTEMD_UNIT={unit}\nMESSAGE={msg}\n\n"));
    }
    let mut child = Command::new(journal_remote())
        .arg("-o")
        .arg(file)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut i) = child.stdin.take() {
        use std::io::Write;
        let _ = i.write_all(export.as_bytes());
    }
    assert!(child.wait().is_ok_and(|s| s.success()), "systemd-journal-remote failed");
}

fn journalctl_readers(file: &std::path::Path) -> usize {
    let out = Command::new("pgrep").args(["-f", "--", &format!("--file={}", file.display())]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).lines().count()).unwrap_or(0)
}

#[test]
fn journal_source_reads_and_follows_a_real_journal() {
    let mut stack = common::stack();
    let file = stack.root.join("var/test.journal");
    journal_append(
        &file,
        &[
            ("kvmd-auth.service", "hello from the journal"),
            ("nginx.service", "not ours"),
            ("kvmd-x@y.service", "templated"),
        ],
    );
    stack.stop_service("kvmd-info");
    let set = ["log.source=\"journal\"".to_owned(), format!("log.journal_file={:?}", file.display().to_string())];
    stack.start_info(&set).unwrap_or_else(|e| panic!("{e:#}"));
    let token = login(&stack, "admin", "admin");
    let r = get(&stack, "/api/log?seek=3600", &["-H", &format!("Cookie: auth_token={token}")]);
    let body = text(&r);
    let all = lines(&body);
    assert_eq!(all.len(), 1, "only kvmd units, no templated ones: {body}");
    assert!(is_log_line(all[0]) && all[0].ends_with(" kvmd-auth.service] --- hello from the journal"), "{body}");

    let mut follow = Follow::start(&stack, &token);
    assert!(follow.wait_for("hello from the journal"), "{}", follow.seen);
    journal_append(&file, &[("kvmd-info.service", "a new entry")]);
    assert!(follow.wait_for("kvmd-info.service] --- a new entry\r\n"), "followed live: {}", follow.seen);
    assert!(journalctl_readers(&file) >= 1);
    drop(follow);
    // The reader ends with its client: no journalctl is left behind (bounded wait).
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = journalctl_readers(&file);
        if left == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(left, 0, "journalctl readers left running");
}
