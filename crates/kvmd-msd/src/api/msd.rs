//! `/msd`, `/msd/set_params`, `/msd/set_connected`, `/msd/remove`, `/msd/reset` (spec
//! `atx-msd-gpio-redfish.md` 3, 3.6, 3.10).

use std::sync::Arc;

use actix_web::{HttpRequest, web};
use kvmd_core::envelope::{ApiResponse, ApiResult};
use kvmd_core::query::Query;
use kvmd_core::routes::{Answer, Api, Param, Route, Ty};
use kvmd_core::valid;
use serde_json::Value;

use super::{block, flag, image_arg};
use crate::msd::{Msd, State, err};

/// An image name parameter (kvmd's validator: parts of at most 255 characters).
pub(crate) const IMAGE: Param = Param::req("image", Ty::str(4096), "The image's name in the storage");

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get("/msd")
            .doc("The storage (images, partitions, transfers) and the drive")
            .answer(Answer::Envelope("`{enabled, online, busy, storage, drive}`")),
        get,
    )
    .route(
        Route::post("/msd/set_params").doc("Selects the image and the drive's mode (while disconnected)").params(
            const {
                &[
                    Param::opt("image", Ty::str(4096), "The image to select (empty: none)"),
                    Param::opt("cdrom", Ty::Bool, "A CD-ROM, else a flash drive"),
                    Param::opt("rw", Ty::Bool, "Read-write (cleared for a CD-ROM or an ISO)"),
                ]
            },
        ),
        set_params,
    )
    .route(
        Route::post("/msd/set_connected")
            .doc("Attaches the selected image to the host, or ejects it")
            .params(const { &[Param::req("connected", Ty::Bool, "Attach, else eject")] }),
        set_connected,
    )
    .route(Route::post("/msd/remove").doc("Deletes an image").params(const { &[IMAGE] }), remove)
    .route(Route::post("/msd/reset").doc("Ejects, and resets the drive to flash mode, read-only"), reset);
}

async fn get(msd: web::Data<Msd>) -> ApiResult<State> {
    let msd = msd.into_inner();
    Ok(ApiResponse::new(block(move || Ok(msd.state())).await?))
}

fn done() -> ApiResponse<Value> {
    ApiResponse::empty()
}

async fn set_params(msd: web::Data<Msd>, req: HttpRequest) -> ApiResult<Value> {
    let q = Query::of(&req);
    let image = match q.get("image") {
        None => None,
        Some(v) => {
            valid::check_raw(v, 4096)?;
            if crate::name::looks_like_url(v.trim()) {
                return Err(err::remote_disabled());
            }
            Some(crate::name::image_name(Some(v), true)?)
        }
    };
    let cdrom = q.get("cdrom").map(|v| valid::boolean(Some(v))).transpose()?;
    let rw = q.get("rw").map(|v| valid::boolean(Some(v))).transpose()?;
    let msd: Arc<Msd> = msd.into_inner();
    block(move || msd.set_params(image, cdrom, rw)).await?;
    Ok(done())
}

async fn set_connected(msd: web::Data<Msd>, req: HttpRequest) -> ApiResult<Value> {
    let connected = valid::boolean(Query::of(&req).get("connected"))?;
    let msd = msd.into_inner();
    block(move || msd.set_connected(connected)).await?;
    Ok(done())
}

async fn remove(msd: web::Data<Msd>, req: HttpRequest) -> ApiResult<Value> {
    let name = image_arg(&Query::of(&req))?;
    let msd = msd.into_inner();
    block(move || msd.remove(&name)).await?;
    Ok(done())
}

async fn reset(msd: web::Data<Msd>) -> ApiResult<Value> {
    let msd = msd.into_inner();
    block(move || msd.reset()).await?;
    Ok(done())
}

/// `remove_incomplete`, as `write` and `write_remote` read it.
pub(crate) fn remove_incomplete(q: &Query) -> Result<bool, kvmd_core::ApiError> {
    flag(q, "remove_incomplete", false)
}
