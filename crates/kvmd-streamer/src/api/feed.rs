//! `/streamer/feed` (internal, not routed by nginx): the `streamer` part of kvmd's
//! `/api/ws`, for kvmd-hid to merge. NDJSON, one line per event: `<event>\t<full>`,
//! where `<event>` is what the WebSocket sends (the full state on connect, then only
//! the top-level keys that changed, with `limits` whenever `params` or `applied` is
//! sent, as kvmd) and `<full>` the whole state (for sessions that must resend it).
//! `?stream=1` makes the subscriber a stream client: capture runs while it is connected.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use kvmd_core::query::Query;
use kvmd_core::routes::{Access, Answer, Api, Param, Route, Ty};
use kvmd_core::service::CancellationToken;

use crate::streamer::Streamer;

/// The feed's path on the service socket.
pub const PATH: &str = "/streamer/feed";

/// The group's route.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get(PATH)
            .access(Access::Public)
            .internal()
            .doc("The `streamer` part of kvmd-hid's `/ws`, as NDJSON")
            .params(const { &[Param::opt("stream", Ty::Bool, "Be a stream client (capture runs while connected)")] })
            .answer(Answer::Stream("application/x-ndjson")),
        feed,
    );
}

/// The compact JSON of each top-level part, in kvmd's order.
fn parts(s: &Streamer) -> Vec<(&'static str, String)> {
    let st = super::kvmd::kvmd_state(s);
    use kvmd_core::json::to_compact_string as c;
    vec![
        ("features", c(&st.features)),
        ("limits", c(&st.limits)),
        ("params", c(&st.params)),
        ("applied", c(&st.applied)),
        ("streamer", c(&st.streamer)),
        ("snapshot", c(&st.snapshot)),
    ]
}

fn object(parts: &[(&str, String)]) -> String {
    let inner: Vec<String> = parts.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// The partial event between two states (`None` when nothing changed).
pub fn diff(old: &[(&'static str, String)], new: &[(&'static str, String)]) -> Option<String> {
    let get = |v: &[(&str, String)], k: &str| v.iter().find(|(n, _)| *n == k).map(|(_, s)| s.clone());
    let mut out: Vec<(&str, String)> = Vec::new();
    for k in ["params", "streamer", "applied", "snapshot"] {
        if get(old, k) != get(new, k) {
            out.push((k, get(new, k).unwrap_or_default()));
        }
    }
    if out.is_empty() {
        return None;
    }
    if out.iter().any(|(k, _)| *k == "params" || *k == "applied") {
        out.push(("limits", get(new, "limits").unwrap_or_default()));
    }
    Some(object(&out))
}

async fn feed(
    req: HttpRequest,
    s: web::Data<Streamer>,
    shutdown: web::Data<CancellationToken>,
) -> Result<HttpResponse, kvmd_core::ApiError> {
    let stream = kvmd_core::valid::boolean(Some(Query::of(&req).get("stream").unwrap_or("0")))?;
    let s = s.get_ref().clone();
    Ok(kvmd_core::service::feed_response(&req, shutdown.get_ref().clone(), move |tx| async move {
        let _guard = s.add_feed(stream);
        let mut changes = s.changes();
        let mut last = parts(&s);
        let full = object(&last);
        if tx.send(Bytes::from(format!("{full}\t{full}\n"))).await.is_err() {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                r = changes.changed() => if r.is_err() { return },
            }
            let now = parts(&s);
            if let Some(event) = diff(&last, &now) {
                let line = format!("{event}\t{}\n", object(&now));
                if tx.send(Bytes::from(line)).await.is_err() {
                    return;
                }
                last = now;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partials_name_what_changed_and_add_limits() {
        let a = vec![
            ("features", "F".to_owned()),
            ("limits", "L".to_owned()),
            ("params", "P".to_owned()),
            ("applied", "A".to_owned()),
            ("streamer", "null".to_owned()),
            ("snapshot", "S".to_owned()),
        ];
        let mut b = a.clone();
        b[4].1 = "{}".into();
        b[3].1 = "A2".into();
        assert_eq!(diff(&a, &b).as_deref(), Some("{\"streamer\": {}, \"applied\": A2, \"limits\": L}"));
        let mut c = a.clone();
        c[5].1 = "S2".into();
        assert_eq!(diff(&a, &c).as_deref(), Some("{\"snapshot\": S2}"));
        assert_eq!(diff(&a, &a), None);
    }
}
