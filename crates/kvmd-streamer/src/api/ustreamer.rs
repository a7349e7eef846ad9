//! uStreamer's own face: `/state`, `/snapshot`, `/stream` (MJPEG), `/`, `/favicon.ico`
//! (spec `streamer-ustreamer.md`). nginx maps `/streamer/<x>` to `/<x>`.
//!
//! Unlike uStreamer under kvmd, this face is always up: a `/stream` client or a
//! `/snapshot` starts capture by itself (and `/state` answers while it is stopped).

use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use kvmd_core::authn::{AuthClient, Authed};
use kvmd_core::query::Query;
use kvmd_core::routes::{Access, Answer, Api, Expose, Flow, Method, Param, Route, Ty};
use kvmd_core::service::{CancellationToken, DropGuard};

use crate::frame::{Jpeg, Kind, monotonic, realtime, stamp};
use crate::streamer::{ClientFlags, DemandGuard, Streamer};

const BOUNDARY: &str = "boundarydonotcross";

/// Where the front exposes this face: `/streamer/<x>` is `/<x>` here.
pub const PREFIX: &str = "/streamer";

const STREAM_PARAMS: &[Param] = &[
    Param::opt(
        "key",
        Ty::pattern(64, "^[A-Za-z0-9_-]{1,64}$"),
        "The client's key, echoed in its cookie and `clients_stat`",
    ),
    Param::opt("extra_headers", Ty::Bool, "Per-frame `X-UStreamer-*` headers"),
    Param::opt("advance_headers", Ty::Bool, "Each part's headers sent before its frame is ready"),
    Param::opt("dual_final_frames", Ty::Bool, "Each frame sent twice (for browsers that show one frame late)"),
    Param::opt("zero_data", Ty::Bool, "Part headers without the JPEG bytes"),
];

/// The paths of this face, what each serves and its parameters.
const PATHS: &[(&str, &str, &[Param], Answer)] = &[
    (
        "/",
        "uStreamer's index page (`?action=snapshot` and `?action=stream` are aliases)",
        &[Param::opt("action", Ty::Enum(&["snapshot", "stream"]), "mjpg-streamer's aliases")],
        Answer::Media("text/html"),
    ),
    ("/state", "uStreamer's state: source, encoder, stream clients", &[], Answer::Media("application/json")),
    ("/snapshot", "One JPEG of the screen", &[], Answer::Media("image/jpeg")),
    (
        "/stream",
        "The MJPEG stream",
        STREAM_PARAMS,
        Answer::Stream("multipart/x-mixed-replace;boundary=boundarydonotcross"),
    ),
    ("/favicon.ico", "An icon", &[], Answer::Media("image/x-icon")),
];

/// The face's routes: GET (authenticated), HEAD (200, empty), OPTIONS (200); any other
/// method is uStreamer's 501.
pub fn routes(api: &mut Api) {
    for &(path, summary, params, answer) in PATHS {
        let base = Route::get(path).expose(Expose::Mount(PREFIX)).flow(Flow::Stream).doc(summary);
        api.route(base.params(params).answer(answer), get)
            .route(Route { method: Method::Head, ..base }.doc("The same, headers only"), head)
            .route(Route { method: Method::Options, ..base }.access(Access::Public).doc("200, for CORS"), options);
    }
}

/// A 1x1 icon.
const FAVICON: &[u8] = &[
    0, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0, 32, 0, 48, 0, 0, 0, 22, 0, 0, 0, 40, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 32,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x80, 0x20, 0xFF, 0, 0, 0, 0,
];

const INDEX: &str = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>kvmd-streamer</title></head>\
<body><h3>kvmd-streamer</h3><ul><li><a href=\"state\">/state</a></li><li><a href=\"snapshot\">/snapshot</a></li>\
<li><a href=\"stream\">/stream</a></li></ul></body></html>\n";

async fn head() -> HttpResponse {
    HttpResponse::Ok().finish()
}

async fn options() -> HttpResponse {
    HttpResponse::Ok().finish()
}

async fn get(req: HttpRequest, s: web::Data<Streamer>, shutdown: web::Data<CancellationToken>) -> HttpResponse {
    let q = Query::of(&req);
    let path = match (req.path(), q.get("action")) {
        ("/", Some("snapshot")) => "/snapshot",
        ("/", Some("stream")) => "/stream",
        (p, _) => p,
    };
    let mut resp = match path {
        "/state" => state(&s),
        "/snapshot" => {
            let frame = s.snapshot().await;
            super::image_response(&frame, frame.data.clone(), "image/jpeg")
        }
        "/stream" => stream(&req, &q, &s, shutdown.get_ref()),
        "/favicon.ico" => HttpResponse::Ok().content_type("image/x-icon").body(FAVICON),
        _ => HttpResponse::Ok().content_type("text/html").body(INDEX),
    };
    // HTTP/1.0 has no chunked framing: a body of unknown length ends with the
    // connection, as uStreamer writes it.
    if req.version() < actix_web::http::Version::HTTP_11 {
        resp.head_mut().no_chunking(true);
    }
    resp
}

/// The `/state` body, in uStreamer's formatting (one line, `{ ` opening `result`).
pub fn state_body(s: &Streamer) -> String {
    let result = kvmd_core::json::to_compact_string(&s.ustate());
    format!("{{\"ok\": true, \"result\": {{ {}}}", &result[1..])
}

fn state(s: &Streamer) -> HttpResponse {
    // No Content-Length: uStreamer answers nginx's HTTP/1.0 requests close-delimited.
    let body = Bytes::from(state_body(s));
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .streaming(futures_util::stream::once(async move { Ok::<_, actix_web::Error>(body) }))
}

fn on(q: &Query, name: &str) -> bool {
    q.get(name).is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// A client key is echoed into a cookie and JSON: only `[A-Za-z0-9_-]`, at most 64.
fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 64 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

struct Client {
    rx: tokio::sync::watch::Receiver<Option<Arc<Jpeg>>>,
    streamer: Streamer,
    id: String,
    flags: ClientFlags,
    shutdown: CancellationToken,
    started: bool,
    _guard: DemandGuard,
    _place: kvmd_core::limit::Permit,
    /// Ends the session hold (if any) with the stream.
    _ended: DropGuard,
}

fn part_headers(out: &mut BytesMut, j: &Jpeg, c: &Client) {
    use std::fmt::Write;
    let f = c.flags;
    let len = if f.zero_data { 0 } else { j.data.len() };
    let _ = write!(out, "Content-Type: image/jpeg\r\nContent-Length: {len}\r\nX-Timestamp: {}\r\n", stamp(realtime()));
    if f.extra_headers {
        let send = monotonic();
        let _ = write!(
            out,
            "X-UStreamer-Online: {}\r\nX-UStreamer-Dropped: {}\r\nX-UStreamer-Width: {}\r\nX-UStreamer-Height: {}\r\n\
             X-UStreamer-Client-FPS: {}\r\nX-UStreamer-Grab-Begin-Time: {}\r\nX-UStreamer-Grab-End-Time: {}\r\n\
             X-UStreamer-Encode-Begin-Time: {}\r\nX-UStreamer-Encode-End-Time: {}\r\n\
             X-UStreamer-Expose-Begin-Time: {}\r\nX-UStreamer-Expose-Cmp-Time: {}\r\n\
             X-UStreamer-Expose-End-Time: {}\r\nX-UStreamer-Send-Time: {}\r\nX-UStreamer-Latency: {}\r\n",
            j.online,
            j.dropped,
            j.width,
            j.height,
            c.streamer.client_fps(&c.id),
            stamp(j.grab_begin),
            stamp(j.grab_end),
            stamp(j.encode_begin),
            stamp(j.encode_end),
            stamp(j.expose_begin),
            stamp(j.expose_cmp),
            stamp(j.expose_end),
            stamp(send),
            stamp(send - j.grab_begin),
        );
    }
    out.extend_from_slice(b"\r\n");
}

fn advance_headers() -> Bytes {
    Bytes::from(format!("Content-Type: image/jpeg\r\nX-Timestamp: {}\r\n\r\n", stamp(realtime())))
}

/// The shared JPEG as zero-copy slices of 64 KiB: actix copies each body chunk into its
/// write buffer, and whole-frame chunks made that buffer grow to the frame's size per
/// client (fresh pages, faulted in, for every frame); small slices keep it small and warm.
fn push_data(chunks: &mut Vec<Bytes>, data: &Bytes) {
    const SLICE: usize = 64 * 1024;
    let mut at = 0;
    while at < data.len() {
        let end = (at + SLICE).min(data.len());
        chunks.push(data.slice(at..end));
        at = end;
    }
}

/// The next chunks of a client's stream: waits for a frame it has not had.
async fn next_part(mut c: Client) -> Option<(Vec<Bytes>, Client)> {
    if !c.started {
        c.started = true;
        let mut first = vec![Bytes::from(format!("--{BOUNDARY}\r\n"))];
        if c.flags.advance_headers {
            first.push(advance_headers());
        }
        return Some((first, c));
    }
    let frame = loop {
        tokio::select! {
            r = c.rx.changed() => r.ok()?,
            () = c.shutdown.cancelled() => return None,
        }
        let cur = c.rx.borrow_and_update().clone();
        if let Some(j) = cur
            && (j.kind != Kind::DualFinal || c.flags.dual_final_frames)
        {
            break j;
        }
    };
    let mut chunks = Vec::with_capacity(16);
    let trailer = Bytes::from_static(b"\r\n--boundarydonotcross\r\n");
    if c.flags.advance_headers {
        push_data(&mut chunks, &frame.data);
        chunks.push(trailer);
        chunks.push(advance_headers());
    } else {
        let mut head = BytesMut::with_capacity(if c.flags.extra_headers { 768 } else { 96 });
        part_headers(&mut head, &frame, &c);
        chunks.push(head.freeze());
        if !c.flags.zero_data {
            push_data(&mut chunks, &frame.data);
        }
        chunks.push(trailer);
    }
    c.streamer.client_sent(&c.id);
    Some((chunks, c))
}

/// What ends a stream: the service's shutdown, or for a cookie session's viewer the end
/// of that session (kvmd-auth tells the hold taken here when it is revoked, logged out or
/// expires).
fn held(req: &HttpRequest, shutdown: &CancellationToken) -> CancellationToken {
    let ended = shutdown.child_token();
    let user = actix_web::HttpMessage::extensions(req).get::<Authed>().cloned();
    if let (Some(id), Some(auth)) = (user.and_then(|u| u.session), req.app_data::<AuthClient>().cloned()) {
        let ended = ended.clone();
        actix_web::rt::spawn(async move {
            tokio::select! {
                () = auth.hold(&id, "stream") => ended.cancel(),
                // The stream ended first (its client left): so does the hold.
                () = ended.cancelled() => {}
            }
        });
    }
    ended
}

fn stream(req: &HttpRequest, q: &Query, s: &Streamer, shutdown: &CancellationToken) -> HttpResponse {
    let key = q.get("key").unwrap_or("0");
    if !valid_key(key) {
        return HttpResponse::BadRequest().content_type("text/plain").body("Invalid key: only [A-Za-z0-9_-]{1,64}");
    }
    let flags = ClientFlags {
        extra_headers: on(q, "extra_headers"),
        advance_headers: on(q, "advance_headers"),
        dual_final_frames: on(q, "dual_final_frames"),
        zero_data: on(q, "zero_data"),
    };
    let Ok(place) = s.stream_place() else {
        // In the HTML of uStreamer's other error pages.
        return HttpResponse::ServiceUnavailable()
            .content_type("text/html")
            .body("<html><body><h1>503 Service Unavailable</h1><p>Too many stream clients</p></body></html>\n");
    };
    let shutdown = held(req, shutdown);
    let (id, guard) = s.add_client(flags, key);
    let mut rx = s.frames();
    rx.mark_changed(); // the current frame goes out at once
    let cookie_name = match s.config().instance_id.as_str() {
        "" => "stream_client".to_owned(),
        i => format!("stream_client_{i}"),
    };
    let cookie = format!("{cookie_name}={key}/{id}; path=/; max-age=30");
    let ended = shutdown.clone().drop_guard();
    let client = Client {
        rx,
        streamer: s.clone(),
        id,
        flags,
        shutdown,
        started: false,
        _guard: guard,
        _place: place,
        _ended: ended,
    };
    let body = futures_util::stream::unfold(client, next_part)
        .flat_map(|chunks| futures_util::stream::iter(chunks.into_iter().map(Ok::<_, actix_web::Error>)));
    let mut r = HttpResponse::Ok();
    r.insert_header((header::CACHE_CONTROL, HeaderValue::from_static(super::CACHE_CONTROL)))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
        .insert_header((header::EXPIRES, HeaderValue::from_static(super::EXPIRES)));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.insert_header((header::SET_COOKIE, v));
    }
    r.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static("multipart/x-mixed-replace;boundary=boundarydonotcross"),
    ));
    r.streaming(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(valid_key("a8Kd02LmQz7sWx1B"));
        assert!(valid_key("0"));
        assert!(!valid_key("a;b"));
        assert!(!valid_key("a\"b"));
        assert!(!valid_key(""));
        assert!(!valid_key(&"a".repeat(65)));
    }
}
