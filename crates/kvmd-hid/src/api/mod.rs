//! The HTTP API of kvmd-hid, one module per URL group.

pub mod hid;
