//! The kvmd 4.197 golden captures (`tests/golden/kvmd-4.197/`) and their replay.
//!
//! A capture is the exact bytes a client received. We replay its request with curl (the
//! index gives curl options), parse both responses and compare: the status line exactly,
//! the body exactly, and the headers as a multiset of (lower-cased name, value), because
//! header order carries no meaning in HTTP and actix does not keep insertion order. The
//! golden README's volatile parts are masked: `Date` and `Server` values, and the token
//! in `Set-Cookie`. A response that differs in anything else is a failure, printed whole.

use std::path::{Path, PathBuf};

/// The golden directory of the repository.
pub fn dir() -> PathBuf {
    crate::repo_root().join("tests/golden/kvmd-4.197")
}

/// One row of `INDEX.tsv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Capture name (`nginx/<name>.http`, `direct/<name>.http`).
    pub name: String,
    /// Request method.
    pub method: String,
    /// Client path (with `/api`).
    pub path: String,
    /// Extra curl options as written in the index.
    pub options: String,
}

/// The rows of `INDEX.tsv`.
pub fn index() -> anyhow::Result<Vec<Row>> {
    let text = std::fs::read_to_string(dir().join("INDEX.tsv"))?;
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut f = l.split('\t');
            let mut next = || f.next().unwrap_or_default().to_owned();
            Row { name: next(), method: next(), path: next(), options: next() }
        })
        .collect())
}

/// Splits curl options as a shell would for the index's simple forms: words, and
/// double-quoted strings; `-H Name: value` takes the rest up to the next option.
pub fn split_options(options: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in options.chars() {
        match ch {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    // Re-join header values: `-H X-KVMD-User: admin` is one argument after -H.
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        if matches!(w.as_str(), "-H" | "--data-binary" | "-d") && i + 1 < words.len() {
            let mut value = words[i + 1].clone();
            i += 2;
            while i < words.len() && !words[i].starts_with('-') {
                value.push(' ');
                value.push_str(&words[i]);
                i += 1;
            }
            out.push(w.clone());
            out.push(value);
        } else {
            out.push(w.clone());
            i += 1;
        }
    }
    out
}

/// A parsed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `HTTP/1.1 200 OK`.
    pub status_line: String,
    /// Headers in received order.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// Parses raw bytes (`curl -i` output or a capture file).
    pub fn parse(raw: &[u8]) -> anyhow::Result<Self> {
        let split =
            raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| anyhow::anyhow!("no end of headers"))?;
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let body = raw[split + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_owned();
        let headers =
            lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))).collect();
        Ok(Self { status_line, headers, body })
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The token of `Set-Cookie: auth_token=<token>; ...`.
    pub fn token(&self) -> Option<String> {
        let c = self.header("Set-Cookie")?;
        let v = c.strip_prefix("auth_token=")?;
        Some(v.split(';').next().unwrap_or_default().to_owned())
    }

    fn masked_headers(&self) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let k = k.to_ascii_lowercase();
                let v = match k.as_str() {
                    "date" | "server" => "<masked>".to_owned(),
                    "set-cookie" => mask_token(v),
                    _ => v.clone(),
                };
                (k, v)
            })
            .collect();
        h.sort();
        h
    }
}

fn mask_token(v: &str) -> String {
    match v.strip_prefix("auth_token=") {
        Some(rest) => {
            let (tok, tail) = rest.split_at(rest.find(';').unwrap_or(rest.len()));
            let shape = if tok.len() == 64 && tok.bytes().all(|c| c.is_ascii_hexdigit()) { "<64 hex>" } else { tok };
            format!("auth_token={shape}{tail}")
        }
        None => v.to_owned(),
    }
}

/// What a replay puts in place of the index's placeholders.
pub struct Placeholders<'a> {
    /// The session of the replay (`<token>`).
    pub token: &'a str,
    /// Logs in afresh (`<fresh token>`); the token is then `<the logged-out token>`.
    pub fresh_login: &'a mut dyn FnMut() -> String,
    /// The token of the last fresh login.
    pub logged_out: &'a mut Option<String>,
    /// The current TOTP code for the capture's secret (the index's `137892`), if TOTP is on.
    pub totp_code: Option<String>,
}

/// The row's curl options with its placeholders filled in. `usc_root_*` rows say
/// "(direct only, curl as root)" instead of options: none.
pub fn options(row: &Row, p: &mut Placeholders<'_>) -> Vec<String> {
    let options = if row.options.starts_with('(') { "" } else { row.options.as_str() };
    let mut opts = split_options(options);
    for o in &mut opts {
        if o.contains("<fresh token>") {
            let fresh = (p.fresh_login)();
            *o = o.replace("<fresh token>", &fresh);
            *p.logged_out = Some(fresh);
        }
        if o.contains("<the logged-out token>") {
            *o = o.replace("<the logged-out token>", p.logged_out.as_deref().unwrap_or_default());
        }
        if o.contains("<token>") {
            // auth_check_unknown_token: a well-formed token kvmd never issued.
            let t =
                if row.name == "auth_check_unknown_token" { "0123456789abcdef".repeat(4) } else { p.token.to_owned() };
            *o = o.replace("<token>", &t);
        }
        if let Some(code) = &p.totp_code
            && o.contains("137892")
        {
            *o = o.replace("137892", code);
        }
    }
    opts
}

/// Reads a capture file.
pub fn load(kind: &str, name: &str) -> anyhow::Result<Response> {
    let path: PathBuf = dir().join(kind).join(format!("{name}.http"));
    Response::parse(&std::fs::read(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
}

/// The session cookie kvmd-rs sets on every login. kvmd's 302 branch (`redirect=`) sets
/// `auth_token=...; Path=/` alone (`auth_login_redirect.http`); kvmd-rs deliberately gives
/// that cookie the same `HttpOnly` and `SameSite=Strict` as kvmd's 200 branch, so a hostile
/// page can neither read it nor make the browser send it (docs/SECURITY.md).
pub const SESSION_COOKIE_FLAGS: &str = "; HttpOnly; Path=/; SameSite=Strict";

/// What the session cookie adds when the login came over HTTPS (the front's replays), which
/// kvmd never sets: without it the browser would also send the cookie in clear over HTTP.
pub const SESSION_COOKIE_SECURE: &str = "; Secure";

/// What kvmd-rs answers where it deliberately differs from a capture: only the
/// expected side is rewritten, so a regression in the response still fails. `https`: the
/// request went through the front over HTTPS.
fn with_deviations(expected: &Response, https: bool) -> Response {
    let secure = if https { SESSION_COOKIE_SECURE } else { "" };
    let mut e = expected.clone();
    for (k, v) in &mut e.headers {
        if k.eq_ignore_ascii_case("set-cookie")
            && let Some(rest) = v.strip_prefix("auth_token=")
        {
            let token = rest.split(';').next().unwrap_or_default().to_owned();
            *v = format!("auth_token={token}{SESSION_COOKIE_FLAGS}{secure}");
        }
    }
    e
}

/// Compares a response with a capture after masking; `Err` holds a readable report.
/// `name` is `<kind>/<row>`: the `nginx` kind went through the front over HTTPS.
pub fn compare(name: &str, expected: &Response, got: &Response) -> Result<(), String> {
    let expected = &with_deviations(expected, name.starts_with("nginx/"));
    let (eh, gh) = (expected.masked_headers(), got.masked_headers());
    if expected.status_line == got.status_line && eh == gh && expected.body == got.body {
        return Ok(());
    }
    let show = |h: &[(String, String)]| h.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("\n");
    Err(format!(
        "{name}: response differs from the golden\n--- expected\n{}\n{}\n\n{}\n--- got\n{}\n{}\n\n{}\n---",
        expected.status_line,
        show(&eh),
        String::from_utf8_lossy(&expected.body),
        got.status_line,
        show(&gh),
        String::from_utf8_lossy(&got.body),
    ))
}

fn headers_but_length(r: &Response) -> Vec<(String, String)> {
    r.masked_headers().into_iter().filter(|(k, _)| k != "content-length").collect()
}

fn content_length_ok(r: &Response) -> Result<(), String> {
    match r.header("Content-Length").and_then(|v| v.parse::<usize>().ok()) {
        Some(n) if n == r.body.len() => Ok(()),
        other => Err(format!("Content-Length {other:?} but the body has {} bytes", r.body.len())),
    }
}

/// The size in a JPEG's SOF marker: (width, height).
pub fn jpeg_size(data: &[u8]) -> Option<(u16, u16)> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut i = 2;
    while i + 9 < data.len() {
        if data[i] != 0xFF {
            return None;
        }
        let marker = data[i + 1];
        let len = usize::from(u16::from_be_bytes([data[i + 2], data[i + 3]]));
        if matches!(marker, 0xC0..=0xC3) {
            let h = u16::from_be_bytes([data[i + 5], data[i + 6]]);
            let w = u16::from_be_bytes([data[i + 7], data[i + 8]]);
            return Some((w, h));
        }
        i += 2 + len;
    }
    None
}

/// Compares an image response (uStreamer's snapshot headers) with a capture: status and
/// headers exactly except the volatile ones of the spec (`Date`, `X-Timestamp`, the
/// encode and send timestamps, and the length of the JPEG bytes), and the body must be
/// a JPEG of the captured picture's size. The grab timestamps are compared: blanks have
/// `0.000000`.
pub fn compare_image(name: &str, expected: &Response, got: &Response) -> Result<(), String> {
    const VOLATILE: &[&str] = &[
        "content-length",
        "x-timestamp",
        "x-ustreamer-encode-begin-timestamp",
        "x-ustreamer-encode-end-timestamp",
        "x-ustreamer-send-timestamp",
    ];
    let strip = |r: &Response| -> Vec<(String, String)> {
        r.masked_headers()
            .into_iter()
            .map(|(k, v)| if VOLATILE.contains(&k.as_str()) { (k, "<masked>".to_owned()) } else { (k, v) })
            .collect()
    };
    let (eh, gh) = (strip(expected), strip(got));
    let (es, gs) = (jpeg_size(&expected.body), jpeg_size(&got.body));
    if expected.status_line == got.status_line && eh == gh && es.is_some() && es == gs {
        return content_length_ok(got).map_err(|e| format!("{name}: {e}"));
    }
    let show = |h: &[(String, String)]| h.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("\n");
    Err(format!(
        "{name}: image response differs from the golden\n--- expected\n{}\n{}\nJPEG {es:?}\n--- got\n{}\n{}\nJPEG {gs:?}\n---",
        expected.status_line,
        show(&eh),
        got.status_line,
        show(&gh),
    ))
}

/// Compares a JSON response with a capture, masking the values at `masks` (paths below the
/// body's root, e.g. `["result", "node", "host"]`) in both. The body must still be exactly
/// kvmd's serialisation of itself, and `Content-Length` must match it.
pub fn compare_json(name: &str, expected: &Response, got: &Response, masks: &[&[&str]]) -> Result<(), String> {
    let parse = |r: &Response| serde_json::from_slice::<serde_json::Value>(&r.body).map_err(|e| format!("{name}: {e}"));
    let (mut e, mut g) = (parse(expected)?, parse(got)?);
    let formatted = kvmd_core::json::to_kvmd_string(&g);
    if formatted.as_bytes() != got.body.as_slice() {
        return Err(format!("{name}: the body is not in kvmd's JSON form:\n{}", String::from_utf8_lossy(&got.body)));
    }
    content_length_ok(got).map_err(|m| format!("{name}: {m}"))?;
    for path in masks {
        for v in [&mut e, &mut g] {
            let mut cur = Some(&mut *v);
            for key in *path {
                cur = cur.and_then(|c| c.get_mut(*key));
            }
            if let Some(c) = cur {
                *c = serde_json::Value::String("<masked>".into());
            }
        }
    }
    let (es, gs) = (kvmd_core::json::to_kvmd_string(&e), kvmd_core::json::to_kvmd_string(&g));
    if expected.status_line == got.status_line && headers_but_length(expected) == headers_but_length(got) && es == gs {
        return Ok(());
    }
    let show = |h: &[(String, String)]| h.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("\n");
    Err(format!(
        "{name}: response differs from the golden (masked)\n--- expected\n{}\n{}\n\n{es}\n--- got\n{}\n{}\n\n{gs}\n---",
        expected.status_line,
        show(&headers_but_length(expected)),
        got.status_line,
        show(&headers_but_length(got)),
    ))
}

/// Compares a text response line by line, masking the value of every line that starts with
/// one of `prefixes` (Prometheus gauges whose values move).
pub fn compare_masked_lines(name: &str, expected: &Response, got: &Response, prefixes: &[&str]) -> Result<(), String> {
    content_length_ok(got).map_err(|m| format!("{name}: {m}"))?;
    let mask = |r: &Response| {
        String::from_utf8_lossy(&r.body)
            .split('\n')
            .map(|l| match prefixes.iter().find(|p| l.starts_with(*p)) {
                Some(_) => format!("{} <masked>", l.split(' ').next().unwrap_or_default()),
                None => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (e, g) = (mask(expected), mask(got));
    if expected.status_line == got.status_line && headers_but_length(expected) == headers_but_length(got) && e == g {
        return Ok(());
    }
    Err(format!("{name}: response differs from the golden (masked)\n--- expected\n{e}\n--- got\n{g}\n---"))
}

/// The server frames after a `101` (unmasked, as servers send them): (opcode, payload).
pub fn ws_frames(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while body.len() >= 2 {
        let op = body[0] & 0x0F;
        let (len, head) = match body[1] & 0x7F {
            126 if body.len() >= 4 => (usize::from(u16::from_be_bytes([body[2], body[3]])), 4),
            127 if body.len() >= 10 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&body[2..10]);
                (usize::try_from(u64::from_be_bytes(b)).unwrap_or(usize::MAX), 10)
            }
            n => (usize::from(n), 2),
        };
        if body.len() < head + len {
            break;
        }
        out.push((op, body[head..head + len].to_vec()));
        body = &body[head + len..];
    }
    out
}

/// Whether `path` exists below the golden directory.
pub fn exists(rel: impl AsRef<Path>) -> bool {
    dir().join(rel).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_like_the_index_means() {
        assert_eq!(split_options("-d user=admin&passwd=admin"), ["-d", "user=admin&passwd=admin"]);
        assert_eq!(
            split_options("-H X-KVMD-User: admin -H X-KVMD-Passwd: admin"),
            ["-H", "X-KVMD-User: admin", "-H", "X-KVMD-Passwd: admin"]
        );
        assert_eq!(
            split_options("-H \"Cookie: auth_token=<fresh token>\""),
            ["-H", "Cookie: auth_token=<fresh token>"]
        );
        assert_eq!(split_options("-u admin:admin"), ["-u", "admin:admin"]);
        assert_eq!(
            split_options("-H Content-Type: text/plain --data-binary Hello, World!"),
            ["-H", "Content-Type: text/plain", "--data-binary", "Hello, World!"]
        );
        assert_eq!(split_options(""), Vec::<String>::new());
    }

    #[test]
    fn masking_ignores_only_volatile_parts() {
        let a = Response::parse(b"HTTP/1.1 200 OK\r\nDate: x\r\nSet-Cookie: auth_token=0000000000000000000000000000000000000000000000000000000000000000; Path=/\r\n\r\n{}").unwrap_or_else(|e| panic!("{e}"));
        // kvmd's 302 cookie (Path=/ alone) is expected with kvmd-rs's flags (SESSION_COOKIE_FLAGS).
        let b = Response::parse(b"HTTP/1.1 200 OK\r\nset-cookie: auth_token=1111111111111111111111111111111111111111111111111111111111111111; HttpOnly; Path=/; SameSite=Strict\r\ndate: y\r\n\r\n{}").unwrap_or_else(|e| panic!("{e}"));
        assert!(compare("t", &a, &b).is_ok());
        let c = Response::parse(b"HTTP/1.1 200 OK\r\nDate: y\r\nSet-Cookie: auth_token=1111111111111111111111111111111111111111111111111111111111111111; Path=/\r\n\r\n{}").unwrap_or_else(|e| panic!("{e}"));
        assert!(compare("t", &a, &c).is_err(), "a cookie without kvmd-rs's flags is a regression");
        let c = Response::parse(b"HTTP/1.1 200 OK\r\nDate: y\r\nSet-Cookie: auth_token=1111111111111111111111111111111111111111111111111111111111111111; HttpOnly; Path=/x; SameSite=Strict\r\n\r\n{}").unwrap_or_else(|e| panic!("{e}"));
        assert!(compare("t", &a, &c).is_err(), "cookie attributes matter");
        let d = Response::parse(b"HTTP/1.1 200 OK\r\nDate: y\r\nSet-Cookie: auth_token=1111111111111111111111111111111111111111111111111111111111111111; HttpOnly; Path=/; SameSite=Strict\r\n\r\n{ }").unwrap_or_else(|e| panic!("{e}"));
        assert!(compare("t", &a, &d).is_err(), "bodies matter byte for byte");
    }

    #[test]
    fn every_auth_capture_is_present() -> anyhow::Result<()> {
        let rows = index()?;
        assert_eq!(rows.len(), 97);
        for r in rows.iter().filter(|r| r.name.starts_with("auth_") || r.name.starts_with("totp_")) {
            assert!(exists(format!("nginx/{}.http", r.name)), "{}", r.name);
            assert!(exists(format!("direct/{}.http", r.name)), "{}", r.name);
        }
        Ok(())
    }
}
