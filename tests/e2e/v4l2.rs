//! kvmd-streamer's real V4L2 code (the v4l crate, DV timings and source-change ioctls)
//! against the fake capture device of `kvmd-v4l2-fake`, loaded with LD_PRELOAD: an
//! HDMI bridge whose signal the test switches. Through nginx, a viewer sees the
//! signal's size, the no-signal blank when the signal goes, the new size when it comes
//! back, and the no-device blank when the node disappears, all without a restart.
//! (A real kernel's `vivid` device is issue #8.)

use std::time::{Duration, Instant};

use kvmd_testkit::golden;
use kvmd_testkit::{Stack, StackOptions};

use crate::common;

struct Rig {
    stack: Stack,
    ctl: std::path::PathBuf,
    cookie: String,
}

fn rig(signal: &str) -> Rig {
    let ctl = std::env::temp_dir().join(format!("kvmd-fake-v4l2-{}.ctl", std::process::id()));
    std::fs::write(&ctl, signal).unwrap_or_else(|e| panic!("{e}"));
    let shim = kvmd_testkit::bin_dir().join("libkvmd_v4l2_fake.so");
    assert!(shim.exists(), "{} missing: `cargo build --workspace --lib`", shim.display());
    // The device node path the shim fakes (nothing exists there).
    let node = std::env::temp_dir().join(format!("kvmd-fake-video-{}", std::process::id()));
    let opts = StackOptions {
        streamer_set: vec![
            format!("source.device={}", node.display()),
            "source.dv_timings=true".into(),
            "params.desired_fps=0".into(),
        ],
        streamer_env: vec![
            ("LD_PRELOAD".into(), shim.display().to_string()),
            ("KVMD_FAKE_V4L2".into(), node.display().to_string()),
            ("KVMD_FAKE_V4L2_CTL".into(), ctl.display().to_string()),
        ],
        ..StackOptions::default()
    };
    let stack = Stack::start(opts).unwrap_or_else(|e| panic!("cannot start the stack: {e:#}"));
    let cookie = common::cookie(&stack);
    Rig { stack, ctl, cookie }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ctl);
    }
}

impl Rig {
    fn signal(&self, s: &str) {
        std::fs::write(&self.ctl, s).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Waits (bounded) until `/streamer/state` shows the source `online` at `size`.
    fn wait_source(&self, online: bool, size: (u64, u64)) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = common::get(&self.stack, "/streamer/state", &["-H", &self.cookie]);
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let src = &v["result"]["source"];
            let got =
                (src["resolution"]["width"].as_u64().unwrap_or(0), src["resolution"]["height"].as_u64().unwrap_or(0));
            if src["online"] == online && got == size {
                return v;
            }
            assert!(Instant::now() < deadline, "source never became online={online} {size:?}: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One snapshot through kvmd's API: (online header, JPEG size).
    fn snapshot(&self) -> (String, Option<(u16, u16)>) {
        let r = common::get(&self.stack, "/api/streamer/snapshot?allow_offline=1", &["-H", &self.cookie]);
        assert_eq!(r.status(), 200, "{}", common::text(&r));
        (r.header("X-UStreamer-Online").unwrap_or_default().to_owned(), golden::jpeg_size(&r.body))
    }
}

#[test]
fn the_capture_follows_the_signal_without_a_restart() {
    let rig = rig("1280x720 30");
    let _viewer = common::stream_viewer(&rig.stack);
    let pid = rig.stack.pids().into_iter().find(|(n, _)| n == "kvmd-streamer").map(|(_, p)| p);
    // DV timings say 720p: the stream is 720p, whatever the configured resolution.
    rig.wait_source(true, (1280, 720));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let st = rig.wait_source(true, (1280, 720));
        if st["result"]["source"]["captured_fps"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no frames counted: {st}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(rig.snapshot(), ("true".to_owned(), Some((1280, 720))));
    let api = common::get(&rig.stack, "/api/streamer", &["-H", &rig.cookie]);
    assert!(common::text(&api).contains("\"resolution\": \"1280x720\""), "applied: {}", common::text(&api));
    // The cable goes: source-change event, reopen, ENOLINK: the no-signal blank.
    rig.signal("nosignal");
    rig.wait_source(false, (1280, 720));
    assert_eq!(rig.snapshot(), ("false".to_owned(), Some((1280, 720))));
    // Another mode comes: capture resumes at the new size.
    rig.signal("1920x1080 30");
    rig.wait_source(true, (1920, 1080));
    assert_eq!(rig.snapshot(), ("true".to_owned(), Some((1920, 1080))));
    // No sync, then the node disappears, then it comes back.
    rig.signal("nosync");
    rig.wait_source(false, (1920, 1080));
    rig.signal("gone");
    std::thread::sleep(Duration::from_millis(1500));
    rig.wait_source(false, (1920, 1080));
    rig.signal("800x600 30");
    rig.wait_source(true, (800, 600));
    let log = rig.stack.log("kvmd-streamer");
    for reason in ["< NO SIGNAL DETECTED >", "< NO SYNC WITH SIGNAL >", "< NO CAPTURE DEVICE >"] {
        assert!(log.contains(reason), "{reason} not logged:\n{log}");
    }
    let now = rig.stack.pids().into_iter().find(|(n, _)| n == "kvmd-streamer").map(|(_, p)| p);
    assert_eq!(pid, now, "the same process all along");
    assert!(!log.contains("panicked"), "{log}");
}
