//! The USB OTG gadget: the `/dev/kvmd-hid-*` character devices of `f_hid`.
//!
//! Opened non-blocking (the keyboard read-write, for LED reports; the mice write-only):
//! `f_hid` answers `EAGAIN` while the host has not read the previous report and
//! `ESHUTDOWN` while the gadget is unbound or unconfigured, and a blocking descriptor
//! would sleep forever there (STACK.md §9.4); on `EAGAIN` a write waits (poll, 100 ms, kvmd's
//! `select_timeout`) for the host to read the previous report. A missing node is retried on
//! the next write.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::{Device, HidOutput};

/// kvmd's `select_timeout`: how long a write waits for the host to take the previous report.
const SELECT_TIMEOUT_MS: u16 = 100;

/// The gadget's device nodes.
pub struct Otg {
    paths: [PathBuf; 3],
    /// The gadget's configfs directory (its `UDC` names the controller it is bound to).
    gadget: PathBuf,
    /// `/sys/class/udc`, where the controller's `state` says whether a host configured it.
    udc_class: PathBuf,
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
    /// The devices at `keyboard`, `mouse`, `mouse_alt` of the gadget at `gadget` (configfs).
    pub fn new(keyboard: PathBuf, mouse: PathBuf, mouse_alt: PathBuf, gadget: PathBuf) -> Self {
        Self {
            paths: [keyboard, mouse, mouse_alt],
            gadget,
            udc_class: PathBuf::from("/sys/class/udc"),
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

    /// One write of `report` to `d`; `wait` allows up to `SELECT_TIMEOUT_MS` for a host that
    /// has not read the previous report yet. `None`: it would have had to wait.
    fn write_report(&self, d: Device, report: &[u8], wait: bool) -> Option<bool> {
        let i = index(d);
        let mut files = self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if files[i].is_none() {
            files[i] = self.open(d);
        }
        let Some(f) = files[i].as_mut() else { return Some(false) };
        let mut result = f.write(report);
        if matches!(&result, Err(e) if e.kind() == ErrorKind::WouldBlock) {
            if !wait {
                return None;
            }
            // The host has not read the previous report yet: like kvmd, wait up to
            // SELECT_TIMEOUT for it to, so a burst (a paste) is not cut down to its last report.
            let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLOUT)];
            if matches!(poll(&mut fds, PollTimeout::from(SELECT_TIMEOUT_MS)), Ok(n) if n > 0) {
                result = f.write(report);
            }
        }
        Some(match result {
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
        })
    }
}

impl HidOutput for Otg {
    fn write(&self, d: Device, report: &[u8]) -> bool {
        self.write_report(d, report, true).unwrap_or(false)
    }

    fn try_write(&self, d: Device, report: &[u8]) -> Option<bool> {
        self.write_report(d, report, false)
    }

    fn read_leds(&self) -> Option<u8> {
        let mut files = self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // The host may set an LED before anything was typed: the keyboard is opened here too.
        if files[0].is_none() {
            files[0] = self.open(Device::Keyboard);
        }
        let f = files[0].as_mut()?;
        // Every report waiting (the host sends one at enumeration): the newest counts.
        let mut last = None;
        let mut b = [0u8; 1];
        while let Ok(1) = f.read(&mut b) {
            last = Some(b[0]);
        }
        last
    }

    fn host_configured(&self) -> Option<bool> {
        // No gadget directory (plain files or FIFOs standing in for the nodes): unknown.
        let udc = std::fs::read_to_string(self.gadget.join("UDC")).ok()?;
        let udc = udc.trim();
        if udc.is_empty() {
            return Some(false);
        }
        let state = std::fs::read_to_string(self.udc_class.join(udc).join("state")).unwrap_or_default();
        Some(state.trim() == "configured")
    }
}
