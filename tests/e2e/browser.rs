//! The web root in a real headless Chromium (Debian's), driven through chromedriver's
//! WebDriver protocol: the login page (its fetch to `/api/auth/login`) and the session
//! cookie, as a person would use them; then the viewer page with its MJPEG stream and its
//! WebSocket; and a hostile page's cross-site form, which must type nothing.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common;

struct Driver {
    child: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

fn call(method: &str, url: &str, body: Option<&Value>) -> Value {
    let mut args = vec!["-sS".to_owned(), "-X".to_owned(), method.to_owned(), url.to_owned()];
    if let Some(b) = body {
        args.extend(["-H".into(), "Content-Type: application/json".into(), "-d".into(), b.to_string()]);
    }
    let out = Command::new("curl").args(&args).output().unwrap_or_else(|e| panic!("curl: {e}"));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

impl Driver {
    fn start() -> Self {
        for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is needed (Debian packages chromium, chromium-driver; ./dev setup installs them)"
            );
        }
        let port = kvmd_testkit::free_port().unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("chromedriver: {e}"));
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..100 {
            let ok = Command::new("curl")
                .args(["-sS", &format!("{base}/status")])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                ready = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(ready, "chromedriver did not start");
        let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let v = call("POST", &format!("{base}/session"), Some(&caps));
        let session = v["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_owned();
        Self { child, base, session, _profile: profile }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    fn go(&self, url: &str) {
        call("POST", &self.url("/url"), Some(&json!({"url": url})));
    }

    fn current_url(&self) -> String {
        call("GET", &self.url("/url"), None)["value"].as_str().unwrap_or_default().to_owned()
    }

    fn text(&self) -> String {
        let v = call(
            "POST",
            &self.url("/execute/sync"),
            Some(&json!({"script": "return document.body.innerText", "args": []})),
        );
        v["value"].as_str().unwrap_or_default().to_owned()
    }

    fn element(&self, css: &str) -> String {
        let v = call("POST", &self.url("/element"), Some(&json!({"using": "css selector", "value": css})));
        v["value"]
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no {css}: {v}"))
            .to_owned()
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        call("POST", &self.url(&format!("/element/{e}/value")), Some(&json!({"text": text})));
    }

    fn click(&self, css: &str) {
        let e = self.element(css);
        call("POST", &self.url(&format!("/element/{e}/click")), Some(&json!({})));
    }

    fn cookie(&self, name: &str) -> Option<Value> {
        let v = call("GET", &self.url(&format!("/cookie/{name}")), None);
        v["value"].get("value").map(|_| v["value"].clone())
    }

    fn wait_url(&self, suffix: &str) -> String {
        for _ in 0..100 {
            let u = self.current_url();
            if u.ends_with(suffix) {
                return u;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.current_url()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        call("DELETE", &self.url(""), None);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_person_logs_in_with_the_browser() {
    let stack = common::stack();
    let d = Driver::start();
    // Not logged in: the web root sends the browser to the login page.
    d.go(&stack.url("/"));
    let url = d.wait_url("/login/");
    assert!(url.ends_with("/login/"), "{url}");
    assert!(d.cookie("auth_token").is_none());
    // A wrong password: kvmd's 403 JSON.
    d.type_into("input[name=user]", "admin");
    d.type_into("input[name=passwd]", "wrong");
    d.click("button");
    std::thread::sleep(Duration::from_millis(300));
    assert!(d.text().contains("ForbiddenError"), "{}", d.text());
    // The right one: the page goes to the index, with a session cookie.
    d.go(&stack.url("/login/"));
    d.type_into("input[name=user]", "admin");
    d.type_into("input[name=passwd]", "admin");
    d.click("button");
    let url = d.wait_url(&format!("{}/", stack.https_port));
    assert!(url.ends_with(&format!(":{}/", stack.https_port)), "{url}");
    assert!(d.text().contains("You are logged in"), "{}", d.text());
    // The viewer: its WebSocket makes it a stream client, the MJPEG stream shows (here the
    // 1080p no-device blank), and clients_stat carries the id of its stream_client cookie.
    let mut shown = String::new();
    for _ in 0..100 {
        let v = call(
            "POST",
            &d.url("/execute/sync"),
            Some(
                &json!({"script": "return [document.getElementById('screen').naturalWidth, document.getElementById('status').textContent].join(' ')", "args": []}),
            ),
        );
        shown = v["value"].as_str().unwrap_or_default().to_owned();
        if shown.starts_with("1920 ") && shown.contains("fps") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(shown.starts_with("1920 no signal · 1920x1080 · "), "the viewer shows: {shown}");
    let stream_cookie = d.cookie("stream_client").unwrap_or_else(|| panic!("no stream_client cookie"));
    assert!(stream_cookie["value"].as_str().is_some_and(|v| v.len() == 16 + 1 + 16), "{stream_cookie}");
    let cookie = d.cookie("auth_token").unwrap_or_else(|| panic!("no session cookie"));
    assert_eq!(cookie["value"].as_str().map(str::len), Some(64));
    // The browser's session works for the API too.
    d.go(&stack.url("/api/auth/check"));
    assert!(d.text().contains("\"ok\": true"), "{}", d.text());
    // A hostile page the logged-in admin opens auto-submits a form that would type a command
    // on the target: refused (the cookie is SameSite=Strict, and the cross-site check), and
    // nothing is typed.
    let before = stack.hid_written("keyboard").len();
    let target = stack.url("/api/hid/print");
    let page = format!(
        "<form method=post enctype=text/plain action='{target}'><input name='rm -rf ~; ' value=''></form>\
         <script>document.forms[0].submit()</script>"
    );
    d.go(&format!("data:text/html,{}", page.replace('#', "%23").replace(' ', "%20")));
    let mut shown = String::new();
    for _ in 0..50 {
        shown = d.text();
        if shown.contains("Error") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(shown.contains("UnauthorizedError") || shown.contains("ForbiddenError"), "the form was answered: {shown}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(stack.hid_written("keyboard").len(), before, "the cross-site form typed on the target");
}
