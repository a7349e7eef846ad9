//! What the in-process tests of kvmd-gpio share: the app on a virtual chip, requests as
//! the front's user, kvmd's error bodies.

#![allow(dead_code)] // each test binary uses its own part

use std::sync::Arc;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::test::{self, TestRequest};
use kvmd_gpio::atx::Atx;
use kvmd_gpio::chip::VirtualChip;
use kvmd_gpio::config::Config;

/// The app of `cfg` on `chip`, and its ATX (the LED reader is the caller's to start).
pub(crate) async fn app(
    cfg: Config,
    chip: Arc<VirtualChip>,
) -> (impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>, Arc<Atx>) {
    let parts = kvmd_gpio::Parts::new(cfg, chip, kvmd_core::service::CancellationToken::new())
        .unwrap_or_else(|e| panic!("{e:#}"));
    let app = test::init_service(parts.app()).await;
    (app, parts.atx.into_inner())
}

/// Status, `Content-Type` and body of `method path` with `body`, as the front's user.
pub(crate) async fn send<S>(app: &S, method: &str, path: &str, body: &str) -> (u16, Option<String>, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let m = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap_or(actix_web::http::Method::GET);
    let req = TestRequest::default()
        .method(m)
        .uri(path)
        .insert_header((kvmd_core::authn::AUTH_USER_HEADER, "admin"))
        .insert_header((kvmd_core::role::ROLE_HEADER, "admin"))
        .set_payload(body.to_owned())
        .to_request();
    actix_web::HttpMessage::extensions_mut(&req).insert(kvmd_core::net::FromFront);
    let res = test::call_service(app, req).await;
    let ct = res.headers().get("content-type").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let status = res.status().as_u16();
    (status, ct, String::from_utf8_lossy(&test::read_body(res).await).into_owned())
}

/// Status and body of `method path` without a body.
pub(crate) async fn call<S>(app: &S, method: &str, path: &str) -> (u16, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let (status, _, body) = send(app, method, path, "").await;
    (status, body)
}

/// kvmd's error envelope of `name` and `msg`.
pub(crate) fn error(name: &str, msg: &str) -> String {
    format!(
        "{{\n    \"ok\": false,\n    \"result\": {{\n        \"error\": \"{name}\",\n        \"error_msg\": \"{msg}\"\n    }}\n}}"
    )
}
