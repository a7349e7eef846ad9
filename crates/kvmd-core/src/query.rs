//! Query-string arguments as kvmd reads them: every API argument is a query parameter,
//! also for POST; the first of repeated keys wins; unknown keys are ignored (spec
//! `http.md` section 5.1).

use actix_web::HttpRequest;

/// The decoded query string of a request.
#[derive(Debug, Clone, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `req`'s query string.
    pub fn of(req: &HttpRequest) -> Self {
        Self::parse(req.query_string())
    }

    /// Parses a raw query string.
    pub fn parse(qs: &str) -> Self {
        Self(form_urlencoded::parse(qs.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// `value` encoded for a query string or a form body.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `fields` as an `application/x-www-form-urlencoded` body (or query string), in order.
pub fn form(fields: &[(&str, String)]) -> String {
    let mut f = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        f.append_pair(k, v);
    }
    f.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_wins() {
        let q = Query::parse("a=1&b=x%20y&a=2&c");
        assert_eq!(q.get("a"), Some("1"));
        assert_eq!(q.get("b"), Some("x y"));
        assert_eq!(q.get("c"), Some(""));
        assert_eq!(q.get("d"), None);
    }

    #[test]
    fn encoding_round_trips() {
        assert_eq!(encode("a b&c/é"), "a+b%26c%2F%C3%A9");
        let body = form(&[("user", "a b".into()), ("passwd", "x&y=z".into())]);
        assert_eq!(body, "user=a+b&passwd=x%26y%3Dz");
        let q = Query::parse(&body);
        assert_eq!((q.get("user"), q.get("passwd")), (Some("a b"), Some("x&y=z")));
    }
}
