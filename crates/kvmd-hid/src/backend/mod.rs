//! Where HID reports go. The HID core ([`crate::hid`]) owns the keyboard and mouse state and
//! hands finished reports to one [`HidOutput`] (written by the sender, or by the HID
//! thread when they must wait); the implementations are real code paths:
//! [`otg::Otg`] writes the USB gadget's character devices, [`ch9329::Ch9329`] drives the
//! CH9329 serial HID chip, [`vtarget::Vtarget`] keeps the reports for the virtual target.

pub mod ch9329;
pub mod otg;
pub mod vtarget;

/// The three HID functions of kvmd's gadget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    /// `/dev/kvmd-hid-keyboard` (hidg0): 8-byte boot keyboard reports.
    Keyboard,
    /// `/dev/kvmd-hid-mouse` (hidg1): 7-byte absolute mouse reports.
    Mouse,
    /// `/dev/kvmd-hid-mouse-alt` (hidg2): 5-byte relative mouse reports.
    MouseAlt,
}

impl Device {
    /// All of them.
    pub const ALL: [Device; 3] = [Device::Keyboard, Device::Mouse, Device::MouseAlt];

    /// kvmd's device name (`hid-keyboard`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Device::Keyboard => "keyboard",
            Device::Mouse => "mouse",
            Device::MouseAlt => "mouse-alt",
        }
    }
}

/// A HID output: a sink of finished reports. A device that does not take a report answers
/// `false`, and the HID thread retries the last one.
pub trait HidOutput: Send + Sync {
    /// Writes one report to `device`, waiting for the device as long as this output does
    /// (the HID thread calls it); `false` when it did not take it whole.
    fn write(&self, device: Device, report: &[u8]) -> bool;

    /// Writes one report if that needs no waiting: `Some` as [`HidOutput::write`] would
    /// answer, `None` when the device cannot take it at once (the HID thread then writes
    /// it). Called by request handlers, so it must never block. By default, `None`.
    fn try_write(&self, _device: Device, _report: &[u8]) -> Option<bool> {
        None
    }

    /// The keyboard LED byte the host last sent (bit 0 Num, 1 Caps, 2 Scroll), if any.
    fn read_leds(&self) -> Option<u8> {
        None
    }

    /// Whether a host has configured the device (`None`: this output cannot tell). Asked
    /// every tick of the HID thread; `false` turns every `online` flag off until a write
    /// succeeds again.
    fn host_configured(&self) -> Option<bool> {
        None
    }
}
