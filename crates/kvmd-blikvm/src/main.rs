//! `kvmd-blikvm`: see the library for what it does.

fn main() -> std::process::ExitCode {
    kvmd_core::service::main(
        "kvmd-blikvm",
        "BliKVM v1.4 compatibility over the suite's own services",
        "KVMD_BLIKVM",
        kvmd_blikvm::run,
    )
}
