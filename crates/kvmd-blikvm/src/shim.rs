//! One authenticated BliKVM call ([`Shim`]): its fields, and the caller whose token
//! kvmd-auth accepted. The token is looked for where BliKVM clients send it, in the order of
//! spec `compat-blikvm-kasm.md` A.4.2 — `Authorization: Bearer`, a `token` header, a
//! `token` field of the body, a `token` query parameter — and then the suite's own session
//! cookie (refused from another site's page, as on every route: docs/SECURITY.md).

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use kvmd_core::query::Query;

use crate::body::Fields;
use crate::reply::Failed;
use crate::upstream::{Caller, Upstream};

/// An authenticated call.
#[derive(Debug)]
pub struct Shim {
    /// Who.
    pub caller: Caller,
    /// The body's fields.
    pub fields: Fields,
}

pub use kvmd_core::authn::client_addr;

/// The token of `req` with `fields`, and whether it came in the session cookie.
pub fn token_of(req: &HttpRequest, fields: &Fields) -> Option<(String, bool)> {
    let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    let bearer = h("Authorization")
        .and_then(|a| a.get(..7).filter(|s| s.eq_ignore_ascii_case("bearer ")).map(|_| a[7..].trim()))
        .filter(|t| !t.contains(':'));
    let found = bearer
        .map(str::to_owned)
        .or_else(|| h("token").map(str::to_owned))
        .or_else(|| fields.str("token").filter(|t| !t.is_empty()))
        .or_else(|| Query::of(req).get("token").filter(|t| !t.is_empty()).map(str::to_owned));
    match found {
        Some(t) => Some((t, false)),
        None => kvmd_core::authn::token_cookie(req).filter(|t| !t.is_empty()).map(|t| (t, true)),
    }
}

/// The caller of `req`: its token checked by kvmd-auth, or 401.
pub async fn caller(req: &HttpRequest, fields: &Fields) -> Result<Caller, Failed> {
    let (token, cookie) = token_of(req, fields).ok_or_else(Failed::unauthorized)?;
    // A browser sends the cookie by itself: not for another site's page.
    if cookie && kvmd_core::authn::cross_site(req) {
        tracing::warn!("refused a cross-site BliKVM request carrying the session cookie");
        return Err(Failed::forbidden());
    }
    // The suite's tokens are 64 hex digits: anything else is no token of ours.
    let token = kvmd_core::valid::auth_token(Some(&token)).map_err(|_| Failed::unauthorized())?;
    let up = req.app_data::<web::Data<Upstream>>().ok_or_else(|| Failed::upstream("no upstream"))?;
    let caller = up.authenticate(&token, &client_addr(req)).await?;
    req.extensions_mut().insert(kvmd_core::service::AccessUser(format!("{} (blikvm)", caller.user)));
    Ok(caller)
}

impl FromRequest for Shim {
    type Error = Failed;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Failed>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let fields = Fields::from_request(&req, payload);
        Box::pin(async move {
            let fields = fields.await?;
            let caller = caller(&req, &fields).await?;
            Ok(Shim { caller, fields })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn the_token_is_found_in_blikvms_order() {
        let f = Fields::parse("application/json", br#"{"token": "body"}"#).unwrap_or_default();
        let t = |r: TestRequest, f: &Fields| token_of(&r.to_http_request(), f);
        let all = || {
            TestRequest::with_uri("/keyboard?token=query")
                .insert_header(("Authorization", "Bearer bearer"))
                .insert_header(("token", "header"))
                .insert_header(("Cookie", "auth_token=cookie"))
        };
        assert_eq!(t(all(), &f), Some(("bearer".into(), false)));
        // An API key's bearer (`id:secret`) is no BliKVM token.
        let r = all().insert_header(("Authorization", "Bearer id:secret"));
        assert_eq!(t(r, &f), Some(("header".into(), false)));
        let r = TestRequest::with_uri("/keyboard?token=query").insert_header(("Cookie", "auth_token=cookie"));
        assert_eq!(t(r, &f), Some(("body".into(), false)));
        let r = || TestRequest::with_uri("/keyboard?token=query").insert_header(("Cookie", "auth_token=cookie"));
        assert_eq!(t(r(), &Fields::default()), Some(("query".into(), false)));
        let r = TestRequest::with_uri("/keyboard").insert_header(("Cookie", "auth_token=cookie"));
        assert_eq!(t(r, &Fields::default()), Some(("cookie".into(), true)));
        assert_eq!(t(TestRequest::with_uri("/keyboard"), &Fields::default()), None);
    }
}
