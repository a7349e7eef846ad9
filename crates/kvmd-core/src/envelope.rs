//! The kvmd envelope and kvmd's plain-text framework answers: the only place that builds
//! an API body.
//!
//! Success: `{"ok": true, "result": <object>}`; errors: `{"ok": false, "result":
//! {"error": ..., "error_msg": ...}}` (kvmd `make_json_response`, `make_json_exception`),
//! both serialised by [`crate::json::to_kvmd_string`]. `ok` is `status == 200`.
//! The plain-text answers (`404: Not Found`, `405: Method Not Allowed`, `308: Permanent
//! Redirect`, `302: Found`) are aiohttp's, which kvmd lets through unchanged.

use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, Responder};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::json::to_kvmd_string;

/// The result type of every API handler.
pub type ApiResult<T> = Result<ApiResponse<T>, ApiError>;

/// `Content-Type` of every kvmd JSON body.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";
/// `Content-Type` of aiohttp's plain-text answers.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// A successful kvmd response: status 200 and `{"ok": true, "result": T}`.
#[derive(Debug, Clone)]
pub struct ApiResponse<T> {
    result: T,
}

impl<T: Serialize> ApiResponse<T> {
    /// Wraps `result`.
    pub fn new(result: T) -> Self {
        Self { result }
    }
}

impl ApiResponse<Value> {
    /// The 36-byte `{"ok": true, "result": {}}` of almost every action endpoint.
    pub fn empty() -> Self {
        Self { result: json!({}) }
    }
}

impl<T: Serialize> Responder for ApiResponse<T> {
    type Body = BoxBody;

    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        json_response(StatusCode::OK, &self.result)
    }
}

/// The envelope body for `result` answered with `status`.
pub fn envelope_body<T: Serialize + ?Sized>(status: StatusCode, result: &T) -> String {
    #[derive(Serialize)]
    struct Envelope<'a, T: ?Sized> {
        ok: bool,
        result: &'a T,
    }
    to_kvmd_string(&Envelope { ok: status == StatusCode::OK, result })
}

/// A kvmd JSON response with any status.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, result: &T) -> HttpResponse {
    json_builder(status).body(envelope_body(status, result))
}

/// A response builder with kvmd's JSON content type, for handlers that add headers
/// (such as `Set-Cookie`) before calling [`json_body`].
pub fn json_builder(status: StatusCode) -> HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE)));
    b
}

/// The envelope of `result` for a builder made by [`json_builder`].
pub fn json_body<T: Serialize + ?Sized>(
    mut builder: HttpResponseBuilder,
    status: StatusCode,
    result: &T,
) -> HttpResponse {
    builder.body(envelope_body(status, result))
}

/// The error envelope of `err`.
pub fn error_response(err: &ApiError) -> HttpResponse {
    let status = err.status();
    json_response(status, &json!({"error": err.name, "error_msg": err.message}))
}

fn text(status: StatusCode) -> HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(TEXT_CONTENT_TYPE)));
    b
}

/// aiohttp's `404: Not Found`.
pub fn not_found() -> HttpResponse {
    text(StatusCode::NOT_FOUND).body("404: Not Found")
}

/// aiohttp's `405: Method Not Allowed` with `Allow: <methods>`.
pub fn method_not_allowed(allow: &str) -> HttpResponse {
    let mut b = text(StatusCode::METHOD_NOT_ALLOWED);
    if let Ok(v) = HeaderValue::from_str(allow) {
        b.insert_header((header::ALLOW, v));
    }
    b.body("405: Method Not Allowed")
}

/// aiohttp's `308: Permanent Redirect` to `location`.
pub fn permanent_redirect(location: &str) -> HttpResponse {
    let mut b = text(StatusCode::PERMANENT_REDIRECT);
    if let Ok(v) = HeaderValue::from_str(location) {
        b.insert_header((header::LOCATION, v));
    }
    b.body("308: Permanent Redirect")
}

/// aiohttp's `302: Found` to `location`; the caller adds `Set-Cookie`.
pub fn found(location: &str) -> HttpResponseBuilder {
    let mut b = text(StatusCode::FOUND);
    if let Ok(v) = HeaderValue::from_str(location) {
        b.insert_header((header::LOCATION, v));
    }
    b
}

/// aiohttp's default `client_max_size`, which kvmd keeps for the bodies it reads.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Why a request body could not be read; answered as aiohttp does (a handler's `?`
/// turns it into the response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Over `limit` bytes: aiohttp's plain-text 413.
    #[error("Maximum request body size {0} exceeded.")]
    TooLarge(usize),
    /// The connection broke or the framing was wrong: kvmd's 400.
    #[error("Cannot read the request body")]
    Unreadable,
}

impl actix_web::ResponseError for BodyError {
    fn status_code(&self) -> StatusCode {
        match self {
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Unreadable => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            BodyError::TooLarge(limit) => payload_too_large(*limit),
            BodyError::Unreadable => error_response(&ApiError::validator("Cannot read the request body")),
        }
    }
}

/// Reads a request body of at most `limit` bytes.
pub async fn read_body(mut payload: actix_web::web::Payload, limit: usize) -> Result<Vec<u8>, BodyError> {
    use futures_util::StreamExt;
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// aiohttp's 413 for a body over its limit (`client_max_size`).
pub fn payload_too_large(limit: usize) -> HttpResponse {
    text(StatusCode::PAYLOAD_TOO_LARGE).body(format!("Maximum request body size {limit} exceeded."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    async fn body_of(resp: HttpResponse) -> String {
        String::from_utf8(to_bytes(resp.into_body()).await.unwrap_or_default().to_vec()).unwrap_or_default()
    }

    #[actix_web::test]
    async fn error_bodies_are_kvmds() {
        // tests/golden/kvmd-4.197/direct/auth_check_no_auth.http: 116 bytes.
        let body = body_of(error_response(&ApiError::unauthorized())).await;
        assert_eq!(
            body,
            "{\n    \"ok\": false,\n    \"result\": {\n        \"error\": \"UnauthorizedError\",\n        \"error_msg\": \"Unauthorized\"\n    }\n}"
        );
        assert_eq!(body.len(), 116);
        assert_eq!(body_of(error_response(&ApiError::forbidden())).await.len(), 110);
        assert_eq!(body_of(error_response(&ApiError::unavailable())).await.len(), 122);
    }

    #[actix_web::test]
    async fn plain_text_answers() {
        let r = method_not_allowed("POST");
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers().get("allow").map(|v| v.as_bytes()), Some(&b"POST"[..]));
        assert_eq!(body_of(r).await, "405: Method Not Allowed");
        assert_eq!(body_of(not_found()).await, "404: Not Found");
        assert_eq!(body_of(permanent_redirect("/info?fields=meta")).await, "308: Permanent Redirect");
    }
}
