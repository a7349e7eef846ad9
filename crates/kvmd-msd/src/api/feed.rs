//! `/msd/feed` (internal, not routed by nginx): the `msd` part of kvmd's `/api/ws`, for
//! kvmd-hid to broadcast. NDJSON lines `msd` TAB `<event>` TAB `<full state>` (the format
//! of `kvmd_core::feed`): the full state on connect, then kvmd's partial events (spec
//! `atx-msd-gpio-redfish.md` 3.3) when an operation changes something, and from a look
//! every second (transfer counters, free space, images copied in by other means).

use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use kvmd_core::routes::{Access, Answer, Api, Route};
use kvmd_core::service::CancellationToken;

use crate::msd::{Msd, State, event};

/// The feed's path on the service socket.
pub const PATH: &str = "/msd/feed";

/// The group's route.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get(PATH)
            .access(Access::Public)
            .internal()
            .doc("The `msd` part of kvmd-hid's `/ws`, as NDJSON")
            .answer(Answer::Stream("application/x-ndjson")),
        feed,
    );
}

fn line(ev: &str, full: &State) -> Bytes {
    let full = kvmd_core::json::to_compact_string(full);
    Bytes::from(kvmd_core::feed::line(&["msd", ev, &full]))
}

async fn state(msd: &std::sync::Arc<Msd>) -> Option<State> {
    let msd = msd.clone();
    tokio::task::spawn_blocking(move || msd.state()).await.ok()
}

async fn feed(
    msd: web::Data<Msd>,
    shutdown: web::Data<CancellationToken>,
    req: actix_web::HttpRequest,
) -> HttpResponse {
    let msd = msd.into_inner();
    kvmd_core::service::feed_response(&req, shutdown.get_ref().clone(), move |tx| async move {
        let mut changed = msd.subscribe();
        let Some(mut sent) = state(&msd).await else { return };
        if tx.send(line(&kvmd_core::json::to_compact_string(&sent), &sent)).await.is_err() {
            return;
        }
        let mut look = tokio::time::interval(Duration::from_secs(1));
        look.tick().await;
        loop {
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                _ = look.tick() => {}
            }
            changed.borrow_and_update();
            let Some(now) = state(&msd).await else { return };
            if let Some(ev) = event(&sent, &now) {
                if tx.send(line(&ev, &now)).await.is_err() {
                    return;
                }
                sent = now;
            }
        }
    })
}
