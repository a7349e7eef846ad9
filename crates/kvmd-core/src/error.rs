//! The one error type of the suite, mapped to kvmd's wire once.
//!
//! kvmd reports failures as `{"ok": false, "result": {"error": <exception class name>,
//! "error_msg": <str(exception)>}}` with a status that depends on the exception's family
//! (`kvmd/htserver.py`). Clients read `result.error`, so the names are a contract: they
//! live in [`Code`], never in Rust type names.
//!
//! Unexpected failures are answered as an envelope 500 (`InternalError`) rather than
//! aiohttp's plain-text page: kvmd-rs never lets a bug become a bare 500 page, and the
//! body still parses as kvmd's error envelope.

use std::borrow::Cow;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::envelope;

/// kvmd's error families: the wire name and status of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// No usable credentials: 401 `UnauthorizedError` / `Unauthorized`.
    Unauthorized,
    /// Wrong credentials, unknown or expired token, wrong TOTP code: 403.
    Forbidden,
    /// A missing or invalid argument: 400 `ValidatorError`.
    Validator,
    /// A refused operation (kvmd `OperationError` and its subclasses): 400.
    Operation,
    /// Busy (kvmd `IsBusyError` and its subclasses): 409.
    IsBusy,
    /// Not available right now (snapshots): 503 `UnavailableError`.
    Unavailable,
    /// A bug or an unexpected failure: 500 `InternalError`.
    Internal,
}

impl Code {
    /// The default wire name, HTTP status and message of the family.
    pub const fn wire(self) -> (&'static str, StatusCode, &'static str) {
        match self {
            Code::Unauthorized => ("UnauthorizedError", StatusCode::UNAUTHORIZED, "Unauthorized"),
            Code::Forbidden => ("ForbiddenError", StatusCode::FORBIDDEN, "Forbidden"),
            Code::Validator => ("ValidatorError", StatusCode::BAD_REQUEST, "Invalid argument"),
            Code::Operation => ("OperationError", StatusCode::BAD_REQUEST, "Operation error"),
            Code::IsBusy => {
                ("IsBusyError", StatusCode::CONFLICT, "Performing another operation, please try again later")
            }
            Code::Unavailable => ("UnavailableError", StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
            Code::Internal => ("InternalError", StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
        }
    }
}

/// An error as the client sees it: status, kvmd class name and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The family, which fixes the status.
    pub code: Code,
    /// The concrete kvmd exception class name (e.g. `LogReaderDisabledError`).
    pub name: Cow<'static, str>,
    /// `str(exception)` in kvmd.
    pub message: Cow<'static, str>,
}

impl ApiError {
    /// An error of `code` with its default name and message.
    pub const fn of(code: Code) -> Self {
        let (name, _, message) = code.wire();
        Self { code, name: Cow::Borrowed(name), message: Cow::Borrowed(message) }
    }

    /// 401 `UnauthorizedError`.
    pub const fn unauthorized() -> Self {
        Self::of(Code::Unauthorized)
    }

    /// 403 `ForbiddenError`.
    pub const fn forbidden() -> Self {
        Self::of(Code::Forbidden)
    }

    /// 503 `UnavailableError`.
    pub const fn unavailable() -> Self {
        Self::of(Code::Unavailable)
    }

    /// 400 `ValidatorError` with a validator message.
    pub fn validator(message: impl Into<Cow<'static, str>>) -> Self {
        Self { message: message.into(), ..Self::of(Code::Validator) }
    }

    /// A refused operation with kvmd's concrete class name, e.g.
    /// `ApiError::operation("AtxDisabledError", "ATX is disabled")`.
    pub fn operation(name: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self { code: Code::Operation, name: Cow::Borrowed(name), message: message.into() }
    }

    /// A busy error with kvmd's concrete class name.
    pub fn busy(name: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self { code: Code::IsBusy, name: Cow::Borrowed(name), message: message.into() }
    }

    /// An unexpected failure; the detail goes to the log, not to the client.
    pub fn internal(detail: impl fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::of(Code::Internal)
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.code.wire().1
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for ApiError {}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        envelope::error_response(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_kvmd() {
        assert_eq!(ApiError::unauthorized().status(), 401);
        assert_eq!(ApiError::forbidden().status(), 403);
        assert_eq!(ApiError::validator("x").status(), 400);
        assert_eq!(ApiError::operation("AtxDisabledError", "ATX is disabled").status(), 400);
        assert_eq!(ApiError::busy("AtxIsBusyError", "busy").status(), 409);
        assert_eq!(ApiError::unavailable().status(), 503);
        assert_eq!(ApiError::unavailable().message, "Service Unavailable");
    }
}
