//! `/log`: the suite's log lines, optionally followed. Reproduces kvmd
//! `kvmd/apps/kvmd/api/log.py`; spec `info-log.md` section 2.

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use kvmd_core::query::Query;
use kvmd_core::routes::{Answer, Api, Flow, Param, Route, Ty};
use kvmd_core::service::CancellationToken;
use kvmd_core::{ApiError, valid};

use crate::config::LogSourceKind;
use crate::info::Info;

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get("/log")
            .flow(Flow::Stream)
            .doc("The suite's log lines, optionally followed")
            .params(
                const {
                    &[
                        Param::opt("seek", Ty::at_least(0), "Lines of the last this many seconds"),
                        Param::opt("follow", Ty::Bool, "Keep the response open and send new lines as they come"),
                    ]
                },
            )
            .answer(Answer::Stream("text/plain")),
        log,
    );
}

async fn log(
    state: web::Data<Info>,
    shutdown: web::Data<CancellationToken>,
    tail: web::Data<crate::logs::FileTail>,
    followers: web::Data<crate::logs::Followers>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let cfg = state.config().log.clone();
    if cfg.source == LogSourceKind::Disabled {
        return Err(ApiError::operation("LogReaderDisabledError", "LogReader is disabled"));
    }
    let q = Query::of(&req);
    let seek = valid::int(Some(q.get("seek").unwrap_or("0")), "log seek", Some(0), None)?;
    let follow = valid::boolean(Some(q.get("follow").unwrap_or("0")))?;
    // A follower holds its place (and its journalctl) until its client goes.
    let place = if follow { Some(followers.0.take()?) } else { None };
    let client = req.conn_data::<kvmd_core::net::ConnFd>().copied();
    let rx = crate::logs::start(
        cfg,
        u64::try_from(seek).unwrap_or(0),
        follow,
        shutdown.get_ref().clone(),
        client,
        tail.into_inner(),
    );
    // kvmd's backend says plain `text/plain`; nginx adds the charset.
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("text/plain")))
        .streaming(kvmd_core::limit::holding(kvmd_core::service::channel_body(rx), place)))
}
