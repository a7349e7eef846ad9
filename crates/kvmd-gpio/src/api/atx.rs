//! `/atx`: state, power actions and clicks (spec `atx-msd-gpio-redfish.md` section 1).

use actix_web::{HttpRequest, web};
use kvmd_core::envelope::{ApiResponse, ApiResult};
use kvmd_core::query::Query;
use kvmd_core::routes::{Answer, Api, Param, Route, Ty};
use serde_json::Value;

use crate::atx::{Atx, AtxState, Button, PowerAction};

const WAIT: Param = Param::opt("wait", Ty::Bool, "Answer when the click and its 1 s tail are over");

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get("/atx")
            .doc("ATX state: enabled, busy, running clicks, the power and HDD LEDs")
            .answer(Answer::Envelope("`{acts, busy, enabled, leds}`")),
        state,
    )
    .route(
        Route::post("/atx/power")
            .doc("A power action: the click it needs given the power LED, or nothing")
            .params(const { &[Param::req("action", Ty::Enum(&PowerAction::NAMES), "What to do"), WAIT] }),
        power,
    )
    .route(
        Route::post("/atx/click")
            .doc("Clicks a button (power 0.1 s, power_long 5.5 s, reset 0.1 s by default)")
            .params(const { &[Param::req("button", Ty::Enum(&Button::NAMES), "The button"), WAIT] }),
        click,
    );
}

async fn state(atx: web::Data<Atx>) -> ApiResponse<AtxState> {
    ApiResponse::new(atx.state())
}

async fn power(atx: web::Data<Atx>, req: HttpRequest) -> ApiResult<Value> {
    let q = Query::of(&req);
    let name = super::choice(q.get("action"), "ATX power action", &PowerAction::NAMES)?;
    let wait = super::wait(&q)?;
    let action = PowerAction::named(&name).ok_or_else(|| kvmd_core::valid::invalid_error(&name, "ATX power action"))?;
    atx.into_inner().power(action, wait).await?;
    Ok(ApiResponse::empty())
}

async fn click(atx: web::Data<Atx>, req: HttpRequest) -> ApiResult<Value> {
    let q = Query::of(&req);
    let name = super::choice(q.get("button"), "ATX button", &Button::NAMES)?;
    let wait = super::wait(&q)?;
    let button = Button::named(&name).ok_or_else(|| kvmd_core::valid::invalid_error(&name, "ATX button"))?;
    atx.into_inner().click(button, wait).await?;
    Ok(ApiResponse::empty())
}
