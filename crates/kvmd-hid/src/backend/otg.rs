//! The USB OTG gadget: the `/dev/kvmd-hid-*` character devices of `f_hid`.
//!
//! Opened non-blocking (the keyboard read-write, for LED reports; the mice write-only):
//! `f_hid` answers `EAGAIN` while the host has not read the previous report and
//! `ESHUTDOWN` while the gadget is unbound or unconfigured, and a blocking descriptor
//! would sleep forever there (STACK.md §9.4). A missing node is retried on the next write.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

use super::{Device, HidOutput};

/// The gadget's device nodes.
pub struct Otg {
    paths: [PathBuf; 3],
    files: Mutex<[Option<File>; 3]>,
    missing_logged: Mutex<[bool; 3]>,
}

fn index(d: Device) -> usize {
    match d {
        Device::Keyboard => 0,
        Device::Mouse => 1,
        Device::MouseAlt => 2,
    }
}

impl Otg {
    /// The devices at `keyboard`, `mouse`, `mouse_alt`.
    pub fn new(keyboard: PathBuf, mouse: PathBuf, mouse_alt: PathBuf) -> Self {
        Self {
            paths: [keyboard, mouse, mouse_alt],
            files: Mutex::new([None, None, None]),
            missing_logged: Mutex::new([false; 3]),
        }
    }

    fn open(&self, d: Device) -> Option<File> {
        let i = index(d);
        let mut o = OpenOptions::new();
        o.write(true).custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits());
        if d == Device::Keyboard {
            o.read(true);
        }
        match o.open(&self.paths[i]) {
            Ok(f) => {
                self.missing_logged.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[i] = false;
                Some(f)
            }
            Err(e) => {
                let mut logged = self.missing_logged.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if !logged[i] {
                    tracing::error!(path = %self.paths[i].display(), error = %e, "Missing HID-{} device", d.name());
                    logged[i] = true;
                }
                None
            }
        }
    }
}

impl HidOutput for Otg {
    fn write(&self, d: Device, report: &[u8]) -> bool {
        let i = index(d);
        let mut files = self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if files[i].is_none() {
            files[i] = self.open(d);
        }
        let Some(f) = files[i].as_mut() else { return false };
        match f.write(report) {
            Ok(n) if n == report.len() => true,
            Ok(n) => {
                tracing::error!(device = d.name(), written = n, "short HID write");
                false
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.raw_os_error() == Some(nix::libc::ESHUTDOWN) => false,
            Err(e) => {
                tracing::error!(device = d.name(), error = %e, "HID write failed; reopening");
                files[i] = None;
                false
            }
        }
    }

    fn read_leds(&self) -> Option<u8> {
        let mut files = self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let f = files[0].as_mut()?;
        let mut b = [0u8; 1];
        match f.read(&mut b) {
            Ok(1) => Some(b[0]),
            _ => None,
        }
    }
}
