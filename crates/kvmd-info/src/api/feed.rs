//! `/info/feed` (internal, not routed by nginx): the `info` part of kvmd's `/api/ws`, for
//! kvmd-hid to merge. NDJSON, one compact `{"<category>": <value>}` per line in kvmd's
//! insertion order: every category once on connect, then `uptime` every 5 s, `health`
//! every 5 s when it changed and `node` every second when it changed (spec `ws.md`).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use bytes::Bytes;
use kvmd_core::routes::{Access, Answer, Api, Route};
use kvmd_core::service::CancellationToken;

use crate::info::{Category, Info};

/// The feed's path on the service socket.
pub const PATH: &str = "/info/feed";

/// The group's route.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get(PATH)
            .access(Access::Public)
            .internal()
            .doc("The `info` part of kvmd-hid's `/ws`, as NDJSON")
            .answer(Answer::Stream("application/x-ndjson")),
        feed,
    );
}

fn line(c: Category, v: &crate::info::Value) -> Bytes {
    let mut s = format!("{{\"{}\": {}}}", c.name(), kvmd_core::json::to_compact_string(v));
    s.push('\n');
    Bytes::from(s)
}

async fn feed(
    state: web::Data<Info>,
    shutdown: web::Data<CancellationToken>,
    req: actix_web::HttpRequest,
) -> HttpResponse {
    let info = state.into_inner();
    kvmd_core::service::feed_response(&req, shutdown.get_ref().clone(), move |tx| async move {
        let order = [
            Category::Auth,
            Category::Fan,
            Category::Node,
            Category::Meta,
            Category::Extras,
            Category::Uptime,
            Category::Health,
            Category::System,
        ];
        let mut last_health = None;
        let mut last_node = None;
        for c in order {
            let v = info.get(c).await;
            if tx.send(line(c, &v)).await.is_err() {
                return;
            }
            match c {
                Category::Health => last_health = Some(v),
                Category::Node => last_node = Some(v),
                _ => {}
            }
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        for n in 1u64.. {
            tick.tick().await;
            let node = info.get(Category::Node).await;
            if Some(&node) != last_node.as_ref() {
                if tx.send(line(Category::Node, &node)).await.is_err() {
                    return;
                }
                last_node = Some(node);
            }
            if n % 5 == 0 {
                if tx.send(line(Category::Uptime, &info.get(Category::Uptime).await)).await.is_err() {
                    return;
                }
                let health = info.get(Category::Health).await;
                if Some(&health) != last_health.as_ref() {
                    if tx.send(line(Category::Health, &health)).await.is_err() {
                        return;
                    }
                    last_health = Some(health);
                }
            }
        }
    })
}
