//! `kvmd-hid`: see the library for what it does.

fn main() -> std::process::ExitCode {
    kvmd_core::service::main("kvmd-hid", "kvmd-compatible keyboard and mouse service", "KVMD_HID", kvmd_hid::run)
}
