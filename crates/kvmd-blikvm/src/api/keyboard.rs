//! `/keyboard` (A.1.3, A.2.4): `{"keycodes": [...]}` presses the keys together and releases
//! them. The chord goes to kvmd-hid's `send_shortcut` in one call (modifiers first): each
//! press and release 50 ms apart, long enough for any BIOS, and kvmd-hid's own reports, so
//! nothing stays held if this service or the client goes away in between.

use actix_web::{HttpResponse, web};
use kvmd_core::routes::{Api, Role};

use crate::keys;
use crate::reply::{self, Failed};
use crate::shim::Shim;
use crate::upstream::{Send, Svc, Upstream};

/// The group's routes.
pub fn routes(api: &mut Api) {
    super::both(api, "/keyboard", "Presses `keycodes` together and releases them", Role::Operator, keyboard);
}

/// Presses `chord` (kvmd-hid's names) together and releases it.
pub async fn tap(up: &Upstream, caller: &crate::upstream::Caller, chord: &[&str]) -> Result<(), Failed> {
    if chord.is_empty() {
        return Ok(());
    }
    let path = format!("/hid/events/send_shortcut?keys={}", chord.join(","));
    up.call(Svc::Hid, "POST", &path, caller, Send::Nothing).await.map(|_| ())
}

async fn keyboard(shim: Shim, up: web::Data<Upstream>) -> Result<HttpResponse, Failed> {
    let list = shim.fields.get("keycodes").ok_or_else(|| Failed::because("keycodes is missing"))?;
    let chord = keys::chord(list).map_err(Failed::because)?;
    tap(&up, &shim.caller, &chord).await?;
    Ok(reply::ok("key input success", serde_json::Value::Null))
}
