//! `/msd/providers`: the storage providers `write_remote` takes images from
//! ([`crate::providers`]); listing them needs an operator (who may download), adding one an
//! admin. The suite's own routes (kvmd has none); the Kasm-style API's
//! `get_storage_providers` and `create_storage_provider` are these.

use actix_web::web;
use kvmd_core::ApiError;
use kvmd_core::envelope::ApiResponse;
use kvmd_core::query::Query;
use kvmd_core::routes::{Answer, Api, Param, Role, Route, Ty};

use crate::providers::{Kind, Providers};

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get("/msd/providers")
            .role(Role::Operator)
            .doc("The storage providers write_remote can take images from")
            .answer(Answer::Envelope("`{providers: [{id, type, name, enabled, url | path}]}`")),
        list,
    )
    .route(
        Route::post("/msd/providers/create")
            .role(Role::Admin)
            .doc("Adds a storage provider: a base URL (http, webdav, nextcloud) or a directory of the device (local)")
            .params(
                const {
                    &[
                        Param::req("type", Ty::Enum(Kind::NAMES), "What it is"),
                        Param::opt("url", Ty::str(4096), "The base URL (http, webdav, nextcloud)"),
                        Param::opt("path", Ty::str(4096), "The absolute directory (local), outside the image storage"),
                        Param::opt("name", Ty::str(128), "Its name (default: the URL or directory)"),
                        Param::opt("enabled", Ty::Bool, "Usable by write_remote (default true)"),
                    ]
                },
            )
            .answer(Answer::Envelope("`{provider: {id, type, name, enabled, url | path}}`")),
        create,
    );
}

async fn list(providers: web::Data<Providers>) -> ApiResponse<serde_json::Value> {
    ApiResponse::new(serde_json::json!({ "providers": providers.list() }))
}

async fn create(
    providers: web::Data<Providers>,
    cfg: web::Data<crate::Config>,
    req: actix_web::HttpRequest,
) -> Result<ApiResponse<serde_json::Value>, ApiError> {
    let q = Query::of(&req);
    let kind = kvmd_core::valid::string_in_list(q.get("type"), "storage provider type", Kind::NAMES)?;
    let kind = Kind::parse(&kind).ok_or_else(|| ApiError::validator("unknown storage provider type"))?;
    let at = if kind == Kind::Local { "path" } else { "url" };
    let location = q.get(at).ok_or_else(|| kvmd_core::valid::none_error(at))?.to_owned();
    let enabled = super::flag(&q, "enabled", true)?;
    let name = q.get("name").map(str::to_owned);
    let storage = cfg.msd.storage.clone();
    let p = super::block(move || providers.create(kind, name.as_deref(), &location, enabled, &storage)).await?;
    Ok(ApiResponse::new(serde_json::json!({ "provider": p })))
}
