//! What every Redfish route answers with (spec `atx-msd-gpio-redfish.md` section 4): kvmd's
//! JSON documents without the envelope, 204s without a body, and `HttpError`s in the
//! envelope. Shared by kvmd-gpio (Systems, Managers) and kvmd-msd (VirtualMedia).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;

use crate::ApiError;
use crate::envelope::JSON_CONTENT_TYPE;
use crate::json::to_kvmd_string;

/// kvmd's `HttpError` (400) with `message`.
pub fn http_error(message: &'static str) -> ApiError {
    ApiError::operation("HttpError", message)
}

/// A document: sorted, indented JSON, no envelope.
pub fn document<T: serde::Serialize + ?Sized>(v: &T) -> HttpResponse {
    HttpResponse::build(StatusCode::OK)
        .insert_header((actix_web::http::header::CONTENT_TYPE, JSON_CONTENT_TYPE))
        .body(to_kvmd_string(v))
}

/// An action's 204, no body.
pub fn no_content() -> HttpResponse {
    HttpResponse::NoContent().finish()
}
