//! One Kasm-style call: the JSON body with its `api_key` and `api_key_secret`, checked by
//! kvmd-auth before the handler runs ([`Call`]), and the typed reading of its fields.

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use serde_json::{Map, Value};

use kvmd_core::authn::client_addr;

use crate::error::KasmError;
use crate::upstream::{Caller, Upstream};

/// The largest body read (nginx allows these routes 4 KiB).
pub const BODY_LIMIT: usize = 64 * 1024;

/// A call whose key kvmd-auth accepted: its body (without the credentials) and the caller.
#[derive(Debug)]
pub struct Call {
    /// The body's other fields.
    pub body: Map<String, Value>,
    /// Who.
    pub caller: Caller,
}

impl Call {
    /// Refused with 403 unless the key has the admin scope (the `/api/admin/` routes, and
    /// the users' routes on either prefix).
    pub fn need_admin_scope(&self) -> Result<(), KasmError> {
        if self.caller.scope == "admin" {
            Ok(())
        } else {
            Err(KasmError::forbidden("Insufficient permissions: this endpoint needs an admin API key"))
        }
    }

    /// An optional string field.
    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, KasmError> {
        opt_str(&self.body, name)
    }

    /// A required string field.
    pub fn str(&self, name: &str) -> Result<&str, KasmError> {
        self.opt_str(name)?.ok_or_else(|| KasmError::bad_request(format!("Missing field: {name}")))
    }

    /// A required object field (a `target_*` wrapper).
    pub fn object(&self, name: &str) -> Result<&Map<String, Value>, KasmError> {
        match self.body.get(name) {
            Some(Value::Object(o)) => Ok(o),
            Some(_) => Err(KasmError::bad_request(format!("{name} must be an object"))),
            None => Err(KasmError::bad_request(format!("Missing field: {name}"))),
        }
    }
}

/// An optional string field of `o`.
pub fn opt_str<'a>(o: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, KasmError> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(KasmError::bad_request(format!("{name} must be a string"))),
    }
}

/// An optional boolean field of `o`.
pub fn opt_bool(o: &Map<String, Value>, name: &str) -> Result<Option<bool>, KasmError> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(KasmError::bad_request(format!("{name} must be true or false"))),
    }
}

/// An optional non-negative integer field of `o`, at most `max`.
pub fn opt_uint(o: &Map<String, Value>, name: &str, max: u64) -> Result<Option<u64>, KasmError> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if v <= max => Ok(Some(v)),
            _ => Err(KasmError::bad_request(format!("{name} must be an integer from 0 to {max}"))),
        },
        Some(_) => Err(KasmError::bad_request(format!("{name} must be an integer"))),
    }
}

/// A 32-hex id (Kasm's form of a UUID; dashes are accepted and dropped).
pub fn id_of(value: &str, what: &str) -> Result<String, KasmError> {
    let v: String = value.chars().filter(|c| *c != '-').collect::<String>().to_ascii_lowercase();
    if v.len() == 32 && v.bytes().all(|c| c.is_ascii_hexdigit()) {
        Ok(v)
    } else {
        Err(KasmError::bad_request(format!("{what} must be 32 hex characters")))
    }
}

impl FromRequest for Call {
    type Error = KasmError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, KasmError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let bytes = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|_| KasmError::bad_request("The body is too large or cut short"))?;
            let mut body = match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(o)) => o,
                _ => return Err(KasmError::bad_request("The body must be a JSON object")),
            };
            let (Some(Value::String(id)), Some(Value::String(secret))) =
                (body.remove("api_key"), body.remove("api_key_secret"))
            else {
                return Err(KasmError::unauthorized());
            };
            // What could not travel in a header is no key.
            let visible = |s: &str, colon: bool| {
                !s.is_empty() && s.len() <= 512 && s.bytes().all(|c| c.is_ascii_graphic() && (colon || c != b':'))
            };
            if !visible(&id, false) || !visible(&secret, true) {
                return Err(KasmError::unauthorized());
            }
            let up = req.app_data::<web::Data<Upstream>>().ok_or_else(|| KasmError::internal("no upstream"))?;
            let caller = up.authenticate(&id, &secret, &client_addr(&req)).await?;
            actix_web::HttpMessage::extensions_mut(&req)
                .insert(kvmd_core::service::AccessUser(format!("key:{} (kasm)", caller.id)));
            let call = Call { body, caller };
            if req.path().starts_with("/admin/") {
                call.need_admin_scope()?;
            }
            Ok(call)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_typed() {
        let o: Map<String, Value> =
            serde_json::from_str(r#"{"s": "x", "n": 5, "b": true, "z": null}"#).unwrap_or_default();
        assert_eq!(opt_str(&o, "s"), Ok(Some("x")));
        assert_eq!(opt_str(&o, "z"), Ok(None));
        assert!(opt_str(&o, "n").is_err());
        assert_eq!(opt_uint(&o, "n", 10), Ok(Some(5)));
        assert!(opt_uint(&o, "n", 4).is_err());
        assert!(opt_uint(&o, "s", 4).is_err());
        assert_eq!(opt_bool(&o, "b"), Ok(Some(true)));
        assert!(opt_bool(&o, "s").is_err());
        assert_eq!(
            id_of("3F1C0B6A-2D9E-4C58-A7B1-E0F4D2C6A9B3", "id").as_deref(),
            Ok("3f1c0b6a2d9e4c58a7b1e0f4d2c6a9b3")
        );
        assert!(id_of("xyz", "id").is_err());
    }
}
