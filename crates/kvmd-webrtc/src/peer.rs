//! One viewer's WebRTC connection: a str0m `Rtc` (ICE-lite, DTLS-SRTP, H.264 packetization
//! mode 1, NACK/RTX, RTCP) in its own task, on its own UDP sockets (one per host address),
//! sending the shared video once DTLS is up.
//!
//! The task ends, and the sockets close, when the connection cannot be made within the
//! connect timeout, when ICE loses the peer (no consent check for 15 s: a peer that
//! vanished without a hangup), on `stop`, or when its [`Peer`] is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::{mpsc, oneshot};

use crate::ice::Ice;
use crate::video::{Frame, Video};

/// The payload types of the offer (uStreamer's plugin uses 96; RTX is Janus's 97).
const H264_PT: u8 = 96;
const RTX_PT: u8 = 97;
/// Constrained Baseline, level 3.1, as uStreamer's plugin offers.
const PROFILE_LEVEL_ID: u32 = 0x42e01f;

/// What the signalling asks of a peer.
#[derive(Debug)]
pub enum Cmd {
    /// The browser's answer; the reply says why it was refused.
    Answer(String, oneshot::Sender<Result<(), String>>),
    /// A trickled candidate (`candidate:…`).
    Candidate(String),
}

/// What a peer tells the signalling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Told {
    /// ICE and DTLS are up: media flows (Janus's `webrtcup`).
    Up,
    /// The peer is gone (timeout, ICE lost, closed).
    Gone,
}

/// A running peer; dropping it ends the connection.
#[derive(Debug)]
pub struct Peer {
    cmds: mpsc::Sender<Cmd>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Peer {
    /// A new peer: its offer (SDP, every host candidate inline and `end-of-candidates`)
    /// and the peer. `told` hears of it, tagged with `tag`.
    pub async fn offer<T: Copy + Send + 'static>(
        ice: &Ice,
        video: Arc<Video>,
        connect_timeout: Duration,
        told: mpsc::Sender<(T, Told)>,
        tag: T,
    ) -> anyhow::Result<(String, Peer)> {
        let now = Instant::now();
        let mut cfg = Rtc::builder().set_ice_lite(true).clear_codecs();
        cfg.codec_config().add_h264(H264_PT.into(), Some(RTX_PT.into()), true, PROFILE_LEVEL_ID);
        let mut rtc = cfg.build(now);
        let mut sockets = Vec::new();
        for ip in ice.addresses() {
            match ice.bind(ip).await {
                Ok(s) => {
                    let local = s.local_addr()?;
                    match Candidate::host(local, "udp") {
                        Ok(c) => {
                            rtc.add_local_candidate(c);
                            sockets.push((local, s));
                        }
                        Err(e) => tracing::debug!(%local, error = %e, "not a host candidate"),
                    }
                }
                Err(e) => tracing::warn!(%ip, error = %e, "no UDP port for WebRTC"),
            }
        }
        if sockets.is_empty() {
            anyhow::bail!("no address to offer (ice.addresses, or an interface that is up)");
        }
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Video, Direction::SendOnly, Some("video".into()), Some("v".into()), None);
        let Some((offer, pending)) = api.apply() else { anyhow::bail!("str0m made no offer") };
        let sdp = with_end_of_candidates(&offer.to_sdp_string());
        let (cmds, rx) = mpsc::channel(16);
        let run = Run { rtc, pending: Some(pending), mid, pt: None, sockets, video, ice: ice.clone() };
        let task = tokio::spawn(async move {
            run.run(rx, connect_timeout, &told, tag).await;
            let _ = told.send((tag, Told::Gone)).await;
        });
        Ok((sdp, Peer { cmds, task }))
    }

    /// Hands the browser's answer over; `Err` says why it was refused.
    pub async fn answer(&self, sdp: String) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd::Answer(sdp, tx)).await.map_err(|_| "the peer is gone".to_owned())?;
        rx.await.unwrap_or_else(|_| Err("the peer is gone".into()))
    }

    /// Hands a trickled candidate over (dropped if the peer is busy or gone: ICE-lite learns
    /// the browser's addresses from its checks anyway).
    pub fn candidate(&self, c: String) {
        let _ = self.cmds.try_send(Cmd::Candidate(c));
    }
}

/// Janus lists every candidate in the offer and ends them (no trickle from the server).
fn with_end_of_candidates(sdp: &str) -> String {
    let mut out = sdp.to_owned();
    if !out.contains("a=end-of-candidates") {
        if !out.ends_with("\r\n") {
            out.push_str("\r\n");
        }
        out.push_str("a=end-of-candidates\r\n");
    }
    out
}

struct Run {
    rtc: Rtc,
    pending: Option<SdpPendingOffer>,
    mid: Mid,
    pt: Option<Pt>,
    sockets: Vec<(SocketAddr, Arc<tokio::net::UdpSocket>)>,
    video: Arc<Video>,
    ice: Ice,
}

impl Run {
    async fn run<T: Copy + Send + 'static>(
        mut self,
        mut cmds: mpsc::Receiver<Cmd>,
        connect_timeout: Duration,
        told: &mpsc::Sender<(T, Told)>,
        tag: T,
    ) {
        let (dgram_tx, mut dgrams) = mpsc::channel::<(SocketAddr, SocketAddr, Vec<u8>)>(256);
        let mut readers = Vec::new();
        for (local, s) in &self.sockets {
            let (local, s, tx) = (*local, s.clone(), dgram_tx.clone());
            readers.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                while let Ok((n, from)) = s.recv_from(&mut buf).await {
                    if tx.send((local, from, buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }));
        }
        let _readers = AbortOnDrop(readers);
        let deadline = Instant::now() + connect_timeout;
        let mut watch = None;
        let mut synced = false;
        loop {
            let next = match self.drain(told, tag, &mut watch).await {
                Some(t) => t,
                None => return,
            };
            if !self.rtc.is_alive() {
                return;
            }
            if watch.is_none() && Instant::now() >= deadline {
                tracing::info!("a WebRTC peer did not connect in time");
                return;
            }
            let next = next.min(Instant::now() + Duration::from_secs(1));
            let frame = async {
                match watch.as_mut() {
                    Some(w) => Some(w.rx.recv().await),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = tokio::time::sleep_until(next.into()) => {
                    if self.rtc.handle_input(Input::Timeout(Instant::now())).is_err() {
                        return;
                    }
                }
                d = dgrams.recv() => {
                    let Some((local, from, data)) = d else { return };
                    if !self.ice.allows(from.ip()) {
                        continue;
                    }
                    let Ok(contents) = data.as_slice().try_into() else { continue };
                    let input = Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source: from, destination: local, contents });
                    if self.rtc.handle_input(input).is_err() && !self.rtc.is_alive() {
                        return;
                    }
                }
                c = cmds.recv() => match c {
                    None => return,
                    Some(Cmd::Answer(sdp, reply)) => {
                        let r = self.accept(&sdp);
                        let failed = r.is_err();
                        let _ = reply.send(r);
                        if failed {
                            return;
                        }
                    }
                    Some(Cmd::Candidate(c)) => self.add_candidate(&c),
                },
                f = frame => match f {
                    Some(Ok(frame)) => {
                        if !synced && !frame.header.key {
                            continue;
                        }
                        synced = true;
                        self.send(&frame);
                    }
                    Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                        // Behind: no queue, the next key frame.
                        synced = false;
                        self.video.request_key();
                    }
                    _ => return,
                },
            }
        }
    }

    /// Sends what str0m has to send; handles its events. The next timeout, or `None` to end.
    async fn drain<T: Copy + Send + 'static>(
        &mut self,
        told: &mpsc::Sender<(T, Told)>,
        tag: T,
        watch: &mut Option<crate::video::Watch>,
    ) -> Option<Instant> {
        loop {
            let out = match self.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(error = %e, "WebRTC peer error");
                    if !self.rtc.is_alive() {
                        return None;
                    }
                    continue;
                }
            };
            match out {
                Output::Timeout(t) => return Some(t),
                Output::Transmit(t) => {
                    if let Some((_, s)) = self.sockets.iter().find(|(a, _)| *a == t.source) {
                        let _ = s.send_to(&t.contents, t.destination).await;
                    }
                }
                Output::Event(e) => match e {
                    Event::Connected if watch.is_none() => {
                        *watch = Some(self.video.watch());
                        let _ = told.send((tag, Told::Up)).await;
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        tracing::info!("a WebRTC peer was lost (ICE)");
                        self.rtc.disconnect();
                        return None;
                    }
                    Event::KeyframeRequest(r) => {
                        tracing::debug!(kind = ?r.kind, "key frame asked for");
                        self.video.request_key();
                    }
                    _ => {}
                },
            }
        }
    }

    fn accept(&mut self, sdp: &str) -> Result<(), String> {
        let Some(pending) = self.pending.take() else { return Err("an answer was already given".into()) };
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| format!("not an SDP answer: {e}"))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| format!("the answer does not fit the offer: {e}"))?;
        let pt = self.rtc.writer(self.mid).and_then(|w| {
            w.payload_params()
                .find(|p| p.spec().codec == Codec::H264 && p.spec().format.packetization_mode == Some(1))
                .map(|p| p.pt())
        });
        match pt {
            Some(pt) => {
                self.pt = Some(pt);
                Ok(())
            }
            None => Err("the answer accepts no H.264 (packetization-mode 1)".into()),
        }
    }

    fn add_candidate(&mut self, line: &str) {
        let line = line.trim().trim_start_matches("a=");
        match Candidate::from_sdp_string(line) {
            Ok(c) if self.ice.allows(c.addr().ip()) => self.rtc.add_remote_candidate(c),
            Ok(c) => tracing::info!(addr = %c.addr(), "a candidate outside ice.allowed_networks was ignored"),
            Err(e) => tracing::debug!(error = %e, "a candidate that does not parse (mDNS?) was ignored"),
        }
    }

    fn send(&mut self, frame: &Frame) {
        let Some(pt) = self.pt else { return };
        let Some(w) = self.rtc.writer(self.mid) else { return };
        // The RTP clock: 90 kHz of the capture's monotonic time (as uStreamer's plugin).
        let ts = MediaTime::from_90khz(frame.header.captured_us * 9 / 100);
        if let Err(e) = w.write(pt, Instant::now(), ts, frame.data.to_vec()) {
            tracing::debug!(error = %e, "a frame was not sent");
        }
    }
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}
