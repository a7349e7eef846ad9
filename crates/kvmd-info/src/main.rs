//! `kvmd-info`: see the library for what it does.

fn main() -> std::process::ExitCode {
    kvmd_core::service::main(
        "kvmd-info",
        "kvmd-compatible information service (/info, /log, metrics)",
        "KVMD_INFO",
        kvmd_info::run,
    )
}
