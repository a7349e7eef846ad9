//! Redfish's VirtualMedia, on the MSD (spec `atx-msd-gpio-redfish.md` 4.2): the collection,
//! the `MSD` document, `InsertMedia` and `EjectMedia`, mapped as kvmd maps them (flash mode
//! always, `WriteProtected` the inverse of `rw`, URLs not fetched). The service root,
//! Systems and Managers are kvmd-gpio's.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use kvmd_core::ApiError;
use kvmd_core::envelope::error_response;
use kvmd_core::redfish::{document, http_error, no_content};
use kvmd_core::routes::{Answer, Api, Body, Route};
use kvmd_core::valid;
use serde_json::{Value, json};

use super::block;
use crate::msd::Msd;

const DOC: Answer = Answer::Media("application/json");
const MSD: &str = "/redfish/v1/Managers/BMC/VirtualMedia/MSD";

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get("/redfish/v1/Managers/BMC/VirtualMedia").doc("The virtual media: the MSD").answer(DOC),
        collection,
    )
    .route(Route::get(MSD).doc("The MSD as a Redfish virtual medium").answer(DOC), media)
    .route(
        Route::post("/redfish/v1/Managers/BMC/VirtualMedia/MSD/Actions/VirtualMedia.InsertMedia")
            .doc("Attaches a storage image (`Image`) in flash mode, `WriteProtected` unless told not")
            .body(Body::Raw("application/json"))
            .answer(Answer::Media("no body (204)")),
        insert,
    )
    .route(
        Route::post("/redfish/v1/Managers/BMC/VirtualMedia/MSD/Actions/VirtualMedia.EjectMedia")
            .doc("Ejects and unselects the image")
            .answer(Answer::Media("no body (204)")),
        eject,
    );
}

async fn collection() -> HttpResponse {
    document(&json!({
        "@odata.id": "/redfish/v1/Managers/BMC/VirtualMedia",
        "@odata.type": "#VirtualMediaCollection.VirtualMediaCollection",
        "Members": [{"@odata.id": MSD}],
        "Members@odata.count": 1,
        "Name": "Virtual Media Collection",
    }))
}

async fn media(msd: web::Data<Msd>) -> HttpResponse {
    let msd = msd.into_inner();
    let state = match block(move || Ok(msd.state())).await {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let drive = if state.online { state.drive.as_ref() } else { None };
    let image = drive.and_then(|d| d.image.as_ref()).map(|i| i.name.clone());
    let image_name = image.as_deref().map(|n| n.rsplit('/').next().unwrap_or(n).to_owned());
    let connected_via = drive.map(|_| if image.is_some() { "Oem" } else { "NotConnected" });
    document(&json!({
        "@odata.id": MSD,
        "@odata.type": "#VirtualMedia.v1_4_0.VirtualMedia",
        "Actions": {
            "#VirtualMedia.EjectMedia": {"target": format!("{MSD}/Actions/VirtualMedia.EjectMedia")},
            "#VirtualMedia.InsertMedia": {
                "Image@Redfish.AllowableValues": ["URI"],
                "target": format!("{MSD}/Actions/VirtualMedia.InsertMedia"),
            },
        },
        "ConnectedVia": connected_via,
        "Description": "PiKVM Virtual CD/DVD/Flash Drive",
        "Id": "MSD",
        "Image": image,
        "ImageName": image_name,
        "Inserted": drive.map(|d| d.connected),
        "MediaTypes": ["USBStick", "CD", "DVD"],
        "Name": "Virtual CD/DVD/Flash Drive",
        "Oem": {
            "PiKVM": {
                "@odata.context": "/redfish/v1/$metadata#PiKVMVirtualMedia.PiKVMVirtualMedia",
                "@odata.type": "#PiKVMVirtualMedia.v1_0_0.PiKVMVirtualMedia",
                "DriveOptical": drive.map(|d| d.cdrom),
                "MsdBusy": state.busy,
                "MsdEnabled": state.enabled,
                "MsdOnline": state.online,
            },
        },
        // kvmd's (sic): the inverse would be right.
        "WriteProtected": drive.map(|d| d.rw),
    }))
}

/// kvmd's `valid_bool` on a JSON value (`true`, `1`, `"yes"`, ...), `default` when absent.
fn json_bool(v: Option<&Value>, default: bool) -> Result<bool, ApiError> {
    match v {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Number(n)) => valid::boolean(Some(&n.to_string())),
        Some(Value::String(s)) => valid::boolean(Some(s)),
        Some(other) => valid::boolean(Some(&other.to_string())),
    }
}

fn insert_args(body: &[u8]) -> Result<(String, bool, bool), ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| http_error("Invalid body"))?;
    // kvmd: a JSON body that is not an object is a plain 500; here the same 400.
    let obj = v.as_object().ok_or_else(|| http_error("Invalid body"))?;
    let image = match obj.get("Image") {
        None | Some(Value::Null) => return Err(valid::none_error("stripped string")),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let name = crate::name::image_name(Some(crate::name::stripped(Some(&image))?), false)?;
    let inserted = json_bool(obj.get("Inserted"), true)?;
    let write_protected = json_bool(obj.get("WriteProtected"), true)?;
    Ok((name, inserted, !write_protected))
}

async fn insert(msd: web::Data<Msd>, body: web::Bytes) -> HttpResponse {
    let (name, inserted, rw) = match insert_args(&body) {
        Ok(a) => a,
        Err(e) => return error_response(&e),
    };
    let msd: Arc<Msd> = msd.into_inner();
    match block(move || msd.insert(name, inserted, rw)).await {
        Ok(()) => no_content(),
        Err(e) => error_response(&e),
    }
}

async fn eject(msd: web::Data<Msd>) -> HttpResponse {
    let msd = msd.into_inner();
    match block(move || msd.eject_media()).await {
        Ok(()) => no_content(),
        Err(e) => error_response(&e),
    }
}
