//! The OpenAPI 3.1 document of the suite, generated from the route declarations
//! ([`crate::routes::Route`]): every route the front exposes, with its parameters (the
//! validators' types and ranges), request body, answer, kvmd's error bodies and the
//! credentials it needs. Nothing in it is written by hand; `kvmd-nginx openapi` prints it,
//! `docs/openapi.json` holds it (a test fails when that file is stale) and kvmd-info
//! serves it as `/api/openapi.json`.
//!
//! JSON objects come out with sorted keys (serde_json's map), so the document is the same
//! for the same routes.

use serde_json::{Map, Value, json};

use crate::routes::{Access, Answer, Body, Expose, Param, Route, ServiceRoutes, Ty};

/// kvmd's version, whose API the suite speaks.
pub const KVMD_VERSION: &str = "4.197";

/// The document for `services`.
pub fn document(services: &[ServiceRoutes], version: &str) -> Value {
    let mut paths = Map::new();
    let mut tags = Vec::new();
    for s in services {
        tags.push(json!({"name": s.service}));
        for r in s.exposed() {
            for front in r.front_paths() {
                let op = operation(s, r, &front);
                let item = paths.entry(front).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(item) = item {
                    item.insert(r.method.as_str().to_ascii_lowercase(), op);
                }
            }
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "kvmd-rs",
            "version": version,
            "description": format!(
                "The HTTP API of kvmd-rs, compatible with PiKVM's kvmd {KVMD_VERSION} (under /api; \
                 Redfish at /redfish as well as /api/redfish) and uStreamer (under /streamer). Generated from the services' route declarations. Every JSON \
                 answer of kvmd's API is the envelope {{\"ok\": <status == 200>, \"result\": ...}}; errors \
                 carry the exception class in result.error and its message in result.error_msg. An unknown \
                 path under /api is a plain-text 404, a wrong method a plain-text 405 with Allow, and a \
                 trailing slash a 308 to the path without it, all before authentication."
            ),
        },
        "tags": tags,
        "paths": paths,
        "components": components(),
    })
}

fn components() -> Value {
    let text = |d: &str| json!({"description": d, "content": {"text/plain": {"schema": {"type": "string"}}}});
    let error = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    json!({
        "securitySchemes": {
            "cookie": {"type": "apiKey", "in": "cookie", "name": crate::authn::COOKIE_TOKEN,
                "description": "The session cookie POST /api/auth/login sets"},
            "kvmdUser": {"type": "apiKey", "in": "header", "name": crate::authn::XHDR_USER},
            "kvmdPasswd": {"type": "apiKey", "in": "header", "name": crate::authn::XHDR_PASSWD,
                "description": "The password, with the TOTP code appended when two-factor codes are on"},
            "basic": {"type": "http", "scheme": "basic"},
        },
        "schemas": {
            "Ok": {
                "type": "object",
                "required": ["ok", "result"],
                "properties": {"ok": {"const": true}, "result": {"type": "object"}},
            },
            "Error": {
                "type": "object",
                "required": ["ok", "result"],
                "properties": {
                    "ok": {"const": false},
                    "result": {
                        "type": "object",
                        "required": ["error", "error_msg"],
                        "properties": {
                            "error": {"type": "string", "description": "kvmd's exception class, e.g. ValidatorError"},
                            "error_msg": {"type": "string"},
                        },
                    },
                },
            },
        },
        "responses": {
            "BadRequest": error("A parameter is missing or invalid (ValidatorError), or the operation is refused"),
            "Unauthorized": error("No credentials (UnauthorizedError)"),
            "Forbidden": error("Wrong credentials, an unknown session or a wrong TOTP code (ForbiddenError)"),
            "MethodNotAllowed": text("405: Method Not Allowed, with Allow listing the path's methods"),
            "NotImplemented": text("501: Not Implemented (uStreamer's answer to any other method)"),
        },
    })
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/responses/{name}")})
}

/// The operation `r` at the front's `front` (unique ids: a mounted `/` is served twice).
fn operation(s: &ServiceRoutes, r: &Route, front: &str) -> Value {
    let mut op = Map::new();
    let suffix = if front.ends_with('/') { format!("{front}index") } else { front.to_owned() };
    op.insert(
        "operationId".into(),
        json!(format!("{}{suffix}", r.method.as_str().to_ascii_lowercase()).replace(['/', '.', '{', '}'], "_")),
    );
    op.insert("summary".into(), json!(r.summary));
    op.insert("tags".into(), json!([s.service]));
    op.insert("x-kvmd-service".into(), json!(s.service));
    let (access, security) = match r.access {
        Access::Public => ("public", json!([])),
        Access::User => ("user", user_security()),
        Access::SelfChecked => ("user, checked by the service itself", user_security()),
    };
    op.insert("x-kvmd-access".into(), json!(access));
    if r.access == Access::User {
        // The lowest role that may call it (crate::role).
        op.insert("x-kvmd-role".into(), json!(r.role.as_str()));
    }
    if r.throttled {
        // The front's limit per client address (nginx.conf.in `kvmd_login`), then kvmd's 503.
        op.insert("x-kvmd-throttled".into(), json!("2 per second per client address, bursts of 10"));
    }
    op.insert("security".into(), security);
    // `{name}` segments of the path, then the query parameters.
    let mut params: Vec<Value> = front
        .split('/')
        .filter_map(crate::routes::path_param)
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    params.extend(r.params.iter().map(parameter));
    if !params.is_empty() {
        op.insert("parameters".into(), Value::Array(params));
    }
    match r.body {
        Body::None => {}
        Body::Raw(mime) => {
            op.insert("requestBody".into(), json!({"content": {mime: {"schema": {"type": "string"}}}}));
        }
        Body::Form(fields) => {
            let mut props = Map::new();
            for f in fields {
                let mut schema = schema(&f.ty);
                if let Value::Object(m) = &mut schema {
                    m.insert("description".into(), json!(f.doc));
                }
                props.insert(f.name.into(), schema);
            }
            let required: Vec<&str> = fields.iter().filter(|f| f.required).map(|f| f.name).collect();
            let form = json!({"schema": {"type": "object", "properties": props, "required": required}});
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/x-www-form-urlencoded": form, "multipart/form-data": form}}),
            );
        }
    }
    let mut responses = Map::new();
    let (code, ok) = match r.answer {
        Answer::Envelope(what) => (
            "200",
            json!({"description": format!("The envelope; result: {what}"),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ok"}}}}),
        ),
        Answer::Media(mime) => ("200", json!({"description": "OK", "content": {mime: {"schema": {"type": "string"}}}})),
        Answer::Stream(mime) => (
            "200",
            json!({"description": "A stream, until the client or the service ends it",
                "content": {mime: {"schema": {"type": "string"}}}}),
        ),
        Answer::WebSocket => ("101", json!({"description": "Switching Protocols: the WebSocket"})),
    };
    responses.insert(code.into(), ok);
    if !r.params.is_empty() || r.body != Body::None {
        responses.insert("400".into(), reference("BadRequest"));
    }
    if r.access != Access::Public {
        responses.insert("401".into(), reference("Unauthorized"));
        responses.insert("403".into(), reference("Forbidden"));
    }
    match r.expose {
        Expose::Mount(_) => responses.insert("501".into(), reference("NotImplemented")),
        Expose::Api | Expose::Root | Expose::Internal => responses.insert("405".into(), reference("MethodNotAllowed")),
    };
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

fn user_security() -> Value {
    json!([{"cookie": []}, {"kvmdUser": [], "kvmdPasswd": []}, {"basic": []}])
}

fn parameter(p: &Param) -> Value {
    let mut v =
        json!({"name": p.name, "in": "query", "required": p.required, "description": p.doc, "schema": schema(&p.ty)});
    if let (Ty::List(_), Value::Object(m)) = (&p.ty, &mut v) {
        m.insert("style".into(), json!("form"));
        m.insert("explode".into(), json!(false));
    }
    v
}

/// The JSON Schema of what a validator accepts.
pub fn schema(ty: &Ty) -> Value {
    match *ty {
        Ty::Bool => json!({"type": "boolean", "description": "Also 1/0, yes/no, on/off, in any case"}),
        Ty::Int { min, max, clamp } => {
            let mut m = Map::new();
            m.insert("type".into(), json!("integer"));
            if clamp {
                m.insert("x-kvmd-clamped-to".into(), json!([min, max]));
            } else {
                bounds(&mut m, min, max);
            }
            Value::Object(m)
        }
        Ty::Float { min, max } => {
            let mut m = Map::new();
            m.insert("type".into(), json!("number"));
            bounds(&mut m, min, max);
            Value::Object(m)
        }
        Ty::Str { max_len, pattern } => {
            let mut m = Map::new();
            m.insert("type".into(), json!("string"));
            if let Some(n) = max_len {
                m.insert("maxLength".into(), json!(n));
            }
            if let Some(p) = pattern {
                m.insert("pattern".into(), json!(p));
            }
            Value::Object(m)
        }
        Ty::Enum(values) => json!({"type": "string", "enum": values}),
        Ty::List([]) => json!({"type": "array", "items": {"type": "string"}}),
        Ty::List(values) => json!({"type": "array", "items": {"type": "string", "enum": values}}),
    }
}

/// `minimum` and `maximum`, where there are.
fn bounds<T: serde::Serialize>(m: &mut Map<String, Value>, min: Option<T>, max: Option<T>) {
    if let Some(min) = min {
        m.insert("minimum".into(), json!(min));
    }
    if let Some(max) = max {
        m.insert("maximum".into(), json!(max));
    }
}

/// The document as the suite writes it: pretty JSON and a final newline.
pub fn to_text(doc: &Value) -> String {
    let mut s = serde_json::to_string_pretty(doc).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::Route;

    fn services() -> Vec<ServiceRoutes> {
        let routes = vec![
            Route::get("/info").params(const { &[Param::opt("fields", Ty::List(&["a", "b"]), "Which")] }),
            Route::post("/auth/login")
                .access(Access::Public)
                .body(Body::Form(const { &[Param::req("user", Ty::str(8), "Who")] })),
            Route::get("/feed").internal(),
            Route::get("/state").expose(Expose::Mount("/streamer")).answer(Answer::Media("application/json")),
            Route::get("/").expose(Expose::Mount("/streamer")).answer(Answer::Media("text/html")),
        ];
        vec![ServiceRoutes { service: "t", upstream: "t", routes, errors: Default::default() }]
    }

    #[test]
    fn exposed_routes_only_with_their_facts() {
        let doc = document(&services(), "0");
        let paths: Vec<&String> = doc["paths"].as_object().map(|m| m.keys().collect()).unwrap_or_default();
        assert_eq!(paths, ["/api/auth/login", "/api/info", "/streamer", "/streamer/", "/streamer/state"]);
        let info = &doc["paths"]["/api/info"]["get"];
        assert_eq!(info["parameters"][0]["schema"]["items"]["enum"], json!(["a", "b"]));
        assert_eq!(info["parameters"][0]["explode"], json!(false));
        assert_eq!(info["responses"]["401"]["$ref"], json!("#/components/responses/Unauthorized"));
        assert_eq!(info["security"][0], json!({"cookie": []}));
        let login = &doc["paths"]["/api/auth/login"]["post"];
        assert_eq!(login["security"], json!([]));
        assert!(login["responses"].get("401").is_none());
        let form = &login["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"];
        assert_eq!(form["required"], json!(["user"]));
        assert_eq!(form["properties"]["user"]["maxLength"], json!(8));
        assert_eq!(
            doc["paths"]["/streamer/state"]["get"]["responses"]["501"]["$ref"],
            json!("#/components/responses/NotImplemented")
        );
        assert_eq!(doc["paths"]["/streamer/"]["get"]["operationId"], json!("get_streamer_index"));
        assert_eq!(doc["paths"]["/streamer"]["get"]["operationId"], json!("get_streamer"));
        let mut ids: Vec<&Value> = Vec::new();
        for item in doc["paths"].as_object().into_iter().flat_map(|m| m.values()) {
            ids.extend(item.as_object().into_iter().flat_map(|m| m.values()).map(|op| &op["operationId"]));
        }
        let n = ids.len();
        ids.sort_by_key(|v| v.to_string());
        ids.dedup();
        assert_eq!(ids.len(), n, "operation ids are unique");
    }

    #[test]
    fn schemas_say_what_the_validators_accept() {
        assert_eq!(schema(&Ty::int(1, 100)), json!({"type": "integer", "minimum": 1, "maximum": 100}));
        assert_eq!(schema(&Ty::clamped(-127, 127)), json!({"type": "integer", "x-kvmd-clamped-to": [-127, 127]}));
        assert_eq!(schema(&Ty::Enum(&["x"])), json!({"type": "string", "enum": ["x"]}));
        assert_eq!(schema(&Ty::pattern(4, "^a$")), json!({"type": "string", "maxLength": 4, "pattern": "^a$"}));
        assert_eq!(
            schema(&Ty::Float { min: Some(0.0), max: Some(5.0) }),
            json!({"type": "number", "minimum": 0.0, "maximum": 5.0})
        );
    }
}
