//! The streamer's pipeline in-process: demand starts and stops capture, one encode per
//! changed frame, re-publication of unchanged ones, snapshots, the offline blank.

use std::time::Duration;

use kvmd_core::service::CancellationToken;
use kvmd_streamer::config::{Config, SourceKind};
use kvmd_streamer::frame::Kind;
use kvmd_streamer::streamer::{ClientFlags, Streamer};

fn pattern(motion: bool, drop_same: u32) -> Config {
    let mut c = Config::default();
    c.source.kind = SourceKind::Pattern;
    c.source.fps = 30;
    c.source.motion = motion;
    c.params.resolution = "320x240".into();
    c.drop_same_frames = drop_same;
    c.shutdown_delay = 0.2;
    c.encoder.workers = 1;
    c
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap_or_else(|e| panic!("{e}"))
}

/// Publications seen by a stream client during `secs`.
async fn watch(s: &Streamer, secs: f64) -> Vec<(u64, Kind, usize)> {
    let mut rx = s.frames();
    let mut out = Vec::new();
    let end = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    while let Ok(Ok(())) = tokio::time::timeout_at(end, rx.changed()).await {
        if let Some(j) = rx.borrow_and_update().as_ref() {
            out.push((j.seq, j.kind, j.data.len()));
        }
    }
    out
}

#[test]
fn a_client_starts_capture_and_gets_every_changed_frame_once() {
    rt().block_on(async {
        let s = Streamer::new(pattern(true, 30));
        let stop = CancellationToken::new();
        let ctl = tokio::spawn(s.clone().run(stop.clone()));
        assert!(!s.running());
        let (id, guard) = s.add_client(ClientFlags::default(), "k");
        assert_eq!(id.len(), 16);
        let seen = watch(&s, 1.5).await;
        assert!(s.running());
        assert!(seen.len() >= 10, "a moving picture at 30 fps: {} frames", seen.len());
        assert!(seen.iter().all(|(_, k, n)| *k == Kind::New && *n > 1000), "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "in order");
        let state = s.ustate();
        assert_eq!(state.stream.clients, 1);
        assert_eq!(state.stream.clients_stat.0[0].0, id);
        assert_eq!(state.stream.clients_stat.0[0].1.key, "k");
        assert_eq!((state.source.resolution.width, state.source.resolution.height), (320, 240));
        assert!(state.source.online);
        drop(guard);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while s.running() {
            assert!(std::time::Instant::now() < deadline, "capture must stop after the delay");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        let _ = ctl.await;
    });
}

#[test]
fn unchanged_frames_are_republished_not_reencoded() {
    rt().block_on(async {
        // A static desktop (only the clock moves, once a second), drop at most 2 in a row.
        let s = Streamer::new(pattern(false, 2));
        let stop = CancellationToken::new();
        let ctl = tokio::spawn(s.clone().run(stop.clone()));
        let (_id, _guard) = s.add_client(ClientFlags { dual_final_frames: true, ..ClientFlags::default() }, "0");
        let seen = watch(&s, 2.6).await;
        let new = seen.iter().filter(|(_, k, _)| *k == Kind::New).count();
        let repeat = seen.iter().filter(|(_, k, _)| *k == Kind::Repeat).count();
        let dual = seen.iter().filter(|(_, k, _)| *k == Kind::DualFinal).count();
        // ~30 grabs a second: encodes only when the clock changed, a resend every 3rd.
        assert!(new <= 5, "encodes: {new} in {seen:?}");
        assert!(repeat > new, "resends {repeat} vs encodes {new}");
        assert!(dual >= 1, "a run of changes that ended is sent once more for dual_final_frames");
        stop.cancel();
        let _ = ctl.await;
    });
}

#[test]
fn snapshots_start_capture_and_offline_gives_the_generic_blank() {
    rt().block_on(async {
        let s = Streamer::new(pattern(true, 30));
        let stop = CancellationToken::new();
        let ctl = tokio::spawn(s.clone().run(stop.clone()));
        let j = s.snapshot().await;
        assert!(j.online);
        assert_eq!((j.width, j.height), (320, 240));
        assert!(j.grab_begin > 0.0);
        stop.cancel();
        let _ = ctl.await;

        let mut c = Config::default();
        c.source.device = "/nonexistent/kvmd-video".into();
        let s = Streamer::new(c);
        let stop = CancellationToken::new();
        let ctl = tokio::spawn(s.clone().run(stop.clone()));
        let j = s.snapshot().await;
        assert!(!j.online);
        assert_eq!((j.width, j.height), (1920, 1080));
        assert_eq!(j.grab_begin, 0.0, "blanks have no grab time");
        assert!(j.data.starts_with(&[0xFF, 0xD8]) && j.data.ends_with(&[0xFF, 0xD9]));
        let st = s.ustate();
        assert!(!st.source.online);
        assert_eq!(st.source.captured_fps, 0);
        stop.cancel();
        let _ = ctl.await;
    });
}

#[test]
fn set_params_apply_after_a_quiet_second_with_a_restart() {
    rt().block_on(async {
        let s = Streamer::new(pattern(true, 30));
        let stop = CancellationToken::new();
        let ctl = tokio::spawn(s.clone().run(stop.clone()));
        let (_id, _guard) = s.add_client(ClientFlags::default(), "0");
        let _ = watch(&s, 0.3).await;
        let mut p = s.params();
        p.resolution = Some((640, 480));
        s.set_params(p.clone());
        assert_eq!(s.params().resolution, Some((320, 240)), "queued, not applied yet");
        let deadline = std::time::Instant::now() + Duration::from_secs(6);
        loop {
            let st = s.ustate();
            if (st.source.resolution.width, st.source.resolution.height) == (640, 480) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never applied");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(s.params(), p);
        stop.cancel();
        let _ = ctl.await;
    });
}
