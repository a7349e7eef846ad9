//! `/export/prometheus/metrics`: kvmd's metrics in the Prometheus text format (spec
//! `info-log.md` section 3), cached for 5 s as kvmd does.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpResponse, web};
use kvmd_core::routes::{Answer, Api, Route};
use serde_json::Value;

use crate::info::Info;

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get("/export/prometheus/metrics")
            .doc("kvmd's metrics and the suite's own, in the Prometheus text format")
            .answer(Answer::Media("text/plain; version=0.0.4")),
        metrics,
    )
    .route(
        Route::get("/openapi.json")
            .doc("This document: every route of the suite (generated from the route declarations)")
            .answer(Answer::Media("application/json")),
        openapi,
    );
}

/// The suite's OpenAPI document (`docs/openapi.json`, which a test keeps current).
pub const OPENAPI: &str = include_str!("../../../../docs/openapi.json");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json"))).body(OPENAPI)
}

/// The last rendered body.
#[derive(Default)]
pub struct MetricsCache(Mutex<Option<(Instant, String)>>);

const TTL: Duration = Duration::from_secs(5);

fn gauge(out: &mut String, name: &str, value: &Value) {
    let v = match value {
        Value::Bool(b) => u8::from(*b).to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() => kvmd_core::json::python_float_repr(f),
            _ => n.to_string(),
        },
        _ => return,
    };
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&format!("# TYPE {name} gauge\n{name} {v}\n"));
}

/// Flattens `value` in sorted key order, skipping kvmd's `parsed_flags` level.
fn flatten(out: &mut String, prefix: &str, value: &Value) {
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if k == "parsed_flags" { prefix.to_owned() } else { format!("{prefix}_{k}") };
                flatten(out, &p, v);
            }
        }
        v => gauge(out, prefix, v),
    }
}

/// kvmd's ATX and GPIO state for the gauges: the `atx` state and the GPIO `state`
/// (`{"inputs": {ch: {online, state}}, "outputs": {ch: {online, state, busy}}}`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpioGauges {
    /// `GET /atx`'s result.
    pub atx: Value,
    /// The `state` of `GET /gpio`.
    pub gpio: Value,
}

/// The metrics text for a `health` value and the ATX and GPIO state (`None`: kvmd-gpio
/// does not answer, so as kvmd with both disabled).
pub fn render(health: &Value, gpio: Option<&GpioGauges>) -> String {
    let mut out = String::new();
    let atx = gpio.map(|g| &g.atx);
    let flag = |v: Option<&Value>| Value::Bool(v.and_then(Value::as_bool).unwrap_or(false));
    gauge(&mut out, "pikvm_atx_enabled", &flag(atx.map(|a| &a["enabled"])));
    gauge(&mut out, "pikvm_atx_power", &flag(atx.map(|a| &a["leds"]["power"])));
    for (half, mode) in [("inputs", "input"), ("outputs", "output")] {
        let Some(channels) = gpio.and_then(|g| g.gpio[half].as_object()) else { continue };
        for (channel, state) in channels {
            for key in ["online", "state"] {
                gauge(&mut out, &format!("pikvm_gpio_{mode}_{key}_{channel}"), &flag(state.get(key)));
            }
        }
    }
    flatten(&mut out, "pikvm_hw", health);
    gauge(&mut out, "pikvm_fan_monitored", &Value::Bool(false));
    out
}

/// A Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The ATX and GPIO state from the first two lines of kvmd-gpio's feed (its full `gpio`
/// and `atx` events), or `None` when it does not answer within 2 s.
async fn gpio_gauges(socket: &std::path::Path) -> Option<GpioGauges> {
    let client = kvmd_core::client::unix(socket).timeout(Duration::from_secs(2)).build().ok()?;
    let resp = client.get("http://localhost/gpio/feed").send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let mut lines = kvmd_core::feed::Lines::new(resp);
    let mut gauges = GpioGauges::default();
    let (mut seen_atx, mut seen_gpio) = (false, false);
    while !(seen_atx && seen_gpio) {
        let line = lines.next().await?;
        let Some([t, _, full]) = kvmd_core::feed::fields::<3>(&line) else { continue };
        let full: Value = serde_json::from_str(full).ok()?;
        match t {
            "atx" => (gauges.atx, seen_atx) = (full, true),
            "gpio" => (gauges.gpio, seen_gpio) = (full["state"].clone(), true),
            _ => {}
        }
    }
    Some(gauges)
}

async fn scrape(socket: &std::path::Path) -> Option<kvmd_core::metrics::SelfMetrics> {
    let client = kvmd_core::client::unix(socket).timeout(Duration::from_secs(2)).build().ok()?;
    let resp = client.get(format!("http://localhost{}", kvmd_core::metrics::SELF_PATH)).send().await.ok()?;
    serde_json::from_slice(&resp.bytes().await.ok()?).ok()
}

/// The suite's own metrics, appended after kvmd's: which services answer, their memory,
/// and their requests per route and status with the time to the response head.
pub async fn render_suite(services: &std::collections::BTreeMap<String, std::path::PathBuf>) -> String {
    let mut snaps = Vec::new();
    let mut up = Vec::new();
    for (name, socket) in services {
        let snap = if name == "kvmd-info" { Some(kvmd_core::metrics::snapshot(name)) } else { scrape(socket).await };
        up.push((name.clone(), snap.is_some()));
        snaps.extend(snap);
    }
    let mut out = String::from("\n# TYPE kvmd_rs_up gauge\n");
    for (name, ok) in &up {
        out.push_str(&format!("kvmd_rs_up{{service=\"{}\"}} {}\n", label(name), u8::from(*ok)));
    }
    out.push_str("\n# TYPE kvmd_rs_process_resident_memory_bytes gauge\n");
    for s in &snaps {
        out.push_str(&format!(
            "kvmd_rs_process_resident_memory_bytes{{service=\"{}\"}} {}\n",
            label(&s.service),
            s.rss_bytes
        ));
    }
    out.push_str("\n# TYPE kvmd_rs_http_requests_total counter\n");
    let labels = |s: &kvmd_core::metrics::SelfMetrics, r: &kvmd_core::metrics::RouteMetric| {
        format!("service=\"{}\",route=\"{}\",status=\"{}\"", label(&s.service), label(&r.route), r.status)
    };
    for s in &snaps {
        for r in &s.routes {
            out.push_str(&format!("kvmd_rs_http_requests_total{{{}}} {}\n", labels(s, r), r.count));
        }
    }
    out.push_str("\n# TYPE kvmd_rs_http_request_duration_seconds summary\n");
    for s in &snaps {
        for r in &s.routes {
            let l = labels(s, r);
            out.push_str(&format!("kvmd_rs_http_request_duration_seconds_sum{{{l}}} {}\n", r.seconds_sum));
            out.push_str(&format!("kvmd_rs_http_request_duration_seconds_count{{{l}}} {}\n", r.count));
        }
    }
    out
}

async fn metrics(state: web::Data<Info>, cache: web::Data<MetricsCache>) -> HttpResponse {
    let cached = cache.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let body = match cached {
        Some((at, body)) if at.elapsed() < TTL => body,
        _ => {
            let health = serde_json::to_value(state.health().await).unwrap_or(Value::Null);
            let gpio = match state.config().services.get("kvmd-gpio") {
                Some(socket) => gpio_gauges(socket).await,
                None => None,
            };
            let mut body = render(&health, gpio.as_ref());
            body.push_str(&render_suite(&state.config().services).await);
            *cache.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), body.clone()));
            body
        }
    };
    HttpResponse::Ok().insert_header((CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))).body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_shape() {
        let health = serde_json::json!({
            "temp": {"cpu": 36.511}, "cpu": {"percent": 73},
            "mem": {"percent": 2.4, "total": 25276514304u64, "available": 24658542592u64},
            "throttling": {"raw_flags": 0, "ignore_past": false, "parsed_flags": {
                "undervoltage": {"now": false, "past": false}, "freq_capped": {"now": false, "past": false},
                "throttled": {"now": false, "past": false}}}
        });
        let text = render(&health, None);
        // tests/golden/kvmd-4.197/direct/prometheus.http, 1153 bytes with these values.
        let golden = std::fs::read("../../tests/golden/kvmd-4.197/direct/prometheus.http").unwrap_or_default();
        let body = golden.windows(4).position(|w| w == b"\r\n\r\n").map(|i| &golden[i + 4..]).unwrap_or_default();
        assert_eq!(text, String::from_utf8_lossy(body));
        assert_eq!(text.len(), 1153);
        // kvmd-gpio's disabled ATX and no channels: the same body.
        let disabled = GpioGauges {
            atx: serde_json::json!({"enabled": false, "busy": false, "acts": {"power": false, "reset": false}, "leds": {"power": false, "hdd": false}}),
            gpio: serde_json::json!({"inputs": {}, "outputs": {}}),
        };
        assert_eq!(render(&health, Some(&disabled)), text);
    }

    #[test]
    fn atx_and_gpio_gauges_follow_kvmds_names_and_order() {
        let gauges = GpioGauges {
            atx: serde_json::json!({"enabled": true, "busy": false, "acts": {"power": false, "reset": false}, "leds": {"power": true, "hdd": false}}),
            gpio: serde_json::json!({
                "inputs": {"led1": {"online": true, "state": true}},
                "outputs": {"relay": {"online": false, "state": false, "busy": false}},
            }),
        };
        let text = render(&serde_json::json!({}), Some(&gauges));
        assert_eq!(
            text,
            "# TYPE pikvm_atx_enabled gauge\npikvm_atx_enabled 1\n\n\
             # TYPE pikvm_atx_power gauge\npikvm_atx_power 1\n\n\
             # TYPE pikvm_gpio_input_online_led1 gauge\npikvm_gpio_input_online_led1 1\n\n\
             # TYPE pikvm_gpio_input_state_led1 gauge\npikvm_gpio_input_state_led1 1\n\n\
             # TYPE pikvm_gpio_output_online_relay gauge\npikvm_gpio_output_online_relay 0\n\n\
             # TYPE pikvm_gpio_output_state_relay gauge\npikvm_gpio_output_state_relay 0\n\n\
             # TYPE pikvm_fan_monitored gauge\npikvm_fan_monitored 0\n"
        );
    }
}
