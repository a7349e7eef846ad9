//! The HTTP API of kvmd-auth, one module per URL group.

pub mod auth;
