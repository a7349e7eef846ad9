//! The Kasm API's error: a real HTTP status and `{"error_message": ..., "status": "error"}`
//! (spec `compat-blikvm-kasm.md` B.1.4), never an in-band error on a 200.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

/// An error of a Kasm-style route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KasmError {
    /// The status.
    pub status: StatusCode,
    /// What went wrong, for the caller.
    pub message: String,
}

impl KasmError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    /// 400: a body that is not a JSON object, a missing field, a wrong type.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: a missing, unknown, expired or foreign-network key, or a wrong secret.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Invalid API key or secret")
    }

    /// 403: a key without the scope or role the call needs.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404: an unknown id.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 500: a real fault (a service that cannot be reached, an answer that cannot be read),
    /// logged here.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "a Kasm call failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error; see the service's log")
    }
}

impl std::fmt::Display for KasmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl ResponseError for KasmError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        kvmd_core::routes::kasm_error(self.status, &self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn futures_executor<F: std::future::Future<Output = Result<actix_web::web::Bytes, E>>, E>(f: F) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap_or_else(|e| panic!("{e}"));
        rt.block_on(f).map(|b| b.to_vec()).unwrap_or_default()
    }

    #[test]
    fn the_body_has_exactly_the_two_keys() {
        let r = KasmError::not_found("image not found").error_response();
        let b = actix_web::body::to_bytes(r.into_body());
        let b = futures_executor(b);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
        assert_eq!(v, serde_json::json!({"error_message": "image not found", "status": "error"}));
        assert_eq!(KasmError::unauthorized().status, StatusCode::UNAUTHORIZED);
    }
}
