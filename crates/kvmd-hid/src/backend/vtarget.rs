//! The virtual output: keeps every report with its device, for the virtual target (the
//! demo's emulated host) and for tests that read what a real gadget would have received.

use std::sync::Mutex;

use super::{Device, HidOutput};

/// Reports in arrival order.
#[derive(Default)]
pub struct Vtarget {
    log: Mutex<Vec<(Device, Vec<u8>)>>,
}

impl Vtarget {
    /// Takes the reports written so far.
    pub fn take(&self) -> Vec<(Device, Vec<u8>)> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl HidOutput for Vtarget {
    fn write(&self, device: Device, report: &[u8]) -> bool {
        let mut log = self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bounded: the virtual target drains it; without one, keep the newest.
        if log.len() >= 65536 {
            log.drain(..32768);
        }
        log.push((device, report.to_vec()));
        true
    }

    fn try_write(&self, device: Device, report: &[u8]) -> Option<bool> {
        Some(self.write(device, report))
    }
}
