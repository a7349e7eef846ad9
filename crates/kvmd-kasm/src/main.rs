//! `kvmd-kasm`: see the library for what it does.

fn main() -> std::process::ExitCode {
    kvmd_core::service::main(
        "kvmd-kasm",
        "A Kasm-style JSON API over the suite's own services",
        "KVMD_KASM",
        kvmd_kasm::run,
    )
}
