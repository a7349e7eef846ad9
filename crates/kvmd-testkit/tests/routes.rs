//! The fast layer: every service's declared routes walked in-process (see
//! `kvmd_testkit::service::check_routes`), against the spec's endpoint index
//! (`http.md` section 7) and the checked-in OpenAPI document.

use kvmd_testkit::service::{self, check_routes, documented, exposed};

/// `http.md` section 7, the routes each of our services owns, plus what the suite adds.
const AUTH: &[(&str, &str)] = &[("POST", "/api/auth/login"), ("POST", "/api/auth/logout"), ("GET", "/api/auth/check")];
const INFO: &[(&str, &str)] = &[
    ("GET", "/api/info"),
    ("GET", "/api/log"),
    ("GET", "/api/export/prometheus/metrics"),
    // The suite's own: the OpenAPI document.
    ("GET", "/api/openapi.json"),
];
const HID: &[(&str, &str)] = &[
    ("GET", "/api/ws"),
    ("GET", "/api/hid"),
    ("GET", "/api/hid/keymaps"),
    ("GET", "/api/hid/inactivity"),
    ("POST", "/api/hid/set_params"),
    ("POST", "/api/hid/set_connected"),
    ("POST", "/api/hid/reset"),
    ("POST", "/api/hid/print"),
    ("POST", "/api/hid/events/send_key"),
    ("POST", "/api/hid/events/send_shortcut"),
    ("POST", "/api/hid/events/send_mouse_button"),
    ("POST", "/api/hid/events/send_mouse_move"),
    ("POST", "/api/hid/events/send_mouse_relative"),
    ("POST", "/api/hid/events/send_mouse_wheel"),
];
const STREAMER: &[(&str, &str)] = &[
    ("GET", "/api/streamer"),
    ("GET", "/api/streamer/snapshot"),
    ("DELETE", "/api/streamer/snapshot"),
    ("GET", "/api/streamer/ocr"),
    ("POST", "/api/streamer/set_params"),
    ("POST", "/api/streamer/reset"),
    // uStreamer's public paths (streamer-ustreamer.md section 2), under the front's /streamer.
    ("GET", "/streamer/"),
    ("GET", "/streamer/state"),
    ("GET", "/streamer/snapshot"),
    ("GET", "/streamer/stream"),
    ("GET", "/streamer/favicon.ico"),
];

/// `http.md` section 7's ATX, GPIO and Redfish rows (Redfish also at `/redfish`, which the
/// front maps onto these).
const GPIO: &[(&str, &str)] = &[
    ("GET", "/api/atx"),
    ("POST", "/api/atx/power"),
    ("POST", "/api/atx/click"),
    ("GET", "/api/gpio"),
    ("POST", "/api/gpio/switch"),
    ("POST", "/api/gpio/pulse"),
    ("GET", "/api/redfish/v1"),
    ("GET", "/api/redfish/v1/Systems"),
    ("GET", "/api/redfish/v1/Systems/{sid}"),
    ("PATCH", "/api/redfish/v1/Systems/{sid}"),
    ("POST", "/api/redfish/v1/Systems/{sid}/Actions/ComputerSystem.Reset"),
    ("GET", "/api/redfish/v1/Managers"),
    ("GET", "/api/redfish/v1/Managers/BMC"),
];

/// `http.md` section 7's MSD rows and the Redfish VirtualMedia ones (spec
/// `atx-msd-gpio-redfish.md` 4.2).
const MSD: &[(&str, &str)] = &[
    ("GET", "/api/msd"),
    ("POST", "/api/msd/set_params"),
    ("POST", "/api/msd/set_connected"),
    ("POST", "/api/msd/remove"),
    ("POST", "/api/msd/reset"),
    ("POST", "/api/msd/write"),
    ("GET", "/api/msd/read"),
    ("POST", "/api/msd/write_remote"),
    ("GET", "/api/redfish/v1/Managers/BMC/VirtualMedia"),
    ("GET", "/api/redfish/v1/Managers/BMC/VirtualMedia/MSD"),
    ("POST", "/api/redfish/v1/Managers/BMC/VirtualMedia/MSD/Actions/VirtualMedia.InsertMedia"),
    ("POST", "/api/redfish/v1/Managers/BMC/VirtualMedia/MSD/Actions/VirtualMedia.EjectMedia"),
];

fn openapi() -> serde_json::Value {
    let text = std::fs::read_to_string(service::openapi_file()).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_default()
}

/// The exposed routes are exactly the spec's (and the document lists exactly them).
fn same_as_spec_and_document(table: &kvmd_core::routes::ServiceRoutes, spec: &[(&str, &str)]) -> Vec<String> {
    let mut errors = Vec::new();
    let exposed = exposed(table);
    for (m, p) in &exposed {
        let in_spec = spec.iter().any(|(sm, sp)| sm == m && sp == p)
            // HEAD and OPTIONS of uStreamer's face, and its `/` at the bare prefix.
            || (p.starts_with("/streamer") && !p.starts_with("/streamer/") && p != "/streamer")
            || (!p.starts_with("/api/") && matches!(m.as_str(), "HEAD" | "OPTIONS" | "GET"));
        if !in_spec {
            errors.push(format!("{m} {p}: exposed but in no spec"));
        }
    }
    let documented = documented(&openapi(), table.service);
    if documented != exposed {
        errors.push(format!(
            "docs/openapi.json lists {documented:?} for {}, the app exposes {exposed:?} (run `just openapi`)",
            table.service
        ));
    }
    errors
}

async fn walk<S: service::App>(svc: service::TestService<S>, spec: &[(&str, &str)]) {
    let mut errors = check_routes(&svc, spec).await;
    errors.extend(same_as_spec_and_document(&svc.table, spec));
    assert!(errors.is_empty(), "{}:\n{}", svc.table.service, errors.join("\n"));
}

#[actix_web::test]
async fn auth_routes() {
    walk(service::auth().await, AUTH).await;
}

#[actix_web::test]
async fn hid_routes() {
    walk(service::hid().await, HID).await;
}

#[actix_web::test]
async fn info_routes() {
    walk(service::info().await, INFO).await;
}

#[actix_web::test]
async fn streamer_routes() {
    walk(service::streamer().await, STREAMER).await;
}

#[actix_web::test]
async fn gpio_routes() {
    walk(service::gpio().await, GPIO).await;
}

#[actix_web::test]
async fn msd_routes() {
    walk(service::msd().await, MSD).await;
}

#[actix_web::test]
async fn the_served_document_is_the_checked_in_one() {
    let svc = service::info().await;
    let a = svc.call("GET", "/openapi.json", true).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, std::fs::read_to_string(service::openapi_file()).unwrap_or_default());
    let doc: serde_json::Value = serde_json::from_str(&a.body).unwrap_or_default();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(svc.call("GET", "/openapi.json", false).await.status, 401);
}
