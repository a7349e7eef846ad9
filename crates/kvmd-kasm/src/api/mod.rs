//! The Kasm-style routes, one module per group: `/api/public/<endpoint>` and
//! `/api/admin/<endpoint>`, every one a `POST` of JSON with the key in the body (spec
//! `compat-blikvm-kasm.md` Part B). The front routes them without `auth_request`: the
//! credentials are in the body, and kvmd-auth checks them here ([`crate::call::Call`]).

pub mod images;
pub mod kasms;
pub mod storage;
pub mod system;
pub mod users;

use kvmd_core::routes::{Access, Answer, Route};
use serde_json::Value;

use crate::call::Call;
use crate::error::KasmError;
use crate::upstream::{Svc, Upstream};

/// kvmd-auth's users and sessions, as the caller may see them (both admin routes there).
pub async fn users_and_sessions(up: &Upstream, call: &Call) -> Result<(Vec<Value>, Vec<Value>), KasmError> {
    let (u, s) = tokio::join!(
        up.call(Svc::Auth, "GET", "/auth/users", &call.caller),
        up.call(Svc::Auth, "GET", "/auth/sessions", &call.caller),
    );
    let list = |v: Value, k: &str| v[k].as_array().cloned().unwrap_or_default();
    Ok((list(u?, "users"), list(s?, "sessions")))
}

/// A Kasm-style route at `path`: a public `POST` (the body carries the key) with a JSON
/// answer described by `answer`.
pub const fn kasm(path: &'static str, doc: &'static str, answer: &'static str) -> Route {
    Route::post(path).access(Access::Public).doc(doc).answer(Answer::Media(answer))
}

/// The empty answer (`{}`).
pub fn empty() -> serde_json::Value {
    serde_json::json!({})
}

/// A unix time as Kasm writes dates (ISO 8601, UTC); `"None"` for none, as pykasm expects.
pub fn date(unix: Option<u64>) -> String {
    unix.and_then(|t| chrono::DateTime::from_timestamp(i64::try_from(t).ok()?, 0))
        .map_or_else(|| "None".to_owned(), |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::date(Some(1_795_352_362)), "2026-11-22T12:59:22Z");
        assert_eq!(super::date(None), "None");
    }
}
