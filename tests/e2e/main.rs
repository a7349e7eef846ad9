//! End-to-end tests: the real services and the real nginx, started by `kvmd-testkit`,
//! driven with curl as a user would.

mod auth;
mod blikvm;
mod browser;
mod common;
mod front;
mod golden_replay;
mod gpio;
mod hid;
mod info;
mod kasm;
mod keys;
mod limits;
mod log;
mod malformed;
mod msd;
mod roles;
mod sessions;
mod streamer;
mod v4l2;
mod vtarget;
mod webrtc;
mod ws;
