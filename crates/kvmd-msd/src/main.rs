//! `kvmd-msd`: see the library for what it does.

fn main() -> std::process::ExitCode {
    kvmd_core::service::main(
        "kvmd-msd",
        "kvmd-compatible virtual media: image storage, uploads, downloads and the USB drive",
        "KVMD_MSD",
        kvmd_msd::run,
    )
}
