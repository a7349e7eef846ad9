//! `kvmd-gpio`: see the library for what it does.

fn main() -> std::process::ExitCode {
    kvmd_core::service::main(
        "kvmd-gpio",
        "kvmd-compatible ATX power control, GPIO channels and Redfish",
        "KVMD_GPIO",
        kvmd_gpio::run,
    )
}
