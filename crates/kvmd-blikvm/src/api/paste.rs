//! `/paste` (A.2.7): `{"text": ...}` typed on the target through kvmd-hid's `/hid/print`
//! with the configured keymap (`paste_keymap`, or the body's `keymap`) and per-key delay;
//! characters the keymap cannot type are skipped. The answer comes when the text has been
//! typed, as BliKVM's does.

use actix_web::{HttpResponse, web};
use kvmd_core::routes::{Api, Role};

use crate::config::Config;
use crate::reply::{self, Failed};
use crate::shim::Shim;
use crate::upstream::{Send, Svc, Upstream, q};

/// The group's routes.
pub fn routes(api: &mut Api) {
    super::both(api, "/paste", "Types `text` on the target", Role::Operator, paste);
}

async fn paste(shim: Shim, up: web::Data<Upstream>, config: web::Data<Config>) -> Result<HttpResponse, Failed> {
    let text = match shim.fields.get("text") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => return Err(Failed::because("text must be a string")),
        None => return Err(Failed::because("text is missing")),
    };
    let keymap = shim.fields.str("keymap").unwrap_or_else(|| config.paste_keymap.clone());
    let path = format!("/hid/print?limit=0&keymap={}&delay={}", q(&keymap), config.paste_delay.clamp(0.0, 5.0));
    up.call(Svc::Hid, "POST", &path, &shim.caller, Send::Text(text)).await?;
    Ok(reply::ok("char sent", serde_json::Value::Null))
}
