//! `/gpio`: model and state, switch and pulse (spec `atx-msd-gpio-redfish.md` section 2).

use actix_web::{HttpRequest, web};
use kvmd_core::ApiError;
use kvmd_core::envelope::{ApiResponse, ApiResult};
use kvmd_core::query::Query;
use kvmd_core::routes::{Answer, Api, Param, Route, Ty};
use kvmd_core::valid;
use serde_json::Value;

use crate::gpio::{Gpio, valid_channel};

const CHANNEL: Param = Param::req(
    "channel",
    Ty::Str { max_len: Some(255), pattern: Some("^[a-zA-Z_][a-zA-Z0-9_.-]*$") },
    "The output channel",
);
const WAIT: Param = Param::opt("wait", Ty::Bool, "Answer when the operation and its busy delay are over");

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get("/gpio")
            .doc("The channels: model (scheme and view) and state")
            .answer(Answer::Envelope("`{model: {scheme, view}, state: {inputs, outputs}}`")),
        get,
    )
    .route(
        Route::post("/gpio/switch")
            .doc("Switches an output channel")
            .params(const { &[CHANNEL, Param::req("state", Ty::Bool, "On or off"), WAIT] }),
        switch,
    )
    .route(
        Route::post("/gpio/pulse").doc("Pulses an output channel").params(
            const {
                &[
                    CHANNEL,
                    Param::opt(
                        "delay",
                        Ty::Float { min: Some(0.0), max: None },
                        "Seconds (0 = the channel's), clamped to its bounds",
                    ),
                    WAIT,
                ]
            },
        ),
        pulse,
    );
}

async fn get(gpio: web::Data<Gpio>) -> ApiResponse<crate::gpio::Full> {
    ApiResponse::new(crate::gpio::Full { model: gpio.model(), state: gpio.state() })
}

async fn switch(gpio: web::Data<Gpio>, req: HttpRequest) -> ApiResult<Value> {
    let q = Query::of(&req);
    let channel = valid_channel(q.get("channel"))?;
    let state = valid::boolean(q.get("state"))?;
    let wait = super::wait(&q)?;
    gpio.into_inner().switch(&channel, state, wait).await?;
    Ok(ApiResponse::empty())
}

/// `valid_float_f0`: a float of at least 0, its message printing the bound as `0`.
fn delay(arg: Option<&str>) -> Result<f64, ApiError> {
    let v = valid::float(Some(arg.unwrap_or("0")), "float", None, None)?;
    if v < 0.0 {
        return Err(ApiError::validator(format!(
            "The argument '{}' must be float and greater or equial than 0",
            kvmd_core::json::python_float_repr(v)
        )));
    }
    Ok(v)
}

async fn pulse(gpio: web::Data<Gpio>, req: HttpRequest) -> ApiResult<Value> {
    let q = Query::of(&req);
    let channel = valid_channel(q.get("channel"))?;
    let delay = delay(q.get("delay"))?;
    let wait = super::wait(&q)?;
    gpio.into_inner().pulse(&channel, delay, wait).await?;
    Ok(ApiResponse::empty())
}
