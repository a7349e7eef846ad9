//! `kvmd-auth`: see the library for what it does.

fn main() -> std::process::ExitCode {
    kvmd_core::service::main(
        "kvmd-auth",
        "kvmd-compatible authentication service (login, sessions, nginx auth_request)",
        "KVMD_AUTH",
        kvmd_auth::run,
    )
}
