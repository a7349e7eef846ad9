//! `/gpio/feed` in-process: the full `gpio` and `atx` states first, then kvmd's change
//! events as the chip's lines, the busy regions and the clicks move (spec
//! `atx-msd-gpio-redfish.md` 1 and 2.2). kvmd-hid broadcasts these lines on `/api/ws`.

use std::sync::Arc;
use std::time::Duration;

mod common;

use actix_web::body::MessageBody;
use actix_web::test::{self, TestRequest};
use kvmd_gpio::chip::VirtualChip;
use kvmd_gpio::config::Config;

const CONFIG: &str = r#"
[atx]
type = "gpio"

[gpio.scheme.b1]
pin = 5
mode = "output"
pulse = { delay = 0.1 }
busy_delay = 0.1

[gpio.scheme.led]
pin = 8
mode = "input"
"#;

/// The feed's lines, one at a time.
struct Feed {
    body: actix_web::body::BoxBody,
    buf: Vec<u8>,
}

impl Feed {
    /// The next line as `(event_type, event, full)`, within 5 s.
    async fn next(&mut self) -> (String, String, String) {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line).trim_end().to_owned();
                let parts: Vec<&str> = line.splitn(3, '\t').collect();
                assert_eq!(parts.len(), 3, "{line:?}");
                return (parts[0].to_owned(), parts[1].to_owned(), parts[2].to_owned());
            }
            let chunk = tokio::time::timeout(
                Duration::from_secs(5),
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut self.body).poll_next(cx)),
            )
            .await
            .unwrap_or_else(|_| panic!("no line within 5 s"));
            let chunk = chunk.unwrap_or_else(|| panic!("the feed ended")).unwrap_or_else(|e| panic!("{e}"));
            self.buf.extend_from_slice(&chunk);
        }
    }
}

#[actix_web::test]
async fn the_feed_sends_full_states_then_kvmds_change_events() {
    let cfg: Config = toml::from_str(CONFIG).unwrap_or_else(|e| panic!("{e}"));
    let chip = Arc::new(VirtualChip::new(32));
    let (app, _) = common::app(cfg, chip.clone()).await;
    let res = test::call_service(&app, TestRequest::get().uri("/gpio/feed").to_request()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers().get("content-type").map(|v| v.as_bytes()), Some(&b"application/x-ndjson"[..]));
    let mut feed = Feed { body: res.into_body(), buf: Vec::new() };

    // Full states first, in kvmd's burst order: gpio (model and state), then atx.
    let (t, ev, full) = feed.next().await;
    assert_eq!(t, "gpio");
    assert_eq!(ev, full);
    assert!(
        ev.starts_with(r#"{"model": {"scheme": {"inputs": {"led": {"hw": {"driver": "__gpio__", "pin": "8"}}}"#),
        "{ev}"
    );
    assert!(
        ev.ends_with(r#""state": {"inputs": {"led": {"online": true, "state": false}}, "outputs": {"b1": {"online": true, "state": false, "busy": false}}}}"#),
        "{ev}"
    );
    let (t, ev, _) = feed.next().await;
    assert_eq!(t, "atx");
    assert_eq!(
        ev,
        r#"{"enabled": true, "busy": false, "acts": {"power": false, "reset": false}, "leds": {"power": false, "hdd": false}}"#
    );

    // An input's edge: only that channel, the outputs' half left out; the full state beside it.
    assert!(chip.drive(8, true).is_ok());
    let (t, ev, full) = feed.next().await;
    assert_eq!(
        (t.as_str(), ev.as_str()),
        ("gpio", r#"{"state": {"inputs": {"led": {"online": true, "state": true}}}}"#)
    );
    assert!(full.contains(r#""inputs": {"led": {"online": true, "state": true}}"#), "{full}");

    // A pulse: busy (state false without a read), then free again.
    assert_eq!(common::call(&app, "POST", "/gpio/pulse?channel=b1").await.0, 200);
    let (_, ev, _) = feed.next().await;
    assert_eq!(ev, r#"{"state": {"outputs": {"b1": {"online": true, "state": false, "busy": true}}}}"#);
    let (_, ev, _) = feed.next().await;
    assert_eq!(ev, r#"{"state": {"outputs": {"b1": {"online": true, "state": false, "busy": false}}}}"#);

    // A reset click: the full atx object when it starts and when its tail is over.
    assert_eq!(common::call(&app, "POST", "/atx/click?button=reset").await.0, 200);
    let (t, ev, _) = feed.next().await;
    assert_eq!(t, "atx");
    assert_eq!(
        ev,
        r#"{"enabled": true, "busy": true, "acts": {"power": false, "reset": true}, "leds": {"power": false, "hdd": false}}"#
    );
    let (_, ev, _) = feed.next().await;
    assert_eq!(
        ev,
        r#"{"enabled": true, "busy": false, "acts": {"power": false, "reset": false}, "leds": {"power": false, "hdd": false}}"#
    );
}

#[test]
fn state_changes_name_only_the_channels_that_changed() {
    use kvmd_gpio::gpio::{InputState, OutputState, State, state_changes};
    let mut prev = State::default();
    prev.inputs.insert("a".into(), InputState { online: true, state: false });
    prev.outputs.insert("o".into(), OutputState { online: true, state: false, busy: false });
    assert_eq!(state_changes(&prev, &prev), None);
    let mut now = prev.clone();
    now.outputs.insert("o".into(), OutputState { online: false, state: false, busy: false });
    let ev = state_changes(&prev, &now).map(|c| kvmd_core::json::to_compact_string(&c));
    assert_eq!(
        ev.as_deref(),
        Some(r#"{"state": {"outputs": {"o": {"online": false, "state": false, "busy": false}}}}"#)
    );
    // With no channels, the full state keeps both halves (kvmd's golden).
    assert_eq!(kvmd_core::json::to_compact_string(&State::default()), r#"{"inputs": {}, "outputs": {}}"#);
}
