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
}
