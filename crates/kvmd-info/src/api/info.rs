//! `/info`: system information. Reproduces kvmd `kvmd/apps/kvmd/api/info.py`; spec
//! `info-log.md` section 1 (categories, `fields`, the legacy `hw` rendering).

use std::collections::BTreeMap;

use actix_web::{HttpRequest, web};
use kvmd_core::envelope::{ApiResponse, ApiResult};
use kvmd_core::query::Query;
use kvmd_core::routes::{Answer, Api, Param, Route, Ty};
use kvmd_core::valid;
use serde_json::Value;

use crate::info::{Category, Info};

/// What `fields` accepts: the categories, and `hw` in legacy mode.
const FIELDS: [&str; 9] = {
    let mut names = [""; 9];
    let mut i = 0;
    while i < 8 {
        names[i] = Category::NAMES[i];
        i += 1;
    }
    names[8] = "hw";
    names
};

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get("/info")
            .doc("System information by category")
            .params(
                const {
                    &[
                        Param::opt(
                            "fields",
                            Ty::List(&FIELDS),
                            "Comma-separated categories (all when empty; `hw` too in legacy mode)",
                        ),
                        Param::opt(
                            "legacy",
                            Ty::Bool,
                            "kvmd's legacy rendering (default true): `hw` holds health and platform",
                        ),
                    ]
                },
            )
            .answer(Answer::Envelope("an object with one member per requested category")),
        info,
    );
}

fn category(name: &str) -> Option<Category> {
    Category::ALL.into_iter().find(|c| c.name() == name)
}

/// The names `/info` returns for `legacy` and the raw `fields` argument.
pub fn requested(legacy: bool, fields: Option<&str>) -> Result<Vec<String>, kvmd_core::ApiError> {
    let mut allowed: Vec<&str> = Category::ALL.iter().map(|c| c.name()).collect();
    if legacy {
        allowed.push("hw");
    }
    match fields {
        None if legacy => Ok(allowed.into_iter().filter(|n| *n != "health").map(str::to_owned).collect()),
        None => Ok(allowed.into_iter().map(str::to_owned).collect()),
        Some(f) => {
            let list = valid::string_list(Some(f), |i| valid::string_in_list(Some(i), "info field", &allowed))?;
            Ok(if list.is_empty() { allowed.into_iter().map(str::to_owned).collect() } else { list })
        }
    }
}

async fn info(state: web::Data<Info>, req: HttpRequest) -> ApiResult<BTreeMap<String, Value>> {
    let q = Query::of(&req);
    let legacy = match q.get("legacy") {
        None => true,
        Some(v) => valid::boolean(Some(v))?,
    };
    let names = requested(legacy, q.get("fields"))?;
    let hw = legacy && names.iter().any(|n| n == "hw");
    let mut out = BTreeMap::new();
    for name in &names {
        let value = match name.as_str() {
            "hw" => serde_json::json!({"health": state.health().await, "platform": state.platform()}),
            // Legacy mode with `hw` moves health and the platform under it.
            "health" if hw => continue,
            "system" => serde_json::to_value(state.system(!hw)).unwrap_or(Value::Null),
            other => match category(other) {
                Some(c) => serde_json::to_value(state.get(c).await).unwrap_or(Value::Null),
                None => continue,
            },
        };
        out.insert(name.clone(), value);
    }
    Ok(ApiResponse::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(legacy: bool, f: Option<&str>) -> Vec<String> {
        let mut v = requested(legacy, f).unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn selection_rules() {
        assert_eq!(names(true, None), ["auth", "extras", "fan", "hw", "meta", "node", "system", "uptime"]);
        assert_eq!(names(false, None), ["auth", "extras", "fan", "health", "meta", "node", "system", "uptime"]);
        assert_eq!(names(true, Some("")).len(), 9, "empty fields = everything allowed");
        assert_eq!(names(true, Some("Meta, NODE")), ["meta", "node"]);
        let err = requested(false, Some("hw")).err().map(|e| e.message.into_owned());
        assert_eq!(err.as_deref(), Some("Failed sub-validator on one of the item of ['hw']"));
    }
}
