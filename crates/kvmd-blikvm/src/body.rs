//! A BliKVM request's fields: the body as JSON when its `Content-Type` says so, else as a
//! form (url-encoded), on any method — the document sends `GET /keyboard` with a JSON body
//! and BliKVM's own client `POST`s (spec `compat-blikvm-kasm.md` A.1.3, A.2.1).

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use serde_json::{Map, Value};

use crate::reply::Failed;

/// The largest body read (a `/paste` text; every other body is a few bytes).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The request's fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(pub Map<String, Value>);

impl Fields {
    /// Field `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// Field `name` as a string (a number is taken as its text, as PHP does).
    pub fn str(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// Reads `bytes` as `content_type` says: a JSON object, or form fields. A JSON body
    /// that is not an object is refused; a body that is neither gives no fields.
    pub fn parse(content_type: &str, bytes: &[u8]) -> Result<Self, Failed> {
        let ct = content_type.trim_start().to_ascii_lowercase();
        if ct.contains("application/json") {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Self::default());
            }
            return match serde_json::from_slice::<Value>(bytes) {
                Ok(Value::Object(o)) => Ok(Self(o)),
                _ => Err(Failed::because("the body is not a JSON object")),
            };
        }
        if ct.starts_with("application/x-www-form-urlencoded") {
            // `curl -d '{...}'` says url-encoded: a body that is a JSON object is one.
            if bytes.first() == Some(&b'{')
                && let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(bytes)
            {
                return Ok(Self(o));
            }
            let mut o = Map::new();
            for (k, v) in form_urlencoded::parse(bytes) {
                o.entry(k.into_owned()).or_insert_with(|| Value::String(v.into_owned()));
            }
            return Ok(Self(o));
        }
        // A client that sends JSON without saying so (curl's -d says url-encoded, and the
        // document names no content type): a body that reads as a JSON object is one.
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(o)) => Ok(Self(o)),
            _ if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Self::default()),
            _ => Err(Failed::because("the body is neither JSON nor a form")),
        }
    }
}

impl FromRequest for Fields {
    type Error = Failed;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Failed>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|_| Failed::because("the body is too large or cut short"))?;
            Fields::parse(&ct, &bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms_and_refusals() {
        let f = Fields::parse("application/json", br#"{"keycodes": ["Digit1"]}"#).unwrap_or_default();
        assert_eq!(f.get("keycodes"), Some(&serde_json::json!(["Digit1"])));
        let f =
            Fields::parse("application/x-www-form-urlencoded", b"username=admin&password=a%26b").unwrap_or_default();
        assert_eq!(f.str("password").as_deref(), Some("a&b"));
        let f = Fields::parse("", br#"{"text": "x"}"#).unwrap_or_default();
        assert_eq!(f.str("text").as_deref(), Some("x"));
        assert_eq!(Fields::parse("application/json", b"").ok(), Some(Fields::default()));
        assert!(Fields::parse("application/json", b"[1]").is_err());
        assert!(Fields::parse("application/json", b"{nope").is_err());
        assert!(Fields::parse("text/plain", b"hello").is_err());
    }
}
