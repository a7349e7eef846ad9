//! `/janus/ws`: the Janus WebSocket (subprotocol `janus-protocol`, one JSON object per text
//! frame), behind the front's `auth_request` like kvmd's. A cookie session's connection
//! lives no longer than the session (kvmd-auth's hold); closing the socket ends every
//! session, handle and peer it opened.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::AggregatedMessage as Message;
use futures_util::StreamExt;
use kvmd_core::ApiError;
use kvmd_core::authn::AuthClient;
use kvmd_core::routes::{Answer, Api, Expose, Flow, Route};
use kvmd_core::service::CancellationToken;
use tokio::sync::mpsc;

use crate::janus::{Conn, Env};

/// The front's path (and the service's: no rewrite).
pub const PATH: &str = "/janus/ws";
/// Janus's WebSocket subprotocol.
pub const PROTOCOL: &str = "janus-protocol";
/// The largest message taken (an SDP answer is a few KiB).
const MAX_MESSAGE: usize = 256 * 1024;

/// The group's route.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get(PATH)
            .expose(Expose::Root)
            .flow(Flow::WebSocket)
            .doc("Janus's WebSocket (subprotocol janus-protocol) with the uStreamer plugin: H.264 over WebRTC for PiKVM's web UI")
            .answer(Answer::WebSocket),
        ws,
    );
}

/// What every connection shares.
pub struct Shared {
    /// The connections' environment.
    pub env: Env,
    /// Open connections at most.
    pub places: kvmd_core::limit::Limit,
    /// The service stops.
    pub shutdown: CancellationToken,
}

fn no_upgrade() -> HttpResponse {
    HttpResponse::BadRequest().content_type("text/plain").body("Not a WebSocket upgrade: Janus speaks WebSocket here.")
}

async fn ws(
    user: kvmd_core::authn::Authed,
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Shared>,
) -> Result<HttpResponse, ApiError> {
    let upgrade = req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Ok(no_upgrade());
    }
    let place = shared.places.take()?;
    let Ok((mut resp, session, messages)) = actix_ws::handle(&req, body) else { return Ok(no_upgrade()) };
    // Browsers fail the handshake unless the asked-for subprotocol comes back.
    let asked = req.headers().get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok()).unwrap_or("");
    if asked.split(',').any(|p| p.trim() == PROTOCOL) {
        resp.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(PROTOCOL));
    }
    let ended = CancellationToken::new();
    let holder = match (user.session.clone(), req.app_data::<AuthClient>().cloned()) {
        (Some(id), Some(auth)) => {
            let ended = ended.clone();
            Some(actix_web::rt::spawn(async move {
                auth.hold(&id, "webrtc").await;
                ended.cancel();
            }))
        }
        _ => None,
    };
    let shared = shared.into_inner();
    actix_web::rt::spawn(async move {
        run(session, messages, shared, ended).await;
        if let Some(h) = holder {
            h.abort();
        }
        drop(place);
    });
    Ok(resp)
}

async fn run(
    mut session: actix_ws::Session,
    messages: actix_ws::MessageStream,
    shared: Arc<Shared>,
    ended: CancellationToken,
) {
    let mut messages = messages.aggregate_continuations().max_continuation_size(MAX_MESSAGE);
    let (told_tx, mut told) = mpsc::channel(64);
    let mut conn = Conn::new(shared.env.clone(), told_tx);
    let mut reap = tokio::time::interval(Duration::from_secs(5));
    let mut out: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            m = messages.next() => match m {
                Some(Ok(Message::Text(t))) => out = conn.handle(&t).await,
                Some(Ok(Message::Binary(b))) => out = match std::str::from_utf8(&b) {
                    Ok(t) => conn.handle(t).await,
                    Err(_) => vec![crate::janus::error(0, &None, crate::janus::code::INVALID_JSON, "JSON error: not UTF-8")],
                },
                Some(Ok(Message::Ping(p))) => {
                    if session.pong(&p).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
            t = told.recv() => if let Some((tag, what)) = t { out = conn.told(tag, what) },
            _ = reap.tick() => out = conn.reap(),
            () = ended.cancelled() => {
                tracing::info!("a session ended: its Janus connection closes");
                break;
            }
            () = shared.shutdown.cancelled() => break,
        }
        for line in out.drain(..) {
            if session.text(line).await.is_err() {
                return;
            }
        }
    }
    let _ = session.close(None).await;
}
