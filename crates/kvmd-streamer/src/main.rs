//! `kvmd-streamer`: see the library for what it does.

fn main() -> std::process::ExitCode {
    kvmd_core::service::main(
        "kvmd-streamer",
        "kvmd- and uStreamer-compatible video service (capture, MJPEG, snapshots)",
        "KVMD_STREAMER",
        kvmd_streamer::run,
    )
}
