//! The fast layer: every service's declared routes walked in-process (see
//! `kvmd_testkit::service::check_routes`), against the spec's endpoint index
//! (`http.md` section 7) and the checked-in OpenAPI document.

use kvmd_testkit::service::{self, check_routes, documented, exposed};

/// `http.md` section 7, the routes each of our services owns, plus what the suite adds.
const AUTH: &[(&str, &str)] = &[
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/logout"),
    ("GET", "/api/auth/check"),
    // The suite's: the live sessions (issue #18; docs/SECURITY.md "Sessions").
    ("GET", "/api/auth/sessions"),
    ("POST", "/api/auth/sessions/revoke"),
    ("GET", "/api/auth/users"),
    ("POST", "/api/auth/users/create"),
    ("POST", "/api/auth/users/update"),
    ("POST", "/api/auth/users/delete"),
    ("POST", "/api/auth/links"),
    ("GET", "/api/auth/link"),
];
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
    // The suite's: storage providers for write_remote (issue #18, Kasm's storage providers).
    ("GET", "/api/msd/providers"),
    ("POST", "/api/msd/providers/create"),
    ("GET", "/api/redfish/v1/Managers/BMC/VirtualMedia"),
    ("GET", "/api/redfish/v1/Managers/BMC/VirtualMedia/MSD"),
    ("POST", "/api/redfish/v1/Managers/BMC/VirtualMedia/MSD/Actions/VirtualMedia.InsertMedia"),
    ("POST", "/api/redfish/v1/Managers/BMC/VirtualMedia/MSD/Actions/VirtualMedia.EjectMedia"),
];

/// `compat-blikvm-kasm.md` B.1.3 and B.2.2: the endpoints the suite serves so far.
const KASM: &[(&str, &str)] = &[
    ("POST", "/api/public/get_images"),
    ("POST", "/api/public/request_kasm"),
    ("POST", "/api/public/get_kasm_status"),
    ("POST", "/api/public/get_kasms"),
    ("POST", "/api/public/destroy_kasm"),
    ("POST", "/api/public/exec_command_kasm"),
    ("POST", "/api/public/get_users"),
    ("POST", "/api/public/get_user"),
    ("POST", "/api/public/logout_user"),
    ("POST", "/api/public/create_user"),
    ("POST", "/api/public/update_user"),
    ("POST", "/api/public/delete_user"),
    ("POST", "/api/admin/create_user"),
    ("POST", "/api/admin/update_user"),
    ("POST", "/api/admin/delete_user"),
    ("POST", "/api/admin/get_users"),
    ("POST", "/api/admin/get_user"),
    ("POST", "/api/admin/logout_user"),
    ("POST", "/api/admin/update_image"),
    ("POST", "/api/admin/system_info"),
    ("POST", "/api/admin/create_storage_provider"),
    ("POST", "/api/admin/get_storage_providers"),
];

/// `compat-blikvm-kasm.md` A.4.1: BliKVM's paths, each for `GET` and `POST` (BliKVM never
/// checks the method), and its WebSocket.
const BLIKVM: &[(&str, &str)] = &[
    ("GET", "/api/login"),
    ("POST", "/api/login"),
    ("GET", "/login_api"),
    ("POST", "/login_api"),
    ("GET", "/change_user"),
    ("POST", "/change_user"),
    ("GET", "/keyboard"),
    ("POST", "/keyboard"),
    ("GET", "/paste"),
    ("POST", "/paste"),
    ("GET", "/atx"),
    ("POST", "/atx"),
    ("GET", "/wol"),
    ("POST", "/wol"),
    ("GET", "/msd_extra"),
    ("POST", "/msd_extra"),
    ("GET", "/msd_api"),
    ("POST", "/msd_api"),
    ("GET", "/os_img"),
    ("POST", "/os_img"),
    ("GET", "/read_dir"),
    ("POST", "/read_dir"),
    ("GET", "/mkdir"),
    ("POST", "/mkdir"),
    ("GET", "/upload_file"),
    ("POST", "/upload_file"),
    ("GET", "/big_file"),
    ("POST", "/big_file"),
    ("GET", "/kme"),
];

/// `webrtc-h264.md` section 1: Janus's WebSocket at the front's `/janus/ws`.
const WEBRTC: &[(&str, &str)] = &[("GET", "/janus/ws")];

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
async fn kasm_routes() {
    walk(service::kasm().await, KASM).await;
}

#[actix_web::test]
async fn blikvm_routes() {
    walk(service::blikvm().await, BLIKVM).await;
}

#[actix_web::test]
async fn webrtc_routes() {
    walk(service::webrtc().await, WEBRTC).await;
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

/// Every route whose role is not its method's default is in docs/SECURITY.md's table, and
/// the table names no other.
#[test]
fn every_role_exception_is_documented() {
    use kvmd_core::role::Role;
    let doc = std::fs::read_to_string(service::openapi_file().with_file_name("SECURITY.md")).unwrap_or_default();
    let table = doc.split("<!-- roles:").nth(1).and_then(|t| t.split("\n\n").next()).unwrap_or_default();
    let services = kvmd_nginx::services();
    let mut want = Vec::new();
    for s in &services {
        for r in &s.routes {
            if r.access == kvmd_core::routes::Access::User && r.role != Role::default_for(r.method) {
                for front in r.front_paths() {
                    want.push(format!("| `{} {front}` | {} |", r.method.as_str(), r.role));
                }
            }
        }
    }
    let rows: Vec<String> = table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.splitn(4, '|').take(3).collect::<Vec<_>>().join("|").trim().to_owned() + " |")
        .collect();
    assert!(!want.is_empty());
    assert_eq!(rows, want, "docs/SECURITY.md's roles table against the declarations");
}
