//! The HTTP API of kvmd-auth, one module per URL group.

pub mod auth;
pub mod sessions;
pub mod users;
