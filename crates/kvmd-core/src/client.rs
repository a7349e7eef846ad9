//! The suite's one way to make a `reqwest` client: the feeds and auth checks between
//! services (over their unix sockets) and kvmd-msd's downloads (HTTPS).
//!
//! reqwest is built with rustls on the `ring` provider (`rustls-no-provider`; its default,
//! aws-lc-rs, is a far heavier C build), and a client's construction needs the
//! process-wide provider installed: [`builder`] installs it once. Features are unified
//! across the workspace, so every client of every service goes through here.

/// `reqwest::Client::builder()`, with the TLS provider installed first.
pub fn builder() -> reqwest::ClientBuilder {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        // Err: another provider is installed already, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

/// A client speaking plain HTTP over the unix socket `socket`. It trusts no certificate
/// (it never speaks TLS), so making it never reads the system's roots: a device without
/// `ca-certificates` (the real-kernel rig's minimal Debian is one) would otherwise fail to
/// make any client at all.
pub fn unix(socket: impl AsRef<std::path::Path>) -> reqwest::ClientBuilder {
    builder().tls_certs_only([]).unix_socket(socket.as_ref())
}
