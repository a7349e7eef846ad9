//! The video every peer sends: kvmd-streamer's H.264 feed (`/streamer/h264`), read once
//! while anyone watches and handed to every peer (a broadcast ring: a peer that falls
//! behind skips to the next key frame). Key frames are asked of kvmd-streamer
//! (`/streamer/h264/key`) at most every 100 ms, however many peers ask.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kvmd_core::h264feed::{Reader, UnitHeader};
use tokio::sync::broadcast;

/// Frames kept for peers a little behind.
const RING: usize = 64;
/// Key requests closer than this are one.
const KEY_EVERY: Duration = Duration::from_millis(100);

/// One access unit from the feed.
#[derive(Debug)]
pub struct Frame {
    /// What the feed said of it.
    pub header: UnitHeader,
    /// Annex B.
    pub data: Bytes,
}

/// The shared feed.
#[derive(Debug)]
pub struct Video {
    streamer: PathBuf,
    client: reqwest::Client,
    tx: broadcast::Sender<Arc<Frame>>,
    readers: AtomicUsize,
    reading: Mutex<bool>,
    last_key: Mutex<Option<Instant>>,
}

/// A peer's place at the feed; leaving drops it.
#[derive(Debug)]
pub struct Watch {
    video: Arc<Video>,
    /// The frames from now on.
    pub rx: broadcast::Receiver<Arc<Frame>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.video.readers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Video {
    /// The feed of the kvmd-streamer at `streamer` (its socket).
    pub fn new(streamer: &Path) -> Arc<Self> {
        let client =
            kvmd_core::client::unix(streamer).connect_timeout(Duration::from_secs(5)).build().unwrap_or_default();
        Arc::new(Self {
            streamer: streamer.to_owned(),
            client,
            tx: broadcast::Sender::new(RING),
            readers: AtomicUsize::new(0),
            reading: Mutex::new(false),
            last_key: Mutex::new(None),
        })
    }

    /// Peers watching.
    pub fn readers(&self) -> usize {
        self.readers.load(Ordering::SeqCst)
    }

    /// Starts watching: the feed is read while anyone watches; a key frame is asked for.
    pub fn watch(self: &Arc<Self>) -> Watch {
        self.readers.fetch_add(1, Ordering::SeqCst);
        let rx = self.tx.subscribe();
        let start = {
            let mut r = self.reading.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            !std::mem::replace(&mut *r, true)
        };
        if start {
            let me = self.clone();
            tokio::spawn(async move { me.read().await });
        } else {
            self.request_key();
        }
        Watch { video: self.clone(), rx }
    }

    /// Asks kvmd-streamer for a key frame (a PLI or FIR, a peer that fell behind).
    pub fn request_key(&self) {
        {
            let mut last = self.last_key.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < KEY_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let (client, url) = (self.client.clone(), format!("http://localhost{}", "/streamer/h264/key"));
        tokio::spawn(async move {
            if let Err(e) = client.post(url).send().await {
                tracing::debug!(error = %e, "kvmd-streamer did not take a key frame request");
            }
        });
    }

    /// Reads the feed while anyone watches; kvmd-streamer away or restarting: again each second.
    async fn read(self: Arc<Self>) {
        let url = "http://localhost/streamer/h264";
        let mut errors = 0u64;
        while self.readers() > 0 {
            match self.client.get(url).send().await {
                Ok(mut r) if r.status().is_success() => {
                    let mut reader = Reader::default();
                    loop {
                        let chunk = tokio::time::timeout(Duration::from_secs(2), r.chunk()).await;
                        if self.readers() == 0 {
                            break;
                        }
                        let bytes = match chunk {
                            Err(_) => continue, // a still screen with nobody asking: just look again
                            Ok(Ok(Some(b))) => b,
                            Ok(Ok(None)) | Ok(Err(_)) => break,
                        };
                        reader.push(&bytes);
                        loop {
                            match reader.next_unit() {
                                Ok(Some((header, data))) => {
                                    let _ = self.tx.send(Arc::new(Frame { header, data: Bytes::from(data) }));
                                }
                                Ok(None) => break,
                                Err(e) => {
                                    tracing::warn!(error = %e, "kvmd-streamer's H.264 feed is broken; reading it again");
                                    reader = Reader::default();
                                    break;
                                }
                            }
                        }
                    }
                }
                Ok(r) => {
                    errors += 1;
                    if errors.is_power_of_two() {
                        tracing::warn!(status = %r.status(), "kvmd-streamer refuses its H.264 feed (is h264_bitrate 0?)");
                    }
                }
                Err(e) => {
                    errors += 1;
                    if errors.is_power_of_two() {
                        tracing::warn!(error = %e, streamer = %self.streamer.display(), "kvmd-streamer cannot be reached");
                    }
                }
            }
            if self.readers() > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        *self.reading.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = false;
        // A peer that came in just now finds nobody reading: read for it.
        if self.readers() > 0 {
            let start = {
                let mut r = self.reading.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                !std::mem::replace(&mut *r, true)
            };
            if start {
                Box::pin(self.read()).await;
            }
        }
    }
}
