//! `/ws`: kvmd's event and input WebSocket (spec `ws.md`).
//!
//! Authentication happens before the upgrade (nginx's `auth_request`, then the route's own check, as for
//! every `Access::User` route), so a refusal is kvmd's JSON 401/403/400. After the upgrade the session
//! sends `loop`, then every subsystem's full state, in kvmd's compact JSON with insertion
//! order; it then forwards changes: the HID state when a flag changes, the `info` feed
//! of kvmd-info (its `/info/feed` over kvmd-info's socket) and the `streamer` feed of
//! kvmd-streamer (`/streamer/feed`; a `stream=1` session keeps capture running while it
//! is open), each resumed when its service comes back; and the `gpio` and `atx` events of
//! kvmd-gpio (`/gpio/feed`) and the `msd` events of kvmd-msd (`/msd/feed`), each followed
//! once for the whole process and broadcast to every session, their newest full states in
//! the burst (kvmd's disabled states while their service is away). Subsystems the suite does not have send kvmd's disabled states. As in kvmd, a new
//! session makes every other session receive the full states again, and every session
//! hears the stream-client count when it changes. Input arrives as
//! JSON events or the web UI's binary protocol and goes straight to the HID core; connect
//! and disconnect release every key and button, as kvmd does.

pub mod input;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::AggregatedMessage as Message;
use futures_util::StreamExt;
use kvmd_core::authn::AuthClient;
use kvmd_core::query::Query;
use kvmd_core::routes::{Answer, Api, Flow, Param, Role, Route, Ty};
use kvmd_core::service::CancellationToken;
use kvmd_core::{ApiError, valid};

use crate::hid::{Event, Hid};

/// The group's route.
pub fn routes(api: &mut Api) {
    api.route(
        Route::get("/ws")
            .flow(Flow::WebSocket)
            .doc("kvmd's event and input WebSocket: state events out, keyboard and mouse events in")
            .params(
                const { &[Param::opt("stream", Ty::Bool, "Be a video stream client (capture runs); default true")] },
            )
            .answer(Answer::WebSocket),
        ws,
    );
}

/// kvmd's disabled or absent subsystems, as its WebSocket shows them
/// (`tests/golden/kvmd-4.197/ws/ws_stream0.txt`): `<event_type> <event JSON>` per line.
const DISABLED: &str = include_str!("disabled.txt");

/// kvmd's version as its `loop` event reports it (clients check it).
const LOOP: &str = r#"{"event_type": "loop", "event": {"version": {"major": 4, "minor": 197}}}"#;

/// Shared by every session of the process.
pub struct WsShared {
    /// Open sessions with `stream=1`.
    stream_clients: AtomicUsize,
    /// Session numbers, to tell a session its own announcements.
    next_id: std::sync::atomic::AtomicU64,
    /// What every session must hear: kvmd re-broadcasts the full states to all sessions
    /// when one connects, and the stream-client count whenever it changes.
    announce: tokio::sync::broadcast::Sender<Announce>,
    feeds: Feeds,
    /// The newest full event of each followed type (kvmd-gpio's `gpio` and `atx`, kvmd-msd's
    /// `msd`), for the bursts.
    followed: std::sync::Mutex<Followed>,
    /// The followed services' events as they come, for every session.
    events: tokio::sync::broadcast::Sender<Arc<str>>,
    shutdown: CancellationToken,
}

/// The sibling services whose feeds `/ws` merges: their sockets.
#[derive(Debug, Clone)]
pub struct Feeds {
    /// kvmd-info's, for the `info` events.
    pub info: PathBuf,
    /// kvmd-streamer's, for the `streamer` events.
    pub streamer: PathBuf,
    /// kvmd-gpio's, for the `gpio` and `atx` events.
    pub gpio: PathBuf,
    /// kvmd-msd's, for the `msd` events.
    pub msd: PathBuf,
}

/// A followed service's feed: its path, and the event types it carries (in burst order).
struct Source {
    path: &'static str,
    types: &'static [&'static str],
}

/// kvmd-gpio's feed of the `gpio` and `atx` events.
const GPIO_FEED: Source = Source { path: "/gpio/feed", types: &["gpio", "atx"] };
/// kvmd-msd's feed of the `msd` events.
const MSD_FEED: Source = Source { path: "/msd/feed", types: &["msd"] };

/// The full followed events, as sent: `(event type, event)`.
#[derive(Debug, Clone)]
struct Followed(Vec<(&'static str, String)>);

/// kvmd's disabled form of event type `t`.
fn disabled_event(t: &str) -> String {
    DISABLED
        .lines()
        .find_map(|l| l.strip_prefix(t).and_then(|r| r.strip_prefix(' ')))
        .map(|e| event(t, e))
        .unwrap_or_default()
}

impl Followed {
    /// kvmd's disabled forms.
    fn disabled() -> Self {
        Self(GPIO_FEED.types.iter().chain(MSD_FEED.types).map(|&t| (t, disabled_event(t))).collect())
    }

    fn get(&self, t: &str) -> Option<&String> {
        self.0.iter().find(|(k, _)| *k == t).map(|(_, v)| v)
    }

    fn slot(&mut self, t: &str) -> Option<&mut String> {
        self.0.iter_mut().find(|(k, _)| *k == t).map(|(_, v)| v)
    }
}

/// A message from one session to all the others.
#[derive(Debug, Clone, Copy)]
enum Announce {
    /// Session `0` connected: send the full states again.
    Resync(u64),
    /// The number of stream clients is now `1` (announced by session `0`).
    Clients(u64, usize),
}

impl WsShared {
    /// Sessions state for a process whose siblings listen on `feeds`. kvmd-gpio's and kvmd-msd's events
    /// flow once [`WsShared::follow`] runs.
    pub fn new(feeds: Feeds, shutdown: CancellationToken) -> Self {
        Self {
            stream_clients: AtomicUsize::new(0),
            next_id: std::sync::atomic::AtomicU64::new(0),
            announce: tokio::sync::broadcast::channel(64).0,
            feeds,
            followed: std::sync::Mutex::new(Followed::disabled()),
            events: tokio::sync::broadcast::channel(64).0,
            shutdown,
        }
    }

    fn followed(&self) -> Followed {
        self.followed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Follows kvmd-gpio's and kvmd-msd's feeds until shutdown.
    pub async fn follow(self: Arc<Self>) {
        let (gpio, msd) = (self.feeds.gpio.clone(), self.feeds.msd.clone());
        tokio::join!(self.clone().follow_one(gpio, &GPIO_FEED), self.follow_one(msd, &MSD_FEED));
    }

    /// Follows one service's feed: each line's event goes to every session and its full
    /// state is kept for the bursts. While the service is away its states are kvmd's
    /// disabled ones (announced once each time it goes).
    async fn follow_one(self: Arc<Self>, socket: PathBuf, source: &'static Source) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let url = format!("http://localhost{}", source.path);
        // `<event_type>\t<event>\t<full>` (a line without three fields is an unknown event);
        // `None`: the service is away.
        let split = |line: &str| {
            let [t, ev, full] = kvmd_core::feed::fields::<3>(line).unwrap_or_default();
            Some((t.to_owned(), ev.to_owned(), full.to_owned()))
        };
        let follower = tokio::spawn(follow_feed(socket, url, tx, split, Some(None)));
        loop {
            let part = tokio::select! {
                p = rx.recv() => p,
                () = self.shutdown.cancelled() => None,
            };
            let Some(part) = part else { break };
            let out: Vec<String> = {
                let mut full = self.followed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match part {
                    None => source
                        .types
                        .iter()
                        .filter_map(|t| {
                            let off = disabled_event(t);
                            full.slot(t).and_then(|slot| update(slot, off.clone(), off))
                        })
                        .collect(),
                    // A line of a newer service this one does not know is skipped.
                    Some((t, ev, whole)) => match source.types.iter().find(|k| **k == t) {
                        Some(k) => full
                            .slot(k)
                            .and_then(|slot| update(slot, event(k, &whole), event(k, &ev)))
                            .into_iter()
                            .collect(),
                        None => Vec::new(),
                    },
                }
            };
            for m in out {
                let _ = self.events.send(m.into());
            }
        }
        follower.abort();
    }
}

/// `ev` to send if the full state `whole` differs from `slot` (now `whole`): a
/// reconnection's first lines repeat what the sessions already have.
fn update(slot: &mut String, whole: String, ev: String) -> Option<String> {
    (*slot != whole).then(|| {
        *slot = whole;
        ev
    })
}

/// aiohttp's answer to a GET without the upgrade headers
/// (`tests/golden/kvmd-4.197/direct/ws_plain_get_no_upgrade.http`).
fn no_upgrade() -> HttpResponse {
    HttpResponse::BadRequest()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(kvmd_core::envelope::TEXT_CONTENT_TYPE)))
        .body("No WebSocket UPGRADE hdr: None\n Can \"Upgrade\" only to \"WebSocket\".")
}

fn event(event_type: &str, event: &str) -> String {
    format!("{{\"event_type\": \"{event_type}\", \"event\": {event}}}")
}

async fn ws(
    user: kvmd_core::authn::Authed,
    req: HttpRequest,
    body: web::Payload,
    hid: web::Data<Hid>,
    shared: web::Data<WsShared>,
    limits: web::Data<crate::Limits>,
) -> Result<HttpResponse, ApiError> {
    let stream = valid::boolean(Some(Query::of(&req).get("stream").unwrap_or("1")))?;
    let upgrade = req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Ok(no_upgrade());
    }
    // The session holds its place until it ends.
    let place = limits.ws.take()?;
    let Ok((resp, session, messages)) = actix_ws::handle(&req, body) else { return Ok(no_upgrade()) };
    let (hid, shared) = (hid.into_inner(), shared.into_inner());
    // A cookie session's WebSocket lives no longer than the session: kvmd-auth tells its
    // hold when the session is revoked, logged out or expires.
    let ended = CancellationToken::new();
    let holder = match (user.session.clone(), req.app_data::<AuthClient>().cloned()) {
        (Some(id), Some(auth)) => {
            let ended = ended.clone();
            Some(actix_web::rt::spawn(async move {
                auth.hold(&id, "ws").await;
                ended.cancel();
            }))
        }
        _ => None,
    };
    actix_web::rt::spawn(async move {
        // A viewer watches: its input is dropped, and its coming and going releases nothing.
        let control = user.role >= Role::Operator;
        run_session(session, messages, hid, shared, stream, control, ended).await;
        if let Some(h) = holder {
            h.abort();
        }
        drop(place);
    });
    Ok(resp)
}

/// The state burst of a new session, after `loop` and `clients`.
fn burst(hid: &Hid, shared: &WsShared) -> Vec<String> {
    let mut out = Vec::new();
    let followed = shared.followed();
    for line in DISABLED.lines() {
        match line.split_once(' ') {
            // The streamer's part comes from kvmd-streamer's feed (or its fallback).
            Some(("streamer", _)) | None => {}
            Some((t, e)) => out.push(followed.get(t).cloned().unwrap_or_else(|| event(t, e))),
        }
    }
    let keymaps = crate::api::hid::keymaps_value();
    out.push(event("hid_keymaps", &kvmd_core::json::to_compact_string(&keymaps)));
    out.push(event("hid", &kvmd_core::json::to_compact_string(&hid.state())));
    out
}

/// kvmd's `streamer` state while kvmd-streamer is unreachable: not running, nothing saved.
fn streamer_offline() -> String {
    let line = DISABLED.lines().find_map(|l| l.strip_prefix("streamer ")).unwrap_or("{}");
    line.replace(
        "\"snapshot\": {\"saved\": {\"online\": false, \"width\": 1920, \"height\": 1080}}",
        "\"snapshot\": {\"saved\": null}",
    )
}

/// Follows a sibling service's NDJSON feed over its socket: each line becomes a message
/// by `msg`; while the service is away it retries every 2 s, sending `offline` (if any)
/// once each time it cannot be reached. Ends when the session drops its receiver.
async fn follow_feed<T: Clone>(
    socket: PathBuf,
    url: String,
    tx: tokio::sync::mpsc::Sender<T>,
    msg: impl Fn(&str) -> T,
    offline: Option<T>,
) {
    let mut offline_sent = false;
    loop {
        if let Ok(client) = kvmd_core::client::unix(&socket).build()
            && let Ok(resp) = client.get(&url).send().await
            && resp.status().is_success()
        {
            offline_sent = false;
            let mut lines = kvmd_core::feed::Lines::new(resp);
            while let Some(line) = lines.next().await {
                if tx.send(msg(&line)).await.is_err() {
                    return;
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        if let Some(off) = offline.as_ref().filter(|_| !offline_sent) {
            offline_sent = true;
            if tx.send(off.clone()).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// `(event, full state)` pairs of kvmd-streamer's feed (its lines are `<event>\t<full>`),
/// the offline state while it is away. `stream` makes this session a stream client
/// (capture runs while it is connected).
async fn streamer_feed(socket: PathBuf, stream: bool, tx: tokio::sync::mpsc::Sender<(String, String)>) {
    let url = format!("http://localhost/streamer/feed?stream={}", u8::from(stream));
    let split = |line: &str| {
        let (ev, full) = line.split_once('\t').unwrap_or((line, ""));
        (ev.to_owned(), full.to_owned())
    };
    let off = streamer_offline();
    follow_feed(socket, url, tx, split, Some((off.clone(), off))).await;
}

/// `info` events from kvmd-info's feed.
async fn info_feed(socket: PathBuf, tx: tokio::sync::mpsc::Sender<String>) {
    follow_feed(socket, "http://localhost/info/feed".to_owned(), tx, |line| event("info", line), None).await;
}

/// Keeps `line` (an `info` event) as the newest of its category.
fn remember_info(last: &mut Vec<(String, String)>, line: String) {
    // `{"event_type": "info", "event": {"<category>": ...}}`
    let category = line
        .split_once("\"event\": {\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(c, _)| c.to_owned())
        .unwrap_or_default();
    match last.iter_mut().find(|(c, _)| *c == category) {
        Some(slot) => slot.1 = line,
        None => last.push((category, line)),
    }
}

const HEARTBEAT: Duration = Duration::from_secs(15);
/// The largest message a client may send, whole or in continuation frames (kvmd's input
/// events are tens of bytes).
const MAX_MESSAGE: usize = 64 * 1024;
const HEARTBEAT_GRACE: Duration = Duration::from_millis(7500);

/// 1009 for a message over the size caps (actix-ws reports the aggregation cap as an I/O
/// error with this text), 1002 for any other broken framing.
fn close_code(e: &actix_ws::ProtocolError) -> actix_ws::CloseCode {
    match e {
        actix_ws::ProtocolError::Overflow => actix_ws::CloseCode::Size,
        actix_ws::ProtocolError::Io(io) if io.to_string().contains("maximum continuation size") => {
            actix_ws::CloseCode::Size
        }
        _ => actix_ws::CloseCode::Protocol,
    }
}

async fn run_session(
    mut session: actix_ws::Session,
    messages: actix_ws::MessageStream,
    hid: Arc<Hid>,
    shared: Arc<WsShared>,
    stream: bool,
    control: bool,
    ended: CancellationToken,
) {
    // A message split across continuation frames is reassembled (an input event must never
    // be lost: a lost release leaves a key held); one over the cap ends the session with
    // 1009, and the end of a session releases everything.
    let mut messages = messages.aggregate_continuations().max_continuation_size(MAX_MESSAGE);
    let mut close = None;
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let mut announcements = shared.announce.subscribe();
    // Before the burst reads the full states, so that no change falls between them.
    let mut followed_events = shared.events.subscribe();
    if stream {
        let n = shared.stream_clients.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = shared.announce.send(Announce::Clients(id, n));
    }
    let _ = shared.announce.send(Announce::Resync(id));
    // kvmd releases everything when a session comes or goes.
    if control {
        hid.send(Event::Reset).await;
    }
    let clients = format!("{{\"count\": {}}}", shared.stream_clients.load(Ordering::SeqCst));
    let mut first = vec![LOOP.to_owned(), event("clients", &clients)];
    first.extend(burst(&hid, &shared));
    // kvmd's stream controller reports the clients a second time.
    first.push(event("clients", &clients));
    let mut ok = true;
    for m in first {
        ok = ok && session.text(m).await.is_ok();
    }
    let (info_tx, mut info_rx) = tokio::sync::mpsc::channel(64);
    let feed = actix_web::rt::spawn(info_feed(shared.feeds.info.clone(), info_tx));
    let (streamer_tx, mut streamer_rx) = tokio::sync::mpsc::channel(16);
    let streamer = actix_web::rt::spawn(streamer_feed(shared.feeds.streamer.clone(), stream, streamer_tx));
    let mut streamer_full: Option<String> = None;
    // The newest `info` message of each category, in first-seen order, to resend with
    // the full states when another session connects.
    let mut info_last: Vec<(String, String)> = Vec::new();
    let mut last_hid = kvmd_core::json::to_compact_string(&hid.state());
    let mut hid_tick = tokio::time::interval(Duration::from_millis(100));
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    let mut last_seen = Instant::now();
    while ok {
        tokio::select! {
            m = messages.next() => {
                let m = match m {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        tracing::info!(error = %e, "closing a WebSocket session");
                        close = Some(actix_ws::CloseReason::from(close_code(&e)));
                        break;
                    }
                    None => break,
                };
                last_seen = Instant::now();
                match m {
                    Message::Text(t) => {
                        let reply = if control { input::json(&hid, &t).await } else { input::viewer_json(&t) };
                        if let Some(reply) = reply {
                            ok = session.text(reply).await.is_ok();
                        }
                    }
                    Message::Binary(b) => {
                        if b.is_empty() {
                            break; // kvmd: a zero-length binary frame ends the session
                        }
                        let reply = if control { input::binary(&hid, &b).await } else { input::viewer_binary(&b) };
                        match reply {
                            input::Reply::Pong => ok = session.binary(vec![0xFFu8]).await.is_ok(),
                            input::Reply::None => {}
                            input::Reply::Close => break,
                        }
                    }
                    Message::Ping(p) => ok = session.pong(&p).await.is_ok(),
                    Message::Pong(_) => {}
                    Message::Close(_) => break,
                }
            }
            a = announcements.recv() => {
                match a {
                    Ok(Announce::Resync(from)) if from != id => {
                        for m in burst(&hid, &shared) {
                            ok = ok && session.text(m).await.is_ok();
                        }
                        if let Some(full) = &streamer_full {
                            ok = ok && session.text(event("streamer", full)).await.is_ok();
                        }
                        for (_, line) in &info_last {
                            ok = ok && session.text(line.clone()).await.is_ok();
                        }
                    }
                    Ok(Announce::Clients(from, n)) if from != id => {
                        ok = session.text(event("clients", &format!("{{\"count\": {n}}}"))).await.is_ok();
                    }
                    _ => {}
                }
            }
            line = info_rx.recv() => {
                if let Some(line) = line {
                    ok = session.text(line.clone()).await.is_ok();
                    remember_info(&mut info_last, line);
                }
            }
            m = followed_events.recv() => {
                match m {
                    Ok(m) => ok = session.text(m.to_string()).await.is_ok(),
                    // Fell behind: the full states say where things are now.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        for (_, full) in shared.followed().0 {
                            ok = ok && session.text(full).await.is_ok();
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {}
                }
            }
            part = streamer_rx.recv() => {
                if let Some((ev, full)) = part {
                    ok = session.text(event("streamer", &ev)).await.is_ok();
                    streamer_full = Some(full);
                }
            }
            _ = hid_tick.tick() => {
                let now = kvmd_core::json::to_compact_string(&hid.state());
                if now != last_hid {
                    ok = session.text(event("hid", &now)).await.is_ok();
                    last_hid = now;
                }
            }
            _ = heartbeat.tick() => {
                if last_seen.elapsed() > HEARTBEAT + HEARTBEAT_GRACE {
                    break; // no pong (nor anything else) since the last ping
                }
                ok = session.ping(b"").await.is_ok();
            }
            () = shared.shutdown.cancelled() => break,
            () = ended.cancelled() => {
                tracing::info!("closing a WebSocket session: its login session ended");
                close = Some(actix_ws::CloseReason {
                    code: actix_ws::CloseCode::Policy,
                    description: Some("session ended".into()),
                });
                break;
            }
        }
    }
    feed.abort();
    streamer.abort();
    let _ = session.close(close).await;
    if stream {
        let n = shared.stream_clients.fetch_sub(1, Ordering::SeqCst).saturating_sub(1);
        let _ = shared.announce.send(Announce::Clients(id, n));
    }
    if control {
        hid.send(Event::Reset).await;
    }
}
