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
    rig_with(signal, &["source.dv_timings=true"], &[])
}

fn rig_with(signal: &str, set: &[&str], env: &[(&str, String)]) -> Rig {
    let ctl = std::env::temp_dir().join(format!("kvmd-fake-v4l2-{}.ctl", std::process::id()));
    std::fs::write(&ctl, signal).unwrap_or_else(|e| panic!("{e}"));
    let shim = kvmd_testkit::bin_dir().join("libkvmd_v4l2_fake.so");
    assert!(shim.exists(), "{} missing: `cargo build --workspace --lib`", shim.display());
    // The device node path the shim fakes (nothing exists there).
    let node = std::env::temp_dir().join(format!("kvmd-fake-video-{}", std::process::id()));
    let opts = StackOptions {
        streamer_set: [format!("source.device={}", node.display()), "params.desired_fps=0".into()]
            .into_iter()
            .chain(set.iter().map(|s| (*s).to_owned()))
            .collect(),
        streamer_env: [
            ("LD_PRELOAD".to_owned(), shim.display().to_string()),
            ("KVMD_FAKE_V4L2".to_owned(), node.display().to_string()),
            ("KVMD_FAKE_V4L2_CTL".to_owned(), ctl.display().to_string()),
        ]
        .into_iter()
        .chain(env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())))
        .collect(),
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
    for reason in ["< NO SIGNAL DETECTED >", "< NO SYNC WITH SIGNAL >", "< NO CAPTURE DEVICE >"] {
        assert!(rig.stack.log_has("kvmd-streamer", reason), "{reason} not logged:\n{}", rig.stack.log("kvmd-streamer"));
    }
    let log = rig.stack.log_settled("kvmd-streamer");
    let now = rig.stack.pids().into_iter().find(|(n, _)| n == "kvmd-streamer").map(|(_, p)| p);
    assert_eq!(pid, now, "the same process all along");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_dongles_mjpeg_is_passed_through_and_broken_frames_are_dropped() {
    use kvmd_streamer::source::Source;
    // The dongle's JPEG (made by our own encoder from the test pattern).
    let mut p = kvmd_streamer::source::pattern::Pattern::new(1280, 720, 0, true);
    let _ = p.open(kvmd_streamer::source::Wanted { width: 1280, height: 720 });
    let (data, g) =
        p.grab().ok().flatten().map(|f| (f.data.to_vec(), f.geometry)).unwrap_or_else(|| panic!("no frame"));
    let jpeg = kvmd_streamer::encode::Encoder::default().encode(&data, g, 70).unwrap_or_else(|e| panic!("{e}"));
    let file = std::env::temp_dir().join(format!("kvmd-fake-dongle-{}.jpg", std::process::id()));
    std::fs::write(&file, &jpeg).unwrap_or_else(|e| panic!("{e}"));
    let rig = rig_with("1280x720 30", &["source.format=mjpeg"], &[("KVMD_FAKE_V4L2_JPEG", file.display().to_string())]);
    let _viewer = common::stream_viewer(&rig.stack);
    let st = rig.wait_source(true, (1280, 720));
    assert_eq!(st["result"]["encoder"]["type"], "HW", "MJPEG from the device is not re-encoded: {st}");
    // Every part is the device's JPEG, byte for byte; the broken frames never show.
    let args: Vec<String> = ["-s", "-N", "--http1.1", "--max-time", "2", "-H", &rig.cookie]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([rig.stack.url("/streamer/stream")])
        .collect();
    let body = kvmd_testkit::curl(&args).unwrap_or_default();
    let mut parts = 0;
    for chunk in body.split(|&b| b == b'\n').filter(|l| l.starts_with(b"Content-Length: ")) {
        let n: usize = String::from_utf8_lossy(&chunk[16..]).trim().parse().unwrap_or(0);
        assert_eq!(n, jpeg.len(), "a part that is not the device's JPEG");
        parts += 1;
    }
    assert!(parts >= 1, "no parts");
    let r = common::get(&rig.stack, "/api/streamer/snapshot", &["-H", &rig.cookie]);
    assert_eq!(r.status(), 200);
    assert_eq!(r.body, jpeg, "the snapshot is the device's JPEG");
    let _ = std::fs::remove_file(&file);
}
