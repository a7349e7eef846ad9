//! The HTTP API of kvmd-info, one module per URL group.

pub mod export;
pub mod feed;
pub mod info;
pub mod log;
