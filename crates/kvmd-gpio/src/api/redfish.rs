//! `/redfish/v1`: the service root (no auth), Systems with `ComputerSystem.Reset` on the
//! ATX actions, and Managers (spec `atx-msd-gpio-redfish.md` section 4). Documents are
//! kvmd's JSON without the envelope; errors keep the envelope (`HttpError`, 400); actions
//! answer 204 with no body. VirtualMedia is kvmd-msd's.

use actix_web::{HttpRequest, HttpResponse, web};
use kvmd_core::ApiError;
use kvmd_core::envelope::error_response;
use kvmd_core::redfish::{document, http_error, no_content};
use kvmd_core::routes::{Access, Answer, Api, Body, Method, Route};
use serde_json::{Value, json};

use crate::atx::{Atx, Button, PowerAction};

/// The `ResetType`s kvmd allows, in its order.
const RESET_TYPES: [&str; 6] = ["On", "ForceOff", "GracefulShutdown", "ForceRestart", "ForceOn", "PushPowerButton"];

const DOC: Answer = Answer::Media("application/json");

/// The group's routes.
pub fn routes(api: &mut Api) {
    const SYSTEM: &str = "/redfish/v1/Systems/{sid}";
    api.route(Route::get("/redfish/v1").access(Access::Public).doc("Redfish service root").answer(DOC), root)
        .route(Route::get("/redfish/v1/Systems").doc("The systems: `0` (ATX) when ATX is enabled").answer(DOC), systems)
        .route(Route::get(SYSTEM).doc("A system: its power state and reset action").answer(DOC), system)
        .route(
            Route::new(Method::Patch, SYSTEM)
                .doc("Accepted and ignored (tools that set boot options)")
                .answer(Answer::Media("no body (204)")),
            patch,
        )
        .route(
            Route::post("/redfish/v1/Systems/{sid}/Actions/ComputerSystem.Reset")
                .doc("`ResetType` mapped onto the ATX power actions")
                .body(Body::Raw("application/json"))
                .answer(Answer::Media("no body (204)")),
            reset,
        )
        .route(Route::get("/redfish/v1/Managers").doc("The managers: the BMC").answer(DOC), managers)
        .route(Route::get("/redfish/v1/Managers/BMC").doc("The BMC").answer(DOC), bmc);
}

async fn root() -> HttpResponse {
    document(&json!({
        "@odata.id": "/redfish/v1",
        "@odata.type": "#ServiceRoot.v1_6_0.ServiceRoot",
        "Id": "RootService",
        "Managers": {"@odata.id": "/redfish/v1/Managers"},
        "Name": "Root Service",
        "RedfishVersion": "1.6.0",
        "Systems": {"@odata.id": "/redfish/v1/Systems"},
    }))
}

async fn systems(atx: web::Data<Atx>) -> HttpResponse {
    let members: Vec<Value> =
        if atx.enabled() { vec![json!({"@odata.id": "/redfish/v1/Systems/0"})] } else { Vec::new() };
    document(&json!({
        "@odata.id": "/redfish/v1/Systems",
        "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
        "Members@odata.count": members.len(),
        "Members": members,
        "Name": "Computer System Collection",
    }))
}

/// The system `sid` names: PiKVM's own (`0`); a Switch port is never one here (the
/// suite has no Switch).
fn check_sid(req: &HttpRequest) -> Result<(), ApiError> {
    let sid = req.match_info().get("sid").unwrap_or("").trim();
    if sid == "0" {
        return Ok(());
    }
    match sid.strip_prefix("SwitchPort") {
        Some(n) if kvmd_core::valid::int(Some(n), "int", Some(0), None).is_ok() => {
            Err(http_error("Non-existent Switch Port ID"))
        }
        _ => Err(http_error("Missing or invalid Server ID")),
    }
}

/// kvmd's `HostName`: `server.host` of meta.yaml (the host's name for `@auto`, empty or
/// unreadable), every character outside `[a-zA-Z0-9_.]` as `_`.
fn host_name(meta: &std::path::Path) -> String {
    #[derive(serde::Deserialize, Default)]
    struct Server {
        host: Option<String>,
    }
    #[derive(serde::Deserialize, Default)]
    struct Meta {
        server: Option<Server>,
    }
    // meta.yaml is parsed again only when it changes (one `stat` per request), as kvmd-info does.
    type Cached = Option<(std::path::PathBuf, Option<std::time::SystemTime>, String)>;
    static CACHE: std::sync::Mutex<Cached> = std::sync::Mutex::new(None);
    let mtime = std::fs::metadata(meta).and_then(|m| m.modified()).ok();
    let mut cache = CACHE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let host = match cache.as_ref() {
        Some((p, t, h)) if p == meta && *t == mtime && mtime.is_some() => h.clone(),
        _ => {
            let text = std::fs::read_to_string(meta).unwrap_or_default();
            let parsed: Meta = serde_saphyr::from_str(&text).unwrap_or_default();
            let host = parsed.server.and_then(|s| s.host).map(|h| h.trim().to_owned()).unwrap_or_default();
            *cache = Some((meta.to_owned(), mtime, host.clone()));
            host
        }
    };
    drop(cache);
    let host = if host.is_empty() || host == "@auto" {
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned()
    } else {
        host
    };
    host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '.' { c } else { '_' }).collect()
}

async fn system(req: HttpRequest, atx: web::Data<Atx>, cfg: web::Data<crate::Config>) -> HttpResponse {
    if let Err(e) = check_sid(&req) {
        return error_response(&e);
    }
    let on = atx.state().leds.power;
    document(&json!({
        "@odata.id": "/redfish/v1/Systems/0",
        "@odata.type": "#ComputerSystem.v1_10_0.ComputerSystem",
        "Actions": {
            "#ComputerSystem.Reset": {
                "ResetType@Redfish.AllowableValues": RESET_TYPES,
                "target": "/redfish/v1/Systems/0/Actions/ComputerSystem.Reset",
            },
            "#ComputerSystem.SetDefaultBootOrder": {
                "target": "/redfish/v1/Systems/0/Actions/ComputerSystem.SetDefaultBootOrder",
            },
        },
        "Boot": {"BootSourceOverrideEnabled": "Disabled", "BootSourceOverrideTarget": null},
        "HostName": host_name(&cfg.meta),
        "Id": "0",
        "PowerState": if on { "On" } else { "Off" },
    }))
}

async fn patch(req: HttpRequest) -> HttpResponse {
    match check_sid(&req) {
        Ok(()) => no_content(),
        Err(e) => error_response(&e),
    }
}

/// The `ResetType` of a body, exactly one of [`RESET_TYPES`] once stripped.
fn reset_type(body: &[u8]) -> Option<&'static str> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let t = v.as_object()?.get("ResetType")?.as_str()?.trim();
    RESET_TYPES.into_iter().find(|r| *r == t)
}

async fn reset(req: HttpRequest, body: web::Bytes, atx: web::Data<Atx>) -> HttpResponse {
    if let Err(e) = check_sid(&req) {
        return error_response(&e);
    }
    let Some(t) = reset_type(&body) else {
        return error_response(&http_error("Missing or invalid ResetType"));
    };
    if !atx.enabled() {
        return no_content();
    }
    let atx = atx.into_inner();
    let result = match t {
        "On" | "ForceOn" => atx.power(PowerAction::On, false).await,
        "GracefulShutdown" => atx.power(PowerAction::Off, false).await,
        "ForceOff" => atx.power(PowerAction::OffHard, false).await,
        "ForceRestart" => atx.power(PowerAction::ResetHard, false).await,
        _ => atx.click(Button::Power, false).await,
    };
    match result {
        Ok(()) => no_content(),
        Err(e) => error_response(&e),
    }
}

async fn managers() -> HttpResponse {
    document(&json!({
        "@odata.id": "/redfish/v1/Managers",
        "@odata.type": "#ManagerCollection.ManagerCollection",
        "Members": [{"@odata.id": "/redfish/v1/Managers/BMC"}],
        "Members@odata.count": 1,
        "Name": "Manager Collection",
    }))
}

async fn bmc() -> HttpResponse {
    document(&json!({
        "@odata.id": "/redfish/v1/Managers/BMC",
        "@odata.type": "#Manager.v1_15_0.Manager",
        "Description": "PiKVM Baseboard Management Controller",
        "Id": "BMC",
        "ManagerType": "BMC",
        "Name": "PiKVM Manager",
        "VirtualMedia": {"@odata.id": "/redfish/v1/Managers/BMC/VirtualMedia"},
    }))
}
