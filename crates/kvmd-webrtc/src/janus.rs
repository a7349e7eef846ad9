//! The Janus WebSocket protocol, the subset PiKVM's web UI speaks (spec `webrtc-h264.md` §2),
//! with the uStreamer plugin's messages: sessions, handles, their liveness, and the replies.
//!
//! One [`Conn`] per WebSocket. Replies are Janus's: `success`/`ack`/`error` for the
//! request's transaction, plugin `event`s (before the request's `success`, as Janus pushes
//! them inside the handler) and `webrtcup`. Error codes and reasons follow Janus's
//! `apierror.h`. Nothing a client sends can make it panic or grow without bound: sessions
//! per connection and peers in all are capped, idle sessions time out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::ice::Ice;
use crate::peer::{Peer, Told};
use crate::video::Video;

/// The one plugin.
pub const PLUGIN: &str = "janus.plugin.ustreamer";

/// Janus's error codes (`apierror.h`).
pub mod code {
    /// `JANUS_ERROR_MISSING_REQUEST`.
    pub const MISSING_REQUEST: u32 = 452;
    /// `JANUS_ERROR_UNKNOWN_REQUEST`.
    pub const UNKNOWN_REQUEST: u32 = 453;
    /// `JANUS_ERROR_INVALID_JSON`.
    pub const INVALID_JSON: u32 = 454;
    /// `JANUS_ERROR_INVALID_JSON_OBJECT`.
    pub const INVALID_JSON_OBJECT: u32 = 455;
    /// `JANUS_ERROR_MISSING_MANDATORY_ELEMENT`.
    pub const MISSING_ELEMENT: u32 = 456;
    /// `JANUS_ERROR_SESSION_NOT_FOUND`.
    pub const NO_SESSION: u32 = 458;
    /// `JANUS_ERROR_HANDLE_NOT_FOUND`.
    pub const NO_HANDLE: u32 = 459;
    /// `JANUS_ERROR_PLUGIN_NOT_FOUND`.
    pub const NO_PLUGIN: u32 = 460;
    /// `JANUS_ERROR_JSEP_UNKNOWN_TYPE`.
    pub const JSEP_UNKNOWN_TYPE: u32 = 464;
    /// `JANUS_ERROR_JSEP_INVALID_SDP`.
    pub const JSEP_INVALID_SDP: u32 = 465;
    /// `JANUS_ERROR_INVALID_ELEMENT_TYPE`.
    pub const INVALID_ELEMENT_TYPE: u32 = 467;
    /// `JANUS_ERROR_NOT_ACCEPTING_SESSIONS`.
    pub const NOT_ACCEPTING_SESSIONS: u32 = 472;
}

/// Which session, handle and offer (the handle's `watch` count) a peer belongs to.
pub type Tag = (u64, u64, u64);

/// What the connection needs from the service.
#[derive(Debug, Clone)]
pub struct Env {
    /// ICE.
    pub ice: Ice,
    /// The shared video.
    pub video: Arc<Video>,
    /// Peers in all.
    pub peers: Arc<kvmd_core::limit::Limit>,
    /// Sessions per connection.
    pub max_sessions: usize,
    /// Idle session lifetime.
    pub session_timeout: Duration,
    /// From offer to media.
    pub connect_timeout: Duration,
}

struct Handle {
    peer: Option<(Peer, kvmd_core::limit::Permit)>,
    /// Offers made (a peer's tag carries its number).
    offers: u64,
}

struct Session {
    handles: HashMap<u64, Handle>,
    seen: Instant,
}

/// One WebSocket's sessions.
pub struct Conn {
    env: Env,
    sessions: HashMap<u64, Session>,
    told: mpsc::Sender<(Tag, Told)>,
}

/// A JSON object with its members in Janus's order (`janus`, `session_id`, `transaction`, …).
fn obj(members: Vec<(&str, Value)>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(k.to_owned()).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    }
    out.push('}');
    out
}

fn random_id() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    // Exact in JavaScript: below 2^53, and never 0.
    (u64::from_le_bytes(b) & ((1 << 53) - 1)).max(1)
}

fn head(janus: &str, session: u64, tr: &Option<Value>) -> Vec<(&'static str, Value)> {
    let mut m: Vec<(&'static str, Value)> = vec![("janus", json!(janus))];
    if session != 0 {
        m.push(("session_id", json!(session)));
    }
    if let Some(t) = tr {
        m.push(("transaction", t.clone()));
    }
    m
}

/// A Janus error reply.
pub fn error(session: u64, tr: &Option<Value>, code: u32, reason: &str) -> String {
    let mut m = head("error", session, tr);
    m.push(("error", json!({"code": code, "reason": reason})));
    obj(m)
}

impl Conn {
    /// A connection; peers tell `told` about themselves.
    pub fn new(env: Env, told: mpsc::Sender<(Tag, Told)>) -> Self {
        Self { env, sessions: HashMap::new(), told }
    }

    /// Sessions open.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The replies to one text message.
    pub async fn handle(&mut self, text: &str) -> Vec<String> {
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return vec![error(0, &None, code::INVALID_JSON, &format!("JSON error: {e}"))],
        };
        let Some(m) = v.as_object() else {
            return vec![error(0, &None, code::INVALID_JSON_OBJECT, "JSON error: not an object")];
        };
        let tr = m.get("transaction").cloned();
        let session = m.get("session_id").and_then(Value::as_u64).unwrap_or(0);
        let Some(janus) = m.get("janus") else {
            return vec![error(session, &tr, code::MISSING_ELEMENT, "Missing mandatory element (janus)")];
        };
        let Some(janus) = janus.as_str() else {
            return vec![error(
                session,
                &tr,
                code::INVALID_ELEMENT_TYPE,
                "Invalid element type (janus should be a string)",
            )];
        };
        match tr {
            None => {
                return vec![error(session, &None, code::MISSING_ELEMENT, "Missing mandatory element (transaction)")];
            }
            Some(Value::String(_)) => {}
            Some(_) => {
                return vec![error(
                    session,
                    &tr,
                    code::INVALID_ELEMENT_TYPE,
                    "Invalid element type (transaction should be a string)",
                )];
            }
        }
        // Requests without a session.
        match janus {
            "ping" => return vec![obj(head("pong", 0, &tr))],
            "info" => {
                let mut r = head("server_info", 0, &tr);
                r.extend([
                    ("name", json!("kvmd-webrtc")),
                    ("version_string", json!("1.4.2")),
                    ("plugins", json!({PLUGIN: {"name": "uStreamer H.264 (kvmd-webrtc)"}})),
                ]);
                return vec![obj(r)];
            }
            "create" => {
                if self.sessions.len() >= self.env.max_sessions {
                    return vec![error(0, &tr, code::NOT_ACCEPTING_SESSIONS, "Too many sessions on this connection")];
                }
                let id = random_id();
                self.sessions.insert(id, Session { handles: HashMap::new(), seen: Instant::now() });
                let mut r = head("success", 0, &tr);
                r.push(("data", json!({"id": id})));
                return vec![obj(r)];
            }
            _ => {}
        }
        if session == 0 {
            return match janus {
                "attach" | "destroy" | "detach" | "message" | "trickle" | "keepalive" | "hangup" | "claim" => {
                    vec![error(0, &tr, code::MISSING_ELEMENT, "Missing mandatory element (session_id)")]
                }
                other => vec![error(0, &tr, code::UNKNOWN_REQUEST, &format!("Unknown request '{other}'"))],
            };
        }
        let Some(s) = self.sessions.get_mut(&session) else {
            return vec![error(session, &tr, code::NO_SESSION, &format!("No such session {session}"))];
        };
        s.seen = Instant::now();
        let handle = m.get("handle_id").and_then(Value::as_u64).unwrap_or(0);
        match janus {
            "keepalive" => vec![obj(head("ack", session, &tr))],
            "claim" => vec![obj(head("success", session, &tr))],
            "destroy" => {
                self.sessions.remove(&session);
                vec![obj(head("success", session, &tr))]
            }
            "attach" => {
                let plugin = m.get("plugin").and_then(Value::as_str);
                let Some(plugin) = plugin else {
                    return vec![error(session, &tr, code::MISSING_ELEMENT, "Missing mandatory element (plugin)")];
                };
                if plugin != PLUGIN {
                    return vec![error(session, &tr, code::NO_PLUGIN, &format!("No such plugin '{plugin}'"))];
                }
                if s.handles.len() >= 4 {
                    return vec![error(session, &tr, code::NOT_ACCEPTING_SESSIONS, "Too many handles in this session")];
                }
                let id = random_id();
                s.handles.insert(id, Handle { peer: None, offers: 0 });
                let mut r = head("success", session, &tr);
                r.push(("data", json!({"id": id})));
                vec![obj(r)]
            }
            "detach" | "hangup" | "message" | "trickle" => {
                if handle == 0 {
                    return vec![error(session, &tr, code::MISSING_ELEMENT, "Missing mandatory element (handle_id)")];
                }
                if !s.handles.contains_key(&handle) {
                    return vec![error(
                        session,
                        &tr,
                        code::NO_HANDLE,
                        &format!("No such handle {handle} in session {session}"),
                    )];
                }
                match janus {
                    "detach" => {
                        s.handles.remove(&handle);
                        vec![obj(head("success", session, &tr))]
                    }
                    "hangup" => {
                        if let Some(h) = s.handles.get_mut(&handle) {
                            h.peer = None;
                        }
                        vec![obj(head("success", session, &tr))]
                    }
                    "trickle" => self.trickle(session, handle, &tr, m),
                    _ => self.message(session, handle, &tr, m).await,
                }
            }
            other => vec![error(session, &tr, code::UNKNOWN_REQUEST, &format!("Unknown request '{other}'"))],
        }
    }

    fn trickle(
        &mut self,
        session: u64,
        handle: u64,
        tr: &Option<Value>,
        m: &serde_json::Map<String, Value>,
    ) -> Vec<String> {
        let cands: Vec<&Value> = match (m.get("candidate"), m.get("candidates")) {
            (Some(c), _) => vec![c],
            (None, Some(Value::Array(a))) => a.iter().collect(),
            _ => return vec![error(session, tr, code::MISSING_ELEMENT, "Missing mandatory element (candidate)")],
        };
        let peer = self.sessions.get(&session).and_then(|s| s.handles.get(&handle)).and_then(|h| h.peer.as_ref());
        for c in cands {
            let Some(c) = c.as_object() else {
                return vec![error(
                    session,
                    tr,
                    code::INVALID_ELEMENT_TYPE,
                    "Invalid element type (candidate should be an object)",
                )];
            };
            if c.get("completed").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let Some(line) = c.get("candidate").and_then(Value::as_str) else {
                return vec![error(session, tr, code::MISSING_ELEMENT, "Missing mandatory element (candidate)")];
            };
            // Before the offer there is nothing to add to (ICE-lite learns the browser's
            // addresses from its checks anyway).
            if let Some((p, _)) = peer {
                p.candidate(line.chars().take(512).collect());
            }
        }
        vec![obj(head("ack", session, tr))]
    }

    fn event(session: u64, handle: u64, data: Value, jsep: Option<Value>) -> String {
        let mut r = head("event", session, &None);
        r.push(("sender", json!(handle)));
        r.push(("plugindata", json!({"plugin": PLUGIN, "data": data})));
        if let Some(j) = jsep {
            r.push(("jsep", j));
        }
        obj(r)
    }

    fn plugin_error(code: u32, text: &str) -> Value {
        json!({"ustreamer": "event", "error_code": code, "error": text})
    }

    async fn message(
        &mut self,
        session: u64,
        handle: u64,
        tr: &Option<Value>,
        m: &serde_json::Map<String, Value>,
    ) -> Vec<String> {
        let Some(body) = m.get("body") else {
            return vec![error(session, tr, code::MISSING_ELEMENT, "Missing mandatory element (body)")];
        };
        let Some(body) = body.as_object() else {
            return vec![error(
                session,
                tr,
                code::INVALID_ELEMENT_TYPE,
                "Invalid element type (body should be an object)",
            )];
        };
        let mut ok = head("success", session, tr);
        ok.push(("sender", json!(handle)));
        ok.push(("plugindata", json!({"plugin": PLUGIN, "data": {"ok": true}})));
        let ok = obj(ok);
        let status = |s: &str| json!({"ustreamer": "event", "result": {"status": s}});
        let data = match body.get("request") {
            None => Self::plugin_error(400, "Request missing"),
            Some(Value::String(r)) => match r.as_str() {
                "features" => json!({"ustreamer": "event", "result": {"status": "features", "features": {
                    "audio": false, "mic": false, "ice": {"url": self.env.ice.stun_url()}}}}),
                "watch" => return self.watch(session, handle, ok).await,
                "start" => {
                    let jsep = m.get("jsep");
                    if let Some(jsep) = jsep
                        && let Err(e) = self.answer(session, handle, jsep).await
                    {
                        return vec![e(session, tr)];
                    }
                    status("started")
                }
                "stop" => {
                    if let Some(h) = self.sessions.get_mut(&session).and_then(|s| s.handles.get_mut(&handle)) {
                        h.peer = None;
                    }
                    status("stopped")
                }
                "key_required" => {
                    self.env.video.request_key();
                    return vec![ok];
                }
                _ => Self::plugin_error(405, "Not implemented"),
            },
            Some(_) => Self::plugin_error(400, "Request not a string"),
        };
        vec![Self::event(session, handle, data, None), ok]
    }

    async fn watch(&mut self, session: u64, handle: u64, ok: String) -> Vec<String> {
        let Some(h) = self.sessions.get_mut(&session).and_then(|s| s.handles.get_mut(&handle)) else { return vec![ok] };
        // A new offer on every watch: the old peer goes first (and frees its place).
        h.peer = None;
        h.offers += 1;
        let offer = h.offers;
        let permit = match self.env.peers.take() {
            Ok(p) => p,
            Err(_) => return vec![Self::event(session, handle, Self::plugin_error(503, "Too many viewers"), None), ok],
        };
        let e = &self.env;
        match Peer::offer(&e.ice, e.video.clone(), e.connect_timeout, self.told.clone(), (session, handle, offer)).await
        {
            Ok((sdp, peer)) => {
                if let Some(h) = self.sessions.get_mut(&session).and_then(|s| s.handles.get_mut(&handle)) {
                    h.peer = Some((peer, permit));
                }
                let data = json!({"ustreamer": "event", "result": {"status": "started"}});
                vec![Self::event(session, handle, data, Some(json!({"type": "offer", "sdp": sdp}))), ok]
            }
            Err(err) => {
                tracing::warn!(error = %err, "no WebRTC peer");
                vec![Self::event(session, handle, Self::plugin_error(500, &format!("{err}")), None), ok]
            }
        }
    }

    async fn answer(
        &mut self,
        session: u64,
        handle: u64,
        jsep: &Value,
    ) -> Result<(), Box<dyn Fn(u64, &Option<Value>) -> String + Send>> {
        let ty = jsep.get("type").and_then(Value::as_str).unwrap_or("");
        if ty != "answer" {
            let t = ty.to_owned();
            return Err(Box::new(move |s, tr| {
                error(s, tr, code::JSEP_UNKNOWN_TYPE, &format!("JSEP error: unknown message type '{t}'"))
            }));
        }
        let Some(sdp) = jsep.get("sdp").and_then(Value::as_str) else {
            return Err(Box::new(|s, tr| error(s, tr, code::MISSING_ELEMENT, "Missing mandatory element (sdp)")));
        };
        let peer = self.sessions.get(&session).and_then(|s| s.handles.get(&handle)).and_then(|h| h.peer.as_ref());
        let Some((peer, _)) = peer else {
            return Err(Box::new(|s, tr| error(s, tr, 469, "Unexpected ANSWER (did we offer?)")));
        };
        let r = peer.answer(sdp.chars().take(64 * 1024).collect()).await;
        if let Err(reason) = r {
            if let Some(h) = self.sessions.get_mut(&session).and_then(|s| s.handles.get_mut(&handle)) {
                h.peer = None;
            }
            return Err(Box::new(move |s, tr| {
                error(s, tr, code::JSEP_INVALID_SDP, &format!("JSEP error: invalid SDP ({reason})"))
            }));
        }
        Ok(())
    }

    /// What a peer told, as messages for the client.
    pub fn told(&mut self, (session, handle, offer): Tag, what: Told) -> Vec<String> {
        let current =
            self.sessions.get(&session).and_then(|s| s.handles.get(&handle)).is_some_and(|h| h.offers == offer);
        if !current {
            return Vec::new(); // an earlier offer's peer
        }
        match what {
            Told::Up => {
                let mut r = head("webrtcup", session, &None);
                r.push(("sender", json!(handle)));
                vec![obj(r)]
            }
            Told::Gone => {
                // Forgotten quietly: a `hangup` would leave the UI's video dead; the browser
                // sees its own connection fail and starts again.
                if let Some(h) = self.sessions.get_mut(&session).and_then(|s| s.handles.get_mut(&handle)) {
                    h.peer = None;
                }
                Vec::new()
            }
        }
    }

    /// Ends sessions idle longer than the session timeout (Janus's `timeout` event).
    pub fn reap(&mut self) -> Vec<String> {
        let limit = self.env.session_timeout;
        let idle: Vec<u64> =
            self.sessions.iter().filter(|(_, s)| s.seen.elapsed() >= limit).map(|(id, _)| *id).collect();
        idle.into_iter()
            .map(|id| {
                self.sessions.remove(&id);
                obj(head("timeout", id, &None))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IceConfig;

    fn conn(max_sessions: usize, timeout: Duration) -> (Conn, mpsc::Receiver<(Tag, Told)>) {
        let ice = IceConfig {
            addresses: vec!["127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"))],
            loopback: true,
            ..IceConfig::default()
        };
        let env = Env {
            ice: Ice::new(&ice).unwrap_or_else(|e| panic!("{e}")),
            video: Video::new(std::path::Path::new("/nonexistent/streamer.sock")),
            peers: Arc::new(kvmd_core::limit::Limit::new(2, "WebRTC viewers")),
            max_sessions,
            session_timeout: timeout,
            connect_timeout: Duration::from_secs(5),
        };
        let (tx, rx) = mpsc::channel(8);
        (Conn::new(env, tx), rx)
    }

    fn one(out: Vec<String>) -> Value {
        assert_eq!(out.len(), 1, "{out:?}");
        serde_json::from_str(&out[0]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(v: &Value) -> (u32, String) {
        assert_eq!(v["janus"], "error", "{v}");
        let code = v["error"]["code"].as_u64().and_then(|c| u32::try_from(c).ok()).unwrap_or(0);
        (code, v["error"]["reason"].as_str().unwrap_or("").to_owned())
    }

    async fn session_and_handle(c: &mut Conn) -> (u64, u64) {
        let s = one(c.handle(r#"{"janus":"create","transaction":"a"}"#).await)["data"]["id"].as_u64().unwrap_or(0);
        let a = format!(r#"{{"janus":"attach","plugin":"{PLUGIN}","transaction":"b","session_id":{s}}}"#);
        let h = one(c.handle(&a).await)["data"]["id"].as_u64().unwrap_or(0);
        (s, h)
    }

    #[tokio::test]
    async fn malformed_messages_get_janus_errors() {
        let (mut c, _rx) = conn(8, Duration::from_secs(60));
        assert_eq!(err(&one(c.handle("{nope").await)).0, code::INVALID_JSON);
        assert_eq!(err(&one(c.handle("[1,2]").await)).0, code::INVALID_JSON_OBJECT);
        assert_eq!(
            err(&one(c.handle(r#"{"transaction":"t"}"#).await)),
            (456, "Missing mandatory element (janus)".into())
        );
        assert_eq!(err(&one(c.handle(r#"{"janus":7,"transaction":"t"}"#).await)).0, code::INVALID_ELEMENT_TYPE);
        assert_eq!(
            err(&one(c.handle(r#"{"janus":"create"}"#).await)),
            (456, "Missing mandatory element (transaction)".into())
        );
        assert_eq!(
            err(&one(c.handle(r#"{"janus":"fly","transaction":"t"}"#).await)),
            (453, "Unknown request 'fly'".into())
        );
        let v = one(c.handle(r#"{"janus":"keepalive","transaction":"t","session_id":42}"#).await);
        assert_eq!(err(&v), (458, "No such session 42".into()));
        assert_eq!(v["transaction"], "t");
        let (s, h) = session_and_handle(&mut c).await;
        let a = format!(r#"{{"janus":"attach","plugin":"janus.plugin.echotest","transaction":"t","session_id":{s}}}"#);
        assert_eq!(err(&one(c.handle(&a).await)), (460, "No such plugin 'janus.plugin.echotest'".into()));
        let m =
            format!(r#"{{"janus":"message","body":{{}},"transaction":"t","session_id":{s},"handle_id":{}}}"#, h + 1);
        assert_eq!(err(&one(c.handle(&m).await)).0, code::NO_HANDLE);
        let m = format!(r#"{{"janus":"message","transaction":"t","session_id":{s},"handle_id":{h}}}"#);
        assert_eq!(err(&one(c.handle(&m).await)), (456, "Missing mandatory element (body)".into()));
        let t = format!(r#"{{"janus":"trickle","transaction":"t","session_id":{s},"handle_id":{h}}}"#);
        assert_eq!(err(&one(c.handle(&t).await)), (456, "Missing mandatory element (candidate)".into()));
        // The plugin's own errors: an event, then the success.
        for (body, code, text) in [
            ("{}", 400, "Request missing"),
            (r#"{"request":5}"#, 400, "Request not a string"),
            (r#"{"request":"dance"}"#, 405, "Not implemented"),
        ] {
            let m =
                format!(r#"{{"janus":"message","body":{body},"transaction":"t","session_id":{s},"handle_id":{h}}}"#);
            let out = c.handle(&m).await;
            assert_eq!(out.len(), 2, "{out:?}");
            let ev: Value = serde_json::from_str(&out[0]).unwrap_or_default();
            assert_eq!(ev["plugindata"]["data"], json!({"ustreamer": "event", "error_code": code, "error": text}));
            let ok: Value = serde_json::from_str(&out[1]).unwrap_or_default();
            assert_eq!((ok["janus"].as_str(), ok["transaction"].as_str()), (Some("success"), Some("t")));
        }
    }

    #[tokio::test]
    async fn answers_that_are_not_sdp_or_refuse_h264_are_refused() {
        let (mut c, _rx) = conn(8, Duration::from_secs(60));
        let (s, h) = session_and_handle(&mut c).await;
        let start = |sdp: &str| {
            json!({"janus": "message", "body": {"request": "start"}, "jsep": {"type": "answer", "sdp": sdp}, "transaction": "t", "session_id": s, "handle_id": h}).to_string()
        };
        // No offer yet.
        assert_eq!(err(&one(c.handle(&start("v=0")).await)).0, 469);
        let watch = json!({"janus": "message", "body": {"request": "watch"}, "transaction": "w", "session_id": s, "handle_id": h}).to_string();
        let out = c.handle(&watch).await;
        let offer: Value = serde_json::from_str(&out[0]).unwrap_or_default();
        let offer = offer["jsep"]["sdp"].as_str().unwrap_or_default().to_owned();
        assert!(offer.contains("H264"), "{offer}");
        let (code, reason) = err(&one(c.handle(&start("this is not SDP")).await));
        assert_eq!(code, code::JSEP_INVALID_SDP);
        assert!(reason.starts_with("JSEP error: invalid SDP"), "{reason}");
        // A browser that takes VP8 only: its answer rejects the video.
        c.handle(&watch).await;
        let out = c.handle(&watch).await;
        let offer: Value = serde_json::from_str(&out[0]).unwrap_or_default();
        let offer = offer["jsep"]["sdp"].as_str().unwrap_or_default().to_owned();
        let mut vp8 = str0m::Rtc::builder().clear_codecs().enable_vp8(true).build(std::time::Instant::now());
        let answer = vp8
            .sdp_api()
            .accept_offer(str0m::change::SdpOffer::from_sdp_string(&offer).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        let (code, reason) = err(&one(c.handle(&start(&answer.to_sdp_string())).await));
        assert_eq!(code, code::JSEP_INVALID_SDP, "{reason}");
        // A wrong JSEP type.
        let offer_as_answer = json!({"janus": "message", "body": {"request": "start"}, "jsep": {"type": "offer", "sdp": "v=0"}, "transaction": "t", "session_id": s, "handle_id": h}).to_string();
        assert_eq!(err(&one(c.handle(&offer_as_answer).await)).0, code::JSEP_UNKNOWN_TYPE);
    }

    #[tokio::test]
    async fn sessions_are_capped_and_reaped_and_viewers_are_capped() {
        let (mut c, _rx) = conn(8, Duration::from_millis(50));
        let mut refused = 0;
        for _ in 0..1000 {
            let v = one(c.handle(r#"{"janus":"create","transaction":"x"}"#).await);
            if v["janus"] == "error" {
                assert_eq!(v["error"]["code"], code::NOT_ACCEPTING_SESSIONS);
                refused += 1;
            }
        }
        assert_eq!((c.sessions(), refused), (8, 992));
        tokio::time::sleep(Duration::from_millis(80)).await;
        let gone = c.reap();
        assert_eq!(gone.len(), 8);
        let v: Value = serde_json::from_str(&gone[0]).unwrap_or_default();
        assert_eq!(v["janus"], "timeout");
        assert!(v["session_id"].as_u64().is_some());
        assert_eq!(c.sessions(), 0);

        // Two viewers at most (this connection's limit): the third watch is the plugin's 503.
        let (mut c, _rx) = conn(8, Duration::from_secs(60));
        let mut offers = 0;
        for i in 0..3 {
            let (s, h) = session_and_handle(&mut c).await;
            let w = json!({"janus": "message", "body": {"request": "watch"}, "transaction": format!("w{i}"), "session_id": s, "handle_id": h}).to_string();
            let out = c.handle(&w).await;
            let ev: Value = serde_json::from_str(&out[0]).unwrap_or_default();
            if ev["jsep"]["type"] == "offer" {
                offers += 1;
            } else {
                assert_eq!(ev["plugindata"]["data"]["error_code"], 503, "{ev}");
            }
        }
        assert_eq!(offers, 2);
    }
}
