//! BliKVM's answer: `{"status": 1|0|-1, "info": "...", "data": ...}`, compact, in that key
//! order, `data` an empty JSON array when there is nothing (PHP's empty array), and HTTP
//! 200 on a logical failure (spec `compat-blikvm-kasm.md` A.2.1, A.4.7). Only a missing or
//! bad token is a real 401 (A.4.3), a role that may not do it a 403, and a service that
//! cannot be reached a 502.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::Value;

/// `{"status","info","data"}` with `status` 1 and `data` (`[]` for `Null`).
pub fn ok(info: &str, data: Value) -> HttpResponse {
    let data = if data.is_null() { "[]".to_owned() } else { data.to_string() };
    ok_ordered(info, data)
}

/// One of BliKVM's answers outside the envelope (`/atx`'s, which have no `data`), already
/// in BliKVM's key order.
pub fn raw(text: String) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(text)
}

/// `{"k1": v1, ...}` with the keys in the order given (BliKVM's, which a JSON map would sort).
pub fn ordered(pairs: &[(&str, Value)]) -> String {
    let fields: Vec<String> = pairs.iter().map(|(k, v)| format!("{}:{v}", Value::from(*k))).collect();
    format!("{{{}}}", fields.join(","))
}

/// [`ok`] with `data` already rendered (in BliKVM's key order).
pub fn ok_ordered(info: &str, data: String) -> HttpResponse {
    kvmd_core::routes::blikvm_envelope(StatusCode::OK, 1, info, &data)
}

/// A failed BliKVM call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// The HTTP status (200 for a logical failure).
    pub http: StatusCode,
    /// BliKVM's `status`: 0, or -1 for a path error.
    pub status: i32,
    /// What went wrong, for the caller.
    pub info: String,
}

impl Failed {
    /// A logical failure: HTTP 200, `status` 0.
    pub fn because(info: impl Into<String>) -> Self {
        Self { http: StatusCode::OK, status: 0, info: info.into() }
    }

    /// BliKVM's plain `failed`.
    pub fn plain() -> Self {
        Self::because("failed")
    }

    /// A feature the suite does not have here (A.4.5).
    pub fn unsupported() -> Self {
        Self::because("unsupported")
    }

    /// A missing, unknown, expired or revoked token: 401 (A.4.3).
    pub fn unauthorized() -> Self {
        Self { http: StatusCode::UNAUTHORIZED, status: 0, info: "unauthorized".into() }
    }

    /// The user's role may not do this: 403.
    pub fn forbidden() -> Self {
        Self { http: StatusCode::FORBIDDEN, status: 0, info: "forbidden".into() }
    }

    /// A service could not be reached or answered nonsense: 502, logged here.
    pub fn upstream(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "a BliKVM call failed");
        Self { http: StatusCode::BAD_GATEWAY, status: 0, info: "service unavailable; see the log".into() }
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.http.as_u16(), self.info)
    }
}

impl ResponseError for Failed {
    fn status_code(&self) -> StatusCode {
        self.http
    }

    fn error_response(&self) -> HttpResponse {
        kvmd_core::routes::blikvm_error(self.http, self.status, &self.info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn text(r: HttpResponse) -> String {
        let b = actix_web::body::to_bytes(r.into_body()).await.unwrap_or_default();
        String::from_utf8_lossy(&b).into_owned()
    }

    #[actix_web::test]
    async fn the_envelope_is_compact_in_blikvms_order() {
        assert_eq!(
            text(ok("login success", serde_json::json!({"token": "ab"}))).await,
            r#"{"status":1,"info":"login success","data":{"token":"ab"}}"#
        );
        assert_eq!(
            text(ok("key input success", Value::Null)).await,
            r#"{"status":1,"info":"key input success","data":[]}"#
        );
        let r = Failed::unauthorized().error_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(text(r).await, r#"{"status":0,"info":"unauthorized","data":[]}"#);
        assert_eq!(text(Failed::plain().error_response()).await, r#"{"status":0,"info":"failed","data":[]}"#);
    }
}
