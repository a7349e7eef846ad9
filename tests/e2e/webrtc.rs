//! H.264 over WebRTC through the real nginx (TLS) and the real services: `/janus/ws` as
//! PiKVM's web UI speaks it, a WebRTC peer (str0m) that answers the offer, receives the
//! RTP, and decodes it (OpenH264's decoder), seeing what is typed through `/api/hid/print`
//! appear on the target's screen; a key frame after a PLI; `set_params` retuning the
//! bitrate; the session's end closing everything.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvmd_testkit::{Stack, StackOptions};
use serde_json::{Value, json};
use str0m::change::SdpOffer;
use str0m::media::{KeyframeRequestKind, MediaData, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

use crate::common::{self, text};

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;
type Ws = WebSocket<Tls>;

fn stack() -> Stack {
    let mut opts = StackOptions { vtarget: true, ..StackOptions::default() };
    opts.streamer_set.push("params.h264_bitrate=5000".into());
    Stack::start(opts).unwrap_or_else(|e| panic!("cannot start the stack: {e:#}"))
}

/// Trusts exactly the stack's self-signed certificate (a CA certificate, which webpki
/// refuses as a server's own).
#[derive(Debug)]
struct Pinned(rustls::pki_types::CertificateDer<'static>, Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.0.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the stack's certificate".into()))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.1.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.1.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS connection to the front, trusting the stack's certificate.
fn tls(stack: &Stack) -> Tls {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let cert = CertificateDer::from_pem_file(stack.root.join("etc/server.crt")).unwrap_or_else(|e| panic!("{e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("{e}"))
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned(cert, provider)))
        .with_no_client_auth();
    let name = "localhost".try_into().unwrap_or_else(|e| panic!("{e:?}"));
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap_or_else(|e| panic!("{e}"));
    let tcp = TcpStream::connect(("127.0.0.1", stack.https_port)).unwrap_or_else(|e| panic!("{e}"));
    rustls::StreamOwned::new(conn, tcp)
}

/// `/janus/ws` as janus.js opens it (subprotocol `janus-protocol`), with the cookie; a
/// refused upgrade gives its status.
fn janus(stack: &Stack, cookie: Option<&str>) -> Result<Ws, u16> {
    let mut req = format!("wss://localhost:{}/janus/ws", stack.https_port)
        .into_client_request()
        .unwrap_or_else(|e| panic!("{e}"));
    req.headers_mut().insert("Sec-WebSocket-Protocol", "janus-protocol".parse().unwrap_or_else(|e| panic!("{e}")));
    if let Some(c) = cookie {
        req.headers_mut().insert("Cookie", c.parse().unwrap_or_else(|e| panic!("{e}")));
    }
    let stream = tls(stack);
    stream.sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap_or_else(|e| panic!("{e}"));
    match tungstenite::client(req, stream) {
        Ok((ws, resp)) => {
            assert_eq!(
                resp.headers().get("Sec-WebSocket-Protocol").and_then(|v| v.to_str().ok()),
                Some("janus-protocol")
            );
            ws.get_ref().sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap_or_else(|e| panic!("{e}"));
            Ok(ws)
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => Err(r.status().as_u16()),
        Err(e) => panic!("handshake: {e}"),
    }
}

fn send(ws: &mut Ws, v: &Value) {
    ws.send(Message::text(v.to_string())).unwrap_or_else(|e| panic!("send: {e}"));
}

/// The next JSON message, or `None` after `wait`.
fn recv(ws: &mut Ws, wait: Duration) -> Option<Value> {
    let end = Instant::now() + wait;
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return Some(serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}"))),
            Ok(Message::Close(_)) => panic!("closed"),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
        if Instant::now() >= end {
            return None;
        }
    }
}

/// The messages until one answers transaction `tr` (and that one).
fn call(ws: &mut Ws, mut v: Value, tr: &str) -> (Vec<Value>, Value) {
    v["transaction"] = json!(tr);
    send(ws, &v);
    let mut before = Vec::new();
    loop {
        let m = recv(ws, Duration::from_secs(10)).unwrap_or_else(|| panic!("no answer to {tr}"));
        if m["transaction"] == tr {
            return (before, m);
        }
        before.push(m);
    }
}

/// Bright pixels in the target's first text line (rows 40..56) of a decoded picture.
fn text_pixels(y: &[u8], stride: usize) -> usize {
    y[40 * stride..56 * stride].iter().filter(|&&v| v > 150).count()
}

/// A WebRTC viewer: str0m as a browser would be, on 127.0.0.1.
struct Viewer {
    rtc: Rtc,
    sock: UdpSocket,
    local: SocketAddr,
    mid: Option<Mid>,
    decoder: openh264::decoder::Decoder,
    frames: usize,
    keys: usize,
    last_key: Option<Instant>,
    pixels: usize,
    bytes: usize,
}

impl Viewer {
    fn new(offer: &str) -> (Self, String) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        sock.set_read_timeout(Some(Duration::from_millis(5))).unwrap_or_else(|e| panic!("{e}"));
        let local = sock.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let mut rtc = Rtc::builder().build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").unwrap_or_else(|e| panic!("{e}")));
        let offer = SdpOffer::from_sdp_string(offer).unwrap_or_else(|e| panic!("{e}"));
        let answer = rtc.sdp_api().accept_offer(offer).unwrap_or_else(|e| panic!("{e}"));
        let decoder = openh264::decoder::Decoder::new().unwrap_or_else(|e| panic!("{e}"));
        let v = Self { rtc, sock, local, mid: None, decoder, frames: 0, keys: 0, last_key: None, pixels: 0, bytes: 0 };
        (v, answer.to_sdp_string())
    }

    /// Runs the peer for `d` (or until `done`).
    fn run(&mut self, d: Duration, done: &mut dyn FnMut(&Viewer) -> bool) {
        let end = Instant::now() + d;
        let mut buf = vec![0u8; 2048];
        while Instant::now() < end {
            loop {
                match self.rtc.poll_output().unwrap_or_else(|e| panic!("{e}")) {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        let _ = self.sock.send_to(&t.contents, t.destination);
                    }
                    Output::Event(Event::MediaAdded(m)) => self.mid = Some(m.mid),
                    Output::Event(Event::MediaData(m)) => self.media(&m),
                    Output::Event(_) => {}
                }
            }
            if done(self) {
                return;
            }
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let Ok(contents) = buf[..n].try_into() else { continue };
                    let input = Input::Receive(
                        Instant::now(),
                        Receive { proto: Protocol::Udp, source: from, destination: self.local, contents },
                    );
                    self.rtc.handle_input(input).unwrap_or_else(|e| panic!("{e}"));
                }
                Err(_) => self.rtc.handle_input(Input::Timeout(Instant::now())).unwrap_or_else(|e| panic!("{e}")),
            }
        }
    }

    fn media(&mut self, m: &MediaData) {
        self.bytes += m.data.len();
        if m.is_keyframe() {
            self.keys += 1;
            self.last_key = Some(Instant::now());
        }
        if let Ok(Some(pic)) = self.decoder.decode(&m.data) {
            use openh264::formats::YUVSource;
            let (sy, _, _) = pic.strides();
            self.frames += 1;
            self.pixels = text_pixels(pic.y(), sy);
        }
    }

    fn pli(&mut self) {
        let mid = self.mid.unwrap_or_else(|| panic!("no media yet"));
        let mut w = self.rtc.writer(mid).unwrap_or_else(|| panic!("no writer"));
        w.request_keyframe(None, KeyframeRequestKind::Pli).unwrap_or_else(|e| panic!("{e}"));
    }
}

fn streamer_state(stack: &Stack, cookie: &str) -> Value {
    let r = common::get(stack, "/api/streamer", &["-H", cookie]);
    assert_eq!(r.status(), 200, "{}", text(&r));
    serde_json::from_slice::<Value>(&r.body).unwrap_or_default()["result"].clone()
}

#[test]
fn the_janus_flow_plays_h264_that_shows_what_is_typed() {
    let stack = stack();
    let cookie = common::cookie(&stack);
    // Without credentials the front refuses the upgrade, as kvmd's does.
    assert_eq!(janus(&stack, None).err(), Some(401));

    // What tells PiKVM's UI H.264 is there.
    let st = streamer_state(&stack, &cookie);
    assert_eq!(st["features"]["h264"], true, "{st}");
    assert_eq!(st["limits"]["h264_bitrate"], json!({"max": 20000, "min": 25}));
    assert_eq!(st["limits"]["h264_gop"], json!({"max": 60, "min": 0}));
    assert_eq!(st["params"]["h264_bitrate"], 5000);
    assert_eq!(st["params"]["h264_gop"], 0);

    let mut ws = janus(&stack, cookie.strip_prefix("Cookie: ")).unwrap_or_else(|s| panic!("upgrade refused: {s}"));
    let (_, created) = call(&mut ws, json!({"janus": "create"}), "t1");
    assert_eq!(created["janus"], "success", "{created}");
    let s = created["data"]["id"].as_u64().unwrap_or_else(|| panic!("{created}"));
    assert!(s < 1 << 53);
    let (_, attached) = call(
        &mut ws,
        json!({"janus": "attach", "plugin": "janus.plugin.ustreamer", "opaque_id": "oid-abcdefghijkl", "session_id": s}),
        "t2",
    );
    assert_eq!(attached["janus"], "success", "{attached}");
    assert_eq!(attached["session_id"], s);
    let h = attached["data"]["id"].as_u64().unwrap_or_else(|| panic!("{attached}"));
    let msg = |body: Value| json!({"janus": "message", "body": body, "session_id": s, "handle_id": h});
    let (events, ok) = call(&mut ws, msg(json!({"request": "features"})), "t3");
    assert_eq!(ok["janus"], "success");
    assert_eq!(ok["plugindata"]["data"]["ok"], true);
    let features = &events[0];
    assert_eq!(features["janus"], "event");
    assert_eq!(features["sender"], h);
    assert_eq!(features["plugindata"]["plugin"], "janus.plugin.ustreamer");
    let result = &features["plugindata"]["data"]["result"];
    assert_eq!(result["status"], "features");
    assert_eq!(result["features"]["audio"], false);
    assert!(result["features"]["ice"]["url"].as_str().is_some_and(|u| u.starts_with("stun:")));

    let (events, _) = call(
        &mut ws,
        msg(json!({"request": "watch", "params": {"orientation": 0, "audio": false, "mic": false, "camera": false}})),
        "t4",
    );
    let started = &events[0];
    assert_eq!(started["plugindata"]["data"]["result"]["status"], "started");
    assert_eq!(started["jsep"]["type"], "offer");
    let offer = started["jsep"]["sdp"].as_str().unwrap_or_else(|| panic!("{started}"));
    assert!(offer.contains("m=video"), "{offer}");
    assert!(offer.contains("H264/90000") && offer.contains("packetization-mode=1"), "{offer}");
    assert!(offer.to_ascii_lowercase().contains("profile-level-id=42e01f"), "{offer}");
    assert!(offer.contains("a=candidate:") && offer.contains("127.0.0.1") && offer.contains("a=end-of-candidates"));
    assert!(offer.contains("nack pli") && offer.contains("ccm fir") && offer.contains("a=msid:"), "{offer}");

    let (mut viewer, answer) = Viewer::new(offer);
    // A trickled candidate before the answer is taken, and the end of them.
    let c = format!("candidate:1 1 udp 2122260223 127.0.0.1 {} typ host", viewer.local.port());
    let (_, ack) = call(
        &mut ws,
        json!({"janus": "trickle", "candidate": {"candidate": c, "sdpMid": "0", "sdpMLineIndex": 0}, "session_id": s, "handle_id": h}),
        "t5",
    );
    assert_eq!(ack["janus"], "ack");
    let (events, ok) = call(
        &mut ws,
        json!({"janus": "message", "body": {"request": "start"}, "jsep": {"type": "answer", "sdp": answer}, "session_id": s, "handle_id": h}),
        "t6",
    );
    assert_eq!(ok["janus"], "success", "{ok}");
    assert_eq!(events[0]["plugindata"]["data"]["result"]["status"], "started", "{events:?}");
    let (_, ack) = call(
        &mut ws,
        json!({"janus": "trickle", "candidate": {"completed": true}, "session_id": s, "handle_id": h}),
        "t7",
    );
    assert_eq!(ack["janus"], "ack");

    // Media: decoded pictures of the target's screen.
    viewer.run(Duration::from_secs(20), &mut |v| v.frames >= 3);
    assert!(viewer.frames >= 3, "no decoded frames ({} bytes, {} key frames)", viewer.bytes, viewer.keys);
    assert!(viewer.keys >= 1, "it starts with a key frame");
    let up = recv(&mut ws, Duration::from_secs(2));
    assert!(up.as_ref().is_some_and(|m| m["janus"] == "webrtcup" && m["sender"] == h), "{up:?}");
    let st = streamer_state(&stack, &cookie);
    assert_eq!(st["streamer"]["h264"]["bitrate"], 5000, "{st}");
    assert_eq!(st["streamer"]["sinks"]["h264"]["has_clients"], true, "{st}");

    // What is typed shows up in the video.
    let before = viewer.pixels;
    let r = common::get(&stack, "/api/hid/print", &["-X", "POST", "-H", &cookie, "--data-binary", "Hello, WebRTC!"]);
    assert_eq!(r.status(), 200, "{}", text(&r));
    viewer.run(Duration::from_secs(15), &mut |v| v.pixels > before + 200);
    assert!(viewer.pixels > before + 200, "the text never showed: {before} → {} bright pixels", viewer.pixels);

    // A PLI gets a key frame within a second.
    viewer.run(Duration::from_millis(300), &mut |_| false);
    let keys = viewer.keys;
    let asked = Instant::now();
    viewer.pli();
    viewer.run(Duration::from_secs(1), &mut |v| v.keys > keys);
    assert!(viewer.keys > keys, "no key frame within 1 s of the PLI");
    assert!(viewer.last_key.is_some_and(|t| t.duration_since(asked) < Duration::from_secs(1)));

    // set_params retunes the bitrate live: applied and reported, and the video goes on.
    let r = common::get(&stack, "/api/streamer/set_params?h264_bitrate=1000", &["-X", "POST", "-H", &cookie]);
    assert_eq!(r.status(), 200, "{}", text(&r));
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        viewer.run(Duration::from_millis(200), &mut |_| false);
        let st = streamer_state(&stack, &cookie);
        if st["applied"]["h264_bitrate"] == 1000 && st["streamer"]["h264"]["bitrate"] == 1000 {
            assert_eq!(st["params"]["h264_bitrate"], 1000);
            break;
        }
        assert!(Instant::now() < end, "the bitrate was not applied: {st}");
    }
    let frames = viewer.frames;
    let _ = common::get(&stack, "/api/hid/print", &["-X", "POST", "-H", &cookie, "--data-binary", "x"]);
    viewer.run(Duration::from_secs(10), &mut |v| v.frames > frames);
    assert!(viewer.frames > frames, "no video after the retune");

    // Hangup, detach, destroy: Janus's answers, the socket closed by destroy's answer.
    let (_, r) = call(&mut ws, json!({"janus": "hangup", "session_id": s, "handle_id": h}), "t8");
    assert_eq!(r["janus"], "success");
    let (_, r) = call(&mut ws, json!({"janus": "detach", "session_id": s, "handle_id": h}), "t9");
    assert_eq!(r["janus"], "success");
    let (_, r) = call(&mut ws, json!({"janus": "destroy", "session_id": s}), "t10");
    assert_eq!((r["janus"].as_str(), r["session_id"].as_u64()), (Some("success"), Some(s)));
    let (_, r) = call(&mut ws, json!({"janus": "keepalive", "session_id": s}), "t11");
    assert_eq!(r["janus"], "error");
    assert_eq!(r["error"]["code"], 458);
    assert_eq!(r["error"]["reason"], format!("No such session {s}"));
}

#[test]
fn a_logout_closes_the_janus_socket_and_its_peer() {
    let stack = stack();
    let token = common::login(&stack, "admin", "admin");
    let cookie = format!("Cookie: auth_token={token}");
    let mut ws = janus(&stack, Some(&format!("auth_token={token}"))).unwrap_or_else(|s| panic!("{s}"));
    let (_, c) = call(&mut ws, json!({"janus": "create"}), "a");
    let s = c["data"]["id"].as_u64().unwrap_or_default();
    let (_, a) = call(&mut ws, json!({"janus": "attach", "plugin": "janus.plugin.ustreamer", "session_id": s}), "b");
    let h = a["data"]["id"].as_u64().unwrap_or_default();
    let (events, _) =
        call(&mut ws, json!({"janus": "message", "body": {"request": "watch"}, "session_id": s, "handle_id": h}), "c");
    let offer = events[0]["jsep"]["sdp"].as_str().unwrap_or_else(|| panic!("{events:?}")).to_owned();
    let (mut viewer, answer) = Viewer::new(&offer);
    let (_, ok) = call(
        &mut ws,
        json!({"janus": "message", "body": {"request": "start"}, "jsep": {"type": "answer", "sdp": answer}, "session_id": s, "handle_id": h}),
        "d",
    );
    assert_eq!(ok["janus"], "success");
    viewer.run(Duration::from_secs(20), &mut |v| v.frames >= 1);
    assert!(viewer.frames >= 1, "no video");

    let r = common::get(&stack, "/api/auth/logout", &["-X", "POST", "-H", &cookie]);
    assert_eq!(r.status(), 200, "{}", text(&r));
    let end = Instant::now() + Duration::from_secs(5);
    let closed = loop {
        match ws.read() {
            Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                break true;
            }
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break true,
            Ok(_) => {}
        }
        if Instant::now() >= end {
            break false;
        }
    };
    assert!(closed, "the Janus socket outlived its session");
    // The peer went with it: media stops.
    viewer.run(Duration::from_millis(1500), &mut |_| false);
    let bytes = viewer.bytes;
    viewer.run(Duration::from_secs(2), &mut |_| false);
    assert_eq!(viewer.bytes, bytes, "media still flows after the logout");
}
