//! `/gpio/feed` (internal, not routed by nginx): the `gpio` and `atx` parts of kvmd's
//! `/api/ws`, for kvmd-hid to broadcast, and the ATX and GPIO gauges for kvmd-info's
//! metrics. NDJSON, one line per event: `<event_type>` TAB `<event>` TAB `<full state>`,
//! compact JSON in kvmd's insertion order. On connect the full `gpio` (model and state)
//! then the full `atx`; then `atx` whenever its state differs from the last one sent, and
//! `gpio` with only the channels that changed (spec `atx-msd-gpio-redfish.md` 1 and 2.2).
//! Changes are seen at once (clicks, switches, the chip's edges) and by a re-read every
//! second, as kvmd's pollers do.

use std::time::Duration;

use crate::atx::Atx;
use crate::gpio::{Full, Gpio, State};
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use kvmd_core::routes::{Access, Answer, Api, Route};
use kvmd_core::service::CancellationToken;

/// The feed's path on the service socket.
pub const PATH: &str = "/gpio/feed";

/// The group's route.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get(PATH)
            .access(Access::Public)
            .internal()
            .doc("The `gpio` and `atx` parts of kvmd-hid's `/ws`, as NDJSON")
            .answer(Answer::Stream("application/x-ndjson")),
        feed,
    );
}

fn line<E: serde::Serialize, F: serde::Serialize>(event_type: &str, event: &E, full: &F) -> Bytes {
    let (event, full) = (kvmd_core::json::to_compact_string(event), kvmd_core::json::to_compact_string(full));
    Bytes::from(kvmd_core::feed::line(&[event_type, &event, &full]))
}

async fn feed(
    atx: web::Data<Atx>,
    gpio: web::Data<Gpio>,
    shutdown: web::Data<CancellationToken>,
    req: actix_web::HttpRequest,
) -> HttpResponse {
    let (atx, gpio) = (atx.into_inner(), gpio.into_inner());
    kvmd_core::service::feed_response(&req, shutdown.get_ref().clone(), move |tx| async move {
        let mut atx_rx = atx.subscribe();
        let (mut outputs, mut edges) = gpio.subscribe();
        let model = gpio.model();
        let mut state = gpio.state();
        let full = |state: &State| Full { model: model.clone(), state: state.clone() };
        let first = full(&state);
        let mut atx_sent = *atx_rx.borrow_and_update();
        if tx.send(line("gpio", &first, &first)).await.is_err()
            || tx.send(line("atx", &atx_sent, &atx_sent)).await.is_err()
        {
            return;
        }
        let mut reread = tokio::time::interval(Duration::from_secs(1));
        reread.tick().await;
        loop {
            tokio::select! {
                r = atx_rx.changed() => if r.is_err() { return },
                r = outputs.changed() => if r.is_err() { return },
                r = edges.changed() => if r.is_err() { return },
                _ = reread.tick() => {}
            }
            let a = *atx_rx.borrow_and_update();
            if a != atx_sent {
                if tx.send(line("atx", &a, &a)).await.is_err() {
                    return;
                }
                atx_sent = a;
            }
            outputs.borrow_and_update();
            edges.borrow_and_update();
            let now = gpio.state();
            if let Some(ev) = crate::gpio::state_changes(&state, &now) {
                if tx.send(line("gpio", &ev, &full(&now))).await.is_err() {
                    return;
                }
                state = now;
            }
        }
    })
}
