//! `kvmd-webrtc`: see the library for what it does.

fn main() -> std::process::ExitCode {
    kvmd_core::service::main(
        "kvmd-webrtc",
        "H.264 over WebRTC: the Janus WebSocket subset of PiKVM's web UI",
        "KVMD_WEBRTC",
        kvmd_webrtc::run,
    )
}
