//! `/wol` (A.2.10, A.4.5): the suite sends no Wake-on-LAN packets (no service of it has
//! the network for broadcasts), so a well-formed MAC is `unsupported` and anything else
//! `failed`, as A.4.5 parses it: every non-hex character stripped, then exactly 12 hex
//! digits.

use actix_web::HttpResponse;
use kvmd_core::routes::{Api, Role};

use crate::reply::Failed;
use crate::shim::Shim;

/// The group's routes.
pub fn routes(api: &mut Api) {
    super::both(api, "/wol", "Wake-on-LAN (not in the suite: `unsupported`)", Role::Operator, wol);
}

/// The MAC's 12 hex digits, as A.4.5 reads them.
pub fn mac(text: &str) -> Option<String> {
    let hex: String = text.chars().filter(char::is_ascii_hexdigit).collect();
    (hex.len() == 12).then(|| hex.to_ascii_lowercase())
}

async fn wol(shim: Shim) -> Result<HttpResponse, Failed> {
    let _ = shim.fields.str("mac").as_deref().and_then(mac).ok_or_else(Failed::plain)?;
    Err(Failed::unsupported())
}

#[cfg(test)]
mod tests {
    #[test]
    fn macs() {
        assert_eq!(super::mac("aa:bb:cc:dd:ee:ff").as_deref(), Some("aabbccddeeff"));
        assert_eq!(super::mac("AA-BB-CC-DD-EE-FF").as_deref(), Some("aabbccddeeff"));
        assert_eq!(super::mac("aa:bb:cc"), None);
        assert_eq!(super::mac("aa:bb:cc:dd:ee:ff:00"), None);
    }
}
